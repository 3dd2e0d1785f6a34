//! The outbox worker and everything sent to neighbours.
//!
//! A transfer leaves the outbox only when the next hop has answered with a hop receipt that
//! verifies (signed by the next hop's seal, for this document and these recipients): the
//! receipt and the hand-over are recorded in one transaction. Failures are retried with
//! exponential backoff and jitter; after the policy's attempts the transfer is dead-lettered
//! and, in the same transaction, the sender gets a signed refusal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use pki::AgencyCode;
use pki::document::{Envelope, ReceiptKind, SignedReceipt, StatusCode};
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::crl_refs::Asked;
use crate::protocol::{ErrorKind, MAX_NOTICES, NodeRequest, NodeResponse, read_frame};
use crate::storage::{Claim, NextDue, StoreError, Transfer, TransferKind, millis};
use crate::{Metrics, Node};

mod answers;
mod client;
pub mod cut_through;
mod handoff;

pub use client::{Client, ConnectError, RequestError, SendError, finish};
pub use handoff::{Forward, HANDOFF_GRACE, Handed};

/// Most transfers claimed at once, all peers together. Claims are leased; a claim waits at
/// most a few rounds of its peer's in-flight limit before it runs.
const MAX_CLAIMED: usize = 128;

/// With transfers running, the outbox claims again when woken only once this many of the
/// [`MAX_CLAIMED`] places are free. Every finishing transfer (and batch of notices) wakes the
/// outbox; under load, claiming one row per wake-up read the outbox (past the running rows,
/// the oldest due) once per transfer. The claimed work still queued keeps the neighbours busy
/// meanwhile. A wait that ends on its timer claims whatever room there is: the claimed
/// transfers may all be stuck behind a neighbour that hangs, and new work for the others must
/// not wait for their timeouts.
const CLAIM_AT_LEAST: usize = 8;

/// Bytes read from a stored attachment at a time when forwarding it.
const FORWARD_READ: usize = 1 << 20;

/// How a transfer ended.
#[derive(Debug)]
enum Outcome {
    /// Handed over (or refused for good, with the refusal recorded).
    Finished,
    /// Not handed over: tried again later or given up now, as
    /// [`TransferError::is_transient`] says.
    Failed(TransferError),
}

impl Outcome {
    /// Why it did not finish ("" when it did).
    fn reason(&self) -> String {
        match self {
            Outcome::Finished => String::new(),
            Outcome::Failed(e) => e.to_string(),
        }
    }

    /// Its name in the transfer-attempt metric.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::Failed(e) if e.is_transient() => "retry",
            Outcome::Failed(_) => "refused",
        }
    }
}

impl From<TransferError> for Outcome {
    fn from(e: TransferError) -> Outcome {
        Outcome::Failed(e)
    }
}

/// Why a transfer (a document or a notice) was not handed over, by the stage that failed. The
/// text is what the outbox records (`last_error`), what `inbox --sent` shows and what a
/// dead-letter's signed refusal quotes: keep the wording.
#[derive(Debug, thiserror::Error)]
enum TransferError {
    /// No answer from the neighbour: it could not be connected to, the exchange broke or timed
    /// out, or the request could not be written (a stored attachment that could not be read
    /// while sending included).
    #[error("{0}")]
    Transport(RequestError),
    /// This node's storage failed: reading the transfer, or recording the answer.
    #[error("{0}")]
    LocalStorage(StoreError),
    /// The neighbour cannot take it now (`ErrorKind::Unavailable`: its storage, a clock or
    /// CRL problem, shutting down).
    #[error("{hop}: {message}")]
    Unavailable {
        /// The neighbour.
        hop: AgencyCode,
        /// What it said.
        message: String,
    },
    /// The neighbour refused it for good without a signed refusal (any other `ErrorKind`).
    #[error("{hop}: {message}")]
    Rejected {
        /// The neighbour.
        hop: AgencyCode,
        /// What it said.
        message: String,
    },
    /// The neighbour's hop receipt does not parse.
    #[error("{hop} answered with a malformed hop receipt: {error}")]
    MalformedHopReceipt {
        /// The neighbour.
        hop: AgencyCode,
        /// Why it does not parse.
        error: pki::document::ReceiptError,
    },
    /// The neighbour's hop receipt is for another document, signer or recipients.
    #[error("{hop} answered with a hop receipt that does not match the transfer")]
    HopReceiptMismatch {
        /// The neighbour.
        hop: AgencyCode,
    },
    /// The neighbour's hop receipt does not verify (its seal, its chain, revocation).
    #[error("{hop}'s hop receipt does not verify: {error}")]
    HopReceiptUnverified {
        /// The neighbour.
        hop: AgencyCode,
        /// Why.
        error: String,
    },
    /// The neighbour refused, but its refusal does not parse or is not a refusal of this
    /// document by it.
    #[error("{hop} refused with an unusable refusal")]
    UnusableRefusal {
        /// The neighbour.
        hop: AgencyCode,
    },
    /// The neighbour refused, but its refusal does not verify.
    #[error("{hop} refused, but its refusal does not verify: {error}")]
    RefusalUnverified {
        /// The neighbour.
        hop: AgencyCode,
        /// Why.
        error: String,
    },
    /// The neighbour answered with something that is no answer to this request.
    #[error("{hop} answered {answer} to {what}")]
    UnexpectedAnswer {
        /// The neighbour.
        hop: AgencyCode,
        /// Its answer, as text.
        answer: String,
        /// What was sent ("a document", "receipts").
        what: &'static str,
    },
    /// A notice left unsent in this round by the outbox's own bookkeeping ("not sent", "no
    /// answer", "not a notice").
    #[error("{0}")]
    NotSent(&'static str),
}

impl TransferError {
    /// Whether the transfer is tried again (with backoff, until `retry.max_attempts`) rather
    /// than given up at once with a signed refusal to the sender. Given up only when the
    /// neighbour said no: a plain refusal, or a refusal that cannot be used or verified (it
    /// answered, and sending the same again would get the same). Everything on this side or
    /// on the way (connecting, storage, an answer that does not fit or verify) may pass.
    fn is_transient(&self) -> bool {
        match self {
            TransferError::Rejected { .. }
            | TransferError::UnusableRefusal { .. }
            | TransferError::RefusalUnverified { .. } => false,
            TransferError::Transport(_)
            | TransferError::LocalStorage(_)
            | TransferError::Unavailable { .. }
            | TransferError::MalformedHopReceipt { .. }
            | TransferError::HopReceiptMismatch { .. }
            | TransferError::HopReceiptUnverified { .. }
            | TransferError::UnexpectedAnswer { .. }
            | TransferError::NotSent(_) => true,
        }
    }

