//! The next hops' hop receipts recorded several to a transaction, in statements that carry
//! them all.
//!
//! Each document handed over ends with a record of the next hop's answer: the transfer
//! finished, the hop receipt and the delivery statuses that came with it stored (and logged),
//! the routes set. Alone, that is a transaction of six or seven statements a document, each a
//! round trip to PostgreSQL (sqlx does not pipeline) and a statement on SQLite's writer. Here
//! the answers that come while others are being recorded wait and go together: one finish of
//! all their transfers, one insert of all their receipts, one update of all their routes (kept
//! with the `COMMIT`) and, when some statuses go on toward their senders, one insert of those
//! notices, whatever their number up to [`MAX_ANSWERS`]; five or six round trips for the
//! lot. (Recording them together statement by statement was tried and measured: the
//! transactions' commits went, but one recorder taking answers one statement at a time fell
//! behind the node's intake; BENCHMARKS.md, twenty-fifth session.)
//!
//! Only a plain answer goes this way ([`Plain::of`]): a hop receipt addressed here with the
//! delivery statuses (01, 02) of its document for a sender served here and not mailed, whose
//! acting on is storing them and setting routes, or for a sender further back, whose acting on
//! is storing them and queueing each as a notice toward it (one insert of all those notices:
//! at the node before the recipient's, every answer brings one). Anything else (a refusal, a
//! status to mail, one that cannot be routed on) is recorded alone, as before, by
//! `record_answer`.
//!
//! The promise is unchanged: a transfer is finished in the transaction that stores its hop
//! receipt, and a waiter is told `Ok` only once the `COMMIT` that holds its answer returned.
//! A transaction of several answers that fails is done again one answer at a time, so that an
//! answer the database refuses fails only its own transfer; its error is that transaction's.
//! A transfer whose claim was lost (its lease ran out and another worker took it) is left out
//! and recorded nothing, as alone.

use std::collections::HashSet;
use std::sync::Arc;

use crate::gather::{self, Gather, Waiting};
use crate::routing::NextHop;
use crate::storage::{StoreError, Transfer, millis};
use crate::{Metrics, Node, notices};
use pki::AgencyCode;
use pki::document::{ReceiptKind, SignedReceipt};

/// Most answers recorded in one transaction: a bound on what one failure has to do again one
/// by one, and on the wait of the first answer in it.
const MAX_ANSWERS: usize = 64;

/// Most transactions of answers at once: one may wait for its `COMMIT` (a sync) while the next
/// runs its statements. Their rows seldom meet (a transfer is one answer's; a status may ride
/// two answers, or a route be set by two), and each takes its answers in the order of their
/// documents and writes each table's rows in the order of their keys: never in a cycle.
const RECORDERS: usize = 2;

/// A next hop's answer whose record is storing it and setting routes (see [`Plain::of`]).
#[derive(Debug)]
pub(crate) struct Plain {
    transfer: i64,
    hop: AgencyCode,
    /// The document's row.
    document: i64,
    /// The transfer's recipients, whose pending routes become `forwarded`.
    recipients: Vec<AgencyCode>,
    hop_receipt: SignedReceipt,
    /// Each status with what it does here.
    statuses: Vec<(SignedReceipt, Act)>,
    /// Whether the record waits for its sync (see `may_record_unsynced`).
    synced: bool,
}

/// What a status that came with a hop receipt does here, once stored.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Addressed here: the state it gives its recipients' routes.
    Route(&'static str),
    /// Addressed further back: queued as a notice to this neighbour, the way to its sender.
    PassOn(AgencyCode),
}

impl Plain {
    /// The answer `hop_receipt` (with `statuses`) to `transfer` of document row `document`,
    /// if it is plain: the hop receipt is addressed to this agency (it changes nothing here),
    /// and every status is a delivery status of the same envelope (01 or 02) either for a
    /// sender this node serves, not to be mailed (a mail needs the document's manifest: they
    /// set routes), or for a sender reached through a neighbour other than the next hop that
    /// answered (they are passed on, as `notices::keep_and_route` does). `carried_statuses`
    /// let through only 01 and 02 of this document for its sender. A refusal is not plain.
    pub(super) fn of(
        node: &Node,
        transfer: &Transfer,
        document: i64,
        hop_receipt: &SignedReceipt,
        statuses: &[SignedReceipt],
    ) -> Option<Plain> {
        let here = |r: &SignedReceipt| matches!(node.routes.next_hop(&r.receipt.to), Ok(NextHop::Local));
        if hop_receipt.receipt.kind != ReceiptKind::Hop || !here(hop_receipt) {
            return None;
        }
        let mut plain = Vec::with_capacity(statuses.len());
        for s in statuses {
            if notices::route_state(s.receipt.kind).is_none() || s.receipt.envelope != hop_receipt.receipt.envelope {
                return None;
            }
            let act = match notices::sets_routes_only(node, s) {
                Some(state) => Act::Route(state),
                None => match node.routes.next_hop(&s.receipt.to) {
                    // Not back where it came from (that would loop: kept, not passed on, alone).
                    Ok(NextHop::Neighbour(n)) if n != transfer.next_hop => Act::PassOn(n),
                    _ => return None,
                },
            };
            plain.push((s.clone(), act));
        }
        Some(Plain {
            transfer: transfer.id,
            hop: transfer.next_hop,
            document,
            recipients: transfer.recipients.clone(),
            hop_receipt: hop_receipt.clone(),
            synced: !super::may_record_unsynced(ReceiptKind::Hop, statuses.len(), transfer.attempts),
            statuses: plain,
        })
    }
}

