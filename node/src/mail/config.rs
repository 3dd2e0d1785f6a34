//! `[mail]`: the SMTP relay, the sender address, who is told what, and the mail queue's retry
//! policy. [`RawMail`] is the TOML as written; [`validate`] turns it into a [`MailConfig`] or
//! into problems, each with its key, collected with the rest of the node's configuration so an
//! operator fixes the file in one pass.
//!
//! The section is optional: without it the node queues no mail at all.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate as SmtpCertificate, TlsParameters};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::config::{HumanDuration, RetryPolicy};

/// `[mail]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    /// The SMTP relay's host name or IP address.
    pub server: String,
    /// Its port; default 587 for STARTTLS, 465 for implicit TLS, 25 without TLS.
    pub port: Option<u16>,
    /// `starttls` (default), `implicit`, or `none` (a relay on this machine only).
    #[serde(default = "default_tls")]
    pub tls: String,
    /// SMTP user name, if the relay wants authentication (with `password_file`).
    pub username: Option<String>,
    /// The file holding the SMTP password (mode 0600); the password never sits in the config.
    pub password_file: Option<PathBuf>,
    /// Never accepted: present only to answer with a clear problem instead of "unknown field".
    pub password: Option<IgnoredAny>,
    /// The sender, e.g. `Liên thông Phong Dụ <lienthong@phongdu.quangninh.gov.vn>`.
    pub from: String,
    /// Extra root certificates (PEM) the relay's certificate may chain to, besides the public
    /// web roots: for a relay with a certificate from the agency's own CA.
    pub ca_file: Option<PathBuf>,
    /// The agency's clerks (văn thư): arrivals, failed deliveries, statuses, the daily digest.
    #[serde(default)]
    pub clerks: Vec<String>,
    /// The node's operators: certificates close to expiry.
    #[serde(default)]
    pub operators: Vec<String>,
    /// Whether progress statuses (01, 03–06, 15) of documents this agency sent are mailed too;
    /// refusals and recall requests always are.
    #[serde(default)]
    pub notify_status: bool,
    /// Operators are warned when a certificate expires within this many days.
    #[serde(default = "default_expiry_days")]
    pub expiry_warning_days: u32,
    /// When the daily digest of overdue documents goes out, `HH:MM` Vietnam time (UTC+7), or
    /// `off`.
    #[serde(default = "default_digest_at")]
    pub digest_at: String,
    /// Further certificate files whose expiry operators are warned of (e.g. the officials'
    /// personal signing certificates this agency manages); the node and seal certificates are
    /// always watched.
    #[serde(default)]
    pub certificates: Vec<PathBuf>,
    /// How long one SMTP conversation (connect, TLS, authenticate, send) may take.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// `[mail.retry]`.
    #[serde(default)]
    pub retry: RawMailRetry,
}

fn default_tls() -> String {
    "starttls".into()
}

fn default_expiry_days() -> u32 {
    30
}

fn default_digest_at() -> String {
    "08:00".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}

/// `[mail.retry]`: how a notification the relay did not take is retried. The defaults keep
/// trying for about a day (30 s doubling to 30 min, 50 attempts): a relay down overnight delays
/// mail, it does not lose it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMailRetry {
    /// First delay.
    pub initial: HumanDuration,
    /// Longest delay.
    pub max: HumanDuration,
    /// After this many failed attempts a notification is dead-lettered (kept, shown in the
    /// health read-out, not sent).
    pub max_attempts: u32,
}

impl Default for RawMailRetry {
    fn default() -> Self {
        RawMailRetry { initial: HumanDuration::secs(30), max: HumanDuration::mins(30), max_attempts: 50 }
    }
}

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which must succeed (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Implicit,
    /// No TLS at all: allowed only for a relay on this machine's loopback address, because
    /// mail and password would otherwise cross the network in clear text.
    DangerCleartextLoopback,
}

impl std::fmt::Display for TlsMode {
    /// As the configuration writes it (`mail.tls`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
            TlsMode::DangerCleartextLoopback => "none",
        })
    }
}

/// SMTP credentials. The password is read from its file at start and never printed.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    password: String,
}

impl Credentials {
    /// The password, for the SMTP client only.
    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"(hidden)").finish()
    }
}

