//! The witness's side: the C2SP `tlog-witness` `add-checkpoint` request body, and the rule a
//! parent applies before it co-signs a child's checkpoint, as a pure function.
//!
//! The rule: the checkpoint is for the origin the witness keeps and signed by the log's seal;
//! the request's old size is not beyond the new size; a size below the last co-signed one
//! (a rollback) or a different root at the same size (a fork) is evidence at once, both
//! checkpoints being signed by the log; the request's old size must be the size last
//! co-signed (otherwise the log is told which size the witness has, as `tlog-witness`'s
//! 409); from the empty tree or at the same size no proof is needed; otherwise the
//! consistency proof must verify, and a log that cannot prove it is refused with the
//! evidence. [`ForkEvidence`] keeps both signed checkpoints and the proof, for the node to
//! store and raise.
//!
//! The caller holds the last co-signed checkpoint and must check and store the new one
//! atomically (the `tlog-witness` race: two requests checked against the same state).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::algorithm::PublicKey;

use super::checkpoint::{CheckpointError, LogOrigin, SignedCheckpoint, decode_hash, parse_decimal};
use super::proof::{ProofError, verify_consistency};
use super::{Hash, MAX_PROOF_HASHES};

/// Why a request body is not an `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddCheckpointError {
    /// The `old <size>` line.
    #[error("add-checkpoint: the first line must be \"old <size>\"")]
    OldLine,
    /// A proof line is not a base64 hash, or there are too many.
    #[error("add-checkpoint: proof line {line} is not a base64 SHA-256 hash, or more than {MAX_PROOF_HASHES} lines")]
    ProofLine {
        /// 1-based.
        line: usize,
    },
    /// No blank line before the checkpoint.
    #[error("add-checkpoint: no blank line before the checkpoint")]
    NoCheckpoint,
    /// The checkpoint.
    #[error("add-checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// An `add-checkpoint` request: the size the log believes the witness has, a consistency
/// proof from it, and the new signed checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the witness last co-signed, as the log believes.
    pub old_size: u64,
    /// Consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The new checkpoint, signed by the log.
    pub checkpoint: SignedCheckpoint,
}

impl AddCheckpoint {
    /// The request body: `old <size>`, one base64 hash per line, a blank line, the note.
    pub fn to_text(&self) -> String {
        let mut out = format!("old {}\n", self.old_size);
        for hash in &self.proof {
            out.push_str(&BASE64.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint.to_text());
        out
    }

    /// Reads a request body from untrusted bytes (the checkpoint within the note limits).
    pub fn parse(bytes: &[u8]) -> Result<Self, AddCheckpointError> {
        let (head, checkpoint) = split_head(bytes).ok_or(AddCheckpointError::NoCheckpoint)?;
        let head = std::str::from_utf8(head).map_err(|_| AddCheckpointError::OldLine)?;
        let mut lines = head.split('\n');
        let old_size = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(parse_decimal)
            .ok_or(AddCheckpointError::OldLine)?;
        let mut proof = Vec::new();
        for (i, line) in lines.enumerate() {
            if i >= MAX_PROOF_HASHES {
                return Err(AddCheckpointError::ProofLine { line: i + 1 });
            }
            proof.push(decode_hash(line).ok_or(AddCheckpointError::ProofLine { line: i + 1 })?);
        }
        let checkpoint = SignedCheckpoint::parse(checkpoint)?;
        Ok(AddCheckpoint { old_size, proof, checkpoint })
    }
}

/// Splits `head \n \n rest` at the first blank line: the head lines (without the final
/// newline) and what follows the blank line.
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    // The head is at most an `old` line and 64 hashes: bound the search.
    let limit = bytes.len().min(64 + MAX_PROOF_HASHES * 46);
    let pos = bytes[..limit].windows(2).position(|w| w == b"\n\n")?;
    Some((&bytes[..pos], &bytes[pos + 2..]))
}

/// Why two checkpoints of one log are evidence against it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForkReason {
    /// Two different roots for the same size: a fork, conclusive by itself.
    SameSizeDifferentRoot,
    /// A size below the one already co-signed: the log went back (restored from an old
    /// backup, or rewritten). Conclusive once the log appends past the old size again.
    Rollback,
    /// The log could not prove that the new checkpoint extends the co-signed one. A log that
    /// only appended can always produce the proof, so one that cannot has rewritten history.
    ProofFailed(ProofError),
}

