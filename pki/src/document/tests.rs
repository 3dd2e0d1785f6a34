//! Signing and verifying documents: the happy path, NFC, every kind of tampering, hierarchy
//! rules, RSA and Ed25519 signers, and hostile bundles. The fixture is shared with the
//! validation model's tests (`validation/tests.rs`), which cover time, revocation and proof
//! of existence rule by rule.

use std::io::Cursor;

use time::macros::date;
use unicode_normalization::UnicodeNormalization;

use super::*;
use crate::Certificate;
use crate::cert::Profile;
use crate::crl::RevocationReason;
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::testing::{Issued, TestCa, day, rsa_key};

pub(crate) struct Pki {
    pub(crate) root: TestCa,
    pub(crate) province: TestCa,
    pub(crate) tien_yen: TestCa,
    pub(crate) ba_che: TestCa,
    pub(crate) person: Issued,
    pub(crate) seal: Issued,
}

pub(crate) fn pki() -> Pki {
    let mut root = TestCa::root();
    let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let mut tien_yen = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let ba_che = province.sub_ca("000.00.42.H49", "Ủy ban nhân dân huyện Ba Chẽ");
    let person = tien_yen.issue_person("000.01.41.H49", "Nguyễn Văn An", "Chủ tịch", "Ủy ban nhân dân xã Phong Dụ");
    let seal = tien_yen.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
    Pki { root, province, tien_yen, ba_che, person, seal }
}

impl Pki {
    pub(crate) fn chain(&self, leaf: &Certificate, ca: &TestCa) -> Vec<Certificate> {
        vec![leaf.clone(), ca.cert.clone(), self.province.cert.clone()]
    }

    /// CRLs of every CA issued at day 0, due at day 30: older than the signatures (day 10).
    pub(crate) fn crls(&mut self) -> Vec<Vec<u8>> {
        self.crls_at(day(0))
    }

    /// CRLs of every CA issued at `at`, due 30 days later.
    pub(crate) fn crls_at(&mut self, at: time::OffsetDateTime) -> Vec<Vec<u8>> {
        let due = at + time::Duration::days(30);
        vec![
            self.root.crl(at, due).der().to_vec(),
            self.province.crl(at, due).der().to_vec(),
            self.tien_yen.crl(at, due).der().to_vec(),
            self.ba_che.crl(at, due).der().to_vec(),
        ]
    }

    /// Validation at day 20.
    pub(crate) fn options(&self) -> VerifyOptions {
        VerifyOptions::new(vec![self.root.cert.clone()], day(20))
    }
}

pub(crate) const PDF: &[u8] = b"%PDF-1.7 Cong van so 123 ve viec phong chong bao so 3";

