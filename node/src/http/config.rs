//! `[http]`: the node's web face (verifier, operator console, metrics, health). [`RawHttp`] is
//! the TOML as written; [`validate`] turns it into an [`HttpConfig`] or into problems, each
//! with its key, collected with the rest of the node's configuration.
//!
//! The section is optional: without it (the default of `lienthong-node init`) the node opens
//! no TCP port at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pki::{Certificate, PrivateKey};
use serde::Deserialize;

use crate::config::{ByteSize, HumanDuration, Identity};

/// `[http]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// TCP address for HTTPS, e.g. `127.0.0.1:8443`.
    pub listen: String,
    /// A certificate chain (PEM, leaf first) for HTTPS instead of the node's own, e.g. one
    /// from the agency's web CA with the host name browsers will use.
    pub certificate: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM, unencrypted), with `certificate`.
    pub key: Option<PathBuf>,
    /// Who may use the verifier: `public` (default), `operators`, or `off`.
    #[serde(default = "default_verifier")]
    pub verifier: String,
    /// Operators' client certificates (PEM files; the first certificate of each is the
    /// operator's): a browser presenting one of them, chaining to the national root and not
    /// revoked, may use the console.
    #[serde(default)]
    pub operators: Vec<PathBuf>,
    /// Largest bundle the verifier takes (`"256MiB"`).
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: ByteSize,
    /// Largest body of any other request (the console's forms, `"16KiB"`).
    #[serde(default = "default_max_form")]
    pub max_form_bytes: ByteSize,
    /// Most open HTTP connections; further ones wait in the kernel's queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most bundles verified at once (each holds a temporary file and a CPU); further uploads
    /// are answered 503 at once.
    #[serde(default = "default_max_verifications")]
    pub max_concurrent_verifications: usize,
    /// A request (headers, body and answer) other than an upload must be done within this.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// An upload and its verification must be done within this.
    #[serde(default = "default_upload_timeout")]
    pub upload_timeout: HumanDuration,
    /// Keep every uploaded bundle under `DATA_DIR/uploads/` (off: nothing uploaded is kept
    /// once its report is sent).
    #[serde(default)]
    pub keep_uploads: bool,
}

fn default_verifier() -> String {
    "public".into()
}
fn default_max_upload() -> ByteSize {
    ByteSize::mib(256)
}
fn default_max_form() -> ByteSize {
    ByteSize::kib(16)
}
fn default_max_connections() -> usize {
    256
}
fn default_max_verifications() -> usize {
    2
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_upload_timeout() -> HumanDuration {
    HumanDuration::mins(10)
}

/// Who may use the verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifierAccess {
    /// Anyone who reaches the port (inspectors, courts, the public).
    Public,
    /// Operators only (client certificate listed in `operators`).
    Operators,
    /// Not served.
    Off,
}

/// `[http]`, validated.
#[derive(Debug)]
pub struct HttpConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The HTTPS identity, when not the node's own.
    pub identity: Option<Identity>,
    /// Who may use the verifier.
    pub verifier: VerifierAccess,
    /// The operators' certificates (leaf of each file), with the file they came from.
    pub operators: Vec<(PathBuf, Certificate)>,
    /// See [`RawHttp::max_upload_bytes`].
    pub max_upload_bytes: u64,
    /// See [`RawHttp::max_form_bytes`].
    pub max_form_bytes: usize,
    /// See [`RawHttp::max_connections`].
    pub max_connections: usize,
    /// See [`RawHttp::max_concurrent_verifications`].
    pub max_concurrent_verifications: usize,
    /// See [`RawHttp::request_timeout`].
    pub request_timeout: Duration,
    /// See [`RawHttp::upload_timeout`].
    pub upload_timeout: Duration,
    /// See [`RawHttp::keep_uploads`].
    pub keep_uploads: bool,
}

/// A commented `[http]` section for `lienthong-node init`: off.
pub const TEMPLATE: &str = r#"
# The web face (optional; without [http] no TCP port is opened): a verifier anyone can upload a
# .ltd bundle to, the operators' console, Prometheus metrics (/metrics) and health checks
# (/healthz, /readyz). HTTPS with the node certificate unless certificate/key are given.
# [http]
# listen = "127.0.0.1:8443"
# certificate = "web.chain.pem"       # e.g. from the agency's web CA, naming the host
# key = "web.key.pem"
# verifier = "public"                 # "public", "operators" or "off"
# operators = ["operator.chain.pem"]  # client certificates (pki issue --cert-profile clerk)
#                                     # allowed on the console
# max_upload_bytes = "256MiB"         # the largest bundle verified
# max_form_bytes = "16KiB"            # the largest console form
# max_connections = 256
# max_concurrent_verifications = 2    # more uploads at once are answered 503
# request_timeout = "30s"
# upload_timeout = "10m"
# keep_uploads = false                # true: keep uploaded bundles under DATA_DIR/uploads/
"#;

