//! Answering questions about the log: a clerk's (`lienthong log`: checkpoint, prove,
//! consistency, audit) and a child's (the entries naming it, for its audit).
//!
//! Everything the node answers is checkable by the asker: checkpoints are signed notes with
//! their cosignatures, proofs are `pki::tlog::LogProof`s with the seal chains they need, and
//! the CRLs covering those chains travel along. The node never verifies on the asker's behalf.

use pki::AgencyCode;
use pki::tlog::{LogEntry, LogProof, SignedCheckpoint, Via};
use serde_bytes::ByteBuf;

use crate::Node;
use crate::protocol::{
    AuditFinding, ClerkResponse, ErrorKind, LogAnswer, LogQuery, MAX_LOG_ENTRIES, MAX_PATH_PROOFS, NodeRequest,
    NodeResponse, Toward,
};
use crate::routing::Relation;
use crate::storage::StoreError;

/// Most pages of entries an audit reads from the parent (each [`MAX_LOG_ENTRIES`]).
pub const MAX_AUDIT_PAGES: usize = 1000;

fn bad(message: impl Into<String>) -> ClerkResponse {
    ClerkResponse::Error { kind: ErrorKind::BadRequest, message: message.into() }
}

fn unavailable(e: impl std::fmt::Display) -> ClerkResponse {
    ClerkResponse::Error { kind: ErrorKind::Unavailable, message: e.to_string() }
}

fn der_chain(chain: &[pki::Certificate]) -> Vec<Vec<u8>> {
    chain.iter().map(|c| c.der().to_vec()).collect()
}

fn bufs(chains: &[Vec<Vec<u8>>]) -> Vec<Vec<ByteBuf>> {
    chains.iter().map(|c| c.iter().map(|d| ByteBuf::from(d.clone())).collect()).collect()
}

/// The log's seal chain, then each witness's that co-signed.
async fn chains(node: &Node) -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
    let mut chains = vec![der_chain(&node.seal().chain)];
    chains.extend(node.store.log_cosigners().await?.into_iter().map(|(_, chain, _)| chain));
    Ok(chains)
}

/// Serves a clerk's [`LogQuery`].
pub async fn answer(node: &Node, query: LogQuery) -> ClerkResponse {
    if !node.config.log.enabled {
        return bad("this node keeps no transparency log (log.enabled = false)");
    }
    match run(node, query).await {
        Ok(Ok(answer)) => ClerkResponse::Log { answer },
        Ok(Err(refusal)) => refusal,
        Err(e) => unavailable(e),
    }
}

async fn run(node: &Node, query: LogQuery) -> Result<Result<LogAnswer, ClerkResponse>, StoreError> {
    match query {
        LogQuery::Checkpoint => {
            let Some(latest) = super::checkpoint_on_demand(node).await? else {
                return Ok(Err(bad("the log is empty")));
            };
            let chains = chains(node).await?;
            let crls = node.crls_for(&chains).await.into_iter().map(ByteBuf::from).collect();
            Ok(Ok(LogAnswer::Checkpoint { note: latest.note, chains: bufs(&chains), crls }))
        }
        LogQuery::Prove { envelope } => {
            let Ok(envelope) = <[u8; 32]>::try_from(envelope.as_slice()) else {
                return Ok(Err(bad("an envelope digest is 32 bytes")));
            };
            prove(node, &envelope).await
        }
        LogQuery::Consistency { old, new } => consistency(node, old, new).await,
        LogQuery::Audit => audit(node).await,
    }
}

/// A proof of every entry about `envelope` into the latest checkpoint a witness co-signed.
pub async fn log_proofs(node: &Node, envelope: &[u8; 32]) -> Result<Vec<LogProof>, StoreError> {
    proofs_of(node, envelope, |_| true).await
}

