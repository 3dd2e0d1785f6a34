//! RFC 6962 / RFC 9162 hashing and proofs.
//!
//! Published vectors: `pki/tests/data/tlog/merkle-vectors.json` holds every inclusion and
//! consistency vector of <https://github.com/transparency-dev/merkle> (`testdata/`, commit
//! 417fb0c314750d94e53942e9f92e79b6d35915db, Apache-2.0), gathered by
//! `import_merkle_vectors.py`; the reference tree (leaves, subtree and root hashes) is that
//! repository's `testonly/constants.go`, itself from Certificate Transparency's tests.

use proptest::prelude::*;

use super::super::hash::{EMPTY_ROOT, Frontier, FrontierError, MAX_TREE_SIZE, NodeId, leaf_hash, node_hash};
use super::super::proof::*;
use super::super::{Hash, MAX_PROOF_HASHES};
use super::{b64, hex32, leaf_bytes, tree};

const VECTORS: &str = include_str!("../../../tests/data/tlog/merkle-vectors.json");

/// `testonly.LeafInputs()`.
const LEAF_INPUTS: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

/// `testonly.RootHashes()`, by tree size from 0.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `testonly.NodeHashes()`: complete subtrees by level, then index.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

fn reference_tree() -> MemoryTree {
    let mut tree = MemoryTree::new();
    for input in LEAF_INPUTS {
        tree.push(&hex::decode(input).unwrap()).unwrap();
    }
    tree
}

/// MTH straight from RFC 9162 §2.1.1, recursively.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

/// Largest power of two strictly below `n`, computed the slow way.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// `PATH(m, D[n])`, RFC 9162 §2.1.3.1, recursively.
fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n == 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = reference_path(m, &leaves[..k]);
        p.push(reference_root(&leaves[k..]));
        p
    } else {
        let mut p = reference_path(m - k, &leaves[k..]);
        p.push(reference_root(&leaves[..k]));
        p
    }
}

