//! The validation model rule by rule: one test per sub-indication asserting the exact
//! indication and sub-indication, the backdating attack, proof of existence from receipts, the
//! node's arrival check and the signing-time check `lienthong sign` makes.

use time::{Duration, OffsetDateTime};

use super::*;
use crate::cert::Profile;
use crate::crl::RevocationReason;
use crate::document::receipt::{Receipt, ReceiptKind, StatusCode};
use crate::document::tests::{PDF, Pki, assert_total, bundle, manifest, pki, verify, with_receipts};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::testing::{Issued, RSA_1024_PUBLIC_PEM, TestCa, day, spki_from_pem};

const PHONG_DU: &str = "000.01.41.H49";

/// The official signs at `person_at`, the seal at `seal_at`, each with the chain under its CA.
fn sign_at(p: &Pki, person: &Issued, seal: &Issued, person_at: OffsetDateTime, seal_at: OffsetDateTime) -> Envelope {
    let m = manifest().to_cbor().unwrap();
    Envelope::sign_person(&m, &person.key, &p.chain(&person.cert, &p.tien_yen), person_at)
        .unwrap()
        .add_seal(&seal.key, &p.chain(&seal.cert, &p.tien_yen), seal_at)
        .unwrap()
}

/// Official and seal both at `at`.
fn signed(p: &Pki, at: OffsetDateTime) -> Envelope {
    sign_at(p, &p.person, &p.seal, at, at)
}

/// Another agency's seal: xã Thanh Sơn (Ba Chẽ district), the recipient.
fn thanh_son(p: &mut Pki) -> (Issued, Vec<crate::Certificate>) {
    let seal = p.ba_che.issue(Profile::Seal, "000.01.42.H49", "Ủy ban nhân dân xã Thanh Sơn");
    let chain = vec![seal.cert.clone(), p.ba_che.cert.clone(), p.province.cert.clone()];
    (seal, chain)
}

/// A receipt of `kind` over `e`, sealed with `seal` (whose agency it claims to be by), at `at`.
fn receipt(
    e: &Envelope,
    kind: ReceiptKind,
    seal: &Issued,
    chain: &[crate::Certificate],
    at: OffsetDateTime,
) -> Vec<u8> {
    Receipt {
        kind,
        document: manifest().id(),
        envelope: e.digest(),
        by: seal.cert.agency.unwrap(),
        to: PHONG_DU.parse().unwrap(),
        at,
        recipients: vec!["000.01.42.H49".parse().unwrap()],
        note: None,
    }
    .sign(&seal.key, chain)
    .unwrap()
    .as_bytes()
    .to_vec()
}

fn report(e: &Envelope, crls: &[Vec<u8>], receipts: &[Vec<u8>], at: OffsetDateTime, p: &Pki) -> ValidationReport {
    let mut options = p.options();
    options.at = at;
    verify(&with_receipts(e, crls, receipts, PDF).unwrap(), &options)
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

#[test]
fn passed_with_an_independent_receipt_as_proof_of_existence() {
    let mut p = pki();
    let e = signed(&p, day(10));
    let (ts, chain) = thanh_son(&mut p);
    let arrived = receipt(&e, ReceiptKind::Status(StatusCode::Arrived), &ts, &chain, day(11));
    // CRLs issued after the proof (day 12) but long stale by the validation (day 400): with a
    // proof of existence, a CRL issued after it is enough, however old it is now.
    let crls = p.crls_at(day(12));
    let r = report(&e, &crls, &[arrived], day(400), &p);
    // The receipt's own seal has no proof of time: judged at day 400, its CRL is stale.
    assert_eq!(r.receipts[0].conclusion.sub_indication, Some(SubIndication::TryLater));
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::TryLater));

    // With CRLs current at the validation time too, the receipt is a proof and all passes.
    let mut crls = p.crls_at(day(12));
    crls.extend(p.crls_at(day(395)));
    let arrived = receipt(&e, ReceiptKind::Status(StatusCode::Arrived), &ts, &chain, day(11));
    let r = report(&e, &crls, &[arrived], day(400), &p);
    assert_total(&r, Indication::Passed, None);
    let proof = r.signatures[0].proof_of_existence.as_ref().unwrap();
    assert_eq!((proof.time, proof.by.to_string().as_str()), (day(11), "000.01.42.H49"));
    assert_eq!(r.signatures[1].best_signature_time, day(11));
    assert!(r.receipts[0].proof_of_existence && r.proofs_of_existence.len() == 1);
}

