//! Signed notes against published signatures (the C2SP `signed-note` example, Sigstore's
//! Rekor and the Pixel log's ECDSA checkpoints as `transparency-dev/formats` tests them) and
//! against signatures made by an independent implementation (Python's `cryptography`, see
//! `pki/tests/data/tlog/make_note_vectors.py`), then our own keys and hostile notes.

use proptest::prelude::*;
use time::OffsetDateTime;

use super::super::checkpoint::Checkpoint;
use super::super::cosignature::Cosignature;
use super::super::note::{MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES, Note, NoteError, NoteSignature, NoteSignatureMismatch};
use super::super::signing;
use super::b64;
use crate::algorithm::PublicKey;
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::testing::rsa_key;

const NOTE_VECTORS: &str = include_str!("../../../tests/data/tlog/note-vectors.json");

/// A public key from a C2SP verifier key's material (type byte, then the key).
fn vkey_material(material: &str) -> (u8, PublicKey) {
    let bytes = b64(material);
    let key = match bytes[0] {
        // Ed25519: the raw key, wrapped in its SubjectPublicKeyInfo.
        0x01 | 0x04 => {
            let mut spki = hex::decode("302a300506032b6570032100").unwrap();
            spki.extend_from_slice(&bytes[1..]);
            PublicKey::from_spki_der(&spki).unwrap()
        }
        // ECDSA: the SPKI itself.
        _ => PublicKey::from_spki_der(&bytes[1..]).unwrap(),
    };
    (bytes[0], key)
}

#[test]
fn the_signed_note_specification_example_verifies() {
    // c2sp.org/signed-note, "Verifier keys", Example.
    let (kind, key) = vkey_material("AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
    assert_eq!(kind, 0x01);
    assert_eq!(signing::note_key_id("example.com/foo", &key), Some(0x530d903a));
    let text = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    let note = Note::parse(text.as_bytes()).unwrap();
    assert_eq!(note.text(), "This is an example message.\n");
    assert_eq!(note.verify_by("example.com/foo", &key), Ok(1));
    assert_eq!(note.to_text(), text);
    // Another name with the same key is another key: not this note's signer.
    assert_eq!(note.verify_by("example.com/bar", &key), Ok(0));
    let altered = text.replace("example message", "example massage");
    assert_eq!(
        Note::parse(altered.as_bytes()).unwrap().verify_by("example.com/foo", &key),
        Err(NoteSignatureMismatch { name: "example.com/foo".into(), key_id: 0x530d903a })
    );
}

#[test]
fn published_ecdsa_checkpoints_verify() {
    // transparency-dev/formats note/note_verifier_test.go: Sigstore's Rekor key and a
    // Rekor checkpoint; the Pixel 6 transparency log's key and a checkpoint.
    let cases = [
        (
            "rekor.sigstore.dev",
            0xc0d23d6a_u32,
            "AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4QvFK/4sueRoVj//QP22Ni4Qt9DPfkWLc=",
            "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n\n— rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n",
        ),
        (
            "pixel6_transparency_log",
            0x91c16e30,
            "AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN+4x0Jk1yTwvLFI9A4NDdGZcX0aiWVdWM5XJVy0M4VWD3AvyW5Q6Hs9A0mcDkpUoYgn+KKPNzFC0H3nN3q6JQ8=",
            "DEFAULT\n10\nbsWRucJU5xJPHb5eBdOm6+DM+VelCZBuvtI3sHERJ9Y=\n\n— pixel6_transparency_log kcFuMDBFAiEAhqMAP8P6qf6QxtUJhzMhbN+MbZ9dwfUHzGQJmffJHtoCIGD0cNe47dHWBoPwYdgBCepB06/+g5O1FmYjXl06owL4\n",
        ),
    ];
    for (name, id, material, text) in cases {
        let (kind, key) = vkey_material(material);
        assert_eq!(kind, 0x02);
        assert_eq!(signing::note_key_id(name, &key), Some(id), "{name}");
        let note = Note::parse(text.as_bytes()).unwrap();
        assert_eq!(note.verify_by(name, &key), Ok(1), "{name}");
        let altered = format!("X{}", &text[1..]);
        assert!(Note::parse(altered.as_bytes()).unwrap().verify_by(name, &key).is_err(), "{name}");
    }
}

#[test]
fn independently_made_signatures_verify_and_ed25519_ones_are_reproduced() {
    let vectors: serde_json::Value = serde_json::from_str(NOTE_VECTORS).unwrap();
    let body = vectors["body"].as_str().unwrap();
    let checkpoint = Checkpoint::parse_body(body).unwrap();
    let time = vectors["time"].as_u64().unwrap();
    let at = OffsetDateTime::from_unix_timestamp(time as i64).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let what = case["what"].as_str().unwrap();
        let key = PublicKey::from_spki_der(&b64(case["spki"].as_str().unwrap())).unwrap();
        let text = case["note"].as_str().unwrap();
        let note = Note::parse(text.as_bytes()).unwrap();
        assert_eq!(note.text(), body);
        let [line] = note.signatures() else { panic!("{what}") };
        if what.contains("cosignature") {
            let cosig = Cosignature::from_note_signature(line).unwrap().unwrap();
            assert_eq!(cosig.time, time, "{what}");
            cosig.verify(&checkpoint, &key).unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut later = cosig.clone();
            later.time += 1;
            assert!(later.verify(&checkpoint, &key).is_err(), "{what}");
        } else {
            assert_eq!(note.verify_by(&line.name, &key), Ok(1), "{what}");
        }
        // Ed25519 is deterministic: the same key must write the very same line.
        if let Some(pkcs8) = case["pkcs8"].as_str() {
            let private = PrivateKey::from_pkcs8_der(&b64(pkcs8)).unwrap();
            let ours = if what.contains("cosignature") {
                let witness = "000.00.41.H49".parse().unwrap();
                Cosignature::sign(&checkpoint, witness, &private, at).unwrap().line()
            } else {
                checkpoint.sign(&private).unwrap().to_text()[body.len() + 1..].to_owned()
            };
            assert_eq!(format!("{}\n{ours}", body), text, "{what}");
        }
    }
}

