//! Transfers handed from a document's intake straight to the outbox, with the document.
//!
//! A document taken for a next hop is queued in the outbox by its intake's own transaction.
//! The outbox would find the transfer with its next claim, a read of the outbox, then read the
//! document and its attachments back from the database to send them: two trips to the
//! database, and on every hop about a third of a millisecond between the commit and the send.
//! Once the intake's commit returned, it hands the new transfers to the outbox together with
//! the document it still holds in memory ([`super::Client::hand_over`]); the outbox starts them
//! at its next turn, before it claims anything else.
//!
//! A hand-off is a shortcut and nothing more: the transfer is durable in the outbox already,
//! due [`HANDOFF_GRACE`] after its intake. The outbox starts a hand-off only before that
//! time, when no claim can have taken the row; one it did not start by then (a backlog behind
//! a slow next hop, this queue full, the node stopped or crashed) is claimed from the database
//! once due, as any other. On PostgreSQL a hand-off is claimed by id first
//! (`Store::claim_handed`; the claims that wait go together, [`claim`]), so one that another
//! process of a scaled-out node holds is left to it. One the outbox starts is run as a claimed transfer is: its outcome is recorded the same
//! way, and the same guard keeps it from running twice in this process. It leaves
//! `CLAIM_AT_LEAST` of the outbox's places to the claims, so that notices and retries due in
//! the database do not wait behind a backlog of hand-offs.
//!
//! The document of a hand-off that fell due before the outbox started it stays here for a
//! while ([`Handoffs::keep_for_claim`]), for the claim that takes its row from the database
//! ([`Handoffs::claimed`]): the claim decides that the transfer runs here, as for any row, and
//! the bytes it would read back (an envelope and its attachments' rows, stored once and never
//! changed) are the ones held. Under a backlog (a clerk's burst taken faster than the next
//! hop takes it) most transfers outlive the grace: 76 % of them in the one-hop benchmark,
//! each read back in two statements.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use crate::Node;
use crate::gather::{self, Gather, Waiting};
use crate::storage::inline::StoredAttachment;
use crate::storage::{Backend, StoreError, Transfer, millis};

/// At most this many transfers wait in the queue. Under load the intake may take documents
/// faster than a next hop takes them: the transfers the outbox has no place for yet (beyond
/// its 128) wait here, in order, as they would wait in the database, until they fall due;
/// from then on the claims take them from the database (the documents kept for them, see
/// [`Handoffs::keep_for_claim`]). A
/// hand-off beyond this bound is dropped at once, its transfer claimed once due.
pub(crate) const MAX_HANDED: usize = 65_536;

/// At most this many bytes of documents (envelopes and attachments kept in the database) are
/// held by the transfers waiting in the queue; a transfer queued beyond it waits without its
/// document and reads it back when it starts, as a claimed one does.
pub(crate) const MAX_HANDED_BYTES: usize = 16 << 20;

/// A transfer to be handed over is queued due this long after its intake
/// (`Tx::enqueue_due`). Until then the outbox's claims leave it alone: under load the outbox
/// claims all the time, and a claim in the instant between the intake's commit and its
/// hand-off would send the transfer reading it back, the hand-off then skipped (most of the
/// sends, measured). A hand-off that never comes (the queue was full, the node stopped or
/// crashed) delays the transfer by at most this.
pub const HANDOFF_GRACE: Duration = Duration::from_secs(1);

/// How long the document of a hand-off that fell due unstarted is kept for its claim: the
/// claims take the oldest rows first, so one not claimed by then (another process of a
/// scaled-out node took it) will not be.
const KEPT_FOR: Duration = Duration::from_secs(60);

/// Hand-offs due within this much after the first one not due yet are still looked at by
/// [`Handoffs::fall_due`]: they wait in the order of their commits, and each is due
/// [`HANDOFF_GRACE`] after a moment read before its commit, so a few may be out of order.
const DUE_SKEW_MS: i64 = 500;

/// A stored document as the outbox sends it: what it would otherwise read back.
#[derive(Debug)]
pub struct Forward {
    /// The document's id, for the log.
    pub doc_id: String,
    /// The envelope's SHA-256, which the next hop's receipt must name.
    pub digest: [u8; 32],
    /// The envelope as stored.
    pub envelope: Vec<u8>,
    /// Its attachments in manifest order, as `Store::attachments` reads them.
    pub attachments: Vec<StoredAttachment>,
}

