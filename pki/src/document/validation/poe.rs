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
//! A checkpoint of a witnessed transparency log is the other kind: an inclusion proof of the
//! envelope into a node's log (`crate::tlog::LogProof`, given beside the bundle), whose
//! checkpoint a witness co-signed at its time. It counts when it verifies and the witness is
//! an agency other than the signers ([`PoeEvidence::LogCheckpoint`]). The rules in
//! [`super::signature`] only look at [`Poe::time`].

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
    /// An entry about the envelope in an agency node's transparency log, proven into a
    /// checkpoint that the attesting agency co-signed as witness.
    LogCheckpoint {
        /// The 1-based position among the log proofs given.
        index: usize,
        /// The log (`lienthong.gov.vn/log/<agency>`).
        log: String,
        /// The entry's leaf index.
        leaf: u64,
        /// The checkpoint's size.
        tree_size: u64,
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
            PoeEvidence::LogCheckpoint { index, log, leaf, tree_size } => {
                return write!(
                    f,
                    "log proof #{index}: entry {leaf} of {log} (checkpoint of {tree_size}) co-signed by {} [{}] at {}",
                    self.by_name,
                    self.by,
                    crate::format_utc(self.time)
                );
            }
        }
        write!(f, " sealed by {} [{}] at {}", self.by_name, self.by, crate::format_utc(self.time))
    }
}

/// The earliest of `proofs`: what sets the best signature time.
pub fn earliest(proofs: &[Poe]) -> Option<&Poe> {
    proofs.iter().min_by_key(|p| p.time)
}

/// Reads and verifies one log proof (`crate::tlog::LogProof`, encoded) for the envelope of
/// digest `envelope`: the proof of existence it gives is the earliest cosignature by a witness
/// other than `signers`; `Ok(None)` when every witness is a signer's own agency.
pub(crate) fn from_log_proof(
    index: usize,
    bytes: &[u8],
    envelope: &[u8; 32],
    signers: &[AgencyCode],
    validator: &crate::validate::Validator,
    at: OffsetDateTime,
) -> Result<Option<Poe>, crate::tlog::LogProofError> {
    let evidence = crate::tlog::LogProof::from_bytes(bytes)?.verify(envelope, validator, at)?;
    let Some(witness) = evidence.witnesses.iter().find(|w| !signers.contains(&w.agency)) else { return Ok(None) };
    let leaf = &witness.chain.leaf;
    Ok(Some(Poe {
        time: witness.at,
        by: witness.agency,
        by_name: crate::document::verify::nfc(leaf.common_name.as_deref().unwrap_or(&leaf.subject)),
        evidence: PoeEvidence::LogCheckpoint {
            index,
            log: evidence.origin.to_string(),
            leaf: evidence.index,
            tree_size: evidence.tree_size,
        },
    }))
}
