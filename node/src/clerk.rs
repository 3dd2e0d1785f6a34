//! Serving this agency's clerks (ALPN `lienthong-clerk/2`): submit, inbox, sent, fetch,
//! statuses, track, recall, health. The clerk's certificate has already been checked to be a
//! clerk certificate of this agency.

use std::sync::Arc;

use pki::AgencyCode;
use pki::document::{Envelope, ReceiptKind, SignedReceipt, StatusCode};
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;

use crate::Node;
use crate::budget::ConnectionBudget;
use crate::intake::{ResumeAnswer, Saying, Source, take_document_resumable};
use crate::protocol::{ClerkRequest, ClerkResponse, ErrorKind, Toward, read_request, write_frame};
use crate::storage::{StoredDocument, millis};

fn bad(message: impl Into<String>) -> ClerkResponse {
    ClerkResponse::Error { kind: ErrorKind::BadRequest, message: message.into() }
}

fn unavailable(e: impl std::fmt::Display) -> ClerkResponse {
    ClerkResponse::Error { kind: ErrorKind::Unavailable, message: e.to_string() }
}

/// Handles one clerk request stream, its frame read under `budget`.
pub async fn handle(
    node: Arc<Node>,
    clerk: AgencyCode,
    budget: ConnectionBudget,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let limits = &node.config.limits;
    let opened = tokio::time::Instant::now();
    // The frame's memory stays leased until the request is served.
    let mut lease = budget.lease();
    let request: ClerkRequest = match read_request(&mut recv, limits, &mut lease, opened).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(clerk = %clerk, error = %e, "clerk request not read");
            let answer = ClerkResponse::Error { kind: e.kind(), message: e.to_string() };
            let _ = tokio::time::timeout(limits.frame_timeout, write_frame(&mut send, &answer)).await;
            let _ = send.finish();
            return;
        }
    };
    // A submission streams its attachments, which take time in proportion to their size
    // (intake bounds that itself); every other request gets the plain request timeout.
    let allowed = match request {
        ClerkRequest::Submit { .. } => limits.request_time(limits.max_document_bytes),
        _ => limits.request_timeout,
    };
    let mut follow: Option<StoredDocument> = None;
    let response =
        match tokio::time::timeout(allowed, serve(&node, clerk, request, &mut send, &mut recv, &mut follow)).await {
            Ok(r) => r,
            Err(_) => unavailable(format!("the node did not finish the request within {allowed:?}; try again")),
        };
    drop(lease);
    // The answer, and a fetched document's attachments after it, get their size's time: a
    // clerk that stops reading does not hold the stream for ever.
    let (response, attachments) = match (response, &follow) {
        (response @ ClerkResponse::Document { .. }, Some(doc)) => match node.store.attachments(doc.id).await {
            Ok(a) => (response, Some(a)),
            Err(e) => (unavailable(e), None),
        },
        (response, _) => (response, None),
    };
    let frame = crate::protocol::encode(&response);
    let bytes = frame.len() as u64 + attachments.iter().flatten().map(|a| a.attachment.size).sum::<u64>();
    let allowed = limits.frame_time(bytes);
    let written = tokio::time::timeout(allowed, async {
        send.write_all(&frame).await.map_err(|e| e.to_string())?;
        for a in attachments.into_iter().flatten() {
            let mut reader = node.store.blobs().reader(&a, 0, FETCH_READ).await.map_err(|e| e.to_string())?;
            tokio::io::copy_buf(&mut reader, &mut send).await.map_err(|e| e.to_string())?;
        }
        send.flush().await.map_err(|e| e.to_string())
    })
    .await;
    match written {
        Ok(Ok(())) => {
            let _ = send.finish();
        }
        Ok(Err(e)) => {
            tracing::warn!(clerk = %clerk, error = %e, "answer not sent");
            let _ = send.reset(1u32.into());
        }
        Err(_) => {
            tracing::warn!(clerk = %clerk, "answer not taken within {}; stream reset", humantime::format_duration(allowed));
            let _ = send.reset(1u32.into());
        }
    }
    let _ = recv.stop(0u32.into());
}

/// Bytes read at a time from the file of an attachment a clerk fetches: each read of a file is
/// a trip to the blocking pool.
const FETCH_READ: usize = 256 * 1024;