fn problem(problems: &mut Vec<(String, String)>, key: &str, text: impl ToString) {
    problems.push((format!("http.{key}"), text.to_string()));
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() { path.to_owned() } else { base.join(path) }
}

fn read_chain(path: &Path) -> Result<Vec<Certificate>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let chain = Certificate::from_pem_all(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(chain)
}

/// Validates `[http]` (`None` when the section is absent), adding each problem with its key.
pub fn validate(raw: Option<&RawHttp>, base: &Path, problems: &mut Vec<(String, String)>) -> Option<HttpConfig> {
    let raw = raw?;
    let before = problems.len();
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(e) => {
            problem(problems, "listen", format!("{:?} is not an address like 127.0.0.1:8443 ({e})", raw.listen));
            None
        }
    };
    let identity = match (&raw.certificate, &raw.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let (cert, key) = (resolve(base, cert), resolve(base, key));
            let chain = read_chain(&cert).map_err(|e| problem(problems, "certificate", e)).ok();
            let private = std::fs::read_to_string(&key)
                .map_err(|e| format!("cannot read {}: {e}", key.display()))
                .and_then(|t| PrivateKey::from_pem(&t, None).map_err(|e| format!("{}: {e}", key.display())))
                .map_err(|e| problem(problems, "key", e))
                .ok();
            match (chain, private) {
                (Some(chain), Some(key)) => {
                    let matches = chain.first().and_then(|c| c.public_key.as_ref().ok()).map(|k| &k.spki_der)
                        == Some(&key.public_key().spki_der);
                    if !matches {
                        problem(problems, "key", "does not belong to http.certificate");
                    }
                    Some(Identity { chain, key })
                }
                _ => None,
            }
        }
        _ => {
            problem(problems, "certificate", "give both http.certificate and http.key, or neither");
            None
        }
    };
    let verifier = match raw.verifier.trim().to_ascii_lowercase().as_str() {
        "public" => VerifierAccess::Public,
        "operators" => VerifierAccess::Operators,
        "off" => VerifierAccess::Off,
        other => {
            problem(problems, "verifier", format!("{other:?} is not one of \"public\", \"operators\", \"off\""));
            VerifierAccess::Off
        }
    };
    let mut operators = Vec::new();
    for (i, file) in raw.operators.iter().enumerate() {
        let path = resolve(base, file);
        match read_chain(&path) {
            Ok(chain) => {
                if let Some(leaf) = chain.into_iter().next() {
                    if let Err(p) = leaf.check_usage(pki::Profile::Clerk) {
                        problem(
                            problems,
                            &format!("operators[{i}]"),
                            format!(
                                "{} is not a client certificate (issue it with --cert-profile clerk): {p}",
                                path.display()
                            ),
                        );
                    }
                    operators.push((path, leaf));
                }
            }
            Err(e) => problem(problems, &format!("operators[{i}]"), e),
        }
    }
    let (max_upload, max_form) = (raw.max_upload_bytes.get(), raw.max_form_bytes.get());
    if max_upload < 1024 {
        problem(problems, "max_upload_bytes", format!("{} is less than the least, 1KiB", raw.max_upload_bytes));
    }
    // A bundle cannot reach 4 GiB (no ZIP64), so a larger limit would only promise a
    // verification that never comes.
    if max_upload > u64::from(u32::MAX) {
        problem(
            problems,
            "max_upload_bytes",
            format!("{} is not under 4GiB (a bundle never is larger)", raw.max_upload_bytes),
        );
    }
    // A form is held in memory; 1 MiB is far more than any console form needs.
    if !(1024..=1 << 20).contains(&max_form) {
        problem(problems, "max_form_bytes", format!("{} is not between 1KiB and 1MiB", raw.max_form_bytes));
    }
    if raw.max_connections == 0 {
        problem(problems, "max_connections", "must be at least 1");
    }
    if raw.max_concurrent_verifications == 0 {
        problem(problems, "max_concurrent_verifications", "must be at least 1");
    }
    let mut at_least_a_second = |key: &str, d: HumanDuration| {
        if d.get() < Duration::from_secs(1) {
            problem(problems, key, format!("{d} is less than the least, 1s"));
        }
        d.get()
    };
    let request_timeout = at_least_a_second("request_timeout", raw.request_timeout);
    let upload_timeout = at_least_a_second("upload_timeout", raw.upload_timeout);
    if problems.len() > before {
        return None;
    }
    Some(HttpConfig {
        listen: listen?,
        identity,
        verifier,
        operators,
        max_upload_bytes: max_upload,
        // At most 1 MiB (checked above), so it fits any usize.
        max_form_bytes: usize::try_from(max_form).unwrap_or(1 << 20),
        max_connections: raw.max_connections,
        max_concurrent_verifications: raw.max_concurrent_verifications,
        request_timeout,
        upload_timeout,
        keep_uploads: raw.keep_uploads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(listen: &str) -> RawHttp {
        toml::from_str(&format!("listen = {listen:?}")).unwrap()
    }

    fn keys(raw: &RawHttp) -> Vec<String> {
        let mut problems = Vec::new();
        validate(Some(raw), Path::new("."), &mut problems);
        problems.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn defaults_are_valid_and_the_section_is_optional() {
        let mut problems = Vec::new();
        assert!(validate(None, Path::new("."), &mut problems).is_none());
        let c = validate(Some(&raw("127.0.0.1:8443")), Path::new("."), &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(c.verifier, VerifierAccess::Public);
        assert_eq!((c.max_upload_bytes, c.max_form_bytes, c.max_connections), (256 << 20, 16384, 256));
        assert!(!c.keep_uploads && c.operators.is_empty() && c.identity.is_none());
    }

    #[test]
    fn sizes_and_durations_are_written_with_their_units() {
        let r: RawHttp = toml::from_str(
            "listen = \"127.0.0.1:0\"\nmax_upload_bytes = \"4 MiB\"\nmax_form_bytes = \"2KiB\"\n\
             request_timeout = \"45s\"\nupload_timeout = \"1h\"",
        )
        .unwrap();
        let mut problems = Vec::new();
        let c = validate(Some(&r), Path::new("."), &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((c.max_upload_bytes, c.max_form_bytes), (4 << 20, 2048));
        assert_eq!((c.request_timeout, c.upload_timeout), (Duration::from_secs(45), Duration::from_secs(3600)));
        // The same words as every other size and duration of the file: a unit that could mean
        // 1000 or 1024, or a bare number of seconds, is refused while the file is read.
        for (bad, says) in [
            ("max_upload_bytes = \"256M\"", "ambiguous"),
            ("upload_timeout = 600", "a duration with its unit"),
            ("request_timeout = \"later\"", "is not a duration"),
        ] {
            let e = toml::from_str::<RawHttp>(&format!("listen = \"127.0.0.1:0\"\n{bad}")).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn every_limit_is_checked_at_its_edge() {
        let mut r = raw("nowhere");
        assert_eq!(keys(&r), ["http.listen"]);
        r = raw("127.0.0.1:0");
        r.max_upload_bytes = ByteSize::kib(1);
        r.max_form_bytes = ByteSize::kib(1);
        r.request_timeout = HumanDuration::secs(1);
        assert!(keys(&r).is_empty());
        r.max_upload_bytes = ByteSize(u64::from(u32::MAX));
        r.max_form_bytes = ByteSize::mib(1);
        assert!(keys(&r).is_empty());
        r.max_upload_bytes = ByteSize(1023);
        r.max_form_bytes = ByteSize(1023);
        r.max_connections = 0;
        r.max_concurrent_verifications = 0;
        r.request_timeout = HumanDuration(Duration::from_millis(999));
        r.upload_timeout = HumanDuration::secs(0);
        r.verifier = "everyone".into();
        assert_eq!(
            keys(&r),
            [
                "http.verifier",
                "http.max_upload_bytes",
                "http.max_form_bytes",
                "http.max_connections",
                "http.max_concurrent_verifications",
                "http.request_timeout",
                "http.upload_timeout"
            ]
        );
        r = raw("127.0.0.1:0");
        r.max_upload_bytes = ByteSize(u64::from(u32::MAX) + 1);
        r.max_form_bytes = ByteSize((1 << 20) + 1);
        r.certificate = Some("web.pem".into());
        r.operators = vec!["missing.pem".into()];
        assert_eq!(keys(&r), ["http.certificate", "http.operators[0]", "http.max_upload_bytes", "http.max_form_bytes"]);
    }
}