#[test]
fn passed_without_proof_needs_a_crl_issued_after_the_claimed_time_and_current() {
    let mut p = pki();
    let e = signed(&p, day(10));
    let r = report(&e, &p.crls_at(day(10)), &[], day(20), &p);
    assert_total(&r, Indication::Passed, None);
    assert!(r.signatures.iter().all(|s| s.best_signature_time == day(20) && s.proof_of_existence.is_none()));
    assert!(r.signatures[0].notes[0].contains("no independent proof of existence"), "{:?}", r.signatures[0].notes);
}

#[test]
fn revoked_at_or_before_the_claimed_time_is_failed_revoked() {
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(10), RevocationReason::KeyCompromise);
    let e = signed(&p, day(10));
    let r = report(&e, &p.crls_at(day(11)), &[], day(20), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::Revoked));
    let reason = r.total.leading().unwrap();
    assert_eq!(reason.certificate, Some(p.person.cert.id()));
    assert!(reason.message.contains("keyCompromise") && reason.message.contains("at or after the revocation"));
}

#[test]
fn revoked_after_the_claim_with_no_proof_is_revoked_no_poe() {
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(15), RevocationReason::KeyCompromise);
    let e = signed(&p, day(10));
    let r = report(&e, &p.crls_at(day(16)), &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::RevokedNoPoe));
    assert!(r.total.leading().unwrap().message.contains("no independent proof of existence"));
}

#[test]
fn revoked_after_the_proof_of_existence_passes_and_names_the_proof() {
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(15), RevocationReason::AffiliationChanged);
    let e = signed(&p, day(10));
    let (ts, chain) = thanh_son(&mut p);
    let hop = receipt(&e, ReceiptKind::Hop, &ts, &chain, day(11));
    let r = report(&e, &p.crls_at(day(16)), &[hop], day(20), &p);
    assert_total(&r, Indication::Passed, None);
    assert_eq!(
        r.signatures[0].chain[0].revocation,
        RevocationFinding::RevokedLater { revoked_at: day(15), reason: RevocationReason::AffiliationChanged }
    );
    assert!(r.signatures[0].notes[0].contains("hop receipt #1 sealed by Ủy ban nhân dân xã Thanh Sơn"));
}

#[test]
fn revoked_between_the_claim_and_the_proof_is_revoked_no_poe() {
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(10) + hours(12), RevocationReason::KeyCompromise);
    let e = signed(&p, day(10));
    let (ts, chain) = thanh_son(&mut p);
    let hop = receipt(&e, ReceiptKind::Hop, &ts, &chain, day(11));
    let r = report(&e, &p.crls_at(day(12)), &[hop], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::RevokedNoPoe));
    assert!(r.total.leading().unwrap().message.contains("comes after it"));
}

#[test]
fn a_revoked_ca_with_no_proof_is_revoked_ca_no_poe() {
    let mut p = pki();
    let tien_yen = p.tien_yen.cert.serial.clone();
    p.province.revoke(&tien_yen, day(15), RevocationReason::CaCompromise);
    let e = signed(&p, day(10));
    let r = report(&e, &p.crls_at(day(16)), &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::RevokedCaNoPoe));
    assert_eq!(r.total.leading().unwrap().certificate, Some(p.tien_yen.cert.id()));
}

