//! What the nodes on a document's path hold about it, gathered by asking along the path: the
//! hop receipts given at each hand-over and the inclusion proofs of the envelope in each
//! node's log. `lienthong track` and `fetch` use it, so that a hop receipt can stay with the
//! node it was given to instead of travelling back to the sender (which cost a document
//! H(H+1)/2 notice transfers over H hops; now the sender's status receipts alone travel).
//!
//! Each node answers for itself and asks its own neighbours further on, all at once where the
//! path branches; a neighbour's answer is filtered before it is passed on, and the asker
//! verifies everything it gets (the node never verifies on anyone's behalf).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use pki::AgencyCode;
use pki::document::{ReceiptKind, SignedReceipt};
use pki::tlog::{LogEntry, LogProof};
use serde_bytes::ByteBuf;

use crate::Node;
use crate::protocol::{ErrorKind, MAX_PATH_PROOFS, MAX_PATH_RECEIPTS, NodeRequest, NodeResponse, Toward};
use crate::storage::StoreError;

/// How many nodes a question about a document's path may pass (the longest path in the
/// hierarchy, commune to commune through the hub, is 7 nodes).
pub const MAX_PATH_HOPS: u8 = 8;
/// How long a node waits for a neighbour's answer, per node still to be asked beyond it, so
/// that an inner node gives up before the one that asked it does (the neighbours on a path
/// are normally connected already: a question costs a round trip, not a handshake).
pub const PATH_WAIT_PER_HOP: Duration = Duration::from_millis(500);
/// Most CRLs gathered along a path: one per CA on the paths of its signers, receipts and
/// proofs, well inside a bundle's 64.
pub const MAX_PATH_CRLS: usize = 48;
/// Largest hop receipt passed on from a neighbour: a receipt is a COSE seal with its chain
/// (about 3 KiB); a bundle entry may be 256 KiB.
pub const MAX_HOP_RECEIPT_BYTES: usize = 256 * 1024;

/// What a path holds about a document: log proofs, hop receipts (exact bytes, each once) and
/// the newest CRL of each CA their chains need.
#[derive(Debug, Default)]
pub struct PathEvidence {
    /// Encoded `pki::tlog::LogProof`s, at most [`MAX_PATH_PROOFS`].
    pub proofs: Vec<Vec<u8>>,
    /// Signed hop receipts, at most [`MAX_PATH_RECEIPTS`].
    pub receipts: Vec<Vec<u8>>,
    /// DER CRLs, the newest per issuer, at most [`MAX_PATH_CRLS`].
    pub crls: Vec<Vec<u8>>,
}

