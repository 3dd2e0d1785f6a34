//! Proofs in the evidence with a real test PKI: a commune's log, witnessed by its district and
//! its province, checked offline; every way of breaking it.

use proptest::prelude::*;
use time::OffsetDateTime;

use super::super::Hash;
use super::super::checkpoint::{Checkpoint, LogOrigin, SignedCheckpoint};
use super::super::cosignature::{Cosignature, CosignatureError};
use super::super::evidence::*;
use super::super::leaf::{LogEntry, Via};
use super::super::proof::{MemoryTree, ProofError, inclusion_proof};
use crate::agency::AgencyCode;
use crate::cert::Profile;
use crate::crl::{CrlSet, RevocationReason};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::testing::{Issued, TestCa, day, rsa_key};
use crate::validate::{ChainError, Validator};

fn code(text: &str) -> AgencyCode {
    text.parse().unwrap()
}

const ENVELOPE: Hash = [0x5a; 32];
const INDEX: u64 = 37;

struct World {
    root: TestCa,
    province: TestCa,
    district: TestCa,
    /// The commune's seal: signs the log's checkpoints.
    commune_seal: Issued,
    /// The district's seal (Ed25519): first witness.
    district_seal: Issued,
    /// The province's seal (RSA): second witness.
    province_seal: Issued,
    tree: MemoryTree,
    entry: LogEntry,
}

impl World {
    fn new() -> World {
        let mut root = TestCa::root();
        let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
        let mut district = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
        let commune_seal = district.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
        let district_seal = district.issue_key(
            Profile::Seal,
            "000.00.41.H49",
            "Ủy ban nhân dân huyện Tiên Yên",
            PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap(),
        );
        let province_seal =
            province.issue_key(Profile::Seal, "000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh", rsa_key());
        let entry = LogEntry::Document {
            envelope: ENVELOPE,
            document: "000.01.42.H49,2026/01/05,7/UBND-VP".parse().unwrap(),
            via: Via::Node(code("000.00.41.H49")),
            at: day(5),
        };
        let mut tree = MemoryTree::new();
        for i in 0..100u64 {
            if i == INDEX {
                tree.push(&entry.to_bytes()).unwrap();
            } else {
                tree.push(format!("other event {i}").as_bytes()).unwrap();
            }
        }
        World { root, province, district, commune_seal, district_seal, province_seal, tree, entry }
    }

    fn chain(&self, who: &str) -> Vec<Vec<u8>> {
        let (leaf, cas): (&Issued, Vec<&TestCa>) = match who {
            "commune" => (&self.commune_seal, vec![&self.district, &self.province]),
            "district" => (&self.district_seal, vec![&self.district, &self.province]),
            _ => (&self.province_seal, vec![&self.province]),
        };
        std::iter::once(leaf.cert.der().to_vec()).chain(cas.iter().map(|ca| ca.cert.der().to_vec())).collect()
    }

    fn validator(&mut self, crl_day: i64) -> Validator {
        let mut crls = CrlSet::new();
        for ca in [&mut self.root, &mut self.province, &mut self.district] {
            crls.add(ca.crl(day(crl_day), day(crl_day + 60)));
        }
        Validator::new(vec![self.root.cert.clone()]).with_crls(crls)
    }

    fn checkpoint(&self) -> SignedCheckpoint {
        let origin = LogOrigin::first(code("000.01.41.H49"));
        Checkpoint::new(origin, self.tree.size(), self.tree.root()).sign(&self.commune_seal.key).unwrap()
    }

    fn cosign(&self, signed: &mut SignedCheckpoint, who: &Issued, agency: &str, at: OffsetDateTime) {
        let cosig = Cosignature::sign(signed.checkpoint(), code(agency), &who.key, at).unwrap();
        signed.add_cosignature(&cosig).unwrap();
    }

    /// The proof as a node would put it in the bundle: witnessed by the district on day 10
    /// and the province on day 9.
    fn proof(&self) -> LogProof {
        let mut signed = self.checkpoint();
        self.cosign(&mut signed, &self.district_seal, "000.00.41.H49", day(10));
        self.cosign(&mut signed, &self.province_seal, "000.00.00.H49", day(9));
        let inclusion = inclusion_proof(&self.tree, INDEX, self.tree.size()).unwrap();
        let chains = vec![self.chain("district"), self.chain("commune"), self.chain("province")];
        LogProof::new(&self.entry, INDEX, inclusion, signed, chains)
    }
}