    /// What a neighbour's `NodeResponse::Error` (or a notice it did not take) means.
    fn answered(hop: AgencyCode, kind: ErrorKind, message: String) -> TransferError {
        match kind {
            ErrorKind::Unavailable => TransferError::Unavailable { hop, message },
            _ => TransferError::Rejected { hop, message },
        }
    }
}

/// Runs the outbox until shutdown.
pub async fn run_outbox(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    let in_flight = node.outbound.in_flight();
    let notices = NoticeQueues::default();
    // A claim holds for one lease and is renewed every third of it while its transfer runs
    // (PostgreSQL; on SQLite one process owns the outbox and claims are plain reads).
    let lease = node.config.limits.outbox_lease;
    let renew_every = lease / 3;
    let mut renewed_at = tokio::time::Instant::now();
    let mut faults_tried_at: Option<tokio::time::Instant> = None;
    // Whether the last wait ended on its timer rather than a wake-up.
    let mut timed_out = false;
    loop {
        if node.stopping() {
            break;
        }
        // Storage failures seen while the database refused writes are written down once it
        // takes them again (tried every few seconds), so `status` shows them afterwards.
        if faults_tried_at.is_none_or(|t| t.elapsed() >= FAULTS_RECORD_EVERY) {
            faults_tried_at = Some(tokio::time::Instant::now());
            if let Err(e) = node.store.record_faults().await {
                tracing::debug!(error = %e, "storage failures not written down yet");
            }
        }
        let now = millis(node.now());
        if node.store.backend() == crate::storage::Backend::Postgres && renewed_at.elapsed() >= renew_every {
            let running: Vec<i64> = in_flight.lock().map(|s| s.iter().copied().collect()).unwrap_or_default();
            if let Err(e) = node
                .store
                .renew_leases(
                    crate::storage::Leased::Outbox,
                    node.outbound.lease_owner(),
                    &running,
                    now + lease.as_millis() as i64,
                )
                .await
            {
                tracing::error!(error = %e, "cannot renew outbox claims");
            }
            renewed_at = tokio::time::Instant::now();
        }
        let running: Vec<i64> = in_flight.lock().map(|s| s.iter().copied().collect()).unwrap_or_default();
        // Transfers an intake handed over first: their documents are in memory already. They
        // leave `CLAIM_AT_LEAST` places to the claim below, so that a backlog of hand-offs
        // (a slow next hop under load) does not hold back the notices and retries due in the
        // database.
        let free = MAX_CLAIMED.saturating_sub(running.len());
        let handed = start_handed(&node, &in_flight, free.saturating_sub(CLAIM_AT_LEAST)).await;
        let running: Vec<i64> = if handed > 0 {
            // Let the sends just spawned start before this task reads the outbox: a task
            // spawned here waits on this worker thread until this one yields, and the claim
            // and the next-due read below hold it for two statements.
            tokio::task::yield_now().await;
            in_flight.lock().map(|s| s.iter().copied().collect()).unwrap_or_default()
        } else {
            running
        };
        let room = MAX_CLAIMED.saturating_sub(running.len());
        let claiming = room >= CLAIM_AT_LEAST || (room > 0 && timed_out);
        // A SQLite claim is a plain read: the transfers running here are still pending and due,
        // and being the oldest they would come first, so they are left out of the claim (and
        // new work never waits behind transfers to a slow neighbour).
        let Claim { transfers: claimed, next } = if claiming {
            // The hand-offs this claim may take from the database keep their documents for it.
            node.outbound.handed_fall_due(now);
            let until = now + lease.as_millis() as i64;
            match node.store.claim_due_except(node.outbound.lease_owner(), now, until, room as i64, &running).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    Claim { transfers: Vec::new(), next: NextDue::Unknown }
                }
            }
        } else {
            Claim { transfers: Vec::new(), next: NextDue::Unknown }
        };
        let claimed_count = claimed.len();
        let mut started = 0;
        // Documents go one per request; notices wait in their neighbour's queue, and each of
        // its senders takes all those waiting (up to `MAX_NOTICES`) when it is free.
        let mut documents: Vec<Transfer> = Vec::new();
        let mut new_notices = false;
        for transfer in claimed {
            if started == room {
                break;
            }
            // A transfer already running here (a SQLite claim is a plain read; a lease may run
            // out while its transfer is still running) is not started twice.
            let fresh = in_flight.lock().map(|mut s| s.insert(transfer.id)).unwrap_or(false);
            if !fresh {
                continue;
            }
            started += 1;
            match transfer.kind {
                TransferKind::Notice(_) => {
                    notices.push(transfer);
                    new_notices = true;
                }
                TransferKind::Document(_) => documents.push(transfer),
            }
        }
        for transfer in documents {
            let peer = node.outbound.peer_slots(transfer.next_hop);
            let (task_node, in_flight) = (node.clone(), in_flight.clone());
            // Its document in memory if its hand-off fell due unstarted (see `handoff`).
            let forward = node.outbound.claimed_document(transfer.id);
            if forward.is_some() {
                Metrics::bump(&node.observed.metrics().sent_from_intake);
            }
            node.tasks.spawn(async move {
                run_claimed(&task_node, &peer, &in_flight, vec![transfer], forward).await;
                task_node.outbound.wake_outbox();
            });
        }
        if new_notices {
            for hop in notices.to_start() {
                let peer = node.outbound.peer_slots(hop);
                let (task_node, in_flight, queues) = (node.clone(), in_flight.clone(), notices.clone());
                node.tasks.spawn(async move {
                    // A sender that panics gives its place back (else, with fewer than a batch
                    // waiting, none would start again and the neighbour's notices would stall).
                    let _place = SenderPlace { queues: &queues, hop };
                    let linger = task_node.config.limits.notice_linger;
                    let mut stop = task_node.shutdown_signal();
                    loop {
                        // Fewer than a batch waiting: let others to this neighbour gather
                        // until the oldest has waited `limits.notice_linger` (they are
                        // claimed meanwhile and queued here), unless a batch's worth comes
                        // first or the node stops. Notices gathering hold places of the
                        // outbox: none gather while it is short of them (documents would wait).
                        let short = in_flight.lock().map_or(true, |s| s.len() + CLAIM_AT_LEAST > MAX_CLAIMED);
                        if let Some((until, full)) = queues.gather_until(&hop, linger).filter(|_| !short) {
                            tokio::select! {
                                _ = tokio::time::sleep_until(until) => {}
                                _ = full.notified() => {}
                                _ = stop.changed() => {}
                            }
                        }
                        let Some(batch) = queues.next_batch(&hop, task_node.stopping()) else { break };
                        run_claimed(&task_node, &peer, &in_flight, batch, None).await;
                        // Its places are free again (see `CLAIM_AT_LEAST`).
                        task_node.outbound.wake_outbox();
                    }
                    task_node.outbound.wake_outbox();
                });
            }
        }
        // Sleep until woken (new work, or a transfer finished), the next transfer is due, or a
        // second passes. When everything due is already running, only a wake-up helps.
        let now = millis(node.now());
        // Full, or not claiming until more places are free: a finishing transfer wakes the loop.
        let until_due = |due: i64| Duration::from_millis(u64::try_from(due - now).unwrap_or(0).clamp(5, 1000));
        let wait = if !claiming || (claimed_count > 0 && started == 0) || started == room {
            Duration::from_secs(1)
        } else {
            match next {
                // The claim's read told (SQLite; PostgreSQL when it took fewer than asked):
                // no second read.
                NextDue::At(due) => until_due(due),
                NextDue::Never => Duration::from_secs(1),
                NextDue::Unknown => {
                    let running: Vec<i64> = in_flight.lock().map(|s| s.iter().copied().collect()).unwrap_or_default();
                    match node.store.next_due_except(crate::storage::Leased::Outbox, now, &running).await {
                        Ok(Some(due)) => until_due(due),
                        _ => Duration::from_secs(1),
                    }
                }
            }
        };
        let wait = if node.store.backend() == crate::storage::Backend::Postgres {
            wait.min(renew_every.saturating_sub(renewed_at.elapsed()))
        } else {
            wait
        };
        timed_out = false;
        tokio::select! {
            _ = node.outbound.outbox_woken() => {}
            _ = tokio::time::sleep(wait) => timed_out = true,
            _ = shutdown.changed() => break,
        }
    }
}

/// Starts up to `room` of the transfers intakes handed over (see [`handoff`]), with the
/// documents they came with; returns how many started. On PostgreSQL they are claimed first,
/// all in one statement, and those another process claimed meanwhile are left to it.
async fn start_handed(node: &Arc<Node>, in_flight: &Arc<StdMutex<HashSet<i64>>>, room: usize) -> usize {
    let now = millis(node.now());
    // Only before the row is due: until then no claim takes it (this loop's own claims run
    // after this, and leave out what runs here), so it cannot have run, finished or failed in
    // the meantime. One that waited longer (a backlog behind a slow next hop) is left to the
    // claims, as any transfer in the database.
    let (handed, past_due): (Vec<Handed>, Vec<Handed>) =
        node.outbound.handed(room).into_iter().partition(|h| now < h.due);
    node.outbound.keep_for_claim(past_due);
    if handed.is_empty() {
        return 0;
    }
    let ids: Vec<i64> = handed.iter().map(|h| h.transfer.id).collect();
    let running = take_handed(node, in_flight, &ids, "the transfers handed over").await;
    let mut started = 0;
    for Handed { transfer, forward, .. } in handed {
        if !running.contains(&transfer.id) {
            continue;
        }
        started += 1;
        if forward.is_some() {
            Metrics::bump(&node.observed.metrics().sent_from_intake);
        }
        let peer = node.outbound.peer_slots(transfer.next_hop);
        let (task_node, in_flight) = (node.clone(), in_flight.clone());
        node.tasks.spawn(async move {
            run_claimed(&task_node, &peer, &in_flight, vec![transfer], forward).await;
            task_node.outbound.wake_outbox();
        });
    }
    started
}

