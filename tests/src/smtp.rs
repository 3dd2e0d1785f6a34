//! A real SMTP server for the mail tests: `tests/interop/smtp_sink.py` (Python's aiosmtpd) on
//! 127.0.0.1, with STARTTLS or implicit TLS from a throwaway CA, optional authentication, and
//! every accepted message saved to a directory the tests read back (decoded by Python's `email`
//! package, an implementation independent of the lettre that encoded it).
//!
//! Nothing is skipped: without aiosmtpd the test fails and says how to install it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// A throwaway CA with a server certificate for 127.0.0.1 and localhost.
pub struct SmtpPki {
    pub dir: tempfile::TempDir,
    /// The CA certificate, PEM (what a node's `mail.ca_file` holds).
    pub ca_pem: String,
}

impl SmtpPki {
    /// A new CA named `name` and its server certificate, written to `cert.pem` / `key.pem`.
    pub fn new(name: &str) -> SmtpPki {
        let now = time::OffsetDateTime::now_utc();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.not_before = now - time::Duration::hours(1);
        ca.not_after = now + time::Duration::days(2);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.not_before = now - time::Duration::hours(1);
        leaf.not_after = now + time::Duration::days(1);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let dir = tempfile::Builder::new().prefix("lienthong-smtp-pki-").tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        SmtpPki { dir, ca_pem: ca_cert.pem() }
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

/// How the server protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP.
    None,
    /// STARTTLS required before anything else.
    Starttls,
    /// TLS from the first byte.
    Implicit,
}

impl SmtpTls {
    fn arg(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::Starttls => "starttls",
            SmtpTls::Implicit => "implicit",
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The Python interpreter that has aiosmtpd: `LIENTHONG_PYTHON`, else `python3` on the PATH,
/// else Debian's `/usr/bin/python3` (where `apt-get install python3-aiosmtpd` puts it).
pub fn python() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("LIENTHONG_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")],
    };
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return python.clone();
        }
    }
    panic!(
        "the mail tests need a real SMTP server: Python's aiosmtpd, which none of {candidates:?} has. Install it with \
         `apt-get install -y python3-aiosmtpd` or `python3 -m pip install aiosmtpd` (.ci/run does), or point \
         LIENTHONG_PYTHON at a Python that has it"
    )
}

/// The SMTP server process; killed on drop.
pub struct SmtpServer {
    pub port: u16,
    /// Where the messages go (kept across restarts of the server).
    pub mail_dir: PathBuf,
    child: Child,
}

/// How to start a server.
pub struct SmtpOptions<'a> {
    pub tls: SmtpTls,
    /// The certificate authority of the server's certificate (needed with TLS).
    pub pki: Option<&'a SmtpPki>,
    /// Require AUTH with this user and password.
    pub login: Option<(&'a str, &'a str)>,
    /// Refuse recipients containing this text with a permanent 550.
    pub reject: Option<&'a str>,
}

impl SmtpServer {
    /// Starts the server on `port`, saving messages into `mail_dir`; returns once it accepts
    /// connections.
    pub fn start(port: u16, mail_dir: &Path, options: &SmtpOptions<'_>) -> SmtpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/smtp_sink.py");
        let mut command = Command::new(python());
        command
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--tls", options.tls.arg()])
            .arg("--out")
            .arg(mail_dir);
        if options.tls != SmtpTls::None {
            let pki = options.pki.expect("a TLS server needs its certificate");
            command.arg("--cert").arg(pki.cert()).arg("--key").arg(pki.key());
        }
        if let Some((user, password)) = options.login {
            command.args(["--user", user, "--password", password]);
        }
        if let Some(reject) = options.reject {
            command.args(["--reject", reject]);
        }
        std::fs::create_dir_all(mail_dir).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(mail_dir.join("server.log")).unwrap();
        let mut child = command.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.starts_with("READY") => {}
            other => {
                let _ = child.kill();
                let status = child.wait().ok().and_then(|s| s.code());
                let log = std::fs::read_to_string(mail_dir.join("server.log")).unwrap_or_default();
                panic!("the SMTP test server did not start on port {port} ({other:?}, exit {status:?}):\n{log}");
            }
        }
        SmtpServer { port, mail_dir: mail_dir.to_owned(), child }
    }

    /// Kills the server (SIGKILL: an outage, not a polite goodbye).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One message as the server received it and Python decoded it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The TLS version of the session, if any.
    pub tls: Option<String>,
    pub authenticated_as: Option<String>,
    /// The message as sent was 7-bit clean (headers and body transfer-encoded).
    pub raw_is_ascii: bool,
    /// Decoded.
    pub subject: String,
    /// As on the wire (RFC 2047 encoded words).
    pub raw_subject: String,
    pub from: String,
    pub to: Vec<String>,
    pub message_id: String,
    pub date: String,
    pub content_type: String,
    pub charset: Option<String>,
    pub transfer_encoding: String,
    pub auto_submitted: String,
    pub notification: String,
    /// Decoded.
    pub body: String,
}

