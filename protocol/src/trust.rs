//! What this node trusts right now: the national root, the CRLs it holds, and the shared
//! signature cache. The TLS verifiers, document verification and receipt verification all go
//! through here, so a new CRL takes effect everywhere at once (a revoked node certificate is
//! refused at its next handshake).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use pki::validate::{CertSummary, RevocationStatus, SignatureCache, VerifiedChain};
use pki::{Certificate, ChainError, Crl, CrlSet, Profile, RevocationMode, Validator};
use time::OffsetDateTime;

/// The node's trust state.
#[derive(Debug)]
pub struct Trust {
    anchors: Vec<Certificate>,
    /// CA certificates seen on validated paths, by fingerprint: what CRLs arriving from
    /// neighbours are checked against.
    learned: RwLock<std::collections::HashMap<[u8; 32], Certificate>>,
    cache: Arc<SignatureCache>,
    current: RwLock<Arc<Validator>>,
    freshness: time::Duration,
}

impl Trust {
    /// Trust in `anchors`, with the given CRLs, and CRLs older than `freshness` marking
    /// verification provisional.
    pub fn new(anchors: Vec<Certificate>, crls: Vec<Crl>, freshness: Duration) -> Self {
        let cache = Arc::new(SignatureCache::default());
        let validator = Self::build(&anchors, &cache, crls.into_iter().collect());
        // A budget beyond what `time` can hold (centuries) means "never stale".
        let freshness = time::Duration::try_from(freshness).unwrap_or(time::Duration::MAX);
        Trust { anchors, learned: RwLock::default(), cache, current: RwLock::new(Arc::new(validator)), freshness }
    }

    fn build(anchors: &[Certificate], cache: &Arc<SignatureCache>, crls: CrlSet) -> Validator {
        // Best effort at this level: a missing or stale CRL is reported per certificate, and
        // the node decides (see `revocation_gap`: refused unless the operator opted in). A
        // revocation on a CRL always refuses.
        Validator::new(anchors.to_vec()).with_crls(crls).with_mode(RevocationMode::BestEffort).with_cache(cache.clone())
    }