/// Takes rows handed over before they fell due to run here: claims them (on PostgreSQL by id,
/// all in one statement, so that one another process of a scaled-out node claimed meanwhile
/// is left to it) and marks them in flight; returns those now running here. When the claim
/// fails (`what` names the rows in the log) none is taken: they stay pending, and the next
/// claim finds them once due.
async fn take_handed(node: &Arc<Node>, in_flight: &StdMutex<HashSet<i64>>, ids: &[i64], what: &str) -> HashSet<i64> {
    let claimed = match handoff::claim(node, ids).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot claim {what}");
            return HashSet::new();
        }
    };
    claimed.into_iter().filter(|id| in_flight.lock().map(|mut s| s.insert(*id)).unwrap_or(false)).collect()
}

/// Runs claimed transfers (a document, or a batch of notices for one neighbour) in one of the
/// neighbour's slots, records their outcomes, and lets the outbox claim them again. `forward`:
/// the document of a transfer handed over by its intake, not read again.
async fn run_claimed(
    node: &Arc<Node>,
    peer: &Semaphore,
    in_flight: &StdMutex<HashSet<i64>>,
    unit: Vec<Transfer>,
    forward: Option<Arc<Forward>>,
) {
    let ids: Vec<i64> = unit.iter().map(|t| t.id).collect();
    if let Ok(_permit) = peer.acquire().await {
        for t in &unit {
            node.observed.watch().started(t.id, &t.next_hop, t.attempts, millis(node.now()));
        }
        let recorded = run_unit(node, unit, forward).await;
        for id in &ids {
            node.observed.watch().ended(*id);
        }
        if !recorded {
            hold_back(node).await;
        }
    }
    if let Ok(mut s) = in_flight.lock() {
        for id in &ids {
            s.remove(id);
        }
    }
}

/// After an outcome could not be written (storage failing): the transfer is still pending and
/// due. It is held back a while (still marked running) instead of being sent again at once
/// (the next hop would answer it from its storage, but there is no point while ours refuses
/// writes).
async fn hold_back(node: &Node) {
    let mut stop = node.shutdown_signal();
    tokio::select! {
        _ = tokio::time::sleep(node.config.retry.initial.max(Duration::from_secs(1))) => {}
        _ = stop.changed() => {}
    }
}

/// At most this many batches of notices in flight to one neighbour. While they run, the
/// notices that fall due wait in the neighbour's queue and go together in the next batch: a
/// busy node sends its receipts in few requests (one stream and one transaction on each side
/// per batch). A quiet node gathers them for `limits.notice_linger` first.
const NOTICE_SENDERS_PER_PEER: usize = 2;

/// Notices claimed from the outbox and waiting for a sender, per neighbour.
#[derive(Debug, Default, Clone)]
struct NoticeQueues(Arc<StdMutex<HashMap<AgencyCode, NoticeQueue>>>);

#[derive(Debug, Default)]
struct NoticeQueue {
    /// With the moment each was queued.
    waiting: std::collections::VecDeque<(tokio::time::Instant, Transfer)>,
    senders: usize,
    /// Told when a batch's worth waits: a sender gathering sends it at once.
    full: Arc<tokio::sync::Notify>,
}

/// A notice sender's place among its neighbour's senders, given back if the sender panics
/// (when it ends normally, [`NoticeQueues::next_batch`] gave it back).
struct SenderPlace<'a> {
    queues: &'a NoticeQueues,
    hop: AgencyCode,
}

impl Drop for SenderPlace<'_> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(q) = self.queues.lock().get_mut(&self.hop)
        {
            q.senders = q.senders.saturating_sub(1);
        }
    }
}

impl NoticeQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AgencyCode, NoticeQueue>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queues a claimed notice for its neighbour.
    fn push(&self, transfer: Transfer) {
        let mut queues = self.lock();
        let q = queues.entry(transfer.next_hop).or_default();
        q.waiting.push_back((tokio::time::Instant::now(), transfer));
        if q.waiting.len() == MAX_NOTICES {
            // A permit if no sender waits yet: at worst a later gathering ends early.
            q.full.notify_one();
        }
    }

    /// Until when a sender of `hop` lets the notices waiting gather (see `limits.notice_linger`),
    /// and what tells it that a batch's worth waits meanwhile: `None` if one does already, or
    /// the oldest has waited `linger`.
    fn gather_until(
        &self,
        hop: &AgencyCode,
        linger: Duration,
    ) -> Option<(tokio::time::Instant, Arc<tokio::sync::Notify>)> {
        let queues = self.lock();
        let q = queues.get(hop)?;
        if q.waiting.len() >= MAX_NOTICES {
            return None;
        }
        let until = q.waiting.front()?.0 + linger;
        (until > tokio::time::Instant::now()).then(|| (until, Arc::clone(&q.full)))
    }

    /// The neighbours with notices waiting that may start one more sender (counted as
    /// started).
    fn to_start(&self) -> Vec<AgencyCode> {
        let mut queues = self.lock();
        let mut hops = Vec::new();
        for (hop, q) in queues.iter_mut() {
            // One sender per batch's worth waiting, up to the bound.
            let wanted = q.waiting.len().div_ceil(MAX_NOTICES).min(NOTICE_SENDERS_PER_PEER);
            while q.senders < wanted {
                q.senders += 1;
                hops.push(*hop);
            }
        }
        hops
    }

    /// The next batch for a sender of `hop` (all waiting, up to `MAX_NOTICES`); `None` ends
    /// the sender: nothing waits, or the node stops (the notices stay pending in the
    /// outbox and are claimed again after the restart).
    fn next_batch(&self, hop: &AgencyCode, stopping: bool) -> Option<Vec<Transfer>> {
        let mut queues = self.lock();
        let q = queues.get_mut(hop)?;
        if q.waiting.is_empty() || stopping {
            q.senders = q.senders.saturating_sub(1);
            if stopping {
                q.waiting.clear();
            }
            return None;
        }
        let n = q.waiting.len().min(MAX_NOTICES);
        Some(q.waiting.drain(..n).map(|(_, t)| t).collect())
    }
}

/// How often storage failures not yet in the database are tried again.
const FAULTS_RECORD_EVERY: Duration = Duration::from_secs(5);

