//! The validation report: indications and sub-indications in the shape of ETSI EN 319 102-1
//! (what EU DSS reports), for every signature, attachment and receipt, and for the document.
//!
//! ETSI Table 6 ties each sub-indication to one main indication, so a [`Reason`] carries a
//! sub-indication and the indication follows from it: a signature is FAILED only when the
//! format or cryptography fails or it is *proven* that a certificate was invalid (revoked,
//! expired, not yet valid) when the signature was made; INDETERMINATE when the information at
//! hand cannot decide (no proof of existence before a revocation, no fresh enough CRL, a
//! chain that does not lead to the trusted root, a policy constraint not met); PASSED otherwise.

use std::fmt;

use time::OffsetDateTime;

use super::poe::Poe;
use crate::agency::AgencyCode;
use crate::cert::CertId;
use crate::crl::RevocationReason;
use crate::document::manifest::{Attachment, Manifest};
use crate::document::receipt::Receipt;
use crate::document::verify::Role;
use crate::validate::{CertSummary, ChainError};

/// The main status indication (ETSI EN 319 102-1 clause 5.1.3). Ordered from best to worst,
/// so the worst of several is their maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Indication {
    /// Every check passed.
    Passed,
    /// The available information cannot decide between PASSED and FAILED.
    Indeterminate,
    /// The format or the cryptography failed, or a certificate is proven invalid at the time
    /// the signature was made.
    Failed,
}

impl Indication {
    /// The name as ETSI and DSS write it.
    pub fn name(self) -> &'static str {
        match self {
            Indication::Passed => "PASSED",
            Indication::Indeterminate => "INDETERMINATE",
            Indication::Failed => "FAILED",
        }
    }
}

impl fmt::Display for Indication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The sub-indications lienthong emits (ETSI EN 319 102-1 Table 6); each belongs to one
/// [`Indication`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum SubIndication {
    /// FAILED: the container, envelope, manifest or a receipt is not in the format.
    FormatFailure,
    /// FAILED: a signed hash does not match its data (an attachment, or the official's
    /// signature the seal covers).
    HashFailure,
    /// FAILED: a signature value does not verify with the signer's key.
    SigCryptoFailure,
    /// FAILED: a certificate was revoked, and the signer's own claimed signing time is at or
    /// after the revocation.
    Revoked,
    /// FAILED: the signature is placed (by its claimed time) after a certificate's notAfter.
    Expired,
    /// FAILED: the signature is placed (by its claimed time or a proof of existence) before
    /// a certificate's notBefore.
    NotYetValid,
    /// INDETERMINATE: a signed attribute does not meet the validation constraints (the
    /// seal's agency, the official's agency, name or position, the order of signing times).
    SigConstraintsFailure,
    /// INDETERMINATE: the chain breaks a constraint (hierarchy, profile, key usage, path
    /// length, unknown critical extension).
    ChainConstraintsFailure,
    /// INDETERMINATE: a certificate of the chain is unreadable.
    CertificateChainGeneralFailure,
    /// INDETERMINATE: a key or algorithm below the accepted level.
    CryptoConstraintsFailure,
    /// INDETERMINATE: the signing certificate is absent or unreadable.
    NoSigningCertificateFound,
    /// INDETERMINATE: the chain does not lead to a trusted national root.
    NoCertificateChainFound,
    /// INDETERMINATE: the signing certificate is revoked and nothing independent proves the
    /// signature existed before the revocation.
    RevokedNoPoe,
    /// INDETERMINATE: a CA certificate of the chain is revoked and nothing independent
    /// proves the signature existed before the revocation.
    RevokedCaNoPoe,
    /// INDETERMINATE: a certificate is outside its validity at the best signature time and
    /// nothing proves the signature existed while it was valid.
    OutOfBoundsNoPoe,
    /// INDETERMINATE: revocation cannot be established with the CRLs at hand; a fresher CRL
    /// may decide.
    TryLater,
    /// INDETERMINATE: signed data (an attachment) is missing.
    SignedDataNotFound,
}

impl SubIndication {
    /// The main indication this sub-indication belongs to (ETSI EN 319 102-1 Table 6).
    pub fn indication(self) -> Indication {
        match self {
            SubIndication::FormatFailure
            | SubIndication::HashFailure
            | SubIndication::SigCryptoFailure
            | SubIndication::Revoked
            | SubIndication::Expired
            | SubIndication::NotYetValid => Indication::Failed,
            _ => Indication::Indeterminate,
        }
    }

