//! Chain validation: from a leaf up to a trust anchor, at a time the caller gives.
//!
//! lienthong chains are short and ordered (leaf first, as in COSE `x5chain` and TLS), so
//! there is no path building: the chain is checked link by link from the anchor down. Each
//! rule failure is a [`ChainError`] variant that names the certificate (subject and serial)
//! and the rule, so an operator can act on the one line it prints.
//!
//! Rules, in the order they are checked for each certificate from the top down: issuer name
//! chaining, signature algorithm, issuer key, signature, subject key, validity at the given
//! time, unknown critical extensions, agency code inside the issuer's scope (the hierarchy
//! constraint, enforced here and not only at issuance), CA-ness and path length for
//! intermediates, profile and key usage for the leaf, and revocation by the issuer's CRL.
//!
//! Signature checks of certificate and CRL links are cached in a [`SignatureCache`], so a
//! document whose signers share intermediates costs about one signature check per signer; the
//! same cache holds the certificates parsed from DER, so a chain seen before is not parsed
//! again (see the [`cache`] module: time and revocation are still judged every time).

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::agency::{AgencyCode, Scope};
use crate::algorithm::KeyProblem;
use crate::cert::{CertId, Certificate, ParseError, Profile, UsageProblem};
use crate::crl::{Crl, CrlParseError, CrlSet, RevocationReason};

/// Longest chain accepted, anchor included. The hierarchy is root, province CA, district CA,
/// leaf (4); a ministry may add a level. 8 leaves room without letting a peer make us walk
/// an unbounded chain.
pub const DEFAULT_MAX_CHAIN_LEN: usize = 8;

/// What to do when revocation cannot be established.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RevocationMode {
    /// A missing or stale CRL is an error: for verifiers who must be sure.
    #[default]
    Required,
    /// A missing or stale CRL is reported in [`VerifiedChain::revocation`] and the caller
    /// decides: nodes keep traffic moving during a CRL outage and mark it provisional.
    BestEffort,
}

/// Revocation status of one certificate at the validation time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RevocationStatus {
    /// Not on the issuer's current CRL.
    Good {
        /// When the CRL consulted was issued.
        #[serde(with = "time::serde::rfc3339")]
        crl_this_update: OffsetDateTime,
        /// When it falls due.
        #[serde(with = "time::serde::rfc3339")]
        crl_next_update: OffsetDateTime,
    },
    /// Revoked, but after the validation time: a signature made before still stands.
    RevokedLater {
        /// When it was revoked.
        #[serde(with = "time::serde::rfc3339")]
        revoked_at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// The newest CRL was already past its nextUpdate at the validation time.
    Stale {
        /// When the CRL consulted was issued.
        #[serde(with = "time::serde::rfc3339")]
        crl_this_update: OffsetDateTime,
        /// When it fell due.
        #[serde(with = "time::serde::rfc3339")]
        crl_next_update: OffsetDateTime,
    },
    /// No CRL of the issuer was available.
    NotChecked,
}

/// A certificate on a validated path, as reports show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertSummary {
    /// Name and serial.
    #[serde(flatten)]
    pub id: CertId,
    /// Whole subject.
    pub subject: String,
    /// Agency code, absent for the national root.
    pub agency: Option<AgencyCode>,
    /// Profile, when it fits one.
    pub profile: Option<Profile>,
    /// The person's position, for a person certificate.
    pub title: Option<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
}

impl CertSummary {
    /// Summarises a certificate.
    pub fn of(cert: &Certificate) -> Self {
        CertSummary {
            id: cert.id(),
            subject: cert.subject.clone(),
            agency: cert.agency,
            profile: cert.profile().ok(),
            title: cert.title.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            sha256: hex::encode(cert.fingerprint()),
        }
    }
}