/// A proof of each entry about `envelope` that `wanted` keeps, into the latest checkpoint a
/// witness co-signed.
async fn proofs_of(
    node: &Node,
    envelope: &[u8; 32],
    wanted: impl Fn(&LogEntry) -> bool,
) -> Result<Vec<LogProof>, StoreError> {
    let leaves = node.store.log_leaves_for(envelope).await?;
    let Some(checkpoint) = node.store.latest_witnessed_checkpoint().await? else { return Ok(Vec::new()) };
    let corrupt = |e: String| StoreError::Corrupt(format!("log proof: {e}"));
    let signed = SignedCheckpoint::parse(checkpoint.note.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    let chains = chains(node).await?;
    let mut proofs = Vec::new();
    for (index, bytes) in leaves.into_iter().filter(|(i, _)| *i < checkpoint.size) {
        let entry = LogEntry::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if !wanted(&entry) {
            continue;
        }
        let plan = pki::tlog::inclusion_plan(index, checkpoint.size).map_err(|e| corrupt(e.to_string()))?;
        let hashes = node.store.log_hashes(plan.nodes()).await?;
        let inclusion = plan.assemble(&hashes).map_err(|e| corrupt(e.to_string()))?;
        proofs.push(LogProof::new(&entry, index, inclusion, signed.clone(), chains.clone()));
    }
    Ok(proofs)
}

async fn prove(node: &Node, envelope: &[u8; 32]) -> Result<Result<LogAnswer, ClerkResponse>, StoreError> {
    if node.store.log_leaves_for(envelope).await?.is_empty() {
        return Ok(Err(bad(format!("no entry about envelope {} in this node's log yet", hex::encode(envelope)))));
    }
    let proofs = log_proofs(node, envelope).await?;
    if proofs.is_empty() {
        return Ok(Err(ClerkResponse::Error {
            kind: ErrorKind::Unavailable,
            message: "the entries are not in a co-signed checkpoint yet; try again after the next checkpoint".into(),
        }));
    }
    let chains = chains(node).await?;
    let crls = node.crls_for(&chains).await.into_iter().map(ByteBuf::from).collect();
    Ok(Ok(LogAnswer::Proofs { proofs: proofs.iter().map(|p| ByteBuf::from(p.to_bytes())).collect(), crls }))
}

async fn consistency(node: &Node, old: u64, new: u64) -> Result<Result<LogAnswer, ClerkResponse>, StoreError> {
    if old == 0 || old > new {
        return Ok(Err(bad(format!("consistency needs 0 < OLD <= NEW, not {old} and {new}"))));
    }
    let (Some(old_cp), Some(new_cp)) = (node.store.checkpoint_at(old).await?, node.store.checkpoint_at(new).await?)
    else {
        return Ok(Err(bad(format!("this node signed no checkpoint of size {old} or {new}"))));
    };
    let corrupt = |e: String| StoreError::Corrupt(format!("consistency proof: {e}"));
    let plan = pki::tlog::consistency_plan(old, new).map_err(|e| corrupt(e.to_string()))?;
    let hashes = node.store.log_hashes(plan.nodes()).await?;
    let proof = plan.assemble(&hashes).map_err(|e| corrupt(e.to_string()))?;
    let chains = chains(node).await?;
    let crls = node.crls_for(&chains).await.into_iter().map(ByteBuf::from).collect();
    Ok(Ok(LogAnswer::Consistency {
        old: old_cp.note,
        new: new_cp.note,
        proof: proof.iter().map(|h| ByteBuf::from(h.to_vec())).collect(),
        chains: bufs(&chains),
        crls,
    }))
}

/// The parent's entries naming this node, each checked against this node's records: a
/// document it holds and routed to the parent.
async fn audit(node: &Node) -> Result<Result<LogAnswer, ClerkResponse>, StoreError> {
    let Some(parent) = node.config.parent.as_ref().map(|p| p.agency) else {
        return Ok(Err(bad("this node has no parent whose log could be audited")));
    };
    let own = node.config.agency;
    let mut from = 0u64;
    let (mut checked, mut not_sent) = (0u64, Vec::new());
    for _page in 0..MAX_AUDIT_PAGES {
        let (entries, more) = match node.simple_request(&parent, &NodeRequest::LogEntries { from }).await {
            Ok(NodeResponse::LogEntries { entries, more }) => (entries, more),
            Ok(other) => return Ok(Err(unavailable(format!("the parent {parent} answered {other}")))),
            Err(e) => return Ok(Err(unavailable(format!("the parent {parent} could not be asked: {e}")))),
        };
        for (index, bytes) in &entries {
            let Ok(LogEntry::Document { envelope, document, via: Via::Node(via), at }) = LogEntry::from_bytes(bytes)
            else {
                return Ok(Err(unavailable(format!("the parent's entry {index} is not a document entry"))));
            };
            if via != own {
                return Ok(Err(unavailable(format!("the parent answered entry {index} about {via}, not this node"))));
            }
            checked += 1;
            if !node.store.routed_to(&envelope, &parent).await? {
                not_sent.push(AuditFinding {
                    index: *index,
                    document: document.to_string(),
                    envelope: hex::encode(envelope),
                    at: at.unix_timestamp(),
                });
            }
        }
        match entries.last() {
            Some((last, _)) if more => from = last + 1,
            _ => break,
        }
    }
    for f in &not_sent {
        tracing::error!(peer = %parent, document = %f.document, index = f.index, "the parent logged a document as handed over by this node, which never sent it");
    }
    Ok(Ok(LogAnswer::Audit { parent: parent.to_string(), checked, not_sent }))
}

/// Serves a child's [`NodeRequest::LogEntries`]: the document entries naming it.
pub async fn entries_for(node: &Node, peer: AgencyCode, from: u64) -> NodeResponse {
    if node.routes.relation(&peer) != Some(Relation::Child) {
        return NodeResponse::Error {
            kind: ErrorKind::Forbidden,
            message: "a node shows its children the entries that name them, and nobody else".into(),
        };
    }
    let limit = MAX_LOG_ENTRIES as i64 + 1;
    match node.store.log_documents_via(&peer.to_string(), from, limit).await {
        Ok(mut entries) => {
            let more = entries.len() > MAX_LOG_ENTRIES;
            entries.truncate(MAX_LOG_ENTRIES);
            NodeResponse::LogEntries {
                entries: entries.into_iter().map(|(i, b)| (i, ByteBuf::from(b))).collect(),
                more,
            }
        }
        Err(e) => {
            node.storage_failed("reading log entries", &e);
            NodeResponse::Error { kind: ErrorKind::Unavailable, message: crate::intake::storage_reason(&e) }
        }
    }
}

/// How many nodes a question about a document's path may pass (the longest path in the
/// hierarchy, commune to commune through the hub, is 7 nodes).
pub const MAX_PATH_HOPS: u8 = 8;
/// How long a node waits for a neighbour's proofs, per node still to be asked beyond it, so
/// that an inner node gives up before the one that asked it does (the neighbours on a path
/// are normally connected already: a question costs a round trip, not a handshake).
pub const PATH_WAIT_PER_HOP: std::time::Duration = std::time::Duration::from_millis(500);

/// The proofs a document's path holds: this node's document entries about `envelope` (those
/// in a co-signed checkpoint) and, `hops_left` permitting, the proofs its neighbours further
/// `toward` give, asked at the same time, except `came_from` (the neighbour that asked), each
/// given `wait`. At most [`MAX_PATH_PROOFS`], each once; with the CRLs covering their chains.
/// A neighbour that cannot answer in time only leaves its part out.
pub async fn path_proofs(
    node: &std::sync::Arc<Node>,
    envelope: [u8; 32],
    toward: Toward,
    came_from: Option<AgencyCode>,
    hops_left: u8,
    wait: std::time::Duration,
) -> Result<(Vec<Vec<u8>>, Vec<Vec<u8>>), StoreError> {
    let own = proofs_of(node, &envelope, |e| matches!(e, LogEntry::Document { .. })).await?;
    let mut proofs: Vec<Vec<u8>> = own.iter().map(LogProof::to_bytes).collect();
    // This node's proofs all carry the same chains (its seal's and its witnesses').
    let mut crls = match own.first() {
        Some(p) => node.crls_for(&p.chains).await,
        None => Vec::new(),
    };
    let next: Vec<AgencyCode> = match toward {
        _ if hops_left == 0 => Vec::new(),
        // From the document's own record, not the log: a leaf is indexed only at the next
        // checkpoint.
        Toward::Sender => node.store.received_from(&envelope).await?.and_then(|f| f.parse().ok()).into_iter().collect(),
        Toward::Recipients => node.store.routed_hops(&envelope).await?.iter().filter_map(|h| h.parse().ok()).collect(),
    };
    let mut asks = tokio::task::JoinSet::new();
    for hop in next.into_iter().filter(|h| Some(*h) != came_from && *h != node.config.agency) {
        let node = node.clone();
        let request =
            NodeRequest::LogProofs { envelope: ByteBuf::from(envelope.to_vec()), toward, hops_left: hops_left - 1 };
        asks.spawn(async move {
            // Given up on by dropping the exchange (its stream is reset), not by `request`'s own
            // timeout, which would close the connection the neighbour's transfers share.
            let limit = node.config.limits.request_timeout.max(wait);
            let exchange =
                node.request(&hop, &request, limit, |mut s| async move { s.finish().map_err(|e| e.to_string()) });
            let answer = match tokio::time::timeout(wait, exchange).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no log proofs from {hop} within {} ms", wait.as_millis())),
            };
            (hop, answer)
        });
    }
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((hop, Ok(NodeResponse::LogProofs { proofs: theirs, crls: their_crls }))) => {
                // A neighbour's answer is not trusted: only proofs that parse, fit a bundle and
                // are about this envelope are passed on (the verifier checks the rest).
                let received = theirs.len();
                let kept: Vec<Vec<u8>> =
                    theirs.into_iter().map(ByteBuf::into_vec).filter(|p| about(p, &envelope)).collect();
                if kept.len() < received {
                    tracing::warn!(peer = %hop, dropped = received - kept.len(), "log proofs from a neighbour that are not about this document (or too large) were dropped");
                }
                proofs.extend(kept);
                crls.extend(their_crls.into_iter().map(ByteBuf::into_vec));
            }
            Ok((hop, Ok(other))) => tracing::debug!(peer = %hop, answer = %other, "no log proofs from the neighbour"),
            Ok((hop, Err(e))) => tracing::debug!(peer = %hop, error = %e, "no log proofs from the neighbour"),
            Err(e) => tracing::warn!(error = %e, "asking a neighbour for log proofs failed"),
        }
    }
    let mut seen = std::collections::HashSet::new();
    proofs.retain(|p| seen.insert(ring::digest::digest(&ring::digest::SHA256, p).as_ref().to_vec()));
    proofs.truncate(MAX_PATH_PROOFS);
    Ok((proofs, newest_per_issuer(crls)))
}