#[test]
fn try_later_without_a_crl_recent_enough() {
    let mut p = pki();
    let e = signed(&p, day(10));
    let rule = |r: &ValidationReport| r.total.leading().unwrap().rule;
    // No CRL at all.
    let r = report(&e, &[], &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::TryLater));
    assert_eq!(rule(&r), "no_crl");
    // Only CRLs older than the signature: they cannot speak for it.
    let r = report(&e, &p.crls_at(day(9)), &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::TryLater));
    assert_eq!(rule(&r), "crl_before_signature");
    // A CRL issued after the signature but past its nextUpdate at the validation time.
    let r = report(&e, &p.crls_at(day(11)), &[], day(45), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::TryLater));
    assert_eq!(rule(&r), "stale_crl");
    // With a proof of existence at day 12, CRLs of day 11 are older than the proof.
    let (ts, chain) = thanh_son(&mut p);
    let mut crls = p.crls_at(day(11));
    let hop = receipt(&e, ReceiptKind::Hop, &ts, &chain, day(12));
    crls.extend(p.crls_at(day(19)).into_iter().skip(3)); // Ba Chẽ's: the receipt's own CA
    let mut root_and_province = p.crls_at(day(19));
    root_and_province.truncate(2);
    crls.extend(root_and_province);
    let r = report(&e, &crls, &[hop], day(20), &p);
    assert!(r.receipts[0].proof_of_existence, "{:?}", r.receipts[0].conclusion);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::TryLater));
    assert_eq!(rule(&r), "crl_before_proof");
    assert!(r.total.leading().unwrap().message.contains("Tiên Yên"));
}

#[test]
fn claimed_after_not_after_is_expired() {
    let mut p = pki();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut req = p.tien_yen.request(Profile::Seal, PHONG_DU, "Ủy ban nhân dân xã Phong Dụ", &key);
    req.not_after = day(8);
    let short = Issued { cert: crate::issue::issue(&req, &p.tien_yen.signer()).unwrap(), key };
    let e = sign_at(&p, &p.person, &short, day(10), day(10));
    let r = report(&e, &p.crls_at(day(11)), &[], day(20), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::Expired));
}

#[test]
fn claimed_or_proven_before_not_before_is_not_yet_valid() {
    let mut p = pki();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut req = p.tien_yen.request(Profile::Seal, PHONG_DU, "Ủy ban nhân dân xã Phong Dụ", &key);
    req.not_before = day(12);
    let late = Issued { cert: crate::issue::issue(&req, &p.tien_yen.signer()).unwrap(), key };
    let e = sign_at(&p, &p.person, &late, day(10), day(10));
    let r = report(&e, &p.crls_at(day(13)), &[], day(20), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::NotYetValid));
    // Claimed within the validity, but a receipt proves the envelope existed before it.
    let e = sign_at(&p, &p.person, &late, day(12), day(12));
    let (ts, chain) = thanh_son(&mut p);
    let early = receipt(&e, ReceiptKind::Hop, &ts, &chain, day(11));
    let r = report(&e, &p.crls_at(day(13)), &[early], day(20), &p);
    assert_eq!(r.signatures[1].conclusion.sub_indication, Some(SubIndication::NotYetValid));
    assert_total(&r, Indication::Failed, Some(SubIndication::NotYetValid));
}

#[test]
fn expired_by_the_best_signature_time_is_out_of_bounds_no_poe_unless_proven_earlier() {
    let mut p = pki();
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut req = p.tien_yen.request(Profile::Seal, PHONG_DU, "Ủy ban nhân dân xã Phong Dụ", &key);
    req.not_after = day(15);
    let short = Issued { cert: crate::issue::issue(&req, &p.tien_yen.signer()).unwrap(), key };
    let e = sign_at(&p, &p.person, &short, day(10), day(10));
    let r = report(&e, &p.crls_at(day(16)), &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::OutOfBoundsNoPoe));
    let (ts, chain) = thanh_son(&mut p);
    let hop = receipt(&e, ReceiptKind::Hop, &ts, &chain, day(11));
    let r = report(&e, &p.crls_at(day(16)), &[hop], day(20), &p);
    assert_total(&r, Indication::Passed, None);
}

