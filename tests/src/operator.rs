//! The demo certificate hierarchy built with the `lienthong pki` commands, as an operator
//! following the README would.

use crate::cli::Cli;

/// Passphrases used by the demo hierarchy, by environment variable.
pub const PASSPHRASES: &[(&str, &str)] = &[
    ("ROOT_PASS", "root-passphrase"),
    ("QN_PASS", "quangninh-passphrase"),
    ("TY_PASS", "tienyen-passphrase"),
    ("BC_PASS", "bache-passphrase"),
    ("PERSON_PASS", "person-passphrase"),
];

/// The CA directories of the demo and the variable holding each one's passphrase.
pub const CAS: &[(&str, &str)] =
    &[("root-ca", "ROOT_PASS"), ("quang-ninh-ca", "QN_PASS"), ("tien-yen-ca", "TY_PASS"), ("ba-che-ca", "BC_PASS")];

/// Builds root → Quảng Ninh → {Tiên Yên, Ba Chẽ} CAs and, under Tiên Yên, Phong Dụ's seal
/// (`phong-du-seal.*`) and its chairman's person certificate (`chu-tich.*`), then publishes a
/// CRL from every CA into `crls.pem`.
pub fn demo_hierarchy() -> Cli {
    let mut cli = Cli::new();
    for (k, v) in PASSPHRASES {
        cli.env(k, v);
    }
    cli.lienthong(["pki", "init-root", "--dir", "root-ca", "--key-passphrase-env", "ROOT_PASS"]).ok();
    issue_ca(
        &cli,
        "root-ca",
        "ROOT_PASS",
        "quang-ninh-ca",
        "QN_PASS",
        "000.00.00.H49",
        "Ủy ban nhân dân tỉnh Quảng Ninh",
    );
    issue_ca(
        &cli,
        "quang-ninh-ca",
        "QN_PASS",
        "tien-yen-ca",
        "TY_PASS",
        "000.00.41.H49",
        "Ủy ban nhân dân huyện Tiên Yên",
    );
    issue_ca(&cli, "quang-ninh-ca", "QN_PASS", "ba-che-ca", "BC_PASS", "000.00.42.H49", "Ủy ban nhân dân huyện Ba Chẽ");
    cli.lienthong([
        "pki",
        "issue",
        "--ca",
        "tien-yen-ca",
        "--cert-profile",
        "seal",
        "--agency",
        "000.01.41.H49",
        "--name",
        "Ủy ban nhân dân xã Phong Dụ",
        "--out",
        "phong-du-seal",
        "--ca-passphrase-env",
        "TY_PASS",
    ])
    .ok();
    cli.lienthong([
        "pki",
        "issue",
        "--ca",
        "tien-yen-ca",
        "--cert-profile",
        "person",
        "--agency",
        "000.01.41.H49",
        "--name",
        "Nguyễn Văn An",
        "--position",
        "Chủ tịch",
        "--organization",
        "Ủy ban nhân dân xã Phong Dụ",
        "--out",
        "chu-tich",
        "--ca-passphrase-env",
        "TY_PASS",
        "--key-passphrase-env",
        "PERSON_PASS",
    ])
    .ok();
    publish_crls(&cli);
    cli
}

/// Issues a sub-CA with the CLI.
pub fn issue_ca(cli: &Cli, parent: &str, parent_pass: &str, dir: &str, pass: &str, code: &str, name: &str) {
    cli.lienthong([
        "pki",
        "issue-ca",
        "--ca",
        parent,
        "--dir",
        dir,
        "--agency",
        code,
        "--name",
        name,
        "--ca-passphrase-env",
        parent_pass,
        "--key-passphrase-env",
        pass,
    ])
    .ok();
}

/// Publishes a CRL from every demo CA and concatenates them into `crls.pem`.
pub fn publish_crls(cli: &Cli) {
    let mut all = String::new();
    for (ca, pass) in CAS {
        if cli.path(ca).exists() {
            cli.lienthong(["pki", "crl", "--ca", ca, "--ca-passphrase-env", pass]).ok();
            all.push_str(&std::fs::read_to_string(cli.path(ca).join("crl.pem")).unwrap());
        }
    }
    std::fs::write(cli.path("crls.pem"), all).unwrap();
}