/// A transfer just queued by an intake, with its document.
#[derive(Debug)]
pub struct Handed {
    /// The outbox row, as a claim would return it.
    pub transfer: Transfer,
    /// Shared by the transfers of one document to several next hops; `None` once the queue
    /// held [`MAX_HANDED_BYTES`] (the document is read back when the transfer starts).
    pub forward: Option<Arc<Forward>>,
    /// When the row falls due (ms), [`HANDOFF_GRACE`] after it was queued: from then on the
    /// outbox's claims may take it, and the hand-off is no longer started.
    pub due: i64,
}

impl Handed {
    /// The bytes of documents this entry holds.
    fn bytes(&self) -> usize {
        self.forward
            .as_ref()
            .map_or(0, |f| f.envelope.len() + f.attachments.iter().map(StoredAttachment::inline_len).sum::<usize>())
    }
}

/// The transfers handed over and not yet started, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Handoffs(StdMutex<Queue>);

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<Handed>,
    /// [`Handed::bytes`] of those waiting.
    bytes: usize,
    /// The documents of hand-offs that fell due unstarted, by transfer, for their claim; at
    /// most [`MAX_HANDED`] of them and [`MAX_HANDED_BYTES`] (a budget of their own, beside the
    /// queue's), each for [`KEPT_FOR`]; beyond the bounds a document is not kept (the oldest
    /// are claimed first).
    due: HashMap<i64, (Arc<Forward>, usize)>,
    /// The transfers of `due` in the order they were kept, with when (some may be claimed
    /// already).
    due_order: VecDeque<(i64, std::time::Instant)>,
    /// The bytes of `due`.
    due_bytes: usize,
}

impl Handoffs {
    /// Queues `handed`, as many as fit under [`MAX_HANDED`], with their documents while they
    /// fit under [`MAX_HANDED_BYTES`]; returns how many were queued.
    pub(crate) fn push(&self, handed: Vec<Handed>) -> usize {
        let Ok(mut queue) = self.0.lock() else { return 0 };
        let mut kept = 0;
        for mut h in handed {
            if queue.waiting.len() >= MAX_HANDED {
                break;
            }
            if queue.bytes + h.bytes() > MAX_HANDED_BYTES {
                h.forward = None;
            }
            queue.bytes += h.bytes();
            queue.waiting.push_back(h);
            kept += 1;
        }
        kept
    }

    /// Takes up to `at_most` of the oldest transfers handed over.
    pub(crate) fn take(&self, at_most: usize) -> Vec<Handed> {
        let Ok(mut queue) = self.0.lock() else { return Vec::new() };
        let n = at_most.min(queue.waiting.len());
        let taken: Vec<Handed> = queue.waiting.drain(..n).collect();
        queue.bytes -= taken.iter().map(Handed::bytes).sum::<usize>();
        taken
    }

    /// Keeps the documents of hand-offs that fell due before they started, for the claims
    /// that will take their rows (see the module's doc); the oldest kept are dropped beyond
    /// the bounds.
    pub(crate) fn keep_for_claim(&self, past_due: Vec<Handed>) {
        let Ok(mut queue) = self.0.lock() else { return };
        queue.keep(past_due);
    }

    /// Moves the hand-offs waiting that are due at `now` (ms) to those kept for their claims:
    /// from now on a claim may take their rows. (They wait in the order of their intakes, each
    /// due [`HANDOFF_GRACE`] after it.)
    pub(crate) fn fall_due(&self, now: i64) {
        let Ok(mut queue) = self.0.lock() else { return };
        let n = queue.waiting.iter().take_while(|h| h.due <= now + DUE_SKEW_MS).count();
        if !queue.waiting.iter().take(n).any(|h| h.due <= now) {
            return;
        }
        let (past_due, later): (Vec<Handed>, Vec<Handed>) = queue.waiting.drain(..n).partition(|h| h.due <= now);
        for h in later.into_iter().rev() {
            queue.waiting.push_front(h);
        }
        queue.bytes -= past_due.iter().map(Handed::bytes).sum::<usize>();
        queue.keep(past_due);
    }

