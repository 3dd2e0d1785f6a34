//! Targets for the transparency log's decoders (`pki::tlog`): the signed checkpoint notes, the
//! cosignature lines and the `add-checkpoint` requests a witness reads, the log entries and
//! the proofs a verifier reads from a bundle, and the Merkle proof verifiers under all of them.
//!
//! They run in a fixed log world of their own (`fixtures/tlog/`, written with the seeds by
//! `tests/it/fuzz_corpus.rs`): a root and its CRLs, the seal chain of the log (district
//! [`fixtures::OWN`], ECDSA P-256), of its witness (the province [`fixtures::PARENT`],
//! Ed25519) and of a second witness whose seal its CA revoked ([`fixtures::REVOKED_SEAL`],
//! RSA), the checkpoint of the log's 100 leaves co-signed by both, and the size-60 checkpoint
//! the witness co-signed before. The main fixture PKI keeps no CA keys, so proofs co-signed
//! by two agencies cannot be made under it afterwards; this world keeps everything a target
//! needs to verify (certificates, CRLs, signed notes) and no private key.

use std::sync::OnceLock;

use pki::tlog::proof::root_at;
use pki::tlog::{AddCheckpoint, Hash, LogEntry};
use pki::tlog::{
    Cosignature, LogProof, MemoryTree, Note, NoteSignature, SignedCheckpoint, TlogProof, WitnessRefusal,
    check_checkpoint, consistency_proof, inclusion_proof, leaf_hash, verify_consistency, verify_inclusion,
};
use pki::{AgencyCode, Certificate, Crl, RevocationMode, Validator};

use super::fixtures;

/// The envelope digest every seed proof is about (the entry at [`INDEX`] names it).
pub const ENVELOPE: Hash = [0x4c; 32];
/// Number of leaves under the fixture checkpoint.
pub const TREE_SIZE: u64 = 100;
/// The leaf of [`ENVELOPE`].
pub const INDEX: u64 = 37;
/// The size of the checkpoint the witness co-signed before ([`last_checkpoint`]).
pub const LAST_SIZE: u64 = 60;
/// The witnesses of the fixture log: the one that counts, and the one whose seal is revoked.
pub const WITNESSES: [&str; 2] = [fixtures::PARENT, fixtures::REVOKED_SEAL];

const ROOT_PEM: &str = include_str!("../fixtures/tlog/root.pem");
const CRLS_PEM: &str = include_str!("../fixtures/tlog/crls.pem");
const LOG_CHAIN_PEM: &str = include_str!("../fixtures/tlog/log.chain.pem");
const WITNESS_CHAIN_PEM: [&str; 2] =
    [include_str!("../fixtures/tlog/witness-1.chain.pem"), include_str!("../fixtures/tlog/witness-2.chain.pem")];
const CHECKPOINT: &str = include_str!("../fixtures/tlog/checkpoint.note");
const LAST_CHECKPOINT: &str = include_str!("../fixtures/tlog/last.note");

/// The fixed log world, read once.
struct World {
    validator: Validator,
    /// The log's seal chain, then each witness's, as DER (leaf first): what a proof carries.
    chains: Vec<Vec<Vec<u8>>>,
    log: Certificate,
    witnesses: Vec<Certificate>,
    checkpoint: SignedCheckpoint,
    last: SignedCheckpoint,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let certs = |name: &str, pem: &str| {
            Certificate::from_pem_all(pem).unwrap_or_else(|e| panic!("fuzz/fixtures/tlog/{name}: {e}"))
        };
        let mut root = certs("root.pem", ROOT_PEM);
        let crls = Crl::from_pem_all(CRLS_PEM).unwrap_or_else(|e| panic!("fuzz/fixtures/tlog/crls.pem: {e}"));
        let validator = Validator::new(vec![root.remove(0)])
            .with_crls(crls.into_iter().collect())
            .with_mode(RevocationMode::Required);
        let log_chain = certs("log.chain.pem", LOG_CHAIN_PEM);
        let witness_chains: Vec<Vec<Certificate>> =
            WITNESS_CHAIN_PEM.iter().map(|pem| certs("witness-N.chain.pem", pem)).collect();
        let chains = std::iter::once(&log_chain)
            .chain(&witness_chains)
            .map(|chain| chain.iter().map(|c| c.der().to_vec()).collect())
            .collect();
        let note = |name: &str, text: &str| {
            SignedCheckpoint::parse(text.as_bytes()).unwrap_or_else(|e| panic!("fuzz/fixtures/tlog/{name}: {e}"))
        };
        World {
            validator,
            chains,
            log: log_chain[0].clone(),
            witnesses: witness_chains.iter().map(|c| c[0].clone()).collect(),
            checkpoint: note("checkpoint.note", CHECKPOINT),
            last: note("last.note", LAST_CHECKPOINT),
        }
    })
}

