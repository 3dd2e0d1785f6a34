//! Chain validation against raw P-256 verification.

use std::sync::Arc;
use std::time::Duration;

use pki::testing::{TestCa, chain, day};
use pki::validate::SignatureCache;
use pki::{CrlSet, Profile, Validator};
use ring::signature::{self, KeyPair};

use crate::measure::{rate, report};

/// The limit everything signature-bound is compared with: one raw ring P-256 verification of
/// a certificate-sized message, on one thread.
pub(crate) fn raw_verify_rate() -> f64 {
    let rng = ring::rand::SystemRandom::new();
    let doc = signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let kp =
        signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap();
    let msg = vec![0x5au8; 600];
    let sig = kp.sign(&rng, &msg).unwrap();
    let public =
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, kp.public_key().as_ref().to_vec());
    let raw = rate(Duration::from_millis(700), || public.verify(&msg, sig.as_ref()).unwrap());
    report("raw ring P-256 verification (1 thread): the limit", raw, "verif", None);
    raw
}

/// The limit for signing: one raw ring P-256 signature of a manifest-sized message, on one
/// thread.
pub(crate) fn raw_sign_rate() -> f64 {
    let rng = ring::rand::SystemRandom::new();
    let doc = signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let kp =
        signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap();
    let msg = vec![0x5au8; 600];
    let raw = rate(Duration::from_millis(700), || {
        kp.sign(&rng, &msg).unwrap();
    });
    report("raw ring P-256 signature (1 thread): the signing limit", raw, "sig", None);
    raw
}

pub(crate) fn run(raw: f64) {
    println!("\n== pki: validating the four-level demo chain (root → province → district → commune seal, with 3 CRLs)");
    let window = Duration::from_millis(700);

    let mut root = TestCa::root();
    let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let mut district = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let seal = district.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
    let crls: CrlSet =
        [root.crl(day(0), day(30)), province.crl(day(0), day(30)), district.crl(day(0), day(30))].into_iter().collect();
    let der = chain(&[&seal.cert, &district.cert, &province.cert]);

    let uncached = Validator::new(vec![root.cert.clone()]).with_crls(crls.clone());
    let r = rate(window, || {
        uncached.validate(&der, day(1), Profile::Seal).unwrap();
    });
    report("validate, no cache (6 signature checks)", r, "chain", Some(("raw verification", raw)));
    println!("  {:<52} {:>12.2} verifications' worth of work per chain", "", raw / r);

    let cached =
        Validator::new(vec![root.cert.clone()]).with_crls(crls).with_cache(Arc::new(SignatureCache::default()));
    let r = rate(window, || {
        cached.validate(&der, day(1), Profile::Seal).unwrap();
    });
    // The same chain again and again: every link, the leaf's included, is in the cache (what a
    // node sees for a sender whose seal it has already checked), so no signature is checked.
    report("validate, same chain again (every link cached)", r, "chain", Some(("raw verification", raw)));
    println!("  {:<52} {:>12.2} verifications' worth of work per chain", "", raw / r);
}