/// Runs a unit of work — one document, or notices for one neighbour — and records each
/// transfer's outcome; false when an outcome could not be recorded.
async fn run_unit(node: &Arc<Node>, unit: Vec<Transfer>, forward: Option<Arc<Forward>>) -> bool {
    match unit.as_slice() {
        [transfer @ Transfer { kind: TransferKind::Document(id), .. }] => {
            let answer = send_document(node, transfer, *id, forward).await;
            conclude_document(node, transfer, *id, answer).await
        }
        _ => {
            let outcomes = send_notices(node, &unit).await;
            let now = millis(node.now());
            let finished: Vec<&Transfer> =
                unit.iter().zip(&outcomes).filter(|(_, o)| matches!(o, Outcome::Finished)).map(|(t, _)| t).collect();
            // The notices taken, finished in one transaction, not waiting for its sync: the
            // neighbour keeps them, and takes them once if a crash takes this back.
            let done: Result<(), StoreError> = async {
                if finished.is_empty() {
                    return Ok(());
                }
                let mut tx = node.store.begin_unsynced().await?;
                let ids: Vec<i64> = finished.iter().map(|t| t.id).collect();
                tx.finish_transfers(&ids, node.outbound.lease_owner(), "done", now).await?;
                tx.commit().await
            }
            .await;
            let mut all = match done {
                Ok(()) => true,
                Err(e) => {
                    // Still pending: sent again later, and the neighbour knows them already.
                    node.storage_failed(
                        &format!("recording {} receipts handed to {}", finished.len(), unit[0].next_hop),
                        &e,
                    );
                    false
                }
            };
            for (transfer, outcome) in unit.iter().zip(outcomes) {
                node.observed.telemetry().transfer_attempted(&transfer.next_hop, outcome.label());
                if !matches!(outcome, Outcome::Finished) {
                    all &= recorded(node, transfer, record(node, transfer, outcome).await);
                }
            }
            all
        }
    }
}

/// Whether a transfer's outcome was recorded; a failure to record it is logged (the transfer
/// stays pending and is tried again).
fn recorded(node: &Node, transfer: &Transfer, result: Result<(), StoreError>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            node.storage_failed(&format!("recording the outcome of transfer {}", transfer.id), &e);
            false
        }
    }
}

/// Records a transfer's outcome other than a notice handed over (a document's hand-over is
/// recorded by `conclude_document` with its hop receipt): a failed attempt to retry later, or one
/// refused for good.
async fn record(node: &Arc<Node>, transfer: &Transfer, outcome: Outcome) -> Result<(), StoreError> {
    let now = millis(node.now());
    let owner = node.outbound.lease_owner();
    match outcome {
        Outcome::Finished => Ok(()),
        Outcome::Failed(error) if node.stopping() => {
            let error = error.to_string();
            // Cut short by shutdown: pending again, and the attempt does not count.
            tracing::info!(transfer = transfer.id, error = %error, "transfer interrupted by shutdown");
            let mut tx = node.store.begin().await?;
            tx.fail_transfer(transfer.id, owner, &error, now, false, false).await?;
            tx.commit().await
        }
        Outcome::Failed(error) if error.is_transient() => {
            let error = error.to_string();
            let attempt = transfer.attempts + 1;
            let dead = attempt >= node.config.retry.max_attempts;
            let delay = node.config.retry.delay(attempt, node.outbound.jitter_draw());
            tracing::warn!(transfer = transfer.id, peer = %transfer.next_hop, attempt, retry_in = %humantime::format_duration(delay), error = %error, dead, "transfer failed");
            Metrics::bump(&node.observed.metrics().retries);
            let reason = format!("not delivered to {} after {attempt} attempts: {error}", transfer.next_hop);
            fail(node, transfer, &error, now + delay.as_millis() as i64, dead.then_some(reason.as_str())).await
        }
        Outcome::Failed(error) => {
            let error = error.to_string();
            tracing::warn!(transfer = transfer.id, peer = %transfer.next_hop, error = %error, "transfer refused for good");
            let reason = format!("{} did not take it: {error}", transfer.next_hop);
            fail(node, transfer, &error, now, Some(reason.as_str())).await
        }
    }
}

/// Records a failed attempt; with `dead_reason`, dead-letters the transfer and, in the same
/// transaction, records and routes a signed refusal to the document's sender.
async fn fail(
    node: &Arc<Node>,
    transfer: &Transfer,
    error: &str,
    next_attempt_at: i64,
    dead_reason: Option<&str>,
) -> Result<(), StoreError> {
    let refusal = match (dead_reason, transfer.kind) {
        (Some(reason), TransferKind::Document(id)) => {
            let doc = node.store.document(id).await?;
            let manifest = doc.manifest()?;
            let refusal = node
                .refusal(&manifest, doc.digest, transfer.recipients.clone(), reason)
                .ok_or_else(|| StoreError::Corrupt("cannot sign a refusal".into()))?;
            Some((id, refusal))
        }
        _ => None,
    };
    let now = millis(node.now());
    let mut tx = node.store.begin().await?;
    if !tx
        .fail_transfer(transfer.id, node.outbound.lease_owner(), error, next_attempt_at, dead_reason.is_some(), true)
        .await?
    {
        // The claim expired and another worker owns the transfer now.
        return tx.rollback().await;
    }
    if dead_reason.is_some() {
        Metrics::bump(&node.observed.metrics().dead);
        tx.count("dead_letters", 1).await?;
    }
    if let Some((id, refusal)) = &refusal {
        tx.set_route_state(*id, &transfer.recipients, "refused", now).await?;
        crate::notices::keep_and_route(&mut tx, node, refusal, &node.config.agency.to_string(), None, now, None)
            .await?;
    }
    tx.commit().await?;
    node.outbound.wake_outbox();
    Ok(())
}

/// Whether the record of a next hop's answer may commit without waiting for its sync
/// (`Store::begin_unsynced`): only a hop receipt alone, on the transfer's first attempt.
///
/// A hop receipt is the next hop's promise, kept there durably: if a crash of the machine
/// takes its record back, the transfer is pending again, runs again and gets the same receipt
/// from storage. That holds only while nothing left this node on the strength of the record
/// and the transfer has its whole schedule of attempts left: statuses that came with it are
/// passed on to the sender and mailed to clerks as soon as they are committed, and a transfer
/// taken back after its last attempts could die on one failure, and this node would then
/// sign a refusal for a document the next hop holds, after passing on its delivery. A refusal
/// is signed anew on each attempt: recorded synced, once.
fn may_record_unsynced(kind: ReceiptKind, statuses: usize, failed_attempts: u32) -> bool {
    kind == ReceiptKind::Hop && statuses == 0 && failed_attempts == 0
}

/// Whether a failure to record a hop receipt with the statuses it came with may be blamed on
/// the statuses, so that the hop receipt is recorded again without them. Not a full disk
/// (nothing can be recorded), not a batch that failed as a whole ([`StoreError::Batch`]:
/// nothing of it was kept, whatever caused it), not a `COMMIT` in doubt, and not a log that
/// must be emptied before any write: none of these is the statuses' doing. Then the transfer
/// fails, runs again and gets the statuses again from the next hop's storage, which loses
/// nothing, where recording the hop receipt without them would leave them to a transaction of
/// their own that such a failure may well fail too (they rode in the answer only: the next
/// hop queued no notices for them).
fn statuses_to_blame(error: &StoreError) -> bool {
    !error.is_disk_full()
        && !error.is_in_doubt()
        && !matches!(error, StoreError::Batch(_) | StoreError::LogNotEmptied { .. })
}

/// Records an answered document transfer: `kept` (a hop receipt or refusal from the next hop)
/// stored and routed on, the routes' state set, the transfer finished, all in one transaction.
/// False when nothing was recorded because the transfer's claim was lost (another worker owns
/// it now, and gets the same answer).
async fn record_answer(
    node: &Arc<Node>,
    transfer: &Transfer,
    document: i64,
    kept: &SignedReceipt,
    statuses: &[SignedReceipt],
    route_state: &str,
    state: &str,
) -> Result<bool, StoreError> {
    let now = millis(node.now());
    let mut tx = if may_record_unsynced(kept.receipt.kind, statuses.len(), transfer.attempts) {
        node.store.begin_unsynced().await?
    } else {
        node.store.begin().await?
    };
    if !tx.finish_transfer(transfer.id, node.outbound.lease_owner(), state, now).await? {
        // The claim expired and another worker owns the transfer now.
        tx.rollback().await?;
        return Ok(false);
    }
    let hop = transfer.next_hop.to_string();
    crate::notices::keep_and_route(&mut tx, node, kept, &hop, None, now, None).await?;
    tx.set_route_state(document, &transfer.recipients, route_state, now).await?;
    // After the route's own state: a delivery receipt carried here moves it on to delivered.
    // The statuses are of this document (`carried_statuses`): acted on without reading it.
    let known = Some(crate::notices::Known { id: document, digest: kept.receipt.envelope });
    let mut new = Vec::with_capacity(statuses.len());
    for status in statuses {
        if crate::notices::keep_and_route(&mut tx, node, status, &hop, Some(transfer.next_hop), now, known).await? {
            new.push(status);
        }
    }
    tx.commit().await?;
    statuses_taken(node, new, transfer.next_hop);
    node.outbound.wake_outbox();
    Ok(true)
}