#[test]
fn a_chain_to_another_root_is_no_certificate_chain_found() {
    let mut p = pki();
    let mut other_root = TestCa::root_with("Root giả mạo", PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap());
    let mut fake = other_root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let seal = fake.issue(Profile::Seal, PHONG_DU, "Ủy ban nhân dân xã Phong Dụ");
    let m = manifest().to_cbor().unwrap();
    let e = Envelope::sign_person(&m, &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(10))
        .unwrap()
        .add_seal(&seal.key, &[seal.cert.clone(), fake.cert.clone()], day(10))
        .unwrap();
    let r = report(&e, &p.crls_at(day(11)), &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::NoCertificateChainFound));
    assert!(matches!(r.signatures[1].conclusion.reasons[0].chain_error, Some(crate::ChainError::UnknownAnchor { .. })));
}

#[test]
fn a_seal_certificate_in_the_officials_place_is_chain_constraints_failure() {
    let mut p = pki();
    let other_seal = p.tien_yen.issue(Profile::Seal, PHONG_DU, "Ủy ban nhân dân xã Phong Dụ");
    let e = sign_at(&p, &other_seal, &p.seal, day(10), day(10));
    let r = report(&e, &p.crls_at(day(11)), &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::ChainConstraintsFailure));
    assert_eq!(r.signatures[0].conclusion.reasons[0].rule, "wrong_usage");
}

#[test]
fn a_weak_key_is_crypto_constraints_failure() {
    let mut p = pki();
    let weak = p.tien_yen.issue_unchecked(
        Profile::Seal,
        PHONG_DU,
        "Ủy ban nhân dân xã Phong Dụ",
        &spki_from_pem(RSA_1024_PUBLIC_PEM),
        |_| {},
    );
    let m = manifest().to_cbor().unwrap();
    let e = Envelope::sign_person(&m, &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(10))
        .unwrap()
        .add_seal(&p.seal.key, &p.chain(&weak, &p.tien_yen), day(10))
        .unwrap();
    let r = report(&e, &p.crls_at(day(11)), &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::CryptoConstraintsFailure));
}

/// The envelope with the seal's x5chain replaced by `chain` (DER, anything) and the seal
/// signed again over it with `key`.
fn reseal(e: &Envelope, chain: Vec<Vec<u8>>, key: &PrivateKey) -> Envelope {
    let mut sign: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(e.as_bytes()).unwrap();
    let mut sig = sign.signatures.pop().unwrap();
    let x5 = sig.protected.header.rest.iter_mut().find(|(l, _)| *l == coset::Label::Int(33)).unwrap();
    x5.1 = ciborium::Value::Array(chain.into_iter().map(ciborium::Value::Bytes).collect());
    sig.protected.original_data = None;
    sig.signature = key.sign(&sign.tbs_data(b"", &sig)).unwrap();
    sign.signatures.push(sig);
    Envelope::from_bytes(&coset::TaggedCborSerializable::to_tagged_vec(sign).unwrap()).unwrap()
}

#[test]
fn unreadable_certificates_are_no_signing_certificate_found_or_a_general_chain_failure() {
    let mut p = pki();
    let e = signed(&p, day(10));
    let crls = p.crls_at(day(11));
    let seal_chain = |leaf: Vec<u8>, ca: Vec<u8>| vec![leaf, ca, p.province.cert.der().to_vec()];
    let garbage = b"not a certificate".to_vec();
    let broken_leaf = reseal(&e, seal_chain(garbage.clone(), p.tien_yen.cert.der().to_vec()), &p.seal.key);
    let r = report(&broken_leaf, &crls, &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::NoSigningCertificateFound));
    let broken_ca = reseal(&e, seal_chain(p.seal.cert.der().to_vec(), garbage), &p.seal.key);
    let r = report(&broken_ca, &crls, &[], day(20), &p);
    assert!(r.signatures[1].conclusion.reasons.iter().all(|x| x.rule != "bad_signature"), "signed again");
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::CertificateChainGeneralFailure));
}

