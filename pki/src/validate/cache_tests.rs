//! The cache of parsed certificates and CRLs: what it serves, what it never serves, its
//! bounds, and that it saves only parsing (validity and revocation are judged every time).

use std::sync::Arc;

use time::Duration;

use super::tests::demo;
use super::*;
use crate::crl::RevocationReason;
use crate::testing::{T0, chain, day};

fn cache_with(limits: CacheLimits) -> Arc<SignatureCache> {
    Arc::new(SignatureCache::with_limits(limits))
}

/// Everything parsing gives, private fields included, as text: what "the same certificate"
/// means when comparing a cached one with a fresh parse.
fn parsed<T: std::fmt::Debug>(object: &T) -> String {
    format!("{object:?}")
}

#[test]
fn a_chain_validated_again_is_not_parsed_again() {
    let mut d = demo();
    let cache = Arc::new(SignatureCache::default());
    let v = d.validator().with_cache(cache.clone());
    let first = v.validate(&d.chain(), day(1), Profile::Seal).unwrap();
    assert_eq!((cache.certificates().len(), cache.certificates().hits()), (3, 0));
    let second = v.validate(&d.chain(), day(1), Profile::Seal).unwrap();
    assert_eq!((cache.certificates().len(), cache.certificates().hits()), (3, 3));
    assert_eq!(first.path, second.path);
    assert_eq!(parsed(&first.leaf), parsed(&second.leaf));
    // Examining goes through the same cache.
    v.examine(&d.chain(), Profile::Seal).unwrap();
    assert_eq!(cache.certificates().hits(), 6);
    assert_eq!(cache.certificates().bytes(), d.chain().iter().map(Vec::len).sum::<usize>());

    // What it serves is one object, exactly what parsing those bytes gives.
    let plain = d.validator();
    let der = d.seal.cert.der();
    let (a, b) = (v.certificate(der).unwrap(), v.certificate(der).unwrap());
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(parsed(&*a), parsed(&Certificate::from_der(der).unwrap()));
    // Without a cache the validator parses every time, and gives the same.
    assert!(!Arc::ptr_eq(&plain.certificate(der).unwrap(), &plain.certificate(der).unwrap()));
    assert_eq!(parsed(&*plain.certificate(der).unwrap()), parsed(&*a));
}

#[test]
fn a_certificate_one_byte_off_is_parsed_and_judged_on_its_own() {
    let mut d = demo();
    let cache = Arc::new(SignatureCache::default());
    let v = d.validator().with_cache(cache.clone());
    let plain = d.validator();
    v.validate(&d.chain(), day(1), Profile::Seal).unwrap();

    // A byte of the seal's serial number changed: it still parses, to another serial, and is
    // not the cached seal; its signature no longer verifies, with or without the cache.
    let mut altered = d.chain();
    // After the version ([0] INTEGER 2) comes the serial: INTEGER, length, bytes.
    let version = altered[0].windows(5).position(|w| w == [0xa0, 0x03, 0x02, 0x01, 0x02]).unwrap();
    let serial_len = usize::from(altered[0][version + 6]);
    altered[0][version + 6 + serial_len] ^= 0x04;
    let alone = Certificate::from_der(&altered[0]).unwrap();
    assert_ne!(alone.serial, d.seal.cert.serial);
    let hits = cache.certificates().hits();
    let err = v.validate(&altered, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::BadSignature { cert, .. } if cert.serial == alone.serial), "{err:?}");
    assert_eq!(err, plain.validate(&altered, day(1), Profile::Seal).unwrap_err());
    // The two intermediates came from the cache; the altered seal was parsed and is now held
    // beside the genuine one.
    assert_eq!((cache.certificates().hits(), cache.certificates().len()), (hits + 2, 4));
    assert_eq!(parsed(&*v.certificate(&altered[0]).unwrap()), parsed(&alone));
    assert_eq!(v.validate(&altered, day(1), Profile::Seal).unwrap_err(), err);
    // The genuine seal is still served as itself.
    assert_eq!(v.certificate(d.seal.cert.der()).unwrap().serial, d.seal.cert.serial);

    // A byte of the DER structure changed: malformed either way, and nothing is kept.
    let mut broken = d.chain();
    broken[0][1] ^= 0x01;
    let err = v.validate(&broken, day(1), Profile::Seal).unwrap_err();
    assert!(matches!(err, ChainError::Malformed { index: 0, .. }), "{err:?}");
    assert_eq!(err, plain.validate(&broken, day(1), Profile::Seal).unwrap_err());
    assert_eq!(cache.certificates().len(), 4);

    // Another seal of the same agency, under the same cached intermediates, passes on its own.
    let other = d.district.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
    let ok = v.validate(&chain(&[&other.cert, &d.district.cert, &d.province.cert]), day(1), Profile::Seal).unwrap();
    assert_eq!(ok.leaf.serial, other.cert.serial);
}

