//! The operator's read-out: queues, deliveries, retries, failures, storage, neighbours, CRL
//! freshness and certificate expiry, as one JSON document (served to clerks, printed by
//! `lienthong-node status`), with alerts for what needs a person.
//!
//! Alerts come from two places. What the database and the filesystems say (free space under
//! the reserve, storage failures recorded, transfers waiting too long, transfers to a
//! neighbour that keep failing) is in every read-out, including `lienthong-node status` on a
//! stopped node. What only the running process knows (requests to a neighbour that get no
//! answer, attempts that hang, storage failures it could not yet write down) is in the running
//! node's read-out ([`report`]), kept by [`Watch`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use pki::{AgencyCode, Crl};
use time::OffsetDateTime;

use crate::config::{Config, HumanDuration};
use crate::metrics::Telemetry;
use crate::storage::{QueueDepths, StorageFaults, Store, StoreError, from_millis, millis};
use crate::trust::Trust;
use crate::{Metrics, Node};

/// `[health]` as written: when alerts are raised.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// Transfers pending longer than this are a backlog.
    pub backlog_age: HumanDuration,
    /// A neighbour that has not answered (and taken nothing) for this long, while transfers to
    /// it fail, is down.
    pub neighbour_down_after: HumanDuration,
    /// A transfer attempt running this long is stuck.
    pub stuck_after: HumanDuration,
    /// A storage failure stays an alert this long after the latest one.
    pub storage_error_window: HumanDuration,
    /// A certificate of the node's own chains (node, seal, their CAs) that expires within this
    /// raises a warning.
    pub expiry_warning: HumanDuration,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            backlog_age: HumanDuration::mins(5),
            neighbour_down_after: HumanDuration::mins(1),
            stuck_after: HumanDuration::mins(5),
            storage_error_window: HumanDuration::hours(1),
            expiry_warning: HumanDuration::days(30),
        }
    }
}

/// `[health]`, validated.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// See [`RawAlerts::backlog_age`].
    pub backlog_age: Duration,
    /// See [`RawAlerts::neighbour_down_after`].
    pub neighbour_down_after: Duration,
    /// See [`RawAlerts::stuck_after`].
    pub stuck_after: Duration,
    /// See [`RawAlerts::storage_error_window`].
    pub storage_error_window: Duration,
    /// See [`RawAlerts::expiry_warning`].
    pub expiry_warning: Duration,
}

/// Validates `[health]`, adding each problem with its key (the configuration is then refused).
pub fn validate_alerts(raw: &RawAlerts, problems: &mut Vec<(String, String)>) -> Alerts {
    let mut at_least_1s = |key: &str, d: HumanDuration| {
        if d.get() < Duration::from_secs(1) {
            problems.push((format!("health.{key}"), "must be at least 1s".into()));
        }
        d.get()
    };
    Alerts {
        backlog_age: at_least_1s("backlog_age", raw.backlog_age),
        neighbour_down_after: at_least_1s("neighbour_down_after", raw.neighbour_down_after),
        stuck_after: at_least_1s("stuck_after", raw.stuck_after),
        storage_error_window: at_least_1s("storage_error_window", raw.storage_error_window),
        expiry_warning: raw.expiry_warning.get(),
    }
}

/// What the running node saw of its neighbours and its transfers in flight.
#[derive(Debug, Default)]
pub struct Watch {
    contacts: Mutex<HashMap<AgencyCode, Contact>>,
    in_flight: Mutex<HashMap<i64, Attempt>>,
    /// Certificates whose revocation could not be checked, by who presented them.
    unchecked: Mutex<HashMap<String, Unchecked>>,
    /// Of those, the ones not yet mailed to the operators: (who, gap, accepted, when).
    unmailed: Mutex<Vec<(String, String, bool, i64)>>,
}

