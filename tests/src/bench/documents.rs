//! Signing and verifying documents against raw P-256, and `lienthong verify` on many bundles.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pki::document::manifest::{Attachment, Business, DocumentKind, Manifest, Urgency};
use pki::document::validation::{Indication, VerifyOptions, verify_bundle};
use pki::document::verify::verify_envelope;
use pki::document::{Envelope, write_bundle};
use pki::testing::{Issued, TestCa, day};
use pki::validate::SignatureCache;
use pki::{CrlSet, Profile, Validator};

use super::measure::{Figures, rate};

/// A four-level hierarchy with a commune's official and seal, and the manifest of a
/// document with a 100 KiB attachment.
struct Fixture {
    root: TestCa,
    province: TestCa,
    district: TestCa,
    person: Issued,
    seal: Issued,
    pdf: Vec<u8>,
    /// CRLs issued after the signatures (day 11), carried by every bundle: as a node's
    /// bundles of one day carry the same CRLs of its CAs.
    fresh_crls: Vec<Vec<u8>>,
}

impl Fixture {
    fn new() -> Fixture {
        let mut root = TestCa::root();
        let mut province = root.sub_ca("000.00.00.H49", "Ủy ban nhân dân tỉnh Quảng Ninh");
        let mut district = province.sub_ca("000.00.41.H49", "Ủy ban nhân dân huyện Tiên Yên");
        let person = district.issue_person("000.01.41.H49", "Nguyễn Văn An", "Chủ tịch", "Ủy ban nhân dân xã Phong Dụ");
        let seal = district.issue(Profile::Seal, "000.01.41.H49", "Ủy ban nhân dân xã Phong Dụ");
        let fresh_crls = [root.crl(day(11), day(40)), province.crl(day(11), day(40)), district.crl(day(11), day(40))]
            .iter()
            .map(|c| c.der().to_vec())
            .collect();
        Fixture { root, province, district, person, seal, pdf: vec![0x25u8; 100 * 1024], fresh_crls }
    }

    fn manifest_cbor(&self, number: u32) -> Vec<u8> {
        let manifest = Manifest {
            from: "000.01.41.H49".parse().unwrap(),
            to: vec!["000.01.42.H49".parse().unwrap(), "000.00.00.G22".parse().unwrap()],
            number,
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
                size: self.pdf.len() as u64,
                sha256: pki::sha256(&self.pdf),
            }],
        };
        manifest.to_cbor().unwrap()
    }

    fn sign(&self, number: u32) -> Envelope {
        let person_chain = vec![self.person.cert.clone(), self.district.cert.clone(), self.province.cert.clone()];
        let seal_chain = vec![self.seal.cert.clone(), self.district.cert.clone(), self.province.cert.clone()];
        Envelope::sign_person(&self.manifest_cbor(number), &self.person.key, &person_chain, day(10))
            .unwrap()
            .add_seal(&self.seal.key, &seal_chain, day(10))
            .unwrap()
    }

    /// A bundle of document `number` with CRLs issued after its signatures (day 11), so it
    /// validates to PASSED: what is measured is the whole validation model, not an early
    /// TRY_LATER.
    fn bundle(&self, number: u32) -> Vec<u8> {
        let envelope = self.sign(number);
        let pdf = &self.pdf;
        write_bundle(Cursor::new(Vec::new()), &envelope, &self.fresh_crls, &[], |_, w| {
            w.write_all(pdf).map_err(Into::into)
        })
        .unwrap()
        .into_inner()
    }
}

pub fn run(figures: &mut Figures, raw_verify: f64, raw_sign: f64) {
    figures.section("documents: official signs, seal signs over it; verification checks both chains at signing time");
    let window = Duration::from_millis(700);
    let mut fx = Fixture::new();
    let crls = [fx.root.crl(day(0), day(30)), fx.province.crl(day(0), day(30)), fx.district.crl(day(0), day(30))];

    let r = rate(window, || {
        fx.sign(123);
    });
    figures.against(
        "document_sign_per_s",
        "sign a document (official + seal, P-256)",
        r,
        "docs/s",
        ("raw signature, 1 thread", raw_sign),
    );
    figures.note(&format!("{:.2} signatures' worth of work per document (2 signatures)", raw_sign / r));

    let envelope = fx.sign(123);
    let crl_set: CrlSet = crls.iter().cloned().collect();
    let cold = VerifyOptions::new(vec![fx.root.cert.clone()], day(20));
    let uncached = Validator::new(cold.anchors.clone()).with_crls(crl_set.clone());
    let limit = ("raw verification, 1 thread", raw_verify);
    let r = rate(window, || {
        verify_envelope(&envelope, &uncached, day(20)).unwrap();
    });
    figures.against(
        "envelope_verify_uncached_per_s",
        "verify envelope, no cache (2 sigs + 2 chains + CRLs)",
        r,
        "docs/s",
        limit,
    );
    figures.note(&format!("{:.2} verifications' worth of work per document", raw_verify / r));

    let mut warm = cold.clone();
    warm.cache = Some(Arc::new(SignatureCache::default()));
    let cached = uncached.clone().with_cache(Arc::new(SignatureCache::default()));
    let r = rate(window, || {
        verify_envelope(&envelope, &cached, day(20)).unwrap();
    });
    // The same document again: both chains are cached; the two document signatures are not.
    figures.against("envelope_verify_cached_per_s", "verify envelope, signers' chains cached", r, "docs/s", limit);
    figures.note(&format!("{:.2} verifications' worth of work per document", raw_verify / r));

    let bundle = fx.bundle(123);
    assert_eq!(verify_bundle(Cursor::new(&bundle), &warm).unwrap().indication(), Indication::Passed);
    let r = rate(window, || {
        verify_bundle(Cursor::new(&bundle), &warm).unwrap();
    });
    figures.against(
        "bundle_validate_warm_per_s",
        "validate bundle (100 KiB attachment), PASSED, cache warm",
        r,
        "docs/s",
        limit,
    );
}