/// `SUBPROOF(m, D[n], b)`, RFC 9162 §2.1.4.1, recursively.
fn reference_subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete { Vec::new() } else { vec![reference_root(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = reference_subproof(m, &leaves[..k], complete);
        p.push(reference_root(&leaves[k..]));
        p
    } else {
        let mut p = reference_subproof(m - k, &leaves[k..], false);
        p.push(reference_root(&leaves[..k]));
        p
    }
}

fn leaf_hashes(size: u64) -> Vec<Hash> {
    (0..size).map(|i| leaf_hash(&leaf_bytes(i))).collect()
}

#[test]
fn leaf_and_empty_hashes_match_rfc6962_vectors() {
    // transparency-dev/merkle rfc6962/rfc6962_test.go.
    assert_eq!(EMPTY_ROOT, hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_eq!(leaf_hash(b""), hex32("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"));
    assert_eq!(leaf_hash(b"L123456"), hex32("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"));
    // The empty tree's root and an empty leaf's hash differ; so do a node and the leaf of the
    // concatenation of its children (the prefixes' whole point).
    assert_ne!(EMPTY_ROOT, leaf_hash(b""));
    let (a, b) = (leaf_hash(b"Hello"), leaf_hash(b"World"));
    assert_ne!(node_hash(&a, &b), leaf_hash(&[a, b].concat()));
    assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
}

#[test]
fn roots_and_subtrees_match_the_reference_tree() {
    let tree = reference_tree();
    for (size, root) in ROOTS.iter().enumerate() {
        assert_eq!(root_at(&tree, size as u64).unwrap(), hex32(root), "root of {size} leaves");
    }
    assert_eq!(tree.root(), hex32(ROOTS[8]));
    for (level, hashes) in NODES.iter().enumerate() {
        for (index, hash) in hashes.iter().enumerate() {
            let id = NodeId { level: level as u8, index: index as u64 };
            assert_eq!(tree.hashes(&[id]).unwrap(), vec![hex32(hash)], "{id:?}");
        }
    }
    // Nothing beyond: level 4 or index 8 at level 0 do not exist.
    assert!(tree.hashes(&[NodeId { level: 0, index: 8 }]).is_err());
    assert!(tree.hashes(&[NodeId { level: 4, index: 0 }]).is_err());
}

/// A vector's hash, or `None` when it is not 32 bytes (the vectors include garbage).
fn vector_hash(value: &serde_json::Value) -> Option<Hash> {
    <Hash>::try_from(b64(value.as_str().unwrap_or_default()).as_slice()).ok()
}

fn vector_proof(value: &serde_json::Value) -> Option<Vec<Hash>> {
    value.as_array().unwrap().iter().map(vector_hash).collect()
}

fn vectors(kind: &str) -> Vec<serde_json::Value> {
    let all: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
    all[kind].as_array().unwrap().clone()
}

#[test]
fn published_inclusion_vectors() {
    let vectors = vectors("inclusion");
    assert_eq!(vectors.len(), 98);
    for v in &vectors {
        let path = v["path"].as_str().unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let (index, size) = (v["leafIdx"].as_u64().unwrap(), v["treeSize"].as_u64().unwrap());
        let (Some(leaf), Some(root), Some(proof)) =
            (vector_hash(&v["leafHash"]), vector_hash(&v["root"]), vector_proof(&v["proof"]))
        else {
            // A hash that is not 32 bytes cannot even be given to the typed API.
            assert!(want_err, "{path}: a malformed hash in a vector that should pass");
            continue;
        };
        let got = verify_inclusion(&leaf, index, size, &proof, &root);
        assert_eq!(got.is_err(), want_err, "{path}: {got:?}");
    }
}

#[test]
fn published_consistency_vectors() {
    let vectors = vectors("consistency");
    assert_eq!(vectors.len(), 98);
    for v in &vectors {
        let path = v["path"].as_str().unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let (old, new) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        let proof = vector_proof(&v["proof"]);
        let (Some(old_root), Some(new_root), Some(proof)) = (vector_hash(&v["root1"]), vector_hash(&v["root2"]), proof)
        else {
            if !want_err {
                // The one passing vector with short roots: equal sizes, equal roots, no
                // proof; the check is byte equality, the same with any equal 32-byte roots.
                assert_eq!(path, "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json");
                assert_eq!(v["root1"], v["root2"]);
                verify_consistency(old, new, &[7; 32], &[7; 32], &[]).unwrap();
            }
            continue;
        };
        let got = verify_consistency(old, new, &old_root, &new_root, &proof);
        assert_eq!(got.is_err(), want_err, "{path}: {got:?}");
    }
}

#[test]
fn generated_proofs_equal_the_published_ones() {
    let tree = reference_tree();
    let mut checked = 0;
    for v in vectors("inclusion").iter().filter(|v| !v["wantErr"].as_bool().unwrap()) {
        let (index, size) = (v["leafIdx"].as_u64().unwrap(), v["treeSize"].as_u64().unwrap());
        assert_eq!(inclusion_proof(&tree, index, size).unwrap(), vector_proof(&v["proof"]).unwrap(), "{v}");
        checked += 1;
    }
    for v in vectors("consistency").iter().filter(|v| !v["wantErr"].as_bool().unwrap()) {
        let (old, new) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        let Some(expected) = vector_proof(&v["proof"]) else { continue };
        if vector_hash(&v["root1"]) != Some(root_at(&tree, old).unwrap()) {
            continue; // an "additional" vector not about the reference tree
        }
        assert_eq!(consistency_proof(&tree, old, new).unwrap(), expected, "{v}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} published proofs compared");
}

#[test]
fn proofs_equal_the_rfc_definitions_for_every_index_and_pair() {
    for size in 1..=70u64 {
        let hashes = leaf_hashes(size);
        let tree = tree(size);
        assert_eq!(tree.root(), reference_root(&hashes), "root of {size}");
        for index in 0..size {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            assert_eq!(proof, reference_path(index as usize, &hashes), "PATH({index}, {size})");
            verify_inclusion(&hashes[index as usize], index, size, &proof, &tree.root()).unwrap();
        }
        for old in 1..=size {
            let proof = consistency_proof(&tree, old, size).unwrap();
            let expected = if old == size { Vec::new() } else { reference_subproof(old as usize, &hashes, true) };
            assert_eq!(proof, expected, "PROOF({old}, {size})");
            let old_root = reference_root(&hashes[..old as usize]);
            verify_consistency(old, size, &old_root, &tree.root(), &proof).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every leaf of a random tree proves its inclusion; a changed hash byte, index, size
    /// (with that size's true root) or root makes the proof fail.
    #[test]
    fn every_inclusion_proof_verifies_and_any_change_fails(size in 1u64..3000, pick in any::<u64>(), bit in 0u8..8) {
        let tree = tree(size);
        let root = tree.root();
        for index in 0..size {
            let proof = inclusion_proof(&tree, index, size).unwrap();
            prop_assert!(verify_inclusion(&leaf_hash(&leaf_bytes(index)), index, size, &proof, &root).is_ok());
        }
        let index = pick % size;
        let leaf = leaf_hash(&leaf_bytes(index));
        let proof = inclusion_proof(&tree, index, size).unwrap();
        for element in 0..proof.len() {
            for byte in [0usize, 17, 31] {
                let mut bad = proof.clone();
                bad[element][byte] ^= 1 << bit;
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            }
        }
        let mut bad_leaf = leaf;
        bad_leaf[(pick % 32) as usize] ^= 1 << bit;
        prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
        let mut bad_root = root;
        bad_root[(pick % 32) as usize] ^= 1 << bit;
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &bad_root).is_err());
        for other in [index.wrapping_sub(1), index + 1, index ^ 2, index / 2].into_iter().filter(|o| *o != index) {
            prop_assert!(verify_inclusion(&leaf, other, size, &proof, &root).is_err(), "index {} for {}", other, index);
        }
        for other in [size - 1, size + 1, size * 2].into_iter().filter(|s| *s != size && *s > index) {
            let other_root = root_at(&tree, other).unwrap_or_else(|_| {
                let mut bigger = tree.clone();
                for i in size..other { bigger.push(&leaf_bytes(i)).unwrap(); }
                bigger.root()
            });
            prop_assert!(verify_inclusion(&leaf, index, other, &proof, &other_root).is_err(), "size {} for {}", other, size);
        }
        prop_assert!(verify_inclusion(&leaf, index, size, &proof[..proof.len().saturating_sub(1)], &root).is_err() || proof.is_empty());
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
    }

    /// Every older size of a random tree proves consistency with it; a changed hash byte,
    /// root or size (with its true root) makes the proof fail.
    #[test]
    fn every_consistency_proof_verifies_and_any_change_fails(size in 2u64..3000, pick in any::<u64>(), bit in 0u8..8) {
        let tree = tree(size);
        let root = tree.root();
        let roots: Vec<Hash> = (0..=size).map(|s| root_at(&tree, s).unwrap()).collect();
        for old in 1..=size {
            let proof = consistency_proof(&tree, old, size).unwrap();
            prop_assert!(proof.len() <= MAX_PROOF_HASHES);
            prop_assert!(verify_consistency(old, size, &roots[old as usize], &root, &proof).is_ok());
        }
        let old = 1 + pick % (size - 1);
        let proof = consistency_proof(&tree, old, size).unwrap();
        for element in 0..proof.len() {
            let mut bad = proof.clone();
            bad[element][(pick % 32) as usize] ^= 1 << bit;
            prop_assert!(verify_consistency(old, size, &roots[old as usize], &root, &bad).is_err());
        }
        let mut bad_old = roots[old as usize];
        bad_old[3] ^= 1 << bit;
        prop_assert!(verify_consistency(old, size, &bad_old, &root, &proof).is_err());
        let mut bad_new = root;
        bad_new[30] ^= 1 << bit;
        prop_assert!(verify_consistency(old, size, &roots[old as usize], &bad_new, &proof).is_err());
        for other in [old - 1, old + 1].into_iter().filter(|o| *o >= 1 && *o != old && *o <= size) {
            prop_assert!(verify_consistency(other, size, &roots[other as usize], &root, &proof).is_err());
        }
        prop_assert!(verify_consistency(old, size - 1, &roots[old as usize], &roots[size as usize - 1], &proof).is_err() || old == size - 1);
    }

    /// A frontier rebuilt from stored subtrees at any size goes on exactly as the original.
    #[test]
    fn frontier_rebuilt_from_the_store_goes_on_the_same(size in 0u64..2000, more in 1u64..50) {
        let full = tree(size + more);
        let ids = Frontier::node_ids(size);
        let mut rebuilt = Frontier::from_hashes(size, full.hashes(&ids).unwrap()).unwrap();
        prop_assert_eq!(rebuilt.root(), root_at(&full, size).unwrap());
        let mut stored = 0;
        for i in size..size + more {
            for (id, hash) in rebuilt.append(leaf_hash(&leaf_bytes(i))).unwrap() {
                // Everything the frontier says to store is what the full tree holds.
                prop_assert_eq!(full.hashes(&[id]).unwrap(), vec![hash]);
                stored += 1;
            }
        }
        prop_assert_eq!(rebuilt.root(), full.root());
        // About one stored hash per leaf: the leaf and the subtrees it completes.
        prop_assert!(stored >= more && stored <= 2 * more + 64);
    }
}

#[test]
fn frontier_counts_are_checked() {
    assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    assert_eq!(Frontier::node_ids(0), vec![]);
    assert_eq!(
        Frontier::node_ids(13),
        vec![NodeId { level: 3, index: 0 }, NodeId { level: 2, index: 2 }, NodeId { level: 0, index: 12 }]
    );
    assert_eq!(
        Frontier::from_hashes(13, vec![[0; 32]; 2]),
        Err(FrontierError::WrongCount { size: 13, expected: 3, got: 2 })
    );
    assert_eq!(Frontier::from_hashes(MAX_TREE_SIZE + 1, vec![[0; 32]; 1]), Err(FrontierError::Full));
    // A frontier at the largest size refuses to grow, and stays as it was.
    let ids = Frontier::node_ids(MAX_TREE_SIZE);
    assert_eq!(ids.len(), 63);
    let mut full = Frontier::from_hashes(MAX_TREE_SIZE, vec![[1; 32]; 63]).unwrap();
    let before = full.clone();
    assert_eq!(full.append([2; 32]), Err(FrontierError::Full));
    assert_eq!(full, before);
}

#[test]
fn limits_are_enforced_at_the_edge() {
    // The largest tree: proofs stay within the 64-hash budget.
    assert_eq!(inclusion_plan(0, MAX_TREE_SIZE).unwrap().proof_len(), 63);
    assert_eq!(inclusion_plan(MAX_TREE_SIZE - 1, MAX_TREE_SIZE).unwrap().proof_len(), 62);
    let longest = [1, 2, 3, MAX_TREE_SIZE / 2 + 1, MAX_TREE_SIZE - 1]
        .into_iter()
        .map(|old| consistency_plan(old, MAX_TREE_SIZE).unwrap().proof_len())
        .max()
        .unwrap();
    assert!(longest <= MAX_PROOF_HASHES, "{longest}");
    assert_eq!(consistency_plan(3, MAX_TREE_SIZE).unwrap().proof_len(), 64);
    // One more leaf is refused everywhere.
    let too_big = MAX_TREE_SIZE + 1;
    assert_eq!(inclusion_plan(0, too_big), Err(ProofError::TreeTooLarge { size: too_big }));
    assert_eq!(consistency_plan(1, too_big), Err(ProofError::TreeTooLarge { size: too_big }));
    assert_eq!(root_plan(too_big), Err(ProofError::TreeTooLarge { size: too_big }));
    assert_eq!(
        verify_consistency(1, too_big, &[0; 32], &[0; 32], &[[0; 32]]),
        Err(ProofError::TreeTooLarge { size: too_big })
    );
    assert_eq!(
        verify_inclusion(&[0; 32], 0, too_big, &[[0; 32]], &[0; 32]),
        Err(ProofError::TreeTooLarge { size: too_big })
    );
    // 64 hashes is the budget; 65 is refused before any hashing.
    let long = vec![[0u8; 32]; MAX_PROOF_HASHES + 1];
    assert_eq!(verify_inclusion(&[0; 32], 0, 8, &long, &[0; 32]), Err(ProofError::TooManyHashes { len: 65 }));
    assert_eq!(verify_consistency(1, 8, &[0; 32], &[0; 32], &long), Err(ProofError::TooManyHashes { len: 65 }));
    assert_eq!(
        verify_inclusion(&[0; 32], 0, 8, &long[..64], &[0; 32]),
        Err(ProofError::WrongLength { expected: 3, got: 64 })
    );
}

#[test]
fn impossible_requests_get_typed_errors() {
    let tree = tree(10);
    assert_eq!(inclusion_plan(10, 10), Err(ProofError::IndexOutOfRange { index: 10, size: 10 }));
    assert_eq!(inclusion_plan(0, 0), Err(ProofError::IndexOutOfRange { index: 0, size: 0 }));
    assert_eq!(consistency_plan(11, 10), Err(ProofError::SizesOutOfOrder { old: 11, new: 10 }));
    assert_eq!(consistency_plan(0, 10).unwrap().proof_len(), 0);
    assert_eq!(consistency_plan(10, 10).unwrap().proof_len(), 0);
    assert_eq!(verify_consistency(0, 10, &EMPTY_ROOT, &tree.root(), &[]), Err(ProofError::FromEmptyTree));
    assert_eq!(verify_consistency(5, 4, &[0; 32], &[0; 32], &[]), Err(ProofError::SizesOutOfOrder { old: 5, new: 4 }));
    assert_eq!(verify_consistency(10, 10, &tree.root(), &[0; 32], &[]), Err(ProofError::RootMismatch));
    // The old root is checked on its own.
    let proof = consistency_proof(&tree, 3, 10).unwrap();
    assert_eq!(verify_consistency(3, 10, &[0; 32], &tree.root(), &proof), Err(ProofError::OldRootMismatch));
    // A store answering the wrong number of hashes is caught.
    let plan = inclusion_plan(3, 10).unwrap();
    assert_eq!(plan.assemble(&[[0; 32]]), Err(ProofError::WrongHashCount { expected: plan.nodes().len(), got: 1 }));
    // A store that lacks a node says which.
    assert!(matches!(inclusion_proof(&tree, 3, 11), Err(ProveError::Source(MissingNode(_)))));
}

#[test]
fn one_query_per_proof_asks_only_for_complete_subtrees() {
    // What a node's store sees: every node asked is complete and inside the tree.
    for size in 1..200u64 {
        for index in (0..size).step_by(7) {
            for id in inclusion_plan(index, size).unwrap().nodes() {
                assert!(id.end() <= size, "{id:?} beyond {size}");
            }
        }
        for old in (1..=size).step_by(5) {
            for id in consistency_plan(old, size).unwrap().nodes() {
                assert!(id.end() <= size, "{id:?} beyond {size}");
            }
        }
    }
    // A proof in a tree of a million leaves needs about twice log2(n) stored hashes.
    let plan = inclusion_plan(123_456, 1_000_000).unwrap();
    assert_eq!(plan.proof_len(), 20);
    assert!(plan.nodes().len() <= 2 * 20, "{}", plan.nodes().len());
    let start = NodeId { level: 3, index: 5 };
    assert_eq!((start.start(), start.end()), (40, 48));
}