/// A chain that passed validation: the identity it proves and how.
#[derive(Clone, Debug)]
pub struct VerifiedChain {
    /// The agency the leaf speaks for. This, never a claim inside a message, is what the
    /// rest of the system binds to.
    pub agency: AgencyCode,
    /// The leaf's profile.
    pub profile: Profile,
    /// The leaf, for its public key and names.
    pub leaf: Certificate,
    /// The path from the leaf up to and including the anchor.
    pub path: Vec<CertSummary>,
    /// Revocation status of each certificate below the anchor, leaf first.
    pub revocation: Vec<RevocationStatus>,
}

impl VerifiedChain {
    /// True when every certificate was checked against a current CRL.
    pub fn revocation_complete(&self) -> bool {
        self.revocation
            .iter()
            .all(|s| matches!(s, RevocationStatus::Good { .. } | RevocationStatus::RevokedLater { .. }))
    }

    /// The issue time of the oldest CRL consulted, or `None` when some certificate had no
    /// CRL at all. Nodes compare it with their freshness budget.
    pub fn oldest_crl(&self) -> Option<OffsetDateTime> {
        let mut oldest: Option<OffsetDateTime> = None;
        for status in &self.revocation {
            let t = match status {
                RevocationStatus::Good { crl_this_update, .. } | RevocationStatus::Stale { crl_this_update, .. } => {
                    *crl_this_update
                }
                RevocationStatus::RevokedLater { .. } => continue,
                RevocationStatus::NotChecked => return None,
            };
            oldest = Some(oldest.map_or(t, |o| o.min(t)));
        }
        oldest
    }
}

