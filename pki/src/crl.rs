//! Certificate revocation lists: reading them into owned form, and the set a validator
//! consults.
//!
//! A CRL is trusted only once its signature has been checked against the key of the CA that
//! issued it; that check is `Validator::crl_signed_by`, where the signature cache is, not here.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::algorithm::SignatureAlgorithm;
use crate::cert::{PemError, Serial};

/// Largest CRL we parse. A CRL grows by ~40 bytes per revoked certificate; 8 MiB is some
/// 200,000 entries, far above a province's lifetime of revocations, and bounds hostile input.
pub const MAX_CRL_LEN: usize = 8 * 1024 * 1024;

/// Why a certificate was revoked (RFC 5280 §5.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given.
    Unspecified,
    /// The private key was compromised.
    KeyCompromise,
    /// The issuing CA's key was compromised.
    CaCompromise,
    /// The subject changed affiliation (e.g. an official moved to another agency).
    AffiliationChanged,
    /// Replaced by a new certificate.
    Superseded,
    /// The subject stopped operating (e.g. an agency merged away in a reorganisation).
    CessationOfOperation,
    /// Temporarily on hold.
    CertificateHold,
    /// Privileges withdrawn.
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// Every reason, for help texts.
    pub const ALL: [RevocationReason; 8] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn,
    ];

    /// The RFC 5280 name, as `openssl crl -text` prints it in camelCase.
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => RevocationReason::KeyCompromise,
            2 => RevocationReason::CaCompromise,
            3 => RevocationReason::AffiliationChanged,
            4 => RevocationReason::Superseded,
            5 => RevocationReason::CessationOfOperation,
            6 => RevocationReason::CertificateHold,
            9 => RevocationReason::PrivilegeWithdrawn,
            _ => RevocationReason::Unspecified,
        }
    }

    pub(crate) fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            RevocationReason::Unspecified => R::Unspecified,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::CertificateHold => R::CertificateHold,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace(['-', '_'], "");
        RevocationReason::ALL.into_iter().find(|r| r.name().to_ascii_lowercase() == wanted).ok_or_else(|| {
            let names: Vec<_> = RevocationReason::ALL.iter().map(|r| r.name()).collect();
            format!("unknown revocation reason {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// One entry of a CRL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// When the CA revoked the certificate.
    pub at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// Why bytes are not a CRL we can read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlParseError {
    /// Larger than [`MAX_CRL_LEN`].
    #[error("CRL is {0} bytes, more than the {MAX_CRL_LEN}-byte limit")]
    TooLarge(usize),
    /// Not DER.
    #[error("not a DER CRL: {0}")]
    Der(String),
    /// Trailing bytes.
    #[error("{0} bytes of trailing data after the CRL")]
    TrailingData(usize),
    /// No nextUpdate: we cannot tell when it goes stale.
    #[error("CRL has no nextUpdate")]
    NoNextUpdate,
    /// PEM problem.
    #[error(transparent)]
    Pem(#[from] PemError),
}

/// A CRL read into owned fields.
#[derive(Clone, Debug)]
pub struct Crl {
    der: Vec<u8>,
    /// Issuer name as text.
    pub issuer: String,
    /// Raw DER of the issuer name, matched byte for byte against certificate issuers.
    pub issuer_raw: Vec<u8>,
    /// When the CRL was issued.
    pub this_update: OffsetDateTime,
    /// When the next one is due; past it the CRL is stale.
    pub next_update: OffsetDateTime,
    /// The cRLNumber, as bytes, when present.
    pub number: Option<Serial>,
    /// Revoked serials.
    pub revoked: HashMap<Serial, Revocation>,
    /// The signature algorithm, or the readable name of a refused one.
    pub signature_algorithm: Result<SignatureAlgorithm, String>,
    tbs: std::ops::Range<usize>,
    signature: Vec<u8>,
    fingerprint: [u8; 32],
}

impl Crl {
    /// Reads a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Self, CrlParseError> {
        if der.len() > MAX_CRL_LEN {
            return Err(CrlParseError::TooLarge(der.len()));
        }
        let (rest, crl) = CertificateRevocationList::from_der(der).map_err(|e| CrlParseError::Der(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CrlParseError::TrailingData(rest.len()));
        }
        let tbs_bytes: &[u8] = crl.tbs_cert_list.as_ref();
        let start = tbs_bytes.as_ptr() as usize - der.as_ptr() as usize;
        let next_update = crl.next_update().ok_or(CrlParseError::NoNextUpdate)?.to_datetime();
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| {
                let reason = r
                    .reason_code()
                    .map(|(_, code)| RevocationReason::from_code(code.0))
                    .unwrap_or(RevocationReason::Unspecified);
                (Serial::from_bytes(r.raw_serial()), Revocation { at: r.revocation_date.to_datetime(), reason })
            })
            .collect();
        Ok(Crl {
            der: der.to_vec(),
            issuer: crl.issuer().to_string(),
            issuer_raw: crl.issuer().as_raw().to_vec(),
            this_update: crl.last_update().to_datetime(),
            next_update,
            number: crl.crl_number().map(|n| Serial::from_bytes(&n.to_bytes_be())),
            revoked,
            signature_algorithm: SignatureAlgorithm::from_x509(&crl.signature_algorithm),
            tbs: start..start + tbs_bytes.len(),
            signature: crl.signature_value.data.to_vec(),
            fingerprint: crate::sha256(der),
        })
    }

    /// Reads every CRL in a PEM text.
    pub fn from_pem_all(text: &str) -> Result<Vec<Crl>, CrlParseError> {
        crate::pem::blocks(text, "X509 CRL").map_err(PemError::from)?.iter().map(|der| Crl::from_der(der)).collect()
    }

    /// The DER encoding, as issued.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM encoding.
    pub fn to_pem(&self) -> String {
        crate::pem::encode("X509 CRL", &self.der)
    }

    /// SHA-256 over the DER.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    pub(crate) fn tbs(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }

    pub(crate) fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The entry for `serial`, if revoked.
    pub fn lookup(&self, serial: &Serial) -> Option<&Revocation> {
        self.revoked.get(serial)
    }
}

/// The CRLs a validator consults, from any number of CAs. Each is held shared, so a set is
/// cheap to copy and the CRLs of a cache (`validate::SignatureCache::crl`) are not copied
/// into it.
#[derive(Clone, Debug, Default)]
pub struct CrlSet {
    crls: Vec<Arc<Crl>>,
}

impl CrlSet {
    /// An empty set: revocation is then reported as not checked.
    pub fn new() -> Self {
        CrlSet::default()
    }

    /// Adds a CRL. An older CRL of the same issuer stays in the set; validation uses the
    /// newest one whose signature verifies. The set is kept newest first (CRLs of the same
    /// time in the order added), so lookups during validation need no sorting.
    pub fn add(&mut self, crl: Crl) {
        self.add_shared(Arc::new(crl));
    }

    /// [`CrlSet::add`] for a CRL held elsewhere too (by a cache).
    pub fn add_shared(&mut self, crl: Arc<Crl>) {
        if self.crls.iter().any(|c| c.fingerprint == crl.fingerprint) {
            return;
        }
        let at = self.crls.partition_point(|c| c.this_update >= crl.this_update);
        self.crls.insert(at, crl);
    }

    /// Every CRL whose issuer name is `issuer_raw`, newest first.
    pub(crate) fn by_issuer<'a>(&'a self, issuer_raw: &'a [u8]) -> impl Iterator<Item = &'a Crl> {
        self.iter().filter(move |c| c.issuer_raw == issuer_raw)
    }

    /// All CRLs in the set.
    pub fn iter(&self) -> impl Iterator<Item = &Crl> {
        self.crls.iter().map(|c| &**c)
    }

    /// All CRLs in the set, shared: for building another set without copying them.
    pub fn iter_shared(&self) -> impl Iterator<Item = &Arc<Crl>> {
        self.crls.iter()
    }

    /// Number of CRLs.
    pub fn len(&self) -> usize {
        self.crls.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }
}

impl FromIterator<Crl> for CrlSet {
    fn from_iter<I: IntoIterator<Item = Crl>>(iter: I) -> Self {
        let mut set = CrlSet::new();
        for crl in iter {
            set.add(crl);
        }
        set
    }
}

impl FromIterator<Arc<Crl>> for CrlSet {
    fn from_iter<I: IntoIterator<Item = Arc<Crl>>>(iter: I) -> Self {
        let mut set = CrlSet::new();
        for crl in iter {
            set.add_shared(crl);
        }
        set
    }
}