/// The checkpoint the fixture witness co-signed last (size [`LAST_SIZE`]).
pub fn last_checkpoint() -> &'static SignedCheckpoint {
    &world().last
}

/// The witness seal certificate of `agency`, if it is a fixture witness.
fn witness_cert(agency: &AgencyCode) -> Option<&'static Certificate> {
    world().witnesses.iter().find(|c| c.agency.as_ref() == Some(agency))
}

/// The text formats of the log and its witnesses. The first byte picks what the rest is:
///
/// - 0: a signed checkpoint note, as a witness, an auditor or `lienthong log verify` reads
///   it. Properties: a note that reads writes back to the same bytes; so does a checkpoint,
///   whose body is the note's text; every cosignature line reads back to itself; the note
///   with its cosignatures removed reads again. Accepted: the log's seal signed it.
/// - 1: one cosignature line. Properties: it writes back to itself, as a cosignature and as
///   a note signature. Accepted: it verifies over the fixture checkpoint by a fixture witness.
/// - 2 and 3: an `add-checkpoint` request body, checked by the witness against the checkpoint
///   it co-signed last (2) or as its first (3). Properties: the request writes back to the
///   same bytes; a co-signed checkpoint is signed by the log, for the same log, not smaller,
///   consistent with the last one; refusal evidence holds two checkpoints the log signed.
///   Accepted: the witness would co-sign.
pub fn checkpoint(data: &[u8]) -> bool {
    let Some((&selector, input)) = data.split_first() else { return false };
    match selector % 4 {
        0 => checkpoint_note(input),
        1 => cosignature_line(input),
        2 => add_checkpoint(input, Some(last_checkpoint())),
        _ => add_checkpoint(input, None),
    }
}

fn log_key() -> &'static pki::algorithm::PublicKey {
    world().log.public_key.as_ref().unwrap_or_else(|e| panic!("fuzz/fixtures/tlog/log.chain.pem: {e}"))
}

fn checkpoint_note(input: &[u8]) -> bool {
    let note = Note::parse(input);
    if let Ok(note) = &note {
        assert_eq!(note.to_text().as_bytes(), input, "a note has exactly one text form");
        for sig in note.signatures() {
            assert_eq!(NoteSignature::parse_line(&sig.line()).as_ref(), Ok(sig), "a signature line reads back");
        }
    }
    let Ok(signed) = SignedCheckpoint::parse(input) else { return false };
    let Ok(note) = note else { panic!("a checkpoint was read from a note that does not read") };
    assert_eq!(signed.note(), &note);
    assert_eq!(signed.to_text().as_bytes(), input, "a signed checkpoint writes back to its bytes");
    let checkpoint = signed.checkpoint();
    assert_eq!(checkpoint.body(), note.text(), "a checkpoint's body is the note's text");
    assert_eq!(pki::tlog::Checkpoint::parse_body(&checkpoint.body()).as_ref(), Ok(checkpoint));
    assert_eq!(checkpoint.origin.to_string().parse().ok(), Some(checkpoint.origin), "one origin string per log");
    for sig in note.signatures() {
        if let Ok(Some(cosig)) = Cosignature::from_note_signature(sig) {
            assert_eq!(&cosig.to_note_signature(), sig, "a cosignature line writes back to itself");
            let _ = cosig.at();
            if let Some(cert) = witness_cert(&cosig.witness)
                && let Ok(key) = &cert.public_key
            {
                let _ = cosig.verify(checkpoint, key);
            }
        }
    }
    let own = signed.log_signatures().count();
    let bare = signed.without_cosignatures();
    assert_eq!(bare.note().signatures().len(), own, "without cosignatures, the log's lines remain");
    if own > 0 {
        let again = SignedCheckpoint::parse(bare.to_text().as_bytes());
        assert_eq!(again.as_ref(), Ok(&bare), "a checkpoint without its cosignatures reads again");
    }
    signed.verify(log_key()).is_ok()
}