#[test]
fn a_witnessed_entry_verifies_offline_with_its_earliest_witness() {
    let mut world = World::new();
    let validator = world.validator(0);
    let proof = world.proof();
    let bytes = proof.to_bytes();
    let read = LogProof::from_bytes(&bytes).unwrap();
    assert_eq!(read, proof);
    let evidence = read.verify(&ENVELOPE, &validator, day(20)).unwrap();
    assert_eq!(evidence.origin.to_string(), "lienthong.gov.vn/log/000.01.41.H49");
    assert_eq!(evidence.log_chain.agency, code("000.01.41.H49"));
    assert_eq!(evidence.entry, world.entry);
    assert_eq!((evidence.index, evidence.tree_size), (INDEX, 100));
    let witnesses: Vec<_> = evidence.witnesses.iter().map(|w| (w.agency.to_string(), w.at)).collect();
    assert_eq!(witnesses, vec![("000.00.00.H49".to_owned(), day(9)), ("000.00.41.H49".to_owned(), day(10))]);
    assert_eq!(evidence.earliest().unwrap().agency, code("000.00.00.H49"));
    assert_eq!(evidence.earliest_other_than(&code("000.00.00.H49")).unwrap().at, day(10));
    assert!(evidence.rejected.is_empty());
    // What the bundle grows by, printed for the record (not asserted: it depends on keys).
    println!("log proof: {} bytes, of which tlog-proof text {} bytes", bytes.len(), proof.proof.to_text().len());
}