#[test]
fn our_keys_sign_notes_that_verify_with_the_documented_key_ids() {
    let text = "lienthong.gov.vn/log/000.01.41.H49\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    let keys = [
        PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap(),
        rsa_key(),
    ];
    let name = "lienthong.gov.vn/log/000.01.41.H49";
    for key in &keys {
        let mut note = Note::new(text.to_owned()).unwrap();
        note.sign(name, key).unwrap();
        let parsed = Note::parse(note.to_text().as_bytes()).unwrap();
        assert_eq!(parsed, note);
        assert_eq!(parsed.verify_by(name, key.public_key()), Ok(1));
        let public = key.public_key();
        let id = parsed.signatures()[0].key_id;
        let expected = match key.cose_algorithm().name() {
            "ES256" => crate::sha256(&public.spki_der),
            "EdDSA" => crate::sha256(&[name.as_bytes(), b"\n\x01", &public.raw].concat()),
            _ => crate::sha256(
                &[name.as_bytes(), b"\n\xff", b"lienthong.gov.vn/note/rsa-pss-sha256", &public.spki_der].concat(),
            ),
        };
        assert_eq!(id.to_be_bytes(), expected[..4], "{}", key.cose_algorithm().name());
        // Signing twice with the same key is refused.
        assert!(matches!(note.sign(name, key), Err(NoteError::DuplicateSignature { .. })));
    }
}

