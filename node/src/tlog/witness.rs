//! Witnessing over the node protocol: asking the witnesses to co-sign this node's latest
//! checkpoint ([`ask_all`]), and answering a neighbour that asks ([`answer`]).
//!
//! The asker sends a C2SP `tlog-witness` add-checkpoint body — the size the witness last
//! co-signed, the consistency proof from it, the checkpoint signed by its seal — with its seal
//! chain. The witness validates the chain (seal profile, the asker's own agency, now), applies
//! `pki::tlog::check_checkpoint` against what it co-signed last for that log, inside one
//! transaction that holds that row, and either co-signs (C2SP `tlog-cosignature`, its seal,
//! its clock) and keeps the checkpoint, or refuses. A fork, rollback or rewrite is kept as
//! evidence (both signed checkpoints and the proof), raised in `status` and mailed to the
//! operators.

use pki::tlog::{AddCheckpoint, Cosignature, ForkReason, SignedCheckpoint, WitnessRefusal, check_checkpoint};
use pki::{AgencyCode, Profile};
use serde_bytes::ByteBuf;

use crate::Node;
use crate::protocol::{ErrorKind, NodeRequest, NodeResponse};
use crate::routing::Relation;
use crate::storage::tlog::{StoredCheckpoint, StoredFork};
use crate::storage::{StoreError, millis};

fn error(kind: ErrorKind, message: impl Into<String>) -> NodeResponse {
    NodeResponse::Error { kind, message: message.into() }
}

fn refused(reason: String, witnessed_size: Option<u64>, evidence: bool) -> NodeResponse {
    NodeResponse::WitnessRefused { reason, witnessed_size, evidence }
}

/// Why two checkpoints are evidence, in words.
fn reason_text(reason: &ForkReason) -> String {
    match reason {
        ForkReason::SameSizeDifferentRoot => "fork: two different roots for the same size".into(),
        ForkReason::Rollback => "rollback: a size below the one co-signed".into(),
        ForkReason::ProofFailed(e) => format!("rewritten history: the consistency proof fails ({e})"),
        other => format!("{other:?}"),
    }
}

/// Serves [`NodeRequest::LogWitness`] from neighbour `peer`.
pub async fn answer(node: &Node, peer: AgencyCode, body: &[u8], chain: Vec<Vec<u8>>) -> NodeResponse {
    // A node witnesses its children's logs; a level-1 node also its parent's, when the hub
    // names it in `log.witnesses` (the hub has no parent to do it).
    if !matches!(node.routes.relation(&peer), Some(Relation::Child | Relation::Parent)) {
        return error(ErrorKind::Forbidden, "this node witnesses the logs of its children (and of its parent) only");
    }
    let request = match AddCheckpoint::parse(body) {
        Ok(r) => r,
        Err(e) => return error(ErrorKind::BadRequest, e.to_string()),
    };
    let presented = request.checkpoint.checkpoint();
    if presented.origin.agency != peer {
        return error(ErrorKind::Forbidden, format!("{peer} presented the log of {}", presented.origin.agency));
    }
    let now = node.now();
    let seal = match node.trust.trust().validate(&chain, now, Profile::Seal) {
        Ok(v) => v,
        Err(e) => return error(ErrorKind::BadRequest, format!("the log's seal chain: {e}")),
    };
    if seal.agency != peer {
        return error(ErrorKind::Forbidden, format!("the seal chain is of {}, not of {peer}", seal.agency));
    }
    let key = match &seal.leaf.public_key {
        Ok(k) => k,
        Err(e) => return error(ErrorKind::BadRequest, format!("the log's seal key: {e}")),
    };
    match decide(node, peer, &request, key, &chain, now).await {
        Ok(response) => response,
        Err(e) => {
            node.storage_failed("witnessing a checkpoint", &e);
            error(ErrorKind::Unavailable, crate::intake::storage_reason(&e))
        }
    }
}

async fn decide(
    node: &Node,
    peer: AgencyCode,
    request: &AddCheckpoint,
    key: &pki::algorithm::PublicKey,
    chain: &[Vec<u8>],
    now: time::OffsetDateTime,
) -> Result<NodeResponse, StoreError> {
    let now_ms = millis(now);
    let mut tx = node.store.begin().await?;
    let last = match tx.witnessed_for_update(&peer).await? {
        Some(w) => Some(
            SignedCheckpoint::parse(w.note.as_bytes())
                .map_err(|e| StoreError::Corrupt(format!("the checkpoint co-signed for {peer}: {e}")))?,
        ),
        None => None,
    };
    match check_checkpoint(last.as_ref(), request, key) {
        Ok(()) => {
            let body = request.checkpoint.checkpoint();
            let cosignature = Cosignature::sign(body, node.config.agency, &node.seal().key, now)
                .map_err(|e| StoreError::Corrupt(format!("cannot co-sign with the seal: {e}")))?;
            let kept = request.checkpoint.without_cosignatures().to_text();
            tx.set_witnessed(&peer, &kept, body.size, chain, now_ms).await?;
            tx.commit().await?;
            tracing::debug!(peer = %peer, size = body.size, "log checkpoint co-signed");
            Ok(NodeResponse::Cosigned {
                cosignature: cosignature.line(),
                seal_chain: node.seal().chain.iter().map(|c| ByteBuf::from(c.der().to_vec())).collect(),
            })
        }
        Err(WitnessRefusal::Inconsistent(evidence)) => {
            let reason = reason_text(&evidence.reason);
            let fork = StoredFork {
                agency: peer.to_string(),
                reason: reason.clone(),
                witnessed: evidence.witnessed.to_text(),
                presented: evidence.presented.to_text(),
                proof: request.to_text(),
                at: now_ms,
            };
            tx.insert_fork(&fork).await?;
            let mail = crate::mail::log_fork(node, &peer, &reason, evidence.witnessed.checkpoint().size, now);
            crate::mail::enqueue(&mut tx, node, &mail, now_ms).await?;
            tx.commit().await?;
            tracing::error!(peer = %peer, reason = %reason, "a neighbour's log does not extend the checkpoint this node co-signed; evidence kept");
            Ok(refused(format!("{reason}; this witness kept both checkpoints as evidence"), None, true))
        }
        Err(WitnessRefusal::SizeMismatch { witnessed, .. }) => {
            tx.rollback().await?;
            Ok(refused(format!("this witness last co-signed size {witnessed}"), Some(witnessed), false))
        }
        Err(other) => {
            tx.rollback().await?;
            Ok(refused(other.to_string(), None, false))
        }
    }
}