/// How long an acceptance or refusal for want of revocation information stays an alert after
/// the last one.
pub(crate) const UNCHECKED_ALERT_FOR: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone)]
struct Unchecked {
    gap: String,
    accepted: bool,
    count: u64,
    last: i64,
}

#[derive(Debug, Default, Clone)]
struct Contact {
    /// The latest answer from it, ms.
    last_answer: Option<i64>,
    /// The first of the failures since the latest answer, ms.
    failing_since: Option<i64>,
    failures: u32,
    last_error: Option<String>,
}

#[derive(Debug, Clone)]
struct Attempt {
    hop: AgencyCode,
    started: i64,
    earlier_attempts: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Watch {
    /// `hop` answered a request (whatever the answer: it is up).
    pub fn answered(&self, hop: &AgencyCode, now: i64) {
        let mut contacts = lock(&self.contacts);
        let c = contacts.entry(*hop).or_default();
        c.last_answer = Some(now);
        c.failing_since = None;
        c.failures = 0;
    }

    /// A connection or request to `hop` failed without an answer.
    pub fn unreachable(&self, hop: &AgencyCode, now: i64, error: &str) {
        let mut contacts = lock(&self.contacts);
        let c = contacts.entry(*hop).or_default();
        c.failing_since.get_or_insert(now);
        c.failures = c.failures.saturating_add(1);
        c.last_error = Some(error.to_owned());
    }

    /// A transfer attempt started (`earlier_attempts` failed before it).
    pub(crate) fn started(&self, transfer: i64, hop: &AgencyCode, earlier_attempts: u32, now: i64) {
        lock(&self.in_flight).insert(transfer, Attempt { hop: *hop, started: now, earlier_attempts });
    }

    /// A transfer attempt ended (however).
    pub(crate) fn ended(&self, transfer: i64) {
        lock(&self.in_flight).remove(&transfer);
    }

    fn unchecked(&self, who: &str, gap: &str, accepted: bool, now: i64) -> bool {
        let mut map = lock(&self.unchecked);
        let e = map.entry(who.to_owned()).or_insert(Unchecked { gap: String::new(), accepted, count: 0, last: 0 });
        let first = e.count == 0 || now - e.last > UNCHECKED_ALERT_FOR;
        *e = Unchecked { gap: gap.to_owned(), accepted, count: e.count.saturating_add(1), last: now };
        first
    }

    /// The revocation alerts raised since the last call, for the operators' mail.
    pub(crate) fn take_unmailed(&self) -> Vec<(String, String, bool, i64)> {
        std::mem::take(&mut *lock(&self.unmailed))
    }

    fn unchecked_alerts(&self, now: i64) -> Vec<String> {
        let mut map = lock(&self.unchecked);
        map.retain(|_, u| now - u.last <= UNCHECKED_ALERT_FOR);
        let mut alerts: Vec<String> = map
            .iter()
            .map(|(who, u)| {
                let what = if u.accepted {
                    "accepted without a revocation check (crl.danger_accept_unchecked is on)"
                } else {
                    "refused: its revocation cannot be checked here (give the node fresh CRLs: crl.files, or its parent)"
                };
                format!("{who} {what}: {} ({} time(s), the last at {})", u.gap, u.count, at(u.last))
            })
            .collect();
        alerts.sort();
        alerts
    }
}

/// What a running node observes about itself, for the read-out, `/metrics` and the console:
/// the in-memory counters, the labelled telemetry and the [`Watch`] over neighbours and
/// attempts. Its hooks are what any code that talks to neighbours or judges certificates calls,
/// so that the observing has one owner instead of fields every module reaches into.
#[derive(Debug, Default)]
pub struct Observations {
    metrics: Metrics,
    telemetry: Telemetry,
    watch: Watch,
    /// `[mail]` has operators: unchecked revocations are queued for their mail.
    mail_operators: bool,
}

impl Observations {
    /// Empty observations; `mail_operators` says whether `[mail]` lists operators to mail
    /// unchecked revocations to.
    pub fn new(mail_operators: bool) -> Observations {
        Observations { mail_operators, ..Observations::default() }
    }

