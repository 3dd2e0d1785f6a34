//! Checkpoints, cosignatures and the witness rule: a log that only appends is co-signed; a
//! fork, a rollback or a rewritten leaf is refused with both signed checkpoints as evidence.

use time::macros::datetime;

use super::super::checkpoint::{Checkpoint, CheckpointError, LogOrigin, SignedCheckpoint};
use super::super::cosignature::{Cosignature, CosignatureError, witness_from_key_name, witness_key_name};
use super::super::hash::EMPTY_ROOT;
use super::super::proof::{MemoryTree, ProofError, consistency_proof};
use super::super::witness::{AddCheckpoint, AddCheckpointError, ForkReason, WitnessRefusal, check_checkpoint};
use super::{b64, leaf_bytes, tree};
use crate::agency::AgencyCode;
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::testing::rsa_key;

fn code(text: &str) -> AgencyCode {
    text.parse().unwrap()
}

fn origin() -> LogOrigin {
    LogOrigin::first(code("000.01.41.H49"))
}

#[test]
fn origins_have_one_spelling() {
    let first = origin();
    assert_eq!(first.to_string(), "lienthong.gov.vn/log/000.01.41.H49");
    assert_eq!("lienthong.gov.vn/log/000.01.41.H49".parse::<LogOrigin>().unwrap(), first);
    let third = LogOrigin { generation: 3, ..first };
    assert_eq!(third.to_string(), "lienthong.gov.vn/log/000.01.41.H49/3");
    assert_eq!(third.to_string().parse::<LogOrigin>().unwrap(), third);
    for bad in [
        "lienthong.gov.vn/log/000.01.41.H49/1",
        "lienthong.gov.vn/log/000.01.41.H49/03",
        "lienthong.gov.vn/log/000.01.41.H49/",
        "lienthong.gov.vn/log/000.01.41.H49/+3",
        "lienthong.gov.vn/log/000.01.41.h49",
        "lienthong.gov.vn/log/",
        "example.com/log/000.01.41.H49",
        "cosignature/v1",
    ] {
        assert!(matches!(bad.parse::<LogOrigin>(), Err(CheckpointError::Origin { .. })), "{bad}");
    }
    assert_eq!(witness_key_name(&code("000.00.41.H49")), "lienthong.gov.vn/witness/000.00.41.H49");
    assert_eq!(witness_from_key_name("lienthong.gov.vn/witness/000.00.41.H49"), Some(code("000.00.41.H49")));
    assert_eq!(witness_from_key_name("lienthong.gov.vn/log/000.00.41.H49"), None);
}

#[test]
fn a_checkpoint_reads_as_the_c2sp_example_shows() {
    let checkpoint = Checkpoint::new(origin(), 3, tree(3).root());
    let body = checkpoint.body();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "lienthong.gov.vn/log/000.01.41.H49");
    assert_eq!(lines[1], "3");
    assert_eq!(b64(lines[2]), tree(3).root());
    assert_eq!(Checkpoint::parse_body(&body).unwrap(), checkpoint);
    let with_extension = Checkpoint { extensions: vec!["note to self".into()], ..checkpoint.clone() };
    assert_eq!(Checkpoint::parse_body(&with_extension.body()).unwrap(), with_extension);
}

#[test]
fn malformed_bodies_are_refused_with_the_line_at_fault() {
    let root = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    let o = "lienthong.gov.vn/log/000.01.41.H49";
    let parse = |text: String| Checkpoint::parse_body(&text);
    assert!(parse(format!("{o}\n0\n{root}\n")).is_ok());
    assert_eq!(parse(format!("{o}\n0\n{root}")), Err(CheckpointError::Body("no final newline")));
    assert_eq!(parse(format!("{o}\n")), Err(CheckpointError::Body("no tree size line")));
    assert_eq!(parse(format!("{o}\n0\n")), Err(CheckpointError::Body("no root hash line")));
    assert_eq!(parse(format!("{o}\n00\n{root}\n")), Err(CheckpointError::Size("00".into())));
    assert_eq!(parse(format!("{o}\n+1\n{root}\n")), Err(CheckpointError::Size("+1".into())));
    assert_eq!(
        parse(format!("{o}\n9223372036854775808\n{root}\n")),
        Err(CheckpointError::Size("9223372036854775808".into()))
    );
    assert!(parse(format!("{o}\n9223372036854775807\n{root}\n")).is_ok());
    assert_eq!(parse(format!("{o}\n1\nAAAA\n")), Err(CheckpointError::Root));
    assert_eq!(parse(format!("{o}\n1\n{}\n", &root[..43])), Err(CheckpointError::Root));
    assert_eq!(
        parse(format!("{o}\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")),
        Err(CheckpointError::EmptyTreeRoot)
    );
    assert_eq!(parse(format!("{o}\n0\n{root}\n\n")), Err(CheckpointError::Extensions));
    assert_eq!(parse(format!("{o}\n0\n{root}\n{}\n", "x".repeat(257))), Err(CheckpointError::Extensions));
    assert_eq!(parse(format!("{o}\n0\n{root}\na\nb\nc\nd\ne\n")), Err(CheckpointError::Extensions));
    assert!(parse(format!("{o}\n0\n{root}\na\nb\nc\nd\n")).is_ok());
}

