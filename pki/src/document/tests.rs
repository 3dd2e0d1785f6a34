//! Signing and verifying documents: the happy path, NFC, every kind of tampering, revocation
//! around the signing time, hierarchy rules, RSA and Ed25519 signers, and hostile bundles.

use std::io::Cursor;

use time::macros::date;
use unicode_normalization::UnicodeNormalization;

use super::*;
use crate::Certificate;
use crate::cert::Profile;
use crate::crl::RevocationReason;
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::testing::{Issued, TestCa, day, rsa_key};
use crate::validate::{ChainError, RevocationStatus};

struct Pki {
    root: TestCa,
    province: TestCa,
    tien_yen: TestCa,
    ba_che: TestCa,
    person: Issued,
    seal: Issued,
}

fn pki() -> Pki {
    let mut root = TestCa::root();
    let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let mut tien_yen = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let ba_che = province.sub_ca("000.00.42.H49", "Ủy ban nhân dân huyện Ba Chẽ");
    let person = tien_yen.issue_person("000.01.41.H49", "Nguyễn Văn An", "Chủ tịch", "Ủy ban nhân dân xã Phong Dụ");
    let seal = tien_yen.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
    Pki { root, province, tien_yen, ba_che, person, seal }
}

impl Pki {
    fn chain(&self, leaf: &Certificate, ca: &TestCa) -> Vec<Certificate> {
        vec![leaf.clone(), ca.cert.clone(), self.province.cert.clone()]
    }

    fn crls(&mut self) -> Vec<Vec<u8>> {
        vec![
            self.root.crl(day(0), day(30)).der().to_vec(),
            self.province.crl(day(0), day(30)).der().to_vec(),
            self.tien_yen.crl(day(0), day(30)).der().to_vec(),
            self.ba_che.crl(day(0), day(30)).der().to_vec(),
        ]
    }

    fn options(&self) -> VerifyOptions {
        VerifyOptions::new(vec![self.root.cert.clone()], day(20))
    }
}

const PDF: &[u8] = b"%PDF-1.7 Cong van so 123 ve viec phong chong bao so 3";

fn manifest() -> Manifest {
    Manifest {
        from: "000.01.41.H49".parse().unwrap(),
        to: vec!["000.01.42.H49".parse().unwrap(), "000.00.00.G22".parse().unwrap()],
        number: 123,
        notation: "UBND-VP".into(),
        place: "Phong Dụ".into(),
        date: date!(2026 - 01 - 10),
        kind: DocumentKind::Administrative,
        type_name: "Công văn".into(),
        subject: "Về việc chủ động ứng phó với bão số 3 và mưa lũ trên địa bàn xã".into(),
        signer_name: "Nguyễn Văn An".into(),
        signer_position: "Chủ tịch".into(),
        due: Some(date!(2026 - 01 - 20)),
        urgency: Urgency::Flash,
        steering: 1,
        business: Business::New,
        attachments: vec![Attachment {
            name: "Công văn 123.pdf".into(),
            media_type: "application/pdf".into(),
            size: PDF.len() as u64,
            sha256: crate::sha256(PDF),
        }],
    }
}

/// Signs as the official at day 10 and seals at day 10 + 1 hour.
fn sign(p: &Pki, person: &Issued, person_ca: &TestCa, seal: &Issued, seal_ca: &TestCa, m: &Manifest) -> Envelope {
    let t = day(10);
    let e = Envelope::sign_person(&m.to_cbor().unwrap(), &person.key, &p.chain(&person.cert, person_ca), t).unwrap();
    e.add_seal(&seal.key, &p.chain(&seal.cert, seal_ca), t + time::Duration::hours(1)).unwrap()
}

fn bundle(envelope: &Envelope, crls: &[Vec<u8>], attachment: &[u8]) -> Vec<u8> {
    try_bundle(envelope, crls, attachment).unwrap()
}

fn try_bundle(envelope: &Envelope, crls: &[Vec<u8>], attachment: &[u8]) -> Result<Vec<u8>, BundleError> {
    let write = |_: &Attachment, w: &mut dyn std::io::Write| w.write_all(attachment).map_err(BundleError::Io);
    Ok(write_bundle(Cursor::new(Vec::new()), envelope, crls, &[], write)?.into_inner())
}

