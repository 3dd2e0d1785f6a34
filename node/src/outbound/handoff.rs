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
//! due [`HANDOFF_GRACE`] after its intake. One the outbox does not take (this queue is full,
//! the node stops or crashes) is claimed from the database once due, as any other; on
//! PostgreSQL a hand-off is claimed by id first (`Store::claim_handed`), so one that another
//! process of a scaled-out node holds is left to it. One the outbox takes is run as a claimed
//! transfer is: its outcome is recorded the same way, and the same guard keeps it from
//! running twice in this process.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use crate::storage::inline::StoredAttachment;
use crate::storage::{StoredDocument, Transfer};

/// At most this many transfers wait in the queue: as many as the outbox runs at once
/// (`MAX_CLAIMED`). A hand-off beyond it is dropped, and its transfer claimed later from the
/// database, so a next hop slower than the intake cannot make the queue (and the documents it
/// holds) grow without bound.
pub(crate) const MAX_HANDED: usize = super::MAX_CLAIMED;

/// A transfer to be handed over is queued due this long after its intake
/// (`Tx::enqueue_handed`). Until then the outbox's claims leave it alone: under load the outbox
/// claims all the time, and a claim in the instant between the intake's commit and its
/// hand-off would send the transfer reading it back, the hand-off then skipped (most of the
/// sends, measured). A hand-off that never comes (the queue was full, the node stopped or
/// crashed) delays the transfer by at most this.
pub const HANDOFF_GRACE: Duration = Duration::from_secs(1);

/// A stored document as the outbox sends it: what it would otherwise read back.
#[derive(Debug)]
pub struct Forward {
    /// The document's row, as `Store::document` reads it.
    pub document: StoredDocument,
    /// Its attachments in manifest order, as `Store::attachments` reads them.
    pub attachments: Vec<StoredAttachment>,
}

/// A transfer just queued by an intake, with its document.
#[derive(Debug)]
pub struct Handed {
    /// The outbox row, as a claim would return it.
    pub transfer: Transfer,
    /// Shared by the transfers of one document to several next hops.
    pub forward: Arc<Forward>,
}

/// The transfers handed over and not yet started, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Handoffs(StdMutex<VecDeque<Handed>>);

impl Handoffs {
    /// Queues `handed`, as many as fit under [`MAX_HANDED`]; returns how many were queued.
    pub(crate) fn push(&self, handed: Vec<Handed>) -> usize {
        let Ok(mut queue) = self.0.lock() else { return 0 };
        let room = MAX_HANDED.saturating_sub(queue.len());
        let kept = handed.len().min(room);
        queue.extend(handed.into_iter().take(kept));
        kept
    }

    /// Takes up to `at_most` of the oldest transfers handed over.
    pub(crate) fn take(&self, at_most: usize) -> Vec<Handed> {
        let Ok(mut queue) = self.0.lock() else { return Vec::new() };
        let n = at_most.min(queue.len());
        queue.drain(..n).collect()
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
            forward: Arc::clone(forward),
        }
    }

    fn forward() -> Arc<Forward> {
        Arc::new(Forward {
            document: StoredDocument {
                id: 1,
                doc_id: "d".into(),
                digest: [0; 32],
                sender: "000.01.41.H49".parse().unwrap(),
                envelope: Vec::new(),
                outgoing: true,
                provisional: false,
                recipients: Vec::new(),
            },
            attachments: Vec::new(),
        })
    }

    #[test]
    fn the_queue_keeps_at_most_max_handed_and_gives_the_oldest_first() {
        let (queue, f) = (Handoffs::default(), forward());
        assert_eq!(queue.push((0..MAX_HANDED as i64 - 1).map(|i| handed(i, &f)).collect()), MAX_HANDED - 1);
        // Two more: one fits, one is left to the outbox's next claim.
        assert_eq!(queue.push(vec![handed(1000, &f), handed(1001, &f)]), 1);
        let first: Vec<i64> = queue.take(3).iter().map(|h| h.transfer.id).collect();
        assert_eq!(first, [0, 1, 2]);
        let rest: Vec<i64> = queue.take(usize::MAX).iter().map(|h| h.transfer.id).collect();
        assert_eq!(rest.len(), MAX_HANDED - 3);
        assert_eq!(rest.last(), Some(&1000));
        assert!(queue.take(1).is_empty());
        // Room again once taken.
        assert_eq!(queue.push(vec![handed(2000, &f)]), 1);
    }
}
