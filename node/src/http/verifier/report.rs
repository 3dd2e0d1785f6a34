//! What the verifier page shows: the indication (PASSED, INDETERMINATE, FAILED, the names of
//! ETSI EN 319 102-1 that the verification issue adopts), its sub-indication and reasons, and
//! the provenance when the document verified.
//!
//! **Adapter:** today's `pki::document::verify::verify_bundle` returns a [`Provenance`] or the
//! first [`DocumentError`]; [`judge`] is the one function that maps that result onto the
//! indications (the same mapping as the coming validation report: a proven failure of format,
//! hash, signature or of a certificate at the claimed signing time is FAILED; what a fresher
//! CRL or a known root might change is INDETERMINATE). When `pki` returns the full validation
//! report, only [`judge`] changes.

use pki::document::bundle::BundleError;
use pki::document::verify::{DocumentError, Provenance};
use pki::validate::ChainError;

/// The main indication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Indication {
    /// Every check passed.
    Passed,
    /// The information at hand cannot decide.
    Indeterminate,
    /// Proven not to be what it claims.
    Failed,
}

impl Indication {
    /// As ETSI writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Indication::Passed => "PASSED",
            Indication::Indeterminate => "INDETERMINATE",
            Indication::Failed => "FAILED",
        }
    }

    /// The CSS class of its banner.
    pub(crate) fn class(self) -> &'static str {
        match self {
            Indication::Passed => "passed",
            Indication::Indeterminate => "indeterminate",
            Indication::Failed => "failed",
        }
    }
}

/// The verdict on an uploaded bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Verdict {
    /// PASSED, INDETERMINATE or FAILED.
    pub(crate) indication: Indication,
    /// Why not PASSED (ETSI sub-indication).
    pub(crate) sub_indication: Option<&'static str>,
    /// A short stable name of the failure (as `lienthong verify --json` gives it).
    pub(crate) kind: Option<&'static str>,
    /// The reasons, as sentences.
    pub(crate) reasons: Vec<String>,
    /// The provenance, when the document verified.
    pub(crate) provenance: Option<Provenance>,
}

fn failed(sub: &'static str) -> (Indication, &'static str) {
    (Indication::Failed, sub)
}

fn indeterminate(sub: &'static str) -> (Indication, &'static str) {
    (Indication::Indeterminate, sub)
}

/// The indication and sub-indication of a chain rule broken at the claimed signing time.
fn of_chain(error: &ChainError) -> (Indication, &'static str) {
    match error {
        ChainError::Revoked { .. } => failed("REVOKED"),
        ChainError::Expired { .. } => failed("EXPIRED"),
        ChainError::NotYetValid { .. } => failed("NOT_YET_VALID"),
        ChainError::Empty => indeterminate("NO_SIGNING_CERTIFICATE_FOUND"),
        ChainError::Malformed { .. } => indeterminate("CERTIFICATE_CHAIN_GENERAL_FAILURE"),
        ChainError::UnknownAnchor { .. } | ChainError::IssuerMismatch { .. } | ChainError::BadSignature { .. } => {
            indeterminate("NO_CERTIFICATE_CHAIN_FOUND")
        }
        ChainError::WeakKey { .. } | ChainError::WeakAlgorithm { .. } => indeterminate("CRYPTO_CONSTRAINTS_FAILURE"),
        ChainError::RevocationUnknown { .. } | ChainError::StaleCrl { .. } | ChainError::CrlInvalid { .. } => {
            indeterminate("TRY_LATER")
        }
        _ => indeterminate("CHAIN_CONSTRAINTS_FAILURE"),
    }
}

/// The adapter: today's verification result as a verdict.
pub(crate) fn judge(result: Result<Provenance, DocumentError>) -> Verdict {
    let error = match result {
        Ok(provenance) => {
            return Verdict {
                indication: Indication::Passed,
                sub_indication: None,
                kind: None,
                reasons: Vec::new(),
                provenance: Some(provenance),
            };
        }
        Err(e) => e,
    };
    let (indication, sub) = match &error {
        DocumentError::Bundle(
            BundleError::AttachmentHash(_)
            | BundleError::AttachmentSize { .. }
            | BundleError::AttachmentTooLong { .. }
            | BundleError::Checksum(_),
        ) => failed("HASH_FAILURE"),
        DocumentError::Bundle(BundleError::MissingAttachment(_)) => indeterminate("SIGNED_DATA_NOT_FOUND"),
        DocumentError::Bundle(_) | DocumentError::Envelope(_) | DocumentError::Manifest(_) => failed("FORMAT_FAILURE"),
        DocumentError::Receipt { .. } => failed("FORMAT_FAILURE"),
        DocumentError::BadSignature { .. } => failed("SIG_CRYPTO_FAILURE"),
        DocumentError::SealDoesNotCover => failed("HASH_FAILURE"),
        DocumentError::Chain { error, .. } => of_chain(error),
        _ => indeterminate("SIG_CONSTRAINTS_FAILURE"),
    };
    Verdict {
        indication,
        sub_indication: Some(sub),
        kind: Some(error.kind()),
        reasons: vec![error.to_string()],
        provenance: None,
    }
}

impl Verdict {
    /// The JSON answer: the indication, then what `lienthong verify --json` prints
    /// (`verified`, and the report or the failure's kind and reason).
    pub(crate) fn to_json(&self, upload: &super::Upload) -> serde_json::Value {
        let mut out = serde_json::json!({
            "indication": self.indication,
            "sub_indication": self.sub_indication,
            "verified": self.indication == Indication::Passed,
            "upload": { "name": upload.name, "bytes": upload.bytes, "sha256": upload.sha256, "kept_as": upload.kept_as },
        });
        match &self.provenance {
            Some(p) => out["report"] = serde_json::to_value(p).unwrap_or(serde_json::Value::Null),
            None => {
                out["kind"] = serde_json::json!(self.kind);
                out["reason"] = serde_json::json!(self.reasons.first());
                out["reasons"] = serde_json::json!(self.reasons);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proven_failures_fail_and_open_questions_are_indeterminate() {
        let v = judge(Err(DocumentError::Bundle(BundleError::AttachmentHash("a.pdf".into()))));
        assert_eq!(
            (v.indication, v.sub_indication, v.kind),
            (Indication::Failed, Some("HASH_FAILURE"), Some("attachment"))
        );
        let v = judge(Err(DocumentError::Bundle(BundleError::MissingAttachment("a.pdf".into()))));
        assert_eq!((v.indication, v.sub_indication), (Indication::Indeterminate, Some("SIGNED_DATA_NOT_FOUND")));
        let v = judge(Err(DocumentError::BadSignature { index: 2, role: pki::document::verify::Role::Seal }));
        assert_eq!((v.indication, v.sub_indication), (Indication::Failed, Some("SIG_CRYPTO_FAILURE")));
        assert!(v.reasons[0].contains("agency seal"), "{:?}", v.reasons);
        let v = judge(Err(DocumentError::Signatures("the document is not signed")));
        assert_eq!((v.indication, v.sub_indication), (Indication::Indeterminate, Some("SIG_CONSTRAINTS_FAILURE")));
        assert!(v.provenance.is_none());
    }
}
