//! The operator's read-out: queues, deliveries, retries, failures, CRL freshness and
//! certificate expiry, as one JSON document (served to clerks, printed by
//! `lienthong-node status`).

use std::sync::atomic::Ordering;

use serde::Serialize;

use pki::Crl;
use time::OffsetDateTime;

use crate::Node;
use crate::config::Config;
use crate::storage::{QueueDepths, Store, StoreError, millis};
use crate::trust::Trust;

/// A certificate's expiry.
#[derive(Debug, Serialize)]
pub struct Expiry {
    /// Which certificate.
    pub certificate: String,
    /// When it expires.
    pub not_after: String,
    /// Days left (negative when expired).
    pub days_left: i64,
}

/// A CRL's freshness.
#[derive(Debug, Serialize)]
pub struct CrlFreshness {
    /// The CA.
    pub issuer: String,
    /// Issued.
    pub this_update: String,
    /// Due.
    pub next_update: String,
    /// Older than the freshness budget (verification relying on it is provisional).
    pub stale: bool,
}

/// The health read-out.
#[derive(Debug, Serialize)]
pub struct Health {
    /// This agency.
    pub agency: String,
    /// Its name.
    pub name: String,
    /// Seconds since start (absent when read from storage alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<i64>,
    /// Outbox.
    pub queue: QueueDepths,
    /// Since start: documents taken, handed over, refused, retries, dead-lettered, provisional,
    /// receipts taken (empty when read from storage alone).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub since_start: std::collections::BTreeMap<&'static str, u64>,
    /// Persistent counters.
    pub totals: Vec<(String, i64)>,
    /// The latest dead-lettered transfers: (id, document, next hop, last error).
    pub dead_letters: Vec<(i64, String, String, String)>,
    /// Node and seal certificate expiry.
    pub certificates: Vec<Expiry>,
    /// CRLs held.
    pub crls: Vec<CrlFreshness>,
    /// The notification mail queue (absent when mail is off and nothing was ever queued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail: Option<crate::mail::MailQueue>,
    /// Alerts for the operator.
    pub alerts: Vec<String>,
}

/// Builds the read-out of a running node.
pub async fn report(node: &Node) -> Result<Health, StoreError> {
    let now = node.now();
    let m = &node.metrics;
    let since_start = [
        ("documents_in", m.documents_in.load(Ordering::Relaxed)),
        ("documents_out", m.documents_out.load(Ordering::Relaxed)),
        ("refused", m.refused.load(Ordering::Relaxed)),
        ("retries", m.retries.load(Ordering::Relaxed)),
        ("dead_letters", m.dead.load(Ordering::Relaxed)),
        ("provisional", m.provisional.load(Ordering::Relaxed)),
        ("notices_in", m.notices_in.load(Ordering::Relaxed)),
    ]
    .into_iter()
    .collect();
    let crls = node.trust.validator().crls().iter().cloned().collect::<Vec<_>>();
    let mut health = from_storage(&node.config, &node.store, &node.trust, &crls, now).await?;
    health.uptime_seconds = Some((now - node.started).whole_seconds());
    health.since_start = since_start;
    Ok(health)
}

/// The read-out from the configuration and the database alone, for `lienthong-node status` on
/// the node's machine (running or not): everything but uptime and the in-memory counters.
pub async fn from_storage(
    config: &Config,
    store: &Store,
    trust: &Trust,
    crls: &[Crl],
    now: OffsetDateTime,
) -> Result<Health, StoreError> {
    let mut alerts = Vec::new();
    let certificates: Vec<Expiry> = [("node", &config.tls), ("seal", &config.seal)]
        .iter()
        .filter_map(|(what, id)| id.chain.first().map(|c| (what, c)))
        .map(|(what, c)| {
            let days_left = (c.not_after - now).whole_days();
            if days_left < 30 {
                alerts.push(format!(
                    "the {what} certificate expires in {days_left} days ({})",
                    pki::format_utc(c.not_after)
                ));
            }
            Expiry { certificate: format!("{what}: {}", c.id()), not_after: pki::format_utc(c.not_after), days_left }
        })
        .collect();
    let crls: Vec<CrlFreshness> = crls
        .iter()
        .map(|c| {
            let stale = trust.is_stale(c.this_update, now) || c.next_update < now;
            if stale {
                alerts.push(format!(
                    "the CRL of {} is older than the freshness budget; verification is provisional",
                    c.issuer
                ));
            }
            CrlFreshness {
                issuer: c.issuer.clone(),
                this_update: pki::format_utc(c.this_update),
                next_update: pki::format_utc(c.next_update),
                stale,
            }
        })
        .collect();
    let queue = store.queue_depths(millis(now)).await?;
    if queue.dead > 0 {
        alerts.push(format!("{} transfer(s) dead-lettered", queue.dead));
    }
    let mail = crate::mail::health(config, store, now).await?;
    alerts.extend(mail.iter().flat_map(crate::mail::alerts));
    Ok(Health {
        agency: config.agency.to_string(),
        name: config.name.clone(),
        uptime_seconds: None,
        queue,
        since_start: Default::default(),
        totals: store.counters().await?,
        dead_letters: store.dead_letters(20).await?,
        certificates,
        crls,
        mail,
        alerts,
    })
}
