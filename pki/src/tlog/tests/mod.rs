//! Tests of the transparency log core: RFC 6962 hashing and proofs against the published
//! vectors of `transparency-dev/merkle` and by property tests, the leaf format, notes against
//! published and independently made signatures, checkpoints, cosignatures, the witness rule,
//! and proofs in the evidence with a real test PKI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod evidence;
mod leaf;
mod measure;
mod merkle;
mod notes;
mod witness;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::Hash;

/// Decodes base64 from a test vector.
fn b64(text: &str) -> Vec<u8> {
    BASE64.decode(text).unwrap()
}

/// A 32-byte hash from hex.
fn hex32(text: &str) -> Hash {
    <Hash>::try_from(hex::decode(text).unwrap().as_slice()).unwrap()
}

/// A distinct leaf for position `i`.
fn leaf_bytes(i: u64) -> Vec<u8> {
    format!("leaf {i}").into_bytes()
}

/// A tree of `size` leaves from [`leaf_bytes`].
fn tree(size: u64) -> super::MemoryTree {
    let mut tree = super::MemoryTree::new();
    for i in 0..size {
        tree.push(&leaf_bytes(i)).unwrap();
    }
    tree
}