async fn serve(
    node: &Arc<Node>,
    clerk: AgencyCode,
    request: ClerkRequest,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    follow: &mut Option<StoredDocument>,
) -> ClerkResponse {
    match request {
        ClerkRequest::Submit { envelope, crls, resume } => {
            let crls: Vec<Vec<u8>> = crls.into_iter().map(ByteBuf::into_vec).collect();
            let resume = resume.then_some(ResumeAnswer {
                send,
                frame: |offsets| crate::protocol::encode(&ClerkResponse::ResumeFrom { offsets }),
            });
            match take_document_resumable(node, Source::Clerk, &envelope, &crls, &[], recv, resume).await {
                Ok(taken) => {
                    tracing::info!(document = %taken.document, clerk = %clerk, duplicate = taken.duplicate, "document submitted");
                    ClerkResponse::Submitted { document: taken.document, digest: hex::encode(taken.digest) }
                }
                Err(e) if e.is_transient() => unavailable(e),
                Err(e) => bad(e.to_string()),
            }
        }
        ClerkRequest::Inbox { limit } => match node.store.inbox(limit.min(10_000)).await {
            Ok(entries) => ClerkResponse::Documents { entries },
            Err(e) => unavailable(e),
        },
        ClerkRequest::Sent { limit } => match node.store.sent(limit.min(10_000)).await {
            Ok(mut entries) => {
                // A document no recipient has answered for yet may still be in the outbox.
                for e in entries.iter_mut().filter(|e| e.status.is_none()) {
                    let Ok(digest) = hex::decode(&e.digest) else { continue };
                    match node.store.waiting_transfers(&digest).await {
                        Ok(w) => e.waiting = w,
                        Err(err) => return unavailable(err),
                    }
                }
                ClerkResponse::Documents { entries }
            }
            Err(e) => unavailable(e),
        },
        ClerkRequest::Fetch { document, evidence } => match find(node, &document).await {
            Ok(doc) => {
                let (receipts, path) = match receipts_and_path(node, &doc, evidence).await {
                    Ok(found) => found,
                    Err(e) => return unavailable(e),
                };
                let mut chains: Vec<Vec<Vec<u8>>> = Envelope::from_bytes(&doc.envelope)
                    .and_then(|e| e.headers())
                    .map(|h| h.into_iter().map(|h| h.chain).collect())
                    .unwrap_or_default();
                chains.extend(
                    receipts.iter().filter_map(|r| SignedReceipt::from_bytes(r).ok()).map(|r| r.chain_der().to_vec()),
                );
                let mut crls = node.trust.crls_for(&chains);
                crls.extend(path.crls);
                let crls = crate::path::newest_per_issuer(crls);
                let response = ClerkResponse::Document {
                    envelope: ByteBuf::from(doc.envelope.clone()),
                    crls: crls.into_iter().map(ByteBuf::from).collect(),
                    receipts: receipts.into_iter().map(ByteBuf::from).collect(),
                    log_proofs: path.proofs.into_iter().map(ByteBuf::from).collect(),
                };
                *follow = Some(doc);
                response
            }
            Err(e) => e,
        },
        ClerkRequest::Track { document } => match find(node, &document).await {
            Ok(doc) => match receipts_and_path(node, &doc, false).await {
                Ok((receipts, _)) => {
                    ClerkResponse::Receipts { receipts: receipts.into_iter().map(ByteBuf::from).collect() }
                }
                Err(e) => unavailable(e),
            },
            Err(e) => e,
        },
        ClerkRequest::PostStatus { document, status, note } => post_status(node, &document, status, note).await,
        ClerkRequest::Recall { document, note } => recall(node, &document, note).await,
        ClerkRequest::Route { recipients } => crate::route_check::answer_clerk(node, &recipients).await,
        ClerkRequest::Log { query } => crate::tlog::query::answer(node, query).await,
        ClerkRequest::Health => match crate::health::report(node).await {
            Ok(h) => ClerkResponse::Health { json: serde_json::to_string_pretty(&h).unwrap_or_default() },
            Err(e) => unavailable(e),
        },
    }
}

/// Every receipt of a document this agency holds, then the hop receipts the nodes on its path
/// hold (each stays with the node it was given to: see `crate::path`), with the path's log
/// proofs and the CRLs for their chains. A sent document's path is asked toward its
/// recipients, a received one's back toward its sender. With `checkpoint` (`lienthong fetch
/// --evidence`), this node's log runs a checkpoint round first, so that its own entry is in
/// a co-signed checkpoint.
///
/// The hop receipts from the path are verified here (with the CRLs that came with them)
/// before a clerk sees them, as every receipt this node stores was; one that does not verify
/// is left out and logged.
async fn receipts_and_path(
    node: &Arc<Node>,
    doc: &StoredDocument,
    checkpoint: bool,
) -> Result<(Vec<Vec<u8>>, crate::path::PathEvidence), crate::storage::StoreError> {
    if checkpoint && node.config.log.enabled {
        crate::tlog::checkpoint_on_demand(node).await?;
    }
    let toward = if doc.outgoing && doc.sender == node.config.agency { Toward::Recipients } else { Toward::Sender };
    use crate::path::{MAX_PATH_HOPS, PATH_WAIT_PER_HOP, gather};
    // Each node further on waits less than the one before it, so a node that is down costs
    // the question at most this long, and the parts of those that answered still come.
    let path =
        gather(node, doc.digest, toward, None, MAX_PATH_HOPS, PATH_WAIT_PER_HOP * u32::from(MAX_PATH_HOPS)).await?;
    let mut receipts: Vec<Vec<u8>> = node.store.receipts_for(&doc.digest).await?.into_iter().map(|r| r.bytes).collect();
    let held: std::collections::HashSet<Vec<u8>> = receipts.iter().cloned().collect();
    // One validator for all of them, with the CRLs that came along.
    let validator = node.trust.trust().validator_with(&node.trust.trust().parse_crls(&path.crls));
    for bytes in &path.receipts {
        if held.contains(bytes) {
            continue;
        }
        match SignedReceipt::from_bytes(bytes)
            .map_err(|e| e.to_string())
            .and_then(|r| r.verify(&validator).map(|_| ()).map_err(|e| e.to_string()))
        {
            Ok(()) => receipts.push(bytes.clone()),
            Err(e) => {
                tracing::warn!(document = %doc.doc_id, error = %e, "a hop receipt from the document's path does not verify; left out")
            }
        }
    }
    Ok((receipts, path))
}

