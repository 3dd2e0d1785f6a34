//! `lienthong sign` and `lienthong verify` as processes: the report and its exit status for
//! PASSED, FAILED and INDETERMINATE, the backdating attack, what `sign` refuses, signer
//! fidelity in NFC and NFD (a property test over names and key types), and the independent
//! COSE check with pycose.

use std::path::Path;

use harness::operator::{PASSPHRASES, demo_hierarchy, publish_crls};
use harness::{Cli, Run};
use pki::testing::TestCa;
use pki::{Certificate, PrivateKey};

const FORM: &str = r#"
to = ["000.01.42.H49", "000.00.00.G22"]
number = 123
notation = "UBND-VP"
place = "Phong Dụ"
date = 2026-11-23
kind = "administrative"
type = "Công văn"
subject = "Về việc chủ động ứng phó với bão số 3 và mưa lũ trên địa bàn xã"
due = 2026-12-01
urgency = "hỏa tốc"
"#;

const PDF: &str = "Công văn 123.pdf";

fn write_form(cli: &Cli, text: &str) {
    std::fs::write(cli.path("form.toml"), text).unwrap();
    std::fs::write(cli.path(PDF), b"%PDF-1.4 van ban thu nghiem\n").unwrap();
}

const ANCHOR: &str = "root-ca/ca.cert.pem";

/// The official signs (draft.ltd), then the clerk seals (doc.ltd), with `crls` checked and
/// carried.
fn sign_and_seal_with(cli: &Cli, crls: &str) {
    cli.lienthong([
        "sign",
        "--form",
        "form.toml",
        "--attach",
        PDF,
        "--key",
        "chu-tich.key.pem",
        "--cert",
        "chu-tich.chain.pem",
        "--passphrase-env",
        "PERSON_PASS",
        "--crl",
        crls,
        "--anchor",
        ANCHOR,
        "--out",
        "draft.ltd",
    ])
    .ok();
    cli.lienthong([
        "sign",
        "--seal",
        "draft.ltd",
        "--seal-key",
        "phong-du-seal.key.pem",
        "--seal-cert",
        "phong-du-seal.chain.pem",
        "--anchor",
        ANCHOR,
        "--out",
        "doc.ltd",
    ])
    .ok();
}

fn sign_and_seal(cli: &Cli) {
    sign_and_seal_with(cli, "crls.pem");
}

/// `lienthong verify FILE --anchor ROOT EXTRA…`.
fn verify(cli: &Cli, file: &str, extra: &[&str]) -> Run {
    let mut args = vec!["verify", file, "--anchor", ANCHOR];
    args.extend_from_slice(extra);
    cli.lienthong(&args)
}

/// Asserts the exit status and the report's first line, and returns the report.
#[track_caller]
fn verdict(run: Run, status: i32, first_line: &str) -> String {
    assert_eq!(run.status, status, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with(first_line), "expected {first_line:?}, got:\n{}", run.stdout);
    if status != 0 {
        assert!(run.stderr.starts_with("error: "), "one line on stderr: {}", run.stderr);
    }
    run.stdout
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// A CA directory made by `lienthong pki`, as a CA in memory (to make certificates the CLI
/// would refuse to issue, such as names in NFD).
fn ca_of(cli: &Cli, dir: &str, passphrase_var: &str) -> TestCa {
    let pass = PASSPHRASES.iter().find(|(k, _)| *k == passphrase_var).unwrap().1;
    let cert = Certificate::from_pem_all(&std::fs::read_to_string(cli.path(dir).join("ca.cert.pem")).unwrap())
        .unwrap()
        .remove(0);
    let key = PrivateKey::from_pem(
        &std::fs::read_to_string(cli.path(dir).join("ca.key.pem")).unwrap(),
        Some(pass.as_bytes()),
    )
    .unwrap();
    TestCa::from_parts(cert, key)
}

fn pycose(cli: &Cli, bundle: &str) -> harness::Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/pycose_verify.py");
    cli.run(Path::new("python3"), [script.to_str().unwrap(), bundle])
}