#[test]
fn an_altered_signature_value_is_sig_crypto_failure() {
    let mut p = pki();
    let e = signed(&p, day(10));
    let mut sign: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(e.as_bytes()).unwrap();
    sign.signatures[0].signature[5] ^= 1;
    let e = Envelope::from_bytes(&coset::TaggedCborSerializable::to_tagged_vec(sign).unwrap()).unwrap();
    let r = report(&e, &p.crls_at(day(11)), &[], day(20), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::SigCryptoFailure));
    // The seal covers the original official's signature, not the altered one.
    assert!(r.document.reasons.iter().any(|x| x.sub_indication == SubIndication::HashFailure));
}

#[test]
fn a_seal_over_another_officials_signature_is_hash_failure() {
    let mut p = pki();
    let e = signed(&p, day(10));
    // The official signs again (another signature value); the seal still covers the first.
    let again = signed(&p, day(10));
    let mut sign: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(e.as_bytes()).unwrap();
    let other: coset::CoseSign = coset::TaggedCborSerializable::from_tagged_slice(again.as_bytes()).unwrap();
    sign.signatures[0] = other.signatures[0].clone();
    let e = Envelope::from_bytes(&coset::TaggedCborSerializable::to_tagged_vec(sign).unwrap()).unwrap();
    let r = report(&e, &p.crls_at(day(11)), &[], day(20), &p);
    assert!(r.signatures.iter().all(|s| s.conclusion.is_passed()), "each signature is good on its own");
    assert_total(&r, Indication::Failed, Some(SubIndication::HashFailure));
}

#[test]
fn a_missing_attachment_is_signed_data_not_found() {
    let mut p = pki();
    let e = signed(&p, day(10));
    let crls = p.crls_at(day(11));
    // The canonical layout with every entry but the attachment.
    use crate::document::bundle::tests::{Archive, Raw, build};
    let mut entries = vec![
        Raw::new("mimetype", crate::document::bundle::BUNDLE_MEDIA_TYPE.as_bytes()),
        Raw::new("META-INF/envelope.cose", e.as_bytes()),
    ];
    entries.extend(crls.iter().enumerate().map(|(i, crl)| Raw::new(&format!("META-INF/crl/{:03}.crl", i + 1), crl)));
    let bytes = build(&entries, &Archive::default());
    let r = verify(&bytes, &p.options());
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::SignedDataNotFound));
    assert!(r.attachments.iter().all(|a| !a.verified));
}

#[test]
fn a_draft_or_a_garbled_receipt_is_format_failure() {
    let mut p = pki();
    let crls = p.crls_at(day(11));
    let m = manifest().to_cbor().unwrap();
    let draft = Envelope::sign_person(&m, &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(10)).unwrap();
    let r = report(&draft, &crls, &[], day(20), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::FormatFailure));
    assert!(r.total.leading().unwrap().message.contains("one party only"));
    let e = signed(&p, day(10));
    let r = report(&e, &crls, &[b"garbage".to_vec()], day(20), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::FormatFailure));
    assert_eq!(r.total.leading().unwrap().rule, "receipt_format");
}

#[test]
fn signing_times_in_the_future_or_out_of_order_are_sig_constraints_failure() {
    let mut p = pki();
    let crls = p.crls_at(day(11));
    let late = sign_at(&p, &p.person, &p.seal, day(10) + hours(2), day(10));
    let r = report(&late, &crls, &[], day(20), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::SigConstraintsFailure));
    let future = signed(&p, day(21));
    let r = report(&future, &p.crls_at(day(22)), &[], day(20), &p);
    assert_eq!(r.signatures[0].conclusion.reasons[0].rule, "signing_time_in_future");
    assert_eq!(r.indication(), Indication::Indeterminate);
}