/// Stores, in a transaction of their own, the statuses that came with a hop receipt this
/// worker has just recorded without them (see [`conclude_document`]): the failure of the
/// record that held them may not have been theirs (a row of the hop receipt refused once, a
/// lock or a connection lost). They are kept as if the next hop had sent them as notices
/// (`notices::keep_all`). They rode in the answer only and the transfer is finished, so a
/// failure here loses them: logged, and counted unless the `COMMIT` is in doubt (then they
/// may well be stored).
async fn keep_statuses_apart(node: &Arc<Node>, transfer: &Transfer, statuses: &[SignedReceipt], doc_id: &str) {
    let numbered: Vec<(u32, SignedReceipt)> = (0..).zip(statuses.iter().cloned()).collect();
    let hop = transfer.next_hop;
    match crate::notices::keep_all(node, hop, &numbered, millis(node.now())).await {
        Ok(new) => {
            statuses_taken(node, statuses.iter().zip(new).filter_map(|(s, new)| new.then_some(s)), hop);
            node.outbound.wake_outbox();
        }
        Err(e) if e.is_in_doubt() => {
            tracing::warn!(document = %doc_id, peer = %hop, statuses = statuses.len(), error = %e, "the statuses sent with a hop receipt, stored alone, may or may not be kept (the COMMIT is in doubt)")
        }
        Err(e) => {
            Metrics::bump(&node.observed.metrics().statuses_lost);
            tracing::error!(document = %doc_id, peer = %hop, statuses = statuses.len(), error = %e, "the statuses sent with a hop receipt could not be stored alone either: lost here (the sender's route stays as the hop receipt left it)");
        }
    }
}

/// Logs and counts the statuses taken with a hop receipt from `hop`, once committed.
fn statuses_taken<'s>(node: &Node, new: impl IntoIterator<Item = &'s SignedReceipt>, hop: AgencyCode) {
    let mut count = 0;
    for status in new {
        let r = &status.receipt;
        tracing::info!(document = %r.document, peer = %hop, kind = %r.kind, by = %r.by, "receipt taken with a hop receipt");
        count += 1;
    }
    node.observed.metrics().statuses_with_receipts_in.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
}

/// Sends a document to its next hop: `forward` if its intake handed it over, else read from
/// the database. Records nothing (see [`conclude_document`]).
async fn send_document(
    node: &Arc<Node>,
    transfer: &Transfer,
    id: i64,
    forward: Option<Arc<Forward>>,
) -> Result<(Answer, String), TransferError> {
    let forward = match forward {
        Some(f) => f,
        // Both reads at once: each is a trip to the database's side.
        None => match tokio::join!(node.store.document(id), node.store.attachments(id)) {
            (Ok(document), Ok(attachments)) => Arc::new(Forward {
                doc_id: document.doc_id,
                digest: document.digest,
                envelope: document.envelope,
                attachments,
            }),
            (Err(e), _) | (_, Err(e)) => return Err(TransferError::LocalStorage(e)),
        },
    };
    pass_on(node, transfer.next_hop, &transfer.recipients, forward, None).await
}

/// What a next hop answered to a document, checked: its hop receipt, or its refusal for good.
#[derive(Debug)]
enum Answer {
    /// Taken: the next hop's hop receipt, for this document and these recipients, and the
    /// statuses for the sender that came with it (checked, see [`carried_statuses`]).
    Taken(SignedReceipt, Vec<SignedReceipt>),
    /// Refused for good: the next hop's signed refusal.
    Refused(SignedReceipt),
}

/// Records what became of a document's transfer (of document row `id`): the next hop's
/// answer (kept, the routes' state set, the transfer finished) or the failed attempt, to be
/// retried or given up; false when the outcome could not be written.
async fn conclude_document(
    node: &Arc<Node>,
    transfer: &Transfer,
    id: i64,
    answer: Result<(Answer, String), TransferError>,
) -> bool {
    let hop = transfer.next_hop;
    let outcome = match answer {
        Err(e) => e.into(),
        Ok((answer, doc_id)) => {
            let (kept, statuses, route_state, state) = match answer {
                Answer::Taken(r, statuses) => (r, statuses, "forwarded", "done"),
                Answer::Refused(r) => (r, Vec::new(), "refused", "refused"),
            };
            let mut recorded = match answers::Plain::of(node, transfer, id, &kept, &statuses) {
                Some(plain) => answers::record(node, plain).await,
                None => record_answer(node, transfer, id, &kept, &statuses, route_state, state).await.map(drop),
            };
            // A status that the database refuses (and only it) must not hold back the hop
            // receipt: the transfer would be retried until it died, for a document the next hop
            // holds. The hop receipt is recorded again without them (a storage failure fails
            // that too), then the statuses alone (see `keep_statuses_apart`).
            if let Err(e) = &recorded
                && !statuses.is_empty()
                && statuses_to_blame(e)
            {
                tracing::warn!(document = %doc_id, peer = %hop, error = %e, "the hop receipt and the statuses sent with it could not be stored together; the hop receipt is recorded without them, then they alone");
                recorded = match record_answer(node, transfer, id, &kept, &[], route_state, state).await {
                    Ok(true) => {
                        keep_statuses_apart(node, transfer, &statuses, &doc_id).await;
                        Ok(())
                    }
                    // The claim lost: the worker that owns the transfer gets them again.
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            match recorded {
                Ok(()) if state == "done" => {
                    Metrics::bump(&node.observed.metrics().documents_out);
                    tracing::info!(document = %doc_id, peer = %hop, "document handed over");
                    Outcome::Finished
                }
                Ok(()) => Outcome::Finished,
                Err(e) => TransferError::LocalStorage(e).into(),
            }
        }
    };
    node.observed.telemetry().transfer_attempted(&hop, outcome.label());
    recorded(node, transfer, record(node, transfer, outcome).await)
}

/// Passes a document to `hop` for `recipients` and checks the answer, recording nothing:
/// the hop receipt or refusal (and the document's id, for the log), or why it was not passed
/// on. `asked` when the next hop answered a first attempt with [`NodeResponse::CrlsWanted`]
/// (then the request goes again, once, with those CRLs).
async fn pass_on(
    node: &Arc<Node>,
    hop: AgencyCode,
    recipients: &[AgencyCode],
    forward: Arc<Forward>,
    asked: Option<Asked>,
) -> Result<(Answer, String), TransferError> {
    let doc = &*forward;
    let chains: Vec<Vec<Vec<u8>>> = Envelope::from_bytes(&doc.envelope)
        .and_then(|e| e.headers())
        .map(|h| h.into_iter().map(|h| h.chain).collect())
        .unwrap_or_default();
    let total: u64 = forward.attachments.iter().map(|a| a.attachment.size).sum();
    let resume = total >= crate::protocol::RESUME_MIN_BYTES;
    // The CRLs go by reference (computed once per set of chains); their bytes only when asked.
    let referenced = node.trust.crl_refs_for(&chains);
    let request = NodeRequest::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: recipients.iter().map(ToString::to_string).collect(),
        crls: referenced.refs.clone(),
        crls_asked: asked.as_ref().map(|a| referenced.asked(&a.wanted, &a.previous)).unwrap_or_default(),
        resume,
        statuses_back: true,
    };
    let blobs = node.store.blobs().clone();
    let max_frame = node.config.limits.max_frame_bytes;
    let sending = Arc::clone(&forward);
    let response = node
        .outbound
        .exchange(&hop, &request, node.config.limits.request_time(total), |mut send, mut recv| async move {
            // A resumable delivery is answered twice: first where to continue each attachment
            // from (or at once with a refusal or an earlier hop receipt), then the hop receipt.
            let offsets = if resume {
                match read_frame::<NodeResponse>(&mut recv, max_frame).await {
                    Ok(NodeResponse::ResumeFrom { offsets }) => offsets,
                    Ok(answer) => {
                        let _ = send.reset(0u32.into());
                        return Ok(answer);
                    }
                    Err(error) => return Err(RequestError::Read { hop, error }),
                }
            } else {
                vec![0; sending.attachments.len()]
            };
            let sent = send_attachments(&blobs, &sending.attachments, &offsets, &mut send).await;
            if sent.is_err() {
                // A local failure must not reach the peer as a short (refusable) document.
                let _ = send.reset(1u32.into());
            }
            client::read_answer(&hop, &mut recv, max_frame, sent).await
        })
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            node.observed.neighbour_unreachable(&hop, &e.to_string());
            return Err(TransferError::Transport(e));
        }
    };
    node.observed.neighbour_answered(&hop);
    match response {
        NodeResponse::HopReceipt { receipt, statuses } => {
            let receipt = match SignedReceipt::from_bytes(&receipt) {
                Ok(r) => r,
                Err(error) => return Err(TransferError::MalformedHopReceipt { hop, error }),
            };
            let r = &receipt.receipt;
            let fits = r.kind == ReceiptKind::Hop
                && r.by == hop
                && r.to == node.config.agency
                && r.envelope == doc.digest
                && recipients.iter().all(|x| r.recipients.contains(x));
            if !fits {
                return Err(TransferError::HopReceiptMismatch { hop });
            }
            if let Err(error) = crate::notices::verify_receipt(node, &receipt, &[]) {
                return Err(TransferError::HopReceiptUnverified { hop, error });
            }
            // The hop receipt is kept here, with the node it was given to; the sender's `track`
            // asks for it along the path (`crate::path`).
            let statuses = carried_statuses(node, hop, recipients, doc, &statuses);
            Ok((Answer::Taken(receipt, statuses), doc.doc_id.clone()))
        }
        NodeResponse::Refused { receipt } => {
            let refusal = match SignedReceipt::from_bytes(&receipt) {
                Ok(r)
                    if r.receipt.kind == ReceiptKind::Status(StatusCode::Refused)
                        && r.receipt.by == hop
                        && r.receipt.envelope == doc.digest =>
                {
                    r
                }
                _ => return Err(TransferError::UnusableRefusal { hop }),
            };
            if let Err(error) = crate::notices::verify_receipt(node, &refusal, &[]) {
                return Err(TransferError::RefusalUnverified { hop, error });
            }
            let reason = refusal.receipt.note.clone().unwrap_or_default();
            tracing::warn!(document = %doc.doc_id, peer = %hop, reason = %reason, "document refused by the next hop");
            Ok((Answer::Refused(refusal), doc.doc_id.clone()))
        }
        NodeResponse::CrlsWanted { sha256 } if asked.is_none() => {
            tracing::debug!(document = %doc.doc_id, peer = %hop, crls = sha256.len(), "the next hop asks for CRLs; sending again with them");
            let asked = Asked { wanted: sha256, previous: referenced.refs.clone() };
            Box::pin(pass_on(node, hop, recipients, forward.clone(), Some(asked))).await
        }
        NodeResponse::Error { kind, message } => Err(TransferError::answered(hop, kind, message)),
        other => Err(TransferError::UnexpectedAnswer { hop, answer: other.to_string(), what: "a document" }),
    }
}

