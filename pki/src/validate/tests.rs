//! One test per validation rule, each asserting the exact error kind and that the error
//! names the certificate at fault.

use std::sync::Arc;

use rcgen::{CustomExtension, KeyUsagePurpose};
use time::Duration;

use super::*;
use crate::crl::RevocationReason;
use crate::keys::PrivateKey;
use crate::testing::{Issued, P384_PUBLIC_PEM, RSA_1024_PUBLIC_PEM, T0, TestCa, chain, day, rsa_key, spki_from_pem};

/// The demo chain: root → Quảng Ninh (000.00.00.H49) → Tiên Yên (000.00.41.H49) → Phong Dụ
/// seal (000.01.41.H49).
pub(super) struct Demo {
    pub(super) root: TestCa,
    pub(super) province: TestCa,
    pub(super) district: TestCa,
    pub(super) seal: Issued,
}

pub(super) fn demo() -> Demo {
    let mut root = TestCa::root();
    let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let mut district = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let seal = district.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
    Demo { root, province, district, seal }
}

impl Demo {
    pub(super) fn chain(&self) -> Vec<Vec<u8>> {
        chain(&[&self.seal.cert, &self.district.cert, &self.province.cert])
    }

    /// Fresh CRLs from every CA, issued at day 0 and due at day 30.
    pub(super) fn crls(&mut self) -> CrlSet {
        [self.root.crl(day(0), day(30)), self.province.crl(day(0), day(30)), self.district.crl(day(0), day(30))]
            .into_iter()
            .collect()
    }

    pub(super) fn validator(&mut self) -> Validator {
        Validator::new(vec![self.root.cert.clone()]).with_crls(self.crls())
    }
}

fn names(err: &ChainError, cert: &Certificate) {
    let text = err.to_string();
    assert!(text.contains(&cert.serial.to_string()), "{text:?} should name serial {}", cert.serial);
}

#[test]
fn the_demo_chain_validates_with_identity_and_path() {
    let mut d = demo();
    let v = d.validator();
    let ok = v.validate(&d.chain(), day(1), Profile::Seal).unwrap();
    assert_eq!(ok.agency.to_string(), "000.01.41.H49");
    assert_eq!(ok.profile, Profile::Seal);
    assert_eq!(ok.path.len(), 4);
    assert_eq!(ok.path[3].agency, None, "the root has no agency code");
    assert_eq!(ok.path[1].agency.map(|c| c.to_string()).as_deref(), Some("000.00.41.H49"));
    assert!(ok.revocation_complete());
    assert_eq!(ok.revocation.len(), 3);
    // The anchor may also be included at the top.
    let mut with_root = d.chain();
    with_root.push(d.root.cert.der().to_vec());
    assert!(v.validate(&with_root, day(1), Profile::Seal).is_ok());
}

#[test]
fn empty_and_too_long_chains() {
    let mut d = demo();
    let v = d.validator();
    let none: Vec<Vec<u8>> = Vec::new();
    assert!(matches!(v.validate(&none, day(1), Profile::Seal), Err(ChainError::Empty)));
    let long = vec![d.seal.cert.der().to_vec(); DEFAULT_MAX_CHAIN_LEN + 1];
    assert!(matches!(v.validate(&long, day(1), Profile::Seal), Err(ChainError::TooLong { len: 9, max: 8 })));
    let only_root = chain(&[&d.root.cert]);
    assert!(matches!(v.validate(&only_root, day(1), Profile::Ca), Err(ChainError::OnlyAnchor(_))));
}

#[test]
fn malformed_der_is_named_by_position() {
    let mut d = demo();
    let mut c = d.chain();
    c[1].truncate(100);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(err, ChainError::Malformed { index: 1, .. }), "{err:?}");
    let mut c = d.chain();
    c[0].push(0);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(err, ChainError::Malformed { index: 0, error: ParseError::TrailingData(1) }), "{err:?}");
}