#[test]
fn backdating_with_a_revoked_key_is_never_passed() {
    // Issue 11: the chairman's key (and the seal's) is revoked for keyCompromise at T; the
    // thief signs after T, writing iat = T − 2 s, and bundles the CRLs at hand.
    let t = day(15);
    let mut p = pki();
    let older = p.crls_at(day(14));
    p.tien_yen.revoke(&p.person.cert.serial, t, RevocationReason::KeyCompromise);
    let newer = p.crls_at(t + hours(1));
    let e = signed(&p, t - Duration::seconds(2));
    let both: Vec<Vec<u8>> = older.iter().chain(&newer).cloned().collect();
    let r = report(&e, &both, &[], t + hours(2), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::RevokedNoPoe));
    // Only the older CRL: it predates the claimed signing time, so it cannot speak for it.
    let r = report(&e, &older, &[], t + hours(2), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::TryLater));
    // A node took it after T and signed a hop receipt: that proves existence after T only.
    let (ts, chain) = thanh_son(&mut p);
    let hop = receipt(&e, ReceiptKind::Hop, &ts, &chain, t + hours(1));
    let fresh = p.crls_at(t + hours(2));
    let r = report(&e, &fresh, &[hop], t + hours(3), &p);
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::RevokedNoPoe));
    // The seal's key revoked too: both signatures say so.
    p.tien_yen.revoke(&p.seal.cert.serial, t, RevocationReason::KeyCompromise);
    let r = report(&e, &p.crls_at(t + hours(1)), &[], t + hours(2), &p);
    assert!(r.signatures.iter().all(|s| s.conclusion.sub_indication == Some(SubIndication::RevokedNoPoe)));
    // Signed honestly after T (iat = T + 1 h): the signer's own time convicts it.
    let honest = signed(&p, t + hours(1));
    let r = report(&honest, &p.crls_at(t + hours(2)), &[], t + hours(3), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::Revoked));
}

#[test]
fn receipts_prove_existence_only_when_verified_and_independent() {
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(15), RevocationReason::KeyCompromise);
    let e = signed(&p, day(10));
    // The sender's own status receipt is judged but proves nothing about time.
    let own =
        receipt(&e, ReceiptKind::Status(StatusCode::Accepted), &p.seal, &p.chain(&p.seal.cert, &p.tien_yen), day(11));
    // A receipt by a seal revoked before the receipt's time.
    let (ts, chain) = thanh_son(&mut p);
    p.ba_che.revoke(&ts.cert.serial, day(11), RevocationReason::KeyCompromise);
    let by_revoked = receipt(&e, ReceiptKind::Hop, &ts, &chain, day(12));
    // A receipt by a seal revoked after the receipt's time: it could be backdated too.
    let (ts2, chain2) = thanh_son(&mut p);
    p.ba_che.revoke(&ts2.cert.serial, day(13), RevocationReason::KeyCompromise);
    let by_later_revoked = receipt(&e, ReceiptKind::Hop, &ts2, &chain2, day(12));
    let crls = p.crls_at(day(16));
    let r = report(&e, &crls, &[own, by_revoked, by_later_revoked], day(20), &p);
    let by_index = |i: usize| r.receipts.iter().find(|x| x.index == i).unwrap();
    assert!(!by_index(1).independent && by_index(1).conclusion.is_passed() && !by_index(1).proof_of_existence);
    assert_eq!(by_index(2).conclusion.sub_indication, Some(SubIndication::Revoked));
    assert_eq!(by_index(3).conclusion.sub_indication, Some(SubIndication::RevokedNoPoe));
    assert!(r.proofs_of_existence.is_empty());
    // None of them breaks the bundle; the official's revocation stands unproven.
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::RevokedNoPoe));

    // An altered receipt means the bundle was tampered with: FAILED.
    let (ts3, chain3) = thanh_son(&mut p);
    let mut altered = receipt(&e, ReceiptKind::Hop, &ts3, &chain3, day(12));
    let last = altered.len() - 3;
    altered[last] ^= 1;
    let r = report(&e, &p.crls_at(day(16)), &[altered], day(20), &p);
    assert_total(&r, Indication::Failed, Some(SubIndication::SigCryptoFailure));
}