/// A document of this agency: one it sent or one in its inbox. Documents that only pass
/// through this node on their way elsewhere are not the agency's to read, and are answered
/// exactly like unknown ones, so a clerk cannot even learn that they exist.
async fn find(node: &Node, document: &str) -> Result<StoredDocument, ClerkResponse> {
    let missing = || bad(format!("no document {document} at this agency (see the inbox or sent list for ids)"));
    match node.store.document_by_id(document).await {
        Ok(Some(d)) if d.outgoing && d.sender == node.config.agency => Ok(d),
        Ok(Some(d)) => match node.store.in_inbox(d.id).await {
            Ok(true) => Ok(d),
            Ok(false) => Err(missing()),
            Err(e) => Err(unavailable(e)),
        },
        Ok(None) => Err(missing()),
        Err(e) => Err(unavailable(e)),
    }
}

/// Signs a status of this agency about `doc` for each (addressee, recipients) target not
/// already holding one, and records and routes them in one transaction: a clerk's retry (or a
/// recall repeated after a crash) sends nothing twice.
async fn send_status(
    node: &Arc<Node>,
    doc: &StoredDocument,
    status: StatusCode,
    targets: Vec<(AgencyCode, Vec<AgencyCode>)>,
    note: Option<String>,
) -> Result<(), ClerkResponse> {
    let manifest = doc.manifest().map_err(unavailable)?;
    let mut signed = Vec::new();
    for (to, recipients) in targets {
        if node.store.status_held(&doc.digest, &node.config.agency, &to, status.code()).await.map_err(unavailable)? {
            continue;
        }
        let saying = Saying { kind: ReceiptKind::Status(status), to, recipients, note: note.clone() };
        signed.push(node.sign_receipt(&manifest, doc.digest, saying, node.now()).map_err(|e| bad(e.to_string()))?);
    }
    if signed.is_empty() {
        return Ok(());
    }
    let now = millis(node.now());
    let result: Result<(), crate::storage::StoreError> = async {
        let mut tx = node.store.begin().await?;
        for s in &signed {
            crate::notices::keep_and_route(&mut tx, node, s, "clerk", None, now, None).await?;
        }
        if doc.sender != node.config.agency {
            tx.inbox_status(doc.id, status.code(), now).await?;
            if status == StatusCode::RecallAccepted {
                tx.inbox_supersede(&doc.doc_id, "recalled").await?;
            }
            if matches!(status, StatusCode::RecallAccepted | StatusCode::RefusedByRecipient) {
                tx.inbox_recall_answered(&doc.doc_id).await?;
            }
        }
        tx.commit().await
    }
    .await;
    result.map_err(unavailable)?;
    node.outbound.wake_outbox();
    tracing::info!(document = %doc.doc_id, status = %status, count = signed.len(), "status sent");
    Ok(())
}

async fn post_status(node: &Arc<Node>, document: &str, status: u8, note: Option<String>) -> ClerkResponse {
    let Some(status) = StatusCode::from_code(u64::from(status)) else {
        return bad(format!("{status} is not a status code"));
    };
    if !matches!(
        status,
        StatusCode::Accepted
            | StatusCode::Assigned
            | StatusCode::Processing
            | StatusCode::Completed
            | StatusCode::RecallAccepted
            | StatusCode::RefusedByRecipient
    ) {
        return bad(format!(
            "a clerk posts 03 accepted, 04 assigned, 05 processing, 06 completed, 15 recall accepted or 16 refused, not {status}"
        ));
    }
    let doc = match find(node, document).await {
        Ok(d) => d,
        Err(e) => return e,
    };
    match node.store.in_inbox(doc.id).await {
        Ok(true) => {}
        Ok(false) => {
            return bad(format!(
                "{document} was not received by this agency; statuses are posted on received documents"
            ));
        }
        Err(e) => return unavailable(e),
    }
    match send_status(node, &doc, status, vec![(doc.sender, vec![node.config.agency])], note).await {
        Ok(()) => ClerkResponse::Done,
        Err(e) => e,
    }
}

async fn recall(node: &Arc<Node>, document: &str, note: Option<String>) -> ClerkResponse {
    let doc = match find(node, document).await {
        Ok(d) => d,
        Err(e) => return e,
    };
    if doc.sender != node.config.agency || !doc.outgoing {
        return bad(format!("{document} was not sent by this agency; only the sender can recall it"));
    }
    let targets = doc.recipients.iter().map(|r| (*r, vec![*r])).collect();
    match send_status(node, &doc, StatusCode::RecallRequested, targets, note).await {
        Ok(()) => ClerkResponse::Done,
        Err(e) => e,
    }
}