#[test]
fn a_cached_chain_is_still_judged_for_revocation_and_time() {
    let mut d = demo();
    let cache = Arc::new(SignatureCache::default());
    d.validator().with_cache(cache.clone()).validate(&d.chain(), day(1), Profile::Seal).unwrap();

    // The seal is revoked: a validator with the new CRLs, sharing the cache, refuses it though
    // every certificate comes from the cache.
    d.district.revoke(&d.seal.cert.serial, day(2), RevocationReason::KeyCompromise);
    let v = d.validator().with_cache(cache.clone());
    let hits = cache.certificates().hits();
    let err = v.validate(&d.chain(), day(3), Profile::Seal).unwrap_err();
    assert!(matches!(&err, ChainError::Revoked { cert, .. } if cert.serial == d.seal.cert.serial), "{err:?}");
    assert_eq!(cache.certificates().hits(), hits + 3);
    // The same cached chain before the revocation is good, and says it was revoked later.
    let ok = v.validate(&d.chain(), day(1), Profile::Seal).unwrap();
    assert!(matches!(ok.revocation[0], RevocationStatus::RevokedLater { .. }), "{:?}", ok.revocation);
    // Examining lays the revocation out from cached certificates too.
    let examined = v.examine(&d.chain(), Profile::Seal).unwrap();
    assert_eq!(examined.revocation[0].revocation().map(|(r, _)| r.at), Some(day(2)));

    // Validity is checked at each validation's own time.
    let v = Validator::new(vec![d.root.cert.clone()]).with_mode(RevocationMode::BestEffort).with_cache(cache.clone());
    let late = v.validate(&d.chain(), T0 + Duration::days(3651), Profile::Seal).unwrap_err();
    assert!(matches!(late, ChainError::Expired { .. }), "{late:?}");
    let early = v.validate(&d.chain(), T0 - Duration::days(1), Profile::Seal).unwrap_err();
    assert!(matches!(early, ChainError::NotYetValid { .. }), "{early:?}");
    assert_eq!(cache.certificates().len(), 3);
}

