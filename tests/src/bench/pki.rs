//! Signatures and chain validation, against raw ring P-256 measured in the same run.

use std::sync::Arc;
use std::time::Duration;

use pki::testing::{TestCa, chain, day};
use pki::validate::SignatureCache;
use pki::{CrlSet, Profile, Validator};
use ring::signature::{self, EcdsaKeyPair, KeyPair};

use super::measure::{Figures, rate, rate_on_all_cores};

const WINDOW: Duration = Duration::from_millis(700);

fn key_pair() -> EcdsaKeyPair {
    let rng = ring::rand::SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap()
}

/// One raw ring P-256 verification of a certificate-sized message, repeated.
fn verify_op() -> impl FnMut() {
    let kp = key_pair();
    let msg = vec![0x5au8; 600];
    let sig = kp.sign(&ring::rand::SystemRandom::new(), &msg).unwrap();
    let public =
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, kp.public_key().as_ref().to_vec());
    move || public.verify(&msg, sig.as_ref()).unwrap()
}

/// One raw ring P-256 signature of a manifest-sized message, repeated.
fn sign_op() -> impl FnMut() {
    let kp = key_pair();
    let rng = ring::rand::SystemRandom::new();
    let msg = vec![0x5au8; 600];
    move || {
        kp.sign(&rng, &msg).unwrap();
    }
}

/// The limit everything signature-bound is compared with: raw ring P-256 verifications per
/// second on one thread.
pub fn raw_verify_rate(figures: &mut Figures) -> f64 {
    figures.limit(
        "raw_verify_1_thread_per_s",
        "raw ring P-256 verification, 1 thread",
        rate(WINDOW, verify_op()),
        "verif/s",
    )
}

/// The limit for signing: raw ring P-256 signatures per second on one thread.
pub fn raw_sign_rate(figures: &mut Figures) -> f64 {
    figures.limit("raw_sign_1_thread_per_s", "raw ring P-256 signature, 1 thread", rate(WINDOW, sign_op()), "sig/s")
}

/// Raw P-256 on every core, and the crypto limit of a document hop derived from it.
#[derive(Clone, Copy, Debug)]
pub struct Crypto {
    /// Verifications per second, every core.
    pub verify_per_s: f64,
    /// Signatures per second, every core.
    pub sign_per_s: f64,
    /// Documents per second at 2 verifications + 1 signature each.
    pub limit: f64,
}

impl Crypto {
    /// The CPU time, in ms, of `verifications` and `signatures` at this run's raw rates: every
    /// core busy for the time they take on all of them.
    pub fn cpu_ms(&self, verifications: f64, signatures: f64) -> f64 {
        let cores = super::measure::cores() as f64;
        cores * 1e3 * (verifications / self.verify_per_s + signatures / self.sign_per_s)
    }
}

/// Raw verifications and signatures per second on every core, and from them the crypto
/// limit of a document hop: the least a node must do for one (verify the official's and the
/// seal's signatures, sign its hop receipt).
pub fn crypto_limit(figures: &mut Figures) -> Crypto {
    let cores = super::measure::cores();
    let verify = figures.limit(
        "raw_verify_per_s",
        &format!("raw ring P-256 verification, {cores} threads"),
        rate_on_all_cores(WINDOW, verify_op),
        "verif/s",
    );
    let sign = figures.limit(
        "raw_sign_per_s",
        &format!("raw ring P-256 signature, {cores} threads"),
        rate_on_all_cores(WINDOW, sign_op),
        "sig/s",
    );
    let limit = 1.0 / (2.0 / verify + 1.0 / sign);
    figures.limit(
        "crypto_limit_docs_per_s",
        "crypto limit of a document: 2 verifies + 1 sign, all cores",
        limit,
        "docs/s",
    );
    Crypto { verify_per_s: verify, sign_per_s: sign, limit }
}

pub fn run(figures: &mut Figures, raw: f64) {
    figures
        .section("pki: validating the four-level demo chain (root → province → district → commune seal, with 3 CRLs)");
    let mut root = TestCa::root();
    let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let mut district = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let seal = district.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
    let crls: CrlSet =
        [root.crl(day(0), day(30)), province.crl(day(0), day(30)), district.crl(day(0), day(30))].into_iter().collect();
    let der = chain(&[&seal.cert, &district.cert, &province.cert]);

    let uncached = Validator::new(vec![root.cert.clone()]).with_crls(crls.clone());
    let r = rate(WINDOW, || {
        uncached.validate(&der, day(1), Profile::Seal).unwrap();
    });
    let limit = ("raw verification", raw);
    figures.against("chain_validate_uncached_per_s", "validate, no cache (6 signature checks)", r, "chains/s", limit);
    figures.note(&format!("{:.2} verifications' worth of work per chain", raw / r));

    let cached =
        Validator::new(vec![root.cert.clone()]).with_crls(crls).with_cache(Arc::new(SignatureCache::default()));
    let r = rate(WINDOW, || {
        cached.validate(&der, day(1), Profile::Seal).unwrap();
    });
    // The same chain again and again: every link, the leaf's included, is in the cache (what a
    // node sees for a sender whose seal it has already checked), so no signature is checked.
    figures.against(
        "chain_validate_cached_per_s",
        "validate, same chain again (every link cached)",
        r,
        "chains/s",
        limit,
    );
    figures.note(&format!("{:.2} verifications' worth of work per chain", raw / r));
}