/// Why a chain does not validate. Every variant names the certificate concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// No certificates given.
    #[error("the chain is empty")]
    Empty,
    /// More certificates than the limit.
    #[error("the chain has {len} certificates, more than the limit of {max}")]
    TooLong {
        /// How many.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The chain holds nothing but a trust anchor.
    #[error("the chain holds only the trust anchor {0}")]
    OnlyAnchor(CertId),
    /// Malformed DER.
    #[error("certificate #{} of the chain is malformed: {error}", index + 1)]
    Malformed {
        /// 0-based position, leaf first.
        index: usize,
        /// What is wrong.
        error: ParseError,
    },
    /// The top of the chain is not signed by any trust anchor.
    #[error("certificate {cert} (issuer {issuer}) does not chain to a trusted national root")]
    UnknownAnchor {
        /// The top certificate.
        cert: CertId,
        /// Its issuer's name.
        issuer: String,
    },
    /// A certificate's issuer name is not the subject of the next one up.
    #[error("certificate {cert} names issuer {issuer_named}, but the next certificate up is {next}")]
    IssuerMismatch {
        /// The certificate.
        cert: CertId,
        /// The issuer it names.
        issuer_named: String,
        /// The certificate found above it.
        next: CertId,
    },
    /// The signature does not verify.
    #[error("certificate {cert} has a bad signature (not made by {issuer})")]
    BadSignature {
        /// The certificate.
        cert: CertId,
        /// The supposed issuer.
        issuer: CertId,
    },
    /// Past notAfter.
    #[error("certificate {cert} expired at {} (checked at {})", crate::format_utc(*not_after), crate::format_utc(*at))]
    Expired {
        /// The certificate.
        cert: CertId,
        /// Its end of validity.
        not_after: OffsetDateTime,
        /// The validation time.
        at: OffsetDateTime,
    },
    /// Before notBefore.
    #[error("certificate {cert} is not valid before {} (checked at {})", crate::format_utc(*not_before), crate::format_utc(*at))]
    NotYetValid {
        /// The certificate.
        cert: CertId,
        /// Its start of validity.
        not_before: OffsetDateTime,
        /// The validation time.
        at: OffsetDateTime,
    },
    /// Revoked at or before the validation time.
    #[error("certificate {cert} was revoked at {} ({reason})", crate::format_utc(*revoked_at))]
    Revoked {
        /// The certificate.
        cert: CertId,
        /// When.
        revoked_at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// Wrong key usage, extended key usage or profile.
    #[error("certificate {cert} cannot be used as {wanted}: {problem}")]
    WrongUsage {
        /// The certificate.
        cert: CertId,
        /// The use asked for.
        wanted: Profile,
        /// What stands in the way.
        problem: UsageProblem,
    },
    /// A CA's pathLenConstraint is exceeded.
    #[error("certificate {cert} allows {path_len} CA level(s) below it, but the chain has {below}")]
    PathLength {
        /// The constraining CA.
        cert: CertId,
        /// Its pathLenConstraint.
        path_len: u32,
        /// How many intermediate CAs follow it.
        below: usize,
    },
    /// The certificate's agency is outside the issuing CA's subtree.
    #[error("certificate {cert} is for agency {code}, outside the subtree of its issuer ({issuer_scope})")]
    Hierarchy {
        /// The certificate.
        cert: CertId,
        /// Its agency code.
        code: AgencyCode,
        /// What its issuer may certify.
        issuer_scope: Scope,
    },
    /// No agency code in the certificate.
    #[error("certificate {cert} carries no agency code (urn:lienthong:agency: URI)")]
    MissingAgencyCode {
        /// The certificate.
        cert: CertId,
    },
    /// The key is too weak or of an unaccepted kind.
    #[error("certificate {cert} has a refused key: {problem}")]
    WeakKey {
        /// The certificate.
        cert: CertId,
        /// The key problem.
        problem: KeyProblem,
    },
    /// The signature algorithm is weak or unknown.
    #[error("certificate {cert} is signed with a refused algorithm: {algorithm}")]
    WeakAlgorithm {
        /// The certificate.
        cert: CertId,
        /// The algorithm's name.
        algorithm: String,
    },
    /// A critical extension we do not understand.
    #[error("certificate {cert} has an unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// The certificate.
        cert: CertId,
        /// The extension's OID.
        oid: String,
    },
    /// No CRL of the issuer (in [`RevocationMode::Required`]).
    #[error("revocation of {cert} cannot be checked: no CRL from {issuer}")]
    RevocationUnknown {
        /// The certificate.
        cert: CertId,
        /// Its issuer.
        issuer: CertId,
    },
    /// The issuer's newest CRL was past nextUpdate (in [`RevocationMode::Required`]).
    #[error(
        "revocation of {cert} cannot be checked: the CRL from {issuer} is stale since {} (checked at {})",
        crate::format_utc(*next_update),
        crate::format_utc(*at)
    )]
    StaleCrl {
        /// The certificate.
        cert: CertId,
        /// Its issuer.
        issuer: CertId,
        /// When the CRL fell due.
        next_update: OffsetDateTime,
        /// The validation time.
        at: OffsetDateTime,
    },
    /// A CRL that claims to come from the issuer is not validly signed by it.
    #[error("the CRL claiming to be from {issuer} is invalid: {reason}")]
    CrlInvalid {
        /// The CA it claims to be from.
        issuer: CertId,
        /// What is wrong.
        reason: String,
    },
}

impl ChainError {
    /// A short stable name for the rule, for `--json` output and scripts.
    pub fn rule(&self) -> &'static str {
        match self {
            ChainError::Empty | ChainError::OnlyAnchor(_) => "empty",
            ChainError::TooLong { .. } => "too_long",
            ChainError::Malformed { .. } => "malformed",
            ChainError::UnknownAnchor { .. } => "unknown_anchor",
            ChainError::IssuerMismatch { .. } => "issuer_mismatch",
            ChainError::BadSignature { .. } => "bad_signature",
            ChainError::Expired { .. } => "expired",
            ChainError::NotYetValid { .. } => "not_yet_valid",
            ChainError::Revoked { .. } => "revoked",
            ChainError::WrongUsage { .. } => "wrong_usage",
            ChainError::PathLength { .. } => "path_length",
            ChainError::Hierarchy { .. } => "hierarchy",
            ChainError::MissingAgencyCode { .. } => "missing_agency_code",
            ChainError::WeakKey { .. } => "weak_key",
            ChainError::WeakAlgorithm { .. } => "weak_algorithm",
            ChainError::UnknownCriticalExtension { .. } => "unknown_critical_extension",
            ChainError::RevocationUnknown { .. } => "revocation_unknown",
            ChainError::StaleCrl { .. } => "stale_crl",
            ChainError::CrlInvalid { .. } => "crl_invalid",
        }
    }
}