    /// The name as ETSI and DSS write it.
    pub fn name(self) -> &'static str {
        match self {
            SubIndication::FormatFailure => "FORMAT_FAILURE",
            SubIndication::HashFailure => "HASH_FAILURE",
            SubIndication::SigCryptoFailure => "SIG_CRYPTO_FAILURE",
            SubIndication::Revoked => "REVOKED",
            SubIndication::Expired => "EXPIRED",
            SubIndication::NotYetValid => "NOT_YET_VALID",
            SubIndication::SigConstraintsFailure => "SIG_CONSTRAINTS_FAILURE",
            SubIndication::ChainConstraintsFailure => "CHAIN_CONSTRAINTS_FAILURE",
            SubIndication::CertificateChainGeneralFailure => "CERTIFICATE_CHAIN_GENERAL_FAILURE",
            SubIndication::CryptoConstraintsFailure => "CRYPTO_CONSTRAINTS_FAILURE",
            SubIndication::NoSigningCertificateFound => "NO_SIGNING_CERTIFICATE_FOUND",
            SubIndication::NoCertificateChainFound => "NO_CERTIFICATE_CHAIN_FOUND",
            SubIndication::RevokedNoPoe => "REVOKED_NO_POE",
            SubIndication::RevokedCaNoPoe => "REVOKED_CA_NO_POE",
            SubIndication::OutOfBoundsNoPoe => "OUT_OF_BOUNDS_NO_POE",
            SubIndication::TryLater => "TRY_LATER",
            SubIndication::SignedDataNotFound => "SIGNED_DATA_NOT_FOUND",
        }
    }

    /// The sub-indication of a chain rule broken. Rules about time (validity, revocation)
    /// only arise when a chain is validated at a fixed time (a node at arrival); the
    /// document model judges time itself.
    pub fn of_chain_error(error: &ChainError) -> SubIndication {
        match error {
            ChainError::Empty | ChainError::Malformed { index: 0, .. } => SubIndication::NoSigningCertificateFound,
            ChainError::Malformed { .. } => SubIndication::CertificateChainGeneralFailure,
            ChainError::UnknownAnchor { .. } | ChainError::IssuerMismatch { .. } | ChainError::BadSignature { .. } => {
                SubIndication::NoCertificateChainFound
            }
            ChainError::WeakKey { .. } | ChainError::WeakAlgorithm { .. } => SubIndication::CryptoConstraintsFailure,
            ChainError::Expired { .. } => SubIndication::OutOfBoundsNoPoe,
            ChainError::NotYetValid { .. } => SubIndication::OutOfBoundsNoPoe,
            ChainError::Revoked { .. } => SubIndication::RevokedNoPoe,
            ChainError::RevocationUnknown { .. } | ChainError::StaleCrl { .. } | ChainError::CrlInvalid { .. } => {
                SubIndication::TryLater
            }
            _ => SubIndication::ChainConstraintsFailure,
        }
    }
}

impl fmt::Display for SubIndication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a part is not PASSED: the sub-indication, the rule, the certificate (when one is at
/// fault) and a sentence a verifier can act on.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reason {
    /// FAILED or INDETERMINATE, from the sub-indication.
    pub indication: Indication,
    /// The sub-indication.
    pub sub_indication: SubIndication,
    /// A short stable name of the rule, for scripts (`revoked_no_poe`, `stale_crl`, …).
    pub rule: &'static str,
    /// The certificate concerned, if any.
    pub certificate: Option<CertId>,
    /// What is wrong.
    pub message: String,
    /// What a verifier can do about it, when something can be done (a fresher CRL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<&'static str>,
    /// The rule-level chain error, when a chain rule is what failed.
    #[serde(skip)]
    pub chain_error: Option<ChainError>,
}

impl Reason {
    /// A reason with no certificate attached.
    pub fn new(sub_indication: SubIndication, rule: &'static str, message: impl Into<String>) -> Reason {
        Reason {
            indication: sub_indication.indication(),
            sub_indication,
            rule,
            certificate: None,
            message: message.into(),
            remedy: None,
            chain_error: None,
        }
    }

    /// A reason about `cert`.
    pub fn about(
        sub_indication: SubIndication,
        rule: &'static str,
        cert: CertId,
        message: impl Into<String>,
    ) -> Reason {
        Reason { certificate: Some(cert), ..Reason::new(sub_indication, rule, message) }
    }