#[test]
fn the_certificate_cache_keeps_to_its_bounds() {
    let mut d = demo();
    let ders = d.chain();
    let total: usize = ders.iter().map(Vec::len).sum();
    let run = |cache: &Arc<SignatureCache>, d: &mut super::tests::Demo| {
        let v = d.validator().with_cache(cache.clone());
        for _ in 0..3 {
            v.validate(&ders, day(1), Profile::Seal).unwrap();
        }
    };

    // By count: three fit in three, and all but the first round are hits.
    let exact = cache_with(CacheLimits { certificates: 3, ..CacheLimits::default() });
    run(&exact, &mut d);
    assert_eq!((exact.certificates().len(), exact.certificates().hits()), (3, 6));
    // Two cannot hold three: it starts over rather than grows.
    let two = cache_with(CacheLimits { certificates: 2, ..CacheLimits::default() });
    run(&two, &mut d);
    assert!(two.certificates().len() <= 2, "{}", two.certificates().len());

    // By bytes: exactly the chain's DER holds it; one byte less does not.
    let fits = cache_with(CacheLimits { certificate_bytes: total, ..CacheLimits::default() });
    run(&fits, &mut d);
    assert_eq!((fits.certificates().len(), fits.certificates().bytes()), (3, total));
    let short = cache_with(CacheLimits { certificate_bytes: total - 1, ..CacheLimits::default() });
    run(&short, &mut d);
    assert!(short.certificates().len() < 3 && short.certificates().bytes() < total);
    // A certificate larger than the whole budget is parsed every time and never kept.
    let smallest = ders.iter().map(Vec::len).min().unwrap();
    let none = cache_with(CacheLimits { certificate_bytes: smallest - 1, ..CacheLimits::default() });
    run(&none, &mut d);
    assert_eq!((none.certificates().len(), none.certificates().hits()), (0, 0));

    // Zero turns the part off; the signature links are still remembered.
    let off = cache_with(CacheLimits { certificates: 0, crls: 0, ..CacheLimits::default() });
    run(&off, &mut d);
    assert_eq!((off.certificates().len(), off.certificates().hits(), off.crls().len()), (0, 0, 0));
    assert_eq!(off.hits(), 12);
}

#[test]
fn crls_are_parsed_once_and_one_byte_off_is_another_crl() {
    let mut d = demo();
    let crl = d.district.crl(day(0), day(30));
    let cache = Arc::new(SignatureCache::default());
    let (a, b) = (cache.crl(crl.der()).unwrap(), cache.crl(crl.der()).unwrap());
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!((cache.crls().len(), cache.crls().hits()), (1, 1));
    assert_eq!(parsed(&*a), parsed(&crate::Crl::from_der(crl.der()).unwrap()));
    // A CRL parsed elsewhere is shared as the cached copy of the same DER.
    assert!(Arc::ptr_eq(&cache.share_crl(&crl), &a));
    assert_eq!(cache.crls().hits(), 2);

    // The last byte (in the signature) changed: parsed on its own, and refused for its
    // signature when validation uses it.
    let mut off = crl.der().to_vec();
    let last = off.len() - 1;
    off[last] ^= 0x01;
    let altered = cache.crl(&off).unwrap();
    assert!(!Arc::ptr_eq(&altered, &a));
    assert_eq!((altered.der(), cache.crls().len(), cache.crls().hits()), (&off[..], 2, 2));
    let mut crls: CrlSet = [d.root.crl(day(0), day(30)), d.province.crl(day(0), day(30))].into_iter().collect();
    crls.add_shared(altered);
    let v = Validator::new(vec![d.root.cert.clone()]).with_crls(crls).with_cache(cache.clone());
    let err = v.validate(&d.chain(), day(1), Profile::Seal).unwrap_err();
    assert!(matches!(err, ChainError::CrlInvalid { .. }), "{err:?}");

    // Bounds: by count, and a CRL larger than the byte budget is never kept.
    let one = cache_with(CacheLimits { crls: 1, ..CacheLimits::default() });
    one.crl(crl.der()).unwrap();
    one.crl(&off).unwrap();
    assert_eq!(one.crls().len(), 1);
    let small = cache_with(CacheLimits { crl_bytes: crl.der().len() - 1, ..CacheLimits::default() });
    small.crl(crl.der()).unwrap();
    small.crl(crl.der()).unwrap();
    assert_eq!((small.crls().len(), small.crls().hits()), (0, 0));
    let fits = cache_with(CacheLimits { crl_bytes: crl.der().len(), ..CacheLimits::default() });
    fits.crl(crl.der()).unwrap();
    fits.crl(crl.der()).unwrap();
    assert_eq!((fits.crls().len(), fits.crls().hits(), fits.crls().bytes()), (1, 1, crl.der().len()));
}
