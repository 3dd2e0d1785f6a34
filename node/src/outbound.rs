//! The outbox worker and everything sent to neighbours.
//!
//! A transfer leaves the outbox only when the next hop has answered with a hop receipt that
//! verifies (signed by the next hop's seal, for this document and these recipients): the
//! receipt and the hand-over are recorded in one transaction. Failures are retried with
//! exponential backoff and jitter; after the policy's attempts the transfer is dead-lettered
//! and the sender gets a signed refusal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pki::AgencyCode;
use pki::document::{Envelope, ReceiptKind, SignedReceipt, StatusCode};
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::protocol::{ErrorKind, NodeRequest, NodeResponse, read_frame, write_frame};
use crate::routing::NextHop;
use crate::storage::{Transfer, TransferKind, millis};
use crate::{Metrics, Node};

/// Most transfers in flight at once, all peers together.
const MAX_IN_FLIGHT: usize = 256;

/// How a transfer ended.
enum Outcome {
    /// Handed over.
    Done,
    /// The next hop refused it for good (the refusal is recorded and routed to the sender).
    Refused,
    /// Try again later.
    Retry(String),
    /// Give up now (a permanent error).
    Permanent(String),
}

impl Node {
    /// The connection to neighbour `hop`, opening one if needed.
    pub async fn connection(self: &Arc<Self>, hop: &AgencyCode) -> Result<quinn::Connection, String> {
        let mut cache = self.connections.lock().await;
        if let Some(c) = cache.get(hop)
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let addr = self
            .config
            .neighbours()
            .find(|(n, _)| n.agency == *hop)
            .map(|(n, _)| n.address)
            .ok_or_else(|| format!("{hop} is not a configured neighbour"))?;
        let connecting = self
            .endpoint
            .connect_with(self.client_config.clone(), addr, &crate::tls::server_name(hop))
            .map_err(|e| format!("cannot connect to {hop} at {addr}: {e}"))?;
        let conn = tokio::time::timeout(self.config.limits.request_timeout, connecting)
            .await
            .map_err(|_| format!("connecting to {hop} at {addr} timed out"))?
            .map_err(|e| format!("cannot connect to {hop} at {addr}: {e}"))?;
        cache.insert(*hop, conn.clone());
        drop(cache);
        tracing::info!(peer = %hop, address = %addr, "connected");
        if self.routes.relation(hop) == Some(crate::routing::Relation::Parent) {
            // Children fetch CRLs on connecting to their parent (the CRL task does it).
            self.crl_fetch.notify_one();
        }
        Ok(conn)
    }

    /// Sends one request to `hop` and reads the answer. `body` writes anything that follows
    /// the request frame (attachments). A refused write does not hide the peer's answer: the
    /// peer may answer early (a duplicate, a refusal) and stop reading.
    pub async fn request<F, Fut>(
        self: &Arc<Self>,
        hop: &AgencyCode,
        request: &NodeRequest,
        body: F,
    ) -> Result<NodeResponse, String>
    where
        F: FnOnce(quinn::SendStream) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let conn = self.connection(hop).await?;
        let exchange = async {
            let (mut send, mut recv) =
                conn.open_bi().await.map_err(|e| format!("cannot open a stream to {hop}: {e}"))?;
            let written = match write_frame(&mut send, request).await {
                Ok(()) => body(send).await,
                Err(e) => Err(e.to_string()),
            };
            match read_frame::<NodeResponse>(&mut recv, self.config.limits.max_frame_bytes).await {
                Ok(r) => Ok(r),
                Err(e) => Err(match written {
                    Err(w) => format!("sending to {hop}: {w}"),
                    Ok(()) => format!("reading the answer of {hop}: {e}"),
                }),
            }
        };
        tokio::time::timeout(self.config.limits.request_timeout, exchange)
            .await
            .map_err(|_| format!("request to {hop} timed out"))?
    }
}