#[test]
fn official_signs_clerk_seals_verifier_checks_offline_and_pycose_agrees() {
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    // Times are whole seconds: a signature in the second the CRLs were published would be one
    // they speak for (PASSED below, instead of TRY_LATER). Sign in a later second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    sign_and_seal(&cli);

    // The draft is not a finished document: FAILED, exit 1, the whole report printed.
    let out =
        verdict(verify(&cli, "draft.ltd", &[]), 1, "FAILED (FORMAT_FAILURE)  000.01.41.H49,2026/11/23,123/UBND-VP");
    assert!(out.contains("signed by one party only"), "{out}");

    // The CRLs the signers held were published before they signed: they cannot speak for the
    // signatures, and there is no receipt yet. INDETERMINATE, exit 3, saying what to do.
    let run = verify(&cli, "doc.ltd", &[]);
    assert!(run.stderr.contains("--crl"), "{}", run.stderr);
    let out = verdict(run, 3, "INDETERMINATE (TRY_LATER)  000.01.41.H49,2026/11/23,123/UBND-VP");
    assert!(out.contains("what to do:") && out.contains("before the signature's claimed time"), "{out}");

    // The CAs publish again: with CRLs issued after the signatures, PASSED, exit 0.
    publish_crls(&cli);
    let out =
        verdict(verify(&cli, "doc.ltd", &["--crl", "crls.pem"]), 0, "PASSED  000.01.41.H49,2026/11/23,123/UBND-VP");
    for expected in [
        "Nguyễn Văn An, Chủ tịch [000.01.41.H49] — official's signature: PASSED",
        "Ủy ban nhân dân xã Phong Dụ [000.01.41.H49] — agency seal: PASSED",
        "NO independent proof of existence",
        "Hỏa tốc (3)",
        "Công văn 123.pdf",
        "intact",
        "not revoked (CRL issued",
        "root         Root CA",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let run = verify(&cli, "doc.ltd", &["--crl", "crls.pem", "--json"]);
    assert_eq!(run.status, 0);
    let v = json(&run);
    assert_eq!((v["indication"].as_str(), v["sub_indication"].as_str()), (Some("PASSED"), None));
    assert_eq!(v["signatures"][0]["role"], "person");
    assert_eq!(v["signatures"][1]["role"], "seal");
    assert_eq!(v["signatures"][0]["chain"].as_array().unwrap().len(), 4);
    assert_eq!(v["manifest"]["subject"], "Về việc chủ động ứng phó với bão số 3 và mưa lũ trên địa bàn xã");

    // An independent COSE implementation verifies each signature with the x5chain leaf.
    let run = pycose(&cli, "doc.ltd");
    assert_eq!(run.status, 0, "pycose: {run:?}");
    assert!(
        run.stdout.contains("signature 1: ok (ES256") && run.stdout.contains("signature 2: ok (ES256"),
        "{}",
        run.stdout
    );

    // A flipped bit in the seal's signature (the last bytes of the envelope, just before the
    // next ZIP entry): pycose sees signature 2 fail on the envelope alone, and our verifier
    // refuses the bundle (the ZIP checksum catches it before the signature does).
    let bytes = std::fs::read(cli.path("doc.ltd")).unwrap();
    let env_start =
        bytes.windows(4).position(|w| w == [0xd8, 0x62, 0x84, 0x58]).expect("tagged COSE_Sign in the bundle");
    let env_end = env_start + bytes[env_start..].windows(4).position(|w| w == b"PK\x03\x04").unwrap();
    let mut envelope = bytes[env_start..env_end].to_vec();
    let last = envelope.len() - 10;
    envelope[last] ^= 0x01;
    std::fs::write(cli.path("tampered.cose"), &envelope).unwrap();
    let theirs = pycose(&cli, "tampered.cose");
    assert_eq!(theirs.status, 1, "{theirs:?}");
    assert!(
        theirs.stdout.contains("signature 1: ok") && theirs.stdout.contains("signature 2: FAILED"),
        "{}",
        theirs.stdout
    );
    let mut tampered = bytes.clone();
    tampered[env_end - 10] ^= 0x01;
    std::fs::write(cli.path("tampered.ltd"), &tampered).unwrap();
    let ours = verdict(verify(&cli, "tampered.ltd", &["--crl", "crls.pem"]), 1, "FAILED (FORMAT_FAILURE)");
    assert!(ours.contains("META-INF/envelope.cose") && ours.contains("altered"), "{ours}");
}

/// `lienthong verify DIR` and `lienthong verify PATH PATH…`: one process for many bundles.
/// One line per bundle in the order given (a directory's `*.ltd` sorted by name; other files
/// and subdirectories left out), a file that cannot be read FAILED with its error without
/// stopping the others, the worst verdict's exit status, `--json` as an array in the same
/// order, and `--max-files` at its edge.
#[test]
fn many_bundles_are_verified_in_one_process_one_line_each_in_order_with_the_worst_exit_status() {
    const ID: &str = "000.01.41.H49,2026/11/23,123/UBND-VP";
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    sign_and_seal(&cli);
    publish_crls(&cli);
    // A second document signed after those CRLs: they cannot speak for it (TRY_LATER).
    std::fs::rename(cli.path("doc.ltd"), cli.path("first.ltd")).unwrap();
    std::fs::remove_file(cli.path("draft.ltd")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write_form(&cli, FORM);
    sign_and_seal(&cli);

    let archive = cli.path("archive");
    std::fs::create_dir_all(archive.join("sub.ltd")).unwrap();
    std::fs::copy(cli.path("first.ltd"), archive.join("a-passed.ltd")).unwrap();
    let mut altered = std::fs::read(cli.path("first.ltd")).unwrap();
    let needle = b"van ban thu nghiem";
    let pos = altered.windows(needle.len()).position(|w| w == needle).unwrap();
    altered[pos] = b'V';
    std::fs::write(archive.join("b-altered.ltd"), &altered).unwrap();
    std::os::unix::fs::symlink("nowhere.ltd.gone", archive.join("c-gone.ltd")).unwrap();
    std::fs::write(archive.join("notes.txt"), "not a bundle").unwrap();

    let archive_lines = [
        format!("PASSED  archive/a-passed.ltd  {ID}"),
        format!("FAILED  archive/b-altered.ltd  {ID}  HASH_FAILURE"),
        "FAILED  archive/c-gone.ltd  -  cannot open archive/c-gone.ltd: No such file or directory (os error 2)"
            .to_owned(),
    ];
    let run = verify(&cli, "archive", &["--crl", "crls.pem"]);
    println!("{}{}", run.stdout, run.stderr);
    assert_eq!(run.status, 1, "{run:?}");
    let mut expected = archive_lines.to_vec();
    expected.push("3 bundles: 1 PASSED, 0 INDETERMINATE, 2 FAILED".to_owned());
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected, "{}", run.stderr);
    assert!(run.stderr.contains("bundles/s"), "{}", run.stderr);

    // Paths in the order given, a file and a directory: INDETERMINATE first, FAILED decides.
    let run = verify(&cli, "doc.ltd", &["archive", "--crl", "crls.pem"]);
    assert_eq!(run.status, 1, "{run:?}");
    let lines: Vec<_> = run.stdout.lines().collect();
    assert_eq!(lines[0], format!("INDETERMINATE  doc.ltd  {ID}  TRY_LATER"));
    assert_eq!(&lines[1..4], &archive_lines);
    assert_eq!(lines[4], "4 bundles: 1 PASSED, 1 INDETERMINATE, 2 FAILED");
    // Without a FAILED one, INDETERMINATE is the worst: exit 3; all PASSED, exit 0.
    let run = verify(&cli, "archive/a-passed.ltd", &["doc.ltd", "--crl", "crls.pem"]);
    assert_eq!(run.status, 3, "{run:?}");
    let run = verify(&cli, "archive/a-passed.ltd", &["first.ltd", "--crl", "crls.pem"]);
    assert_eq!(run.status, 0, "{run:?}");
    assert!(run.stdout.ends_with("2 bundles: 2 PASSED, 0 INDETERMINATE, 0 FAILED\n"), "{}", run.stdout);

    // --json: the reports as an array, in the same order, each naming its file.
    let run = verify(&cli, "archive", &["doc.ltd", "--crl", "crls.pem", "--json"]);
    assert_eq!(run.status, 1, "{run:?}");
    let v = json(&run);
    let entries = v.as_array().unwrap();
    let files: Vec<_> = entries.iter().map(|e| e["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["archive/a-passed.ltd", "archive/b-altered.ltd", "archive/c-gone.ltd", "doc.ltd"]);
    let indications: Vec<_> = entries.iter().map(|e| e["indication"].as_str().unwrap()).collect();
    assert_eq!(indications, ["PASSED", "FAILED", "FAILED", "INDETERMINATE"]);
    assert_eq!(entries[0]["signatures"][1]["role"], "seal");
    assert_eq!(entries[1]["sub_indication"], "HASH_FAILURE");
    assert!(entries[2]["error"].as_str().unwrap().contains("cannot open"), "{}", entries[2]);
    assert_eq!(entries[3]["sub_indication"], "TRY_LATER");

    // --max-files: the three in the directory pass with a limit of 3, not with 2.
    let run = verify(&cli, "archive", &["--crl", "crls.pem", "--max-files", "3"]);
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
    let run = verify(&cli, "archive", &["--crl", "crls.pem", "--max-files", "2"]);
    assert_eq!(run.status, 4, "{run:?}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("more than 2 bundles") && run.stderr.contains("--max-files"), "{}", run.stderr);
    let run = verify(&cli, "archive/a-passed.ltd", &["doc.ltd", "first.ltd", "--max-files", "2"]);
    assert_eq!(run.status, 4, "{run:?}");

    // A log proof is of one document.
    let run = verify(&cli, "archive", &["--log-proof", "proof.0"]);
    assert_eq!(run.status, 4, "{run:?}");
    assert!(run.stderr.contains("--log-proof goes with one bundle"), "{}", run.stderr);
}

#[test]
fn rsa_and_ed25519_signers_sign_through_the_cli_and_verify_in_pycose() {
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    // An RSA-2048 official key made elsewhere (as a government token would hold), certified by
    // its public key.
    let run = cli.run(
        Path::new("openssl"),
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa.key.pem"],
    );
    assert_eq!(run.status, 0, "{run:?}");
    cli.run(Path::new("openssl"), ["pkey", "-in", "rsa.key.pem", "-pubout", "-out", "rsa.pub.pem"]).ok();
    cli.lienthong([
        "pki",
        "issue",
        "--ca",
        "tien-yen-ca",
        "--profile",
        "person",
        "--agency",
        "000.01.41.H49",
        "--name",
        "Nguyễn Văn An",
        "--position",
        "Chủ tịch",
        "--public-key",
        "rsa.pub.pem",
        "--out",
        "rsa-person",
        "--ca-passphrase-env",
        "TY_PASS",
    ])
    .ok();
    cli.lienthong([
        "pki",
        "issue",
        "--ca",
        "tien-yen-ca",
        "--profile",
        "seal",
        "--agency",
        "000.01.41.H49",
        "--name",
        "Ủy ban nhân dân xã Phong Dụ",
        "--key-alg",
        "ed25519",
        "--out",
        "ed-seal",
        "--ca-passphrase-env",
        "TY_PASS",
    ])
    .ok();
    cli.lienthong([
        "sign",
        "--form",
        "form.toml",
        "--attach",
        PDF,
        "--key",
        "rsa.key.pem",
        "--cert",
        "rsa-person.chain.pem",
        "--seal-key",
        "ed-seal.key.pem",
        "--seal-cert",
        "ed-seal.chain.pem",
        "--crl",
        "crls.pem",
        "--anchor",
        ANCHOR,
        "--out",
        "doc.ltd",
    ])
    .ok();
    publish_crls(&cli);
    let run = verify(&cli, "doc.ltd", &["--crl", "crls.pem", "--json"]);
    let v = json(&run);
    assert_eq!(run.status, 0, "{v}");
    assert_eq!(v["signatures"][0]["algorithm"], "PS256");
    assert_eq!(v["signatures"][1]["algorithm"], "EdDSA");
    let run = pycose(&cli, "doc.ltd");
    assert_eq!(run.status, 0, "pycose: {run:?}");
    assert!(
        run.stdout.contains("signature 1: ok (PS256") && run.stdout.to_lowercase().contains("signature 2: ok (eddsa"),
        "{}",
        run.stdout
    );
}

#[test]
fn altered_attachments_and_revoked_signers_are_reported_with_the_reason() {
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    sign_and_seal(&cli);
    std::fs::copy(cli.path("crls.pem"), cli.path("crls-before.pem")).unwrap();

    // Alter the attachment inside the ZIP (same length, so only the content differs).
    let bytes = std::fs::read(cli.path("doc.ltd")).unwrap();
    let needle = b"van ban thu nghiem";
    let pos = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    let mut altered = bytes.clone();
    altered[pos] = b'V';
    std::fs::write(cli.path("altered.ltd"), &altered).unwrap();
    let out = verdict(verify(&cli, "altered.ltd", &[]), 1, "FAILED (HASH_FAILURE)");
    assert!(out.contains("Công văn 123.pdf") && out.contains("altered"), "{out}");

    // The official's certificate is revoked a moment after signing. With no receipt, nothing
    // independent shows the signature came first: INDETERMINATE, not "stands".
    std::thread::sleep(std::time::Duration::from_millis(1100));
    cli.lienthong([
        "pki",
        "revoke",
        "--ca",
        "tien-yen-ca",
        "--cert",
        "chu-tich.cert.pem",
        "--reason",
        "affiliationChanged",
    ])
    .ok();
    publish_crls(&cli);
    let out = verdict(verify(&cli, "doc.ltd", &["--crl", "crls.pem"]), 3, "INDETERMINATE (REVOKED_NO_POE)");
    assert!(out.contains("REVOKED at") && out.contains("affiliationChanged"), "{out}");
    let v = json(&verify(&cli, "doc.ltd", &["--crl", "crls.pem", "--json"]));
    assert_eq!(v["sub_indication"], "REVOKED_NO_POE");
    assert_eq!(v["signatures"][0]["sub_indication"], "REVOKED_NO_POE");
    assert_eq!(v["signatures"][1]["indication"], "PASSED");

    // `sign` knows the new CRL and refuses, with verify's reason.
    std::fs::remove_file(cli.path("draft.ltd")).unwrap();
    std::fs::remove_file(cli.path("doc.ltd")).unwrap();
    write_form(&cli, FORM);
    let err = cli
        .lienthong([
            "sign",
            "--form",
            "form.toml",
            "--attach",
            PDF,
            "--key",
            "chu-tich.key.pem",
            "--cert",
            "chu-tich.chain.pem",
            "--passphrase-env",
            "PERSON_PASS",
            "--crl",
            "crls.pem",
            "--anchor",
            ANCHOR,
            "--out",
            "draft.ltd",
        ])
        .fails();
    assert!(err.contains("cannot sign") && err.contains("was revoked at") && err.contains("FAILED REVOKED"), "{err}");
    assert!(!cli.path("draft.ltd").exists());

    // Signed with only the old CRL at hand, the signature is FAILED REVOKED for whoever has
    // the new one: the signer's own time is after the revocation.
    sign_and_seal_with(&cli, "crls-before.pem");
    let out = verdict(verify(&cli, "doc.ltd", &["--crl", "crls.pem"]), 1, "FAILED (REVOKED)");
    assert!(out.contains("official's signature") && out.contains("at or after the revocation"), "{out}");
}

#[test]
fn the_backdating_attack_offline_is_never_passed() {
    // Issue 11: the chairman's key is stolen; his certificate is revoked for keyCompromise at T.
    // The thief signs after T with iat = T − 2 s (lienthong sign would not: the key is used here
    // through the library, as a modified tool would) and bundles the CRLs at hand.
    let cli = demo_hierarchy();
    // Times a little ahead (the certificates were issued just now), validated with --at.
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let t = now + time::Duration::minutes(30);
    let rfc = |at: time::OffsetDateTime| at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let older = |name: &str| {
        let mut all = String::new();
        for (ca, pass) in harness::operator::CAS {
            cli.lienthong([
                "pki",
                "crl",
                "--ca",
                ca,
                "--ca-passphrase-env",
                pass,
                "--at",
                &rfc(t - time::Duration::minutes(10)),
            ])
            .ok();
            all.push_str(&std::fs::read_to_string(cli.path(ca).join("crl.pem")).unwrap());
        }
        std::fs::write(cli.path(name), all).unwrap();
    };
    older("crls-older.pem");
    cli.lienthong([
        "pki",
        "revoke",
        "--ca",
        "tien-yen-ca",
        "--cert",
        "chu-tich.cert.pem",
        "--reason",
        "keyCompromise",
        "--at",
        &rfc(t),
    ])
    .ok();
    cli.lienthong([
        "pki",
        "crl",
        "--ca",
        "tien-yen-ca",
        "--ca-passphrase-env",
        "TY_PASS",
        "--at",
        &rfc(t + time::Duration::minutes(1)),
    ])
    .ok();
    std::fs::copy(cli.path("tien-yen-ca/crl.pem"), cli.path("crl-newer.pem")).unwrap();

    let read_chain = |f: &str| Certificate::from_pem_all(&std::fs::read_to_string(cli.path(f)).unwrap()).unwrap();
    let person_key = PrivateKey::from_pem(
        &std::fs::read_to_string(cli.path("chu-tich.key.pem")).unwrap(),
        Some(PASSPHRASES.iter().find(|(k, _)| *k == "PERSON_PASS").unwrap().1.as_bytes()),
    )
    .unwrap();
    let seal_key =
        PrivateKey::from_pem(&std::fs::read_to_string(cli.path("phong-du-seal.key.pem")).unwrap(), None).unwrap();
    let manifest = pki::document::Manifest {
        from: "000.01.41.H49".parse().unwrap(),
        to: vec!["000.01.42.H49".parse().unwrap()],
        number: 9,
        notation: "UBND-VP".into(),
        place: "Phong Dụ".into(),
        date: now.date(),
        kind: pki::document::DocumentKind::Administrative,
        type_name: "Quyết định".into(),
        subject: "Về việc chuyển toàn bộ kinh phí dự phòng".into(),
        signer_name: "Nguyễn Văn An".into(),
        signer_position: "Chủ tịch".into(),
        due: None,
        urgency: pki::document::Urgency::Normal,
        steering: 0,
        business: pki::document::Business::New,
        attachments: Vec::new(),
    };
    let backdated = t - time::Duration::seconds(2);
    let envelope = pki::document::Envelope::sign_person(
        &manifest.to_cbor().unwrap(),
        &person_key,
        &read_chain("chu-tich.chain.pem"),
        backdated,
    )
    .unwrap()
    .add_seal(&seal_key, &read_chain("phong-du-seal.chain.pem"), backdated)
    .unwrap();
    let crl_ders = |files: &[&str]| -> Vec<Vec<u8>> {
        files
            .iter()
            .flat_map(|f| pki::Crl::from_pem_all(&std::fs::read_to_string(cli.path(f)).unwrap()).unwrap())
            .map(|c| c.der().to_vec())
            .collect()
    };
    let write = |name: &str, crls: Vec<Vec<u8>>| {
        let file = std::fs::File::create(cli.path(name)).unwrap();
        pki::document::write_bundle(file, &envelope, &crls, &[], |_, _| Ok(())).unwrap();
    };
    write("forged.ltd", crl_ders(&["crls-older.pem", "crl-newer.pem"]));
    write("forged-old-crls.ltd", crl_ders(&["crls-older.pem"]));

    let at = rfc(t + time::Duration::minutes(2));
    let verify = |file: &str, extra: &[&str]| {
        let mut args = vec!["--at", at.as_str()];
        args.extend_from_slice(extra);
        verify(&cli, file, &args)
    };
    // Both the newer CRL and an older one in the bundle: the revocation is found, and nothing
    // independent dates the signature before it.
    let out = verdict(verify("forged.ltd", &[]), 3, "INDETERMINATE (REVOKED_NO_POE)");
    println!("{out}");
    assert!(
        out.contains("keyCompromise") && out.contains("a signature backdated with the revoked key would look the same"),
        "{out}"
    );
    let v = json(&verify("forged.ltd", &["--json"]));
    assert_eq!(
        (v["indication"].as_str(), v["sub_indication"].as_str()),
        (Some("INDETERMINATE"), Some("REVOKED_NO_POE"))
    );
    // Only the older CRL: it predates the claimed time and cannot speak for the signature.
    println!("{}", verdict(verify("forged-old-crls.ltd", &[]), 3, "INDETERMINATE (TRY_LATER)"));
    // The verifier brings the CA's newest CRL: the same verdict as with it in the bundle.
    verdict(verify("forged-old-crls.ltd", &["--crl", "crl-newer.pem"]), 3, "INDETERMINATE (REVOKED_NO_POE)");
}

#[test]
fn sign_refuses_what_verify_would_refuse() {
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    let sign = |extra: &[&str]| {
        let mut args = vec![
            "sign",
            "--form",
            "form.toml",
            "--attach",
            PDF,
            "--key",
            "chu-tich.key.pem",
            "--cert",
            "chu-tich.chain.pem",
            "--passphrase-env",
            "PERSON_PASS",
            "--seal-key",
            "phong-du-seal.key.pem",
            "--out",
            "x.ltd",
        ];
        args.extend_from_slice(extra);
        cli.lienthong(&args)
    };
    // No anchor, no profile: it will not sign unchecked.
    let err = sign(&["--seal-cert", "phong-du-seal.chain.pem"]).fails();
    assert!(err.contains("--anchor"), "{err}");
    // A province CA is not a root: refused as an anchor unless asked for explicitly.
    let err = sign(&["--seal-cert", "phong-du-seal.chain.pem", "--anchor", "quang-ninh-ca/ca.cert.pem"]).fails();
    assert!(err.contains("not a self-signed root") && err.contains("--danger-partial-chain"), "{err}");
    let err = cli.lienthong(["verify", "nothing.ltd", "--anchor", "quang-ninh-ca/ca.cert.pem"]);
    assert_eq!(err.status, 4, "{err:?}");
    assert!(err.stderr.contains("not a self-signed root"), "{}", err.stderr);
    sign(&[
        "--seal-cert",
        "phong-du-seal.chain.pem",
        "--anchor",
        "quang-ninh-ca/ca.cert.pem",
        "--danger-partial-chain",
    ])
    .ok();
    std::fs::remove_file(cli.path("x.ltd")).unwrap();
    // A district's seal over a commune official: no delegation across agencies.
    cli.lienthong([
        "pki",
        "issue",
        "--ca",
        "quang-ninh-ca",
        "--profile",
        "seal",
        "--agency",
        "000.00.41.H49",
        "--name",
        "Ủy ban nhân dân huyện Tiên Yên",
        "--out",
        "tien-yen-seal",
        "--ca-passphrase-env",
        "QN_PASS",
    ])
    .ok();
    let err = cli
        .lienthong([
            "sign",
            "--form",
            "form.toml",
            "--attach",
            PDF,
            "--key",
            "chu-tich.key.pem",
            "--cert",
            "chu-tich.chain.pem",
            "--passphrase-env",
            "PERSON_PASS",
            "--seal-key",
            "tien-yen-seal.key.pem",
            "--seal-cert",
            "tien-yen-seal.chain.pem",
            "--anchor",
            ANCHOR,
            "--out",
            "x.ltd",
        ])
        .fails();
    assert!(err.contains("cannot sign") && err.contains("delegation"), "{err}");
    // A [signer] position other than the certificate's title.
    write_form(&cli, &format!("{FORM}\n[signer]\nname = \"Nguyễn Văn An\"\nposition = \"Phó Chủ tịch\"\n"));
    let err = sign(&["--seal-cert", "phong-du-seal.chain.pem", "--anchor", ANCHOR]).fails();
    assert!(err.contains("position") && err.contains("Phó Chủ tịch") && err.contains("Chủ tịch"), "{err}");
    assert!(!cli.path("x.ltd").exists(), "nothing written");
}

#[test]
fn signing_mistakes_are_caught_before_anything_is_signed() {
    let cli = demo_hierarchy();
    let sign = |form: &str, extra: &[&str]| {
        write_form(&cli, form);
        let mut args = vec![
            "sign",
            "--form",
            "form.toml",
            "--attach",
            PDF,
            "--key",
            "chu-tich.key.pem",
            "--cert",
            "chu-tich.chain.pem",
            "--passphrase-env",
            "PERSON_PASS",
            "--anchor",
            ANCHOR,
            "--out",
            "x.ltd",
        ];
        args.extend_from_slice(extra);
        let err = cli.lienthong(&args).fails();
        assert!(!cli.path("x.ltd").exists(), "nothing written");
        err
    };
    let err = sign(&FORM.replace("000.01.42.H49", "000.01.42.h49"), &[]);
    assert!(err.contains("recipient \"000.01.42.h49\"") && err.contains("upper case"), "{err}");
    let err = sign(&FORM.replace("Về việc chủ động", &"dài ".repeat(130)), &[]);
    assert!(err.contains("subject has") && err.contains("more than 500"), "{err}");
    let err = sign(FORM, &["--attach", "missing.pdf"]);
    assert!(err.contains("missing.pdf"), "{err}");
    let err = sign(&FORM.replace("urgency = \"hỏa tốc\"", "urgency = \"gấp\""), &[]);
    assert!(err.contains("unknown urgency"), "{err}");
    // The seal's key used as the official's.
    write_form(&cli, FORM);
    let err = cli
        .lienthong([
            "sign",
            "--form",
            "form.toml",
            "--attach",
            PDF,
            "--key",
            "phong-du-seal.key.pem",
            "--cert",
            "phong-du-seal.chain.pem",
            "--anchor",
            ANCHOR,
            "--out",
            "x.ltd",
        ])
        .fails();
    assert!(err.contains("cannot sign as person") && err.contains("seal certificate"), "{err}");
    // A key that is not the certificate's.
    let err = cli
        .lienthong([
            "sign",
            "--form",
            "form.toml",
            "--attach",
            PDF,
            "--key",
            "phong-du-seal.key.pem",
            "--cert",
            "chu-tich.chain.pem",
            "--anchor",
            ANCHOR,
            "--out",
            "x.ltd",
        ])
        .fails();
    assert!(err.contains("does not belong to the certificate"), "{err}");
    // A wrong passphrase.
    let mut bad = Cli::new();
    bad.env("PERSON_PASS", "wrong");
    std::fs::copy(cli.path("chu-tich.key.pem"), bad.path("k.pem")).unwrap();
    std::fs::copy(cli.path("chu-tich.chain.pem"), bad.path("c.pem")).unwrap();
    std::fs::write(bad.path("form.toml"), FORM).unwrap();
    std::fs::copy(cli.path(ANCHOR), bad.path("root.pem")).unwrap();
    let err = bad
        .lienthong([
            "sign",
            "--form",
            "form.toml",
            "--key",
            "k.pem",
            "--cert",
            "c.pem",
            "--passphrase-env",
            "PERSON_PASS",
            "--anchor",
            "root.pem",
            "--out",
            "x.ltd",
        ])
        .fails();
    assert!(err.contains("wrong passphrase"), "{err}");
}

/// An official for the property test: a Vietnamese name and position, each written in NFC or
/// in NFD (as a certificate from another CA may carry them), with an RSA-2048 or a P-256 key.
#[derive(Clone, Debug)]
struct Official {
    name: String,
    position: String,
    name_nfd: bool,
    position_nfd: bool,
    rsa: bool,
}

fn official() -> impl proptest::strategy::Strategy<Value = Official> {
    use proptest::prelude::*;
    use proptest::sample::select;
    let surnames = vec!["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô"];
    let middles = vec!["Văn", "Thị", "Hữu", "Đức", "Ngọc", "Thanh", "Minh", "Quốc", "Thùy"];
    let givens =
        vec!["An", "Bình", "Cường", "Dũng", "Hạnh", "Hương", "Khánh", "Lộc", "Phượng", "Quỳnh", "Thủy", "Yến", "Ánh"];
    let positions = vec!["Chủ tịch", "Phó Chủ tịch", "Trưởng phòng Tư pháp", "Giám đốc Sở Nội vụ", "Chánh Văn phòng"];
    (select(surnames), select(middles), select(givens), select(positions), any::<bool>(), any::<bool>(), any::<bool>())
        .prop_map(|(s, m, g, position, name_nfd, position_nfd, rsa)| Official {
            name: format!("{s} {m} {g}"),
            position: position.to_owned(),
            name_nfd,
            position_nfd,
            rsa,
        })
}

#[test]
fn what_sign_writes_verify_accepts_for_names_in_nfc_or_nfd_and_rsa_or_p256_keys() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use unicode_normalization::UnicodeNormalization;
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    let tien_yen = std::cell::RefCell::new(ca_of(&cli, "tien-yen-ca", "TY_PASS"));
    let ca_chain = std::fs::read_to_string(cli.path("tien-yen-ca/chain.pem")).unwrap();
    let mut runner = TestRunner::new(Config { cases: 3, failure_persistence: None, ..Config::default() });
    let rounds = std::cell::Cell::new(0);
    let result = runner.run(&proptest::collection::vec(official(), 4), |officials| {
        rounds.set(rounds.get() + 1);
        let round = rounds.get();
        let mut signed = Vec::new();
        for (i, o) in officials.iter().enumerate() {
            let written = |text: &str, nfd: bool| if nfd { text.nfd().collect::<String>() } else { text.to_owned() };
            let (name, position) = (written(&o.name, o.name_nfd), written(&o.position, o.position_nfd));
            let key = if o.rsa {
                pki::testing::rsa_key()
            } else {
                PrivateKey::generate(pki::KeyAlgorithm::EcdsaP256).unwrap()
            };
            let spki = key.public_key().spki_der.clone();
            let cert = tien_yen.borrow_mut().issue_unchecked(
                pki::Profile::Person,
                "000.01.41.H49",
                &o.name,
                &spki,
                |params| {
                    params.distinguished_name.push(rcgen::DnType::CommonName, name.clone());
                    params.distinguished_name.push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 12]), position.clone());
                },
            );
            prop_assert_eq!(cert.common_name.as_deref(), Some(name.as_str()));
            let tag = format!("{round}-{i}");
            std::fs::write(cli.path(&format!("person-{tag}.chain.pem")), format!("{}{ca_chain}", cert.to_pem()))
                .unwrap();
            std::fs::write(cli.path(&format!("person-{tag}.key.pem")), key.to_pem().as_bytes()).unwrap();
            let (key_file, cert_file, out) =
                (format!("person-{tag}.key.pem"), format!("person-{tag}.chain.pem"), format!("doc-{tag}.ltd"));
            let run = cli.lienthong([
                "sign",
                "--form",
                "form.toml",
                "--attach",
                PDF,
                "--key",
                &key_file,
                "--cert",
                &cert_file,
                "--seal-key",
                "phong-du-seal.key.pem",
                "--seal-cert",
                "phong-du-seal.chain.pem",
                "--crl",
                "crls.pem",
                "--anchor",
                ANCHOR,
                "--out",
                &out,
            ]);
            prop_assert_eq!(run.status, 0, "sign {:?}: {}", o, run.stderr);
            signed.push((out, o.clone()));
        }
        // CRLs published after the signatures speak for them.
        publish_crls(&cli);
        for (file, o) in signed {
            let run = verify(&cli, &file, &["--crl", "crls.pem", "--json"]);
            prop_assert_eq!(run.status, 0, "verify {:?}: {}", o, run.stdout);
            let v = json(&run);
            let (name, position): (String, String) = (o.name.nfc().collect(), o.position.nfc().collect());
            prop_assert_eq!(v["signatures"][0]["name"].as_str(), Some(name.as_str()));
            prop_assert_eq!(v["manifest"]["signer_position"].as_str(), Some(position.as_str()));
            prop_assert_eq!(v["signatures"][0]["position"].as_str(), Some(position.as_str()));
            prop_assert_eq!(v["signatures"][0]["algorithm"].as_str(), Some(if o.rsa { "PS256" } else { "ES256" }));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
