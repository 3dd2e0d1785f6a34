//! The transparency log's sans-IO core: what a node appends, how it proves it, how its parent
//! witnesses it, and what a verifier checks offline years later.
//!
//! Every node keeps an append-only Merkle tree (RFC 6962 / RFC 9162 hashing, [`hash`]) of
//! what it did: documents it took, receipts it signed, statuses it recorded ([`leaf`]).
//! It signs checkpoints of the tree with its agency seal in the C2SP `tlog-checkpoint`
//! text format inside a C2SP `signed-note` ([`checkpoint`], [`note`]). Its parent witnesses
//! each checkpoint: it co-signs only a checkpoint that provably extends the last one it
//! co-signed ([`witness`]), in the C2SP `tlog-cosignature` shape with its own time
//! ([`cosignature`]). A document's evidence then carries, per log it passed, an inclusion
//! proof into a co-signed checkpoint ([`evidence`]); the earliest co-signature time is a
//! proof of existence given by an agency other than the signer.
//!
//! Nothing here reads a clock or does I/O: times come in as arguments, stored hashes come in
//! through [`proof::ProofPlan`] (or a [`proof::HashSource`]), and every decoder of untrusted
//! bytes ([`note::Note::parse`], [`checkpoint::SignedCheckpoint::parse`],
//! [`cosignature::Cosignature::parse_line`], [`witness::AddCheckpoint::parse`],
//! [`evidence::TlogProof::parse`], [`evidence::LogProof::from_bytes`],
//! [`leaf::LogEntry::from_bytes`]) works within the budgets below and returns a typed error.
//!
//! Merkle hashing is our own code over *ring*'s SHA-256, not the `ct-merkle` crate: a node
//! must build proofs from hashes kept in SQLite or PostgreSQL (one query per proof, see
//! [`proof::ProofPlan`]) while `ct-merkle` builds them from its own in-memory layout, and it
//! would bring the `digest`/`sha2` trait stack into the crate that must stay small enough to
//! embed. The code follows RFC 9162's algorithms and is checked against the published
//! vectors of `transparency-dev/merkle` and by property tests.

pub mod checkpoint;
pub mod cosignature;
pub mod evidence;
pub mod hash;
pub mod leaf;
pub mod note;
pub mod proof;
mod signing;
pub mod witness;

#[cfg(test)]
mod tests;

pub use checkpoint::{Checkpoint, CheckpointError, LogOrigin, SignedCheckpoint};
pub use cosignature::{Cosignature, CosignatureError};
pub use evidence::{LogEvidence, LogProof, LogProofError, MAX_LOG_PROOF_BYTES, TlogProof, Witnessed};
pub use hash::{EMPTY_ROOT, Frontier, FrontierError, MAX_TREE_SIZE, NodeId, leaf_hash, node_hash};
pub use leaf::{LeafError, LogEntry, Via};
pub use note::{Note, NoteError, NoteSignature};
pub use proof::{
    HashSource, MemoryTree, ProofError, ProofPlan, consistency_plan, consistency_proof, inclusion_plan,
    inclusion_proof, root_plan, verify_consistency, verify_inclusion,
};
pub use witness::{AddCheckpoint, AddCheckpointError, ForkEvidence, ForkReason, WitnessRefusal, check_checkpoint};

/// A SHA-256 hash: a leaf, an inner node or a root.
pub type Hash = [u8; 32];

/// Most hashes in one proof. An inclusion proof in a tree of at most [`MAX_TREE_SIZE`]
/// leaves has at most 63 and a consistency proof at most 64; C2SP `tlog-witness` allows 63
/// consistency lines, which this bound covers.
pub const MAX_PROOF_HASHES: usize = 64;
