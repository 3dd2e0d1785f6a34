//! What validation remembers between calls: signature checks that verified, and certificates
//! and CRLs already parsed from DER.
//!
//! A verifier going through an archive, or a node taking documents all day, sees the same few
//! intermediates and CRLs in every chain. Checking their signatures again costs a public-key
//! operation each; parsing them again costs an X.509 parse each (a profile of `lienthong verify
//! DIR` put re-parsing chains at a tenth of its time). Both are remembered here, by digest, so
//! that work is done once per distinct object.
//!
//! **Invariant:** the cache only ever saves *work whose answer cannot change*: whether a key
//! made a signature over given bytes, and what given DER parses to. Validity at a time and
//! revocation are judged on every validation, never remembered.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::cert::{Certificate, ParseError};
use crate::crl::{Crl, CrlParseError};

/// How many verified links the cache remembers before it starts over. A national node sees
/// a few thousand agencies, each with a handful of certificates.
pub const DEFAULT_CACHE_CAPACITY: usize = 65_536;

/// How many parsed certificates the cache keeps before it starts over: the intermediates and
/// seals of a few thousand agencies. The test hierarchy's are 570–630 bytes of DER and about
/// 1.8 KiB parsed (their fields' sizes added up), so a full cache holds about 7 MiB.
pub const DEFAULT_CERTIFICATE_CACHE_CAPACITY: usize = 4_096;

/// The DER bytes of parsed certificates the cache keeps before it starts over: 4 MiB, which
/// the default count of ordinary certificates fits in (about 2.5 MiB of DER), and which bounds
/// what certificates near [`crate::cert::MAX_CERT_LEN`] sent by a hostile peer can make it
/// hold.
pub const DEFAULT_CERTIFICATE_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// How many parsed CRLs the cache keeps before it starts over: one or two per CA for a
/// thousand CAs.
pub const DEFAULT_CRL_CACHE_CAPACITY: usize = 1_024;

/// The DER bytes of parsed CRLs the cache keeps before it starts over: 4 MiB, about 100,000
/// revocations. A CRL larger than this is parsed every time it is met, as without a cache.
pub const DEFAULT_CRL_CACHE_BYTES: usize = 4 * 1024 * 1024;

/// The bounds of a [`SignatureCache`]. `Default` gives the documented defaults; a zero count
/// turns that part of the cache off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Verified links ([`DEFAULT_CACHE_CAPACITY`]).
    pub links: usize,
    /// Parsed certificates ([`DEFAULT_CERTIFICATE_CACHE_CAPACITY`]).
    pub certificates: usize,
    /// DER bytes of parsed certificates ([`DEFAULT_CERTIFICATE_CACHE_BYTES`]).
    pub certificate_bytes: usize,
    /// Parsed CRLs ([`DEFAULT_CRL_CACHE_CAPACITY`]).
    pub crls: usize,
    /// DER bytes of parsed CRLs ([`DEFAULT_CRL_CACHE_BYTES`]).
    pub crl_bytes: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            links: DEFAULT_CACHE_CAPACITY,
            certificates: DEFAULT_CERTIFICATE_CACHE_CAPACITY,
            certificate_bytes: DEFAULT_CERTIFICATE_CACHE_BYTES,
            crls: DEFAULT_CRL_CACHE_CAPACITY,
            crl_bytes: DEFAULT_CRL_CACHE_BYTES,
        }
    }
}

/// Remembers which (issuer key, signed object) pairs verified, so shared intermediates and
/// CRLs are checked once, and the certificates and CRLs parsed from DER, so each is parsed
/// once. Shared between validators (a node makes a new validator when its CRLs change, and
/// keeps the cache) and between threads.
#[derive(Debug)]
pub struct SignatureCache {
    verified: Mutex<HashSet<[u8; 32]>>,
    capacity: usize,
    hits: AtomicU64,
    certificates: ParsedCache<Certificate>,
    crls: ParsedCache<Crl>,
}

impl Default for SignatureCache {
    fn default() -> Self {
        SignatureCache::with_limits(CacheLimits::default())
    }
}

impl SignatureCache {
    /// A cache that forgets its links once it holds `capacity` of them (cheap, and a refill
    /// costs one verification per entry), with the default bounds for parsed objects.
    pub fn with_capacity(capacity: usize) -> Self {
        SignatureCache::with_limits(CacheLimits { links: capacity, ..CacheLimits::default() })
    }

    /// A cache with these bounds; each part starts over when it would pass its bound.
    pub fn with_limits(limits: CacheLimits) -> Self {
        SignatureCache {
            verified: Mutex::new(HashSet::new()),
            capacity: limits.links,
            hits: AtomicU64::default(),
            certificates: ParsedCache::new(limits.certificates, limits.certificate_bytes),
            crls: ParsedCache::new(limits.crls, limits.crl_bytes),
        }
    }

