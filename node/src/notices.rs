//! Receipts and statuses on the move: taking one from a neighbour, keeping it, acting on it
//! when it is addressed here, and forwarding it toward its addressee otherwise. Every node a
//! receipt passes through keeps it in its own database.

use std::sync::Arc;

use pki::document::{Receipt, ReceiptKind, SignedReceipt, StatusCode};
use pki::{AgencyCode, Crl};

use crate::protocol::ErrorKind;
use crate::routing::NextHop;
use crate::storage::{StoreError, StoredDocument, TransferKind, Tx, millis};
use crate::{Metrics, Node};

/// Verifies a receipt's seal with the node's CRLs plus `carried`.
pub fn verify_receipt(node: &Node, receipt: &SignedReceipt, carried: &[Vec<u8>]) -> Result<(), String> {
    receipt
        .verify(&node.trust.trust().validator_with(&node.trust.trust().parse_crls(carried)))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Whether the agency that sealed `r` may say what it says, checked before a notice from a
/// neighbour is kept, acted on or passed on. A valid seal proves who speaks, not that they
/// may speak for others:
/// - a recall request (13) comes from the document's sender only;
/// - a refusal (02) may come from a recipient or from a node that can stand on the path from
///   the sender to it: an ancestor of the sender or of the recipient (or either one itself),
///   the national tier where level-1 agencies meet, or one of this node's neighbours (a direct
///   peer on a short-cut path);
/// - every other status (01 arrived, 03–06, 15, 16) is a recipient speaking for itself only.
///
/// Hop receipts say only that their signer took the document from the addressee; they are
/// kept for tracking and change no state here.
pub fn standing(node: &Node, r: &Receipt) -> Result<(), String> {
    let sender = r.document.sender;
    match r.kind {
        ReceiptKind::Hop => Ok(()),
        ReceiptKind::Status(StatusCode::RecallRequested) if r.by != sender => {
            Err(format!("{} asks for {} back, but only its sender {sender} may", r.by, r.document))
        }
        ReceiptKind::Status(StatusCode::RecallRequested) => Ok(()),
        ReceiptKind::Status(StatusCode::Refused) => {
            let on_path = |recipient: &AgencyCode| {
                recipient.is_within(&r.by)
                    || sender.is_within(&r.by)
                    || r.by.level() == 1
                    || node.routes.relation(&r.by).is_some()
            };
            match r.recipients.iter().find(|x| !on_path(x)) {
                Some(x) => {
                    Err(format!("{} refuses {} for {x}, but it is on no path from {sender} to {x}", r.by, r.document))
                }
                None => Ok(()),
            }
        }
        ReceiptKind::Status(code) if r.recipients.as_slice() != [r.by] => Err(format!(
            "{} posts status {} of {} for {}, but a recipient's status speaks for that recipient only",
            r.by,
            code.code(),
            r.document,
            r.recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )),
        ReceiptKind::Status(_) => Ok(()),
    }
}

/// A document whose row the caller holds, so that acting on a receipt about it needs no read
/// of it: the record of a next hop's answer, whose statuses are of the document sent (checked
/// there, and here against the receipt's digest).
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// The document's row.
    pub id: i64,
    /// Its envelope's SHA-256.
    pub digest: [u8; 32],
}

/// Acts on a receipt addressed to this agency, inside the transaction that stores it; returns
/// the document it concerns, if this node holds it. With `known` the document (passed only
/// when nobody needs the document's row), a status that changes routes only is acted on
/// without reading it, and `None` is returned.
async fn apply(
    tx: &mut Tx<'_>,
    receipt: &SignedReceipt,
    now: i64,
    known: Option<Known>,
) -> Result<Option<StoredDocument>, StoreError> {
    let r = &receipt.receipt;
    let routes = route_state(r.kind);
    let recall = r.kind == ReceiptKind::Status(StatusCode::RecallRequested);
    if let Some(k) = known.filter(|k| k.digest == r.envelope && !recall) {
        if let Some(state) = routes {
            tx.keep_route_state(k.id, &r.recipients, state, now).await?;
        }
        return Ok(None);
    }
    let Some(doc) = tx.document_by_digest(&r.envelope).await? else { return Ok(None) };
    match routes {
        Some(state) => tx.keep_route_state(doc.id, &r.recipients, state, now).await?,
        None if recall => tx.inbox_recall_requested(&doc.doc_id).await?,
        None => {}
    }
    Ok(Some(doc))
}