fn cosignature_line(input: &[u8]) -> bool {
    let Ok(line) = std::str::from_utf8(input) else { return false };
    if let Ok(sig) = NoteSignature::parse_line(line) {
        let written = sig.line();
        assert!(written == line || written.strip_suffix('\n') == Some(line), "a signature line writes back to itself");
    }
    let Ok(cosig) = Cosignature::parse_line(line) else { return false };
    let written = cosig.line();
    assert!(written == line || written.strip_suffix('\n') == Some(line), "a cosignature line writes back to itself");
    assert_eq!(Cosignature::parse_line(&written).as_ref().ok(), Some(&cosig));
    let _ = cosig.at();
    let Some(cert) = witness_cert(&cosig.witness) else { return false };
    let Ok(key) = &cert.public_key else { return false };
    cosig.verify(world().checkpoint.checkpoint(), key).is_ok()
}

fn add_checkpoint(input: &[u8], last: Option<&SignedCheckpoint>) -> bool {
    let Ok(request) = AddCheckpoint::parse(input) else { return false };
    assert_eq!(request.to_text().as_bytes(), input, "an add-checkpoint request writes back to its bytes");
    let presented = &request.checkpoint;
    let new = presented.checkpoint();
    match check_checkpoint(last, &request, log_key()) {
        Ok(()) => {
            assert!(presented.verify(log_key()).is_ok(), "a co-signed checkpoint is signed by the log");
            if let Some(last) = last {
                let old = last.checkpoint();
                assert_eq!(old.origin, new.origin, "a witness co-signs the log it keeps");
                assert!(new.size >= old.size, "a witness never co-signs a smaller tree");
                if new.size == old.size {
                    assert_eq!(new.root, old.root, "one size, one root");
                } else {
                    assert!(
                        verify_consistency(old.size, new.size, &old.root, &new.root, &request.proof).is_ok(),
                        "a co-signed checkpoint provably extends the last one"
                    );
                }
            }
            true
        }
        Err(WitnessRefusal::Inconsistent(evidence)) => {
            let Some(last) = last else { panic!("evidence against a log the witness never co-signed") };
            assert_eq!(evidence.witnessed, last.without_cosignatures(), "evidence holds the co-signed checkpoint");
            assert_eq!(evidence.witnessed.checkpoint().origin, evidence.presented.checkpoint().origin);
            for signed in [&evidence.witnessed, &evidence.presented] {
                assert!(signed.verify(log_key()).is_ok(), "evidence holds only checkpoints the log signed");
                assert_eq!(signed.log_signatures().count(), signed.note().signatures().len());
            }
            false
        }
        Err(_) => false,
    }
}

/// A log entry (leaf bytes), as carried in a proof or read from a log being audited.
/// Properties: it writes back to the same bytes, so its leaf hash is that of the input; its
/// document id prints back as it reads. Accepted: it decodes.
pub fn log_entry(data: &[u8]) -> bool {
    let Ok(entry) = LogEntry::from_bytes(data) else { return false };
    assert_eq!(entry.to_bytes(), data, "a log entry has exactly one encoding");
    assert_eq!(entry.leaf_hash(), leaf_hash(data));
    assert_eq!(LogEntry::from_bytes(&entry.to_bytes()).as_ref(), Ok(&entry));
    if let LogEntry::Document { document, .. } = &entry {
        assert_eq!(document.to_string().parse().ok().as_ref(), Some(document), "a document id reads back");
    }
    let _ = (entry.envelope(), entry.at());
    true
}

