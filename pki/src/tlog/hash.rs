//! RFC 6962 / RFC 9162 §2.1 Merkle tree hashing, complete subtrees, and the frontier a log
//! appends through.
//!
//! A leaf's hash is `SHA-256(0x00 || leaf)`, an inner node's `SHA-256(0x01 || left || right)`
//! (the prefixes keep a leaf from passing for a node), and the root of `n` leaves splits them
//! at the largest power of two below `n`. Every tree is therefore made of *complete*
//! subtrees of `2^level` leaves starting at a multiple of `2^level` ([`NodeId`]); a store that
//! keeps each complete subtree's hash once can produce any root or proof from a handful of
//! them, without reading the leaves again. [`Frontier`] is what appending needs: the complete
//! subtrees along the right edge (at most 63), from which the new complete subtrees and the
//! root follow.

use ring::digest;

use super::Hash;

/// The root of the empty tree: SHA-256 of nothing (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Largest tree a log may reach: 2^63 − 1 leaves, so that sizes and indexes fit the signed
/// 64-bit integers SQLite and PostgreSQL store, and every inclusion proof has at most 63
/// hashes and every consistency proof at most 64.
pub const MAX_TREE_SIZE: u64 = i64::MAX as u64;

/// The hash of a leaf: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(leaf);
    finish(ctx)
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

fn finish(ctx: digest::Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A complete subtree: `2^level` leaves starting at leaf `index << level`. Level 0 is a leaf.
///
/// This is the key a store keeps hashes under; it never changes once the subtree is complete,
/// which is what makes caching it safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height: the subtree holds `2^level` leaves.
    pub level: u8,
    /// Position among the subtrees of that height, from the left.
    pub index: u64,
}

impl NodeId {
    /// The first leaf it covers.
    pub fn start(self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf it covers.
    pub fn end(self) -> u64 {
        (self.index + 1) << self.level
    }
}

/// The complete subtrees that make up the range `[start, end)`, left to right, largest first.
///
/// For the ranges Merkle proofs use (`start` a multiple of the largest power of two below
/// `end - start`, or `end - start` itself a power of two), the range's hash is these nodes
/// folded from the right: `H(n0, H(n1, … H(nk-1, nk)))`.
pub(crate) fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut nodes = Vec::new();
    let mut pos = start;
    while pos < end {
        let remaining = end - pos;
        // Largest power of two that fits in what remains and keeps the node aligned.
        let mut level = 63 - remaining.leading_zeros();
        if pos != 0 {
            level = level.min(pos.trailing_zeros());
        }
        let level = level as u8;
        nodes.push(NodeId { level, index: pos >> level });
        pos += 1u64 << level;
    }
    nodes
}

/// Folds hashes from the right: `H(h0, H(h1, … H(hk-1, hk)))`; the empty root for none.
pub(crate) fn fold_right(hashes: &[Hash]) -> Hash {
    let Some((last, rest)) = hashes.split_last() else {
        return EMPTY_ROOT;
    };
    rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc))
}

/// The largest power of two strictly below `n` (`n` ≥ 2): where RFC 9162 splits a tree.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Why a frontier cannot be rebuilt or grown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrontierError {
    /// The stored hashes do not match the size (one per bit set in the size).
    #[error("a tree of {size} leaves has {expected} right-edge subtrees, {got} were given")]
    WrongCount {
        /// The tree size.
        size: u64,
        /// How many it needs.
        expected: usize,
        /// How many were given.
        got: usize,
    },
    /// The tree is at [`MAX_TREE_SIZE`].
    #[error("the log is full ({MAX_TREE_SIZE} leaves)")]
    Full,
}

/// The right edge of a tree: the hashes of the complete subtrees `[0, size)` splits into,
/// largest first. Enough to append and to compute the root, in O(log n) memory.
///
/// A node keeps it in memory (or rebuilds it from the stored hashes of
/// [`Frontier::node_ids`]) and, in the transaction that appends a leaf, stores the leaf hash
/// and the complete subtrees [`Frontier::append`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Default for Frontier {
    fn default() -> Self {
        Self::new()
    }
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Frontier { size: 0, hashes: Vec::new() }
    }

    /// Which complete subtrees to load to rebuild the frontier of a tree of `size` leaves.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        range_nodes(0, size)
    }

    /// Rebuilds the frontier from the hashes of [`Frontier::node_ids`], in that order.
    pub fn from_hashes(size: u64, hashes: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(FrontierError::WrongCount { size, expected, got: hashes.len() });
        }
        if size > MAX_TREE_SIZE {
            return Err(FrontierError::Full);
        }
        Ok(Frontier { size, hashes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge hashes, largest subtree first (the ones [`Frontier::node_ids`] names).
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The root hash (RFC 9162 MTH) of the tree.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes)
    }

    /// Appends a leaf by its hash ([`leaf_hash`]) and returns every complete subtree that
    /// now exists and did not before: the leaf itself (level 0), then each parent it
    /// completes. A store keeps all of them; proofs then never need to read leaves.
    pub fn append(&mut self, leaf: Hash) -> Result<Vec<(NodeId, Hash)>, FrontierError> {
        if self.size >= MAX_TREE_SIZE {
            return Err(FrontierError::Full);
        }
        let mut index = self.size;
        let mut level = 0u8;
        let mut hash = leaf;
        let mut completed = vec![(NodeId { level, index }, hash)];
        while index & 1 == 1 {
            // A right child: its left sibling is the smallest subtree on the edge.
            let Some(left) = self.hashes.pop() else {
                // Unreachable: an odd index means a left sibling is on the edge (one hash
                // per bit set in the size); keep the frontier unchanged rather than panic.
                return Err(FrontierError::WrongCount {
                    size: self.size,
                    expected: self.size.count_ones() as usize,
                    got: 0,
                });
            };
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            completed.push((NodeId { level, index }, hash));
        }
        self.hashes.push(hash);
        self.size += 1;
        Ok(completed)
    }
}