/// Stores `receipt` (from `from`), then acts on it or queues it toward its addressee (`known`:
/// the document it is about, when the caller holds its row, see [`Known`]). Returns false if
/// it was already known.
pub async fn keep_and_route(
    tx: &mut Tx<'_>,
    node: &Node,
    receipt: &SignedReceipt,
    from: &str,
    came_from: Option<AgencyCode>,
    now: i64,
    known: Option<Known>,
) -> Result<bool, StoreError> {
    let (id, new) = tx.insert_receipt(receipt, from, now).await?;
    if !new {
        return Ok(false);
    }
    if let Some(n) = route(tx, node, receipt, came_from, now, known).await? {
        tx.enqueue(TransferKind::Notice(id), &n, &[], now).await?;
    }
    Ok(true)
}

/// The state a receipt of `kind` gives its recipients' routes where it is addressed: a
/// delivery status (01 arrived, 02 refused) sets one, nothing else does.
pub(crate) fn route_state(kind: ReceiptKind) -> Option<&'static str> {
    match kind {
        ReceiptKind::Status(StatusCode::Arrived) => Some("delivered"),
        ReceiptKind::Status(StatusCode::Refused) => Some("refused"),
        _ => None,
    }
}

/// The state a receipt addressed here gives its document's routes, when that is all it does
/// (a delivery status, 01 or 02, not to be mailed): see [`apply`]. Such receipts are acted on
/// in batches (`keep_all`, `outbound::answers`).
pub(crate) fn sets_routes_only(node: &Node, receipt: &SignedReceipt) -> Option<&'static str> {
    let state = route_state(receipt.receipt.kind)?;
    let here = matches!(node.routes.next_hop(&receipt.receipt.to), Ok(NextHop::Local));
    (here && !crate::mail::may_mail(node, receipt)).then_some(state)
}

/// Acts on a receipt just stored if it is addressed here; otherwise names the neighbour it is
/// to be queued to, toward its addressee (`None`: kept, not forwarded, when it would loop back
/// to `came_from` or cannot be routed).
async fn route(
    tx: &mut Tx<'_>,
    node: &Node,
    receipt: &SignedReceipt,
    came_from: Option<AgencyCode>,
    now: i64,
    known: Option<Known>,
) -> Result<Option<AgencyCode>, StoreError> {
    // Everything goes to its addressee. A hop receipt is addressed to the previous hop and stays
    // there: the sender learns the path by asking along it (`crate::path`), so a document costs
    // H notice transfers over H hops (its delivery receipt), not H(H+1)/2.
    let to = receipt.receipt.to;
    match node.routes.next_hop(&to) {
        // A hop receipt changes nothing here and is never mailed: its document is not read.
        Ok(NextHop::Local) if receipt.receipt.kind == ReceiptKind::Hop => {}
        Ok(NextHop::Local) => {
            let mail = crate::mail::may_mail(node, receipt);
            // A mail needs the document's manifest: read it then.
            if let Some(doc) = apply(tx, receipt, now, known.filter(|_| !mail)).await?
                && mail
            {
                crate::mail::receipt_for_us(tx, node, receipt, &doc.manifest()?, now).await?;
            }
        }
        Ok(NextHop::Neighbour(n)) if Some(n) != came_from => return Ok(Some(n)),
        Ok(NextHop::Neighbour(n)) => {
            tracing::warn!(document = %receipt.receipt.document, to = %to, via = %n, "receipt would loop back; kept, not forwarded")
        }
        Err(e) => {
            tracing::warn!(document = %receipt.receipt.document, to = %to, error = %e, "receipt cannot be routed; kept, not forwarded")
        }
    }
    Ok(None)
}