    /// The reason for a chain rule broken, keeping the typed error.
    pub fn chain(error: ChainError) -> Reason {
        let certificate = chain_error_cert(&error);
        Reason {
            certificate,
            chain_error: Some(error.clone()),
            ..Reason::new(SubIndication::of_chain_error(&error), error.rule(), error.to_string())
        }
    }

    /// The same reason, its message prefixed with where it was found (for the document's
    /// total).
    pub fn located(&self, place: &str) -> Reason {
        Reason { message: format!("{place}: {}", self.message), ..self.clone() }
    }

    /// How decisive a reason is, for choosing the one a conclusion leads with: a proven
    /// failure first, then what no fresher CRL will change, then what one may.
    fn rank(&self) -> u8 {
        match (self.indication, self.sub_indication) {
            (Indication::Failed, _) => 0,
            (_, SubIndication::TryLater) => 2,
            _ => 1,
        }
    }
}

fn chain_error_cert(error: &ChainError) -> Option<CertId> {
    match error {
        ChainError::OnlyAnchor(cert) => Some(cert.clone()),
        ChainError::UnknownAnchor { cert, .. }
        | ChainError::IssuerMismatch { cert, .. }
        | ChainError::BadSignature { cert, .. }
        | ChainError::Expired { cert, .. }
        | ChainError::NotYetValid { cert, .. }
        | ChainError::Revoked { cert, .. }
        | ChainError::WrongUsage { cert, .. }
        | ChainError::PathLength { cert, .. }
        | ChainError::Hierarchy { cert, .. }
        | ChainError::MissingAgencyCode { cert }
        | ChainError::WeakKey { cert, .. }
        | ChainError::WeakAlgorithm { cert, .. }
        | ChainError::UnknownCriticalExtension { cert, .. }
        | ChainError::RevocationUnknown { cert, .. }
        | ChainError::StaleCrl { cert, .. } => Some(cert.clone()),
        ChainError::CrlInvalid { issuer, .. } => Some(issuer.clone()),
        _ => None,
    }
}

/// The verdict on one part: its indication, the leading sub-indication and every reason.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Conclusion {
    /// PASSED, INDETERMINATE or FAILED.
    pub indication: Indication,
    /// The sub-indication of the leading reason (none when PASSED).
    pub sub_indication: Option<SubIndication>,
    /// Every reason found, in the order checked.
    pub reasons: Vec<Reason>,
}

impl Conclusion {
    /// PASSED.
    pub fn passed() -> Conclusion {
        Conclusion { indication: Indication::Passed, sub_indication: None, reasons: Vec::new() }
    }

    /// The conclusion these reasons lead to: PASSED when there are none; otherwise the worst
    /// indication, led by the most decisive reason (the first of its rank).
    pub fn from_reasons(reasons: Vec<Reason>) -> Conclusion {
        let indication = reasons.iter().map(|r| r.indication).max().unwrap_or(Indication::Passed);
        let sub_indication = reasons.iter().min_by_key(|r| r.rank()).map(|r| r.sub_indication);
        Conclusion { indication, sub_indication, reasons }
    }

    /// The reason the conclusion leads with.
    pub fn leading(&self) -> Option<&Reason> {
        self.reasons.iter().min_by_key(|r| r.rank())
    }

    /// True when PASSED.
    pub fn is_passed(&self) -> bool {
        self.indication == Indication::Passed
    }
}

/// What the CRLs said about one certificate of a signer's chain, as judged at the best
/// signature time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RevocationFinding {
    /// The trust anchor: trusted by configuration, no CRL speaks for it.
    Anchor,
    /// Not revoked, according to a CRL recent enough for the best signature time.
    Good {
        /// When that CRL was issued.
        #[serde(with = "time::serde::rfc3339")]
        crl_this_update: OffsetDateTime,
        /// When the next was due.
        #[serde(with = "time::serde::rfc3339")]
        crl_next_update: OffsetDateTime,
    },
    /// Revoked after the best signature time (the proof of existence, or the validation
    /// time): the signature stands.
    RevokedLater {
        /// When it was revoked.
        #[serde(with = "time::serde::rfc3339")]
        revoked_at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// Revoked, and nothing proves the signature existed before (see the reasons).
    Revoked {
        /// When it was revoked.
        #[serde(with = "time::serde::rfc3339")]
        revoked_at: OffsetDateTime,
        /// Why.
        reason: RevocationReason,
    },
    /// No CRL recent enough for the best signature time (see the reasons).
    Unknown {
        /// When the newest CRL at hand was issued, if there is one.
        #[serde(with = "time::serde::rfc3339::option")]
        newest_crl: Option<OffsetDateTime>,
    },
    /// Not examined: the chain failed a rule first.
    NotExamined,
}