    pub(super) fn key(issuer_spki: &[u8], object_fingerprint: &[u8; 32]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(issuer_spki);
        ctx.update(object_fingerprint);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    pub(super) fn contains(&self, key: &[u8; 32]) -> bool {
        let hit = self.verified.lock().map(|set| set.contains(key)).unwrap_or(false);
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// How many signature checks the cache has answered (each one a verification saved).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub(super) fn insert(&self, key: [u8; 32]) {
        if let Ok(mut set) = self.verified.lock() {
            if set.len() >= self.capacity {
                set.clear();
            }
            set.insert(key);
        }
    }

    /// Number of remembered links.
    pub fn len(&self) -> usize {
        self.verified.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when no link is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The certificate `der` parses to ([`Certificate::from_der`]), parsed once: a DER seen
    /// before costs a SHA-256 and a lookup. Only what parses is remembered.
    pub fn certificate(&self, der: &[u8]) -> Result<Arc<Certificate>, ParseError> {
        self.certificates.get_or_parse(der, Certificate::from_der)
    }

    /// The CRL `der` parses to ([`Crl::from_der`]), parsed once like
    /// [`SignatureCache::certificate`].
    pub fn crl(&self, der: &[u8]) -> Result<Arc<Crl>, CrlParseError> {
        self.crls.get_or_parse(der, Crl::from_der)
    }

    /// `crl`, shared: the cached copy of the same DER when there is one, else a copy that is
    /// then cached. For CRLs already parsed elsewhere (files given on the command line) that
    /// every validation would otherwise copy.
    pub fn share_crl(&self, crl: &Crl) -> Arc<Crl> {
        self.crls.share(crl)
    }

    /// The parsed certificates remembered, for their counts.
    pub fn certificates(&self) -> &ParsedCache<Certificate> {
        &self.certificates
    }

    /// The parsed CRLs remembered, for their counts.
    pub fn crls(&self) -> &ParsedCache<Crl> {
        &self.crls
    }
}

/// Something parsed from DER that a [`ParsedCache`] can hold: its encoding is compared on
/// every hit, so what the cache gives is always what parsing those very bytes gave.
pub trait Encoded {
    /// The DER it was parsed from.
    fn der(&self) -> &[u8];
    /// SHA-256 of that DER, as parsing computed it.
    fn fingerprint(&self) -> [u8; 32];
}

impl Encoded for Certificate {
    fn der(&self) -> &[u8] {
        Certificate::der(self)
    }
    fn fingerprint(&self) -> [u8; 32] {
        Certificate::fingerprint(self)
    }
}

impl Encoded for Crl {
    fn der(&self) -> &[u8] {
        Crl::der(self)
    }
    fn fingerprint(&self) -> [u8; 32] {
        Crl::fingerprint(self)
    }
}

/// Objects parsed from DER, by the SHA-256 of the whole DER, bounded in count and in DER
/// bytes; when either bound would be passed it starts over (as the link cache does).
#[derive(Debug)]
pub struct ParsedCache<T> {
    entries: RwLock<Entries<T>>,
    max_entries: usize,
    max_bytes: usize,
    hits: AtomicU64,
}

#[derive(Debug)]
struct Entries<T> {
    by_digest: HashMap<[u8; 32], Arc<T>>,
    bytes: usize,
}

impl<T> ParsedCache<T> {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        ParsedCache {
            entries: RwLock::new(Entries { by_digest: HashMap::new(), bytes: 0 }),
            max_entries,
            max_bytes,
            hits: AtomicU64::default(),
        }
    }

    /// How many parses the cache has saved.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// How many objects it holds.
    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.by_digest.len()).unwrap_or(0)
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The DER bytes of what it holds.
    pub fn bytes(&self) -> usize {
        self.entries.read().map(|e| e.bytes).unwrap_or(0)
    }
}

impl<T: Encoded> ParsedCache<T> {
    fn get_or_parse<E>(&self, der: &[u8], parse: impl FnOnce(&[u8]) -> Result<T, E>) -> Result<Arc<T>, E> {
        let digest = crate::sha256(der);
        if let Some(found) = self.lookup(&digest, der) {
            return Ok(found);
        }
        let parsed = Arc::new(parse(der)?);
        self.insert(digest, &parsed);
        Ok(parsed)
    }

    fn share(&self, object: &T) -> Arc<T>
    where
        T: Clone,
    {
        let digest = object.fingerprint();
        if let Some(found) = self.lookup(&digest, object.der()) {
            return found;
        }
        let shared = Arc::new(object.clone());
        self.insert(digest, &shared);
        shared
    }

    /// The object held for `digest`, if its DER is `der` byte for byte (a SHA-256 collision
    /// would be a miss, not a wrong answer).
    fn lookup(&self, digest: &[u8; 32], der: &[u8]) -> Option<Arc<T>> {
        let entries = self.entries.read().ok()?;
        let found = entries.by_digest.get(digest).filter(|o| o.der() == der)?.clone();
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(found)
    }

    fn insert(&self, digest: [u8; 32], object: &Arc<T>) {
        let len = object.der().len();
        if self.max_entries == 0 || len > self.max_bytes {
            return;
        }
        let Ok(mut entries) = self.entries.write() else { return };
        if entries.by_digest.contains_key(&digest) {
            return;
        }
        if entries.by_digest.len() >= self.max_entries || entries.bytes + len > self.max_bytes {
            entries.by_digest.clear();
            entries.bytes = 0;
        }
        entries.by_digest.insert(digest, object.clone());
        entries.bytes += len;
    }
}
