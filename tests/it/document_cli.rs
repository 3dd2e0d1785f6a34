//! `lienthong sign` and `lienthong verify` as processes, and the independent COSE check with
//! pycose.

use std::path::Path;

use harness::Cli;
use harness::operator::{demo_hierarchy, publish_crls};

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

/// The official signs (draft.ltd), then the clerk seals (doc.ltd).
fn sign_and_seal(cli: &Cli) {
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
        "crls.pem",
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
        "--out",
        "doc.ltd",
    ])
    .ok();
}

fn pycose(cli: &Cli, bundle: &str) -> harness::Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/pycose_verify.py");
    cli.run(Path::new("python3"), [script.to_str().unwrap(), bundle])
}

#[test]
fn official_signs_clerk_seals_verifier_checks_offline_and_pycose_agrees() {
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    sign_and_seal(&cli);

    // The draft is not a finished document.
    let err = cli.lienthong(["verify", "draft.ltd", "--anchor", "root-ca/ca.cert.pem"]).fails();
    assert!(err.contains("signed by one party only"), "{err}");

    let out = cli.lienthong(["verify", "doc.ltd", "--anchor", "root-ca/ca.cert.pem"]).ok();
    assert!(out.starts_with("VERIFIED  000.01.41.H49,2026/11/23,123/UBND-VP"), "{out}");
    for expected in [
        "Nguyễn Văn An, Chủ tịch [000.01.41.H49] — official's signature",
        "Ủy ban nhân dân xã Phong Dụ [000.01.41.H49] — agency seal",
        "Hỏa tốc (3)",
        "Công văn 123.pdf",
        "intact",
        "not revoked at signing time",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let json = cli.lienthong(["verify", "doc.ltd", "--anchor", "root-ca/ca.cert.pem", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["report"]["signers"][0]["role"], "person");
    assert_eq!(v["report"]["signers"][1]["role"], "seal");
    assert_eq!(v["report"]["signers"][0]["chain"].as_array().unwrap().len(), 4);
    assert_eq!(v["report"]["manifest"]["subject"], "Về việc chủ động ứng phó với bão số 3 và mưa lũ trên địa bàn xã");

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
    let ours = cli.lienthong(["verify", "tampered.ltd", "--anchor", "root-ca/ca.cert.pem"]).fails();
    assert!(ours.contains("META-INF/envelope.cose") && ours.contains("altered"), "{ours}");
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
        "--out",
        "doc.ltd",
    ])
    .ok();
    let json = cli.lienthong(["verify", "doc.ltd", "--anchor", "root-ca/ca.cert.pem", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["report"]["signers"][0]["algorithm"], "PS256");
    assert_eq!(v["report"]["signers"][1]["algorithm"], "EdDSA");
    let run = pycose(&cli, "doc.ltd");
    assert_eq!(run.status, 0, "pycose: {run:?}");
    assert!(
        run.stdout.contains("signature 1: ok (PS256") && run.stdout.to_lowercase().contains("signature 2: ok (eddsa"),
        "{}",
        run.stdout
    );
}

#[test]
fn altered_attachments_and_revoked_signers_are_refused_with_the_reason() {
    let cli = demo_hierarchy();
    write_form(&cli, FORM);
    sign_and_seal(&cli);

    // Alter the attachment inside the ZIP (same length, so only the content differs).
    let bytes = std::fs::read(cli.path("doc.ltd")).unwrap();
    let needle = b"van ban thu nghiem";
    let pos = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
    let mut altered = bytes.clone();
    altered[pos] = b'V';
    std::fs::write(cli.path("altered.ltd"), &altered).unwrap();
    let err = cli.lienthong(["verify", "altered.ltd", "--anchor", "root-ca/ca.cert.pem"]).fails();
    assert!(err.contains("Công văn 123.pdf") && err.contains("altered"), "{err}");

    // The official's certificate is revoked a moment after signing: the document still verifies,
    // and says so.
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
    let out = cli.lienthong(["verify", "doc.ltd", "--anchor", "root-ca/ca.cert.pem", "--crl", "crls.pem"]).ok();
    assert!(out.contains("revoked later") && out.contains("affiliationChanged"), "{out}");

    // A document signed after the revocation is refused.
    std::fs::remove_file(cli.path("draft.ltd")).unwrap();
    std::fs::remove_file(cli.path("doc.ltd")).unwrap();
    sign_and_seal(&cli);
    let err = cli.lienthong(["verify", "doc.ltd", "--anchor", "root-ca/ca.cert.pem", "--crl", "crls.pem"]).fails();
    assert!(err.contains("official's signature") && err.contains("was revoked at"), "{err}");
    let json = cli.lienthong(["verify", "doc.ltd", "--anchor", "root-ca/ca.cert.pem", "--crl", "crls.pem", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["kind"], "chain");
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
            "--out",
            "x.ltd",
        ])
        .fails();
    assert!(err.contains("wrong passphrase"), "{err}");
}