/// What a walk down a chain found: the anchor, the certificates below it (leaf first) and,
/// when a time was given, their revocation status at that time.
struct Walked<'s, 'c, C> {
    anchor: &'s Certificate,
    body: &'c [C],
    revocation: Vec<RevocationStatus>,
}

/// Validates chains against a fixed set of anchors and CRLs.
#[derive(Debug, Clone)]
pub struct Validator {
    anchors: Vec<Certificate>,
    crls: CrlSet,
    mode: RevocationMode,
    cache: Option<Arc<SignatureCache>>,
}

impl Validator {
    /// A validator trusting `anchors` (normally just the national root), with no CRLs,
    /// revocation required, and no cache.
    pub fn new(anchors: Vec<Certificate>) -> Self {
        Validator { anchors, crls: CrlSet::new(), mode: RevocationMode::Required, cache: None }
    }

    /// Uses these CRLs.
    pub fn with_crls(mut self, crls: CrlSet) -> Self {
        self.crls = crls;
        self
    }

    /// Sets the revocation mode.
    pub fn with_mode(mut self, mode: RevocationMode) -> Self {
        self.mode = mode;
        self
    }

    /// Remembers verified signatures, and the certificates parsed, in `cache`.
    pub fn with_cache(mut self, cache: Arc<SignatureCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &[Certificate] {
        &self.anchors
    }

    /// The CRLs consulted.
    pub fn crls(&self) -> &CrlSet {
        &self.crls
    }

    /// The cache this validator remembers work in, if any.
    pub fn cache(&self) -> Option<&Arc<SignatureCache>> {
        self.cache.as_ref()
    }

    /// `der` parsed as a certificate, through the cache when there is one (a DER seen before
    /// costs a hash and a lookup): for callers that read a chain's certificates beside
    /// validating it.
    pub fn certificate(&self, der: &[u8]) -> Result<Arc<Certificate>, ParseError> {
        match &self.cache {
            Some(cache) => cache.certificate(der),
            None => Certificate::from_der(der).map(Arc::new),
        }
    }

    /// `der` parsed as a CRL, through the cache when there is one.
    pub fn crl(&self, der: &[u8]) -> Result<Arc<Crl>, CrlParseError> {
        match &self.cache {
            Some(cache) => cache.crl(der),
            None => Crl::from_der(der).map(Arc::new),
        }
    }

    /// A DER chain parsed, leaf first, each certificate through the cache when there is one.
    fn parse_chain<D: AsRef<[u8]>>(&self, chain: &[D]) -> Result<Vec<Arc<Certificate>>, ChainError> {
        if chain.is_empty() {
            return Err(ChainError::Empty);
        }
        if chain.len() > DEFAULT_MAX_CHAIN_LEN {
            return Err(ChainError::TooLong { len: chain.len(), max: DEFAULT_MAX_CHAIN_LEN });
        }
        chain
            .iter()
            .enumerate()
            .map(|(index, der)| self.certificate(der.as_ref()).map_err(|error| ChainError::Malformed { index, error }))
            .collect()
    }

    /// Validates a DER chain, leaf first (the anchor may be included or left out), for
    /// `usage` at time `at`.
    pub fn validate<D: AsRef<[u8]>>(
        &self,
        chain: &[D],
        at: OffsetDateTime,
        usage: Profile,
    ) -> Result<VerifiedChain, ChainError> {
        let certs = self.parse_chain(chain)?;
        self.validate_parsed(&certs, at, usage)
    }

    /// Validates an already parsed chain, leaf first (owned certificates, or shared ones as
    /// the cache gives them).
    pub fn validate_parsed<C: Borrow<Certificate>>(
        &self,
        chain: &[C],
        at: OffsetDateTime,
        usage: Profile,
    ) -> Result<VerifiedChain, ChainError> {
        let walked = self.walk(chain, usage, Some(at))?;
        let leaf: &Certificate = walked.body[0].borrow();
        let mut path: Vec<CertSummary> = walked.body.iter().map(|c| CertSummary::of(c.borrow())).collect();
        path.push(CertSummary::of(walked.anchor));
        Ok(VerifiedChain {
            // Checked in the walk: every certificate below the anchor has a code.
            agency: leaf.agency.ok_or_else(|| ChainError::MissingAgencyCode { cert: leaf.id() })?,
            profile: usage,
            leaf: leaf.clone(),
            path,
            revocation: walked.revocation,
        })
    }

    /// Checks a chain link by link from the anchor down. With `at`, validity and revocation
    /// are checked at that time, in their place among the rules (what [`Validator::validate`]
    /// does); without it, only the rules that do not depend on time are (what
    /// [`Validator::examine`] does, leaving time to the caller's proof-of-existence rules).
    fn walk<'s, 'c, C: Borrow<Certificate>>(
        &'s self,
        chain: &'c [C],
        usage: Profile,
        at: Option<OffsetDateTime>,
    ) -> Result<Walked<'s, 'c, C>, ChainError> {
        let Some(top) = chain.last().map(Borrow::borrow) else { return Err(ChainError::Empty) };
        if chain.len() > DEFAULT_MAX_CHAIN_LEN {
            return Err(ChainError::TooLong { len: chain.len(), max: DEFAULT_MAX_CHAIN_LEN });
        }
        // The anchor is either the top of the chain itself or the issuer of the top.
        // `top_signed`: the top's signature was already checked against the anchor's key while
        // finding the anchor, so the loop below does not check it again.
        let (anchor, body, top_signed) = match self.anchors.iter().find(|a| a.fingerprint() == top.fingerprint()) {
            Some(anchor) => (anchor, &chain[..chain.len() - 1], false),
            None => {
                // A refused algorithm on the top certificate is named as such, not hidden
                // behind "unknown anchor".
                if let Err(name) = &top.signature_algorithm {
                    return Err(ChainError::WeakAlgorithm { cert: top.id(), algorithm: name.clone() });
                }
                // Same name is not enough: the anchor's key must have made the signature.
                let anchor = self
                    .anchors
                    .iter()
                    .filter(|a| a.subject_raw == top.issuer_raw)
                    .find(|a| a.public_key.as_ref().is_ok_and(|k| self.verify_link(k, top)))
                    .ok_or_else(|| ChainError::UnknownAnchor { cert: top.id(), issuer: top.issuer.clone() })?;
                (anchor, chain, true)
            }
        };
        if body.is_empty() {
            return Err(ChainError::OnlyAnchor(anchor.id()));
        }

        // The anchor is trusted by configuration, but it still has to be a CA in date, with an
        // acceptable key, and its path length counts.
        if let Some(at) = at {
            check_time(anchor, at)?;
        }
        anchor.check_usage(Profile::Ca).map_err(|problem| ChainError::WrongUsage {
            cert: anchor.id(),
            wanted: Profile::Ca,
            problem,
        })?;
        check_path_len(anchor, body.len() - 1)?;

        let mut issuer = anchor;
        let mut scope = anchor.agency.map_or(Scope::National, Scope::Agency);
        let mut revocation = Vec::with_capacity(body.len());
        for (from_leaf, cert) in body.iter().enumerate().rev() {
            let cert: &Certificate = cert.borrow();
            if cert.issuer_raw != issuer.subject_raw {
                return Err(ChainError::IssuerMismatch {
                    cert: cert.id(),
                    issuer_named: cert.issuer.clone(),
                    next: issuer.id(),
                });
            }
            let algorithm = cert
                .signature_algorithm
                .as_ref()
                .map_err(|name| ChainError::WeakAlgorithm { cert: cert.id(), algorithm: name.clone() })?;
            let issuer_key = issuer
                .public_key
                .as_ref()
                .map_err(|problem| ChainError::WeakKey { cert: issuer.id(), problem: problem.clone() })?;
            let checked_already = top_signed && from_leaf == body.len() - 1;
            if !checked_already
                && !self.verify_cached(issuer_key, &cert.fingerprint(), || {
                    algorithm.verify(issuer_key, cert.tbs(), cert.signature())
                })
            {
                return Err(ChainError::BadSignature { cert: cert.id(), issuer: issuer.id() });
            }
            if let Err(problem) = &cert.public_key {
                return Err(ChainError::WeakKey { cert: cert.id(), problem: problem.clone() });
            }
            if let Some(at) = at {
                check_time(cert, at)?;
            }
            if let Some(oid) = cert.unknown_critical.first() {
                return Err(ChainError::UnknownCriticalExtension { cert: cert.id(), oid: oid.clone() });
            }
            let code = cert.agency.ok_or_else(|| ChainError::MissingAgencyCode { cert: cert.id() })?;
            if !scope.contains(&code) {
                return Err(ChainError::Hierarchy { cert: cert.id(), code, issuer_scope: scope });
            }
            let wanted = if from_leaf == 0 { usage } else { Profile::Ca };
            cert.check_usage(wanted).map_err(|problem| ChainError::WrongUsage { cert: cert.id(), wanted, problem })?;
            if from_leaf > 0 {
                check_path_len(cert, from_leaf - 1)?;
                scope = Scope::Agency(code);
            }
            if let Some(at) = at {
                revocation.push(self.revocation_status(cert, issuer, at)?);
            }
            issuer = cert;
        }
        revocation.reverse();
        Ok(Walked { anchor, body, revocation })
    }

    fn verify_link(&self, issuer_key: &crate::algorithm::PublicKey, cert: &Certificate) -> bool {
        let Ok(algorithm) = cert.signature_algorithm.as_ref() else { return false };
        self.verify_cached(issuer_key, &cert.fingerprint(), || {
            algorithm.verify(issuer_key, cert.tbs(), cert.signature())
        })
    }

    fn verify_cached(
        &self,
        issuer_key: &crate::algorithm::PublicKey,
        object: &[u8; 32],
        verify: impl FnOnce() -> bool,
    ) -> bool {
        let Some(cache) = &self.cache else { return verify() };
        let key = SignatureCache::key(&issuer_key.spki_der, object);
        if cache.contains(&key) {
            return true;
        }
        let ok = verify();
        if ok {
            cache.insert(key);
        }
        ok
    }

    /// Whether `issuer` (a CA allowed to sign CRLs) signed `crl`, and if not why: the check
    /// validation makes on every CRL it uses, and a node makes before keeping a CRL that
    /// reached it from a neighbour.
    pub fn crl_signed_by(&self, crl: &Crl, issuer: &Certificate) -> Result<(), String> {
        if issuer.subject_raw != crl.issuer_raw {
            return Err("issued by another CA".to_owned());
        }
        if issuer.key_usage_present && !issuer.key_usage.crl_sign {
            return Err("the CA's keyUsage lacks cRLSign".to_owned());
        }
        let key = issuer.public_key.as_ref().map_err(ToString::to_string)?;
        let alg = crl.signature_algorithm.as_ref().map_err(|name| format!("refused algorithm {name}"))?;
        if self.verify_cached(key, &crl.fingerprint(), || alg.verify(key, crl.tbs(), crl.signature())) {
            Ok(())
        } else {
            Err("bad signature".to_owned())
        }
    }

    /// The newest CRL from `issuer` that is validly signed by it.
    fn issuer_crl<'a>(&'a self, issuer: &'a Certificate) -> Result<Option<&'a Crl>, ChainError> {
        let mut candidates = self.crls.by_issuer(&issuer.subject_raw).peekable();
        if candidates.peek().is_none() {
            return Ok(None);
        }
        let mut last_problem = String::new();
        for crl in candidates {
            match self.crl_signed_by(crl, issuer) {
                Ok(()) => return Ok(Some(crl)),
                Err(problem) => last_problem = problem,
            }
        }
        Err(ChainError::CrlInvalid { issuer: issuer.id(), reason: last_problem })
    }

    fn revocation_status(
        &self,
        cert: &Certificate,
        issuer: &Certificate,
        at: OffsetDateTime,
    ) -> Result<RevocationStatus, ChainError> {
        let Some(crl) = self.issuer_crl(issuer)? else {
            return match self.mode {
                RevocationMode::Required => Err(ChainError::RevocationUnknown { cert: cert.id(), issuer: issuer.id() }),
                RevocationMode::BestEffort => Ok(RevocationStatus::NotChecked),
            };
        };
        if let Some(entry) = crl.lookup(&cert.serial) {
            if entry.at <= at {
                return Err(ChainError::Revoked { cert: cert.id(), revoked_at: entry.at, reason: entry.reason });
            }
            return Ok(RevocationStatus::RevokedLater { revoked_at: entry.at, reason: entry.reason });
        }
        if crl.next_update < at {
            return match self.mode {
                RevocationMode::Required => {
                    Err(ChainError::StaleCrl { cert: cert.id(), issuer: issuer.id(), next_update: crl.next_update, at })
                }
                RevocationMode::BestEffort => {
                    Ok(RevocationStatus::Stale { crl_this_update: crl.this_update, crl_next_update: crl.next_update })
                }
            };
        }
        Ok(RevocationStatus::Good { crl_this_update: crl.this_update, crl_next_update: crl.next_update })
    }
}

/// Why `cert` is not a root that can stand as a trust anchor on its own: an anchor must be a
/// CA certificate that is self-issued and signed by its own key. A CA certificate topping a
/// partial chain (a province CA, say) validates chains too — [`Validator`] accepts any anchor
/// it is given — but trusting it skips every check above it, so callers accept one only when
/// the user asks for a partial chain explicitly.
pub fn root_anchor_problem(cert: &Certificate) -> Option<String> {
    if let Err(problem) = cert.check_usage(Profile::Ca) {
        return Some(problem.to_string());
    }
    if !cert.is_self_issued() {
        return Some(format!("it is issued by {}, not by itself", cert.issuer));
    }
    let self_signed = match (&cert.public_key, &cert.signature_algorithm) {
        (Ok(key), Ok(algorithm)) => algorithm.verify(key, cert.tbs(), cert.signature()),
        _ => false,
    };
    (!self_signed).then(|| "its signature is not made by its own key".to_owned())
}

fn check_time(cert: &Certificate, at: OffsetDateTime) -> Result<(), ChainError> {
    if at < cert.not_before {
        return Err(ChainError::NotYetValid { cert: cert.id(), not_before: cert.not_before, at });
    }
    if at > cert.not_after {
        return Err(ChainError::Expired { cert: cert.id(), not_after: cert.not_after, at });
    }
    Ok(())
}

fn check_path_len(ca: &Certificate, below: usize) -> Result<(), ChainError> {
    if let Some(path_len) = ca.ca.and_then(|c| c.path_len)
        && below > path_len as usize
    {
        return Err(ChainError::PathLength { cert: ca.id(), path_len, below });
    }
    Ok(())
}

impl fmt::Display for VerifiedChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} certificate of {} ({})", self.profile, self.agency, self.leaf.id())
    }
}

pub mod cache;
mod examine;

pub use cache::{
    CacheLimits, DEFAULT_CACHE_CAPACITY, DEFAULT_CERTIFICATE_CACHE_BYTES, DEFAULT_CERTIFICATE_CACHE_CAPACITY,
    DEFAULT_CRL_CACHE_BYTES, DEFAULT_CRL_CACHE_CAPACITY, ParsedCache, SignatureCache,
};
pub use examine::{CrlFacts, ExaminedChain, RefusedCrl, RevocationEvidence};

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;