/// Keeps and routes `receipts` (from neighbour `from`: a request of notices, or statuses that
/// came with its hop receipt and are kept apart from it, see `outbound::keep_statuses_apart`)
/// in one transaction; whether each is new.
/// All are stored in one statement (`Tx::insert_receipts`), those passed on queued in one
/// more (`Tx::enqueue_notices`), and the delivery statuses that only set routes here set them
/// in two (`Tx::document_rows_by_digests`, `Tx::keep_route_states`): at a node in the middle
/// of a path every notice is one to pass on, and at the sender's node one to set a route, two
/// statements each when kept one by one.
pub(crate) async fn keep_all(
    node: &Node,
    from: AgencyCode,
    receipts: &[(u32, SignedReceipt)],
    now: i64,
) -> Result<Vec<bool>, StoreError> {
    let mut tx = node.store.begin().await?;
    let from_name = from.to_string();
    let offered: Vec<(&SignedReceipt, &str)> = receipts.iter().map(|(_, r)| (r, from_name.as_str())).collect();
    let rows = tx.insert_receipts(&offered, now).await?;
    // In their order, as kept one by one; the delivery statuses that only set routes here
    // (the sender's node at the end of a path takes one a document) after the others, all
    // with one look-up of their documents and one update. Only a mailed 01 or 02 changes
    // routes among the others, and the sender's node mails all of a kind or none.
    let mut onward = Vec::new();
    let mut routing = Vec::new();
    for ((_, receipt), row) in receipts.iter().zip(&rows) {
        let Some(row) = row else { continue };
        if let Some(state) = sets_routes_only(node, receipt) {
            routing.push((&receipt.receipt, state));
        } else if let Some(n) = route(&mut tx, node, receipt, Some(from), now, None).await? {
            onward.push((*row, n));
        }
    }
    if !routing.is_empty() {
        let digests: Vec<[u8; 32]> = routing.iter().map(|(r, _)| r.envelope).collect();
        let documents = tx.document_rows_by_digests(&digests).await?;
        let changes: Vec<(i64, AgencyCode, &str)> = routing
            .iter()
            .filter_map(|(r, state)| documents.get(&r.envelope).map(|id| (r, *id, *state)))
            .flat_map(|(r, id, state)| r.recipients.iter().map(move |x| (id, *x, state)))
            .collect();
        tx.keep_route_states(&changes, now).await?;
    }
    tx.enqueue_notices(&onward, now).await?;
    tx.commit().await?;
    Ok(rows.iter().map(Option::is_some).collect())
}