/// The validator `verify_bundle` would build from `options` and these CRLs.
fn validator(crls: &crate::crl::CrlSet, options: &VerifyOptions) -> crate::Validator {
    crate::Validator::new(options.anchors.clone()).with_crls(crls.clone()).with_mode(options.revocation)
}

fn verify(bytes: &[u8], options: &VerifyOptions) -> Result<Provenance, DocumentError> {
    verify_bundle(Cursor::new(bytes), options)
}

#[test]
fn a_signed_sealed_document_verifies_with_its_provenance() {
    let mut p = pki();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let b = bundle(&e, &p.crls(), PDF);
    let report = verify(&b, &p.options()).unwrap();
    assert_eq!(report.document_id, "000.01.41.H49,2026/01/10,123/UBND-VP");
    assert_eq!(report.signers.len(), 2);
    assert_eq!(report.signers[0].role, Role::Person);
    assert_eq!(report.signers[0].name, "Nguyễn Văn An");
    assert_eq!(report.signers[0].position.as_deref(), Some("Chủ tịch"));
    assert_eq!(report.signers[1].role, Role::Seal);
    assert_eq!(report.signers[1].agency.to_string(), "000.01.41.H49");
    assert_eq!(report.signers[1].chain.len(), 4, "seal, district, province, root");
    assert!(report.signers.iter().all(|s| s.revocation.iter().all(|r| matches!(r, RevocationStatus::Good { .. }))));
    assert!(report.attachments[0].verified);
    assert_eq!(report.crls.len(), 4);
    // The JSON report carries the Vietnamese text as is.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("Nguyễn Văn An") && json.contains("\"date\":\"2026-01-10\""), "{json}");
}

#[test]
fn nfd_input_signs_to_the_same_bytes_as_nfc() {
    let nfc = manifest();
    let mut nfd = manifest();
    nfd.subject = nfc.subject.nfd().collect();
    nfd.place = nfc.place.nfd().collect();
    nfd.signer_name = format!("  {}  ", nfc.signer_name.nfd().collect::<String>());
    assert_ne!(nfd.subject, nfc.subject);
    // Unnormalised text is refused rather than signed as typed...
    assert!(matches!(nfd.to_cbor(), Err(ManifestError::Field { problem: manifest::FieldProblem::NotNfc, .. })));
    // ...and normalised it is the same document, byte for byte.
    assert_eq!(nfd.normalized().to_cbor().unwrap(), nfc.to_cbor().unwrap());
}

#[test]
fn manifest_round_trips_and_refuses_bad_fields() {
    let m = manifest();
    let bytes = m.to_cbor().unwrap();
    assert_eq!(Manifest::from_cbor(&bytes).unwrap(), m);
    let bad = |f: fn(&mut Manifest)| {
        let mut m = manifest();
        f(&mut m);
        m.to_cbor().unwrap_err().to_string()
    };
    assert!(bad(|m| m.subject = "x".repeat(501)).contains("subject has 501 characters, more than 500"));
    assert!(bad(|m| m.to.push("000.01.42.H49".parse().unwrap())).contains("lists 000.01.42.H49 twice"));
    assert!(bad(|m| m.to.clear()).contains("to is empty"));
    assert!(bad(|m| m.attachments[0].name = "../etc/passwd".into()).contains("attachments[0].name"));
    assert!(bad(|m| m.attachments[0].name = "META-INF".into()).contains("reserved"));
    assert!(bad(|m| m.notation = "UBND VP".into()).contains("notation"));
    assert!(bad(|m| m.due = Some(date!(2026 - 01 - 01))).contains("before the document date"));
    assert!(
        bad(|m| m.business = Business::Revoke("000.01.42.H49,2026/01/01,1/UBND".parse().unwrap()))
            .contains("its own documents")
    );
    // A replacement of an earlier document of the same sender is fine.
    let mut r = manifest();
    r.business = Business::Replace("000.01.41.H49,2026/01/05,120/UBND-VP".parse().unwrap());
    assert_eq!(Manifest::from_cbor(&r.to_cbor().unwrap()).unwrap().business, r.business);
}

