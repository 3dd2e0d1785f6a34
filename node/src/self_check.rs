//! What a node can tell is wrong with itself: its own node or seal certificate (or a CA above
//! it) revoked by a CRL it holds, expired, not yet valid or expiring soon; no CRL for a CA of
//! its own chains, so it cannot tell whether it is revoked; a private key file open to other
//! users; a PostgreSQL server whose settings break what a receipt promises.
//!
//! `lienthong-node check` reports these after the configuration itself (errors fail it,
//! warnings do not) with the CRLs from `crl.files` and the node's database; the health
//! read-out repeats them as alerts with the CRLs the node holds, because revocation, expiry and
//! file modes change while a node runs. What cannot change at runtime (a chain file without its
//! CAs, a parent that is not above the agency, a certificate of another agency) is refused when
//! the configuration is loaded (`config`).

use std::collections::BTreeMap;
use std::fmt;

use pki::validate::RevocationStatus;
use pki::{ChainError, Crl, Profile, RevocationMode, Validator};
use time::OffsetDateTime;

use crate::config::{Config, check_private_file};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The node cannot work as it should (neighbours refuse it, its key is exposed): `check`
    /// fails.
    Error,
    /// Something to act on before it becomes an error: `check` passes and says it.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The configuration key it concerns (`tls.certificate`, `seal.key`, `crl.files`).
    pub key: String,
    /// What is wrong and what to do, in one sentence.
    pub message: String,
}

/// Everything found wrong with the node's own identity at `now`, given the CRLs it holds.
pub fn findings(config: &Config, crls: &[Crl], now: OffsetDateTime) -> Vec<Finding> {
    let mut found = Vec::new();
    for (key, path) in config.files.private() {
        if let Err(message) = check_private_file(path) {
            found.push(Finding { severity: Severity::Error, key: key.to_owned(), message });
        }
    }
    let validator = Validator::new(config.anchors.clone())
        .with_crls(crls.iter().cloned().collect())
        .with_mode(RevocationMode::BestEffort);
    let warn_within = time::Duration::try_from(config.health.expiry_warning).unwrap_or(time::Duration::MAX);
    // CAs without a CRL, and which of our certificates they issued.
    let mut unchecked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (what, key, identity, profile) in [
        ("node", "tls.certificate", &config.tls, Profile::Node),
        ("seal", "seal.certificate", &config.seal, Profile::Seal),
    ] {
        let error = |message: String| Finding { severity: Severity::Error, key: key.to_owned(), message };
        match validator.validate_parsed(&identity.chain, now, profile) {
            Err(ChainError::Revoked { cert, revoked_at, reason }) => found.push(error(format!(
                "{} was revoked at {} ({reason}): neighbours refuse the {what} certificate now; have a new one issued (lienthong pki issue --cert-profile {what}) and restart the node",
                subject(&cert, identity, what),
                pki::format_utc(revoked_at)
            ))),
            Err(ChainError::Expired { cert, not_after, .. }) => found.push(error(format!(
                "{} expired at {}: neighbours refuse the {what} certificate; have a new one issued (lienthong pki issue --cert-profile {what}) and restart the node",
                subject(&cert, identity, what),
                pki::format_utc(not_after)
            ))),
            Err(ChainError::NotYetValid { cert, not_before, .. }) => found.push(error(format!(
                "{} is not valid before {}: check this machine's clock, or wait",
                subject(&cert, identity, what),
                pki::format_utc(not_before)
            ))),
            Err(e) => found.push(error(format!("the {what} certificate does not validate: {e}"))),
            Ok(chain) => {
                if let Some(soonest) = chain.path.iter().min_by_key(|c| c.not_after)
                    && soonest.not_after - now < warn_within
                {
                    let who = if chain.path.first().is_some_and(|leaf| leaf.sha256 == soonest.sha256) {
                        format!("the {what} certificate")
                    } else {
                        format!("{}, a CA above the {what} certificate,", soonest.id)
                    };
                    found.push(Finding {
                        severity: Severity::Warning,
                        key: key.to_owned(),
                        message: format!(
                            "{who} expires in {} days ({}); have it renewed before then (health.expiry_warning: {})",
                            (soonest.not_after - now).whole_days(),
                            pki::format_utc(soonest.not_after),
                            humantime::format_duration(config.health.expiry_warning)
                        ),
                    });
                }
                for (i, status) in chain.revocation.iter().enumerate() {
                    if let (RevocationStatus::NotChecked, Some(cert), Some(issuer)) =
                        (status, chain.path.get(i), chain.path.get(i + 1))
                    {
                        // The leaf by its role; a CA by its name (the node's and the seal's
                        // chains share their CAs).
                        let issued =
                            if i == 0 { format!("the {what} certificate") } else { format!("\"{}\"", cert.subject) };
                        let list = unchecked.entry(issuer.subject.clone()).or_default();
                        if !list.contains(&issued) {
                            list.push(issued);
                        }
                    }
                }
            }
        }
    }
    for (issuer, certificates) in unchecked {
        found.push(Finding {
            severity: Severity::Warning,
            key: "crl.files".into(),
            message: format!(
                "no CRL of \"{issuer}\", which issued {}: this node cannot tell whether it is itself revoked; add that CA's CRL to crl.files (it also comes from the parent once connected)",
                certificates.join(" and ")
            ),
        });
    }
    found
}