/// `[mail]`, validated: what the mail queue and its worker run on.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Relay host.
    pub server: String,
    /// Relay port.
    pub port: u16,
    /// Connection protection.
    pub tls: TlsMode,
    /// Authentication, if any.
    pub credentials: Option<Credentials>,
    /// The sender mailbox.
    pub from: Mailbox,
    /// Extra trusted roots (DER) for the relay's certificate.
    pub extra_roots: Vec<Vec<u8>>,
    /// Clerks' mailboxes.
    pub clerks: Vec<Mailbox>,
    /// Operators' mailboxes.
    pub operators: Vec<Mailbox>,
    /// See [`RawMail::notify_status`].
    pub notify_status: bool,
    /// See [`RawMail::expiry_warning_days`].
    pub expiry_warning_days: u32,
    /// Digest time of day in Vietnam time; `None` when off.
    pub digest_at: Option<time::Time>,
    /// Extra certificate files watched for expiry (absolute paths).
    pub certificates: Vec<PathBuf>,
    /// SMTP conversation timeout.
    pub timeout: Duration,
    /// Retry policy of the mail queue (multiplier 2, jitter ±20 %).
    pub retry: RetryPolicy,
}

impl MailConfig {
    /// The TLS parameters for the relay: the public web roots plus `extra_roots`, *ring* as
    /// the crypto provider, the server name checked against the certificate.
    pub fn tls_parameters(&self) -> Result<TlsParameters, lettre::transport::smtp::Error> {
        let mut builder = TlsParameters::builder(self.server.clone());
        for der in &self.extra_roots {
            builder = builder.add_root_certificate(SmtpCertificate::from_der(der.clone())?);
        }
        builder.build_rustls()
    }

    /// The domain of the sender address: the right-hand side of every Message-ID.
    pub fn from_domain(&self) -> &str {
        self.from.email.domain()
    }
}

/// A commented `[mail]` section for `lienthong-node init`.
pub const TEMPLATE: &str = r#"
# Email notifications (optional; without [mail] nothing is mailed). Clerks are told of arriving
# documents (urgency first), refused or undeliverable sent documents and, each morning, of
# overdue documents; operators of certificates close to expiry. Mail waits in its own durable
# queue: an SMTP outage delays mail, never a document.
# [mail]
# server = "smtp.example.gov.vn"
# port = 587                          # default: 587 starttls, 465 implicit, 25 none
# tls = "starttls"                    # "starttls", "implicit", or "none" (127.0.0.1/::1 only)
# username = "lienthong"              # with password_file; the password is never written here
# password_file = "smtp.pass"         # mode 0600
# from = "Liên thông <lienthong@example.gov.vn>"
# ca_file = "smtp-ca.pem"             # extra roots for the relay's certificate, if needed
# clerks = ["vanthu@example.gov.vn"]
# operators = ["quantri@example.gov.vn"]
# notify_status = false               # also mail statuses 01, 03-06, 15 of sent documents
# expiry_warning_days = 30
# digest_at = "08:00"                 # Vietnam time (UTC+7), or "off"
# certificates = []                   # e.g. officials' personal certificates to watch
# timeout = "30s"
# [mail.retry]
# initial = "30s"
# max = "30m"
# max_attempts = 50                   # about a day, then dead-lettered (see lienthong-node status)
"#;

type Problems = Vec<(String, String)>;

fn problem(problems: &mut Problems, key: &str, text: impl ToString) {
    problems.push((format!("mail.{key}"), text.to_string()));
}

fn duration(problems: &mut Problems, key: &str, d: HumanDuration) -> Option<Duration> {
    if d.get().is_zero() {
        problem(problems, key, "must be longer than zero");
        return None;
    }
    Some(d.get())
}

fn mailbox(problems: &mut Problems, key: &str, text: &str) -> Option<Mailbox> {
    match Mailbox::from_str(text.trim()) {
        Ok(m) => Some(m),
        Err(e) => {
            problem(
                problems,
                key,
                format!("{text:?} is not a mail address like vanthu@example.gov.vn or \"Name <a@b.gov.vn>\" ({e})"),
            );
            None
        }
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_owned() } else { base.join(path) }
}