#[test]
fn tampering_with_any_byte_of_the_envelope_is_detected() {
    let mut p = pki();
    let crls: crate::crl::CrlSet = p.crls().iter().map(|d| crate::crl::Crl::from_der(d).unwrap()).collect();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let options = p.options();
    let validator = validator(&crls, &options);
    assert!(verify_envelope(&e, &validator, options.at).is_ok());
    let bytes = e.as_bytes();
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for i in 0..bytes.len() {
        let mut t = bytes.to_vec();
        t[i] ^= 0x01;
        let result = Envelope::from_bytes(&t)
            .map_err(DocumentError::from)
            .and_then(|e| verify_envelope(&e, &validator, options.at));
        let err = result.err().unwrap_or_else(|| panic!("flipping byte {i} went unnoticed"));
        *kinds.entry(err.kind()).or_default() += 1;
    }
    // Payload flips break the signatures or the manifest; certificate flips break the chains.
    assert!(kinds.get("bad_signature").copied().unwrap_or(0) > 0, "{kinds:?}");
    assert!(kinds.get("chain").copied().unwrap_or(0) > 0, "{kinds:?}");
}

#[test]
fn tampering_with_manifest_attachment_signature_or_chain_is_named() {
    let mut p = pki();
    let crls = p.crls();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let options = p.options();

    // The attachment.
    let b = bundle(&e, &crls, PDF);
    let pos = b.windows(PDF.len()).position(|w| w == PDF).unwrap();
    let mut tampered = b.clone();
    tampered[pos + 5] ^= 1;
    let err = verify(&tampered, &options).unwrap_err();
    assert!(matches!(&err, DocumentError::Bundle(BundleError::AttachmentHash(n)) if n == "Công văn 123.pdf"), "{err}");
    assert!(err.to_string().contains("Công văn 123.pdf"));

    // The manifest: a new subject under the old signatures.
    let mut sign: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(e.as_bytes()).unwrap();
    let mut m = manifest();
    m.subject = "Về việc khác".into();
    sign.payload = Some(m.to_cbor().unwrap());
    let forged = Envelope::from_bytes(&coset::TaggedCborSerializable::to_tagged_vec(sign).unwrap()).unwrap();
    let set: crate::crl::CrlSet = crls.iter().map(|d| crate::crl::Crl::from_der(d).unwrap()).collect();
    let err = verify_envelope(&forged, &validator(&set, &options), options.at).unwrap_err();
    assert!(matches!(err, DocumentError::BadSignature { index: 1, role: Role::Person }), "{err}");

    // The seal's signature bytes.
    let mut sign: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(e.as_bytes()).unwrap();
    sign.signatures[1].signature[3] ^= 1;
    let forged = Envelope::from_bytes(&coset::TaggedCborSerializable::to_tagged_vec(sign).unwrap()).unwrap();
    let err = verify_envelope(&forged, &validator(&set, &options), options.at).unwrap_err();
    assert!(matches!(err, DocumentError::BadSignature { index: 2, role: Role::Seal }), "{err}");
    assert!(err.to_string().contains("agency seal"));

    // The chain: another agency's seal certificate swapped into the seal's x5chain.
    let other = p.tien_yen.issue(Profile::Seal, "000.02.41.H49", "Ủy ban nhân dân xã Hà Lâu");
    let mut sign: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(e.as_bytes()).unwrap();
    let x5 = sign.signatures[1].protected.header.rest.iter_mut().find(|(l, _)| *l == coset::Label::Int(33)).unwrap();
    x5.1 = ciborium::Value::Array(
        p.chain(&other.cert, &p.tien_yen).iter().map(|c| ciborium::Value::Bytes(c.der().to_vec())).collect(),
    );
    sign.signatures[1].protected.original_data = None;
    let forged = Envelope::from_bytes(&coset::TaggedCborSerializable::to_tagged_vec(sign).unwrap()).unwrap();
    let err = verify_envelope(&forged, &validator(&set, &options), options.at).unwrap_err();
    assert!(matches!(err, DocumentError::BadSignature { index: 2, .. }), "{err}");
}