/// Two signed checkpoints of one log that do not form an append-only history, with the
/// proof the log gave: what a parent stores and raises as an alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkEvidence {
    /// The checkpoint the witness co-signed before.
    pub witnessed: SignedCheckpoint,
    /// The one the log presents now.
    pub presented: SignedCheckpoint,
    /// The consistency proof it presented.
    pub proof: Vec<Hash>,
    /// What is wrong.
    pub reason: ForkReason,
}

/// Why a witness does not co-sign.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessRefusal {
    /// The checkpoint is for another log than the one the witness keeps for this child.
    #[error("the checkpoint is for {presented}, the witness keeps {expected}")]
    WrongOrigin {
        /// The origin the witness keeps.
        expected: LogOrigin,
        /// The checkpoint's.
        presented: LogOrigin,
    },
    /// Not signed by the log's seal, or altered.
    #[error("the checkpoint is not validly signed by the log: {0}")]
    LogSignature(CheckpointError),
    /// The old size is beyond the new checkpoint's size.
    #[error("old size {old} is beyond the checkpoint's size {new}")]
    OldSizeBeyondNew {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        new: u64,
    },
    /// The log's idea of the witness's state is wrong: retry from `witnessed`
    /// (`tlog-witness` answers 409 with this size).
    #[error("the witness last co-signed size {witnessed}, not {claimed}")]
    SizeMismatch {
        /// What the request says.
        claimed: u64,
        /// What the witness co-signed last (0 when never).
        witnessed: u64,
    },
    /// A proof was sent where none is needed (from the empty tree, or at the same size).
    #[error("a consistency proof from size {old} to {new} must be empty")]
    ProofNotEmpty {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// The checkpoint does not extend the one co-signed: fork, rollback or rewrite.
    #[error("the checkpoint does not extend the co-signed one ({:?})", .0.reason)]
    Inconsistent(Box<ForkEvidence>),
}

/// Whether a witness may co-sign `request`, given the last checkpoint it co-signed for this
/// log (`None` when it never did) and the log's seal key. `Ok(())`: co-sign it (for
/// instance with [`super::Cosignature::sign`]) and keep `request.checkpoint` as the new last
/// one; otherwise a typed refusal.
pub fn check_checkpoint(
    last: Option<&SignedCheckpoint>,
    request: &AddCheckpoint,
    log_key: &PublicKey,
) -> Result<(), WitnessRefusal> {
    let presented = &request.checkpoint;
    let new = presented.checkpoint();
    if let Some(last) = last
        && last.checkpoint().origin != new.origin
    {
        return Err(WitnessRefusal::WrongOrigin { expected: last.checkpoint().origin, presented: new.origin });
    }
    presented.verify(log_key).map_err(WitnessRefusal::LogSignature)?;
    if request.old_size > new.size {
        return Err(WitnessRefusal::OldSizeBeyondNew { old: request.old_size, new: new.size });
    }
    let Some(last) = last else {
        // Never co-signed: trust on first use, from the empty tree.
        if request.old_size != 0 {
            return Err(WitnessRefusal::SizeMismatch { claimed: request.old_size, witnessed: 0 });
        }
        return no_proof(request, 0, new.size);
    };
    let old = last.checkpoint();
    let fork = |reason| {
        WitnessRefusal::Inconsistent(Box::new(ForkEvidence {
            witnessed: last.without_cosignatures(),
            presented: presented.without_cosignatures(),
            proof: request.proof.clone(),
            reason,
        }))
    };
    // Both are signed by the log: these two need no proof to be evidence, whatever old size
    // the request claims.
    if new.size < old.size {
        return Err(fork(ForkReason::Rollback));
    }
    if new.size == old.size && new.root != old.root {
        return Err(fork(ForkReason::SameSizeDifferentRoot));
    }
    if request.old_size != old.size {
        return Err(WitnessRefusal::SizeMismatch { claimed: request.old_size, witnessed: old.size });
    }
    if old.size == 0 || old.size == new.size {
        return no_proof(request, old.size, new.size);
    }
    verify_consistency(old.size, new.size, &old.root, &new.root, &request.proof)
        .map_err(|e| fork(ForkReason::ProofFailed(e)))
}

fn no_proof(request: &AddCheckpoint, old: u64, new: u64) -> Result<(), WitnessRefusal> {
    if request.proof.is_empty() { Ok(()) } else { Err(WitnessRefusal::ProofNotEmpty { old, new }) }
}