#[test]
fn expired_and_not_yet_valid() {
    let mut d = demo();
    let v = d.validator();
    let err = v.validate(&d.chain(), T0 - Duration::days(1), Profile::Seal).unwrap_err();
    // The province CA is checked first (top down) and is not yet valid either.
    assert!(matches!(err, ChainError::NotYetValid { .. }), "{err:?}");
    let late = T0 + Duration::days(3651);
    let err = Validator::new(vec![d.root.cert.clone()])
        .with_mode(RevocationMode::BestEffort)
        .validate(&d.chain(), late, Profile::Seal)
        .unwrap_err();
    assert!(matches!(err, ChainError::Expired { .. }), "{err:?}");
    names(&err, &d.province.cert);

    // A leaf with a short validity expires on its own.
    let key = PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap();
    let mut req = d.district.request(Profile::Seal, "000.01.41.H49", "Phong Dụ", &key);
    req.not_after = day(10);
    let short = crate::issue::issue(&req, &d.district.signer()).unwrap();
    let c = chain(&[&short, &d.district.cert, &d.province.cert]);
    let v = d.validator();
    assert!(v.validate(&c, day(5), Profile::Seal).is_ok());
    let err = v.validate(&c, day(11), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::Expired { cert, .. } if cert.serial == short.serial), "{err:?}");
}

#[test]
fn bad_signature() {
    let mut d = demo();
    let mut c = d.chain();
    let last = c[0].len() - 1;
    c[0][last] ^= 0x01;
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::BadSignature { cert, .. } if cert.serial == d.seal.cert.serial), "{err:?}");
}

