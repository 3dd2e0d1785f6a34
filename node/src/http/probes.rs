//! `/healthz` and `/readyz`, for load balancers, systemd and Kubernetes-style probes.
//!
//! Liveness says only that the process answers HTTP (restart it if not). Readiness says the
//! node can do its work now: the database answers within [`DB_PROBE`], the node and seal
//! certificates are within their validity and chain to the root (not revoked), and the node
//! holds at least one CRL and none past the freshness budget (`crl.freshness`) or its
//! nextUpdate. Each check is one line of the answer; 200 when all pass, 503 otherwise.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pki::Profile;

use super::server::Web;
use crate::Node;

/// How long the database may take to answer the readiness probe.
pub(crate) const DB_PROBE: Duration = Duration::from_secs(2);

/// One readiness check.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Check {
    /// What is checked.
    pub(crate) name: &'static str,
    /// Whether it passed.
    pub(crate) ok: bool,
    /// What was found.
    pub(crate) detail: String,
}

/// `/healthz`.
pub(crate) async fn healthz() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], "ok\n").into_response()
}

/// Every readiness check of `node` at `now`.
pub(crate) async fn readiness(node: &Node, now: time::OffsetDateTime) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(Check {
        name: "running",
        ok: !node.stopping(),
        detail: if node.stopping() { "shutting down".into() } else { "accepting work".into() },
    });
    let db = tokio::time::timeout(DB_PROBE, sqlx::query("SELECT 1").execute(node.store.pool())).await;
    checks.push(match db {
        Ok(Ok(_)) => Check { name: "database", ok: true, detail: node.store.backend().name().to_owned() },
        Ok(Err(e)) => Check { name: "database", ok: false, detail: e.to_string() },
        Err(_) => Check { name: "database", ok: false, detail: format!("no answer within {DB_PROBE:?}") },
    });
    for (name, identity, profile) in
        [("node certificate", &node.config.tls, Profile::Node), ("seal certificate", &node.config.seal, Profile::Seal)]
    {
        let chain: Vec<&[u8]> = identity.chain.iter().map(|c| c.der()).collect();
        checks.push(match node.trust.trust().validate(&chain, now, profile) {
            Ok(_) => Check {
                name,
                ok: true,
                detail: identity
                    .chain
                    .first()
                    .map(|c| format!("valid until {}", pki::format_utc(c.not_after)))
                    .unwrap_or_default(),
            },
            Err(e) => Check { name, ok: false, detail: e.to_string() },
        });
    }
    let validator = node.trust.trust().validator();
    let crls = newest_per_issuer(validator.crls());
    let stale: Vec<String> = crls
        .iter()
        .filter(|c| node.trust.trust().is_stale(c.this_update, now) || c.next_update < now)
        .map(|c| format!("{} (issued {})", c.issuer, pki::format_utc(c.this_update)))
        .collect();
    checks.push(if crls.is_empty() {
        Check { name: "crls", ok: false, detail: "no CRL held: revocation cannot be checked".into() }
    } else if stale.is_empty() {
        Check { name: "crls", ok: true, detail: format!("{} held, all within the freshness budget", crls.len()) }
    } else {
        Check { name: "crls", ok: false, detail: format!("older than the freshness budget: {}", stale.join(", ")) }
    });
    checks
}

/// The newest CRL of each issuer (a set keeps older ones too; they say nothing of freshness).
pub(crate) fn newest_per_issuer(set: &pki::CrlSet) -> Vec<&pki::Crl> {
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut out = Vec::new();
    // The set is kept newest first.
    for crl in set.iter() {
        if !seen.contains(&crl.issuer_raw.as_slice()) {
            seen.push(&crl.issuer_raw);
            out.push(crl);
        }
    }
    out
}

/// `/readyz`: the checks as text lines (`ok NAME: …` / `FAIL NAME: …`), or JSON when asked
/// for with `Accept: application/json`.
pub(crate) async fn readyz(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let checks = readiness(&web.node, web.node.now()).await;
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let wants_json =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"));
    if wants_json {
        let body = serde_json::json!({ "ready": ready, "checks": checks });
        return (
            status,
            [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
            body.to_string(),
        )
            .into_response();
    }
    let mut text = String::new();
    for c in &checks {
        text.push_str(&format!("{} {}: {}\n", if c.ok { "ok" } else { "FAIL" }, c.name, c.detail));
    }
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], text)
        .into_response()
}