/// A certificate of a signer's chain in the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertificateReport {
    /// Names, serial, agency, validity, fingerprint.
    #[serde(flatten)]
    pub summary: CertSummary,
    /// What the CRLs said about it.
    pub revocation: RevocationFinding,
}

/// One signature of the document.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignatureReport {
    /// 1-based position in the envelope.
    pub index: usize,
    /// Official or seal.
    pub role: Role,
    /// The person's or agency's name (from the certificate, NFC).
    pub name: Option<String>,
    /// The person's position (from the certificate, NFC).
    pub position: Option<String>,
    /// The agency the certificate is for.
    pub agency: Option<AgencyCode>,
    /// The signing time the signature claims (CWT `iat`): the signer's word, not a proof.
    #[serde(with = "time::serde::rfc3339")]
    pub claimed_signing_time: OffsetDateTime,
    /// The time the certificates were judged at: the earliest independent proof of existence,
    /// or the validation time when there is none.
    #[serde(with = "time::serde::rfc3339")]
    pub best_signature_time: OffsetDateTime,
    /// The proof of existence that sets the best signature time, if any.
    pub proof_of_existence: Option<Poe>,
    /// The COSE algorithm.
    pub algorithm: &'static str,
    /// The chain from the signer up to the national root.
    pub chain: Vec<CertificateReport>,
    /// The verdict.
    #[serde(flatten)]
    pub conclusion: Conclusion,
    /// Plain statements a verifier should read (e.g. that no independent proof of time
    /// exists).
    pub notes: Vec<String>,
}

/// An attachment, checked against the manifest.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AttachmentReport {
    /// What the manifest says (name, media type, size, SHA-256).
    #[serde(flatten)]
    pub attachment: Attachment,
    /// True when the bytes were read and matched.
    pub verified: bool,
    /// The verdict.
    #[serde(flatten)]
    pub conclusion: Conclusion,
}

/// A receipt carried in the bundle.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReceiptReport {
    /// 1-based position in the bundle.
    pub index: usize,
    /// What it says, when it could be read.
    pub receipt: Option<Receipt>,
    /// The sealing agency's name, from its certificate.
    pub signer: Option<String>,
    /// True when it is another agency's than the document's signers.
    pub independent: bool,
    /// True when it is accepted as proof that the document existed at its time.
    pub proof_of_existence: bool,
    /// The verdict on the receipt itself.
    #[serde(flatten)]
    pub conclusion: Conclusion,
}

/// A CRL that was at hand.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CrlReport {
    /// Its issuer.
    pub issuer: String,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub this_update: OffsetDateTime,
    /// When the next was due.
    #[serde(with = "time::serde::rfc3339")]
    pub next_update: OffsetDateTime,
}

/// The whole report on a document: the total indication, then every part.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ValidationReport {
    /// The total: the worst of the container, the envelope, the signatures, the attachments
    /// and the receipts, led by the most decisive reason.
    #[serde(flatten)]
    pub total: Conclusion,
    /// The document identifier, when the envelope could be read.
    pub document_id: Option<String>,
    /// The manifest, when it could be read.
    pub manifest: Option<Manifest>,
    /// SHA-256 of the envelope, hex.
    pub envelope_sha256: Option<String>,
    /// The container and the envelope's structure (order of signatures, the seal covering
    /// the official's signature, signing times in order).
    pub document: Conclusion,
    /// The official's signature, then the seal's.
    pub signatures: Vec<SignatureReport>,
    /// The attachments.
    pub attachments: Vec<AttachmentReport>,
    /// The receipts carried, each judged.
    pub receipts: Vec<ReceiptReport>,
    /// The independent proofs of existence accepted, earliest first.
    pub proofs_of_existence: Vec<Poe>,
    /// The CRLs at hand (carried and given).
    pub crls: Vec<CrlReport>,
    /// When the validation ran.
    #[serde(with = "time::serde::rfc3339")]
    pub validation_time: OffsetDateTime,
}

impl ValidationReport {
    /// The total indication.
    pub fn indication(&self) -> Indication {
        self.total.indication
    }

    /// The total's leading sub-indication.
    pub fn sub_indication(&self) -> Option<SubIndication> {
        self.total.sub_indication
    }
}
