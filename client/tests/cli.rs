//! Smoke tests of the `lienthong` binary's surface. (Its behaviour is tested end to end in
//! the workspace's `tests/` crate; having an integration test here also makes
//! `cargo test --workspace` build the binary those tests drive.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

fn lienthong(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lienthong")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_operator_commands() {
    let (status, stdout, _) = lienthong(&["pki", "--help"]);
    assert_eq!(status, 0);
    for cmd in ["init-root", "issue-ca", "issue", "revoke", "crl", "show", "verify-chain"] {
        assert!(stdout.contains(cmd), "{cmd} missing from:\n{stdout}");
    }
}

#[test]
fn a_malformed_agency_code_is_a_usage_error_naming_the_group() {
    let (status, _, stderr) =
        lienthong(&["pki", "issue-ca", "--ca", "x", "--dir", "y", "--agency", "000.00.00.X49", "--name", "n"]);
    assert_eq!(status, 2);
    assert!(stderr.contains("unknown level-1 letter 'X'"), "{stderr}");
}

#[test]
fn a_missing_ca_directory_says_how_to_make_one() {
    let dir = std::env::temp_dir().join("lienthong-no-such-ca");
    let (status, _, stderr) = lienthong(&["pki", "crl", "--ca", dir.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("is not a CA directory") && stderr.contains("init-root"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}