#[test]
fn revocation_before_signing_fails_after_signing_still_verifies() {
    // Revoked at day 5, signed at day 10: refused.
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(5), RevocationReason::KeyCompromise);
    let crls = p.crls();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let err = verify(&bundle(&e, &crls, PDF), &p.options()).unwrap_err();
    assert!(
        matches!(&err, DocumentError::Chain { role: Role::Person, error: ChainError::Revoked { .. }, .. }),
        "{err}"
    );

    // Revoked at day 15, signed at day 10, verified at day 20: valid, and the report says so.
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(15), RevocationReason::AffiliationChanged);
    let crls = p.crls();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &crls, PDF), &p.options()).unwrap();
    assert!(matches!(
        report.signers[0].revocation[0],
        RevocationStatus::RevokedLater { reason: RevocationReason::AffiliationChanged, .. }
    ));
}

#[test]
fn expired_at_signing_time_fails() {
    let mut p = pki();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut req = p.tien_yen.request(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ", &key);
    req.not_after = day(8);
    let short = Issued { cert: crate::issue::issue(&req, &p.tien_yen.signer()).unwrap(), key };
    let crls = p.crls();
    let e = sign(&p, &p.person, &p.tien_yen, &short, &p.tien_yen, &manifest());
    let err = verify(&bundle(&e, &crls, PDF), &p.options()).unwrap_err();
    assert!(matches!(&err, DocumentError::Chain { role: Role::Seal, error: ChainError::Expired { .. }, .. }), "{err}");
}

#[test]
fn seal_of_another_agency_or_person_outside_the_sender_fails() {
    let mut p = pki();
    let crls = p.crls();
    // Hà Lâu's seal on a Phong Dụ document.
    let ha_lau = p.tien_yen.issue(Profile::Seal, "000.02.41.H49", "Ủy ban nhân dân xã Hà Lâu");
    let e = sign(&p, &p.person, &p.tien_yen, &ha_lau, &p.tien_yen, &manifest());
    let err = verify(&bundle(&e, &crls, PDF), &p.options()).unwrap_err();
    assert!(matches!(err, DocumentError::SealNotSender { .. }), "{err}");
    // A Thanh Sơn official (Ba Chẽ district) signing for Phong Dụ.
    let outsider = p.ba_che.issue_person("000.01.42.H49", "Nguyễn Văn An", "Chủ tịch", "Ủy ban nhân dân xã Thanh Sơn");
    let ba_che = std::mem::replace(&mut p.ba_che, TestCa::root());
    let e = sign(&p, &outsider, &ba_che, &p.seal, &p.tien_yen, &manifest());
    let err = verify(&bundle(&e, &crls, PDF), &p.options()).unwrap_err();
    assert!(matches!(err, DocumentError::PersonOutsideSender { .. }), "{err}");
    // The manifest naming another signer than the certificate.
    let mut m = manifest();
    m.signer_name = "Trần Thị Bình".into();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &m);
    let err = verify(&bundle(&e, &crls, PDF), &p.options()).unwrap_err();
    assert!(matches!(err, DocumentError::SignerMismatch { .. }), "{err}");
}

