//! The daemon's command line: `init` writes a config; `check` reports every problem of a
//! config with its key, and a bad config never starts a node. (Having an integration test here
//! also makes `cargo test --workspace` build the binary the process-level tests run.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

fn node(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong-node")).args(args).current_dir(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_writes_a_commented_config_that_check_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = node(
        &[
            "init",
            "--agency",
            "000.01.41.H49",
            "--name",
            "Ủy ban nhân dân xã Phong Dụ",
            "--listen",
            "127.0.0.1:7401",
            "--parent",
            "000.00.41.H49@127.0.0.1:7301",
        ],
        dir.path(),
    );
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("node.toml"));
    let text = std::fs::read_to_string(dir.path().join("node.toml")).unwrap();
    assert!(text.contains("agency = \"000.01.41.H49\"") && text.contains("[parent]") && text.contains("# "), "{text}");
    // Init never overwrites.
    let (status, _, stderr) = node(&["init", "--agency", "000.01.41.H49", "--name", "x"], dir.path());
    assert_ne!(status, 0);
    assert!(stderr.contains("already exists"), "{stderr}");
    // The template is valid TOML whose only problems are the files not yet in place.
    let (status, _, stderr) = node(&["check", "--config", "node.toml"], dir.path());
    assert_ne!(status, 0);
    for key in ["tls.certificate", "tls.key", "seal.certificate", "seal.key", "tls.trust_anchor"] {
        assert!(stderr.contains(&format!(": {key}: cannot read")), "{key} not reported:\n{stderr}");
    }
}

#[test]
fn every_problem_is_reported_with_its_key_and_the_node_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        r#"
[node]
agency = "000.01.41.h49"
name = ""
listen = "localhost"
data_dir = "data"
database = "mysql://x"
[tls]
certificate = "missing.pem"
key = "missing.key"
trust_anchor = "root.pem"
[seal]
certificate = "missing.pem"
key = "missing.key"
[crl]
freshness = "a week"
files = ["nope.crl"]
[parent]
agency = "000.00.41.H49"
address = "not an address"
[[child]]
agency = "000.01.01.H49"
address = []
[[child]]
agency = "000.02.01.H49"
address = ["10.0.0.5:7400", "10.0.0.6"]
[limits]
max_connections = 0
keep_alive = "90s"
idle_timeout = "60s"
outbox_lease = "500ms"
connect_timeout = "soon"
[retry]
jitter = 2.0
max_attempts = 0
"#,
    )
    .unwrap();
    let (status, _, stderr) = node(&["run", "--config", "bad.toml"], dir.path());
    assert_eq!(status, 1);
    for expected in [
        "node.agency: agency code \"000.01.41.h49\": level-1 letter must be upper case",
        "node.name: is empty",
        "node.listen: \"localhost\" is not an address",
        "node.database: \"mysql://x\" is neither",
        "crl.freshness: \"a week\" is not a duration",
        "crl.files[0]:",
        "parent.address:",
        "child[0].address: is an empty list",
        "child[1].address: \"10.0.0.6\" is not an address",
        "limits.outbox_lease: must be at least 1s",
        "limits.connect_timeout: \"soon\" is not a duration",
        "limits.max_connections: must be at least 1",
        "limits.keep_alive: must be shorter than limits.idle_timeout",
        "retry.jitter: must be between 0 and 1",
        "retry.max_attempts: must be at least 1",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(!dir.path().join("data").exists(), "a bad config must not create state");
    // Unknown keys are refused by name and line, with the key meant.
    std::fs::write(dir.path().join("typo.toml"), "[node]\nagency = \"000.01.41.H49\"\nnmae = \"x\"\n").unwrap();
    let (status, _, stderr) = node(&["check", "--config", "typo.toml"], dir.path());
    assert_ne!(status, 0);
    assert!(stderr.contains("typo.toml:3: node.nmae: unknown key; did you mean `name`?"), "{stderr}");
}

#[test]
fn the_example_configs_in_deploy_are_valid_but_for_their_certificate_files() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let (status, _, stderr) = node(&["check", "--config", path.to_str().unwrap()], &examples);
        assert_ne!(status, 0, "the certificate files are not there");
        let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ")).collect();
        assert!(!problems.is_empty(), "{stderr}");
        for p in problems {
            assert!(
                p.contains("cannot read") || p.contains("does not exist"),
                "{}: unexpected problem {p}",
                path.display()
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}
