//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4): planning, assembling from
//! stored hashes, and verifying.
//!
//! A proof is a list of subtree hashes. Producing one is split in two so that a store behind
//! an async database can serve it in one query: a [`ProofPlan`] names the complete subtrees
//! ([`NodeId`]) whose hashes it needs, the store fetches them, and [`ProofPlan::assemble`]
//! folds them into the proof. [`HashSource`] does both steps for synchronous stores such as
//! [`MemoryTree`]. Verification follows the RFC 9162 algorithms step by step, after checking
//! sizes, the proof's exact length and the [`MAX_PROOF_HASHES`] budget.

use super::hash::{Frontier, MAX_TREE_SIZE, NodeId, fold_right, node_hash, range_nodes, split_point};
use super::{Hash, MAX_PROOF_HASHES};

/// Why a proof cannot be planned or does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is not inside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("consistency from {old} leaves to {new} leaves: the second tree is smaller")]
    SizesOutOfOrder {
        /// The first size.
        old: u64,
        /// The second size.
        new: u64,
    },
    /// A consistency proof from the empty tree proves nothing (every tree extends it).
    #[error("a consistency proof from the empty tree is meaningless")]
    FromEmptyTree,
    /// A tree size over [`MAX_TREE_SIZE`].
    #[error("tree size {size} is over the {MAX_TREE_SIZE}-leaf limit")]
    TreeTooLarge {
        /// The size.
        size: u64,
    },
    /// More hashes than any valid proof has.
    #[error("a proof of {len} hashes is over the {MAX_PROOF_HASHES}-hash limit")]
    TooManyHashes {
        /// How many.
        len: usize,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has {got} hashes; these sizes need {expected}")]
    WrongLength {
        /// What the sizes need.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The root the proof leads to is not the expected one.
    #[error("the proof leads to another root than the checkpoint's")]
    RootMismatch,
    /// A consistency proof does not reproduce the first tree's root.
    #[error("the consistency proof does not reproduce the first tree's root")]
    OldRootMismatch,
    /// A store returned another number of hashes than the plan asked for.
    #[error("the store returned {got} hashes for {expected} subtrees")]
    WrongHashCount {
        /// What the plan asked for.
        expected: usize,
        /// What came back.
        got: usize,
    },
}

/// The complete subtrees a proof is made of, grouped by proof element. Get the hashes of
/// [`ProofPlan::nodes`] from the store (in that order), then [`ProofPlan::assemble`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofPlan {
    nodes: Vec<NodeId>,
    /// How many consecutive nodes make each proof element.
    spans: Vec<usize>,
}

impl ProofPlan {
    fn from_ranges(ranges: &[(u64, u64)]) -> Self {
        let mut nodes = Vec::new();
        let mut spans = Vec::with_capacity(ranges.len());
        for &(start, end) in ranges {
            let part = range_nodes(start, end);
            spans.push(part.len());
            nodes.extend(part);
        }
        ProofPlan { nodes, spans }
    }

    /// The complete subtrees whose hashes are needed, in the order to pass them back.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Number of hashes in the proof.
    pub fn proof_len(&self) -> usize {
        self.spans.len()
    }

    /// Builds the proof from the hashes of [`ProofPlan::nodes`], in that order.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, ProofError> {
        if hashes.len() != self.nodes.len() {
            return Err(ProofError::WrongHashCount { expected: self.nodes.len(), got: hashes.len() });
        }
        let mut rest = hashes;
        let mut proof = Vec::with_capacity(self.spans.len());
        for &span in &self.spans {
            let (part, tail) = rest.split_at(span);
            proof.push(fold_right(part));
            rest = tail;
        }
        Ok(proof)
    }
}

fn check_size(size: u64) -> Result<(), ProofError> {
    if size > MAX_TREE_SIZE {
        return Err(ProofError::TreeTooLarge { size });
    }
    Ok(())
}

