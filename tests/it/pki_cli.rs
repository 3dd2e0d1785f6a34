//! The operator's `lienthong pki` commands, driven as processes, checked against the machine's
//! OpenSSL.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use harness::Cli;

use harness::operator::{demo_hierarchy, publish_crls};

fn openssl_verify(cli: &Cli, extra: &[&str]) -> harness::Run {
    let mut args = vec!["verify", "-CAfile", "root-ca/ca.cert.pem", "-untrusted", "tien-yen-ca/chain.pem"];
    args.extend_from_slice(extra);
    args.push("phong-du-seal.cert.pem");
    cli.run(Path::new("openssl"), args)
}

#[test]
fn openssl_accepts_the_demo_chain_and_refuses_it_revoked_or_expired() {
    let cli = demo_hierarchy();
    // Accepted, with every CRL checked.
    let run = openssl_verify(&cli, &["-crl_check_all", "-CRLfile", "crls.pem"]);
    assert_eq!(run.status, 0, "{run:?}");
    assert!(run.stdout.contains("phong-du-seal.cert.pem: OK"));
    let ours = cli
        .lienthong([
            "pki",
            "verify-chain",
            "phong-du-seal.chain.pem",
            "--anchor",
            "root-ca/ca.cert.pem",
            "--crl",
            "crls.pem",
        ])
        .ok();
    assert!(ours.starts_with("valid: seal certificate of 000.01.41.H49"), "{ours}");

    // Refused when expired: OpenSSL at a time three years on (the seal is valid for two).
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(3 * 365)).unix_timestamp().to_string();
    let run = openssl_verify(&cli, &["-attime", &later]);
    assert_ne!(run.status, 0);
    assert!(
        run.stdout.contains("certificate has expired") || run.stderr.contains("certificate has expired"),
        "{run:?}"
    );
    let at = (time::OffsetDateTime::now_utc() + time::Duration::days(3 * 365)).date().to_string();
    let err = cli
        .lienthong(["pki", "verify-chain", "phong-du-seal.chain.pem", "--anchor", "root-ca/ca.cert.pem", "--at", &at])
        .fails();
    assert!(err.contains("expired at"), "{err}");

    // Refused after revocation.
    cli.lienthong([
        "pki",
        "revoke",
        "--ca",
        "tien-yen-ca",
        "--cert",
        "phong-du-seal.cert.pem",
        "--reason",
        "keyCompromise",
    ])
    .ok();
    publish_crls(&cli);
    let run = openssl_verify(&cli, &["-crl_check_all", "-CRLfile", "crls.pem"]);
    assert_ne!(run.status, 0);
    assert!(run.stdout.contains("certificate revoked") || run.stderr.contains("certificate revoked"), "{run:?}");
    let err = cli
        .lienthong([
            "pki",
            "verify-chain",
            "phong-du-seal.chain.pem",
            "--anchor",
            "root-ca/ca.cert.pem",
            "--crl",
            "crls.pem",
        ])
        .fails();
    assert!(err.contains("was revoked at") && err.contains("keyCompromise") && err.contains("Phong Dụ"), "{err}");
    // Revoking twice is refused.
    let err = cli.lienthong(["pki", "revoke", "--ca", "tien-yen-ca", "--cert", "phong-du-seal.cert.pem"]).fails();
    assert!(err.contains("already revoked"), "{err}");
}