#[test]
fn arrival_judges_chains_at_the_nodes_clock_and_bounds_the_claimed_age() {
    let mut p = pki();
    p.tien_yen.revoke(&p.person.cert.serial, day(15), RevocationReason::KeyCompromise);
    let crls: crate::CrlSet = p.crls_at(day(15) + hours(1)).iter().map(|d| crate::Crl::from_der(d).unwrap()).collect();
    let validator = crate::Validator::new(vec![p.root.cert.clone()]).with_crls(crls);
    // Backdated to before the revocation, arriving after it: refused, saying why.
    let e = signed(&p, day(15) - Duration::seconds(2));
    let err = verify_arrival(&e, &validator, &Arrival::new(day(15) + hours(2))).unwrap_err();
    assert!(
        matches!(&err, ArrivalError::Revoked { index: 1, role: crate::document::Role::Person, revoked_at, reason: RevocationReason::KeyCompromise, .. } if *revoked_at == day(15)),
        "{err}"
    );
    assert_eq!(err.kind(), "revoked_at_arrival");
    assert!(err.to_string().contains("whatever signing time the signature claims"), "{err}");
    // The old check at the claimed time lets it through: the reason for this API.
    assert!(crate::document::verify_envelope(&e, &validator, day(15) + hours(2)).is_ok());

    // A good signer, but a signature claiming to be older than the maximum age.
    let mut p = pki();
    let crls: crate::CrlSet = p.crls_at(day(9)).iter().map(|d| crate::Crl::from_der(d).unwrap()).collect();
    let validator = crate::Validator::new(vec![p.root.cert.clone()]).with_crls(crls);
    let e = signed(&p, day(10));
    let arrival = Arrival { at: day(13) + Duration::seconds(1), max_age: DEFAULT_MAX_SIGNATURE_AGE };
    let err = verify_arrival(&e, &validator, &arrival).unwrap_err();
    assert!(matches!(err, ArrivalError::TooOld { index: 1, .. }), "{err}");
    assert!(err.to_string().contains("at most 3 days before arrival"), "{err}");
    assert!(!err.is_transient(), "a signature too old stays too old");
    // At the limit, and at a normal arrival, it is taken.
    assert!(verify_arrival(&e, &validator, &Arrival::new(day(13))).is_ok());
    let taken = verify_arrival(&e, &validator, &Arrival::new(day(10) + Duration::minutes(1))).unwrap();
    assert_eq!(taken.signers().len(), 2);
    // A claimed time in the future of arrival (beyond the clock skew) is refused, as a
    // matter of clocks (transient), not of the document.
    let err = verify_arrival(&e, &validator, &Arrival::new(day(10) - hours(1))).unwrap_err();
    assert!(matches!(err, ArrivalError::InFuture { index: 1, .. }), "{err}");
    assert_eq!(err.kind(), "signing_time_in_future");
    assert!(err.is_transient());
    // Within the skew it is taken.
    assert!(verify_arrival(&e, &validator, &Arrival::new(day(10) - Duration::minutes(4))).is_ok());
}

