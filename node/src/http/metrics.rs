//! `/metrics`: OpenMetrics text for Prometheus.
//!
//! Counters and latency histograms are the node's in-memory instruments (`node::metrics`),
//! registered as they are (no copy, no double counting). Everything durable — transfers by
//! state, queue depths and ages per next hop, dead letters, mail states — is read from the
//! database at scrape time through the same health read-out the console and `status` show,
//! so the three never disagree. Certificate days-to-expiry and CRL ages come from the trust
//! state. Each scrape builds a fresh registry, so a label that went away (a neighbour with
//! nothing queued) disappears instead of freezing at its last value.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::server::Web;
use crate::Node;
use crate::metrics::Labels;

/// The content type Prometheus asks for and gets.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn gauge_family() -> Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>> {
    Family::default()
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// The whole text of one scrape of `node`.
pub(crate) async fn render(node: &Node) -> Result<String, crate::storage::StoreError> {
    let now = node.now();
    let health = crate::health::report(node).await?;
    let mut r = Registry::with_prefix("lienthong");
    let t = &node.observed.telemetry();
    r.register("documents_taken", "Documents taken (verified and stored), by how they came", t.taken.clone());
    r.register("documents_refused", "Documents refused, by the class of the reason", t.refused.clone());
    r.register("transfer_attempts", "Transfer attempts to next hops, by peer and outcome", t.attempts.clone());
    r.register(
        "verification_seconds",
        "Time to verify a document's envelope (signatures, chains, hierarchy)",
        t.verification_seconds.clone(),
    );
    r.register("commit_seconds", "Time of the transaction that takes a document", t.commit_seconds.clone());
    r.register("web_verifications", "Bundles checked by the web verifier, by result", t.web_verifications.clone());
    let m = &node.observed.metrics();
    r.register(
        "documents_handed_over",
        "Documents handed over to next hops (hop receipt received)",
        ConstCounter::new(m.documents_out.load(Ordering::Relaxed)),
    );
    r.register("notices_taken", "Receipts and statuses taken", ConstCounter::new(m.notices_in.load(Ordering::Relaxed)));
    r.register(
        "statuses_with_hop_receipts",
        "Statuses taken with a next hop's hop receipt instead of a notice transfer",
        ConstCounter::new(m.statuses_with_receipts_in.load(Ordering::Relaxed)),
    );
    r.register(
        "statuses_lost",
        "Statuses that came with a hop receipt and could be stored neither with it nor alone",
        ConstCounter::new(m.statuses_lost.load(Ordering::Relaxed)),
    );
    r.register(
        "answer_transactions",
        "Transactions that recorded next hops' hop receipts together (with documents_handed_over: answers a transaction)",
        ConstCounter::new(m.answer_transactions.load(Ordering::Relaxed)),
    );
    r.register(
        "answer_transactions_redone",
        "Transactions of several answers that failed and were done again one answer at a time",
        ConstCounter::new(m.answer_transactions_redone.load(Ordering::Relaxed)),
    );
    r.register(
        "intake_transactions",
        "Transactions that took documents together, PostgreSQL (with documents_taken: documents a transaction)",
        ConstCounter::new(m.intake_transactions.load(Ordering::Relaxed)),
    );
    r.register(
        "intake_transactions_redone",
        "Transactions of several documents that failed and were done again one document at a time",
        ConstCounter::new(m.intake_transactions_redone.load(Ordering::Relaxed)),
    );
    r.register(
        "intake_found_stored",
        "Documents waiting to be taken together found stored already (a repeat arriving at once), taken alone after",
        ConstCounter::new(m.intake_found_stored.load(Ordering::Relaxed)),
    );
    r.register(
        "documents_provisional",
        "Documents taken with provisional verification (CRLs missing or stale)",
        ConstCounter::new(m.provisional.load(Ordering::Relaxed)),
    );

    let q = &health.queue;
    let transfers = gauge_family();
    for (state, n) in [("pending", q.pending), ("dead", q.dead), ("refused", q.refused), ("done", q.done)] {
        transfers.get_or_create(&labels(&[("state", state)])).set(n as f64);
    }
    r.register("transfers", "Outbox transfers by state", transfers);
    let retrying = gauge_family();
    retrying.get_or_create(&Vec::new()).set(q.retrying as f64);
    r.register("transfers_retrying", "Waiting transfers that failed at least once", retrying);
    let in_flight = gauge_family();
    in_flight.get_or_create(&labels(&[("stuck", "false")])).set((q.in_flight - q.stuck) as f64);
    in_flight.get_or_create(&labels(&[("stuck", "true")])).set(q.stuck as f64);
    r.register(
        "transfer_attempts_running",
        "Transfer attempts running now (stuck: over health.stuck_after)",
        in_flight,
    );
    let oldest = gauge_family();
    oldest.get_or_create(&Vec::new()).set(q.oldest_pending_seconds as f64);
    r.register("outbox_oldest_pending_seconds", "Age of the oldest waiting transfer", oldest);

    let depth = gauge_family();
    let age = gauge_family();
    for n in &health.neighbours {
        depth.get_or_create(&labels(&[("peer", &n.agency)])).set(n.pending as f64);
        age.get_or_create(&labels(&[("peer", &n.agency)])).set(n.oldest_pending_seconds as f64);
    }
    r.register("queue_depth", "Transfers waiting, per next hop", depth);
    r.register("queue_oldest_seconds", "Age of the oldest waiting transfer, per next hop", age);

    let connections = gauge_family();
    let (inbound, clerks) = node.capacity.admission().connections_by_agency();
    for (agency, n) in inbound {
        connections.get_or_create(&labels(&[("peer", &agency.to_string()), ("direction", "in")])).set(n as f64);
    }
    for agency in node.outbound.connected_neighbours() {
        connections.get_or_create(&labels(&[("peer", &agency.to_string()), ("direction", "out")])).set(1.0);
    }
    connections.get_or_create(&labels(&[("peer", "clerks"), ("direction", "in")])).set(clerks as f64);
    r.register("connections", "Open QUIC connections, by neighbour and direction (clerks together)", connections);

    let expiry = gauge_family();
    for (which, identity) in [("node", &node.config.tls), ("seal", &node.config.seal)] {
        if let Some(c) = identity.chain.first() {
            let days = (c.not_after - now).as_seconds_f64() / 86_400.0;
            expiry.get_or_create(&labels(&[("certificate", which)])).set(days);
        }
    }
    r.register("certificate_days_to_expiry", "Days until the node's own certificates expire", expiry);

    let crl_age = gauge_family();
    let crl_due = gauge_family();
    let validator = node.trust.trust().validator();
    for crl in super::probes::newest_per_issuer(validator.crls()) {
        let issuer = labels(&[("issuer", &crl.issuer)]);
        crl_age.get_or_create(&issuer).set((now - crl.this_update).as_seconds_f64());
        crl_due.get_or_create(&issuer).set((crl.next_update - now).as_seconds_f64());
    }
    r.register("crl_age_seconds", "Age of the newest CRL held of each CA", crl_age);
    r.register("crl_next_update_seconds", "Seconds until each newest CRL falls due (negative: overdue)", crl_due);

    // Zeros when mail is off, so dashboards and alert rules find the series everywhere.
    let mail = health.mail.as_ref();
    let states = gauge_family();
    for (state, n) in [
        ("pending", mail.map_or(0, |m| m.pending)),
        ("dead", mail.map_or(0, |m| m.dead)),
        ("sent", mail.map_or(0, |m| m.sent)),
    ] {
        states.get_or_create(&labels(&[("state", state)])).set(n as f64);
    }
    r.register("mail", "Notification mail by state", states);
    let oldest = gauge_family();
    oldest.get_or_create(&Vec::new()).set(mail.map_or(0, |m| m.oldest_pending_seconds) as f64);
    r.register("mail_oldest_pending_seconds", "Age of the oldest notification waiting", oldest);
    let alerts = gauge_family();
    alerts.get_or_create(&Vec::new()).set(health.alerts.len() as f64);
    r.register("alerts", "Alerts in the health read-out now", alerts);
    let uptime = gauge_family();
    uptime.get_or_create(&Vec::new()).set(health.uptime_seconds.unwrap_or(0) as f64);
    r.register("uptime_seconds", "Seconds since the node started", uptime);

    let mut text = String::with_capacity(8192);
    // Writing into a String cannot fail.
    let _ = encode(&mut text, &r);
    Ok(text)
}

/// `/metrics`.
pub(crate) async fn scrape(State(web): State<Arc<Web>>) -> Response {
    match render(&web.node).await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS), (header::CACHE_CONTROL, "no-store")], text).into_response(),
        Err(e) => {
            web.node.storage_failed("reading metrics", &e);
            (StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the node's storage: {e}\n")).into_response()
        }
    }
}