#[test]
fn checkpoints_sign_and_verify_with_every_seal_key_type() {
    let checkpoint = Checkpoint::new(origin(), 5, tree(5).root());
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    for key in [
        PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap(),
        rsa_key(),
    ] {
        let signed = checkpoint.sign(&key).unwrap();
        let text = signed.to_text();
        let parsed = SignedCheckpoint::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, signed);
        parsed.verify(key.public_key()).unwrap();
        assert_eq!(
            parsed.verify(other.public_key()),
            Err(CheckpointError::NotSignedByLog { origin: origin().to_string() })
        );
        // A changed size or root breaks the signature.
        let altered = text.replacen("\n5\n", "\n6\n", 1);
        assert!(matches!(
            SignedCheckpoint::parse(altered.as_bytes()).unwrap().verify(key.public_key()),
            Err(CheckpointError::BadSignature(_))
        ));
    }
}

#[test]
fn cosignatures_bind_the_checkpoint_the_time_and_the_witness_key() {
    let checkpoint = Checkpoint::new(origin(), 5, tree(5).root());
    let district = code("000.00.41.H49");
    let at = datetime!(2026-11-23 08:15:00 UTC);
    for key in [
        PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap(),
        rsa_key(),
    ] {
        let cosig = Cosignature::sign(&checkpoint, district, &key, at).unwrap();
        assert_eq!(cosig.at(), at);
        let line = cosig.line();
        assert!(line.starts_with("— lienthong.gov.vn/witness/000.00.41.H49 "), "{line}");
        let parsed = Cosignature::parse_line(&line).unwrap();
        assert_eq!(parsed, cosig);
        parsed.verify(&checkpoint, key.public_key()).unwrap();
        let mut later = parsed.clone();
        later.time += 1;
        assert_eq!(
            later.verify(&checkpoint, key.public_key()),
            Err(CosignatureError::BadSignature { witness: district })
        );
        let bigger = Checkpoint::new(origin(), 6, tree(6).root());
        assert!(parsed.verify(&bigger, key.public_key()).is_err());
        let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert!(matches!(parsed.verify(&checkpoint, other.public_key()), Err(CosignatureError::KeyId { .. })));
        // Another agency's name on the same bytes is another key ID.
        let mut renamed = parsed.clone();
        renamed.witness = code("000.00.42.H49");
        assert!(matches!(renamed.verify(&checkpoint, key.public_key()), Err(CosignatureError::KeyId { .. })));
        // Added to the signed checkpoint, the line comes back out.
        let mut signed = checkpoint.sign(&other).unwrap();
        signed.add_cosignature(&cosig).unwrap();
        let reparsed = SignedCheckpoint::parse(signed.to_text().as_bytes()).unwrap();
        reparsed.verify(other.public_key()).unwrap();
        assert_eq!(reparsed.note().signatures().len(), 2);
        assert_eq!(reparsed.without_cosignatures().note().signatures().len(), 1);
        assert!(matches!(signed.add_cosignature(&cosig), Err(CheckpointError::Note(_))));
    }
    // Lines that are not cosignatures.
    assert!(matches!(
        Cosignature::parse_line("— lienthong.gov.vn/log/000.01.41.H49 AAAAAAAAAAAAAAAAAAAAAAE=\n"),
        Err(CosignatureError::Name { .. })
    ));
    assert!(matches!(
        Cosignature::parse_line("— lienthong.gov.vn/witness/000.00.41.H49 AAAAAAAAAAAAAAAA\n"),
        Err(CosignatureError::TooShort { len: 8 })
    ));
    assert!(matches!(
        Cosignature::parse_line("— lienthong.gov.vn/witness/000.00.41.H49 AAAAAID/////////AQ==\n"),
        Err(CosignatureError::Time)
    ));
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    assert_eq!(
        Cosignature::sign(&checkpoint, district, &key, datetime!(1969-12-31 23:59:59 UTC)),
        Err(CosignatureError::Time)
    );
}