/// "the node certificate CN=… (serial …)" or, for a CA above it, "the CA … above the node
/// certificate".
fn subject(cert: &pki::CertId, identity: &crate::config::Identity, what: &str) -> String {
    let is_leaf = identity.chain.first().is_some_and(|leaf| leaf.id() == *cert);
    if is_leaf {
        format!("the {what} certificate {cert}")
    } else {
        format!("the CA {cert} above the {what} certificate")
    }
}

/// What the machine will not give the node as configured: a UDP receive buffer
/// (`limits.udp_receive_buffer`) above the kernel's maximum for one, which the kernel cuts
/// to its maximum (see `lienthong_protocol::udp`), found by asking for it on a throwaway
/// socket (`udp::probe`); and a system that refuses the request rather than cutting it. A
/// limit of 0 (the system's default) asks for nothing.
pub fn system_findings(config: &Config) -> Vec<Finding> {
    let asked = config.limits.udp_receive_buffer;
    if asked == 0 {
        return Vec::new();
    }
    let message = match lienthong_protocol::udp::probe(asked) {
        Ok(granted) if granted.is_short() => format!(
            "this kernel gives a socket at most {} bytes of receive buffer (net.core.rmem_max), less than the {asked} asked for: bursts of packets beyond it are dropped, which slows transfers; raise it (`sysctl -w net.core.rmem_max={asked}`, and in /etc/sysctl.d to keep it) or lower the limit",
            granted.held()
        ),
        Err(e) => format!(
            "cannot ask this system for a UDP receive buffer of {asked} bytes on a test socket ({e}): the node will ask again at start and log what it gets; lower the limit or set it to 0 for the system's default"
        ),
        Ok(_) => return Vec::new(),
    };
    vec![Finding { severity: Severity::Warning, key: "limits.udp_receive_buffer".into(), message }]
}

/// The CRLs in `crl.files`, and a warning for each file that cannot be read.
pub fn file_crls(config: &Config) -> (Vec<Crl>, Vec<Finding>) {
    let mut crls = Vec::new();
    let mut found = Vec::new();
    for (i, path) in config.crl_files.iter().enumerate() {
        let read = std::fs::read(path).map_err(|e| e.to_string()).and_then(|bytes| {
            if bytes.starts_with(b"-----") {
                let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
                Crl::from_pem_all(&text).map_err(|e| e.to_string())
            } else {
                Crl::from_der(&bytes).map(|c| vec![c]).map_err(|e| e.to_string())
            }
        });
        match read {
            Ok(list) => crls.extend(list),
            Err(e) => found.push(Finding {
                severity: Severity::Warning,
                key: format!("crl.files[{i}]"),
                message: format!("cannot read the CRLs in {}: {e}", path.display()),
            }),
        }
    }
    (crls, found)
}

/// What `check` reads in the node's database, without writing anything.
#[derive(Debug)]
pub struct FromDatabase {
    /// The CRLs the node keeps there (pushed by its parent, carried by documents), or why they
    /// could not be read: an SQLite database that does not exist yet (a node never run) holds
    /// none.
    pub crls: Result<Vec<Crl>, String>,
    /// On PostgreSQL, the server's settings that break a receipt's promise (see
    /// `server_findings`).
    pub findings: Vec<Finding>,
}

