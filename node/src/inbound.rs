//! Serving a neighbour's requests: documents, receipts and CRLs.

use std::sync::Arc;

use pki::AgencyCode;
use serde_bytes::ByteBuf;

use crate::Node;
use crate::budget::ConnectionBudget;
use crate::intake::{ResumeAnswer, Source, take_document_resumable};
use crate::protocol::{ErrorKind, NodeRequest, NodeResponse, encode, read_request};

/// Handles one request stream from neighbour `peer`, its frame read under `budget`.
pub async fn handle(
    node: Arc<Node>,
    conn: &quinn::Connection,
    peer: AgencyCode,
    budget: ConnectionBudget,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let opened = tokio::time::Instant::now();
    // The frame's memory stays leased until the request is served.
    let mut lease = budget.lease();
    let response = match read_request::<NodeRequest>(&mut recv, &node.config.limits, &mut lease, opened).await {
        Ok(request) => match crls_only(&node, conn, &request) {
            Some(refused) => refused,
            None => serve(&node, peer, request, &mut send, &mut recv).await,
        },
        Err(e) => NodeResponse::Error { kind: e.kind(), message: e.to_string() },
    };
    drop(lease);
    if let NodeResponse::Error { kind, message } = &response {
        tracing::warn!(peer = %peer, kind = %kind, error = %message, "request not served");
    }
    // An answer the peer does not read is given up after its time, like a request frame's.
    let frame = encode(&response);
    let allowed = node.config.limits.frame_time(frame.len() as u64);
    match tokio::time::timeout(allowed, send.write_all(&frame)).await {
        Ok(_) => {
            let _ = send.finish();
        }
        Err(_) => {
            tracing::warn!(peer = %peer, "answer not taken within {}; stream reset", humantime::format_duration(allowed));
            let _ = send.reset(0u32.into());
        }
    }
    // Nothing more is read: stop the peer from sending what we will not read.
    let _ = recv.stop(0u32.into());
}

/// A neighbour whose certificate's revocation this node cannot check yet exchanges CRLs only
/// (how a fresh node gets its first CRLs); anything else waits, as a transient refusal.
fn crls_only(node: &Node, conn: &quinn::Connection, request: &NodeRequest) -> Option<NodeResponse> {
    if matches!(request, NodeRequest::CrlPush { .. } | NodeRequest::CrlFetch { .. }) {
        return None;
    }
    match node.trust.standing(conn) {
        crate::live::Standing::Vouched => None,
        crate::live::Standing::CrlsOnly(reason) => Some(NodeResponse::Error {
            kind: ErrorKind::Unavailable,
            message: format!(
                "this node cannot check your certificate for revocation yet ({reason}); until it has fresh CRLs it exchanges CRLs only, try again later"
            ),
        }),
    }
}