#[test]
fn a_seal_alone_or_signatures_in_the_wrong_order_fail() {
    let mut p = pki();
    let crls = p.crls();
    let options = p.options();
    let m = manifest().to_cbor().unwrap();
    let set: crate::crl::CrlSet = crls.iter().map(|d| crate::crl::Crl::from_der(d).unwrap()).collect();
    // The seal alone.
    let alone = Envelope::sign_person(&m, &p.seal.key, &p.chain(&p.seal.cert, &p.tien_yen), day(10)).unwrap();
    let err = verify_envelope(&alone, &validator(&set, &options), options.at).unwrap_err();
    assert!(matches!(err, DocumentError::Signatures(_)), "{err}");
    // The person alone (not yet sealed).
    let person_only = Envelope::sign_person(&m, &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(10)).unwrap();
    assert!(
        verify_envelope(&person_only, &validator(&set, &options), options.at)
            .unwrap_err()
            .to_string()
            .contains("one party only")
    );
    // Seal first, then the person over it.
    let swapped = alone.add_seal(&p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(10)).unwrap();
    let err = verify_envelope(&swapped, &validator(&set, &options), options.at).unwrap_err();
    assert!(err.to_string().contains("wrong order"), "{err}");
    // Sealing twice is refused when building.
    let sealed = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    assert!(matches!(
        sealed.add_seal(&p.seal.key, &p.chain(&p.seal.cert, &p.tien_yen), day(11)),
        Err(EnvelopeError::NotSealable(2))
    ));
    // The person signing after the seal (clock games) is refused.
    let late = person_only.add_seal(&p.seal.key, &p.chain(&p.seal.cert, &p.tien_yen), day(9)).unwrap();
    assert!(matches!(
        verify_envelope(&late, &validator(&set, &options), options.at),
        Err(DocumentError::SigningTime(_))
    ));
    // A signing time in the future of the verifier.
    let future = Envelope::sign_person(&m, &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(25))
        .unwrap()
        .add_seal(&p.seal.key, &p.chain(&p.seal.cert, &p.tien_yen), day(25))
        .unwrap();
    assert!(matches!(
        verify_envelope(&future, &validator(&set, &options), options.at),
        Err(DocumentError::SigningTime(_))
    ));
}

#[test]
fn rsa_and_ed25519_signers_verify() {
    let mut p = pki();
    let crls = p.crls();
    let rsa_person = {
        let key = rsa_key();
        let mut req = p.tien_yen.request(Profile::Person, "000.01.41.H49", "Nguyễn Văn An", &key);
        req.title = Some("Chủ tịch".into());
        Issued { cert: crate::issue::issue(&req, &p.tien_yen.signer()).unwrap(), key }
    };
    let ed_seal = p.tien_yen.issue_key(
        Profile::Seal,
        "000.01.41.H49",
        "Ủy ban nhân dân xã Phong Dụ",
        PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap(),
    );
    let e = sign(&p, &rsa_person, &p.tien_yen, &ed_seal, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &crls, PDF), &p.options()).unwrap();
    assert_eq!(report.signers[0].algorithm, "PS256");
    assert_eq!(report.signers[1].algorithm, "EdDSA");
}

#[test]
fn missing_crls_fail_unless_best_effort() {
    let p = pki();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let b = bundle(&e, &[], PDF);
    let err = verify(&b, &p.options()).unwrap_err();
    assert!(matches!(&err, DocumentError::Chain { error: ChainError::RevocationUnknown { .. }, .. }), "{err}");
    let mut relaxed = p.options();
    relaxed.revocation = crate::validate::RevocationMode::BestEffort;
    let report = verify(&b, &relaxed).unwrap();
    assert!(report.signers[0].revocation.iter().all(|r| *r == RevocationStatus::NotChecked));
}

#[test]
fn hostile_bundles_get_clear_errors() {
    let mut p = pki();
    let crls = p.crls();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let good = bundle(&e, &crls, PDF);
    let options = p.options();
    // Truncated at every tenth byte: an error, never a panic.
    for cut in (0..good.len()).step_by(10) {
        assert!(verify(&good[..cut], &options).is_err(), "truncated at {cut}");
    }
    // The container's own refusals (not a ZIP, wrong mimetype, extra, compressed or damaged
    // entries, every non-canonical layout) are tested in `bundle/tests.rs`.
    // An envelope that is deep CBOR nesting.
    let mut deep = vec![0x81u8; 5000];
    deep.push(0x01);
    assert!(matches!(Envelope::from_bytes(&deep), Err(EnvelopeError::Cbor(cbor::CborError::TooDeep { .. }))));
    // A manifest of the wrong types.
    let wrong = cbor::encode(&ciborium::Value::Map(vec![(
        ciborium::Value::Text("v".into()),
        ciborium::Value::Text("1".into()),
    )]));
    assert!(matches!(Manifest::from_cbor(&wrong), Err(ManifestError::Field { .. })));
    // A bundle writer refuses an attachment that does not match the manifest.
    let err = try_bundle(&e, &crls, b"not the pdf").unwrap_err();
    assert!(matches!(err, BundleError::AttachmentSize { .. }), "{err}");
    let mut longer = PDF.to_vec();
    longer.push(b'!');
    let err = try_bundle(&e, &crls, &longer).unwrap_err();
    assert!(matches!(&err, BundleError::AttachmentTooLong { declared, .. } if *declared == PDF.len() as u64), "{err}");
    assert!(err.to_string().contains(&format!("longer than the {} bytes the manifest says", PDF.len())), "{err}");
    let mut same_size = PDF.to_vec();
    same_size[0] = b'#';
    assert!(matches!(try_bundle(&e, &crls, &same_size), Err(BundleError::AttachmentHash(_))));
}