fn parse_time_of_day(text: &str) -> Result<Option<time::Time>, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let bad = || format!("{text:?} is not a time of day like 08:00 (Vietnam time), or \"off\"");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m) = (h.parse::<u8>().map_err(|_| bad())?, m.parse::<u8>().map_err(|_| bad())?);
    time::Time::from_hms(h, m, 0).map(Some).map_err(|_| bad())
}

/// Reads the password file: the first line, without its line end. It must not be readable by
/// others, like a private key.
fn read_password(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by other users (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(line.to_owned())
}

fn check_server(server: &str, tls: Option<TlsMode>) -> Result<(), String> {
    let host = server.trim();
    let port_glued = host.contains(':') && host.parse::<IpAddr>().is_err();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains(['/', '[', ']']) || port_glued {
        return Err(format!("{server:?} is not a host name or IP address (write the port in mail.port)"));
    }
    if tls == Some(TlsMode::DangerCleartextLoopback) {
        let loopback = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "tls = \"none\" sends mail and the SMTP password in clear text, so it is allowed only for a relay on this machine (127.0.0.1 or ::1), not {host}; use \"starttls\" or \"implicit\""
            ));
        }
    }
    Ok(())
}

/// Validates `[mail]` (resolving relative paths against `base`), adding every problem to
/// `problems`. `None` when the section is absent or has problems.
pub fn validate(raw: Option<&RawMail>, base: &Path, problems: &mut Vec<(String, String)>) -> Option<MailConfig> {
    let raw = raw?;
    let before = problems.len();
    let tls = match raw.tls.trim().to_ascii_lowercase().as_str() {
        "starttls" => Some(TlsMode::Starttls),
        "implicit" => Some(TlsMode::Implicit),
        "none" => Some(TlsMode::DangerCleartextLoopback),
        other => {
            problem(problems, "tls", format!("{other:?} is not one of \"starttls\", \"implicit\", \"none\""));
            None
        }
    };
    if let Err(e) = check_server(&raw.server, tls) {
        problem(problems, if tls == Some(TlsMode::DangerCleartextLoopback) { "tls" } else { "server" }, e);
    }
    let port = raw.port.unwrap_or(match tls {
        Some(TlsMode::Implicit) => 465,
        Some(TlsMode::DangerCleartextLoopback) => 25,
        _ => 587,
    });
    if port == 0 {
        problem(problems, "port", "must be 1 to 65535");
    }
    if raw.password.is_some() {
        problem(
            problems,
            "password",
            "passwords are not written in the configuration; put it in a file (mode 0600) and name that file in mail.password_file",
        );
    }
    let credentials = match (&raw.username, &raw.password_file) {
        (Some(user), Some(file)) if !user.trim().is_empty() => match read_password(&resolve(base, file)) {
            Ok(password) => Some(Credentials { username: user.trim().to_owned(), password }),
            Err(e) => {
                problem(problems, "password_file", e);
                None
            }
        },
        (Some(_), Some(_)) => {
            problem(problems, "username", "is empty");
            None
        }
        (Some(_), None) => {
            problem(problems, "password_file", "is missing: mail.username needs the file holding the password");
            None
        }
        (None, Some(_)) => {
            problem(problems, "username", "is missing: mail.password_file is set, so whose password is it?");
            None
        }
        (None, None) => None,
    };
    let from = mailbox(problems, "from", &raw.from);
    let clerks: Vec<Mailbox> =
        raw.clerks.iter().enumerate().filter_map(|(i, a)| mailbox(problems, &format!("clerks[{i}]"), a)).collect();
    let operators: Vec<Mailbox> = raw
        .operators
        .iter()
        .enumerate()
        .filter_map(|(i, a)| mailbox(problems, &format!("operators[{i}]"), a))
        .collect();
    if raw.clerks.is_empty() && raw.operators.is_empty() {
        problem(problems, "clerks", "no one to mail: list the clerks and/or the operators (or remove [mail])");
    }
    if raw.expiry_warning_days == 0 || raw.expiry_warning_days > 3650 {
        problem(problems, "expiry_warning_days", "must be 1 to 3650");
    }
    let digest_at = parse_time_of_day(&raw.digest_at).map_err(|e| problem(problems, "digest_at", e)).ok().flatten();
    let certificates: Vec<PathBuf> = raw.certificates.iter().map(|f| resolve(base, f)).collect();
    for (i, path) in certificates.iter().enumerate() {
        let read = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
        match read.and_then(|t| pki::Certificate::from_pem_all(&t).map_err(|e| format!("{}: {e}", path.display()))) {
            Ok(c) if !c.is_empty() => {}
            Ok(_) => {
                problem(problems, &format!("certificates[{i}]"), format!("{} holds no certificate", path.display()))
            }
            Err(e) => problem(problems, &format!("certificates[{i}]"), e),
        }
    }
    let extra_roots = match &raw.ca_file {
        Some(file) => {
            let path = resolve(base, file);
            let read = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()));
            match read.and_then(|t| pki::pem::blocks(&t, "CERTIFICATE").map_err(|e| format!("{}: {e}", path.display())))
            {
                Ok(roots) if !roots.is_empty() => roots,
                Ok(_) => {
                    problem(problems, "ca_file", format!("{} holds no certificate", path.display()));
                    Vec::new()
                }
                Err(e) => {
                    problem(problems, "ca_file", e);
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };
    let timeout = duration(problems, "timeout", raw.timeout);
    let initial = duration(problems, "retry.initial", raw.retry.initial);
    let max = duration(problems, "retry.max", raw.retry.max);
    crate::config::check_retry_delay(problems, "mail.retry.initial", initial);
    crate::config::check_retry_delay(problems, "mail.retry.max", max);
    if let (Some(i), Some(m)) = (initial, max)
        && m < i
    {
        problem(problems, "retry.max", "must not be shorter than mail.retry.initial");
    }
    if raw.retry.max_attempts == 0 {
        problem(problems, "retry.max_attempts", "must be at least 1");
    }
    if problems.len() > before {
        return None;
    }
    let config = MailConfig {
        server: raw.server.trim().to_owned(),
        port,
        tls: tls?,
        credentials,
        from: from?,
        extra_roots,
        clerks,
        operators,
        notify_status: raw.notify_status,
        expiry_warning_days: raw.expiry_warning_days,
        digest_at,
        certificates,
        timeout: timeout?,
        retry: RetryPolicy {
            initial: initial?,
            max: max?,
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: raw.retry.max_attempts,
            jitter_seed: None,
        },
    };
    // The TLS setup is built once here so that a root the TLS library refuses is reported at
    // start, with its key, rather than on the first mail.
    if config.tls != TlsMode::DangerCleartextLoopback
        && let Err(e) = config.tls_parameters()
    {
        problem(problems, "ca_file", format!("cannot set up TLS for {}: {e}", config.server));
        return None;
    }
    Some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(extra: &str) -> RawMail {
        toml::from_str(&format!(
            "server = \"smtp.example.gov.vn\"\nfrom = \"Liên thông <lienthong@example.gov.vn>\"\nclerks = [\"vanthu@example.gov.vn\"]\n{extra}"
        ))
        .unwrap()
    }

    fn check(extra: &str) -> Result<MailConfig, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let dir = std::env::temp_dir();
        match validate(Some(&raw(extra)), &dir, &mut problems) {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
        }
    }

    fn keys(extra: &str) -> Vec<String> {
        check(extra).err().unwrap_or_default().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn defaults_are_starttls_on_587_with_a_digest_at_eight() {
        let c = check("").unwrap();
        assert_eq!((c.tls, c.port), (TlsMode::Starttls, 587));
        assert_eq!(c.digest_at, Some(time::macros::time!(08:00)));
        assert_eq!(c.expiry_warning_days, 30);
        assert_eq!(c.retry.max_attempts, 50);
        assert_eq!(c.from_domain(), "example.gov.vn");
        assert_eq!(check("tls = \"implicit\"").unwrap().port, 465);
    }

    #[test]
    fn cleartext_is_refused_for_anything_but_loopback() {
        let problems = check("tls = \"none\"").unwrap_err();
        assert_eq!(problems[0].0, "mail.tls");
        assert!(problems[0].1.contains("127.0.0.1 or ::1"), "{problems:?}");
        let mut r = raw("tls = \"none\"");
        for server in ["127.0.0.1", "::1"] {
            r.server = server.into();
            let mut problems = Vec::new();
            let c = validate(Some(&r), Path::new("/"), &mut problems).unwrap();
            assert_eq!((c.tls, c.port), (TlsMode::DangerCleartextLoopback, 25));
        }
        r.server = "localhost".into();
        let mut problems = Vec::new();
        assert!(validate(Some(&r), Path::new("/"), &mut problems).is_none());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let found = keys(
            "tls = \"ssl\"\nport = 0\npassword = \"bí mật\"\nusername = \"u\"\noperators = [\"not an address\"]\nexpiry_warning_days = 0\ndigest_at = \"25:00\"\ntimeout = \"0s\"\nca_file = \"/nonexistent/ca.pem\"\ncertificates = [\"/nonexistent/person.pem\"]\n[retry]\ninitial = \"1m\"\nmax = \"1s\"\nmax_attempts = 0\n",
        );
        for key in [
            "mail.tls",
            "mail.port",
            "mail.password",
            "mail.password_file",
            "mail.operators[0]",
            "mail.expiry_warning_days",
            "mail.digest_at",
            "mail.timeout",
            "mail.ca_file",
            "mail.certificates[0]",
            "mail.retry.max",
            "mail.retry.max_attempts",
        ] {
            assert!(found.iter().any(|k| k == key), "{key} not reported: {found:?}");
        }
    }

    #[test]
    fn retry_delays_are_bounded_at_30_days() {
        let retry = |initial: &str, max: &str| {
            keys(&format!("[retry]\ninitial = \"{initial}\"\nmax = \"{max}\"\n"))
                .into_iter()
                .filter(|k| k.starts_with("mail.retry."))
                .collect::<Vec<_>>()
        };
        assert!(retry("30d", "30d").is_empty());
        assert_eq!(retry("30s", "30days 1s"), vec!["mail.retry.max"]);
        assert_eq!(retry("500000000000y", "500000000000y"), vec!["mail.retry.initial", "mail.retry.max"]);
    }

    #[test]
    fn a_password_file_must_be_private_and_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("smtp.pass");
        std::fs::write(&file, "mật-khẩu\n").unwrap();
        let extra = format!("username = \"lienthong\"\npassword_file = {:?}", file.display().to_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(keys(&extra), ["mail.password_file"]);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let c = check(&extra).unwrap();
        let credentials = c.credentials.unwrap();
        assert_eq!(credentials.password(), "mật-khẩu");
        assert!(!format!("{credentials:?}").contains("mật-khẩu"));
    }

    #[test]
    fn no_recipients_and_bad_roots_are_problems() {
        let r: RawMail = toml::from_str("server = \"smtp.example.gov.vn\"\nfrom = \"a@example.gov.vn\"").unwrap();
        let mut problems = Vec::new();
        assert!(validate(Some(&r), Path::new("/"), &mut problems).is_none());
        assert_eq!(problems[0].0, "mail.clerks");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
        let mut problems = Vec::new();
        let r = raw("ca_file = \"ca.pem\"");
        assert!(validate(Some(&r), dir.path(), &mut problems).is_none());
        assert_eq!(problems[0].0, "mail.ca_file");
    }

    #[test]
    fn a_port_written_into_the_server_is_refused_but_ipv6_is_not() {
        let mut r = raw("");
        r.server = "smtp.example.gov.vn:587".into();
        let mut problems = Vec::new();
        assert!(validate(Some(&r), Path::new("/"), &mut problems).is_none());
        assert_eq!(problems[0].0, "mail.server");
        assert!(problems[0].1.contains("write the port in mail.port"), "{problems:?}");
        r.server = "2001:db8::25".into();
        let mut problems = Vec::new();
        assert!(validate(Some(&r), Path::new("/"), &mut problems).is_some(), "{problems:?}");
    }

    #[test]
    fn the_digest_can_be_turned_off() {
        assert_eq!(check("digest_at = \"off\"").unwrap().digest_at, None);
        assert_eq!(check("digest_at = \"17:30\"").unwrap().digest_at, Some(time::macros::time!(17:30)));
    }
}