    /// The validator to use now.
    pub fn validator(&self) -> Arc<Validator> {
        match self.current.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The validator for something that came with CRLs of its own (`carried`): the current
    /// one when they add nothing newer (the common case, nothing rebuilt), else one with them
    /// added (shared, not copied).
    pub fn validator_with(&self, carried: &[Arc<Crl>]) -> Arc<Validator> {
        let current = self.validator();
        let newer: Vec<Arc<Crl>> = carried.iter().filter(|c| !Self::holds_as_new(&current, c)).cloned().collect();
        if newer.is_empty() {
            return current;
        }
        let crls = current.crls().iter_shared().cloned().chain(newer).collect();
        Arc::new(Self::build(&self.anchors, &self.cache, crls))
    }

    /// The CRL `der` parses to, through the shared cache: the CRLs that travel with every
    /// document and receipt are parsed once, not at every arrival.
    pub fn parse_crl(&self, der: &[u8]) -> Result<Arc<Crl>, pki::crl::CrlParseError> {
        self.cache.crl(der)
    }

    /// Each of `ders` that parses (see [`Trust::parse_crl`]); the others are left out.
    pub fn parse_crls<D: AsRef<[u8]>>(&self, ders: &[D]) -> Vec<Arc<Crl>> {
        ders.iter().filter_map(|d| self.parse_crl(d.as_ref()).ok()).collect()
    }

    /// Replaces the CRL set.
    pub fn set_crls(&self, crls: Vec<Crl>) {
        let validator = Arc::new(Self::build(&self.anchors, &self.cache, crls.into_iter().collect()));
        match self.current.write() {
            Ok(mut v) => *v = validator,
            Err(poisoned) => *poisoned.into_inner() = validator,
        }
    }

    /// Adds CA certificates seen on a validated path; returns those not known before.
    pub fn learn(&self, cas: impl IntoIterator<Item = Certificate>) -> Vec<Certificate> {
        let mut learned = match self.learned.write() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let mut new = Vec::new();
        for ca in cas {
            if ca.ca.is_some()
                && !self.anchors.iter().any(|a| a.fingerprint() == ca.fingerprint())
                && !learned.contains_key(&ca.fingerprint())
            {
                learned.insert(ca.fingerprint(), ca.clone());
                new.push(ca);
            }
        }
        new
    }

    /// True when `crl` is signed by an anchor or a learned CA: the condition for keeping a
    /// CRL that came from the network.
    pub fn knows_signer_of(&self, crl: &Crl) -> bool {
        let learned = match self.learned.read() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        let validator = self.validator();
        self.anchors.iter().chain(learned.values()).any(|ca| validator.crl_signed_by(crl, ca).is_ok())
    }

    /// True when the CRL set already holds `crl` or a newer CRL of the same CA, so a copy that
    /// came along with a document needs no work.
    pub fn has_crl_as_new_as(&self, crl: &Crl) -> bool {
        Self::holds_as_new(&self.validator(), crl)
    }

    fn holds_as_new(validator: &Validator, crl: &Crl) -> bool {
        validator.crls().iter().any(|held| {
            held.issuer_raw == crl.issuer_raw
                && (held.this_update > crl.this_update || held.fingerprint() == crl.fingerprint())
        })
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }

    /// The signature cache shared by every validation.
    pub fn cache(&self) -> Arc<SignatureCache> {
        self.cache.clone()
    }

    /// Validates a peer's chain for `profile` at `now`.
    pub fn validate<D: AsRef<[u8]>>(
        &self,
        chain: &[D],
        now: OffsetDateTime,
        profile: Profile,
    ) -> Result<VerifiedChain, ChainError> {
        self.validator().validate(chain, now, profile)
    }

    /// What keeps this node from vouching that no certificate of a validated chain (`path`,
    /// leaf first, with the `statuses` validation gave, one per certificate below the anchor)
    /// is revoked at `now`: the first certificate whose issuer's CRL is missing, past its
    /// nextUpdate, or older than the freshness budget. `None` when every one was checked
    /// against a fresh CRL (or is settled as revoked later).
    pub fn revocation_gap(
        &self,
        path: &[CertSummary],
        statuses: &[RevocationStatus],
        now: OffsetDateTime,
    ) -> Option<RevocationGap> {
        statuses.iter().enumerate().find_map(|(i, status)| {
            let certificate = path.get(i).map_or_else(|| "?".into(), |c| c.id.to_string());
            let issuer = path.get(i + 1).map_or_else(|| "?".into(), |c| c.id.name.clone());
            match status {
                RevocationStatus::RevokedLater { .. } => None,
                RevocationStatus::Good { crl_this_update, .. } if !self.is_stale(*crl_this_update, now) => None,
                RevocationStatus::Good { crl_this_update, .. } | RevocationStatus::Stale { crl_this_update, .. } => {
                    Some(RevocationGap::Old { certificate, issuer, this_update: *crl_this_update })
                }
                RevocationStatus::NotChecked => Some(RevocationGap::Missing { certificate, issuer }),
            }
        })
    }

    /// [`Trust::revocation_gap`] of a validated peer or clerk chain.
    pub fn chain_gap(&self, chain: &VerifiedChain, now: OffsetDateTime) -> Option<RevocationGap> {
        self.revocation_gap(&chain.path, &chain.revocation, now)
    }

    /// True when a CRL issued at `this_update` is older than the freshness budget at `now`.
    pub fn is_stale(&self, this_update: OffsetDateTime, now: OffsetDateTime) -> bool {
        now - this_update > self.freshness
    }
}

/// Why the revocation of a certificate cannot be checked now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationGap {
    /// No CRL of the issuer is held.
    Missing {
        /// The certificate.
        certificate: String,
        /// Its issuer, whose CRL is missing.
        issuer: String,
    },
    /// The newest CRL of the issuer is older than the freshness budget or past its
    /// nextUpdate.
    Old {
        /// The certificate.
        certificate: String,
        /// Its issuer.
        issuer: String,
        /// When that CRL was issued.
        this_update: OffsetDateTime,
    },
}

impl std::fmt::Display for RevocationGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevocationGap::Missing { certificate, issuer } => {
                write!(f, "no CRL of {issuer} is held, so {certificate} cannot be checked for revocation")
            }
            RevocationGap::Old { certificate, issuer, this_update } => write!(
                f,
                "the newest CRL of {issuer} (issued {}) is too old to vouch for {certificate}",
                pki::format_utc(*this_update)
            ),
        }
    }
}