/// A log proof from a bundle, then its verification for [`ENVELOPE`] against the fixture
/// root and CRLs at [`fixtures::NOW`], as `lienthong verify` does. The first byte picks the
/// form: even, the whole CBOR [`LogProof`]; odd, the `tlog-proof` text alone, carried with
/// the fixture chains (so the fuzzer mutates the text without the CBOR length in the way).
/// Properties: what reads writes back to the same bytes; verified evidence names the
/// envelope, a leaf inside the tree, the log's own seal, and at least one witness other than
/// the log, each once, earliest first, none in the future. Accepted: verified.
pub fn log_proof(data: &[u8]) -> bool {
    let Some((&selector, input)) = data.split_first() else { return false };
    let proof = if selector & 1 == 0 {
        let Ok(proof) = LogProof::from_bytes(input) else { return false };
        assert_eq!(proof.to_bytes(), input, "a log proof has exactly one encoding");
        proof
    } else {
        let Ok(text) = TlogProof::parse(input) else { return false };
        assert_eq!(text.to_text().as_bytes(), input, "a tlog-proof writes back to its text");
        LogProof { proof: text, chains: world().chains.clone() }
    };
    let Ok(evidence) = proof.verify(&ENVELOPE, &world().validator, fixtures::NOW) else { return false };
    let leaf = proof.proof.extra.as_deref().unwrap_or_default();
    assert_eq!(evidence.entry.envelope(), &ENVELOPE, "the evidence is about the envelope asked for");
    assert_eq!(evidence.entry.to_bytes(), leaf, "the entry is the proof's leaf");
    assert!(evidence.index < evidence.tree_size, "the leaf is inside the tree");
    let checkpoint = proof.proof.checkpoint.checkpoint();
    assert_eq!((evidence.origin, evidence.tree_size), (checkpoint.origin, checkpoint.size));
    assert!(
        verify_inclusion(&leaf_hash(leaf), evidence.index, checkpoint.size, &proof.proof.proof, &checkpoint.root)
            .is_ok()
    );
    assert_eq!(evidence.log_chain.agency, evidence.origin.agency, "the log's own seal signed the checkpoint");
    assert!(!evidence.witnesses.is_empty(), "verified evidence has a witness");
    for (i, w) in evidence.witnesses.iter().enumerate() {
        assert_ne!(w.agency, evidence.origin.agency, "a log does not witness itself");
        assert_eq!(w.chain.agency, w.agency, "a witness's seal certifies the witness");
        assert!(w.at <= fixtures::NOW + pki::tlog::evidence::MAX_COSIGNATURE_SKEW, "no witness from the future");
        assert!(
            evidence.witnesses[..i].iter().all(|e| e.agency != w.agency && e.at <= w.at),
            "each once, earliest first"
        );
    }
    true
}

/// Number of leaves of the reference tree the proof-checking modes of [`merkle_proof`] use.
pub const REFERENCE_SIZE: u64 = 1024;

/// The reference tree: leaf `i` is the bytes of `i` (little-endian u64).
fn reference() -> &'static MemoryTree {
    static TREE: OnceLock<MemoryTree> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut tree = MemoryTree::new();
        for i in 0..REFERENCE_SIZE {
            if let Err(e) = tree.push(&i.to_le_bytes()) {
                panic!("reference tree: {e}");
            }
        }
        tree
    })
}

/// Reads bytes off the front of the fuzzer's input, zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }

    /// The rest as whole hashes (a partial last one dropped).
    fn hashes(&self) -> Vec<Hash> {
        self.0.chunks_exact(32).filter_map(|c| <Hash>::try_from(c).ok()).collect()
    }
}

