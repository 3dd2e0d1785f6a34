//! What the node counts and times as it works, for Prometheus (`/metrics`) and the operator
//! console: documents taken and refused (by reason), transfer attempts per next hop and
//! outcome, verification and commit latencies, and the latest refusals with their reasons.
//!
//! The document path calls one method per event (`intake`, `outbound`); everything here is
//! in memory, kept since the process started. What is durable (queue depths, dead letters,
//! mail states) is read from the database when scraped (`http::metrics`), never counted twice.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use time::OffsetDateTime;

/// Label sets: a few fixed keys with bounded values (reasons are classified, never free text).
pub type Labels = Vec<(&'static str, String)>;

/// How many refusals the console shows.
pub const RECENT_REFUSALS: usize = 50;

/// A refusal, as the console lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RefusalRecord {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The document id (empty when the envelope could not be read).
    pub document: String,
    /// The reason's class, as in the `reason` label.
    pub class: &'static str,
    /// The reason as told to the sender.
    pub reason: String,
}

/// The node's in-memory instruments.
#[derive(Debug)]
pub struct Telemetry {
    /// Documents taken, by `via` (`clerk` or `neighbour`).
    pub taken: Family<Labels, Counter>,
    /// Documents refused, by `reason` class.
    pub refused: Family<Labels, Counter>,
    /// Transfer attempts to next hops, by `peer` and `outcome` (`finished`, `retry`,
    /// `refused`).
    pub attempts: Family<Labels, Counter>,
    /// Verifying a document's envelope (signatures, chains, hierarchy), seconds.
    pub verification_seconds: Histogram,
    /// The transaction that takes a document (begin to commit), seconds.
    pub commit_seconds: Histogram,
    /// Bundles checked by the web verifier, by `result` (`passed`, `failed`, `refused`).
    pub web_verifications: Family<Labels, Counter>,
    recent: Mutex<VecDeque<RefusalRecord>>,
}

/// Latency buckets: 0.5 ms to about 16 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every class [`classify`] gives.
pub const REFUSAL_CLASSES: [&str; 11] = [
    "malformed",
    "storage",
    "verification",
    "too_large",
    "duplicate_id",
    "attachment",
    "recipients",
    "not_allowed",
    "no_route",
    "crl",
    "other",
];

impl Default for Telemetry {
    fn default() -> Self {
        let t = Telemetry {
            taken: Family::default(),
            refused: Family::default(),
            attempts: Family::default(),
            verification_seconds: latency_buckets(),
            commit_seconds: latency_buckets(),
            web_verifications: Family::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_REFUSALS)),
        };
        // Every series whose labels are known in advance exists from the start at 0, so a
        // rate or an alert sees the first event instead of a series appearing.
        for via in ["clerk", "neighbour"] {
            let _ = t.taken.get_or_create(&vec![("via", via.to_owned())]);
        }
        for class in REFUSAL_CLASSES {
            let _ = t.refused.get_or_create(&vec![("reason", class.to_owned())]);
        }
        for result in ["passed", "indeterminate", "failed", "refused"] {
            let _ = t.web_verifications.get_or_create(&vec![("result", result.to_owned())]);
        }
        t
    }
}

/// The class of a refusal reason, for the `reason` label: the reasons themselves are free
/// text (they name documents and certificates), which would make a label without bound.
pub fn classify(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    let has = |s: &str| r.contains(s);
    if has("malformed") {
        "malformed"
    } else if has("cannot store") || has("disk") {
        "storage"
    } else if has("verification failed") || has("does not verify") {
        "verification"
    } else if has("over this node's limit") {
        "too_large"
    } else if has("already received") {
        "duplicate_id"
    } else if has("attachment") {
        "attachment"
    } else if has("not a recipient") || has("no recipients") || has("recipient ") {
        "recipients"
    } else if has("sends for") || has("may not") || has("relay") || has("subtree") {
        "not_allowed"
    } else if has("no route") || has("unknown") {
        "no_route"
    } else if has("crl") {
        "crl"
    } else {
        "other"
    }
}

impl Telemetry {
    /// A document was taken from a clerk or a neighbour.
    pub fn document_taken(&self, from_clerk: bool) {
        self.taken.get_or_create(&vec![("via", if from_clerk { "clerk" } else { "neighbour" }.to_owned())]).inc();
    }

    /// A document was refused with `reason` (told to its sender).
    pub fn document_refused(&self, document: &str, reason: &str, at: OffsetDateTime) {
        let class = classify(reason);
        self.refused.get_or_create(&vec![("reason", class.to_owned())]).inc();
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() == RECENT_REFUSALS {
            recent.pop_back();
        }
        recent.push_front(RefusalRecord { at, document: document.to_owned(), class, reason: reason.to_owned() });
    }

    /// A transfer attempt to `peer` ended with `outcome`.
    pub fn transfer_attempted(&self, peer: &pki::AgencyCode, outcome: &'static str) {
        self.attempts.get_or_create(&vec![("peer", peer.to_string()), ("outcome", outcome.to_owned())]).inc();
    }

    /// An envelope verification took `d`.
    pub fn verified_in(&self, d: Duration) {
        self.verification_seconds.observe(d.as_secs_f64());
    }

    /// A document's transaction took `d`.
    pub fn committed_in(&self, d: Duration) {
        self.commit_seconds.observe(d.as_secs_f64());
    }

    /// The latest refusals, newest first.
    pub fn recent_refusals(&self) -> Vec<RefusalRecord> {
        self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fall_into_few_classes() {
        assert_eq!(classify("malformed envelope: x"), "malformed");
        assert_eq!(classify("verification failed: the agency seal ..."), "verification");
        assert_eq!(classify("attachment \"a.pdf\" is 9 bytes, over this node's limit of 8"), "too_large");
        assert_eq!(classify("a different document with the id X was already received"), "duplicate_id");
        assert_eq!(classify("this node sends for A only, not for B"), "not_allowed");
        assert_eq!(classify("the node cannot store documents now (the disk is full: …)"), "storage");
        assert_eq!(classify("something new"), "other");
        assert!(REFUSAL_CLASSES.contains(&classify("no route to 000.05.41.H49")));
    }

    #[test]
    fn recent_refusals_are_bounded_newest_first() {
        let t = Telemetry::default();
        for i in 0..RECENT_REFUSALS + 5 {
            t.document_refused(&format!("doc {i}"), "malformed envelope", OffsetDateTime::UNIX_EPOCH);
        }
        let recent = t.recent_refusals();
        assert_eq!(recent.len(), RECENT_REFUSALS);
        assert_eq!(recent[0].document, format!("doc {}", RECENT_REFUSALS + 4));
        assert_eq!(t.refused.get_or_create(&vec![("reason", "malformed".to_owned())]).get(), 55);
    }
}
