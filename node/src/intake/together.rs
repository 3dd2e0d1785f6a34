//! Documents taken several to a transaction, in statements that carry them all (PostgreSQL).
//!
//! Alone, the transaction that takes a document is five to six round trips to PostgreSQL
//! (`BEGIN`, the document's row, its writes kept together, the transfer's row whose id the
//! outbox needs, `COMMIT`), and the server's CPU a round trip bounds a node there. Here the
//! documents that come while others are being written wait and go together (see
//! [`crate::gather`]): one insert of all their rows, one statement of all their kept writes
//! (attachments, routes, inbox entries, receipts), one insert of all their transfers, one
//! `COMMIT`; six round trips for the lot, whatever their number up to [`MAX_DOCUMENTS`].
//! (SQLite's writer already commits many transactions at once, and a statement there is a
//! call into the library, not a round trip: a document is taken alone on SQLite.)
//!
//! Only a document new here that brings nothing but its own rows goes this way (the intake
//! decides): no recipient refused (a status to sign and perhaps mail), no CRL or CA to keep.
//! One found stored when its row is inserted (a repeat, or another envelope with its id) is
//! left out of the transaction and taken alone after it, which answers it as before.
//!
//! The promise is unchanged: a document is this node's once the `COMMIT` holding it returned,
//! and only then is its intake told `Ok` and its hop receipt sent. A transaction of several
//! that fails is done again one document at a time, so that a document the database refuses
//! fails only its own intake; its error is that transaction's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pki::AgencyCode;

use super::{Recorded, Taking, arrived_here, handoff_due};
use crate::gather::{self, Gather, Waiting};
use crate::routing::NextHop;
use crate::storage::{Backend, InDoubt, NewDocument, NewTransfer, StoreError, StoredDocument, TransferKind, millis};
use crate::{Metrics, Node};

/// Most documents taken in one transaction: a bound on what one failure has to do again one
/// by one, and on the wait of the first document in it.
const MAX_DOCUMENTS: usize = 64;

/// Most transactions of documents at once: one may wait for its `COMMIT` (a sync) while the
/// next runs its statements. Their documents are taken in the order of their ids.
const WRITERS: usize = 2;

/// The documents waiting to be taken together.
pub(crate) type Intakes = Gather<Arc<Taking>, Together>;

/// What taking a document together came to.
#[derive(Debug)]
pub(crate) enum Together {
    /// The `COMMIT` holding it returned: what its transaction recorded.
    Recorded(Recorded),
    /// Its row was found stored: it is to be taken alone, which answers it from what is stored.
    /// `ours`: found when a transaction of several holding it, whose `COMMIT` was in doubt, was
    /// done again document by document, so the row may be this delivery's own, kept after all
    /// (taken, not a repeat).
    Stored { ours: bool },
}

/// An empty queue of documents.
pub(crate) fn queue() -> Intakes {
    Gather::new(MAX_DOCUMENTS, WRITERS)
}

/// Whether this node's intakes go together: on PostgreSQL, where every statement is a round
/// trip (see the module's doc).
pub(super) fn applies(node: &Node) -> bool {
    node.store.backend() == Backend::Postgres
}

/// The duplicate checks waiting to be asked together: the ids of documents arriving.
pub(crate) type Lookups = Gather<String, Option<StoredDocument>>;

/// An empty queue of duplicate checks.
pub(crate) fn lookups() -> Lookups {
    Gather::new(MAX_DOCUMENTS, WRITERS)
}

/// The document stored under `doc_id`, if any: the duplicate check every intake makes beside
/// its verification. On PostgreSQL the checks of documents arriving while one is asked wait
/// and are asked together, one statement for them all (a round trip a document was a third of
/// the receiving node's statements once its writes went together); SQLite reads in the
/// caller's task.
pub(super) async fn stored(node: &Arc<Node>, doc_id: &str) -> Result<Option<StoredDocument>, StoreError> {
    if !applies(node) {
        return node.store.document_by_id(doc_id).await;
    }
    gather::submit(node, |n| &n.intake_lookups, doc_id.to_owned(), look_up).await
}

/// Asks for a batch of ids at once, or for each alone if that fails.
async fn look_up(node: Arc<Node>, batch: Vec<Waiting<String, Option<StoredDocument>>>) {
    let ids: Vec<&str> = batch.iter().map(|w| w.item.as_str()).collect();
    match node.store.documents_by_ids(&ids).await {
        Ok(found) => {
            // The same id may be asked twice (two deliveries of one document at once).
            let found: HashMap<String, StoredDocument> = found.into_iter().map(|d| (d.doc_id.clone(), d)).collect();
            for w in batch {
                let stored = found.get(&w.item).cloned();
                w.tell(Ok(stored));
            }
        }
        Err(e) => {
            tracing::warn!(documents = batch.len(), error = %e, "asking for documents together failed; asking for each alone");
            for w in batch {
                let outcome = node.store.document_by_id(&w.item).await;
                w.tell(outcome);
            }
        }
    }
}

