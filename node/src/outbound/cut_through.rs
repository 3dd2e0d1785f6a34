//! Documents from a neighbour passed on while their intake commits.
//!
//! A node that takes a document from a neighbour and forwards it would commit it (a sync, the
//! longest step of a hop) and only then send it on: over four hops the syncs of the three
//! nodes in the middle came one after another. Here the intake starts the send to each next
//! hop ([`start`]) once the document is verified, routed and received, and commits while the
//! document travels; the next hop verifies and commits it meanwhile.
//!
//! Responsibility does not move earlier. The previous hop gets this node's hop receipt only
//! after this node's commit, as before. The next hop's answer is recorded only after that
//! commit too ([`adopt`]): the transfer's row is the one the commit queued, run as the outbox
//! runs a claimed one (marked running so that no claim starts it again; on PostgreSQL claimed
//! by id first). If the commit fails (a full disk) or the node dies before it, the next hop
//! may hold a document this node never took: the previous hop, which got no hop receipt,
//! sends it again, this node takes it again and passes it on again, and the next hop answers
//! from its storage with the hop receipt it gave the first time. Every agency keeps exactly
//! one copy, and every hop receipt is recorded once the node it is addressed to has taken
//! the document.
//!
//! What this costs: if this node never takes the document after all — its storage fails for
//! longer than the previous hop retries (which then gives up and signs a refusal to the
//! sender), the signer is revoked before the retry, or a different envelope with the same id
//! won the commit — the recipient holds a document whose sender also holds a refusal, and the
//! next hop's hop receipt to this node is never recorded. Each signed statement stays true
//! (this node did not take it; the recipient did). `limits.pass_on_before_commit = false`
//! commits every document before it leaves.
//!
//! Only documents from a neighbour go this way. A clerk's document enters the network at its
//! agency's node: the clerk is told "taken" or "not taken, send again later", and a document
//! already on its way while the clerk is told the latter would travel without its agency's
//! record. Only documents new to this node, not provisional, with no CRL that came along and
//! is new here (the next hop could ask for it before it is kept), and only while one of
//! the next hop's places (`limits.max_in_flight_per_peer`, shared with the outbox) is free: the
//! rest go after the commit, as before. `limits.pass_on_before_commit = false` turns it off.

use std::sync::Arc;

use pki::AgencyCode;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use super::{Answer, Forward, Handed, TransferError, conclude_document, hold_back, pass_on, take_handed};
use crate::storage::millis;
use crate::{Metrics, Node};

/// A document on its way to a next hop before its intake's commit.
#[derive(Debug)]
pub struct Early {
    hop: AgencyCode,
    recipients: Vec<AgencyCode>,
    answer: JoinHandle<Result<(Answer, String), TransferError>>,
}

/// Starts passing `forward` on to each of `hops` (a next hop and the recipients it takes) that
/// has a free place among its `limits.max_in_flight_per_peer` (shared with the outbox); those
/// without one go after the commit.
pub fn start(node: &Arc<Node>, hops: Vec<(AgencyCode, Vec<AgencyCode>)>, forward: &Arc<Forward>) -> Vec<Early> {
    let mut early = Vec::with_capacity(hops.len());
    for (hop, recipients) in hops {
        let Ok(place) = node.outbound.peer_slots(hop).try_acquire_owned() else { continue };
        let (task_node, sending, to) = (Arc::clone(node), Arc::clone(forward), recipients.clone());
        let answer = node.tasks.spawn(async move {
            let _place: OwnedSemaphorePermit = place;
            pass_on(&task_node, hop, &to, sending, None).await
        });
        early.push(Early { hop, recipients, answer });
    }
    early
}

/// After the intake's commit: each transfer it queued that a send started before the commit
/// carries (same next hop, same recipients) is taken over here, and its answer recorded when
/// it comes. Returns the transfers left to the outbox's hand-off. Sends whose transfer was not
/// queued (the commit found the document taken meanwhile, or routed those recipients already)
/// end on their own, their answer unrecorded.
pub async fn adopt(node: &Arc<Node>, mut early: Vec<Early>, document: i64, transfers: Vec<Handed>) -> Vec<Handed> {
    let mut rest = Vec::with_capacity(transfers.len());
    let mut adopted = Vec::new();
    // Only before the row is due, as a hand-off: until then no claim can have run it.
    let now = millis(node.now());
    for handed in transfers {
        let t = &handed.transfer;
        match early.iter().position(|e| e.hop == t.next_hop && e.recipients == t.recipients) {
            Some(i) if now < handed.due => adopted.push((handed, early.swap_remove(i))),
            _ => rest.push(handed),
        }
    }
    if adopted.is_empty() {
        return rest;
    }
    // As the outbox starts a hand-off: claimed by id and marked running here; one a process of
    // a scaled-out node claimed meanwhile, or that runs here already, records its own answer
    // (the next hop answers it from its storage) and this send's answer is not recorded.
    let ids: Vec<i64> = adopted.iter().map(|(h, _)| h.transfer.id).collect();
    let in_flight = node.outbound.in_flight();
    let taken = take_handed(node, &in_flight, &ids, "the transfers passed on before their commit").await;
    for (handed, early) in adopted {
        let transfer = handed.transfer;
        if !taken.contains(&transfer.id) {
            continue;
        }
        Metrics::bump(&node.observed.metrics().sent_from_intake);
        Metrics::bump(&node.observed.metrics().passed_before_commit);
        let running = Running { node: Arc::clone(node), in_flight: Arc::clone(&in_flight), id: transfer.id };
        node.tasks.spawn(async move {
            let node = Arc::clone(&running.node);
            node.observed.watch().started(transfer.id, &transfer.next_hop, transfer.attempts, millis(node.now()));
            // A send that panicked or was stopped with the node leaves its row pending, due
            // when the grace ends: the outbox sends it then.
            if let Ok(answer) = early.answer.await
                && !conclude_document(&node, &transfer, document, answer).await
            {
                hold_back(&node).await;
            }
            drop(running);
        });
    }
    rest
}

/// A transfer adopted and running: marked in the outbox's in-flight set until this is dropped
/// (also when its task panics), then the outbox is woken to claim what is due.
struct Running {
    node: Arc<Node>,
    in_flight: Arc<std::sync::Mutex<std::collections::HashSet<i64>>>,
    id: i64,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.node.observed.watch().ended(self.id);
        if let Ok(mut s) = self.in_flight.lock() {
            s.remove(&self.id);
        }
        self.node.outbound.wake_outbox();
    }
}