/// A child's log and seal, and a parent witness that has co-signed nothing yet.
struct Child {
    tree: MemoryTree,
    key: PrivateKey,
}

impl Child {
    fn new(size: u64) -> Self {
        Child { tree: tree(size), key: PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap() }
    }

    fn grow(&mut self, by: u64) {
        for i in self.tree.size()..self.tree.size() + by {
            self.tree.push(&leaf_bytes(i)).unwrap();
        }
    }

    fn checkpoint(&self) -> SignedCheckpoint {
        Checkpoint::new(origin(), self.tree.size(), self.tree.root()).sign(&self.key).unwrap()
    }

    fn request(&self, old_size: u64) -> AddCheckpoint {
        let proof = consistency_proof(&self.tree, old_size, self.tree.size()).unwrap();
        AddCheckpoint { old_size, proof, checkpoint: self.checkpoint() }
    }
}

#[test]
fn a_log_that_only_appends_is_co_signed_step_after_step() {
    let mut child = Child::new(0);
    let key = child.key.public_key().clone();
    // First contact: from the empty tree, no proof.
    let mut last: Option<SignedCheckpoint> = None;
    for step in [0u64, 1, 2, 5, 5, 100, 1000] {
        child.grow(step);
        let request = child.request(last.as_ref().map_or(0, |l| l.checkpoint().size));
        // The request travels as text.
        let request = AddCheckpoint::parse(request.to_text().as_bytes()).unwrap();
        check_checkpoint(last.as_ref(), &request, &key).unwrap();
        last = Some(request.checkpoint);
    }
    assert_eq!(last.unwrap().checkpoint().size, 1113);
}

fn inconsistent(refusal: WitnessRefusal) -> (ForkReason, u64, u64) {
    match refusal {
        WitnessRefusal::Inconsistent(evidence) => {
            (evidence.reason, evidence.witnessed.checkpoint().size, evidence.presented.checkpoint().size)
        }
        other => panic!("expected evidence, got {other:?}"),
    }
}

#[test]
fn a_fork_a_rollback_and_a_rewritten_leaf_are_refused_with_evidence() {
    let mut child = Child::new(10);
    let key = child.key.public_key().clone();
    let witnessed = child.checkpoint();

    // A fork: another tree of the same size, signed by the same log.
    let mut forked = Child { tree: MemoryTree::new(), key: PrivateKey::from_pkcs8_der(child.key.pkcs8_der()).unwrap() };
    for i in 0..10 {
        forked.tree.push(format!("forked {i}").as_bytes()).unwrap();
    }
    let refusal = check_checkpoint(Some(&witnessed), &forked.request(10), &key).unwrap_err();
    let (reason, a, b) = inconsistent(refusal.clone());
    assert_eq!((reason, a, b), (ForkReason::SameSizeDifferentRoot, 10, 10));
    // The evidence is both signed checkpoints, each verifiable on its own.
    let WitnessRefusal::Inconsistent(evidence) = refusal else { unreachable!() };
    evidence.witnessed.verify(&key).unwrap();
    evidence.presented.verify(&key).unwrap();
    assert_ne!(evidence.witnessed.checkpoint().root, evidence.presented.checkpoint().root);
    // Whatever old size the forked log claims.
    assert!(matches!(
        check_checkpoint(Some(&witnessed), &forked.request(0), &key),
        Err(WitnessRefusal::Inconsistent(_))
    ));

    // A rollback: an older, smaller checkpoint presented after a larger one was co-signed.
    let small = Child { tree: tree(4), key: PrivateKey::from_pkcs8_der(child.key.pkcs8_der()).unwrap() };
    let (reason, a, b) = inconsistent(check_checkpoint(Some(&witnessed), &small.request(4), &key).unwrap_err());
    assert_eq!((reason, a, b), (ForkReason::Rollback, 10, 4));

    // A rewrite: leaf 3 changed in the log's store, then the log grew; no valid proof exists,
    // and the one computed from the rewritten tree does not verify.
    let mut rewritten = MemoryTree::new();
    for i in 0..10 {
        rewritten.push(if i == 3 { b"rewritten".to_vec() } else { leaf_bytes(i) }.as_slice()).unwrap();
    }
    let mut rewriter = Child { tree: rewritten, key: PrivateKey::from_pkcs8_der(child.key.pkcs8_der()).unwrap() };
    rewriter.grow(5);
    let (reason, a, b) = inconsistent(check_checkpoint(Some(&witnessed), &rewriter.request(10), &key).unwrap_err());
    assert_eq!((reason, a, b), (ForkReason::ProofFailed(ProofError::OldRootMismatch), 10, 15));

    // The honest log grows and is co-signed.
    child.grow(5);
    check_checkpoint(Some(&witnessed), &child.request(10), &key).unwrap();
}