/// Gathers what the path holds about `envelope`: this node's own part and, `hops_left`
/// permitting, what its neighbours further `toward` give, asked at the same time, except
/// `came_from` (the neighbour that asked), each given `wait`. A neighbour that cannot answer
/// in time only leaves its part out.
///
/// This node's own part: toward the recipients, the hop receipts its next hops gave it;
/// toward the sender, the hop receipt it gave its previous hop; and its log's document entries
/// about the envelope that are in a co-signed checkpoint.
pub async fn gather(
    node: &Arc<Node>,
    envelope: [u8; 32],
    toward: Toward,
    came_from: Option<AgencyCode>,
    hops_left: u8,
    wait: Duration,
) -> Result<PathEvidence, StoreError> {
    let mut found = own_part(node, &envelope, toward).await?;
    let next: Vec<AgencyCode> = match toward {
        _ if hops_left == 0 => Vec::new(),
        // From the document's own record, not the log: a leaf is indexed only at the next
        // checkpoint.
        Toward::Sender => node.store.received_from(&envelope).await?.and_then(|f| f.parse().ok()).into_iter().collect(),
        Toward::Recipients => node.store.routed_hops(&envelope).await?.iter().filter_map(|h| h.parse().ok()).collect(),
    };
    let next: Vec<AgencyCode> =
        next.into_iter().filter(|h| Some(*h) != came_from && *h != node.config.agency).collect();
    // Each neighbour gets its share of the answer, so one (faulty or hostile) branch cannot
    // crowd out the others.
    let share = |max: usize| (max / next.len().max(1)).max(1);
    let mut asks = tokio::task::JoinSet::new();
    for hop in next.iter().copied() {
        let node = node.clone();
        let request =
            NodeRequest::PathEvidence { envelope: ByteBuf::from(envelope.to_vec()), toward, hops_left: hops_left - 1 };
        asks.spawn(async move {
            // Given up on by dropping the exchange (its stream is reset), not by `request`'s own
            // timeout, which would close the connection the neighbour's transfers share.
            let limit = node.config.limits.request_timeout.max(wait);
            let exchange = node.outbound.request(&hop, &request, limit, crate::outbound::finish);
            let answer = match tokio::time::timeout(wait, exchange).await {
                Ok(answer) => answer.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer about the path from {hop} within {} ms", wait.as_millis())),
            };
            (hop, answer)
        });
    }
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((hop, Ok(NodeResponse::PathEvidence { proofs, receipts, crls }))) => {
                // A neighbour's answer is not trusted: only proofs and hop receipts that parse,
                // fit a bundle and are about this envelope are passed on (the asker verifies).
                let received = proofs.len() + receipts.len();
                let keep = |items: Vec<ByteBuf>, about: fn(&[u8], &[u8; 32]) -> bool, max: usize| -> Vec<Vec<u8>> {
                    items.into_iter().map(ByteBuf::into_vec).filter(|x| about(x, &envelope)).take(share(max)).collect()
                };
                let proofs = keep(proofs, proof_about, MAX_PATH_PROOFS);
                let receipts = keep(receipts, hop_receipt_about, MAX_PATH_RECEIPTS);
                if proofs.len() + receipts.len() < received {
                    tracing::warn!(peer = %hop, dropped = received - proofs.len() - receipts.len(), "evidence from a neighbour that is not about this document, too large, or beyond its share was dropped");
                }
                found.proofs.extend(proofs);
                found.receipts.extend(receipts);
                // Only CRLs a CA this node knows signed: a forged "newer" CRL must not push the
                // genuine one out of a bundle.
                found.crls.extend(crls.into_iter().map(ByteBuf::into_vec).filter(|der| {
                    node.trust.trust().parse_crl(der).is_ok_and(|crl| node.trust.trust().knows_signer_of(&crl))
                }));
            }
            Ok((hop, Ok(other))) => {
                tracing::debug!(peer = %hop, answer = %other, "nothing about the path from the neighbour")
            }
            Ok((hop, Err(e))) => tracing::debug!(peer = %hop, error = %e, "nothing about the path from the neighbour"),
            Err(e) => tracing::warn!(error = %e, "asking a neighbour about a document's path failed"),
        }
    }
    once_each(&mut found.proofs, MAX_PATH_PROOFS);
    once_each(&mut found.receipts, MAX_PATH_RECEIPTS);
    within_bytes(&mut found, MAX_PATH_ANSWER_BYTES);
    found.crls = newest_per_issuer(std::mem::take(&mut found.crls));
    Ok(found)
}

/// This node's part of [`gather`]'s answer (see there), with the CRLs covering its chains.
async fn own_part(node: &Node, envelope: &[u8; 32], toward: Toward) -> Result<PathEvidence, StoreError> {
    let own = node.config.agency;
    let mut receipts = Vec::new();
    let mut chains = Vec::new();
    for stored in node.store.receipts_for(envelope).await? {
        let Ok(r) = SignedReceipt::from_bytes(&stored.bytes) else { continue };
        let wanted = r.receipt.kind == ReceiptKind::Hop
            && match toward {
                Toward::Recipients => r.receipt.to == own,
                Toward::Sender => r.receipt.by == own,
            };
        if wanted {
            chains.push(r.chain_der().to_vec());
            receipts.push(stored.bytes);
        }
    }
    let proofs = if node.config.log.enabled {
        crate::tlog::query::proofs_of(node, envelope, |e| matches!(e, LogEntry::Document { .. })).await?
    } else {
        Vec::new()
    };
    // This node's proofs all carry the same chains (its seal's and its witnesses').
    if let Some(p) = proofs.first() {
        chains.extend(p.chains.iter().cloned());
    }
    let crls = if chains.is_empty() { Vec::new() } else { node.trust.crls_for(&chains) };
    Ok(PathEvidence { proofs: proofs.iter().map(LogProof::to_bytes).collect(), receipts, crls })
}

/// Neighbours' questions about documents' paths being answered (see [`answer`]): at most
/// `limits.max_path_questions` at once, and a quarter of them (at least one) per neighbour.
#[derive(Debug)]
pub struct PathQuestions {
    /// `limits.max_path_questions` permits.
    all: tokio::sync::Semaphore,
    /// The questions open for each neighbour.
    by_peer: std::sync::Mutex<HashMap<AgencyCode, usize>>,
}

impl PathQuestions {
    /// Room for `max` questions at once.
    pub fn new(max: usize) -> PathQuestions {
        PathQuestions { all: tokio::sync::Semaphore::new(max), by_peer: std::sync::Mutex::new(HashMap::new()) }
    }
}

/// One neighbour's open question about a path, counted in [`PathQuestions`] until dropped.
struct PeerShare<'a> {
    questions: &'a PathQuestions,
    peer: AgencyCode,
}