/// Takes `taking` with whatever others wait (see the module's doc).
pub(super) async fn take(node: &Arc<Node>, taking: Arc<Taking>) -> Result<Together, StoreError> {
    gather::submit(node, |n| &n.intakes, taking, write_batch).await
}

/// Takes a batch together, or each alone if that fails, and tells each intake.
async fn write_batch(node: Arc<Node>, mut batch: Vec<Waiting<Arc<Taking>, Together>>) {
    // In the order of their ids: two writers meet on no row in a cycle.
    batch.sort_by_cached_key(|w| w.item.manifest().id().to_string());
    // Whether the failed transaction of several may have been kept all the same.
    let mut in_doubt = false;
    if batch.len() > 1 {
        let takings: Vec<&Taking> = batch.iter().map(|w| &*w.item).collect();
        match write_together(&node, &takings).await {
            Ok(recorded) => {
                for (w, r) in batch.into_iter().zip(recorded) {
                    w.tell(Ok(r.map_or(Together::Stored { ours: false }, Together::Recorded)));
                }
                return;
            }
            // Nothing of it was kept (or, in doubt, each alone finds its document stored and
            // is answered as a repeat): one document at a time, so that one the database
            // refuses fails only its intake.
            Err(e) => {
                in_doubt = e.is_in_doubt();
                Metrics::bump(&node.observed.metrics().intake_transactions_redone);
                tracing::warn!(documents = batch.len(), error = %e, "taking documents together failed; taking each alone")
            }
        }
    }
    for w in batch {
        let outcome = match write_together(&node, &[&*w.item]).await {
            Ok(recorded) => Ok(match recorded.into_iter().next().flatten() {
                Some(r) => Together::Recorded(r),
                None => Together::Stored { ours: in_doubt },
            }),
            // Alone it failed too, but the transaction of several may hold it: its sender is
            // not told that nothing was taken.
            Err(e) if in_doubt && !e.is_in_doubt() => {
                Err(StoreError::CommitInDoubt { commit: Box::new(e), why: InDoubt::NoAnswer })
            }
            Err(e) => Err(e),
        };
        w.tell(outcome);
    }
}

/// Takes `takings` in one transaction: for each, what it recorded, or `None` if its row was
/// not inserted (stored already).
async fn write_together(node: &Arc<Node>, takings: &[&Taking]) -> Result<Vec<Option<Recorded>>, StoreError> {
    let mut tx = node.store.begin().await?;
    let docs: Vec<NewDocument<'_>> = takings.iter().map(|t| t.new_document()).collect();
    let ids = tx.insert_new_documents(&docs).await?;
    if ids.iter().all(Option::is_none) {
        tx.rollback().await?;
        return Ok(ids.iter().map(|_| None).collect());
    }
    let agency = node.config.agency.to_string();
    let mut statuses: Vec<Vec<Vec<u8>>> = takings.iter().map(|_| Vec::new()).collect();
    // The transfers to queue: whose, of which row, to where, for whom.
    let mut wanted: Vec<(usize, i64, AgencyCode, Vec<AgencyCode>)> = Vec::new();
    for (i, (t, id)) in takings.iter().zip(&ids).enumerate() {
        let Some(id) = *id else { continue };
        // Each recipient counts once, as when taken alone.
        let mut routed: HashSet<AgencyCode> =
            tx.add_routes_of_new(id, &t.routes(), t.received_at).await?.into_iter().collect();
        for (hop, new) in t.newly_routed(&mut routed) {
            match hop {
                NextHop::Local => {
                    tx.inbox_add_new(id, &t.manifest().id().to_string(), t.received_at).await?;
                    arrived_here(&mut tx, node, t, &mut statuses[i]).await?;
                }
                NextHop::Neighbour(n) => wanted.push((i, id, n, new)),
            }
        }
        if let Some(h) = &t.hop_receipt {
            tx.insert_own_receipt(h, &agency, t.received_at).await?;
        }
    }
    let due = handoff_due(node);
    let transfers: Vec<NewTransfer<'_>> = wanted
        .iter()
        .map(|(_, id, n, new)| NewTransfer { kind: TransferKind::Document(*id), next_hop: n, recipients: new, due })
        .collect();
    let queued_ids = tx.enqueue_all_due(&transfers, millis(node.now())).await?;
    let queued = tx.queued();
    tx.commit().await?;
    Metrics::bump(&node.observed.metrics().intake_transactions);
    let mut handed: Vec<Vec<crate::outbound::Handed>> = takings.iter().map(|_| Vec::new()).collect();
    for ((i, id, n, new), transfer) in wanted.into_iter().zip(queued_ids) {
        if let Some(transfer) = transfer {
            handed[i].push(takings[i].handed(id, transfer, n, new, due));
        }
    }
    Ok(ids
        .into_iter()
        .zip(handed)
        .zip(statuses)
        .zip(takings)
        .map(|(((id, handed), statuses), t)| {
            id.map(|id| Recorded {
                id,
                repeat: false,
                handed,
                queued,
                hop_receipt: t.hop_receipt.as_ref().map(|h| h.as_bytes().to_vec()),
                statuses,
            })
        })
        .collect())
}