/// The Merkle proof verifiers (RFC 9162), the first byte picking the mode:
///
/// - 0: `verify_inclusion` with everything from the input (index, size, leaf hash, root,
///   proof hashes). Property: no panic for any sizes up to 2^64 − 1; an accepted proof has
///   the length the tree's shape asks for.
/// - 1: `verify_consistency` likewise (old size, new size, both roots, proof).
/// - 2: an inclusion proof in a prefix of a reference tree of [`REFERENCE_SIZE`] leaves (size
///   and index from the input), then changed by the input: a length byte (0 keeps the
///   length, 1–127 drops hashes, 128–255 appends zero hashes) and an XOR mask over the leaf
///   hash and the proof. Property: the real proof verifies, and the changed one verifies
///   exactly when nothing changed.
/// - 3: the same for consistency proofs between two prefixes (mask over the old root and the
///   proof; at equal sizes the proof is empty and the roots must match).
///
/// Accepted: the (changed) proof verified. (A changed proof that still verified would be a
/// SHA-256 collision, or a verifier that ignores part of its input.)
pub fn merkle_proof(data: &[u8]) -> bool {
    let Some((&selector, input)) = data.split_first() else { return false };
    let mut input = Bytes(input);
    match selector % 4 {
        0 => {
            let (index, size) = (input.u64(), input.u64());
            let (leaf, root) = (input.take::<32>(), input.take::<32>());
            let proof = input.hashes();
            let ok = verify_inclusion(&leaf, index, size, &proof, &root).is_ok();
            if ok {
                let plan = pki::tlog::inclusion_plan(index, size);
                assert_eq!(
                    plan.map(|p| p.proof_len()).ok(),
                    Some(proof.len()),
                    "an accepted proof has the plan's length"
                );
            }
            ok
        }
        1 => {
            let (old, new) = (input.u64(), input.u64());
            let (old_root, new_root) = (input.take::<32>(), input.take::<32>());
            let proof = input.hashes();
            let ok = verify_consistency(old, new, &old_root, &new_root, &proof).is_ok();
            if ok {
                assert!(0 < old && old <= new, "consistency holds only between a tree and one that extends it");
                let plan = pki::tlog::consistency_plan(old, new);
                assert_eq!(
                    plan.map(|p| p.proof_len()).ok(),
                    Some(proof.len()),
                    "an accepted proof has the plan's length"
                );
                if old == new {
                    assert_eq!(old_root, new_root, "one size, one root");
                }
            }
            ok
        }
        2 => {
            let tree = reference();
            let size = 1 + u64::from(input.u16()) % REFERENCE_SIZE;
            let index = u64::from(input.u16()) % size;
            let [length] = input.take::<1>();
            let root = root_of(tree, size);
            let leaf = leaf_hash(&index.to_le_bytes());
            let real = inclusion_proof(tree, index, size).unwrap_or_else(|e| panic!("inclusion {index}/{size}: {e}"));
            assert_eq!(verify_inclusion(&leaf, index, size, &real, &root), Ok(()), "a real proof verifies");
            let mut changed_leaf = leaf;
            let mut proof = resize(&real, length);
            apply_mask(input.0, &mut changed_leaf, &mut proof);
            let unchanged = changed_leaf == leaf && proof == real;
            let ok = verify_inclusion(&changed_leaf, index, size, &proof, &root).is_ok();
            assert_eq!(ok, unchanged, "an inclusion proof of {index} in {size} verifies exactly when unchanged");
            ok
        }
        _ => {
            let tree = reference();
            let new = 1 + u64::from(input.u16()) % REFERENCE_SIZE;
            let old = 1 + u64::from(input.u16()) % new;
            let [length] = input.take::<1>();
            let (old_root, new_root) = (root_of(tree, old), root_of(tree, new));
            let real = consistency_proof(tree, old, new).unwrap_or_else(|e| panic!("consistency {old}→{new}: {e}"));
            assert_eq!(verify_consistency(old, new, &old_root, &new_root, &real), Ok(()), "a real proof verifies");
            let mut changed_root = old_root;
            let mut proof = resize(&real, length);
            apply_mask(input.0, &mut changed_root, &mut proof);
            let unchanged = changed_root == old_root && proof == real;
            let ok = verify_consistency(old, new, &changed_root, &new_root, &proof).is_ok();
            assert_eq!(ok, unchanged, "a consistency proof {old}→{new} verifies exactly when unchanged");
            ok
        }
    }
}

fn root_of(tree: &MemoryTree, size: u64) -> Hash {
    root_at(tree, size).unwrap_or_else(|e| panic!("root of {size}: {e}"))
}

/// The proof with hashes dropped (1–127) or zero hashes appended (128–255).
fn resize(real: &[Hash], length: u8) -> Vec<Hash> {
    let mut proof = real.to_vec();
    match length {
        0 => {}
        1..=127 => proof.truncate(real.len().saturating_sub(usize::from(length))),
        _ => proof.extend(std::iter::repeat_n([0u8; 32], usize::from(length - 127))),
    }
    proof
}

/// XORs `mask` over `first`, then over the proof's hashes.
fn apply_mask(mask: &[u8], first: &mut Hash, proof: &mut [Hash]) {
    let targets = std::iter::once(first).chain(proof.iter_mut()).flat_map(|h| h.iter_mut());
    for (byte, m) in targets.zip(mask) {
        *byte ^= m;
    }
}