impl<'a> PeerShare<'a> {
    /// Counts a question of `peer` if it has fewer than `max` open.
    fn take(questions: &'a PathQuestions, peer: AgencyCode, max: usize) -> Option<PeerShare<'a>> {
        let mut open = questions.by_peer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(peer).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerShare { questions, peer })
    }
}

impl Drop for PeerShare<'_> {
    fn drop(&mut self) {
        let mut open = self.questions.by_peer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// Most bytes of hop receipts and proofs in one answer about a path: half the default 4 MiB
/// frame, so an answer (with its CRLs) fits the frame of the node that asked; what comes first
/// (this node's own part, then its neighbours' in the order they answered) is kept.
pub const MAX_PATH_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// Keeps, this node's own part first, the receipts then the proofs that fit in `max` bytes.
fn within_bytes(found: &mut PathEvidence, max: usize) {
    let mut left = max;
    let mut fits = |item: &Vec<u8>| match left.checked_sub(item.len()) {
        Some(rest) => {
            left = rest;
            true
        }
        None => false,
    };
    found.receipts.retain(&mut fits);
    found.proofs.retain(&mut fits);
}

/// Keeps the first of equal items, then at most `max`.
fn once_each(items: &mut Vec<Vec<u8>>, max: usize) {
    let mut seen = HashSet::new();
    items.retain(|p| seen.insert(ring::digest::digest(&ring::digest::SHA256, p).as_ref().to_vec()));
    items.truncate(max);
}

/// Whether `bytes` is a log proof that a bundle can carry, about a document entry of
/// `envelope`.
fn proof_about(bytes: &[u8], envelope: &[u8; 32]) -> bool {
    bytes.len() <= pki::tlog::MAX_LOG_PROOF_BYTES
        && LogProof::from_bytes(bytes).ok().and_then(|p| p.proof.extra).is_some_and(
            |leaf| matches!(LogEntry::from_bytes(&leaf), Ok(LogEntry::Document { envelope: e, .. }) if e == *envelope),
        )
}

/// Whether `bytes` is a hop receipt that a bundle can carry, about `envelope`.
fn hop_receipt_about(bytes: &[u8], envelope: &[u8; 32]) -> bool {
    bytes.len() <= MAX_HOP_RECEIPT_BYTES
        && SignedReceipt::from_bytes(bytes)
            .is_ok_and(|r| r.receipt.kind == ReceiptKind::Hop && r.receipt.envelope == *envelope)
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

/// Serves a neighbour's [`NodeRequest::PathEvidence`]: only a neighbour the document passed
/// between (this node took it from the asker, or routed it to the asker) learns anything,
/// and one that did not is refused exactly as if the document were unknown.
pub async fn answer(
    node: &Arc<Node>,
    peer: AgencyCode,
    envelope: &[u8],
    toward: Toward,
    hops_left: u8,
) -> NodeResponse {
    let Ok(envelope) = <[u8; 32]>::try_from(envelope) else {
        return NodeResponse::Error { kind: ErrorKind::BadRequest, message: "an envelope digest is 32 bytes".into() };
    };
    // Held until the answer is built, the questions to further nodes included: all
    // neighbours together, and each neighbour its quarter, so that one cannot take them all.
    let limit = node.config.limits.max_path_questions;
    let busy = |message: String| {
        tracing::warn!(peer = %peer, limit, reason = %message, "a question about a document's path refused");
        NodeResponse::Error { kind: ErrorKind::Unavailable, message: format!("busy: {message}; ask again later") }
    };
    let questions = node.capacity.path_questions();
    let Ok(_permit) = questions.all.try_acquire() else {
        return busy(format!(
            "{limit} questions about documents' paths are being answered (limits.max_path_questions)"
        ));
    };
    let Some(_share) = PeerShare::take(questions, peer, (limit / 4).max(1)) else {
        return busy(format!(
            "this neighbour has {} questions about documents' paths open, its share of limits.max_path_questions",
            (limit / 4).max(1)
        ));
    };
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
            gather(node, envelope, toward, Some(peer), hops, PATH_WAIT_PER_HOP * u32::from(hops)).await
        }
        Ok(false) => {
            return NodeResponse::Error {
                kind: ErrorKind::Forbidden,
                message:
                    "a node shows what it holds about a document only to the neighbours it passed the document between"
                        .into(),
            };
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(found) => NodeResponse::PathEvidence {
            proofs: found.proofs.into_iter().map(ByteBuf::from).collect(),
            receipts: found.receipts.into_iter().map(ByteBuf::from).collect(),
            crls: found.crls.into_iter().map(ByteBuf::from).collect(),
        },
        Err(e) => {
            node.storage_failed("reading what a document's path holds", &e);
            NodeResponse::Error { kind: ErrorKind::Unavailable, message: crate::intake::storage_reason(&e) }
        }
    }
}