/// The answers waiting to be recorded (see [`crate::gather`]).
pub(crate) type Answers = Gather<Plain, ()>;

/// An empty queue of answers.
pub(crate) fn queue() -> Answers {
    Gather::new(MAX_ANSWERS, RECORDERS)
}

/// Records `answer` with whatever others wait (see the module's doc); `Ok` once the `COMMIT`
/// holding it returned, or when the transfer's claim was lost (nothing recorded, as alone).
pub(super) async fn record(node: &Arc<Node>, answer: Plain) -> Result<(), StoreError> {
    gather::submit(node, |n| n.outbound.answers(), answer, record_batch).await
}

/// Records a batch together, or each alone if that fails, and tells each waiter.
async fn record_batch(node: Arc<Node>, mut batch: Vec<Waiting<Plain, ()>>) {
    let node = &node;
    // In the order of their documents: two recorders meet on no row in a cycle.
    batch.sort_by_key(|w| (w.item.document, w.item.transfer));
    if batch.len() > 1 {
        let answers: Vec<&Plain> = batch.iter().map(|w| &w.item).collect();
        match record_together(node, &answers).await {
            Ok(()) => {
                for w in batch {
                    w.tell(Ok(()));
                }
                return;
            }
            // Nothing of it was kept (or, in doubt, each alone finds its transfer finished
            // and records nothing): one answer at a time, so that one the database refuses
            // fails only its transfer.
            Err(e) => {
                Metrics::bump(&node.observed.metrics().answer_transactions_redone);
                tracing::warn!(answers = batch.len(), error = %e, "recording next hops' answers together failed; recording each alone")
            }
        }
    }
    for w in batch {
        let outcome = record_together(node, &[&w.item]).await;
        w.tell(outcome);
    }
}

/// Records `answers` in one transaction: their transfers finished, their receipts stored,
/// their routes set, the statuses for senders further back queued on.
async fn record_together(node: &Arc<Node>, answers: &[&Plain]) -> Result<(), StoreError> {
    let now = millis(node.now());
    let mut tx =
        if answers.iter().any(|a| a.synced) { node.store.begin().await? } else { node.store.begin_unsynced().await? };
    let ids: Vec<i64> = answers.iter().map(|a| a.transfer).collect();
    let held: HashSet<i64> =
        tx.finish_held(&ids, node.outbound.lease_owner(), "done", now).await?.into_iter().collect();
    // The claims lost: another worker owns those transfers now.
    let answers: Vec<&Plain> = answers.iter().copied().filter(|a| held.contains(&a.transfer)).collect();
    if answers.is_empty() {
        return tx.rollback().await;
    }
    let hops: Vec<String> = answers.iter().map(|a| a.hop.to_string()).collect();
    let mut receipts = Vec::with_capacity(answers.len() * 2);
    for (a, hop) in answers.iter().zip(&hops) {
        receipts.push((&a.hop_receipt, hop.as_str()));
        receipts.extend(a.statuses.iter().map(|(s, _)| (s, hop.as_str())));
    }
    let mut new = tx.insert_receipts(&receipts, now).await?.into_iter();
    // In the order a record alone makes them: the transfer's routes forwarded, then what each
    // new status says of its recipients, or where it goes on to.
    let mut routes = Vec::new();
    let mut notices = Vec::new();
    let mut taken = Vec::new();
    for a in &answers {
        let _hop_receipt = new.next();
        routes.extend(a.recipients.iter().map(|r| (a.document, *r, "forwarded")));
        for (status, act) in &a.statuses {
            let Some(Some(row)) = new.next() else { continue };
            match act {
                Act::Route(state) => routes.extend(status.receipt.recipients.iter().map(|r| (a.document, *r, *state))),
                Act::PassOn(n) => notices.push((row, *n)),
            }
            taken.push((status, a.hop));
        }
    }
    tx.keep_route_states(&routes, now).await?;
    tx.enqueue_notices(&notices, now).await?;
    tx.commit().await?;
    for (status, hop) in &taken {
        let r = &status.receipt;
        tracing::info!(document = %r.document, peer = %hop, kind = %r.kind, by = %r.by, "receipt taken with a hop receipt");
    }
    node.observed
        .metrics()
        .statuses_with_receipts_in
        .fetch_add(taken.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Metrics::bump(&node.observed.metrics().answer_transactions);
    node.outbound.wake_outbox();
    Ok(())
}
