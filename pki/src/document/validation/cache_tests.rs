//! Bundles verified with a shared cache: what it saves (parsing the chains and CRLs again),
//! what it never changes (the verdict, a revocation found), and, ignored by default, the
//! measurement of what it saves.

use std::io::Cursor;
use std::sync::Arc;

use time::OffsetDateTime;

use super::*;
use crate::crl::RevocationReason;
use crate::document::tests::{PDF, Pki, assert_total, bundle, manifest, pki, verify, with_receipts};
use crate::testing::day;
use crate::validate::{CacheLimits, SignatureCache};

/// The official and the seal sign at day 10, each with the chain under Tiên Yên.
fn signed(p: &Pki) -> Envelope {
    let m = manifest().to_cbor().unwrap();
    Envelope::sign_person(&m, &p.person.key, &p.chain(&p.person.cert, &p.tien_yen), day(10))
        .unwrap()
        .add_seal(&p.seal.key, &p.chain(&p.seal.cert, &p.tien_yen), day(10))
        .unwrap()
}

fn with_cache(p: &Pki, cache: &Arc<SignatureCache>) -> VerifyOptions {
    let mut options = p.options();
    options.cache = Some(cache.clone());
    options
}

fn report(bytes: &[u8], options: &VerifyOptions) -> ValidationReport {
    verify_bundle(Cursor::new(bytes), options).unwrap()
}

#[test]
fn a_bundle_verified_again_takes_its_certificates_and_crls_from_the_cache() {
    let mut p = pki();
    let b = bundle(&signed(&p), &p.crls_at(day(11)), PDF);
    let cache = Arc::new(SignatureCache::default());
    let options = with_cache(&p, &cache);
    assert_total(&report(&b, &options), Indication::Passed, None);
    // Four distinct certificates (the official, the seal, Tiên Yên, the province) and the four
    // CRLs the bundle carries. The signers' leaves are read before their chains, and the two
    // chains share their CAs: 4 of the 8 certificate reads were already hits.
    let (certs, crls) = (cache.certificates(), cache.crls());
    assert_eq!((certs.len(), certs.hits(), crls.len(), crls.hits()), (4, 4, 4, 0));
    // Again: every certificate read and every CRL comes from the cache.
    assert_total(&report(&b, &options), Indication::Passed, None);
    assert_eq!((certs.len(), certs.hits(), crls.len(), crls.hits()), (4, 12, 4, 4));
}

#[test]
fn a_signer_revoked_since_is_failed_though_its_chain_is_cached() {
    let mut p = pki();
    let e = signed(&p);
    let cache = Arc::new(SignatureCache::default());
    let options = with_cache(&p, &cache);
    let before = bundle(&e, &p.crls_at(day(11)), PDF);
    assert_total(&report(&before, &options), Indication::Passed, None);

    // The official's key was compromised at the signing time; the CRLs say so from day 12.
    p.tien_yen.revoke(&p.person.cert.serial, day(10), RevocationReason::KeyCompromise);
    let fresh = p.crls_at(day(12));
    let hits = cache.certificates().hits();
    // Carried by the bundle...
    let after = bundle(&e, &fresh, PDF);
    let r = report(&after, &options);
    assert_total(&r, Indication::Failed, Some(SubIndication::Revoked));
    assert_eq!(r.total.leading().unwrap().certificate, Some(p.person.cert.id()));
    assert_eq!(cache.certificates().hits(), hits + 8, "every certificate came from the cache");
    // ...or given beside the old bundle: the same verdict, as without a cache.
    let mut beside = options.clone();
    beside.crls = fresh.iter().map(|der| crate::Crl::from_der(der).unwrap()).collect();
    assert_total(&report(&before, &beside), Indication::Failed, Some(SubIndication::Revoked));
    beside.cache = None;
    assert_total(&report(&before, &beside), Indication::Failed, Some(SubIndication::Revoked));
    // The bundle that carries only the older CRLs, alone, still passes: nothing it holds says
    // otherwise, cached or not.
    assert_total(&report(&before, &options), Indication::Passed, None);
    assert_total(&verify(&before, &p.options()), Indication::Passed, None);
}