#[test]
fn receipts_sign_verify_and_travel_in_the_bundle() {
    use super::receipt::{Receipt, ReceiptError, ReceiptKind, SignedReceipt, StatusCode};
    let mut p = pki();
    let crls = p.crls();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let thanh_son = p.ba_che.issue(Profile::Seal, "000.01.42.H49", "Ủy ban nhân dân xã Thanh Sơn");
    let arrived = Receipt {
        kind: ReceiptKind::Status(StatusCode::Arrived),
        document: manifest().id(),
        envelope: e.digest(),
        by: "000.01.42.H49".parse().unwrap(),
        to: "000.01.41.H49".parse().unwrap(),
        at: day(11),
        recipients: vec!["000.01.42.H49".parse().unwrap()],
        note: Some("Đã nhận".into()),
    };
    let signed = arrived.sign(&thanh_son.key, &p.chain(&thanh_son.cert, &p.ba_che)).unwrap();
    let set: crate::crl::CrlSet = crls.iter().map(|d| crate::crl::Crl::from_der(d).unwrap()).collect();
    let validator = crate::Validator::new(vec![p.root.cert.clone()]).with_crls(set);
    assert!(signed.verify(&validator).is_ok());
    assert_eq!(SignedReceipt::from_bytes(signed.as_bytes()).unwrap().receipt, arrived);

    // Claiming to be by another agency than the seal's is refused.
    let mut lie = arrived.clone();
    lie.by = "000.02.42.H49".parse().unwrap();
    let err = lie.sign(&thanh_son.key, &p.chain(&thanh_son.cert, &p.ba_che)).unwrap().verify(&validator).unwrap_err();
    assert!(matches!(err, ReceiptError::WrongSigner { .. }), "{err}");
    // A flipped byte anywhere is refused.
    for i in 0..signed.as_bytes().len() {
        let mut b = signed.as_bytes().to_vec();
        b[i] ^= 1;
        if let Ok(r) = SignedReceipt::from_bytes(&b) {
            assert!(r.verify(&validator).is_err(), "byte {i}");
        }
    }

    // In a bundle, receipts are verified and reported; one for another document is refused.
    let write = |receipts: &[Vec<u8>]| {
        write_bundle(Cursor::new(Vec::new()), &e, &crls, receipts, |_, w| w.write_all(PDF).map_err(BundleError::Io))
            .unwrap()
            .into_inner()
    };
    let report = verify(&write(&[signed.as_bytes().to_vec()]), &p.options()).unwrap();
    assert_eq!(report.receipts.len(), 1);
    assert_eq!(report.receipts[0].signer, "Ủy ban nhân dân xã Thanh Sơn");
    assert_eq!(report.receipts[0].receipt.note.as_deref(), Some("Đã nhận"));
    let mut other = arrived.clone();
    other.envelope = [7; 32];
    let stray = other.sign(&thanh_son.key, &p.chain(&thanh_son.cert, &p.ba_che)).unwrap();
    let err = verify(&write(&[stray.as_bytes().to_vec()]), &p.options()).unwrap_err();
    assert!(matches!(err, DocumentError::Receipt { index: 1, .. }), "{err}");
}