/// Takes the receipts and statuses of a `NodeRequest::Notices` from neighbour `from`. Each is
/// checked on its own — a malformed, unverifiable or out-of-standing one is refused alone, with
/// its index and reason — and the rest are kept and routed in one transaction. Accepted only
/// once that transaction is committed: on a storage failure nothing is taken and the error
/// says so (the neighbour keeps them all and sends them again). `fetched` are the referenced
/// CRLs this node lacked and asked the neighbour for (see `crl_refs`): checked with, and kept
/// once the batch is.
pub async fn take_notices(
    node: &Node,
    from: AgencyCode,
    receipts: &[Vec<u8>],
    fetched: &[Arc<Crl>],
) -> Result<Vec<(u32, ErrorKind, String)>, (ErrorKind, String)> {
    // One validator for the whole batch.
    let validator = node.trust.trust().validator_with(fetched);
    let mut refused = Vec::new();
    let mut taken = Vec::with_capacity(receipts.len());
    for (index, bytes) in (0u32..).zip(receipts) {
        let checked = SignedReceipt::from_bytes(bytes)
            .map_err(|e| (ErrorKind::BadRequest, format!("malformed receipt: {e}")))
            .and_then(|r| match r.verify(&validator) {
                Ok(_) => Ok(r),
                Err(e) => Err((ErrorKind::BadRequest, format!("receipt does not verify: {e}"))),
            })
            .and_then(|r| match standing(node, &r.receipt) {
                Ok(()) => Ok(r),
                Err(reason) => {
                    tracing::warn!(document = %r.receipt.document, peer = %from, by = %r.receipt.by, reason = %reason, "receipt refused");
                    Err((ErrorKind::Forbidden, reason))
                }
            });
        match checked {
            Ok(r) => taken.push((index, r)),
            Err((kind, reason)) => refused.push((index, kind, reason)),
        }
    }
    if taken.is_empty() {
        return Ok(refused);
    }
    let now = millis(node.now());
    let unavailable = |e: &StoreError| {
        node.storage_failed("taking receipts", e);
        let full = if e.is_disk_full() { "the disk is full: " } else { "" };
        (ErrorKind::Unavailable, format!("the node cannot store receipts now ({full}{e}); send again later"))
    };
    let new = match keep_all(node, from, &taken, now).await {
        Ok(new) => new,
        // A full disk refuses them all alike; any other failure may be one receipt's, so each
        // is tried in a transaction of its own and only those that fail are refused (for now).
        Err(e) if e.is_disk_full() || taken.len() == 1 => return Err(unavailable(&e)),
        Err(_) => {
            let mut new = Vec::with_capacity(taken.len());
            let mut kept = Vec::with_capacity(taken.len());
            for one in &taken {
                match keep_all(node, from, std::slice::from_ref(one), now).await {
                    Ok(n) => {
                        new.extend(n);
                        kept.push(one.clone());
                    }
                    Err(e) => {
                        let (kind, reason) = unavailable(&e);
                        refused.push((one.0, kind, reason));
                    }
                }
            }
            taken = kept;
            new
        }
    };
    refused.sort_by_key(|(index, _, _)| *index);
    let mut any = false;
    for ((_, receipt), _) in taken.iter().zip(&new).filter(|(_, new)| **new) {
        any = true;
        Metrics::bump(&node.observed.metrics().notices_in);
        tracing::info!(document = %receipt.receipt.document, peer = %from, kind = %receipt.receipt.kind, by = %receipt.receipt.by, "receipt taken");
    }
    if any {
        Metrics::bump(&node.observed.metrics().notice_batches_in);
        node.outbound.wake_outbox();
    }
    if !fetched.is_empty() && !taken.is_empty() {
        keep_fetched(node, fetched, &taken).await;
    }
    Ok(refused)
}

/// Keeps the CRLs fetched for a batch of notices, as intake keeps a document's: those signed
/// by a CA this node knows, counting the CAs on the seal chains of the receipts just taken
/// (validated, so learned and remembered), so that the next batch needs no fetch.
async fn keep_fetched(node: &Node, fetched: &[Arc<Crl>], taken: &[(u32, SignedReceipt)]) {
    let chains = taken.iter().map(|(_, r)| r.chain_der());
    let cas = crate::crl_refs::cas_of(node.trust.trust(), chains).into_iter().map(Arc::unwrap_or_clone);
    let new_cas = node.trust.trust().learn(cas);
    let now = millis(node.now());
    let kept: Result<bool, StoreError> = async {
        let mut tx = node.store.begin().await?;
        let mut changed = false;
        for crl in fetched.iter().filter(|c| !node.trust.trust().has_crl_as_new_as(c)) {
            if node.trust.trust().knows_signer_of(crl) && tx.store_crl(crl, now).await? {
                changed = true;
            }
        }
        for ca in &new_cas {
            tx.learn_ca(ca).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
    .await;
    match kept {
        Ok(true) => crate::crls::refresh(node).await,
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "cannot keep the CRLs fetched with notices; the next batch asks again"),
    }
}