/// How many times `lienthong verify DIR` runs over the same bundles; the figure is the median.
const VERIFY_DIR_RUNS: usize = 3;

/// `lienthong verify` on `many` distinct bundles in one process (`lienthong verify DIR`: one
/// shared cache, every core), against two raw verifications per document on every core
/// (`raw_verify_all` verifications/s); then, for comparison, `lienthong verify` on the first
/// `one_each` of them with a process per bundle, as many processes at once as there are cores.
pub fn verify_cli(figures: &mut Figures, many: u32, one_each: u32, raw_verify_all: f64) {
    let dir = tempfile::Builder::new().prefix("lienthong-bench-verify-").tempdir().unwrap();
    let bundles = dir.path().join("bundles");
    std::fs::create_dir(&bundles).unwrap();
    let fx = Fixture::new();
    std::fs::write(dir.path().join("root.pem"), fx.root.cert.to_pem()).unwrap();
    let files: Vec<_> = (0..many)
        .map(|i| {
            let path = bundles.join(format!("doc-{i:06}.ltd"));
            std::fs::write(&path, fx.bundle(1_000 + i)).unwrap();
            path
        })
        .collect();
    let at = day(20).format(&time::format_description::well_known::Rfc3339).unwrap();
    let limit = ("2 raw verifications, all cores", raw_verify_all / 2.0);

    // Three runs over the same files, the median kept: one run lasts a third of a second, and
    // single runs of the same code moved by 1.3 x from one to the next.
    let mut rates: Vec<f64> = (0..VERIFY_DIR_RUNS)
        .map(|_| {
            let start = Instant::now();
            let out = std::process::Command::new(crate::bin("lienthong"))
                .arg("verify")
                .arg("bundles")
                .args(["--anchor", "root.pem", "--at", &at])
                .current_dir(dir.path())
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let r = f64::from(many) / start.elapsed().as_secs_f64();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "lienthong verify bundles: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(stdout.lines().filter(|l| l.starts_with("PASSED  ")).count(), many as usize, "{stdout}");
            r
        })
        .collect();
    let runs = rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", ");
    rates.sort_by(f64::total_cmp);
    let r = rates[rates.len() / 2];
    figures.against(
        "verify_docs_per_s",
        &format!(
            "`verify DIR`, {many} bundles, 1 process, {} threads, median of {VERIFY_DIR_RUNS}",
            super::measure::cores()
        ),
        r,
        "docs/s",
        limit,
    );
    figures.note(&format!("runs: {runs} docs/s"));
    // Each bundle's attachment must be hashed too: with the issue's limit alone, the 100 KiB
    // attachment (SHA-256 at about 1.8 GB/s, half the time of two verifications) would count
    // as overhead.
    let hashes = super::measure::rate_on_all_cores(Duration::from_millis(300), || {
        let pdf = fx.pdf.clone();
        move || {
            std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &pdf));
        }
    });
    let with_hash = 1.0 / (2.0 / raw_verify_all + 1.0 / hashes);
    figures.note(&format!(
        "{:.2} x 2 raw verifications + SHA-256 of the bundle's 100 KiB attachment, all cores = {with_hash:.0} docs/s",
        r / with_hash
    ));
    figures.record("verify_with_attachment_hash_limit_docs_per_s", with_hash, "docs/s");

    let next = std::sync::atomic::AtomicUsize::new(0);
    let each = &files[..(one_each as usize).min(files.len())];
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..super::measure::cores() {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(file) = each.get(i) else { break };
                    verify_one(&crate::bin("lienthong"), dir.path(), file, &at);
                }
            });
        }
    });
    let r = each.len() as f64 / start.elapsed().as_secs_f64();
    figures.against(
        "verify_one_process_per_bundle_docs_per_s",
        &format!("`lienthong verify FILE`, {} bundles, a process each", each.len()),
        r,
        "docs/s",
        limit,
    );
}

fn verify_one(program: &Path, dir: &Path, file: &Path, at: &str) {
    let out = std::process::Command::new(program)
        .arg("verify")
        .arg(file)
        .args(["--anchor", "root.pem", "--at", at])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "lienthong verify {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
}