#[test]
fn keys_are_private_and_encrypted_keys_open_in_openssl() {
    let mut cli = demo_hierarchy();
    for key in ["root-ca/ca.key.pem", "tien-yen-ca/ca.key.pem", "phong-du-seal.key.pem", "chu-tich.key.pem"] {
        let mode = std::fs::metadata(cli.path(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let person_key = std::fs::read_to_string(cli.path("chu-tich.key.pem")).unwrap();
    assert!(person_key.contains("ENCRYPTED PRIVATE KEY"));
    let seal_key = std::fs::read_to_string(cli.path("phong-du-seal.key.pem")).unwrap();
    assert!(seal_key.contains("BEGIN PRIVATE KEY"));
    let run = cli
        .run(Path::new("openssl"), ["pkey", "-in", "chu-tich.key.pem", "-passin", "pass:person-passphrase", "-noout"]);
    assert_eq!(run.status, 0, "{run:?}");
    let run = cli.run(Path::new("openssl"), ["pkey", "-in", "chu-tich.key.pem", "-passin", "pass:wrong", "-noout"]);
    assert_ne!(run.status, 0);

    let json = cli.lienthong(["pki", "show", "chu-tich.cert.pem", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["profile"], "person");
    assert_eq!(v[0]["position"], "Chủ tịch");
    assert_eq!(v[0]["common_name"], "Nguyễn Văn An");
    assert_eq!(v[0]["agency"], "000.01.41.H49");
    let human = cli.lienthong(["pki", "show", "chu-tich.cert.pem"]).ok();
    assert!(human.contains("Position:     Chủ tịch") && human.contains("Agency code:  000.01.41.H49"), "{human}");
    // A wrong passphrase for a CA key is named as such and changes nothing.
    cli.env("BAD", "not-the-passphrase");
    let err = cli
        .lienthong([
            "pki",
            "issue",
            "--ca",
            "tien-yen-ca",
            "--cert-profile",
            "node",
            "--agency",
            "000.01.41.H49",
            "--name",
            "x",
            "--out",
            "x",
            "--ca-passphrase-env",
            "BAD",
        ])
        .fails();
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(!cli.path("x.cert.pem").exists() && !cli.path("x.key.pem").exists());
}

#[test]
fn operator_mistakes_get_clear_messages_and_change_nothing() {
    let cli = demo_hierarchy();
    let index_before = std::fs::read_to_string(cli.path("tien-yen-ca/index.jsonl")).unwrap();
    let cases: &[(&[&str], &str)] = &[
        // Tiên Yên's CA may not certify a commune of Ba Chẽ.
        (
            &["--cert-profile", "seal", "--agency", "000.01.42.H49", "--name", "Thanh Sơn", "--out", "a"],
            "000.00.41.H49 may only issue for codes within it, not for 000.01.42.H49",
        ),
        (
            &["--cert-profile", "seal", "--agency", "000.01.41.h49", "--name", "x", "--out", "b"],
            "level-1 letter must be upper case",
        ),
        (&["--cert-profile", "seal", "--agency", "000.1.41.H49", "--name", "x", "--out", "c"], "group 2 (Z1Z2)"),
        (&["--cert-profile", "person", "--agency", "000.01.41.H49", "--name", "x", "--out", "d"], "needs --position"),
        (
            &["--cert-profile", "seal", "--agency", "000.01.41.H49", "--name", "x", "--out", "phong-du-seal"],
            "already exists",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["pki", "issue", "--ca", "tien-yen-ca", "--ca-passphrase-env", "TY_PASS"];
        full.extend_from_slice(args);
        let err = cli.lienthong(&full).fails();
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(cli.path("tien-yen-ca/index.jsonl")).unwrap(), index_before, "nothing recorded");
    // No passphrase source and no terminal: say how to give one.
    let err = cli
        .lienthong([
            "pki",
            "issue",
            "--ca",
            "tien-yen-ca",
            "--cert-profile",
            "node",
            "--agency",
            "000.01.41.H49",
            "--name",
            "x",
            "--out",
            "e",
        ])
        .fails();
    assert!(err.contains("--ca-passphrase-env VAR or --ca-passphrase-file FILE"), "{err}");
    // A district CA cannot make a CA at level 4's bottom, nor a CA over its own parent.
    let err = cli
        .lienthong([
            "pki",
            "issue-ca",
            "--ca",
            "tien-yen-ca",
            "--dir",
            "x-ca",
            "--agency",
            "000.00.00.H49",
            "--name",
            "x",
            "--ca-passphrase-env",
            "TY_PASS",
            "--key-passphrase-env",
            "TY_PASS",
        ])
        .fails();
    assert!(err.contains("may only issue for codes within it"), "{err}");
    // Verifying against the wrong anchor names the certificate and the rule.
    let err = cli
        .lienthong(["pki", "verify-chain", "phong-du-seal.chain.pem", "--anchor", "tien-yen-ca/ca.cert.pem"])
        .fails();
    assert!(err.contains("is not a self-signed root CA"), "{err}");
    // A province CA that tops the chain file is no trust anchor unless asked for explicitly.
    let err = cli
        .lienthong(["pki", "verify-chain", "phong-du-seal.chain.pem", "--anchor", "quang-ninh-ca/ca.cert.pem"])
        .fails();
    assert!(err.contains("is not a self-signed root CA") && err.contains("--danger-partial-chain"), "{err}");
    cli.lienthong([
        "pki",
        "verify-chain",
        "phong-du-seal.chain.pem",
        "--anchor",
        "quang-ninh-ca/ca.cert.pem",
        "--danger-partial-chain",
    ])
    .ok();
    // Serial unknown to the CA.
    let err = cli.lienthong(["pki", "revoke", "--ca", "tien-yen-ca", "--serial", "0102"]).fails();
    assert!(err.contains("has not issued a certificate with serial 0102"), "{err}");
    // A stale CRL is reported as such.
    let week = (time::OffsetDateTime::now_utc() + time::Duration::days(8)).date().to_string();
    let err = cli
        .lienthong([
            "pki",
            "verify-chain",
            "phong-du-seal.chain.pem",
            "--anchor",
            "root-ca/ca.cert.pem",
            "--crl",
            "crls.pem",
            "--at",
            &week,
        ])
        .fails();
    assert!(err.contains("is stale since"), "{err}");
}

#[test]
fn serials_stay_unique_under_concurrent_issuance() {
    let cli = demo_hierarchy();
    let lienthong = harness::bin("lienthong");
    let children: Vec<_> = (0..12)
        .map(|i| {
            std::process::Command::new(&lienthong)
                .args([
                    "pki",
                    "issue",
                    "--ca",
                    "tien-yen-ca",
                    "--cert-profile",
                    "node",
                    "--agency",
                    "000.01.41.H49",
                    "--name",
                    "Phong Dụ node",
                ])
                .args(["--out", &format!("node-{i}"), "--ca-passphrase-env", "TY_PASS"])
                .env("TY_PASS", "tienyen-passphrase")
                .current_dir(cli.dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let index = std::fs::read_to_string(cli.path("tien-yen-ca/index.jsonl")).unwrap();
    let serials: std::collections::HashSet<String> = index
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serials.len(), 14, "12 nodes, the seal and the person, all distinct");
    let counter: u64 = std::fs::read_to_string(cli.path("tien-yen-ca/serial")).unwrap().trim().parse().unwrap();
    assert_eq!(counter, 15);
    assert_eq!(std::fs::read_dir(cli.path("tien-yen-ca/certs")).unwrap().count(), 14);
}