/// Whether `bytes` is a log proof that a bundle can carry, about a document entry of
/// `envelope`.
fn about(bytes: &[u8], envelope: &[u8; 32]) -> bool {
    bytes.len() <= pki::tlog::MAX_LOG_PROOF_BYTES
        && LogProof::from_bytes(bytes).ok().and_then(|p| p.proof.extra).is_some_and(
            |leaf| matches!(LogEntry::from_bytes(&leaf), Ok(LogEntry::Document { envelope: e, .. }) if e == *envelope),
        )
}

/// The newest readable CRL of each issuer among `crls` (nodes on a path may hold different
/// versions of one CA's CRL; a bundle carries one, and at most [`MAX_PATH_CRLS`]).
pub fn newest_per_issuer(crls: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut newest: std::collections::BTreeMap<Vec<u8>, (time::OffsetDateTime, Vec<u8>)> = Default::default();
    for der in crls {
        let Ok(crl) = pki::Crl::from_der(&der) else { continue };
        match newest.get(&crl.issuer_raw) {
            Some((at, _)) if *at >= crl.this_update => {}
            _ => {
                newest.insert(crl.issuer_raw.clone(), (crl.this_update, der));
            }
        }
    }
    newest.into_values().map(|(_, der)| der).take(MAX_PATH_CRLS).collect()
}