/// Asks every witness that has not co-signed `latest` yet.
pub async fn ask_all(node: &Node, latest: &StoredCheckpoint) -> Result<(), StoreError> {
    let cosigners = node.store.log_cosigners().await?;
    for witness in super::witnesses(node) {
        let last = cosigners.iter().find(|(a, _, _)| *a == witness.to_string()).map_or(0, |(_, _, size)| *size);
        if last >= latest.size {
            continue;
        }
        ask(node, witness, last, latest).await?;
    }
    Ok(())
}

/// Asks `witness` to co-sign `latest`, proving consistency from `old` (retried once from the
/// size the witness says it has).
async fn ask(node: &Node, witness: AgencyCode, old: u64, latest: &StoredCheckpoint) -> Result<(), StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("log checkpoint of size {}: {e}", latest.size));
    let signed = SignedCheckpoint::parse(latest.note.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    let mut old = old;
    for _attempt in 0..2 {
        let proof = if old == 0 || old >= latest.size {
            Vec::new()
        } else {
            let plan = pki::tlog::consistency_plan(old, latest.size).map_err(|e| corrupt(e.to_string()))?;
            let hashes = node.store.log_hashes(plan.nodes()).await?;
            plan.assemble(&hashes).map_err(|e| corrupt(e.to_string()))?
        };
        let body = AddCheckpoint { old_size: old, proof, checkpoint: signed.without_cosignatures() }.to_text();
        let request = NodeRequest::LogWitness {
            add_checkpoint: ByteBuf::from(body.into_bytes()),
            seal_chain: node.seal().chain.iter().map(|c| ByteBuf::from(c.der().to_vec())).collect(),
        };
        let response = match node.outbound.simple_request(&witness, &request).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(peer = %witness, error = %e, "log witness not reached; asked again at the next round");
                return Ok(());
            }
        };
        match response {
            NodeResponse::Cosigned { cosignature, seal_chain } => {
                let chain: Vec<Vec<u8>> = seal_chain.into_iter().map(ByteBuf::into_vec).collect();
                match check_cosignature(node, witness, &signed, &cosignature, &chain) {
                    Ok(cosignature) => return keep(node, witness, latest.size, &cosignature, &chain).await,
                    Err(e) => {
                        tracing::warn!(peer = %witness, error = %e, "the witness's cosignature does not verify");
                        return Ok(());
                    }
                }
            }
            NodeResponse::WitnessRefused { witnessed_size: Some(size), .. } if size != old && size < latest.size => {
                old = size;
            }
            NodeResponse::WitnessRefused { reason, .. } => {
                tracing::error!(peer = %witness, size = latest.size, reason = %reason, "the witness refused this node's log checkpoint");
                let mut tx = node.store.begin().await?;
                tx.checkpoint_refused(latest.size, &format!("{witness}: {reason}")).await?;
                tx.commit().await?;
                return Ok(());
            }
            other => {
                tracing::info!(peer = %witness, answer = %other, "log witness did not co-sign; asked again at the next round");
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Checks a cosignature line from `witness`: its name, its seal chain (valid now, of that
/// agency), its signature over the checkpoint.
fn check_cosignature(
    node: &Node,
    witness: AgencyCode,
    signed: &SignedCheckpoint,
    line: &str,
    chain: &[Vec<u8>],
) -> Result<Cosignature, String> {
    let cosignature = Cosignature::parse_line(line).map_err(|e| e.to_string())?;
    if cosignature.witness != witness {
        return Err(format!("the cosignature is by {}, not {witness}", cosignature.witness));
    }
    let seal = node.trust.trust().validate(chain, node.now(), Profile::Seal).map_err(|e| e.to_string())?;
    if seal.agency != witness {
        return Err(format!("the seal chain is of {}, not {witness}", seal.agency));
    }
    let key = seal.leaf.public_key.as_ref().map_err(|e| e.to_string())?;
    cosignature.verify(signed.checkpoint(), key).map_err(|e| e.to_string())?;
    Ok(cosignature)
}

/// Adds the cosignature to the stored checkpoint and remembers the witness's size and chain.
async fn keep(
    node: &Node,
    witness: AgencyCode,
    size: u64,
    cosignature: &Cosignature,
    chain: &[Vec<u8>],
) -> Result<(), StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("log checkpoint of size {size}: {e}"));
    let mut tx = node.store.begin().await?;
    let Some(note) = tx.checkpoint_note(size).await? else {
        return Err(corrupt("gone".into()));
    };
    let mut signed = SignedCheckpoint::parse(note.as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    // A witness asked twice for the same checkpoint keeps its first cosignature in the note.
    if signed.add_cosignature(cosignature).is_err() {
        tx.rollback().await?;
        return Ok(());
    }
    tx.add_cosignature(size, &signed.to_text(), &witness, chain, millis(node.now())).await?;
    tx.commit().await?;
    tracing::info!(peer = %witness, size, "log checkpoint co-signed by the witness");
    Ok(())
}
