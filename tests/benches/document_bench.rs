//! Signing and verifying documents against raw P-256 verification.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use pki::document::manifest::{Attachment, Business, DocumentKind, Manifest, Urgency};
use pki::document::validation::{Indication, VerifyOptions, verify_bundle};
use pki::document::verify::verify_envelope;
use pki::document::{Envelope, write_bundle};
use pki::testing::{TestCa, day};
use pki::validate::SignatureCache;
use pki::{CrlSet, Profile, Validator};

use crate::measure::{rate, report};

pub(crate) fn run(raw_verify: f64) {
    println!("\n== documents: official signs, seal signs over it; verification checks both chains at signing time");
    let window = Duration::from_millis(700);
    let mut root = TestCa::root();
    let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
    let mut district = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
    let person = district.issue_person("000.01.41.H49", "Nguyễn Văn An", "Chủ tịch", "Ủy ban nhân dân xã Phong Dụ");
    let seal = district.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
    let crls = [root.crl(day(0), day(30)), province.crl(day(0), day(30)), district.crl(day(0), day(30))];
    let pdf = vec![0x25u8; 100 * 1024];
    let manifest = Manifest {
        from: "000.01.41.H49".parse().unwrap(),
        to: vec!["000.01.42.H49".parse().unwrap(), "000.00.00.G22".parse().unwrap()],
        number: 123,
        notation: "UBND-VP".into(),
        place: "Phong Dụ".into(),
        date: time::macros::date!(2026 - 01 - 10),
        kind: DocumentKind::Administrative,
        type_name: "Công văn".into(),
        subject: "Về việc chủ động ứng phó với bão số 3".into(),
        signer_name: "Nguyễn Văn An".into(),
        signer_position: "Chủ tịch".into(),
        due: None,
        urgency: Urgency::Normal,
        steering: 0,
        business: Business::New,
        attachments: vec![Attachment {
            name: "cv.pdf".into(),
            media_type: "application/pdf".into(),
            size: pdf.len() as u64,
            sha256: pki::sha256(&pdf),
        }],
    };
    let person_chain = vec![person.cert.clone(), district.cert.clone(), province.cert.clone()];
    let seal_chain = vec![seal.cert.clone(), district.cert.clone(), province.cert.clone()];
    let cbor = manifest.to_cbor().unwrap();

    let r = rate(window, || {
        let e = Envelope::sign_person(&cbor, &person.key, &person_chain, day(10)).unwrap();
        e.add_seal(&seal.key, &seal_chain, day(10)).unwrap();
    });
    let raw_sign = crate::pki_bench::raw_sign_rate();
    report("sign a document (official + seal, P-256)", r, "doc", Some(("raw signature", raw_sign)));
    println!("  {:<52} {:>12.2} signatures' worth of work per document (2 signatures)", "", raw_sign / r);

    let envelope = Envelope::sign_person(&cbor, &person.key, &person_chain, day(10))
        .unwrap()
        .add_seal(&seal.key, &seal_chain, day(10))
        .unwrap();
    let crl_set: CrlSet = crls.iter().cloned().collect();
    let cold = VerifyOptions::new(vec![root.cert.clone()], day(20));
    let uncached = Validator::new(cold.anchors.clone()).with_crls(crl_set.clone());
    let r = rate(window, || {
        verify_envelope(&envelope, &uncached, day(20)).unwrap();
    });
    report("verify envelope, no cache (2 sigs + 2 chains + CRLs)", r, "doc", Some(("raw verification", raw_verify)));
    println!("  {:<52} {:>12.2} verifications' worth of work per document", "", raw_verify / r);

    let mut warm = cold.clone();
    warm.cache = Some(Arc::new(SignatureCache::default()));
    let cached = uncached.clone().with_cache(Arc::new(SignatureCache::default()));
    let r = rate(window, || {
        verify_envelope(&envelope, &cached, day(20)).unwrap();
    });
    // The same document again: both chains are cached; the two document signatures are not.
    report("verify envelope, signers' chains cached", r, "doc", Some(("raw verification", raw_verify)));
    println!("  {:<52} {:>12.2} verifications' worth of work per document", "", raw_verify / r);

    // The bundle carries CRLs issued after the signatures (day 11), so the report is PASSED:
    // the path measured is the whole validation model, not an early TRY_LATER.
    let fresh = [root.crl(day(11), day(40)), province.crl(day(11), day(40)), district.crl(day(11), day(40))];
    let crl_der: Vec<Vec<u8>> = fresh.iter().map(|c| c.der().to_vec()).collect();
    let bundle =
        write_bundle(Cursor::new(Vec::new()), &envelope, &crl_der, &[], |_, w| w.write_all(&pdf).map_err(Into::into))
            .unwrap()
            .into_inner();
    assert_eq!(verify_bundle(Cursor::new(&bundle), &warm).unwrap().indication(), Indication::Passed);
    let r = rate(window, || {
        verify_bundle(Cursor::new(&bundle), &warm).unwrap();
    });
    report(
        "validate bundle (100 KiB attachment), PASSED, cache warm",
        r,
        "doc",
        Some(("raw verification", raw_verify)),
    );
}