/// Most CRLs a fetched bundle carries: one per CA on the paths of its signers, receipts and
/// proofs, well inside a bundle's 64.
pub const MAX_PATH_CRLS: usize = 48;

/// Serves a neighbour's [`NodeRequest::LogProofs`]: only a neighbour the document passed
/// between (this node took it from the asker, or routed it to the asker) learns anything,
/// and one that did not is answered as if the document were unknown.
pub async fn proofs_for(
    node: &std::sync::Arc<Node>,
    peer: AgencyCode,
    envelope: &[u8],
    toward: Toward,
    hops_left: u8,
) -> NodeResponse {
    let Ok(envelope) = <[u8; 32]>::try_from(envelope) else {
        return NodeResponse::Error { kind: ErrorKind::BadRequest, message: "an envelope digest is 32 bytes".into() };
    };
    if !node.config.log.enabled {
        return NodeResponse::LogProofs { proofs: Vec::new(), crls: Vec::new() };
    }
    let passed = async {
        Ok::<_, StoreError>(match toward {
            // The asker is further on: this node routed the document to it.
            Toward::Sender => node.store.routed_to(&envelope, &peer).await?,
            // The asker is further back: this node took the document from it.
            Toward::Recipients => node.store.received_from(&envelope).await?.is_some_and(|f| f == peer.to_string()),
        })
    };
    let result = match passed.await {
        Ok(true) => {
            let hops = hops_left.min(MAX_PATH_HOPS);
            path_proofs(node, envelope, toward, Some(peer), hops, PATH_WAIT_PER_HOP * u32::from(hops)).await
        }
        Ok(false) => {
            return NodeResponse::Error {
                kind: ErrorKind::Forbidden,
                message:
                    "a node shows the log proofs of a document only to the neighbours it passed the document between"
                        .into(),
            };
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((proofs, crls)) => NodeResponse::LogProofs {
            proofs: proofs.into_iter().map(ByteBuf::from).collect(),
            crls: crls.into_iter().map(ByteBuf::from).collect(),
        },
        Err(e) => {
            node.storage_failed("reading log proofs", &e);
            NodeResponse::Error { kind: ErrorKind::Unavailable, message: crate::intake::storage_reason(&e) }
        }
    }
}