#[test]
fn a_witness_counts_once_at_its_earliest_time() {
    // The district renewed its seal and co-signed again with the new key: one witness, at
    // the first time.
    let mut world = World::new();
    let validator = world.validator(0);
    let renewed = world.district.issue(Profile::Seal, "000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let mut proof = world.proof();
    let cosig =
        Cosignature::sign(proof.proof.checkpoint.checkpoint(), code("000.00.41.H49"), &renewed.key, day(11)).unwrap();
    proof.proof.checkpoint.add_cosignature(&cosig).unwrap();
    proof.chains.push(vec![
        renewed.cert.der().to_vec(),
        world.district.cert.der().to_vec(),
        world.province.cert.der().to_vec(),
    ]);
    let evidence = proof.verify(&ENVELOPE, &validator, day(20)).unwrap();
    let witnesses: Vec<_> = evidence.witnesses.iter().map(|w| (w.agency.to_string(), w.at)).collect();
    assert_eq!(witnesses, vec![("000.00.00.H49".to_owned(), day(9)), ("000.00.41.H49".to_owned(), day(10))]);
}

#[test]
fn the_proof_is_for_one_envelope_one_index_one_tree() {
    let mut world = World::new();
    let validator = world.validator(0);
    let proof = world.proof();
    assert!(matches!(proof.verify(&[0x5b; 32], &validator, day(20)), Err(LogProofError::OtherEnvelope { .. })));
    let mut moved = proof.clone();
    moved.proof.index += 1;
    assert!(matches!(
        moved.verify(&ENVELOPE, &validator, day(20)),
        Err(LogProofError::Inclusion(ProofError::RootMismatch))
    ));
    let mut garbled = proof.clone();
    garbled.proof.proof[2][7] ^= 0x40;
    assert!(matches!(garbled.verify(&ENVELOPE, &validator, day(20)), Err(LogProofError::Inclusion(_))));
    let mut short = proof.clone();
    short.proof.proof.pop();
    assert!(matches!(
        short.verify(&ENVELOPE, &validator, day(20)),
        Err(LogProofError::Inclusion(ProofError::WrongLength { .. }))
    ));
    let mut other_leaf = proof;
    other_leaf.proof.extra = Some(
        LogEntry::Signed { receipt: [1; 32], kind: crate::document::ReceiptKind::Hop, envelope: ENVELOPE, at: day(5) }
            .to_bytes(),
    );
    assert!(matches!(
        other_leaf.verify(&ENVELOPE, &validator, day(20)),
        Err(LogProofError::Inclusion(ProofError::RootMismatch))
    ));
}

#[test]
fn altered_signatures_refuse_the_whole_proof() {
    let mut world = World::new();
    let validator = world.validator(0);
    let text = world.proof().proof.to_text();
    let chains = world.proof().chains;
    // A cosignature line whose time was changed: the witness's key is known, so the note is
    // refused (C2SP signed-note: a known key's failing signature rejects the note).
    let lines: Vec<&str> = text.lines().collect();
    let district_line = lines.iter().find(|l| l.contains("/witness/000.00.41.H49")).unwrap();
    let mut cosig = Cosignature::parse_line(district_line).unwrap();
    cosig.time -= 86_400 * 5;
    let backdated = text.replace(district_line, cosig.line().trim_end());
    let proof = LogProof { proof: TlogProof::parse(backdated.as_bytes()).unwrap(), chains: chains.clone() };
    assert!(matches!(
        proof.verify(&ENVELOPE, &validator, day(20)),
        Err(LogProofError::Cosignature(CosignatureError::BadSignature { .. }))
    ));
    // The log's line altered.
    let log_line = lines.iter().find(|l| l.contains("/log/000.01.41.H49 ")).unwrap();
    let mut sig = super::super::note::NoteSignature::parse_line(log_line).unwrap();
    let last = sig.signature.len() - 1;
    sig.signature[last] ^= 1;
    let forged = text.replace(log_line, sig.line().trim_end());
    let proof = LogProof { proof: TlogProof::parse(forged.as_bytes()).unwrap(), chains };
    assert!(matches!(proof.verify(&ENVELOPE, &validator, day(20)), Err(LogProofError::BadLogSignature(_))));
}

#[test]
fn witnesses_that_cannot_be_checked_are_not_counted() {
    let mut world = World::new();
    let validator = world.validator(0);
    // Without the district's chain: only the province counts.
    let mut proof = world.proof();
    proof.chains.remove(0);
    let evidence = proof.verify(&ENVELOPE, &validator, day(20)).unwrap();
    assert_eq!(evidence.witnesses.len(), 1);
    assert_eq!(evidence.rejected.len(), 1);
    assert!(matches!(evidence.rejected[0].reason, RejectReason::NoCertificate));
    // Without any witness chain: not witnessed.
    let mut proof = world.proof();
    proof.chains = vec![world.chain("commune")];
    match proof.verify(&ENVELOPE, &validator, day(20)) {
        Err(LogProofError::NotWitnessed { rejected }) => assert_eq!(rejected.len(), 2),
        other => panic!("{other:?}"),
    }
    // The log co-signing itself is no witness.
    let mut signed = world.checkpoint();
    world.cosign(&mut signed, &world.commune_seal, "000.01.41.H49", day(9));
    let inclusion = inclusion_proof(&world.tree, INDEX, 100).unwrap();
    let proof = LogProof::new(&world.entry, INDEX, inclusion, signed, vec![world.chain("commune")]);
    match proof.verify(&ENVELOPE, &validator, day(20)) {
        Err(LogProofError::NotWitnessed { rejected }) => {
            assert!(matches!(rejected[..], [Rejected { reason: RejectReason::SelfWitness, .. }]));
        }
        other => panic!("{other:?}"),
    }
    // Without the log's chain, nothing stands.
    let mut proof = world.proof();
    proof.chains.remove(1);
    assert!(matches!(proof.verify(&ENVELOPE, &validator, day(20)), Err(LogProofError::NotSignedByLog { .. })));
}

#[test]
fn cosignature_times_are_judged_against_revocation_and_the_clock() {
    let mut world = World::new();
    // The district's seal revoked on day 8 (key compromise), before its cosignature on day
    // 10: that cosignature does not count; the province's (day 9) does.
    let serial = world.district_seal.cert.serial.clone();
    world.district.revoke(&serial, day(8), RevocationReason::KeyCompromise);
    let validator = world.validator(15);
    let evidence = world.proof().verify(&ENVELOPE, &validator, day(20)).unwrap();
    assert_eq!(evidence.witnesses.len(), 1);
    assert_eq!(evidence.earliest().unwrap().agency, code("000.00.00.H49"));
    assert!(matches!(
        evidence.rejected[..],
        [Rejected { reason: RejectReason::Chain(ChainError::Revoked { .. }), .. }]
    ));

    // Revoked on day 12, after it co-signed: it counts (the CRL says so, dated after).
    let mut world = World::new();
    let serial = world.district_seal.cert.serial.clone();
    world.district.revoke(&serial, day(12), RevocationReason::KeyCompromise);
    let validator = world.validator(15);
    assert_eq!(world.proof().verify(&ENVELOPE, &validator, day(20)).unwrap().witnesses.len(), 2);

    // The log's own seal revoked before the earliest cosignature: refused.
    let mut world = World::new();
    let serial = world.commune_seal.cert.serial.clone();
    world.district.revoke(&serial, day(3), RevocationReason::KeyCompromise);
    let validator = world.validator(15);
    assert!(matches!(
        world.proof().verify(&ENVELOPE, &validator, day(20)),
        Err(LogProofError::LogChain { error: ChainError::Revoked { .. }, .. })
    ));

    // A cosignature from the verifier's future (beyond five minutes of skew).
    let mut world = World::new();
    let validator = world.validator(0);
    assert!(matches!(
        world.proof().verify(&ENVELOPE, &validator, day(9)),
        Err(LogProofError::FutureCosignature { .. })
    ));
    world.proof().verify(&ENVELOPE, &validator, day(10) + MAX_COSIGNATURE_SKEW).unwrap();
}

#[test]
fn budgets_are_enforced() {
    let mut world = World::new();
    let validator = world.validator(0);
    // Seventeen cosignature lines: refused before any is checked.
    let mut signed = world.checkpoint();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    for i in 1..=MAX_COSIGNATURES + 1 {
        let agency = code(&format!("000.00.{i:02}.H49"));
        let cosig = Cosignature::sign(signed.checkpoint(), agency, &key, day(9)).unwrap();
        signed.add_cosignature(&cosig).unwrap();
    }
    let inclusion = inclusion_proof(&world.tree, INDEX, 100).unwrap();
    let proof = LogProof::new(&world.entry, INDEX, inclusion.clone(), signed, vec![world.chain("commune")]);
    let proof = LogProof::from_bytes(&proof.to_bytes()).unwrap();
    assert!(matches!(proof.verify(&ENVELOPE, &validator, day(20)), Err(LogProofError::TooManyCosignatures)));
    // Too many chains, or too long a chain, or too many bytes.
    let mut many = world.proof();
    many.chains = vec![world.chain("commune"); MAX_COSIGNATURES + 2];
    assert!(matches!(LogProof::from_bytes(&many.to_bytes()), Err(LogProofError::Format(_))));
    let mut long = world.proof();
    long.chains[0] = vec![world.chain("commune")[0].clone(); 9];
    assert!(matches!(LogProof::from_bytes(&long.to_bytes()), Err(LogProofError::Format(_))));
    let mut big = world.proof();
    big.chains[0].push(vec![0; MAX_LOG_PROOF_BYTES]);
    assert!(matches!(LogProof::from_bytes(&big.to_bytes()), Err(LogProofError::Cbor(_))));
    // 65 inclusion hashes in the text.
    let mut text = world.proof().proof.to_text();
    let extra_lines = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n".repeat(65);
    text = text.replacen(&format!("index {INDEX}\n"), &format!("index {INDEX}\n{extra_lines}"), 1);
    assert!(matches!(
        TlogProof::parse(text.as_bytes()),
        Err(LogProofError::Inclusion(ProofError::TooManyHashes { .. }))
    ));
}

#[test]
fn the_tlog_proof_text_is_the_c2sp_format() {
    let world = World::new();
    let proof = world.proof();
    let text = proof.proof.to_text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("c2sp.org/tlog-proof@v1"));
    assert!(lines.next().unwrap().starts_with("extra "));
    assert_eq!(lines.next(), Some("index 37"));
    assert_eq!(TlogProof::parse(text.as_bytes()).unwrap(), proof.proof);
    for (bad, what) in [
        (text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "header"),
        (text.replacen("index 37", "index 037", 1), "index"),
        (text.replacen("index 37\n", "", 1), "no index"),
        (text.replacen("extra ", "extra !", 1), "extra"),
        (text.replace("\n\n", "\n"), "no blank line"),
    ] {
        assert!(TlogProof::parse(bad.as_bytes()).is_err(), "{what}");
    }
    // A proof without the leaf cannot be checked for an envelope.
    let mut no_leaf = proof;
    no_leaf.proof.extra = None;
    assert!(matches!(LogProof::from_bytes(&no_leaf.to_bytes()), Err(LogProofError::Format(_))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any changed byte of a proof is refused, or proves the same entry at the same place
    /// with at most the same witnesses at the same times: tampering never adds or moves
    /// what the proof establishes.
    #[test]
    fn a_changed_byte_never_proves_more(pos in any::<usize>(), xor in 1u8..=255) {
        let mut world = World::new();
        let validator = world.validator(0);
        let original = world.proof();
        let mut bytes = original.to_bytes();
        let pos = pos % bytes.len();
        bytes[pos] ^= xor;
        let Ok(proof) = LogProof::from_bytes(&bytes) else { return Ok(()) };
        let Ok(evidence) = proof.verify(&ENVELOPE, &validator, day(20)) else { return Ok(()) };
        prop_assert_eq!(evidence.entry, world.entry);
        prop_assert_eq!(evidence.index, INDEX);
        prop_assert_eq!(evidence.tree_size, 100);
        for w in &evidence.witnesses {
            prop_assert!([("000.00.00.H49", day(9)), ("000.00.41.H49", day(10))].contains(&(w.agency.to_string().as_str(), w.at)));
        }
    }

    /// Arbitrary bytes never panic the decoders.
    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = LogProof::from_bytes(&bytes);
        let _ = TlogProof::parse(&bytes);
        let _ = SignedCheckpoint::parse(&bytes);
        let _ = super::super::witness::AddCheckpoint::parse(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Cosignature::parse_line(text);
        }
    }
}
