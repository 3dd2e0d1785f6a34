//! Costs of the log, printed (never asserted). Run in release:
//! `cargo test -p lienthong-pki --release --lib tlog::tests::measure -- --ignored --nocapture`.

use std::time::Instant;

use super::super::checkpoint::{Checkpoint, LogOrigin};
use super::super::cosignature::Cosignature;
use super::super::evidence::LogProof;
use super::super::hash::{Frontier, leaf_hash};
use super::super::leaf::{LogEntry, Via};
use super::super::proof::{MemoryTree, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion};
use crate::cert::Profile;
use crate::crl::CrlSet;
use crate::testing::{TestCa, day};
use crate::validate::Validator;

fn rate(what: &str, n: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!("{what:<58} {:>12.0} /s  ({n} in {secs:.3} s)", n as f64 / secs);
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn measure_log_costs() {
    const N: u64 = 1_000_000;
    let entry = |i: u64| LogEntry::Document {
        envelope: crate::sha256(&i.to_be_bytes()),
        document: format!("000.01.41.H49,2026/11/23,{}/UBND-VP", i % 100_000 + 1).parse().unwrap(),
        via: Via::Clerk,
        at: day(1),
    };
    let entries: Vec<LogEntry> = (0..N).map(entry).collect();
    let start = Instant::now();
    let leaves: Vec<Vec<u8>> = entries.iter().map(LogEntry::to_bytes).collect();
    rate("leaf encoding (deterministic CBOR)", N, start);
    let start = Instant::now();
    for leaf in &leaves[..100_000] {
        LogEntry::from_bytes(leaf).unwrap();
    }
    rate("leaf decoding (scan, decode, re-encode check)", 100_000, start);
    // Baseline in the same run: raw SHA-256 of a 65-byte inner node.
    let start = Instant::now();
    let mut acc = [0u8; 65];
    for _ in 0..N {
        let h = crate::sha256(&acc);
        acc[1..33].copy_from_slice(&h);
    }
    rate("baseline: raw SHA-256 of 65 bytes", N, start);
    println!("leaf size: {} bytes", leaves[0].len());

    let start = Instant::now();
    let mut frontier = Frontier::new();
    let mut stored = 0usize;
    for leaf in &leaves {
        stored += frontier.append(leaf_hash(leaf)).unwrap().len();
    }
    rate("append: leaf hash + frontier (subtree hashes to store)", N, start);
    println!("subtree hashes to store per leaf: {:.3}", stored as f64 / N as f64);

    let mut tree = MemoryTree::new();
    for leaf in &leaves {
        tree.push(leaf).unwrap();
    }
    assert_eq!(tree.root(), frontier.root());
    let root = tree.root();
    let proofs = 100_000u64;
    let start = Instant::now();
    let mut total_len = 0;
    for k in 0..proofs {
        total_len += inclusion_proof(&tree, (k * 7919) % N, N).unwrap().len();
    }
    rate("inclusion proof from stored subtree hashes (1M leaves)", proofs, start);
    println!("inclusion proof length at 1M leaves: {:.1} hashes", total_len as f64 / proofs as f64);
    let proof = inclusion_proof(&tree, 123_456, N).unwrap();
    let hash = leaf_hash(&leaves[123_456]);
    let start = Instant::now();
    for _ in 0..proofs {
        verify_inclusion(&hash, 123_456, N, &proof, &root).unwrap();
    }
    rate("inclusion proof verification (1M leaves)", proofs, start);
    let old_root = super::super::proof::root_at(&tree, 654_321).unwrap();
    let cproof = consistency_proof(&tree, 654_321, N).unwrap();
    let start = Instant::now();
    for _ in 0..proofs {
        verify_consistency(654_321, N, &old_root, &root, &cproof).unwrap();
    }
    rate("consistency proof verification (654,321 -> 1M)", proofs, start);

    // Checkpoints and cosignatures with P-256 seals and a real chain.
    let mut ca_root = TestCa::root();
    let mut province = ca_root.sub_ca("000.00.00.H49", "Tỉnh");
    let mut district = province.sub_ca("000.00.41.H49", "Huyện");
    let commune = district.issue(Profile::Seal, "000.01.41.H49", "Xã");
    let witness = district.issue(Profile::Seal, "000.00.41.H49", "Huyện");
    let checkpoint = Checkpoint::new(LogOrigin::first("000.01.41.H49".parse().unwrap()), N, root);
    let n = 2_000u64;
    let start = Instant::now();
    for _ in 0..n {
        checkpoint.sign(&commune.key).unwrap();
    }
    rate("checkpoint signing (P-256 seal)", n, start);
    let signed = checkpoint.sign(&commune.key).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        signed.verify(commune.cert.public_key.as_ref().unwrap()).unwrap();
    }
    rate("checkpoint signature verification (P-256)", n, start);
    // Baseline in the same run: ring's P-256 verification of the same signature.
    let key = commune.cert.public_key.as_ref().unwrap();
    let sig = signed.note().signatures()[0].signature.clone();
    let body = checkpoint.body();
    let start = Instant::now();
    for _ in 0..n {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &key.raw)
            .verify(body.as_bytes(), &sig)
            .unwrap();
    }
    rate("baseline: raw ring P-256 verification", n, start);
    let start = Instant::now();
    for _ in 0..n {
        Cosignature::sign(&checkpoint, "000.00.41.H49".parse().unwrap(), &witness.key, day(2)).unwrap();
    }
    rate("cosignature (P-256 seal)", n, start);

    let mut cosigned = signed.clone();
    cosigned
        .add_cosignature(
            &Cosignature::sign(&checkpoint, "000.00.41.H49".parse().unwrap(), &witness.key, day(2)).unwrap(),
        )
        .unwrap();
    let chain = |leaf: &crate::testing::Issued| {
        vec![leaf.cert.der().to_vec(), district.cert.der().to_vec(), province.cert.der().to_vec()]
    };
    let log_proof =
        LogProof::new(&entry(123_456), 123_456, proof.clone(), cosigned, vec![chain(&commune), chain(&witness)]);
    let bytes = log_proof.to_bytes();
    println!(
        "log proof: {} bytes (tlog-proof text {} bytes, certificates {} bytes)",
        bytes.len(),
        log_proof.proof.to_text().len(),
        log_proof.chains.iter().flatten().map(Vec::len).sum::<usize>()
    );
    let mut crls = CrlSet::new();
    for ca in [&mut ca_root, &mut province, &mut district] {
        crls.add(ca.crl(day(0), day(60)));
    }
    let validator = Validator::new(vec![ca_root.cert.clone()]).with_crls(crls);
    let envelope = crate::sha256(&123_456u64.to_be_bytes());
    let n = 500u64;
    let start = Instant::now();
    for _ in 0..n {
        LogProof::from_bytes(&bytes).unwrap().verify(&envelope, &validator, day(3)).unwrap();
    }
    rate("log proof decode + full offline verification (no cache)", n, start);
}