pub(crate) fn manifest() -> Manifest {
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
pub(crate) fn sign(
    p: &Pki,
    person: &Issued,
    person_ca: &TestCa,
    seal: &Issued,
    seal_ca: &TestCa,
    m: &Manifest,
) -> Envelope {
    let t = day(10);
    let e = Envelope::sign_person(&m.to_cbor().unwrap(), &person.key, &p.chain(&person.cert, person_ca), t).unwrap();
    e.add_seal(&seal.key, &p.chain(&seal.cert, seal_ca), t + time::Duration::hours(1)).unwrap()
}

pub(crate) fn bundle(envelope: &Envelope, crls: &[Vec<u8>], attachment: &[u8]) -> Vec<u8> {
    try_bundle(envelope, crls, attachment).unwrap()
}

fn try_bundle(envelope: &Envelope, crls: &[Vec<u8>], attachment: &[u8]) -> Result<Vec<u8>, BundleError> {
    with_receipts(envelope, crls, &[], attachment)
}

/// A bundle carrying receipts too.
pub(crate) fn with_receipts(
    envelope: &Envelope,
    crls: &[Vec<u8>],
    receipts: &[Vec<u8>],
    attachment: &[u8],
) -> Result<Vec<u8>, BundleError> {
    let write = |_: &Attachment, w: &mut dyn std::io::Write| w.write_all(attachment).map_err(BundleError::Io);
    Ok(write_bundle(Cursor::new(Vec::new()), envelope, crls, receipts, write)?.into_inner())
}

/// A validator on `options`' anchors with these CRLs (revocation required, as a careful
/// verifier at a fixed time).
fn validator(crls: &crate::crl::CrlSet, options: &VerifyOptions) -> crate::Validator {
    crate::Validator::new(options.anchors.clone()).with_crls(crls.clone())
}

/// The report on a bundle held in memory (which always reads, so there is always a report).
///
/// Every bundle the document and validation tests verify through here also checks the
/// cache's promise (`validate::cache`): the report is the same without a cache as with the
/// one cache all these tests share (holding every other test's certificates and CRLs, cold or
/// warm for this bundle's), and the same again once this bundle's are in it.
pub(crate) fn verify(bytes: &[u8], options: &VerifyOptions) -> ValidationReport {
    let report = verify_bundle(Cursor::new(bytes), options).expect("a bundle in memory always reads");
    if options.cache.is_none() {
        static SHARED: std::sync::OnceLock<std::sync::Arc<crate::validate::SignatureCache>> =
            std::sync::OnceLock::new();
        let mut cached = options.clone();
        cached.cache = Some(SHARED.get_or_init(Default::default).clone());
        let expected = serde_json::to_value(&report).unwrap();
        for round in ["first", "second"] {
            let again = verify_bundle(Cursor::new(bytes), &cached).expect("a bundle in memory always reads");
            assert_eq!(
                serde_json::to_value(&again).unwrap(),
                expected,
                "the {round} verification with the shared cache differs from the one without"
            );
        }
    }
    report
}

/// Asserts the total indication and sub-indication, showing the report when they differ.
#[track_caller]
pub(crate) fn assert_total(report: &ValidationReport, indication: Indication, sub: Option<SubIndication>) {
    assert_eq!(
        (report.indication(), report.sub_indication()),
        (indication, sub),
        "{}",
        serde_json::to_string_pretty(&report.total).unwrap()
    );
}

#[test]
fn a_signed_sealed_document_verifies_with_its_provenance() {
    let mut p = pki();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    // CRLs issued after the signatures (day 11), still current at the validation (day 20).
    let b = bundle(&e, &p.crls_at(day(11)), PDF);
    let report = verify(&b, &p.options());
    assert_total(&report, Indication::Passed, None);
    assert_eq!(report.document_id.as_deref(), Some("000.01.41.H49,2026/01/10,123/UBND-VP"));
    assert_eq!(report.signatures.len(), 2);
    let (official, seal) = (&report.signatures[0], &report.signatures[1]);
    assert_eq!(official.role, Role::Person);
    assert_eq!(official.name.as_deref(), Some("Nguyễn Văn An"));
    assert_eq!(official.position.as_deref(), Some("Chủ tịch"));
    assert_eq!(seal.role, Role::Seal);
    assert_eq!(seal.agency.map(|a| a.to_string()).as_deref(), Some("000.01.41.H49"));
    assert_eq!(seal.chain.len(), 4, "seal, district, province, root");
    use validation::RevocationFinding;
    for s in &report.signatures {
        assert!(s.chain[..3].iter().all(|c| matches!(c.revocation, RevocationFinding::Good { .. })), "{s:?}");
        assert_eq!(s.chain[3].revocation, RevocationFinding::Anchor);
        assert!(s.proof_of_existence.is_none() && s.notes[0].contains("no independent proof of existence"));
    }
    assert!(report.attachments[0].verified);
    assert_eq!(report.crls.len(), 4);
    // The JSON report carries the Vietnamese text as is.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("Nguyễn Văn An") && json.contains("\"date\":\"2026-01-10\""), "{json}");
    assert!(json.starts_with("{\"indication\":\"PASSED\",\"sub_indication\":null"), "{json}");
}

#[test]
fn the_kept_manifest_is_the_decoded_one_in_every_later_call_and_clone() {
    let p = pki();
    let signed = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let e = Envelope::from_bytes(signed.as_bytes()).unwrap();
    let first = e.manifest().unwrap();
    assert_eq!(first, manifest());
    assert_eq!(e.manifest().unwrap(), first);
    assert_eq!(e.clone().manifest().unwrap(), first);
    // A payload that is not a manifest gives its error on every call, not a decoded value.
    let t = day(10);
    let bad = Envelope::sign_person(b"\xa0", &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), t).unwrap();
    let bad = Envelope::from_bytes(bad.as_bytes()).unwrap();
    assert!(bad.manifest().is_err());
    assert!(bad.manifest().is_err());
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
    let report = verify(&tampered, &options);
    assert_total(&report, Indication::Failed, Some(SubIndication::HashFailure));
    assert!(!report.attachments[0].verified);
    let reason = report.total.leading().unwrap();
    assert!(reason.message.contains("Công văn 123.pdf") && reason.message.contains("altered"), "{}", reason.message);

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
fn revocation_before_signing_fails_after_signing_needs_a_proof_of_existence() {
    // Revoked at day 5, the signature claims day 10: FAILED REVOKED, on the signer's own word.
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(5), RevocationReason::KeyCompromise);
    let crls = p.crls_at(day(11));
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &crls, PDF), &p.options());
    assert_total(&report, Indication::Failed, Some(SubIndication::Revoked));
    assert_eq!(report.signatures[0].conclusion.sub_indication, Some(SubIndication::Revoked));
    assert!(report.signatures[1].conclusion.is_passed(), "{:?}", report.signatures[1].conclusion);

    // Revoked at day 15, the signature claims day 10, nothing independent proves it: not
    // PASSED (a backdated signature would look the same).
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(15), RevocationReason::AffiliationChanged);
    let crls = p.crls_at(day(16));
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &crls, PDF), &p.options());
    assert_total(&report, Indication::Indeterminate, Some(SubIndication::RevokedNoPoe));
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
    let report = verify(&bundle(&e, &crls, PDF), &p.options());
    assert_total(&report, Indication::Failed, Some(SubIndication::Expired));
    assert_eq!(report.signatures[1].conclusion.sub_indication, Some(SubIndication::Expired));
    assert_eq!(report.total.leading().unwrap().certificate, Some(short.cert.id()));
}