#[test]
fn hostile_notes_get_clear_errors() {
    let sig = "— a.example/k AAAAAAE=\n";
    let ok = format!("text\n\n{sig}");
    Note::parse(ok.as_bytes()).unwrap();
    let cases: Vec<(Vec<u8>, NoteError)> = vec![
        (b"text\n".to_vec(), NoteError::NoSignatures),
        (b"text\n\n".to_vec(), NoteError::NoSignatures),
        (format!("te\x07xt\n\n{sig}").into_bytes(), NoteError::ControlCharacter { code: 7, offset: 2 }),
        (format!("text\r\n\n{sig}").into_bytes(), NoteError::ControlCharacter { code: 13, offset: 4 }),
        (b"text\n\n\xff\n".to_vec(), NoteError::NotUtf8),
        (b"text\n\n- a.example/k AAAAAAE=\n".to_vec(), bad_line(1, "does not start with an em dash and a space")),
        (b"text\n\n\xe2\x80\x94 a.example/k\n".to_vec(), bad_line(1, "no space between key name and signature")),
        ("text\n\n— a.example/k AAAAAA=\n".as_bytes().to_vec(), bad_line(1, "the signature is not canonical base64")),
        ("text\n\n— a.example/k AAAAAAF=\n".as_bytes().to_vec(), bad_line(1, "the signature is not canonical base64")),
        (
            "text\n\n— a.example/k AAAAAA==\n".as_bytes().to_vec(),
            bad_line(1, "the signature is shorter than a key ID and one byte"),
        ),
        ("text\n\n— a.example/k AAAAAAE=".as_bytes().to_vec(), bad_line(1, "no final newline")),
        ("text\n\n— a+b AAAAAAE=\n".as_bytes().to_vec(), NoteError::BadKeyName { name: "a+b".into() }),
        ("text\n\n—  AAAAAAE=\n".as_bytes().to_vec(), NoteError::BadKeyName { name: String::new() }),
        ("text\n\n— a\u{a0}b AAAAAAE=\n".as_bytes().to_vec(), NoteError::BadKeyName { name: "a\u{a0}b".into() }),
        (
            format!("text\n\n{sig}{sig}").into_bytes(),
            NoteError::DuplicateSignature { name: "a.example/k".into(), key_id: 0 },
        ),
        (vec![b'a'; MAX_NOTE_BYTES + 1], NoteError::TooLarge { len: MAX_NOTE_BYTES + 1 }),
    ];
    for (bytes, expected) in cases {
        assert_eq!(Note::parse(&bytes), Err(expected), "{:?}", String::from_utf8_lossy(&bytes));
    }
    // At the signature budget: 32 lines are read, 33 are not.
    let lines = |n: usize| (0..n).map(|i| format!("— k{i}.example AAAAAAE=\n")).collect::<String>();
    let at_limit = format!("text\n\n{}", lines(MAX_NOTE_SIGNATURES));
    assert_eq!(Note::parse(at_limit.as_bytes()).unwrap().signatures().len(), MAX_NOTE_SIGNATURES);
    let over = format!("text\n\n{}", lines(MAX_NOTE_SIGNATURES + 1));
    assert_eq!(Note::parse(over.as_bytes()), Err(NoteError::TooManySignatures));
    // The text may hold blank lines: the last one separates the signatures.
    let blank = format!("a\n\nb\n\n{sig}");
    assert_eq!(Note::parse(blank.as_bytes()).unwrap().text(), "a\n\nb\n");
    assert_eq!(NoteSignature::parse_line(sig).unwrap().line(), sig);
}

fn bad_line(line: usize, problem: &'static str) -> NoteError {
    NoteError::BadSignatureLine { line, problem }
}

proptest! {
    /// Arbitrary bytes, and valid notes with bytes changed, never panic the parser.
    #[test]
    fn the_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), pos in any::<usize>(), xor in 1u8..=255) {
        let _ = Note::parse(&bytes);
        let mut valid = "o.example/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— o.example/log AAAAAAE=\n".as_bytes().to_vec();
        let pos = pos % valid.len();
        valid[pos] ^= xor;
        let _ = Note::parse(&valid);
    }
}