#[test]
fn other_refusals_are_typed() {
    let child = Child::new(10);
    let key = child.key.public_key().clone();
    let witnessed =
        Child { tree: tree(6), key: PrivateKey::from_pkcs8_der(child.key.pkcs8_der()).unwrap() }.checkpoint();
    // The log believes the witness is at another size.
    assert_eq!(
        check_checkpoint(Some(&witnessed), &child.request(5), &key),
        Err(WitnessRefusal::SizeMismatch { claimed: 5, witnessed: 6 })
    );
    assert_eq!(
        check_checkpoint(None, &child.request(6), &key),
        Err(WitnessRefusal::SizeMismatch { claimed: 6, witnessed: 0 })
    );
    // A proof where none is needed.
    let mut request = child.request(0);
    request.proof.push(EMPTY_ROOT);
    assert_eq!(check_checkpoint(None, &request, &key), Err(WitnessRefusal::ProofNotEmpty { old: 0, new: 10 }));
    let mut same = child.request(10);
    same.proof.push(EMPTY_ROOT);
    assert_eq!(
        check_checkpoint(Some(&child.checkpoint()), &same, &key),
        Err(WitnessRefusal::ProofNotEmpty { old: 10, new: 10 })
    );
    // An old size beyond the new one.
    let mut beyond = child.request(10);
    beyond.old_size = 11;
    assert_eq!(check_checkpoint(None, &beyond, &key), Err(WitnessRefusal::OldSizeBeyondNew { old: 11, new: 10 }));
    // Signed by another key, or for another log.
    let stranger = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    assert!(matches!(
        check_checkpoint(None, &child.request(0), stranger.public_key()),
        Err(WitnessRefusal::LogSignature(_))
    ));
    let other_log = LogOrigin { generation: 2, ..origin() };
    let moved = AddCheckpoint {
        old_size: 6,
        proof: consistency_proof(&child.tree, 6, 10).unwrap(),
        checkpoint: Checkpoint::new(other_log, 10, child.tree.root()).sign(&child.key).unwrap(),
    };
    assert_eq!(
        check_checkpoint(Some(&witnessed), &moved, &key),
        Err(WitnessRefusal::WrongOrigin { expected: origin(), presented: other_log })
    );
    // A wrong proof (a hash changed in transit) is refused, with the evidence kept.
    let mut garbled = child.request(6);
    garbled.proof[0][0] ^= 1;
    assert!(matches!(
        check_checkpoint(Some(&witnessed), &garbled, &key),
        Err(WitnessRefusal::Inconsistent(e)) if matches!(e.reason, ForkReason::ProofFailed(_))
    ));
}

#[test]
fn add_checkpoint_bodies_are_read_strictly() {
    let child = Child::new(10);
    let request = child.request(6);
    let text = request.to_text();
    assert!(text.starts_with("old 6\n"));
    assert_eq!(AddCheckpoint::parse(text.as_bytes()).unwrap(), request);
    let bad = |t: &str| AddCheckpoint::parse(t.as_bytes());
    let checkpoint = child.checkpoint().to_text();
    assert_eq!(bad(&format!("old 06\n\n{checkpoint}")), Err(AddCheckpointError::OldLine));
    assert_eq!(bad(&format!("new 6\n\n{checkpoint}")), Err(AddCheckpointError::OldLine));
    assert_eq!(bad(&format!("old 6\nAAAA\n\n{checkpoint}")), Err(AddCheckpointError::ProofLine { line: 1 }));
    assert_eq!(bad("old 6\n"), Err(AddCheckpointError::NoCheckpoint));
    let too_many = format!("old 6\n{}\n{checkpoint}", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n".repeat(65));
    assert!(matches!(bad(&too_many), Err(AddCheckpointError::ProofLine { .. } | AddCheckpointError::NoCheckpoint)));
    let sixty_four = format!("old 6\n{}\n{checkpoint}", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n".repeat(64));
    assert_eq!(AddCheckpoint::parse(sixty_four.as_bytes()).unwrap().proof.len(), 64);
    assert!(matches!(bad(&format!("old 6\n\n{}", &checkpoint[1..])), Err(AddCheckpointError::Checkpoint(_))));
}