async fn serve(
    node: &Arc<Node>,
    peer: AgencyCode,
    request: NodeRequest,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> NodeResponse {
    if node.stopping() {
        return NodeResponse::Error { kind: ErrorKind::Unavailable, message: "node is shutting down".into() };
    }
    match request {
        NodeRequest::Deliver { envelope, recipients, crls, crls_asked, resume, statuses_back } => {
            // The referenced CRLs first: one this node lacks is asked for before a byte of the
            // attachments is read (see `crl_refs`).
            let chain_cas =
                || crate::crl_refs::cas_of(node.trust.trust(), envelope_chains(&envelope).iter().map(Vec::as_slice));
            let crls: Vec<Vec<u8>> = match crate::crl_refs::resolve(node, &crls, &crls_asked, chain_cas).into_fetched()
            {
                Ok(fetched) => fetched.iter().map(|c| c.der().to_vec()).collect(),
                Err(answer) => return answer,
            };
            let resume =
                resume.then_some(ResumeAnswer { send, frame: |offsets| encode(&NodeResponse::ResumeFrom { offsets }) });
            let source = Source::Neighbour { agency: peer, statuses_back };
            match take_document_resumable(node, source, &envelope, &crls, &recipients, recv, resume).await {
                Ok(taken) => match taken.hop_receipt {
                    Some(r) => NodeResponse::HopReceipt {
                        receipt: ByteBuf::from(r),
                        statuses: taken.statuses.into_iter().map(ByteBuf::from).collect(),
                    },
                    None => NodeResponse::Error { kind: ErrorKind::Unavailable, message: "hop receipt missing".into() },
                },
                Err(e) if e.is_transient() => {
                    NodeResponse::Error { kind: ErrorKind::Unavailable, message: e.to_string() }
                }
                Err(e) => match e.receipt() {
                    Some(r) => NodeResponse::Refused { receipt: ByteBuf::from(r.to_vec()) },
                    None => NodeResponse::Error { kind: ErrorKind::BadRequest, message: e.to_string() },
                },
            }
        }
        NodeRequest::Notices { receipts, crls, crls_asked } => {
            if receipts.len() > crate::protocol::MAX_NOTICES {
                return NodeResponse::Error {
                    kind: ErrorKind::BadRequest,
                    message: format!(
                        "{} receipts in one request; at most {}",
                        receipts.len(),
                        crate::protocol::MAX_NOTICES
                    ),
                };
            }
            let receipts: Vec<Vec<u8>> = receipts.into_iter().map(ByteBuf::into_vec).collect();
            let chain_cas = || {
                let chains: Vec<Vec<Vec<u8>>> = receipts
                    .iter()
                    .filter_map(|b| pki::document::SignedReceipt::from_bytes(b).ok())
                    .map(|r| r.chain_der().to_vec())
                    .collect();
                crate::crl_refs::cas_of(node.trust.trust(), chains.iter().map(Vec::as_slice))
            };
            let fetched = match crate::crl_refs::resolve(node, &crls, &crls_asked, chain_cas).into_fetched() {
                Ok(fetched) => fetched,
                Err(answer) => return answer,
            };
            match crate::notices::take_notices(node, peer, &receipts, &fetched).await {
                Ok(refused) => NodeResponse::NoticesTaken { refused },
                Err((kind, message)) => NodeResponse::Error { kind, message },
            }
        }
        NodeRequest::CrlPush { crls } => {
            if node.routes.relation(&peer) != Some(crate::routing::Relation::Parent) {
                return NodeResponse::Error {
                    kind: ErrorKind::Forbidden,
                    message: "only the parent pushes CRLs".into(),
                };
            }
            let crls: Vec<Vec<u8>> = crls.into_iter().map(ByteBuf::into_vec).collect();
            crate::crls::take_pushed(node, &crls).await;
            NodeResponse::Accepted
        }
        NodeRequest::Route { recipients, hops_left } => {
            crate::route_check::answer_neighbour(node, peer, &recipients, hops_left).await
        }
        NodeRequest::CrlFetch { known } => {
            let known: Vec<(Vec<u8>, i64)> = known.into_iter().map(|(i, t)| (i.into_vec(), t)).collect();
            NodeResponse::Crls { crls: crate::crls::newer_than(node, &known).into_iter().map(ByteBuf::from).collect() }
        }
        NodeRequest::LogWitness { add_checkpoint, seal_chain } => {
            let chain: Vec<Vec<u8>> = seal_chain.into_iter().map(ByteBuf::into_vec).collect();
            crate::tlog::witness::answer(node, peer, &add_checkpoint, chain).await
        }
        NodeRequest::LogEntries { from } => crate::tlog::query::entries_for(node, peer, from).await,
        NodeRequest::PathEvidence { envelope, toward, hops_left } => {
            crate::path::answer(node, peer, &envelope, toward, hops_left).await
        }
    }
}

/// The signer chains of an envelope (DER, leaf first); none when it does not parse (it is
/// refused later, with its reason).
fn envelope_chains(envelope: &[u8]) -> Vec<Vec<Vec<u8>>> {
    pki::document::Envelope::from_bytes(envelope)
        .and_then(|e| e.headers())
        .map(|h| h.into_iter().map(|h| h.chain).collect())
        .unwrap_or_default()
}