#[test]
fn seal_of_another_agency_official_of_another_agency_or_other_names_fail() {
    let mut p = pki();
    let crls = p.crls_at(day(11));
    let options = p.options();
    let rules = |report: &ValidationReport, i: usize| -> Vec<&'static str> {
        report.signatures[i].conclusion.reasons.iter().map(|r| r.rule).collect()
    };
    // Hà Lâu's seal on a Phong Dụ document.
    let ha_lau = p.tien_yen.issue(Profile::Seal, "000.02.41.H49", "Ủy ban nhân dân xã Hà Lâu");
    let e = sign(&p, &p.person, &p.tien_yen, &ha_lau, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &crls, PDF), &options);
    assert_total(&report, Indication::Indeterminate, Some(SubIndication::SigConstraintsFailure));
    assert_eq!(rules(&report, 1), ["hierarchy"]);
    // A Thanh Sơn official (Ba Chẽ district) signing for Phong Dụ.
    let outsider = p.ba_che.issue_person("000.01.42.H49", "Nguyễn Văn An", "Chủ tịch", "Ủy ban nhân dân xã Thanh Sơn");
    let ba_che = std::mem::replace(&mut p.ba_che, TestCa::root());
    let e = sign(&p, &outsider, &ba_che, &p.seal, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &crls, PDF), &options);
    assert_total(&report, Indication::Indeterminate, Some(SubIndication::SigConstraintsFailure));
    assert_eq!(rules(&report, 0), ["hierarchy"]);
    // A district's seal over a commune official's signature: the official is within the
    // district, but not of the seal's agency, and no delegation is supported.
    let district_seal = p.province.issue(Profile::Seal, "000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let mut m = manifest();
    m.from = "000.00.41.H49".parse().unwrap();
    let e = Envelope::sign_person(&m.to_cbor().unwrap(), &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(10))
        .unwrap()
        .add_seal(&district_seal.key, &[district_seal.cert.clone(), p.province.cert.clone()], day(10))
        .unwrap();
    let report = verify(&bundle(&e, &crls, PDF), &options);
    assert_total(&report, Indication::Indeterminate, Some(SubIndication::SigConstraintsFailure));
    let reason = &report.signatures[0].conclusion.reasons[0];
    assert!(reason.message.contains("delegation") && reason.message.contains("000.00.41.H49"), "{}", reason.message);
    assert!(
        verify_envelope(
            &e,
            &validator(&crls.iter().map(|d| crate::Crl::from_der(d).unwrap()).collect(), &options),
            day(20)
        )
        .is_err_and(|e| matches!(e, DocumentError::PersonNotOfSealAgency { .. }))
    );
    // The manifest naming another signer, or another position, than the certificate.
    type Change = fn(&mut Manifest);
    let changes: [(&str, Change); 2] = [
        ("name", |m| m.signer_name = "Trần Thị Bình".into()),
        ("position", |m| m.signer_position = "Phó Chủ tịch".into()),
    ];
    for (field, change) in changes {
        let mut m = manifest();
        change(&mut m);
        let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &m);
        let report = verify(&bundle(&e, &crls, PDF), &options);
        assert_total(&report, Indication::Indeterminate, Some(SubIndication::SigConstraintsFailure));
        assert_eq!(rules(&report, 0), ["signer_mismatch"]);
        assert!(report.signatures[0].conclusion.reasons[0].message.contains(field));
    }
}