    /// The document kept for transfer `id`, if its hand-off fell due unstarted (taken: a
    /// claim runs a transfer once).
    pub(crate) fn claimed(&self, id: i64) -> Option<Arc<Forward>> {
        let Ok(mut queue) = self.0.lock() else { return None };
        let (forward, bytes) = queue.due.remove(&id)?;
        queue.due_bytes -= bytes;
        Some(forward)
    }
}

impl Queue {
    /// See [`Handoffs::keep_for_claim`].
    fn keep(&mut self, past_due: Vec<Handed>) {
        let queue = self;
        let now = std::time::Instant::now();
        // Those kept longer than `KEPT_FOR` go first, and the ids claimed since with them.
        while let Some((id, at)) = queue.due_order.front().copied()
            && (now.duration_since(at) >= KEPT_FOR || !queue.due.contains_key(&id))
        {
            queue.due_order.pop_front();
            if let Some((_, bytes)) = queue.due.remove(&id) {
                queue.due_bytes -= bytes;
            }
        }
        for h in past_due {
            let bytes = h.bytes();
            let Some(forward) = h.forward else { continue };
            if queue.due.len() >= MAX_HANDED || queue.due_bytes + bytes > MAX_HANDED_BYTES {
                continue;
            }
            if let Some((_, old)) = queue.due.insert(h.transfer.id, (forward, bytes)) {
                queue.due_bytes -= old;
            }
            queue.due_bytes += bytes;
            queue.due_order.push_back((h.transfer.id, now));
        }
        // Ids claimed already keep their place in the order: dropped when they are most.
        if queue.due_order.len() > 2 * queue.due.len() + 64 {
            let Queue { due, due_order, .. } = queue;
            due_order.retain(|(id, _)| due.contains_key(id));
        }
    }
}

/// Most claims made in one statement.
const MAX_CLAIMS: usize = 64;

/// Most claim statements at once.
const CLAIMERS: usize = 2;

/// Claims of hand-offs waiting to be made together: each the ids of one hand-over, answered
/// with those claimed.
pub(crate) type Claims = Gather<Vec<i64>, Vec<i64>>;

/// An empty queue of claims.
pub(crate) fn claims() -> Claims {
    Gather::new(MAX_CLAIMS, CLAIMERS)
}

/// Claims for this process the outbox rows `ids` handed over (or passed on before their
/// intake's commit, see `cut_through`): those it may run (see `Store::claim_handed`). On
/// PostgreSQL a claim is a transaction of its own, four statements; a document passed on
/// before its commit is claimed when its intake's commit returns, one claim a document at a
/// node in the middle of a path, so the claims that come while one is made wait and go
/// together, one statement for them all. SQLite claims nothing.
pub(crate) async fn claim(node: &Arc<Node>, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
    if ids.is_empty() || node.store.backend() == Backend::Sqlite {
        return Ok(ids.to_vec());
    }
    gather::submit(node, |n| n.outbound.claims(), ids.to_vec(), claim_together).await
}