/// Runs the outbox until shutdown.
pub async fn run_outbox(node: Arc<Node>) {
    let mut shutdown = node.shutdown_signal();
    let global = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut per_peer: HashMap<AgencyCode, Arc<Semaphore>> = HashMap::new();
    let lease = node.config.limits.request_timeout * 2 + Duration::from_secs(30);
    loop {
        if node.stopping() {
            break;
        }
        let now = millis(node.now());
        let free = global.available_permits() as i64;
        let claimed = if free > 0 {
            match node.store.claim_due(&node.lease_owner, now, now + lease.as_millis() as i64, free).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        for transfer in claimed {
            let Ok(global_permit) = global.clone().acquire_owned().await else { break };
            let peer = per_peer
                .entry(transfer.next_hop)
                .or_insert_with(|| Arc::new(Semaphore::new(node.config.limits.max_in_flight_per_peer)))
                .clone();
            let node = node.clone();
            tokio::spawn(async move {
                let _g = global_permit;
                let Ok(_p) = peer.acquire_owned().await else { return };
                run_transfer(&node, transfer).await;
                node.wake_outbox();
            });
        }
        // Sleep until woken, the next transfer is due, or a second passes.
        let wait = match node.store.next_due().await {
            Ok(Some(due)) => {
                Duration::from_millis(u64::try_from(due - millis(node.now())).unwrap_or(0).clamp(10, 1000))
            }
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = node.outbox_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
}

async fn run_transfer(node: &Arc<Node>, transfer: Transfer) {
    let outcome = match transfer.kind {
        TransferKind::Document(id) => send_document(node, &transfer, id).await,
        TransferKind::Notice(id) => send_notice(node, &transfer, id).await,
    };
    let now = node.now();
    match outcome {
        Outcome::Done | Outcome::Refused => {}
        Outcome::Retry(error) | Outcome::Permanent(error) if node.stopping() => {
            // Shutting down: leave it pending for the next start.
            tracing::info!(transfer = transfer.id, error = %error, "transfer interrupted by shutdown");
            let _ = node.store.transfer_failed(transfer.id, &error, millis(now), false).await;
        }
        Outcome::Retry(error) => {
            let attempt = transfer.attempts + 1;
            let dead = attempt >= node.config.retry.max_attempts;
            let delay = node.config.retry.delay(attempt, node.jitter_draw());
            tracing::warn!(transfer = transfer.id, peer = %transfer.next_hop, attempt, retry_in = ?delay, error = %error, dead, "transfer failed");
            Metrics::bump(&node.metrics.retries);
            if let Err(e) =
                node.store.transfer_failed(transfer.id, &error, millis(now) + delay.as_millis() as i64, dead).await
            {
                tracing::error!(error = %e, "cannot record a failed transfer");
            }
            if dead {
                give_up(
                    node,
                    &transfer,
                    &format!("not delivered to {} after {attempt} attempts: {error}", transfer.next_hop),
                )
                .await;
            }
        }
        Outcome::Permanent(error) => {
            tracing::warn!(transfer = transfer.id, peer = %transfer.next_hop, error = %error, "transfer refused for good");
            let _ = node.store.transfer_failed(transfer.id, &error, millis(now), true).await;
            give_up(node, &transfer, &format!("{} did not take it: {error}", transfer.next_hop)).await;
        }
    }
}

/// After a dead-letter: a signed refusal back to the document's sender.
async fn give_up(node: &Arc<Node>, transfer: &Transfer, reason: &str) {
    Metrics::bump(&node.metrics.dead);
    let TransferKind::Document(id) = transfer.kind else { return };
    let Ok(doc) = node.store.document(id).await else { return };
    let Ok(envelope) = Envelope::from_bytes(&doc.envelope) else { return };
    let Ok(manifest) = pki::document::Manifest::from_cbor(envelope.payload()) else { return };
    let Some(refusal) = node.refusal(&manifest, doc.digest, transfer.recipients.clone(), reason) else { return };
    let now = millis(node.now());
    let result: Result<(), crate::storage::StoreError> = async {
        let mut tx = node.store.begin().await?;
        tx.set_route_state(id, &transfer.recipients, "refused", now).await?;
        crate::notices::keep_and_route(&mut tx, node, &refusal, &node.config.agency.to_string(), None, now).await?;
        tx.count("dead_letters", 1).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(document = %doc.doc_id, error = %e, "cannot record the refusal of a dead-lettered document");
    }
    node.wake_outbox();
}

async fn send_document(node: &Arc<Node>, transfer: &Transfer, id: i64) -> Outcome {
    let hop = transfer.next_hop;
    let (doc, attachments) = match (node.store.document(id).await, node.store.attachments(id).await) {
        (Ok(d), Ok(a)) => (d, a),
        (Err(e), _) | (_, Err(e)) => return Outcome::Retry(e.to_string()),
    };
    let chains: Vec<Vec<Vec<u8>>> = Envelope::from_bytes(&doc.envelope)
        .and_then(|e| e.headers())
        .map(|h| h.into_iter().map(|h| h.chain).collect())
        .unwrap_or_default();
    let request = NodeRequest::Deliver {
        envelope: ByteBuf::from(doc.envelope.clone()),
        recipients: transfer.recipients.iter().map(ToString::to_string).collect(),
        crls: node.crls_for(&chains).await.into_iter().map(ByteBuf::from).collect(),
    };
    let blobs = node.store.blobs().clone();
    let response = node
        .request(&hop, &request, |mut send| async move {
            for a in &attachments {
                let mut file = blobs.open_blob(&a.sha256).await.map_err(|e| format!("attachment {:?}: {e}", a.name))?;
                tokio::io::copy(&mut file, &mut send).await.map_err(|e| e.to_string())?;
            }
            send.flush().await.map_err(|e| e.to_string())?;
            send.finish().map_err(|e| e.to_string())
        })
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(e),
    };
    let now = millis(node.now());
    match response {
        NodeResponse::HopReceipt { receipt } => {
            let receipt = match SignedReceipt::from_bytes(&receipt) {
                Ok(r) => r,
                Err(e) => return Outcome::Retry(format!("{hop} answered with a malformed hop receipt: {e}")),
            };
            let r = &receipt.receipt;
            let fits = r.kind == ReceiptKind::Hop
                && r.by == hop
                && r.to == node.config.agency
                && r.envelope == doc.digest
                && transfer.recipients.iter().all(|x| r.recipients.contains(x));
            if !fits {
                return Outcome::Retry(format!("{hop} answered with a hop receipt that does not match the transfer"));
            }
            if let Err(e) = crate::notices::verify_receipt(node, &receipt, &[]) {
                return Outcome::Retry(format!("{hop}'s hop receipt does not verify: {e}"));
            }
            let result: Result<(), crate::storage::StoreError> = async {
                let mut tx = node.store.begin().await?;
                // The hop receipt is kept here and, unless this agency sent the document,
                // travels on toward the sender so the sender can track every hop.
                crate::notices::keep_and_route(&mut tx, node, &receipt, &hop.to_string(), None, now).await?;
                tx.set_route_state(id, &transfer.recipients, "forwarded", now).await?;
                tx.finish_transfer(transfer.id, "done", now).await?;
                tx.count("documents_forwarded", 1).await?;
                tx.commit().await
            }
            .await;
            match result {
                Ok(()) => {
                    Metrics::bump(&node.metrics.documents_out);
                    tracing::info!(document = %doc.doc_id, peer = %hop, "document handed over");
                    Outcome::Done
                }
                Err(e) => Outcome::Retry(e.to_string()),
            }
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
                _ => return Outcome::Permanent(format!("{hop} refused with an unusable refusal")),
            };
            if let Err(e) = crate::notices::verify_receipt(node, &refusal, &[]) {
                return Outcome::Permanent(format!("{hop} refused, but its refusal does not verify: {e}"));
            }
            let reason = refusal.receipt.note.clone().unwrap_or_default();
            let result: Result<(), crate::storage::StoreError> = async {
                let mut tx = node.store.begin().await?;
                crate::notices::keep_and_route(&mut tx, node, &refusal, &hop.to_string(), None, now).await?;
                tx.set_route_state(id, &transfer.recipients, "refused", now).await?;
                tx.finish_transfer(transfer.id, "refused", now).await?;
                tx.count("documents_refused_by_next_hop", 1).await?;
                tx.commit().await
            }
            .await;
            tracing::warn!(document = %doc.doc_id, peer = %hop, reason = %reason, "document refused by the next hop");
            node.wake_outbox();
            match result {
                Ok(()) => Outcome::Refused,
                Err(e) => Outcome::Retry(e.to_string()),
            }
        }
        NodeResponse::Error { kind: ErrorKind::Unavailable, message } => Outcome::Retry(format!("{hop}: {message}")),
        NodeResponse::Error { message, .. } => Outcome::Permanent(format!("{hop}: {message}")),
        other => Outcome::Retry(format!("{hop} answered {other:?} to a document")),
    }
}

async fn send_notice(node: &Arc<Node>, transfer: &Transfer, id: i64) -> Outcome {
    let hop = transfer.next_hop;
    let stored = match node.store.receipt(id).await {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(e.to_string()),
    };
    let chain = SignedReceipt::from_bytes(&stored.bytes).map(|r| r.chain_der().to_vec()).unwrap_or_default();
    let request = NodeRequest::Notice {
        receipt: ByteBuf::from(stored.bytes),
        crls: node.crls_for(&[chain]).await.into_iter().map(ByteBuf::from).collect(),
    };
    match node.request(&hop, &request, |mut send| async move { send.finish().map_err(|e| e.to_string()) }).await {
        Ok(NodeResponse::Accepted) => {
            let now = millis(node.now());
            let result: Result<(), crate::storage::StoreError> = async {
                let mut tx = node.store.begin().await?;
                tx.finish_transfer(transfer.id, "done", now).await?;
                tx.commit().await
            }
            .await;
            match result {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Retry(e.to_string()),
            }
        }
        Ok(NodeResponse::Error { kind: ErrorKind::Unavailable, message }) => {
            Outcome::Retry(format!("{hop}: {message}"))
        }
        Ok(NodeResponse::Error { message, .. }) => Outcome::Permanent(format!("{hop}: {message}")),
        Ok(other) => Outcome::Retry(format!("{hop} answered {other:?} to a receipt")),
        Err(e) => Outcome::Retry(e),
    }
}

/// Where a status about a document addressed to `to` goes next, if anywhere.
pub fn next_hop_toward(node: &Node, to: &AgencyCode) -> Option<AgencyCode> {
    match node.routes.next_hop(to) {
        Ok(NextHop::Neighbour(n)) => Some(n),
        _ => None,
    }
}