#[test]
fn a_signer_is_judged_before_signing_as_verify_would_judge_the_signature() {
    let mut p = pki();
    let crls: crate::CrlSet = p.crls_at(day(9)).iter().map(|d| crate::Crl::from_der(d).unwrap()).collect();
    let validator = crate::Validator::new(vec![p.root.cert.clone()]).with_crls(crls);
    let chain = p.chain(&p.person.cert, &p.tien_yen);
    // A good signer: only TRY_LATER (a CRL of day 9 cannot speak for a signature of day 10).
    let c = judge_signer(&validator, &chain, Role::Person, day(10), day(10));
    assert!(c.reasons.iter().all(|r| r.sub_indication == SubIndication::TryLater), "{c:?}");
    // Revoked: the reason verify gives.
    p.tien_yen.revoke(&p.person.cert.serial, day(9), RevocationReason::KeyCompromise);
    let crls: crate::CrlSet = p.crls_at(day(9)).iter().map(|d| crate::Crl::from_der(d).unwrap()).collect();
    let validator = crate::Validator::new(vec![p.root.cert.clone()]).with_crls(crls);
    let c = judge_signer(&validator, &chain, Role::Person, day(10), day(10));
    assert_eq!((c.indication, c.sub_indication), (Indication::Failed, Some(SubIndication::Revoked)));
    // A seal's certificate offered as the official's.
    let c = judge_signer(&validator, &p.chain(&p.seal.cert, &p.tien_yen), Role::Person, day(10), day(10));
    assert_eq!(c.sub_indication, Some(SubIndication::ChainConstraintsFailure));
    // The manifest's fields against the certificates.
    let mut m = manifest();
    m.signer_position = "Phó Chủ tịch".into();
    let reasons = judge_signers(&m, Some(&p.person.cert), Some(&p.seal.cert));
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].message.contains("position"));
}

#[test]
fn every_sub_indication_belongs_to_its_etsi_indication() {
    use SubIndication::*;
    for s in [FormatFailure, HashFailure, SigCryptoFailure, Revoked, Expired, NotYetValid] {
        assert_eq!(s.indication(), Indication::Failed, "{s}");
    }
    for s in [
        SigConstraintsFailure,
        ChainConstraintsFailure,
        CertificateChainGeneralFailure,
        CryptoConstraintsFailure,
        NoSigningCertificateFound,
        NoCertificateChainFound,
        RevokedNoPoe,
        RevokedCaNoPoe,
        OutOfBoundsNoPoe,
        TryLater,
        SignedDataNotFound,
    ] {
        assert_eq!(s.indication(), Indication::Indeterminate, "{s}");
    }
    assert_eq!(serde_json::to_string(&RevokedNoPoe).unwrap(), "\"REVOKED_NO_POE\"");
    assert_eq!(RevokedNoPoe.name(), "REVOKED_NO_POE");
}

#[test]
fn crls_of_day_0_cannot_speak_for_signatures_of_day_10() {
    // The shared fixture's plain bundle (CRLs of day 0, signatures of day 10) is TRY_LATER.
    let mut p = pki();
    let e = signed(&p, day(10));
    let r = verify(&bundle(&e, &p.crls(), PDF), &p.options());
    assert_total(&r, Indication::Indeterminate, Some(SubIndication::TryLater));
}

#[test]
fn only_an_input_that_cannot_be_read_is_an_error() {
    use std::io::{Read, Seek, SeekFrom};
    struct Unreadable;
    impl Read for Unreadable {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the disk failed"))
        }
    }
    impl Seek for Unreadable {
        fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
            Err(std::io::Error::other("the disk failed"))
        }
    }
    let p = pki();
    let err = verify_bundle(Unreadable, &p.options()).unwrap_err();
    assert!(matches!(&err, VerifyError::Io(e) if e.to_string().contains("the disk failed")), "{err}");
    // Empty, or bytes that are not a bundle: a report.
    for bytes in [&b""[..], b"PK\x03\x04 not really"] {
        assert_eq!(verify(bytes, &p.options()).sub_indication(), Some(SubIndication::FormatFailure));
    }
}