/// Claims the ids of a batch in one statement (or each hand-over's alone if that fails), and
/// tells each waiter its own claimed.
async fn claim_together(node: Arc<Node>, batch: Vec<Waiting<Vec<i64>, Vec<i64>>>) {
    let claim_now = |ids: Vec<i64>| {
        let node = Arc::clone(&node);
        async move {
            let now = millis(node.now());
            let until = now + node.config.limits.outbox_lease.as_millis() as i64;
            node.store.claim_handed(node.outbound.lease_owner(), now, until, &ids).await
        }
    };
    if batch.len() > 1 {
        let all: Vec<i64> = batch.iter().flat_map(|w| w.item.iter().copied()).collect();
        match claim_now(all).await {
            Ok(claimed) => {
                let claimed: std::collections::HashSet<i64> = claimed.into_iter().collect();
                for w in batch {
                    let mine = w.item.iter().copied().filter(|id| claimed.contains(id)).collect();
                    w.tell(Ok(mine));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(claims = batch.len(), error = %e, "claiming hand-offs together failed; claiming each alone")
            }
        }
    }
    for w in batch {
        let outcome = claim_now(w.item.clone()).await;
        w.tell(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::TransferKind;

    fn handed(id: i64, forward: &Arc<Forward>) -> Handed {
        Handed {
            transfer: Transfer {
                id,
                kind: TransferKind::Document(1),
                next_hop: "000.00.41.H49".parse().unwrap(),
                recipients: vec!["000.01.42.H49".parse().unwrap()],
                attempts: 0,
            },
            forward: Some(Arc::clone(forward)),
            due: 0,
        }
    }

    fn forward(bytes: usize) -> Arc<Forward> {
        Arc::new(Forward { doc_id: "d".into(), digest: [0; 32], envelope: vec![0; bytes], attachments: Vec::new() })
    }

    #[test]
    fn the_queue_keeps_at_most_max_handed_and_gives_the_oldest_first() {
        let (queue, f) = (Handoffs::default(), forward(0));
        assert_eq!(queue.push((0..MAX_HANDED as i64 - 1).map(|i| handed(i, &f)).collect()), MAX_HANDED - 1);
        // Two more: one fits, one is left to the outbox's claim after the grace.
        assert_eq!(queue.push(vec![handed(-1, &f), handed(-2, &f)]), 1);
        let first: Vec<i64> = queue.take(3).iter().map(|h| h.transfer.id).collect();
        assert_eq!(first, [0, 1, 2]);
        let rest: Vec<i64> = queue.take(usize::MAX).iter().map(|h| h.transfer.id).collect();
        assert_eq!(rest.len(), MAX_HANDED - 3);
        assert_eq!(rest.last(), Some(&-1));
        assert!(queue.take(1).is_empty());
        // Room again once taken.
        assert_eq!(queue.push(vec![handed(-3, &f)]), 1);
    }

    #[test]
    fn a_document_that_fell_due_is_kept_for_its_claim_within_the_bounds() {
        let (queue, f) = (Handoffs::default(), forward(MAX_HANDED_BYTES / 4));
        queue.keep_for_claim((0..5).map(|i| handed(i, &f)).collect());
        // Five of a quarter each: the last is not kept (the oldest are claimed first).
        assert!(queue.claimed(4).is_none());
        assert!(queue.claimed(0).is_some());
        assert!(queue.claimed(0).is_none(), "taken once");
        assert!(queue.claimed(99).is_none(), "never kept");
        // Room for one more after the claim of 0.
        queue.keep_for_claim(vec![handed(5, &f)]);
        assert!([1, 2, 3, 5].iter().all(|id| queue.claimed(*id).is_some()));
        // Without its document (beyond the queue's bytes) nothing is kept.
        let mut bare = handed(6, &f);
        bare.forward = None;
        queue.keep_for_claim(vec![bare]);
        assert!(queue.claimed(6).is_none());
        let small = forward(10);
        let (first, last) = (1_000, 1_000 + MAX_HANDED as i64 + 1);
        queue.keep_for_claim((first..=last).map(|i| handed(i, &small)).collect());
        assert!(queue.claimed(last).is_none() && queue.claimed(last - 1).is_none(), "beyond the count");
        assert!(queue.claimed(first).is_some() && queue.claimed(last - 2).is_some());
    }

    #[test]
    fn hand_offs_that_fall_due_are_kept_for_their_claims() {
        let (queue, f) = (Handoffs::default(), forward(100));
        let at = |id, due| Handed { due, ..handed(id, &f) };
        // In the order of their commits, the due times a little out of order.
        queue.push(vec![at(1, 10), at(2, 30), at(3, 20), at(4, 2_000), at(5, 15)]);
        queue.fall_due(20);
        assert!([1, 3].iter().all(|id| queue.claimed(*id).is_some()));
        assert!(queue.claimed(2).is_none(), "not due yet: still the hand-off's");
        let left: Vec<i64> = queue.take(usize::MAX).iter().map(|h| h.transfer.id).collect();
        assert_eq!(left, [2, 4, 5], "in order; one due beyond a later one by more than the skew stays");
        assert!(queue.push(vec![at(4, 40)]) == 1 && queue.take(1)[0].forward.is_some(), "their bytes count no more");
    }

    #[test]
    fn documents_beyond_the_byte_bound_wait_without_their_bytes() {
        let (queue, f) = (Handoffs::default(), forward(MAX_HANDED_BYTES / 4));
        assert_eq!(queue.push((0..6).map(|i| handed(i, &f)).collect()), 6);
        let with: Vec<bool> = queue.take(6).iter().map(|h| h.forward.is_some()).collect();
        assert_eq!(with, [true, true, true, true, false, false]);
        // Taken, their bytes count no more.
        assert_eq!(queue.push(vec![handed(6, &f)]), 1);
        assert!(queue.take(1)[0].forward.is_some());
    }
}
