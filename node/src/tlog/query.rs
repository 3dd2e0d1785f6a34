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
    AuditFinding, ClerkResponse, ErrorKind, LogAnswer, LogQuery, MAX_LOG_ENTRIES, NodeRequest, NodeResponse,
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
            let crls = node.trust.crls_for(&chains).into_iter().map(ByteBuf::from).collect();
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
pub(crate) async fn proofs_of(
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
    let crls = node.trust.crls_for(&chains).into_iter().map(ByteBuf::from).collect();
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
    let crls = node.trust.crls_for(&chains).into_iter().map(ByteBuf::from).collect();
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
        let (entries, more) = match node.outbound.simple_request(&parent, &NodeRequest::LogEntries { from }).await {
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