    /// The in-memory counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Labelled counters, latencies and the latest refusals.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Neighbours' answers and attempts in flight.
    pub fn watch(&self) -> &Watch {
        &self.watch
    }

    /// Records that neighbour `hop` answered a request: the hook for every piece of code that
    /// talks to neighbours (the outbox, connection attempts), so a neighbour down is seen.
    pub fn neighbour_answered(&self, hop: &AgencyCode) {
        self.watch.answered(hop, millis(OffsetDateTime::now_utc()));
    }

    /// Records that a connection or request to neighbour `hop` got no answer.
    pub fn neighbour_unreachable(&self, hop: &AgencyCode, error: &str) {
        self.watch.unreachable(hop, millis(OffsetDateTime::now_utc()), error);
    }

    /// Records that `who` (a peer, a clerk, a document's signers) presented a certificate whose
    /// revocation this node cannot check (`gap`), and whether it was `accepted` anyway (the
    /// operator's opt-in) or refused: an alert in the read-out for a while, and a warning in
    /// the log the first time.
    pub fn revocation_unchecked(&self, who: &str, gap: &str, accepted: bool) {
        let now = millis(OffsetDateTime::now_utc());
        if self.watch.unchecked(who, gap, accepted, now) {
            if self.mail_operators {
                lock(&self.watch.unmailed).push((who.to_owned(), gap.to_owned(), accepted, now));
            }
            if accepted {
                tracing::warn!(who, gap, "accepted without a revocation check (crl.danger_accept_unchecked)");
            } else {
                tracing::warn!(who, gap, "refused: revocation cannot be checked");
            }
        }
    }
}

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

/// Free space on a filesystem the node writes to.
#[derive(Debug, Serialize)]
pub struct FreeSpace {
    /// A directory on it.
    pub path: String,
    /// Bytes available (absent when it cannot be read).
    pub free_bytes: Option<u64>,
}

/// The node's storage.
#[derive(Debug, Serialize)]
pub struct StorageHealth {
    /// Free space where the node writes.
    pub free: Vec<FreeSpace>,
    /// The reserve kept free (`limits.min_free_bytes`).
    pub reserve_bytes: u64,
    /// Storage failures.
    pub failures: StorageFaults,
}

/// A neighbour's transfers and, in a running node, how it answers.
#[derive(Debug, Serialize)]
pub struct NeighbourHealth {
    /// The neighbour.
    pub agency: String,
    /// Transfers to it waiting.
    pub pending: i64,
    /// Of which failed at least once.
    pub retrying: i64,
    /// The oldest waiting transfer's age, seconds.
    pub oldest_pending_seconds: i64,
    /// Seconds since the latest transfer it took (absent: never).
    pub last_handover_seconds_ago: Option<i64>,
    /// Seconds since it last answered a request (running node; absent: not since start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_answer_seconds_ago: Option<i64>,
    /// Requests without an answer since its latest answer (running node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// The latest error of a transfer to it.
    pub last_error: Option<String>,
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
    /// Free space and storage failures.
    pub storage: StorageHealth,
    /// Neighbours with transfers (and, in a running node, those it talked to).
    pub neighbours: Vec<NeighbourHealth>,
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
    let m = node.observed.metrics();
    let since_start = [
        ("documents_in", m.documents_in.load(Ordering::Relaxed)),
        ("documents_out", m.documents_out.load(Ordering::Relaxed)),
        ("refused", m.refused.load(Ordering::Relaxed)),
        ("retries", m.retries.load(Ordering::Relaxed)),
        ("dead_letters", m.dead.load(Ordering::Relaxed)),
        ("provisional", m.provisional.load(Ordering::Relaxed)),
        ("notices_in", m.notices_in.load(Ordering::Relaxed)),
        ("notice_batches_in", m.notice_batches_in.load(Ordering::Relaxed)),
        ("statuses_with_receipts_in", m.statuses_with_receipts_in.load(Ordering::Relaxed)),
        ("statuses_lost", m.statuses_lost.load(Ordering::Relaxed)),
        ("answer_transactions", m.answer_transactions.load(Ordering::Relaxed)),
        ("answer_transactions_redone", m.answer_transactions_redone.load(Ordering::Relaxed)),
        ("intake_transactions", m.intake_transactions.load(Ordering::Relaxed)),
        ("intake_transactions_redone", m.intake_transactions_redone.load(Ordering::Relaxed)),
        ("intake_found_stored", m.intake_found_stored.load(Ordering::Relaxed)),
        ("sent_from_intake", m.sent_from_intake.load(Ordering::Relaxed)),
        ("passed_before_commit", m.passed_before_commit.load(Ordering::Relaxed)),
        ("duplicates_in", m.duplicates_in.load(Ordering::Relaxed)),
    ]
    .into_iter()
    .collect();
    let crls = node.trust.trust().validator().crls().iter().cloned().collect::<Vec<_>>();
    let mut health =
        build(&node.config, &node.store, node.trust.trust(), &crls, now, Some(node.observed.watch())).await?;
    health.uptime_seconds = Some((now - node.started).whole_seconds());
    health.since_start = since_start;
    Ok(health)
}

/// The read-out from the configuration, the database and the filesystems alone, for
/// `lienthong-node status` on the node's machine (running or not): everything but uptime and
/// what only the running process knows.
pub async fn from_storage(
    config: &Config,
    store: &Store,
    trust: &Trust,
    crls: &[Crl],
    now: OffsetDateTime,
) -> Result<Health, StoreError> {
    build(config, store, trust, crls, now, None).await
}

/// Free space under which a filesystem counts as full whatever the reserve: less than the
/// smallest useful write of a document with an attachment and its database rows.
const FULL_BELOW: u64 = 1024 * 1024;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn at(ms: i64) -> String {
    from_millis(ms).map(pki::format_utc).unwrap_or_else(|| format!("{ms} ms"))
}

async fn build(
    config: &Config,
    store: &Store,
    trust: &Trust,
    crls: &[Crl],
    now: OffsetDateTime,
    watch: Option<&Watch>,
) -> Result<Health, StoreError> {
    let now_ms = millis(now);
    let rules = &config.health;
    // The node's own identity: revoked, expired or expiring certificates, CRLs missing for its
    // own chains, key files open to others.
    let mut alerts: Vec<String> = crate::self_check::findings(config, crls, now)
        .into_iter()
        .map(|f| format!("{}: {}", f.key, f.message))
        .collect();
    let certificates: Vec<Expiry> = [("node", &config.tls), ("seal", &config.seal)]
        .iter()
        .filter_map(|(what, id)| id.chain.first().map(|c| (what, c)))
        .map(|(what, c)| Expiry {
            certificate: format!("{what}: {}", c.id()),
            not_after: pki::format_utc(c.not_after),
            days_left: (c.not_after - now).whole_days(),
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

    let storage = storage_health(config, store, watch, now_ms, &mut alerts).await?;

    let mut queue = store.queue_depths(now_ms).await?;
    if queue.dead > 0 {
        alerts.push(format!("{} transfer(s) dead-lettered", queue.dead));
    }
    let backlog_ms = i64::try_from(rules.backlog_age.as_millis()).unwrap_or(i64::MAX);
    let hops = store.outbox_by_hop(now_ms, now_ms.saturating_sub(backlog_ms)).await?;
    queue.backlog = hops.iter().map(|h| h.aged).sum();
    if queue.backlog > 0 {
        alerts.push(format!(
            "backlog: {} transfer(s) pending for more than {} (the oldest for {} s)",
            queue.backlog,
            human(rules.backlog_age),
            queue.oldest_pending_seconds
        ));
    }
    if let Some(w) = watch {
        alerts.extend(w.unchecked_alerts(now_ms));
    }
    let (contacts, attempts) = match watch {
        Some(w) => (lock(&w.contacts).clone(), lock(&w.in_flight).values().cloned().collect::<Vec<_>>()),
        None => (HashMap::new(), Vec::new()),
    };
    // Attempts that hang: running longer than `stuck_after`. Those that had not failed before
    // count as retrying too (the database still says 0 attempts for them).
    let stuck_ms = i64::try_from(rules.stuck_after.as_millis()).unwrap_or(i64::MAX);
    let stuck: Vec<&Attempt> = attempts.iter().filter(|a| now_ms - a.started >= stuck_ms).collect();
    queue.in_flight = i64::try_from(attempts.len()).unwrap_or(i64::MAX);
    queue.stuck = i64::try_from(stuck.len()).unwrap_or(i64::MAX);
    queue.retrying += i64::try_from(stuck.iter().filter(|a| a.earlier_attempts == 0).count()).unwrap_or(0);
    if let Some(longest) = stuck.iter().min_by_key(|a| a.started) {
        alerts.push(format!(
            "{} transfer attempt(s) running for more than {} (the longest for {} s, to {})",
            stuck.len(),
            human(rules.stuck_after),
            (now_ms - longest.started) / 1000,
            longest.hop
        ));
    }

    let down_ms = i64::try_from(rules.neighbour_down_after.as_millis()).unwrap_or(i64::MAX);
    let mut neighbours = Vec::new();
    let mut agencies: Vec<String> = hops.iter().map(|h| h.next_hop.clone()).collect();
    agencies.extend(contacts.keys().map(ToString::to_string).filter(|a| !hops.iter().any(|h| &h.next_hop == a)));
    for agency in agencies {
        let hop = hops.iter().find(|h| h.next_hop == agency);
        let contact = agency.parse::<AgencyCode>().ok().and_then(|c| contacts.get(&c));
        let n = NeighbourHealth {
            pending: hop.map_or(0, |h| h.pending),
            retrying: hop.map_or(0, |h| h.retrying),
            oldest_pending_seconds: hop.map_or(0, |h| h.oldest_pending_seconds),
            last_handover_seconds_ago: hop.and_then(|h| h.last_done).map(|t| (now_ms - t).max(0) / 1000),
            last_answer_seconds_ago: contact.and_then(|c| c.last_answer).map(|t| (now_ms - t).max(0) / 1000),
            failed_attempts: contact.map(|c| c.failures),
            last_error: contact.and_then(|c| c.last_error.clone()).or_else(|| hop.and_then(|h| h.last_error.clone())),
            agency,
        };
        let down = match contact {
            // The running node knows: no answer for `neighbour_down_after`.
            Some(c) => c.failing_since.is_some_and(|t| now_ms - t >= down_ms),
            // From the database: transfers failing, the oldest waiting that long, and nothing
            // handed over for that long.
            None => {
                n.retrying > 0
                    && n.oldest_pending_seconds * 1000 >= down_ms
                    && n.last_handover_seconds_ago.is_none_or(|s| s * 1000 >= down_ms)
            }
        };
        if down {
            alerts.push(format!(
                "neighbour {} looks down: {} transfer(s) waiting ({} retried), no answer for {}{}; last error: {}",
                n.agency,
                n.pending,
                n.retrying,
                match (contact.and_then(|c| c.failing_since), n.last_handover_seconds_ago) {
                    (Some(t), _) => format!("{} s", (now_ms - t) / 1000),
                    (None, Some(s)) => format!("{s} s"),
                    (None, None) => "ever".into(),
                },
                n.failed_attempts.map(|f| format!(" ({f} failed attempts)")).unwrap_or_default(),
                n.last_error.as_deref().unwrap_or("(none recorded)")
            ));
        }
        neighbours.push(n);
    }

    alerts.extend(crate::tlog::alerts(store).await?);
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
        storage,
        neighbours,
        certificates,
        crls,
        mail,
        alerts,
    })
}

/// Free space against the reserve, and storage failures: those the running process saw and
/// those recorded in the database, alerting while the latest is within the window.
async fn storage_health(
    config: &Config,
    store: &Store,
    watch: Option<&Watch>,
    now_ms: i64,
    alerts: &mut Vec<String>,
) -> Result<StorageHealth, StoreError> {
    let reserve = config.limits.min_free_bytes;
    let mut free = Vec::new();
    for (path, bytes) in store.free_space() {
        match &bytes {
            Ok(b) if *b < reserve => alerts.push(format!(
                "disk nearly full: {} free on {}, below the reserve of {} (limits.min_free_bytes); documents are refused until space is freed",
                mib(*b),
                path.display(),
                mib(reserve)
            )),
            // Without a reserve (or a tiny one), a filesystem this close to full is one.
            Ok(b) if *b < FULL_BELOW => alerts.push(format!(
                "disk full: {} free on {}; storing documents fails until space is freed",
                mib(*b),
                path.display()
            )),
            Ok(_) => {}
            Err(e) => alerts.push(format!("cannot read the free space of {}: {e}", path.display())),
        }
        free.push(FreeSpace { path: path.display().to_string(), free_bytes: bytes.ok() });
    }
    let mut failures = store.recorded_faults().await?;
    if watch.is_some() {
        let (since_start, last) = store.faults_seen();
        failures.since_start = Some(since_start);
        // What this process saw last is newer than (or the same as) what it recorded.
        if let Some((t, e)) = last
            && failures.last_at_ms.is_none_or(|r| t >= r)
        {
            failures.last_at_ms = Some(t);
            failures.last_error = Some(e);
        }
    }
    let window = i64::try_from(config.health.storage_error_window.as_millis()).unwrap_or(i64::MAX);
    if let (Some(t), Some(e)) = (failures.last_at_ms, failures.last_error.as_deref())
        && now_ms - t <= window
    {
        let count = match failures.since_start {
            Some(n) => format!("{n} since start, {} recorded", failures.recorded),
            None => format!("{} recorded", failures.recorded),
        };
        alerts.push(format!("storage failures ({count}); the latest at {}: {e}", at(t)));
    }
    Ok(StorageHealth { free, reserve_bytes: reserve, failures })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_thresholds_are_validated_with_their_keys() {
        let mut problems = Vec::new();
        let alerts = validate_alerts(&RawAlerts::default(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            (alerts.backlog_age, alerts.neighbour_down_after, alerts.stuck_after, alerts.storage_error_window),
            (Duration::from_secs(300), Duration::from_secs(60), Duration::from_secs(300), Duration::from_secs(3600))
        );
        let raw = RawAlerts {
            backlog_age: HumanDuration::secs(0),
            neighbour_down_after: HumanDuration(Duration::from_millis(999)),
            stuck_after: HumanDuration::secs(1),
            ..RawAlerts::default()
        };
        validate_alerts(&raw, &mut problems);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["health.backlog_age", "health.neighbour_down_after"], "1s is the edge: {problems:?}");
    }

    #[test]
    fn a_neighbour_is_up_again_at_its_first_answer() {
        let watch = Watch::default();
        let hop: AgencyCode = "000.00.41.H49".parse().unwrap();
        watch.unreachable(&hop, 1_000, "timed out");
        watch.unreachable(&hop, 2_000, "refused");
        let c = lock(&watch.contacts)[&hop].clone();
        assert_eq!((c.failing_since, c.failures, c.last_error.as_deref()), (Some(1_000), 2, Some("refused")));
        watch.answered(&hop, 3_000);
        let c = lock(&watch.contacts)[&hop].clone();
        assert_eq!((c.failing_since, c.failures, c.last_answer), (None, 0, Some(3_000)));
    }
}
