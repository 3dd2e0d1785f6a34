//! Running `lienthong` and `lienthong-node` as processes in a scratch directory.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of a workspace binary (`lienthong`, `lienthong-node`), next to the test executable's
/// `deps/` directory (or next to the running binary, for the `bench` binary). `cargo test
/// --workspace` builds them before running tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let parent = exe.parent().expect("executable directory");
    let dir = if parent.ends_with("deps") { parent.parent().expect("target directory") } else { parent };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` (the README's test command does)",
        path.display()
    );
    path
}

/// The outcome of one command.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            status: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(self.status, 0, "command failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self.stdout
    }

    /// Asserts failure and returns the one-line error from stderr.
    #[track_caller]
    pub fn fails(self) -> String {
        assert_ne!(self.status, 0, "command unexpectedly succeeded:\nstdout: {}", self.stdout);
        let line = self
            .stderr
            .lines()
            .rfind(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("no `error:` line in stderr: {}", self.stderr));
        line.to_owned()
    }
}

/// A scratch directory to run commands in, with passphrases in its environment.
pub struct Cli {
    pub dir: tempfile::TempDir,
    envs: Vec<(String, String)>,
}

impl Default for Cli {
    fn default() -> Self {
        Cli::new()
    }
}

impl Cli {
    pub fn new() -> Cli {
        Cli { dir: tempfile::tempdir().expect("temp dir"), envs: Vec::new() }
    }

    /// Sets an environment variable for every command (passphrases).
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The environment every command gets.
    pub fn envs(&self) -> &[(String, String)] {
        &self.envs
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `lienthong ARGS` in the scratch directory, stdin closed.
    pub fn lienthong<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run(&bin("lienthong"), args)
    }

    /// Runs any program in the scratch directory.
    pub fn run<I, S>(&self, program: &Path, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        Run::from(output)
    }
}

/// A clerk's shell: `lienthong` with its own configuration directory and passphrases
/// (`CHU_TICH_PASS` the right one, `WRONG_PASS` not).
pub fn clerk_shell() -> Cli {
    let mut cli = Cli::new();
    let config = cli.path("config");
    cli.env("LIENTHONG_CONFIG_DIR", config.to_str().unwrap())
        .env("CHU_TICH_PASS", crate::network::PERSON_PASSPHRASE)
        .env("WRONG_PASS", "not-it");
    cli
}

/// Adds the profile `name` for agency `code` of `net` to a clerk's shell.
pub fn add_profile(cli: &Cli, net: &crate::network::TestNet, name: &str, code: &str) {
    let dir = net.node_dir(&code.parse().unwrap());
    let f = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    cli.lienthong([
        "profile",
        "add",
        name,
        "--agency",
        code,
        "--node",
        &net.addrs[&code.parse().unwrap()].to_string(),
        "--anchor",
        net.dir.path().join("root.pem").to_str().unwrap(),
        "--clerk-cert",
        &f("clerk.chain.pem"),
        "--clerk-key",
        &f("clerk.key.pem"),
        "--seal-cert",
        &f("seal.chain.pem"),
        "--seal-key",
        &f("seal.key.pem"),
        "--person-cert",
        &f("person.chain.pem"),
        "--person-key",
        &f("person.key.pem"),
    ])
    .ok();
}