/// Reads the node's database for `check` and for the log at start (see [`FromDatabase`]).
pub async fn from_database(config: &Config) -> FromDatabase {
    use sqlx::Connection;
    let url = match config.database.strip_prefix("sqlite://").or_else(|| config.database.strip_prefix("sqlite:")) {
        Some(rest) => {
            let file = rest.split('?').next().unwrap_or_default();
            if file.is_empty() || !std::path::Path::new(file).exists() {
                return FromDatabase { crls: Ok(Vec::new()), findings: Vec::new() };
            }
            format!("sqlite://{file}?mode=ro")
        }
        None => config.database.clone(),
    };
    sqlx::any::install_default_drivers();
    let mut connection = match sqlx::AnyConnection::connect(&url).await {
        Ok(c) => c,
        Err(e) => return FromDatabase { crls: Err(e.to_string()), findings: Vec::new() },
    };
    let mut findings = Vec::new();
    if connection.backend_name() == "PostgreSQL" {
        let settings: Result<Vec<(String, String)>, _> = sqlx::query_as(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'full_page_writes', 'data_sync_retry')",
        )
        .fetch_all(&mut connection)
        .await;
        findings = match settings {
            Ok(settings) => server_findings(&settings),
            Err(e) => vec![Finding {
                severity: Severity::Warning,
                key: "node.database".into(),
                message: format!(
                    "cannot read the PostgreSQL server's settings (fsync, full_page_writes, data_sync_retry), so they are not checked: {e}"
                ),
            }],
        };
    }
    let crls = stored_crls(&mut connection).await;
    connection.close().await.ok();
    FromDatabase { crls, findings }
}

/// The PostgreSQL server's settings (name, value) that break what a receipt promises, that a
/// document the node answered for survives a crash of the server's machine: `fsync = off`
/// (nothing is on disk when a commit returns; the node refuses to start on it, see
/// `storage::set_up`), `full_page_writes = off` (a page torn by the crash cannot be repaired
/// from the log) and `data_sync_retry = on` (the server goes on after a failed sync of a data
/// file, whose unwritten pages Linux may have dropped). `synchronous_commit` is not here: the
/// node turns it back on in each of its sessions.
fn server_findings(settings: &[(String, String)]) -> Vec<Finding> {
    let mut found = Vec::new();
    for (name, value) in settings {
        let (severity, why) = match (name.as_str(), value.as_str()) {
            ("fsync", "off") => (
                Severity::Error,
                "what it commits is not on disk when the commit returns, and a crash of its machine can lose or corrupt it; the node refuses to start on it. Turn fsync on",
            ),
            ("full_page_writes", "off") => (
                Severity::Warning,
                "a page the crash of its machine tears in the middle of a write cannot be repaired from the log, so documents the node answered for can be lost or damaged, unless the file system never tears pages (ZFS). Turn full_page_writes on",
            ),
            ("data_sync_retry", "on") => (
                Severity::Warning,
                "it goes on after a sync of a data file failed, and Linux may have dropped the pages it could not write, so what the node answered for can be lost without a word. Turn data_sync_retry off (the default), so that the server stops and recovers from its log",
            ),
            _ => continue,
        };
        found.push(Finding {
            severity,
            key: "node.database".into(),
            message: format!("the PostgreSQL server runs with {name} = {value}: {why}"),
        });
    }
    found
}

/// The CRLs in the node's database; none in a PostgreSQL database the node has not set up yet
/// (never run: no table, SQLSTATE 42P01).
async fn stored_crls(connection: &mut sqlx::AnyConnection) -> Result<Vec<Crl>, String> {
    let rows = match sqlx::query("SELECT der FROM crls").fetch_all(&mut *connection).await {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut crls = Vec::new();
    for row in rows {
        let der: Vec<u8> = sqlx::Row::try_get(&row, "der").map_err(|e| e.to_string())?;
        crls.push(Crl::from_der(&der).map_err(|e| e.to_string())?);
    }
    Ok(crls)
}