#[test]
fn unknown_anchor_and_foreign_hierarchy() {
    let mut d = demo();
    let mut other_root =
        TestCa::root_with("Root CA khác", PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap());
    let mut other_province = other_root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let foreign = other_province.issue(Profile::Node, "000.00.00.H49", "Quảng Ninh");
    let c = chain(&[&foreign.cert, &other_province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Node).unwrap_err();
    assert!(
        matches!(&err, ChainError::UnknownAnchor { cert, .. } if cert.serial == other_province.cert.serial),
        "{err:?}"
    );
    // A root with the same name but another key is not our root either.
    let mut twin = TestCa::root_with(
        "Root CA Quốc gia (thử nghiệm)",
        PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap(),
    );
    let twin_ca = twin.sub_ca("000.00.00.H49", "Quảng Ninh");
    let err = d.validator().validate(&chain(&[&twin_ca.cert]), day(1), Profile::Ca).unwrap_err();
    assert!(matches!(err, ChainError::UnknownAnchor { .. }), "{err:?}");
}

#[test]
fn issuer_mismatch_when_a_link_is_missing() {
    let mut d = demo();
    let c = chain(&[&d.seal.cert, &d.province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::IssuerMismatch { cert, .. } if cert.serial == d.seal.cert.serial), "{err:?}");
}

#[test]
fn revoked_before_and_after_the_validation_time() {
    let mut d = demo();
    d.district.revoke(&d.seal.cert.serial, day(10), RevocationReason::KeyCompromise);
    let v = d.validator();
    // At day 20 the seal was already revoked.
    let err = v.validate(&d.chain(), day(20), Profile::Seal).unwrap_err();
    match &err {
        ChainError::Revoked { cert, revoked_at, reason } => {
            assert_eq!(cert.serial, d.seal.cert.serial);
            assert_eq!(*revoked_at, day(10));
            assert_eq!(*reason, RevocationReason::KeyCompromise);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("keyCompromise"));
    // At day 5 it was still good: a signature made then stands, and the status says so.
    let ok = v.validate(&d.chain(), day(5), Profile::Seal).unwrap();
    assert!(matches!(ok.revocation[0], RevocationStatus::RevokedLater { reason: RevocationReason::KeyCompromise, .. }));
    // Revoking an intermediate takes down everything under it.
    d.province.revoke(&d.district.cert.serial, day(2), RevocationReason::CessationOfOperation);
    let err = d.validator().validate(&d.chain(), day(3), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::Revoked { cert, .. } if cert.serial == d.district.cert.serial), "{err:?}");
}

#[test]
fn missing_stale_and_forged_crls() {
    let mut d = demo();
    // No CRLs at all: required mode refuses, best effort reports.
    let bare = Validator::new(vec![d.root.cert.clone()]);
    let err = bare.validate(&d.chain(), day(1), Profile::Seal).unwrap_err();
    assert!(
        matches!(&err, ChainError::RevocationUnknown { cert, .. } if cert.serial == d.province.cert.serial),
        "{err:?}"
    );
    let ok = bare.clone().with_mode(RevocationMode::BestEffort).validate(&d.chain(), day(1), Profile::Seal).unwrap();
    assert!(ok.revocation.iter().all(|s| *s == RevocationStatus::NotChecked));
    assert!(!ok.revocation_complete());
    assert_eq!(ok.oldest_crl(), None);

    // CRLs due at day 30 are stale at day 31.
    let v = d.validator();
    let err = v.validate(&d.chain(), day(31), Profile::Seal).unwrap_err();
    assert!(matches!(err, ChainError::StaleCrl { .. }), "{err:?}");
    let ok = v.clone().with_mode(RevocationMode::BestEffort).validate(&d.chain(), day(31), Profile::Seal).unwrap();
    assert!(matches!(ok.revocation[0], RevocationStatus::Stale { .. }));
    assert_eq!(ok.oldest_crl(), Some(day(0)));

    // A CRL in the district's name signed by someone else is refused, not ignored.
    let mut impostor = TestCa::root_with("x", PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap());
    let mut fake_district = impostor.sub_ca_unchecked("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên", |_| {});
    let forged = fake_district.crl(day(0), day(30));
    assert_eq!(forged.issuer_raw, d.district.cert.subject_raw);
    let crls: CrlSet = [d.root.crl(day(0), day(30)), d.province.crl(day(0), day(30)), forged].into_iter().collect();
    let err = Validator::new(vec![d.root.cert.clone()])
        .with_crls(crls)
        .validate(&d.chain(), day(1), Profile::Seal)
        .unwrap_err();
    assert!(matches!(err, ChainError::CrlInvalid { .. }), "{err:?}");
}

#[test]
fn wrong_usage_profile_and_key_usage() {
    let mut d = demo();
    let node = d.district.issue(Profile::Node, "000.01.41.H49", "Phong Dụ node");
    let v = d.validator();
    let c = chain(&[&node.cert, &d.district.cert, &d.province.cert]);
    assert!(v.validate(&c, day(1), Profile::Node).is_ok());
    let err = v.validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(
        matches!(
            &err,
            ChainError::WrongUsage {
                wanted: Profile::Seal,
                problem: UsageProblem::WrongProfile { actual: Profile::Node },
                ..
            }
        ),
        "{err:?}"
    );
    // A seal without nonRepudiation.
    let key = PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap();
    let weak_seal =
        d.district.issue_unchecked(Profile::Seal, "000.01.41.H49", "Phong Dụ", &key.public_key().spki_der, |p| {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        });
    let c = chain(&[&weak_seal, &d.district.cert, &d.province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(
        matches!(&err, ChainError::WrongUsage { problem: UsageProblem::MissingKeyUsage("nonRepudiation"), .. }),
        "{err:?}"
    );
    // A clerk certificate is not a node certificate, and a person is not a seal.
    let clerk = d.district.issue(Profile::Clerk, "000.01.41.H49", "Văn thư Phong Dụ");
    let c = chain(&[&clerk.cert, &d.district.cert, &d.province.cert]);
    assert!(matches!(d.validator().validate(&c, day(1), Profile::Node), Err(ChainError::WrongUsage { .. })));
    let person = d.district.issue_person("000.01.41.H49", "Nguyễn Văn An", "Chủ tịch", "UBND xã Phong Dụ");
    let c = chain(&[&person.cert, &d.district.cert, &d.province.cert]);
    let v = d.validator();
    assert!(v.validate(&c, day(1), Profile::Person).is_ok());
    assert!(matches!(v.validate(&c, day(1), Profile::Seal), Err(ChainError::WrongUsage { .. })));
    // An end-entity used as an intermediate is not a CA.
    let mut fake_ca =
        TestCa::from_parts(d.seal.cert.clone(), PrivateKey::from_pkcs8_der(d.seal.key.pkcs8_der()).unwrap());
    let under_seal = fake_ca.issue_unchecked(Profile::Seal, "000.01.41.H49", "x", &key.public_key().spki_der, |_| {});
    let c = chain(&[&under_seal, &d.seal.cert, &d.district.cert, &d.province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(
        matches!(&err, ChainError::WrongUsage { wanted: Profile::Ca, problem: UsageProblem::NotCa, .. }),
        "{err:?}"
    );
}

#[test]
fn path_length() {
    let mut d = demo();
    // A province CA with pathLen 0 cannot have a district CA under it.
    let mut tight = d.root.sub_ca_unchecked("000.00.00.H49", "Quảng Ninh (pathLen 0)", |p| {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    });
    // Issuance refuses it...
    let key = PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap();
    let req = tight.request(Profile::Ca, "000.00.41.H49", "Tiên Yên", &key);
    assert!(matches!(crate::issue::issue(&req, &tight.signer()), Err(crate::issue::IssueError::PathLength { .. })));
    // ...and validation refuses what an unchecked issuer made anyway.
    let mut district = tight.sub_ca_unchecked("000.00.41.H49", "Tiên Yên", |_| {});
    let seal = district.issue(Profile::Seal, "000.01.41.H49", "Phong Dụ");
    let c = chain(&[&seal.cert, &district.cert, &tight.cert]);
    let crls: CrlSet =
        [d.root.crl(day(0), day(30)), tight.crl(day(0), day(30)), district.crl(day(0), day(30))].into_iter().collect();
    let err =
        Validator::new(vec![d.root.cert.clone()]).with_crls(crls).validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(
        matches!(&err, ChainError::PathLength { path_len: 0, below: 1, cert } if cert.serial == tight.cert.serial),
        "{err:?}"
    );
}

#[test]
fn hierarchy_violation_is_enforced_by_validation() {
    let mut d = demo();
    // Tiên Yên's CA signs for a commune of Ba Chẽ: issuance refuses...
    let key = PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap();
    let req = d.district.request(Profile::Seal, "000.01.42.H49", "Thanh Sơn", &key);
    assert!(matches!(crate::issue::issue(&req, &d.district.signer()), Err(crate::issue::IssueError::Hierarchy { .. })));
    // ...and validation refuses a certificate made by a CA that skipped the check.
    let rogue =
        d.district.issue_unchecked(Profile::Seal, "000.01.42.H49", "Thanh Sơn", &key.public_key().spki_der, |_| {});
    let c = chain(&[&rogue, &d.district.cert, &d.province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    match &err {
        ChainError::Hierarchy { cert, code, issuer_scope } => {
            assert_eq!(cert.serial, rogue.serial);
            assert_eq!(code.to_string(), "000.01.42.H49");
            assert_eq!(issuer_scope.to_string(), "000.00.41.H49");
        }
        other => panic!("{other:?}"),
    }
    // A province CA certifying another province's district.
    let other = d.province.sub_ca_unchecked("000.00.41.H37", "Lạng Sơn district", |_| {});
    let err = d.validator().validate(&chain(&[&other.cert, &d.province.cert]), day(1), Profile::Ca).unwrap_err();
    assert!(matches!(err, ChainError::Hierarchy { .. }), "{err:?}");
}

#[test]
fn missing_agency_code_and_unknown_critical_extension() {
    let mut d = demo();
    let key = PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap();
    let anonymous = d.district.issue_unchecked(Profile::Seal, "000.01.41.H49", "x", &key.public_key().spki_der, |p| {
        p.subject_alt_names.clear();
    });
    let c = chain(&[&anonymous, &d.district.cert, &d.province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(err, ChainError::MissingAgencyCode { .. }), "{err:?}");

    let critical = d.district.issue_unchecked(Profile::Seal, "000.01.41.H49", "x", &key.public_key().spki_der, |p| {
        let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 32473, 1], vec![0x05, 0x00]);
        ext.set_criticality(true);
        p.custom_extensions.push(ext);
    });
    let c = chain(&[&critical, &d.district.cert, &d.province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(
        matches!(&err, ChainError::UnknownCriticalExtension { oid, .. } if oid == "1.3.6.1.4.1.32473.1"),
        "{err:?}"
    );
}

#[test]
fn weak_keys_and_algorithms() {
    let mut d = demo();
    // RSA-1024 subject key.
    let weak =
        d.district.issue_unchecked(Profile::Seal, "000.01.41.H49", "x", &spki_from_pem(RSA_1024_PUBLIC_PEM), |_| {});
    let c = chain(&[&weak, &d.district.cert, &d.province.cert]);
    let err = d.validator().validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::WeakKey { problem: KeyProblem::RsaSize(1024), .. }), "{err:?}");

    // SHA-1 signature: an RSA CA's sha256WithRSAEncryption relabelled as sha1WithRSAEncryption
    // (same OID length), in both AlgorithmIdentifiers.
    let mut rsa_root = TestCa::root_with("RSA root", rsa_key());
    let mut rsa_province = rsa_root.sub_ca("000.00.00.H49", "Quảng Ninh");
    let seal = rsa_province.issue(Profile::Seal, "000.00.00.H49", "Quảng Ninh");
    let sha256_rsa = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    let mut der = rsa_province.cert.der().to_vec();
    let mut replaced = 0;
    for i in 0..der.len() - sha256_rsa.len() {
        if der[i..i + sha256_rsa.len()] == sha256_rsa {
            der[i + sha256_rsa.len() - 1] = 0x05;
            replaced += 1;
        }
    }
    assert_eq!(replaced, 2);
    let c = vec![seal.cert.der().to_vec(), der];
    let crls: CrlSet = [rsa_root.crl(day(0), day(30)), rsa_province.crl(day(0), day(30))].into_iter().collect();
    let v = Validator::new(vec![rsa_root.cert.clone()]).with_crls(crls);
    let err = v.validate(&c, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::WeakAlgorithm { algorithm, .. } if algorithm.contains("SHA-1")), "{err:?}");
    // The untouched RSA chain verifies: RSA is accepted.
    assert!(v.validate(&chain(&[&seal.cert, &rsa_province.cert]), day(1), Profile::Seal).is_ok());
}

#[test]
fn rsa_ed25519_and_p384_subjects_verify() {
    let mut d = demo();
    let rsa = d.district.issue_key(Profile::Seal, "000.01.41.H49", "RSA seal", rsa_key());
    let ed = d.district.issue_key(
        Profile::Seal,
        "000.01.41.H49",
        "Ed25519 seal",
        PrivateKey::generate(crate::KeyAlgorithm::Ed25519).unwrap(),
    );
    let p384 = d.district.issue_unchecked(
        Profile::Seal,
        "000.01.41.H49",
        "P-384 seal",
        &spki_from_pem(P384_PUBLIC_PEM),
        |_| {},
    );
    let v = d.validator();
    for leaf in [&rsa.cert, &ed.cert, &p384] {
        let ok = v.validate(&chain(&[leaf, &d.district.cert, &d.province.cert]), day(1), Profile::Seal);
        assert!(ok.is_ok(), "{}: {:?}", leaf.subject, ok.err());
    }
    // An Ed25519 CA signs too.
    let mut ed_root = TestCa::root_with("Ed25519 root", PrivateKey::generate(crate::KeyAlgorithm::Ed25519).unwrap());
    let node = ed_root.issue(Profile::Node, "000.00.00.G22", "Văn phòng Chính phủ");
    let v = Validator::new(vec![ed_root.cert.clone()]).with_crls([ed_root.crl(day(0), day(30))].into_iter().collect());
    assert!(v.validate(&chain(&[&node.cert]), day(1), Profile::Node).is_ok());
}

#[test]
fn the_cache_remembers_links_and_never_accepts_a_bad_one() {
    let mut d = demo();
    let cache = Arc::new(SignatureCache::default());
    let v = d.validator().with_cache(cache.clone());
    v.validate(&d.chain(), day(1), Profile::Seal).unwrap();
    // Three certificate links and three CRLs, each checked once.
    assert_eq!((cache.len(), cache.hits()), (6, 0));
    // The second time all six checks are answered from the cache.
    v.validate(&d.chain(), day(1), Profile::Seal).unwrap();
    assert_eq!((cache.len(), cache.hits()), (6, 6));
    let mut c = d.chain();
    let last = c[0].len() - 1;
    c[0][last] ^= 0x01;
    assert!(matches!(v.validate(&c, day(1), Profile::Seal), Err(ChainError::BadSignature { .. })));
    // Capacity bound: the cache starts over instead of growing.
    let tiny = Arc::new(SignatureCache::with_capacity(2));
    let v = d.validator().with_cache(tiny.clone());
    v.validate(&d.chain(), day(1), Profile::Seal).unwrap();
    assert!(tiny.len() <= 2);
}

#[test]
fn examine_checks_the_time_free_rules_and_lays_out_what_the_crls_say() {
    let mut d = demo();
    // Revoked at day 5, listed by the district's CRL of day 6; an older CRL of day 1 does not
    // list it; a forged CRL in the district's name is refused and reported.
    let older = d.district.crl(day(1), day(30));
    d.district.revoke(&d.seal.cert.serial, day(5), RevocationReason::KeyCompromise);
    let newer = d.district.crl(day(6), day(30));
    let mut impostor = TestCa::root_with("x", PrivateKey::generate(crate::KeyAlgorithm::EcdsaP256).unwrap());
    let forged =
        impostor.sub_ca_unchecked("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên", |_| {}).crl(day(7), day(30));
    let crls: CrlSet = [older, newer, forged, d.province.crl(day(0), day(30))].into_iter().collect();
    let v = Validator::new(vec![d.root.cert.clone()]).with_crls(crls);
    // Far past every validity and CRL: examine applies no time, validate does.
    let examined = v.examine(&d.chain(), Profile::Seal).unwrap();
    assert!(v.validate(&d.chain(), day(5000), Profile::Seal).is_err());
    assert_eq!(examined.agency.to_string(), "000.01.41.H49");
    assert_eq!(examined.path.len(), 4);
    assert_eq!(examined.revocation.len(), 3, "seal, district, province");
    let seal = &examined.revocation[0];
    assert_eq!((seal.cert.clone(), seal.issuer.clone()), (d.seal.cert.id(), d.district.cert.id()));
    assert_eq!(seal.crls.iter().map(|c| c.this_update).collect::<Vec<_>>(), [day(6), day(1)], "newest first");
    let (entry, crl) = seal.revocation().unwrap();
    assert_eq!((entry.at, entry.reason, crl.this_update), (day(5), RevocationReason::KeyCompromise, day(6)));
    assert_eq!(seal.refused.len(), 1);
    assert_eq!(seal.refused[0].this_update, day(7));
    assert!(examined.revocation[2].crls.is_empty(), "no root CRL given");
    // The structural rules are the same as validate's.
    let other = TestCa::root();
    assert!(matches!(
        Validator::new(vec![other.cert.clone()]).examine(&d.chain(), Profile::Seal),
        Err(ChainError::UnknownAnchor { .. })
    ));
    assert!(matches!(v.examine(&d.chain(), Profile::Person), Err(ChainError::WrongUsage { .. })));
}

#[test]
fn only_a_self_signed_root_is_an_anchor_of_its_own() {
    let d = demo();
    assert_eq!(root_anchor_problem(&d.root.cert), None);
    let province = root_anchor_problem(&d.province.cert).unwrap();
    assert!(province.contains("issued by") && province.contains("Root CA"), "{province}");
    assert!(root_anchor_problem(&d.seal.cert).unwrap().contains("not a CA"));
}

#[test]
fn rule_names_are_stable() {
    let err = ChainError::Empty;
    assert_eq!(err.rule(), "empty");
}