#[test]
fn a_certificate_name_in_nfd_matches_the_nfc_manifest() {
    let mut p = pki();
    let nfd_name: String = "Nguyễn Văn An".nfd().collect();
    let nfd_title: String = "Chủ tịch".nfd().collect();
    assert_ne!(nfd_name, "Nguyễn Văn An");
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let cert =
        p.tien_yen.issue_unchecked(Profile::Person, "000.01.41.H49", "x", &key.public_key().spki_der, |params| {
            params.distinguished_name.push(rcgen::DnType::CommonName, nfd_name.clone());
            params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 12]), nfd_title.clone());
        });
    assert_eq!(cert.common_name.as_deref(), Some(nfd_name.as_str()));
    let person = Issued { cert, key };
    let crls = p.crls_at(day(11));
    let e = sign(&p, &person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &crls, PDF), &p.options());
    assert_total(&report, Indication::Passed, None);
    assert_eq!(report.signatures[0].name.as_deref(), Some("Nguyễn Văn An"), "reported in NFC");
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
    let crls = p.crls_at(day(11));
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
    let report = verify(&bundle(&e, &crls, PDF), &p.options());
    assert_total(&report, Indication::Passed, None);
    assert_eq!(report.signatures[0].algorithm, "PS256");
    assert_eq!(report.signatures[1].algorithm, "EdDSA");
}

#[test]
fn missing_crls_are_try_later_naming_the_ca() {
    let p = pki();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let report = verify(&bundle(&e, &[], PDF), &p.options());
    assert_total(&report, Indication::Indeterminate, Some(SubIndication::TryLater));
    let reason = report.total.leading().unwrap();
    assert_eq!(reason.rule, "no_crl");
    assert!(
        reason.message.contains("no CRL of \"Ủy ban nhân dân huyện Tiên Yên\"")
            && reason.remedy.is_some_and(|r| r.contains("--crl"))
    );
}

#[test]
fn hostile_bundles_get_clear_errors() {
    let mut p = pki();
    let crls = p.crls();
    let e = sign(&p, &p.person, &p.tien_yen, &p.seal, &p.tien_yen, &manifest());
    let good = bundle(&e, &crls, PDF);
    let options = p.options();
    let format = |bytes: &[u8]| {
        let report = verify(bytes, &options);
        assert_total(&report, Indication::Failed, Some(SubIndication::FormatFailure));
        report.total.leading().unwrap().message.clone()
    };
    // Truncated at every tenth byte: a report, never a panic and never PASSED.
    for cut in (0..good.len()).step_by(10) {
        assert_ne!(verify(&good[..cut], &options).indication(), Indication::Passed, "truncated at {cut}");
    }
    // Not a ZIP at all: FAILED (FORMAT_FAILURE), with the container's reason. The container's
    // own refusals (wrong mimetype, extra, compressed or damaged entries, every non-canonical
    // layout) are tested in `bundle/tests.rs`.
    assert!(!format(b"hello").is_empty());
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

    // In a bundle, receipts are judged and reported: this one is another agency's, so it is a
    // proof of existence. One for another document means the bundle is wrongly assembled.
    let crls = p.crls_at(day(12));
    let write = |receipts: &[Vec<u8>]| with_receipts(&e, &crls, receipts, PDF).unwrap();
    let report = verify(&write(&[signed.as_bytes().to_vec()]), &p.options());
    assert_total(&report, Indication::Passed, None);
    assert_eq!(report.receipts.len(), 1);
    assert_eq!(report.receipts[0].signer.as_deref(), Some("Ủy ban nhân dân xã Thanh Sơn"));
    assert_eq!(report.receipts[0].receipt.as_ref().unwrap().note.as_deref(), Some("Đã nhận"));
    assert!(report.receipts[0].independent && report.receipts[0].proof_of_existence);
    assert_eq!(report.signatures[0].best_signature_time, day(11));
    let mut other = arrived.clone();
    other.envelope = [7; 32];
    let stray = other.sign(&thanh_son.key, &p.chain(&thanh_son.cert, &p.ba_che)).unwrap();
    let report = verify(&write(&[stray.as_bytes().to_vec()]), &p.options());
    assert_total(&report, Indication::Failed, Some(SubIndication::FormatFailure));
    assert_eq!(report.total.leading().unwrap().rule, "receipt_for_another_document");
}