/// The statuses a next hop sent with its hop receipt (`NodeResponse::HopReceipt`), each
/// judged on its own, more narrowly than a notice: a 01 or 02 signed by that hop, of this
/// document (envelope and id), addressed to its sender, for recipients of this transfer only,
/// verifying with this node's CRLs (as the hop receipt beside it), and one its signer may say
/// ([`crate::notices::standing`]). At most [`crate::protocol::MAX_NOTICES`] are read (a node of
/// this version sends more as notices). One that fails is left out with a warning and the
/// rest kept: the hop receipt stands on its own (the document is the next hop's either way),
/// and the statuses are that hop's word, which a faulty hop could as well have left unsent.
fn carried_statuses(
    node: &Node,
    hop: AgencyCode,
    recipients: &[AgencyCode],
    doc: &Forward,
    statuses: &[ByteBuf],
) -> Vec<SignedReceipt> {
    if statuses.len() > crate::protocol::MAX_NOTICES {
        tracing::warn!(document = %doc.doc_id, peer = %hop, statuses = statuses.len(), "more statuses with a hop receipt than a notice request may hold; none kept");
        return Vec::new();
    }
    statuses
        .iter()
        .filter_map(|bytes| {
            let checked = SignedReceipt::from_bytes(bytes).map_err(|e| e.to_string()).and_then(|s| {
                let r = &s.receipt;
                let fits = matches!(r.kind, ReceiptKind::Status(StatusCode::Arrived | StatusCode::Refused))
                    && r.by == hop
                    && r.envelope == doc.digest
                    && r.document.to_string() == doc.doc_id
                    && r.to == r.document.sender
                    && r.recipients.iter().all(|x| recipients.contains(x));
                if !fits {
                    return Err(format!(
                        "a {} by {} to {} for {}: not a status of this transfer for its sender from this hop",
                        r.kind,
                        r.by,
                        r.to,
                        r.recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
                crate::notices::verify_receipt(node, &s, &[])?;
                crate::notices::standing(node, r)?;
                Ok(s)
            });
            match checked {
                Ok(s) => Some(s),
                Err(reason) => {
                    tracing::warn!(document = %doc.doc_id, peer = %hop, reason = %reason, "status sent with a hop receipt left out");
                    None
                }
            }
        })
        .collect()
}

/// Sends a document's stored attachments in manifest order, each from its offset (what the
/// next hop kept of an interrupted attempt), then finishes the stream. Reads go through
/// [`FORWARD_READ`]-byte buffers: each read of a tokio file is a trip to the blocking pool,
/// and `tokio::io::copy` reads 8 KiB at a time (131,072 trips for 1 GiB).
async fn send_attachments(
    blobs: &crate::storage::blobs::BlobStore,
    attachments: &[crate::storage::inline::StoredAttachment],
    offsets: &[u64],
    send: &mut quinn::SendStream,
) -> Result<(), SendError> {
    if offsets.len() != attachments.len() {
        return Err(SendError::OffsetCount { offsets: offsets.len(), attachments: attachments.len() });
    }
    for (a, &offset) in attachments.iter().zip(offsets) {
        let name = &a.attachment.name;
        if offset > a.attachment.size {
            return Err(SendError::OffsetPastEnd { name: name.clone(), offset, size: a.attachment.size });
        }
        let mut reader = blobs
            .reader(a, offset, FORWARD_READ)
            .await
            .map_err(|error| SendError::AttachmentOpen { name: name.clone(), error })?;
        tokio::io::copy_buf(&mut reader, send).await.map_err(SendError::Stream)?;
    }
    send.flush().await.map_err(SendError::Stream)?;
    Ok(send.finish()?)
}

/// Sends the receipts of notice transfers `batch` (all to one neighbour), as few requests as
/// [`MAX_NOTICE_BATCH_BYTES`] allows; the outcome of each, in order. `Finished` means the
/// neighbour committed it (recording that here is the caller's).
async fn send_notices(node: &Arc<Node>, batch: &[Transfer]) -> Vec<Outcome> {
    let Some(hop) = batch.first().map(|t| t.next_hop) else { return Vec::new() };
    let mut outcomes: Vec<Option<Outcome>> = batch.iter().map(|_| None).collect();
    // (index in `batch`, receipt bytes, its chain), cut into requests by size.
    let mut chunks: Vec<Vec<NoticeItem>> = vec![Vec::new()];
    let mut chunk_bytes = 0;
    // The batch's receipts in one read; one that read does not return (or all of them, if it
    // fails) is read on its own, so that each transfer gets its own error.
    let ids: Vec<i64> = batch
        .iter()
        .filter_map(|t| match t.kind {
            TransferKind::Notice(id) => Some(id),
            TransferKind::Document(_) => None,
        })
        .collect();
    let mut read: HashMap<i64, Vec<u8>> = match node.store.receipts(&ids).await {
        Ok(found) => found.into_iter().map(|r| (r.id, r.bytes)).collect(),
        Err(e) => {
            tracing::warn!(peer = %hop, receipts = ids.len(), error = %e, "the receipts of a batch of notices could not be read at once; reading them one by one");
            HashMap::new()
        }
    };
    for (i, transfer) in batch.iter().enumerate() {
        let TransferKind::Notice(id) = transfer.kind else {
            outcomes[i] = Some(TransferError::NotSent("not a notice").into());
            continue;
        };
        let bytes = match read.remove(&id) {
            Some(bytes) => Ok(bytes),
            None => node.store.receipt(id).await.map(|r| r.bytes),
        };
        match bytes {
            Ok(bytes) => {
                let chain = SignedReceipt::from_bytes(&bytes).map(|r| r.chain_der().to_vec()).unwrap_or_default();
                let size = bytes.len() + chain.iter().map(Vec::len).sum::<usize>();
                if chunk_bytes + size > MAX_NOTICE_BATCH_BYTES && chunks.last().is_some_and(|c| !c.is_empty()) {
                    chunks.push(Vec::new());
                    chunk_bytes = 0;
                }
                chunk_bytes += size;
                if let Some(chunk) = chunks.last_mut() {
                    chunk.push((i, bytes, chain));
                }
            }
            Err(e) => outcomes[i] = Some(TransferError::LocalStorage(e).into()),
        }
    }
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        match send_notice_request(node, hop, chunk, None).await {
            Ok(each) => {
                for ((i, _, _), outcome) in chunk.iter().zip(each) {
                    outcomes[*i] = Some(outcome);
                }
            }
            // The request as a whole was not taken (the neighbour could not read or store it):
            // each receipt on its own, so that one cannot hold back or doom the others.
            Err(whole) if chunk.len() > 1 => {
                tracing::warn!(peer = %hop, receipts = chunk.len(), error = %whole.reason(), "a batch of notices was not taken; sending them one by one");
                for item in chunk {
                    let outcome = match send_notice_request(node, hop, std::slice::from_ref(item), None).await {
                        Ok(mut each) => each.pop().unwrap_or_else(|| TransferError::NotSent("no answer").into()),
                        Err(one) => one,
                    };
                    outcomes[item.0] = Some(outcome);
                }
            }
            Err(whole) => outcomes[chunk[0].0] = Some(whole),
        }
    }
    outcomes.into_iter().map(|o| o.unwrap_or_else(|| TransferError::NotSent("not sent").into())).collect()
}

/// A notice to send: its transfer's index in the batch, the receipt's bytes, its seal chain.
type NoticeItem = (usize, Vec<u8>, Vec<Vec<u8>>);

/// Most bytes of receipts and their chains in one `NodeRequest::Notices` (with their CRLs
/// it stays well inside the default 4 MiB frame, and inside any neighbour's frame of 2 MiB or
/// more); a larger batch goes in several requests, a single receipt always in one.
const MAX_NOTICE_BATCH_BYTES: usize = 1024 * 1024;

/// One `NodeRequest::Notices` of `items` to `hop`: each receipt's outcome, in order, or the
/// outcome of a request not taken as a whole (`Retry` for a transient error or a broken
/// exchange, `Permanent` for a refusal). `asked` when `hop` answered a first attempt with
/// [`NodeResponse::CrlsWanted`]: the request goes again, once, with those CRLs.
async fn send_notice_request(
    node: &Arc<Node>,
    hop: AgencyCode,
    items: &[NoticeItem],
    asked: Option<Asked>,
) -> Result<Vec<Outcome>, Outcome> {
    let mut chains: Vec<Vec<Vec<u8>>> = Vec::new();
    for (_, _, chain) in items {
        if !chains.contains(chain) {
            chains.push(chain.clone());
        }
    }
    let referenced = node.trust.crl_refs_for(&chains);
    let request = NodeRequest::Notices {
        receipts: items.iter().map(|(_, bytes, _)| ByteBuf::from(bytes.clone())).collect(),
        crls: referenced.refs.clone(),
        crls_asked: asked.as_ref().map(|a| referenced.asked(&a.wanted, &a.previous)).unwrap_or_default(),
    };
    let response = node.outbound.simple_request(&hop, &request).await;
    match &response {
        Ok(_) => node.observed.neighbour_answered(&hop),
        Err(e) => node.observed.neighbour_unreachable(&hop, &e.to_string()),
    }
    tracing::debug!(peer = %hop, receipts = items.len(), answer = %response.as_ref().map_or_else(ToString::to_string, ToString::to_string), "notices sent");
    match response {
        Ok(NodeResponse::NoticesTaken { refused }) => Ok((0..items.len())
            .map(|k| match refused.iter().find(|(index, _, _)| usize::try_from(*index).ok() == Some(k)) {
                None => Outcome::Finished,
                Some((_, kind, message)) => TransferError::answered(hop, *kind, message.clone()).into(),
            })
            .collect()),
        Ok(NodeResponse::CrlsWanted { sha256 }) if asked.is_none() => {
            tracing::debug!(peer = %hop, crls = sha256.len(), "the neighbour asks for CRLs; sending the notices again with them");
            let asked = Asked { wanted: sha256, previous: referenced.refs.clone() };
            Box::pin(send_notice_request(node, hop, items, Some(asked))).await
        }
        Ok(NodeResponse::Error { kind, message }) => Err(TransferError::answered(hop, kind, message).into()),
        Ok(other) => Err(TransferError::UnexpectedAnswer { hop, answer: other.to_string(), what: "receipts" }.into()),
        Err(e) => Err(TransferError::Transport(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender gathering notices for a neighbour sends as soon as a batch's worth waits, not
    /// when the linger ends: the 64th notice queued tells it (and a gathering that starts
    /// after it sees the full queue and does not wait).
    #[tokio::test]
    async fn a_batchs_worth_of_notices_ends_the_gathering() {
        let hop: AgencyCode = "000.00.41.H49".parse().unwrap();
        let notice =
            |id| Transfer { id, kind: TransferKind::Notice(id), next_hop: hop, recipients: Vec::new(), attempts: 0 };
        let queues = NoticeQueues::default();
        let linger = Duration::from_secs(60);
        assert!(queues.gather_until(&hop, linger).is_none(), "nothing waits");
        for id in 1..MAX_NOTICES as i64 {
            queues.push(notice(id));
        }
        let (until, full) = queues.gather_until(&hop, linger).expect("fewer than a batch gathers");
        assert!(until > tokio::time::Instant::now() + Duration::from_secs(59));
        assert!(queues.gather_until(&hop, Duration::ZERO).is_none(), "no linger, no gathering");
        let told = tokio::spawn(async move { full.notified().await });
        queues.push(notice(MAX_NOTICES as i64));
        tokio::time::timeout(Duration::from_secs(10), told).await.expect("the full queue tells the sender").unwrap();
        assert!(queues.gather_until(&hop, linger).is_none(), "a batch's worth goes at once");
        assert_eq!(queues.next_batch(&hop, false).map(|b| b.len()), Some(MAX_NOTICES));
    }

    /// Only a hop receipt alone, on a first attempt, is recorded without waiting for its
    /// sync: statuses with it leave this node once committed, and a transfer taken back after
    /// failed attempts could die on one more failure and be refused here.
    #[test]
    fn only_a_hop_receipt_alone_on_a_first_attempt_is_recorded_unsynced() {
        let arrived = ReceiptKind::Status(pki::document::StatusCode::Arrived);
        let refused = ReceiptKind::Status(pki::document::StatusCode::Refused);
        assert!(may_record_unsynced(ReceiptKind::Hop, 0, 0));
        assert!(!may_record_unsynced(ReceiptKind::Hop, 1, 0), "statuses carried with it");
        assert!(!may_record_unsynced(ReceiptKind::Hop, 0, 1), "after a failed attempt");
        assert!(!may_record_unsynced(refused, 0, 0), "a refusal");
        assert!(!may_record_unsynced(arrived, 0, 0));
    }

    /// A batch that failed as a whole keeps the statuses with the hop receipt: the transfer
    /// fails and runs again, instead of recording the hop receipt without them for good.
    #[test]
    fn a_failed_batch_is_not_blamed_on_the_statuses() {
        let batch = StoreError::Batch(std::sync::Arc::new(StoreError::Corrupt("COMMIT failed".into())));
        assert!(!statuses_to_blame(&batch));
        assert!(statuses_to_blame(&StoreError::Corrupt("a status that does not fit".into())));
        let in_doubt = StoreError::CommitInDoubt {
            commit: Box::new(StoreError::Corrupt("connection lost".into())),
            why: crate::storage::InDoubt::NoAnswer,
        };
        assert!(!statuses_to_blame(&in_doubt));
        let log =
            StoreError::LogNotEmptied { log: "node.db-wal".into(), cause: crate::storage::LogCheckpointError::Busy(3) };
        assert!(!statuses_to_blame(&log));
    }

    /// Whether each variant is retried, and why; a match without a wildcard, so a new variant
    /// does not compile until someone decides here whether it is retried or given up.
    fn should_retry(e: &TransferError) -> bool {
        match e {
            // Connecting, the stream, a timeout: the way may clear.
            TransferError::Transport(_) => true,
            // Our own disk or database: the operator may fix it.
            TransferError::LocalStorage(_) => true,
            // The neighbour said so.
            TransferError::Unavailable { .. } => true,
            // The neighbour said no, and would say it again.
            TransferError::Rejected { .. } => false,
            // A hop receipt that is broken, does not fit or does not verify (CRLs may come,
            // a bug may be fixed): the neighbour keeps the document and answers a retry from
            // its storage.
            TransferError::MalformedHopReceipt { .. } => true,
            TransferError::HopReceiptMismatch { .. } => true,
            TransferError::HopReceiptUnverified { .. } => true,
            // It refused: a refusal we cannot use is still a refusal.
            TransferError::UnusableRefusal { .. } => false,
            TransferError::RefusalUnverified { .. } => false,
            // Something that is no answer to the request: asked again.
            TransferError::UnexpectedAnswer { .. } => true,
            // Our own bookkeeping left it unsent this round.
            TransferError::NotSent(_) => true,
        }
    }

    fn hop() -> AgencyCode {
        "000.00.41.H49".parse().unwrap()
    }

    fn one_of_each() -> Vec<TransferError> {
        let hop = hop();
        vec![
            TransferError::Transport(RequestError::Unreachable {
                hop,
                problems: vec![ConnectError::NothingResolved { addresses: "nowhere:1".into() }],
            }),
            TransferError::LocalStorage(StoreError::Corrupt("a row".into())),
            TransferError::Unavailable { hop, message: "busy".into() },
            TransferError::Rejected { hop, message: "malformed envelope".into() },
            TransferError::MalformedHopReceipt { hop, error: pki::document::ReceiptError::Format("x".into()) },
            TransferError::HopReceiptMismatch { hop },
            TransferError::HopReceiptUnverified { hop, error: "revoked".into() },
            TransferError::UnusableRefusal { hop },
            TransferError::RefusalUnverified { hop, error: "revoked".into() },
            TransferError::UnexpectedAnswer { hop, answer: "pong".into(), what: "a document" },
            TransferError::NotSent("not sent"),
        ]
    }

    #[test]
    fn retried_unless_the_neighbour_said_no() {
        let all = one_of_each();
        assert_eq!(all.len(), 11, "one sample per variant");
        for e in &all {
            assert_eq!(e.is_transient(), should_retry(e), "{e:?}");
        }
    }

    #[test]
    fn the_metric_labels_stay_finished_retry_refused() {
        assert_eq!(Outcome::Finished.label(), "finished");
        assert_eq!(Outcome::Finished.reason(), "");
        for e in one_of_each() {
            let expected = if should_retry(&e) { "retry" } else { "refused" };
            let text = e.to_string();
            let outcome = Outcome::from(e);
            assert_eq!(outcome.label(), expected, "{outcome:?}");
            assert_eq!(outcome.reason(), text);
        }
    }

    #[test]
    fn an_error_answer_is_retried_only_when_unavailable() {
        let unavailable = TransferError::answered(hop(), ErrorKind::Unavailable, "full".into());
        assert!(unavailable.is_transient());
        assert_eq!(unavailable.to_string(), format!("{}: full", hop()));
        let bad = TransferError::answered(hop(), ErrorKind::BadRequest, "no".into());
        assert!(!bad.is_transient());
        assert_eq!(bad.to_string(), format!("{}: no", hop()));
    }

    /// The texts of failed requests the outbox records, as the strings built before
    /// `RequestError` was a type.
    #[test]
    fn request_error_texts_are_the_ones_recorded() {
        let hop = hop();
        let addr: std::net::SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let cases = [
            (RequestError::NotNeighbour(hop), format!("{hop} is not a configured neighbour")),
            (
                RequestError::Unreachable {
                    hop,
                    problems: vec![
                        ConnectError::NothingResolved { addresses: "a:1, b:2".into() },
                        ConnectError::TimedOut { addr, after: Duration::from_secs(5) },
                    ],
                },
                format!("cannot connect to {hop}: a:1, b:2 resolves to nothing; 127.0.0.1:4433: timed out after 5s"),
            ),
            (
                RequestError::TimedOut { hop, after: Duration::from_millis(1500) },
                format!("request to {hop} timed out after 1s 500ms"),
            ),
            (
                RequestError::CrlsOnly { hop, reason: "no CRL".into() },
                format!(
                    "{hop}'s certificate cannot be checked for revocation here (no CRL); nothing but CRLs is exchanged with it until this node has fresh CRLs"
                ),
            ),
            (
                RequestError::Send {
                    hop,
                    error: SendError::OffsetPastEnd { name: "a.pdf".into(), offset: 9, size: 4 },
                },
                format!("sending to {hop}: the next hop would resume \"a.pdf\" at 9, past its 4 bytes"),
            ),
            (
                RequestError::Read { hop, error: crate::protocol::FrameError::Cbor("x".into()) },
                format!("reading the answer of {hop}: malformed frame: x"),
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
            assert!(TransferError::Transport(e).is_transient());
        }
    }

    /// The texts the outbox records, as the strings built before the types were.
    #[test]
    fn texts_are_the_ones_recorded() {
        let hop = hop();
        let cases = [
            (
                TransferError::HopReceiptMismatch { hop },
                format!("{hop} answered with a hop receipt that does not match the transfer"),
            ),
            (
                TransferError::HopReceiptUnverified { hop, error: "e".into() },
                format!("{hop}'s hop receipt does not verify: e"),
            ),
            (TransferError::UnusableRefusal { hop }, format!("{hop} refused with an unusable refusal")),
            (
                TransferError::RefusalUnverified { hop, error: "e".into() },
                format!("{hop} refused, but its refusal does not verify: e"),
            ),
            (
                TransferError::UnexpectedAnswer { hop, answer: "pong".into(), what: "receipts" },
                format!("{hop} answered pong to receipts"),
            ),
            (TransferError::LocalStorage(StoreError::Corrupt("a row".into())), "stored data is damaged: a row".into()),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }
}