/// A directory for the messages a test server receives; kept (and its path printed) when
/// `LIENTHONG_KEEP_TEST_DIR` is set, like the network's.
pub fn mail_dir() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new().prefix("lienthong-mail-").tempdir().unwrap();
    if std::env::var_os("LIENTHONG_KEEP_TEST_DIR").is_some() {
        eprintln!("mail received in {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    dir
}

/// Every message received in `mail_dir` so far, in arrival order.
pub fn received(mail_dir: &Path) -> Vec<Received> {
    let Ok(entries) = std::fs::read_dir(mail_dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", f.display()))
        })
        .collect()
}

/// Waits until at least `count` messages are in `mail_dir`; returns them all.
pub async fn wait_for_mail(mail_dir: &Path, count: usize, timeout: Duration) -> Vec<Received> {
    let start = Instant::now();
    loop {
        let got = received(mail_dir);
        if got.len() >= count {
            return got;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {count} messages; got {}: {:#?}",
            got.len(),
            got.iter().map(|m| &m.subject).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a node's `[mail]` section says.
pub struct MailSetup<'a> {
    pub port: u16,
    /// `starttls`, `implicit` or `none`.
    pub tls: &'a str,
    /// The CA the node trusts for the relay (written to `smtp-ca.pem`).
    pub ca_pem: Option<&'a str>,
    /// SMTP login; the password goes into `smtp.pass` (mode 0600).
    pub login: Option<(&'a str, &'a str)>,
    pub from: &'a str,
    pub clerks: &'a [&'a str],
    pub operators: &'a [&'a str],
    /// More `[mail]` keys (TOML lines).
    pub extra: &'a str,
}

impl<'a> MailSetup<'a> {
    /// STARTTLS to the relay on `port`, trusting `ca_pem`, no login, no operators, nothing
    /// extra: what most tests start from (`MailSetup { extra: …, ..MailSetup::starttls(…) }`).
    pub fn starttls(port: u16, ca_pem: &'a str, from: &'a str, clerks: &'a [&'a str]) -> Self {
        MailSetup { port, tls: "starttls", ca_pem: Some(ca_pem), login: None, from, clerks, operators: &[], extra: "" }
    }

    /// The `[mail]` section, writing the password and CA files it names into `node_dir`. The
    /// retry policy is fast (200 ms doubling to 1 s) so tests see recovery quickly.
    pub fn section(&self, node_dir: &Path) -> String {
        let quote = |list: &[&str]| list.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
        let mut s = format!(
            "\n[mail]\nserver = \"127.0.0.1\"\nport = {}\ntls = \"{}\"\nfrom = {:?}\nclerks = [{}]\noperators = [{}]\ntimeout = \"5s\"\n",
            self.port,
            self.tls,
            self.from,
            quote(self.clerks),
            quote(self.operators)
        );
        if let Some(ca) = self.ca_pem {
            std::fs::write(node_dir.join("smtp-ca.pem"), ca).unwrap();
            s.push_str("ca_file = \"smtp-ca.pem\"\n");
        }
        if let Some((user, password)) = self.login {
            let file = node_dir.join("smtp.pass");
            std::fs::write(&file, format!("{password}\n")).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            s.push_str(&format!("username = {user:?}\npassword_file = \"smtp.pass\"\n"));
        }
        s.push_str(self.extra);
        s.push_str("\n[mail.retry]\ninitial = \"200ms\"\nmax = \"1s\"\nmax_attempts = 1000\n");
        s
    }
}

/// Sets a node's `[mail]` section: the config written by the network harness plus `section`
/// (replacing any section set before).
pub fn set_mail(config_path: &Path, section: &str) {
    let text = std::fs::read_to_string(config_path).unwrap();
    let base = text.split("\n# -- mail --\n").next().unwrap_or_default().to_owned();
    std::fs::write(config_path, format!("{base}\n# -- mail --\n{section}")).unwrap();
}