/// The ranges whose hashes make the inclusion proof of leaf `index` in a tree of `size`
/// leaves, leaf's sibling first (RFC 9162 §2.1.3.1 `PATH`).
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    check_size(size)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut ranges = Vec::new();
    let (mut lo, mut hi) = (0u64, size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index - lo < k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// The ranges whose hashes make the consistency proof from `old` to `new` leaves, deepest
/// first (RFC 9162 §2.1.4.1 `SUBPROOF`). Empty when the sizes are equal or `old` is 0.
fn consistency_ranges(old: u64, new: u64) -> Result<Vec<(u64, u64)>, ProofError> {
    check_size(new)?;
    if old > new {
        return Err(ProofError::SizesOutOfOrder { old, new });
    }
    let mut ranges = Vec::new();
    if old == 0 || old == new {
        return Ok(ranges);
    }
    let (mut lo, mut hi, mut m, mut complete) = (0u64, new, old, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !complete {
                ranges.push((lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            m -= k;
            complete = false;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// What to fetch for the inclusion proof of leaf `index` in a tree of `size` leaves.
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, ProofError> {
    Ok(ProofPlan::from_ranges(&inclusion_ranges(index, size)?))
}

/// What to fetch for the consistency proof from `old` to `new` leaves (an empty plan when
/// the sizes are equal or `old` is 0: those need no proof).
pub fn consistency_plan(old: u64, new: u64) -> Result<ProofPlan, ProofError> {
    Ok(ProofPlan::from_ranges(&consistency_ranges(old, new)?))
}

/// What to fetch for the root of the first `size` leaves; the plan's proof has one element,
/// the root (the empty tree's root for size 0).
pub fn root_plan(size: u64) -> Result<ProofPlan, ProofError> {
    check_size(size)?;
    let nodes = range_nodes(0, size);
    Ok(ProofPlan { spans: vec![nodes.len()], nodes })
}

/// A synchronous store of complete-subtree hashes.
pub trait HashSource {
    /// Why the store could not answer.
    type Error;

    /// The hashes of `nodes`, in that order. Every node asked for is complete in the tree the
    /// caller named (inside the first `size` leaves).
    fn hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

/// A proof could not be built: the request or the store.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E> {
    /// The sizes or index are impossible, or the store answered the wrong number of hashes.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The store failed.
    #[error("the hash store failed: {0}")]
    Source(E),
}

fn run<S: HashSource>(source: &S, plan: &ProofPlan) -> Result<Vec<Hash>, ProveError<S::Error>> {
    let hashes = source.hashes(plan.nodes()).map_err(ProveError::Source)?;
    Ok(plan.assemble(&hashes)?)
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves.
pub fn inclusion_proof<S: HashSource>(source: &S, index: u64, size: u64) -> Result<Vec<Hash>, ProveError<S::Error>> {
    run(source, &inclusion_plan(index, size)?)
}

/// The consistency proof from the first `old` leaves to the first `new`.
pub fn consistency_proof<S: HashSource>(source: &S, old: u64, new: u64) -> Result<Vec<Hash>, ProveError<S::Error>> {
    run(source, &consistency_plan(old, new)?)
}

/// The root of the first `size` leaves.
pub fn root_at<S: HashSource>(source: &S, size: u64) -> Result<Hash, ProveError<S::Error>> {
    let proof = run(source, &root_plan(size)?)?;
    Ok(proof.first().copied().unwrap_or(super::hash::EMPTY_ROOT))
}

fn check_length(proof: &[Hash], expected: usize) -> Result<(), ProofError> {
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooManyHashes { len: proof.len() });
    }
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, got: proof.len() });
    }
    Ok(())
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1–5).
pub fn root_from_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash, ProofError> {
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooManyHashes { len: proof.len() });
    }
    check_length(proof, inclusion_ranges(index, size)?.len())?;
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength { expected: 0, got: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength { expected: proof.len() + 1, got: proof.len() });
    }
    Ok(r)
}

/// Verifies that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves with root
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if root_from_inclusion(leaf, index, size, proof)? != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `new` leaves with root `new_root` extends the tree of `old`
/// leaves with root `old_root` (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and
/// equal roots; a proof from the empty tree is refused as meaningless (the caller knows
/// every tree extends it), as in the published test vectors.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::TooManyHashes { len: proof.len() });
    }
    check_size(new)?;
    if old > new {
        return Err(ProofError::SizesOutOfOrder { old, new });
    }
    if old == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    check_length(proof, consistency_ranges(old, new)?.len())?;
    if old == new {
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    // Step 2: when the first tree is complete, its root is the proof's implicit first node.
    let first_is_power_of_two = old.is_power_of_two();
    let mut path = proof.iter();
    let first = if first_is_power_of_two {
        *old_root
    } else {
        match path.next() {
            Some(h) => *h,
            None => return Err(ProofError::WrongLength { expected: 1, got: 0 }),
        }
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if sn == 0 {
            return Err(ProofError::WrongLength { expected: 0, got: proof.len() });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength { expected: proof.len() + 1, got: proof.len() });
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// A whole tree in memory, keeping every complete subtree's hash the way a node's store
/// does: for tests, tools and small logs.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of [`NodeId`] `{ level: l, index: i }`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf by its hash and returns its index.
    pub fn push_hash(&mut self, leaf: Hash) -> Result<u64, super::hash::FrontierError> {
        let index = self.frontier.size();
        for (id, hash) in self.frontier.append(leaf)? {
            let level = usize::from(id.level);
            if self.levels.len() <= level {
                self.levels.resize(level + 1, Vec::new());
            }
            self.levels[level].push(hash);
        }
        Ok(index)
    }

    /// Appends a leaf's bytes (hashed with [`super::leaf_hash`]) and returns its index.
    pub fn push(&mut self, leaf: &[u8]) -> Result<u64, super::hash::FrontierError> {
        self.push_hash(super::leaf_hash(leaf))
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

/// A node the tree does not hold (not complete, or beyond the size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no complete subtree {0:?} in this tree")]
pub struct MissingNode(pub NodeId);

impl HashSource for MemoryTree {
    type Error = MissingNode;

    fn hashes(&self, nodes: &[NodeId]) -> Result<Vec<Hash>, MissingNode> {
        nodes
            .iter()
            .map(|id| {
                let index = usize::try_from(id.index).map_err(|_| MissingNode(*id))?;
                self.levels.get(usize::from(id.level)).and_then(|l| l.get(index)).copied().ok_or(MissingNode(*id))
            })
            .collect()
    }
}
