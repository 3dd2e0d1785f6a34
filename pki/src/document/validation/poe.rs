//! Proof of existence (POE): the earliest time someone other than the signer attests that a
//! signature existed.
//!
//! The signer's CWT `iat` is a claim: whoever holds a key can write any time into it, so a
//! stolen key revoked at T signs "at T − 2 s" as easily as at T + 1 h. What cannot be
//! backdated is another agency's signed statement that it saw the envelope: a hop receipt
//! (the next node took responsibility for the document) or a status (01 arrived, 03 accepted,
//! …), each a COSE_Sign1 over the envelope's SHA-256 sealed by that agency, carried in the
//! bundle. A receipt counts only once it is itself verified (see
//! [`super::receipts`]) and only when it is *independent*: sealed by an agency other than the
//! document's own signers.
//!
//! [`PoeEvidence`] is the plug-in point for other kinds of proof: a checkpoint of a witnessed
//! transparency log (issue 13) will be one more variant, verified offline and turned into a
//! [`Poe`] the same way; the rules in [`super::signature`] only look at [`Poe::time`].

use std::fmt;

use time::OffsetDateTime;

use crate::agency::AgencyCode;
use crate::document::receipt::ReceiptKind;

/// What a proof of existence is made of.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PoeEvidence {
    /// A signed receipt carried in the bundle, over the envelope's SHA-256.
    Receipt {
        /// Its 1-based position among the bundle's receipts.
        index: usize,
        /// Hop receipt or status.
        receipt: ReceiptKind,
    },
}

/// An independent party's verified statement that the document's envelope — and so both its
/// signatures — existed at `time`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Poe {
    /// The time attested.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The attesting agency (from its validated seal certificate).
    pub by: AgencyCode,
    /// Its name, from the certificate.
    pub by_name: String,
    /// What the proof is.
    pub evidence: PoeEvidence,
}

impl fmt::Display for Poe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.evidence {
            PoeEvidence::Receipt { index, receipt: ReceiptKind::Hop } => write!(f, "hop receipt #{index}")?,
            PoeEvidence::Receipt { index, receipt: ReceiptKind::Status(code) } => {
                write!(f, "status {code} receipt #{index}")?
            }
        }
        write!(f, " sealed by {} [{}] at {}", self.by_name, self.by, crate::format_utc(self.time))
    }
}

/// The earliest of `proofs`: what sets the best signature time.
pub fn earliest(proofs: &[Poe]) -> Option<&Poe> {
    proofs.iter().min_by_key(|p| p.time)
}