/// Bundles of distinct documents from one agency, each carrying the same CRLs (as a node's
/// bundles of one day do) and a 100 KiB attachment, like the project's benchmark.
fn many_bundles(p: &mut Pki, n: u32) -> Vec<Vec<u8>> {
    let crls = p.crls_at(day(11));
    let attachment = vec![0x25u8; 100 * 1024];
    (0..n)
        .map(|i| {
            let mut m = manifest();
            m.number = 1_000 + i;
            m.attachments[0].size = attachment.len() as u64;
            m.attachments[0].sha256 = crate::sha256(&attachment);
            let e = Envelope::sign_person(
                &m.to_cbor().unwrap(),
                &p.person.key,
                &p.chain(&p.person.cert, &p.tien_yen),
                day(10),
            )
            .unwrap()
            .add_seal(&p.seal.key, &p.chain(&p.seal.cert, &p.tien_yen), day(10))
            .unwrap();
            with_receipts(&e, &crls, &[], &attachment).unwrap()
        })
        .collect()
}

/// Bundles verified per second on one thread with `cache`, over `rounds` passes of `bundles`.
fn rate(bundles: &[Vec<u8>], options: &VerifyOptions, rounds: u32) -> f64 {
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        for b in bundles {
            let r = report(b, options);
            assert_eq!(r.indication(), Indication::Passed);
        }
    }
    f64::from(rounds) * bundles.len() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// What parsing from the cache saves, in-process on one thread: `cargo test --release -p
/// lienthong-pki measure_the_parse_cache -- --ignored --nocapture`. Prints the rates (never
/// asserts them): a cache of signature links only (what the cache held before it held parsed
/// certificates and CRLs) against the whole cache, interleaved, medians of 5.
#[test]
#[ignore = "a measurement: run it in release"]
fn measure_the_parse_cache() {
    let mut p = pki();
    let n = 200;
    let bundles = many_bundles(&mut p, n);
    let links_only = CacheLimits { certificates: 0, crls: 0, ..CacheLimits::default() };
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let options = with_cache(&p, &Arc::new(SignatureCache::with_limits(links_only)));
        before.push(rate(&bundles, &options, 3));
        let options = with_cache(&p, &Arc::new(SignatureCache::default()));
        after.push(rate(&bundles, &options, 3));
    }
    let (before, after) = (median(before), median(after));
    println!(
        "{n} distinct bundles x 3, 1 thread: links cached only {before:.0} docs/s; links, certificates and CRLs cached {after:.0} docs/s ({:+.1} %)",
        (after / before - 1.0) * 100.0
    );
}

/// Writes `LIENTHONG_BUNDLES` (default 1,000) bundles of [`many_bundles`] into
/// `LIENTHONG_BUNDLES_DIR/bundles`, and the root into `LIENTHONG_BUNDLES_DIR/root.pem`, for
/// timing `lienthong verify DIR --anchor root.pem --at 2026-01-21T00:00:00Z` (all PASSED).
#[test]
#[ignore = "writes files for a measurement"]
fn write_bundles_for_the_cli() {
    let dir = std::env::var("LIENTHONG_BUNDLES_DIR").expect("LIENTHONG_BUNDLES_DIR: where to write the bundles");
    let n = std::env::var("LIENTHONG_BUNDLES").map_or(1_000, |n| n.parse().expect("LIENTHONG_BUNDLES: a count"));
    let dir = std::path::Path::new(&dir);
    let mut p = pki();
    std::fs::create_dir_all(dir.join("bundles")).unwrap();
    std::fs::write(dir.join("root.pem"), p.root.cert.to_pem()).unwrap();
    for (i, b) in many_bundles(&mut p, n).iter().enumerate() {
        std::fs::write(dir.join("bundles").join(format!("doc-{i:06}.ltd")), b).unwrap();
    }
    let at: OffsetDateTime = day(20);
    println!("wrote {n} bundles to {}; verify them at {at}", dir.display());
}
