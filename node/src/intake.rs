//! Taking responsibility for a document: the one path every document enters a node by, from a
//! neighbour (`Deliver`) or from this agency's clerk (`Submit`).
//!
//! **Invariant: a node answers with a hop receipt only after the document is durable.** The
//! order is: check who may hand us what and the limits, and that it fits above the free-space
//! reserve; verify the envelope (signatures, chains at signing time with the node's CRLs and
//! those sent along, hierarchy); stream every attachment into temporary files checking size
//! and hash, synced and size-checked on disk; move them into the store; then one database
//! transaction records the document, its routes, the outbox transfers, the inbox entry and the
//! receipts (the hop receipt returned to the sender among them). Until that `COMMIT` has
//! succeeded (`Tx::commit` returned `Ok`), the document is the previous hop's; after it, it is
//! ours. Any failure before the commit leaves nothing behind: a bad document gets a signed
//! refusal with the reason, a storage failure a transient refusal saying the node cannot store
//! documents now (the sender retries).

use pki::AgencyCode;
use pki::document::validation::{Arrival, ArrivalError};
use pki::document::{Envelope, Manifest, Receipt, ReceiptKind, SignedReceipt, StatusCode};

use crate::routing::NextHop;
use crate::storage::{DocInsert, NewDocument, Transfer, TransferKind, millis, superseded_verb};
use crate::{Metrics, Node};

pub(crate) mod together;

/// Where a document comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A neighbour node.
    Neighbour {
        /// Its agency (from its certificate).
        agency: AgencyCode,
        /// It keeps the statuses that come with a hop receipt (`NodeRequest::Deliver`).
        statuses_back: bool,
    },
    /// This agency's clerk.
    Clerk,
}

/// A document taken.
#[derive(Debug)]
pub struct Taken {
    /// The document id.
    pub document: String,
    /// Envelope digest.
    pub digest: [u8; 32],
    /// The hop receipt for a neighbour (none for a clerk's submission).
    pub hop_receipt: Option<Vec<u8>>,
    /// It was already stored (a retry).
    pub duplicate: bool,
    /// Statuses for the sender that go back with the hop receipt (see
    /// `NodeResponse::HopReceipt`): those of this document whose way back to its sender is
    /// the neighbour that handed it over, instead of a notice transfer each.
    pub statuses: Vec<Vec<u8>>,
}

/// What a receipt of this agency says, before [`Node::sign_receipt`] signs it.
#[derive(Debug, Clone)]
pub struct Saying {
    /// A hop receipt or a status.
    pub kind: ReceiptKind,
    /// The agency it is addressed to.
    pub to: AgencyCode,
    /// The recipients it speaks for.
    pub recipients: Vec<AgencyCode>,
    /// A free-text note (a refusal's reason, a clerk's remark).
    pub note: Option<String>,
}

/// Why a document is refused for good: the document itself is at fault, or it is not this
/// node's to take, so sending it again would change nothing. Its text is the note of the
/// signed refusal (status 02) and what senders, clerks and tests quote: keep the wording.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The envelope does not parse.
    #[error("malformed envelope: {0}")]
    MalformedEnvelope(pki::document::EnvelopeError),
    /// The manifest inside the envelope does not parse.
    #[error("malformed manifest: {0}")]
    MalformedManifest(pki::document::ManifestError),
    /// The clerk submitted a document of another agency.
    #[error("this node sends for {node} only, not for {sender}")]
    NotOurSender {
        /// This node's agency.
        node: AgencyCode,
        /// The sender the manifest names.
        sender: AgencyCode,
    },
    /// A neighbour named a recipient the manifest does not list (or one twice).
    #[error("{0} is not a recipient of this document (or is listed twice)")]
    NotARecipient(AgencyCode),
    /// A neighbour named a recipient that is not an agency code.
    #[error("recipient {given:?}: {error}")]
    BadRecipient {
        /// What was given.
        given: String,
        /// Why it is not a code.
        error: pki::AgencyCodeError,
    },
    /// A neighbour named no recipient.
    #[error("no recipients given")]
    NoRecipients,
    /// The neighbour may not relay for this sender (see `Routes::may_relay`).
    #[error("{0}")]
    NotRelayed(String),
    /// One attachment is over `limits.max_attachment_bytes`.
    #[error("attachment {name:?} is {size} bytes, over this node's limit of {limit}")]
    AttachmentTooLarge {
        /// Its name.
        name: String,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// All attachments together are over `limits.max_document_bytes`.
    #[error("attachments total {total} bytes, over this node's limit of {limit}")]
    DocumentTooLarge {
        /// Their declared total.
        total: u64,
        /// The limit.
        limit: u64,
    },
    /// Another document with this id is stored already.
    #[error("a different document with the id {0} was already received")]
    IdTaken(String),
    /// A CRL that came with the document does not parse.
    #[error("a CRL sent with the document is malformed: {0}")]
    MalformedCrl(pki::crl::CrlParseError),
    /// The envelope does not verify at arrival (a transient [`ArrivalError`] is
    /// [`IntakeError::NotYetValid`] instead).
    #[error("verification failed: {0}")]
    Verification(ArrivalError),
    /// An attachment's bytes do not match the manifest.
    #[error("attachment {name:?}: {problem}")]
    BadAttachment {
        /// Its name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// No recipient can be routed from here.
    #[error("{}", route_reasons(.0))]
    NoRoute(Vec<(AgencyCode, crate::routing::RouteError)>),
}

/// The reasons of unroutable recipients, as one refusal note.
fn route_reasons(unroutable: &[(AgencyCode, crate::routing::RouteError)]) -> String {
    unroutable.iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join("; ")
}

/// Why a document was not taken, by the stage that stopped it. Only [`IntakeError::Refused`] is
/// final (it carries the signed refusal); every other variant is transient: nothing of the
/// document was kept as taken, and the sender (a neighbour's outbox, a clerk) sends it again.
/// The text is what the sender is told (`NodeResponse::Error`, `ClerkResponse`), unchanged
/// from the strings earlier versions built.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Refused for good, with the signed status 02 when the document could be identified.
    #[error("{refusal}")]
    Refused {
        /// Why.
        refusal: Refusal,
        /// The signed refusal (none when the envelope or manifest did not parse, or signing
        /// failed).
        receipt: Option<Vec<u8>>,
    },
    /// Storage cannot take documents now (a full disk, the reserve reached, a database
    /// refusing writes).
    #[error("{}", storage_reason(.0))]
    Storage(crate::storage::StoreError),
    /// The verification pool failed to run the verification (a panicking thread).
    #[error("not taken now: {0}")]
    Verifier(crate::cpu::CpuError),
    /// The envelope does not verify now but may later ([`ArrivalError::is_transient`]: a
    /// signing time ahead of this node's clock).
    #[error("not taken now: {0}")]
    NotYetValid(ArrivalError),
    /// The signers' revocation cannot be checked (no CRL, or a stale one) and
    /// `crl_accept_unchecked` is off: the CRLs may come from the parent or with a retry.
    #[error(
        "not taken now: the revocation of its signers cannot be checked here ({gaps}); this node asks its parent for CRLs, send again later"
    )]
    RevocationUnchecked {
        /// Each signer's gap, joined.
        gaps: String,
    },
    /// The attachments' transfer broke off (what arrived may be kept for a resumed attempt).
    #[error("not taken now: {0}")]
    Interrupted(crate::storage::blobs::ReceiveError),
    /// The attachments did not arrive within the time their size allows.
    #[error("attachments of {document} did not arrive within {}", humantime::format_duration(*.allowed))]
    TimedOut {
        /// The document id.
        document: String,
        /// The time allowed.
        allowed: std::time::Duration,
    },
    /// A receipt of this node (hop, arrival, a recipient's refusal) could not be signed.
    #[error("cannot sign a receipt: {0}")]
    Signing(pki::document::ReceiptError),
}

impl IntakeError {
    /// Whether the sender should send again: everything but a refusal. A neighbour is
    /// answered `Unavailable` (its outbox retries) and a clerk is told to send again; a
    /// refusal is answered with the signed refusal (or `BadRequest`) and not retried.
    pub fn is_transient(&self) -> bool {
        match self {
            IntakeError::Refused { .. } => false,
            IntakeError::Storage(_)
            | IntakeError::Verifier(_)
            | IntakeError::NotYetValid(_)
            | IntakeError::RevocationUnchecked { .. }
            | IntakeError::Interrupted(_)
            | IntakeError::TimedOut { .. }
            | IntakeError::Signing(_) => true,
        }
    }

    /// The signed refusal (status 02) of a document refused for good, when it could be
    /// identified and signing worked.
    pub fn receipt(&self) -> Option<&[u8]> {
        match self {
            IntakeError::Refused { receipt, .. } => receipt.as_deref(),
            _ => None,
        }
    }
}

impl Node {
    /// Signs what this agency says about a document with its seal: the one place a node makes
    /// a receipt (hop receipts, delivery receipts, refusals, a clerk's statuses), so that every
    /// one names this agency as its signer, the document by its id and envelope digest, and a
    /// time truncated to the second as receipts carry it.
    pub fn sign_receipt(
        &self,
        manifest: &Manifest,
        envelope: [u8; 32],
        saying: Saying,
        at: time::OffsetDateTime,
    ) -> Result<SignedReceipt, pki::document::ReceiptError> {
        let receipt = Receipt {
            kind: saying.kind,
            document: manifest.id(),
            envelope,
            by: self.config.agency,
            to: saying.to,
            at: truncate(at),
            recipients: saying.recipients,
            note: saying.note,
        };
        receipt.sign(&self.seal().key, &self.seal().chain)
    }

    /// A signed status 02 (refused) for `manifest`'s document, addressed to its sender.
    pub fn refusal(
        &self,
        manifest: &Manifest,
        digest: [u8; 32],
        recipients: Vec<AgencyCode>,
        reason: &str,
    ) -> Option<SignedReceipt> {
        let saying = Saying {
            kind: ReceiptKind::Status(StatusCode::Refused),
            to: manifest.from,
            recipients,
            note: Some(refusal_note(reason)),
        };
        self.sign_receipt(manifest, digest, saying, self.now())
            .map_err(|e| tracing::error!(error = %e, "cannot sign a refusal"))
            .ok()
    }

    fn refuse(
        &self,
        manifest: Option<&Manifest>,
        digest: [u8; 32],
        recipients: &[AgencyCode],
        refusal: Refusal,
    ) -> IntakeError {
        Metrics::bump(&self.observed.metrics().refused);
        let reason = refusal.to_string();
        let doc = manifest.map(|m| m.id().to_string()).unwrap_or_default();
        self.observed.telemetry().document_refused(&doc, &reason, self.now());
        tracing::warn!(document = %doc, reason = %reason, "document refused");
        let receipt =
            manifest.and_then(|m| self.refusal(m, digest, recipients.to_vec(), &reason)).map(|r| r.as_bytes().to_vec());
        IntakeError::Refused { refusal, receipt }
    }
}

/// The note of a signed refusal: `reason` (which may quote what a peer sent) normalised to
/// NFC first, then cut, so it stays within the receipt's limit after NFC.
pub fn refusal_note(reason: &str) -> String {
    unicode_normalization::UnicodeNormalization::nfc(reason).take(pki::document::receipt::MAX_NOTE_CHARS).collect()
}

/// Times in receipts have second resolution.
pub fn truncate(t: time::OffsetDateTime) -> time::OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Logs a transient failure (see [`IntakeError::is_transient`]) and passes it on.
fn transient(error: IntakeError) -> IntakeError {
    tracing::error!(reason = %error, "document not taken (will be retried by the sender)");
    error
}

/// The refusal for a document the node cannot store now (a full disk, a database refusing
/// writes): transient, so a neighbour retries and the clerk is told to send again; nothing of
/// the document was kept. The failure is remembered for the health read-out.
fn cannot_store(node: &Node, error: crate::storage::StoreError) -> IntakeError {
    node.storage_failed("taking a document", &error);
    let error = IntakeError::Storage(error);
    node.observed.telemetry().document_refused("", &error.to_string(), node.now());
    transient(error)
}

/// What the sender and the clerk are told when storage fails: that nothing was taken, unless
/// a failed `COMMIT` may come back after a restart (see `StoreError::CommitInDoubt`).
pub(crate) fn storage_reason(error: &crate::storage::StoreError) -> String {
    if error.is_in_doubt() {
        return format!(
            "the node cannot store documents now ({error}); it may have kept the document all the same: send the same document again later, and a node that has it only confirms it"
        );
    }
    let full = match error {
        crate::storage::StoreError::NoSpace { .. } => "the disk is nearly full: ",
        e if e.is_disk_full() => "the disk is full: ",
        _ => "",
    };
    format!("the node cannot store documents now ({full}{error}); nothing was taken, send again later")
}

/// Takes a document whose attachments follow on `attachments`.
pub async fn take_document<R: tokio::io::AsyncRead + Unpin>(
    node: &std::sync::Arc<Node>,
    source: Source,
    envelope_bytes: &[u8],
    carried_crls: &[Vec<u8>],
    recipients: &[String],
    attachments: &mut R,
) -> Result<Taken, IntakeError> {
    take_document_resumable(node, source, envelope_bytes, carried_crls, recipients, attachments, None).await
}

/// Where a resumable transfer's sender is told, once the document is verified and before its
/// attachments are read, how many bytes of each this node kept from an interrupted attempt:
/// the stream to answer on, and how the answer is framed in its protocol.
pub struct ResumeAnswer<'a> {
    /// The request's answer stream.
    pub send: &'a mut quinn::SendStream,
    /// The answer frame carrying the offsets (`NodeResponse::ResumeFrom` or
    /// `ClerkResponse::ResumeFrom`).
    pub frame: fn(Vec<u64>) -> Vec<u8>,
}

/// [`take_document`] for a sender that asked to resume (`resume` in the request): with
/// `resume` given, each attachment goes into its partial file (see
/// `crate::storage::blobs`), the sender is told the offsets to continue from, and the stream
/// carries only the rest. A transfer that breaks off keeps what arrived, and is refused as
/// transient so the sender tries again.
pub async fn take_document_resumable<R: tokio::io::AsyncRead + Unpin>(
    node: &std::sync::Arc<Node>,
    source: Source,
    envelope_bytes: &[u8],
    carried_crls: &[Vec<u8>],
    recipients: &[String],
    attachments: &mut R,
    resume: Option<ResumeAnswer<'_>>,
) -> Result<Taken, IntakeError> {
    let now = node.now();
    let now_ms = millis(now);
    let envelope = Envelope::from_bytes(envelope_bytes)
        .map_err(|e| node.refuse(None, [0; 32], &[], Refusal::MalformedEnvelope(e)))?;
    let digest = envelope.digest();
    let manifest = envelope.manifest().map_err(|e| node.refuse(None, digest, &[], Refusal::MalformedManifest(e)))?;
    let doc_id = manifest.id().to_string();
    let refuse = |refusal: Refusal, rcpt: &[AgencyCode]| node.refuse(Some(&manifest), digest, rcpt, refusal);

    // Who sends, for whom.
    let (recipients, came_from) = match source {
        Source::Clerk => {
            if manifest.from != node.config.agency {
                return Err(refuse(
                    Refusal::NotOurSender { node: node.config.agency, sender: manifest.from },
                    &manifest.to,
                ));
            }
            (manifest.to.clone(), None)
        }
        Source::Neighbour { agency, .. } => {
            let mut parsed = Vec::with_capacity(recipients.len());
            for r in recipients {
                match r.parse::<AgencyCode>() {
                    Ok(c) if manifest.to.contains(&c) && !parsed.contains(&c) => parsed.push(c),
                    Ok(c) => {
                        return Err(refuse(Refusal::NotARecipient(c), &manifest.to));
                    }
                    Err(error) => {
                        return Err(refuse(Refusal::BadRecipient { given: r.clone(), error }, &manifest.to));
                    }
                }
            }
            if parsed.is_empty() {
                return Err(refuse(Refusal::NoRecipients, &manifest.to));
            }
            if let Err(reason) = node.routes.may_relay(&agency, &manifest.from) {
                return Err(refuse(Refusal::NotRelayed(reason), &parsed));
            }
            (parsed, Some(agency))
        }
    };
    let received_from = match source {
        Source::Neighbour { agency, .. } => agency.to_string(),
        Source::Clerk => "clerk".to_owned(),
    };

    // Limits, before reading a byte of the attachments.
    let limits = &node.config.limits;
    if let Some(big) = manifest.attachments.iter().find(|a| a.size > limits.max_attachment_bytes) {
        return Err(refuse(
            Refusal::AttachmentTooLarge { name: big.name.clone(), size: big.size, limit: limits.max_attachment_bytes },
            &recipients,
        ));
    }
    let total: u64 = manifest.attachments.iter().map(|a| a.size).sum();
    if total > limits.max_document_bytes {
        return Err(refuse(Refusal::DocumentTooLarge { total, limit: limits.max_document_bytes }, &recipients));
    }

    // The signatures are checked while the database is asked whether this is a retry: the
    // verification runs on the CPU pool and the read on the database's side, so a document
    // waits for the longer of the two instead of both. What is decided keeps its order: a
    // retry is answered from storage whatever else is wrong with it now, then the room, then
    // the CRLs that came along, then the verification.
    //
    // Verify at arrival (this node's clock): signatures, every signer's chain valid now (a
    // revoked signer is refused whatever signing time it claims), hierarchy, signer fidelity;
    // with the CRLs that came along. Where the document enters the network (from our clerk),
    // a signature claimed to be older than `limits.max_signature_age` is refused too; further
    // hops do not re-apply the age, as a document may wait in an outbox during an outage.
    let carried: Result<Vec<_>, _> = carried_crls.iter().map(|der| node.trust.trust().parse_crl(der)).collect();
    let max_age = match source {
        Source::Clerk => time::Duration::try_from(limits.max_signature_age).unwrap_or(time::Duration::MAX),
        Source::Neighbour { .. } => time::Duration::MAX,
    };
    let verification = async {
        let carried = carried?;
        let verifying = std::time::Instant::now();
        let (validator, checked) = (node.trust.trust().validator_with(&carried), envelope.clone());
        let arrival = Arrival { at: now, max_age };
        let verified = node
            .verification
            .run(move || pki::document::validation::verify_arrival(&checked, &validator, &arrival))
            .await;
        // The verification's own time, not the duplicate check's beside it.
        node.observed.telemetry().verified_in(verifying.elapsed());
        Ok((carried, verified))
    };
    let (existing, verified) = tokio::join!(together::stored(node, &doc_id), verification);

    // Whether this node has no row of the document yet (then it may be passed on before the
    // commit, see `outbound::cut_through`).
    let new_here = matches!(existing, Ok(None));
    // The statuses this node signs for the sender (01 arrived, 02 for a recipient it cannot
    // route) go back with the hop receipt when the neighbour that handed the document over is
    // the way back to the sender: that neighbour keeps them in the transaction that records
    // the hop receipt (or in one of their own right after, should its database refuse that)
    // and retries until it has recorded one, so they need no transfer of their own. Otherwise
    // (the sender's way back goes elsewhere, or the neighbour did not say it keeps them) they
    // are queued as notices.
    let toward_sender = match node.routes.next_hop(&manifest.from) {
        Ok(NextHop::Neighbour(n)) => Some(n),
        _ => None,
    };
    let statuses_back = matches!(source, Source::Neighbour { statuses_back: true, .. });
    let carry = statuses_back && came_from.is_some() && toward_sender == came_from;
    // A retry of a document already taken: answer as before, without reading it again.
    match existing {
        Ok(Some(existing)) if existing.digest == digest => {
            let previous = match came_from {
                Some(from) => {
                    match node.store.hop_receipt_covering(&digest, &node.config.agency, &from, &recipients).await {
                        Ok(r) => r,
                        Err(e) => return Err(cannot_store(node, e)),
                    }
                }
                None => None,
            };
            if previous.is_some() || came_from.is_none() {
                // A read; a write transaction only when the statuses go as notices.
                let statuses = match came_from {
                    Some(_) => {
                        let stored = node
                            .store
                            .statuses_for_sender(&digest, &node.config.agency, &manifest.from)
                            .await
                            .map_err(|e| cannot_store(node, e))?;
                        match repeat_back(stored, carry) {
                            Some(back) => back,
                            None => {
                                queue_sender_statuses(node, &digest, &manifest.from, toward_sender, now_ms)
                                    .await
                                    .map_err(|e| cannot_store(node, e))?;
                                Vec::new()
                            }
                        }
                    }
                    None => Vec::new(),
                };
                Metrics::bump(&node.observed.metrics().duplicates_in);
                tracing::info!(document = %doc_id, peer = %received_from, "duplicate delivery answered from storage");
                return Ok(Taken { document: doc_id, digest, hop_receipt: previous, duplicate: true, statuses });
            }
        }
        Ok(Some(_)) => {
            return Err(refuse(Refusal::IdTaken(doc_id), &recipients));
        }
        Ok(None) => {}
        Err(e) => return Err(cannot_store(node, e)),
    }

    // Room for it, keeping the reserve: refused now, before a byte is written, rather than
    // failing halfway on a full disk.
    let needed = total.saturating_add(envelope_bytes.len() as u64);
    if let Err(e) = node.store.ensure_space(needed, limits.min_free_bytes) {
        return Err(cannot_store(node, e));
    }

    let (carried, verified) = verified.map_err(|e| refuse(Refusal::MalformedCrl(e), &recipients))?;
    let verified = verified.map_err(|e| transient(IntakeError::Verifier(e)))?;
    let verified = verified.map_err(|e| match e {
        e if e.is_transient() => transient(IntakeError::NotYetValid(e)),
        e => refuse(Refusal::Verification(e), &recipients),
    })?;
    // Revocation that cannot be checked (no CRL of an issuer, or one older than the freshness
    // budget): refused for now unless the operator opted in, then taken provisionally and
    // alerted. Transient: the CRL may come (from the parent, or with the next attempt).
    let gaps: Vec<String> = verified
        .signers()
        .iter()
        .filter_map(|s| {
            node.trust.trust().revocation_gap(&s.chain, &s.revocation, now).map(|g| format!("the {}: {g}", s.role))
        })
        .collect();
    let is_provisional = !gaps.is_empty();
    if is_provisional {
        let gap = gaps.join("; ");
        // One alert (and one mail) for all such documents, counting them and naming the
        // latest, not one per document: stale CRLs would otherwise flood the read-out.
        let latest = format!("the latest, {doc_id}: {gap}");
        node.observed.revocation_unchecked("documents' signers", &latest, node.config.crl_accept_unchecked);
        if !node.config.crl_accept_unchecked {
            return Err(transient(IntakeError::RevocationUnchecked { gaps: gap }));
        }
    }

    // Attachments: all into temporary (or partial) files, checked; nothing is stored unless
    // all are good. The time allowed grows with the size.
    let receive = async {
        use crate::storage::blobs::{PartialKey, ReceiveError};
        use crate::storage::inline::{InlineBlob, Received};
        let blobs = node.store.blobs();
        let mut claims = Vec::with_capacity(manifest.attachments.len());
        if let Some(answer) = resume {
            let limits = limits.partials();
            for (index, a) in manifest.attachments.iter().enumerate() {
                let key = PartialKey { envelope: digest, index };
                claims.push(blobs.claim_partial(key, a.size, &limits, std::time::SystemTime::now()).await?);
            }
            let offsets = claims.iter().map(|c| c.as_ref().map_or(0, |p| p.kept())).collect();
            let frame = (answer.frame)(offsets);
            if let Err(e) = answer.send.write_all(&frame).await {
                return Err(ReceiveError::Interrupted {
                    name: String::new(),
                    kept: 0,
                    size: total,
                    reason: format!("cannot tell the sender where to resume: {e}"),
                });
            }
        }
        let mut pending = Vec::with_capacity(manifest.attachments.len());
        for (index, a) in manifest.attachments.iter().enumerate() {
            pending.push(match claims.get_mut(index).and_then(Option::take) {
                Some(partial) => {
                    Received::File(blobs.receive_resumed(&a.name, attachments, a.size, &a.sha256, partial).await?)
                }
                // Small: kept in the document's transaction (see `storage::inline`).
                None if limits.inline_attachment_bytes > 0 && a.size <= limits.inline_attachment_bytes => {
                    Received::Inline(InlineBlob::receive(&a.name, attachments, a.size, &a.sha256).await?)
                }
                None => Received::File(blobs.receive(&a.name, attachments, a.size, &a.sha256).await?),
            });
        }
        Ok::<_, ReceiveError>(pending)
    };
    let allowed = limits.request_time(total);
    let pending = match tokio::time::timeout(allowed, receive).await {
        Ok(Ok(p)) => p,
        Ok(Err(crate::storage::blobs::ReceiveError::Store(crate::storage::StoreError::Attachment {
            name,
            problem,
        }))) => {
            return Err(refuse(Refusal::BadAttachment { name, problem }, &recipients));
        }
        Ok(Err(crate::storage::blobs::ReceiveError::Store(e))) => return Err(cannot_store(node, e)),
        // The sender tries again: from where it broke off, or in full after a discarded prefix.
        Ok(Err(e)) => return Err(transient(IntakeError::Interrupted(e))),
        Err(_) => {
            return Err(transient(IntakeError::TimedOut { document: doc_id, allowed }));
        }
    };

    // Routing: one transfer per next hop; unknown recipients are refused individually.
    let (plan, unroutable) = node.routes.plan(&recipients, came_from);
    if plan.is_empty() {
        return Err(refuse(Refusal::NoRoute(unroutable), &recipients));
    }

    // Receipts this hand-over may produce, signed before the transaction; the transaction
    // keeps only those that are new.
    let sign = |kind: ReceiptKind, to: AgencyCode, recipients: Vec<AgencyCode>, note: Option<String>| {
        node.sign_receipt(&manifest, digest, Saying { kind, to, recipients, note }, now)
            .map_err(|e| transient(IntakeError::Signing(e)))
    };
    let hop_receipt = match came_from {
        Some(from) => Some(sign(ReceiptKind::Hop, from, recipients.clone(), None)?),
        None => None,
    };
    let arrived = if plan.contains_key(&NextHop::Local) {
        Some(sign(ReceiptKind::Status(StatusCode::Arrived), manifest.from, vec![node.config.agency], None)?)
    } else {
        None
    };
    let mut refusals = Vec::new();
    for (r, e) in &unroutable {
        refusals
            .push((*r, sign(ReceiptKind::Status(StatusCode::Refused), manifest.from, vec![*r], Some(e.to_string()))?));
    }
    let carry = rides(carry, refusals.len() + usize::from(arrived.is_some()));

    let inline = crate::storage::inline::Received::commit_files(pending).await.map_err(|e| cannot_store(node, e))?;
    let mut crls_changed = false;
    let new_cas = node.trust.trust().learn(path_cas(node, &envelope));
    let sender_name = verified.sender_name().to_owned();
    // The document as the outbox sends it, from memory, if it goes on to a neighbour: passed on
    // now if it came from one (see `outbound::cut_through`), else handed to the outbox after
    // the commit.
    let forward = plan.keys().any(|hop| matches!(hop, NextHop::Neighbour(_))).then(|| {
        std::sync::Arc::new(crate::outbound::Forward {
            doc_id: doc_id.clone(),
            digest,
            envelope: envelope_bytes.to_vec(),
            attachments: crate::storage::inline::StoredAttachment::just_taken(&manifest.attachments, &inline),
        })
    });
    let crls_known = carried.iter().all(|c| node.trust.trust().has_crl_as_new_as(c));
    let early = match &forward {
        Some(forward)
            if node.config.limits.pass_on_before_commit
                && came_from.is_some()
                && new_here
                && !is_provisional
                && crls_known =>
        {
            let hops = plan
                .iter()
                .filter_map(|(hop, rcpts)| match hop {
                    NextHop::Neighbour(n) => Some((*n, rcpts.clone())),
                    NextHop::Local => None,
                })
                .collect();
            crate::outbound::cut_through::start(node, hops, forward)
        }
        _ => Vec::new(),
    };
    // The sends just spawned go first, on this worker, before this task runs its statements
    // (which do not yield): otherwise each waits for the other worker to wake and take it, or
    // for the statements to end. 0.1-0.2 ms off four hops' p50; under load within the spread.
    if !early.is_empty() {
        tokio::task::yield_now().await;
    }
    let taking = std::sync::Arc::new(Taking {
        verified,
        received_from,
        received_at: now_ms,
        provisional: is_provisional,
        outgoing: matches!(source, Source::Clerk),
        inline,
        plan,
        hop_receipt,
        arrived,
        carry,
        toward_sender,
        sender_name,
        forward,
    });
    let committing = std::time::Instant::now();
    // A document new here that brings nothing but its own rows (no refusal to sign, no CRL or
    // CA to keep) is written with the others that wait, on PostgreSQL (see `together`); one
    // found stored meanwhile comes back to be taken alone, as a repeat.
    let with_others = together::applies(node) && new_here && refusals.is_empty() && new_cas.is_empty() && crls_known;
    // Whether the row the single path finds may be this delivery's own (see `Together`).
    let mut ours = false;
    let together = match with_others {
        true => match together::take(node, std::sync::Arc::clone(&taking)).await {
            Ok(together::Together::Recorded(recorded)) => Some(Ok(recorded)),
            Ok(together::Together::Stored { ours: kept }) => {
                ours = kept;
                Metrics::bump(&node.observed.metrics().intake_found_stored);
                None
            }
            Err(e) => Some(Err(e)),
        },
        false => None,
    };
    let committed: Result<Option<Recorded>, crate::storage::StoreError> = match together {
        Some(recorded) => recorded.map(Some),
        None => {
            async {
                let t = &*taking;
                let mut tx = node.store.begin().await?;
                let (id, existed) = match tx.insert_document(&t.new_document()).await? {
                    DocInsert::New(id) => (id, false),
                    DocInsert::Existing(id) => (id, true),
                    DocInsert::Conflict => {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                };
                // A repeat carries the statuses stored with the first delivery (or queues them); a
                // first delivery those it signs below.
                let mut statuses = Vec::new();
                if existed {
                    let stored = tx.statuses_for_sender(&digest, &node.config.agency, &manifest.from).await?;
                    match (repeat_back(stored, t.carry), t.toward_sender) {
                        (Some(back), _) => statuses = back,
                        (None, Some(n)) => {
                            tx.enqueue_sender_statuses(&digest, &node.config.agency, &manifest.from, &n, now_ms).await?
                        }
                        (None, None) => {}
                    }
                }
                // Only recipients not routed before: a concurrent or repeated delivery adds nothing.
                // Every route in one statement; each recipient counts as new once.
                let mut routes = t.routes();
                routes.extend(refusals.iter().map(|(r, _)| crate::storage::NewRoute {
                    recipient: r,
                    next_hop: None,
                    state: "refused",
                }));
                // A new document has no routes yet: its rows go with the next statement, unanswered.
                let routed = if existed {
                    tx.add_routes(id, &routes, now_ms).await?
                } else {
                    tx.add_routes_of_new(id, &routes, now_ms).await?
                };
                let mut routed: std::collections::HashSet<AgencyCode> = routed.into_iter().collect();
                // A stored document that routes no recipient anew is a repeat: answered with
                // what was stored. One that brings new recipients is taken for them, and one
                // whose row may be its own (kept by a transaction in doubt) is taken.
                let repeat = existed && routed.is_empty() && !ours;
                let mut handed = Vec::new();
                for (hop, new) in t.newly_routed(&mut routed) {
                    match hop {
                        NextHop::Local => {
                            // The revocation (update, replacement) may have overtaken this document:
                            // a new inbox entry is marked as it is written.
                            let added = if existed {
                                let added = tx.inbox_add(id, now_ms).await?;
                                if added && let Some((code, by)) = tx.inbox_superseder_of(&doc_id).await? {
                                    tx.inbox_supersede(&doc_id, &format!("{} by {by}", superseded_verb(code))).await?;
                                }
                                added
                            } else {
                                tx.inbox_add_new(id, &doc_id, now_ms).await?;
                                true
                            };
                            if added {
                                arrived_here(&mut tx, node, t, &mut statuses).await?;
                            }
                        }
                        NextHop::Neighbour(n) => {
                            let due = handoff_due(node);
                            if let Some(transfer) =
                                tx.enqueue_due(TransferKind::Document(id), &n, &new, now_ms, due).await?
                            {
                                handed.push(t.handed(id, transfer, n, new, due));
                            }
                        }
                    }
                }
                for (r, refusal) in &refusals {
                    if routed.remove(r) {
                        let (rid, _) = tx.insert_receipt(refusal, &node.config.agency.to_string(), now_ms).await?;
                        if t.carry {
                            statuses.push(refusal.as_bytes().to_vec());
                        } else if let Some(n) = t.toward_sender {
                            tx.enqueue(TransferKind::Notice(rid), &n, &[], now_ms).await?;
                        }
                        crate::mail::receipt_for_us(&mut tx, node, refusal, &manifest, now_ms).await?;
                    }
                }
                // The hop receipt: one per neighbour and recipients; a repeat gets the first one.
                let answer = match (&t.hop_receipt, came_from) {
                    (Some(h), Some(from)) => {
                        let previous = if existed {
                            tx.hop_receipt_covering(&digest, &node.config.agency, &from, &recipients).await?
                        } else {
                            None
                        };
                        match previous {
                            Some(existing) => Some(existing),
                            None => {
                                tx.insert_own_receipt(h, &node.config.agency.to_string(), now_ms).await?;
                                Some(h.as_bytes().to_vec())
                            }
                        }
                    }
                    _ => None,
                };
                // Keep the CRLs that came along if they are new and genuinely from a CA we know (the
                // CAs on the paths just validated were learned above), and remember those CAs.
                for crl in carried.iter().filter(|c| !node.trust.trust().has_crl_as_new_as(c)) {
                    if node.trust.trust().knows_signer_of(crl) && tx.store_crl(crl, now_ms).await? {
                        crls_changed = true;
                    }
                }
                for ca in &new_cas {
                    tx.learn_ca(ca).await?;
                }
                let queued = tx.queued();
                tx.commit().await?;
                Ok(Some(Recorded { id, repeat, handed, queued, hop_receipt: answer, statuses }))
            }
            .await
        }
    };
    node.observed.telemetry().committed_in(committing.elapsed());
    let recorded = match committed {
        Ok(Some(recorded)) => recorded,
        Ok(None) => {
            return Err(refuse(Refusal::IdTaken(doc_id), &recipients));
        }
        // Not committed: nothing was taken, and no hop receipt leaves this node.
        Err(e) => return Err(cannot_store(node, e)),
    };
    if crls_changed {
        crate::crls::refresh(node).await;
    }
    // Committed: the transfers a send started before the commit carries are recorded when it
    // ends; the rest go to the outbox with the document in hand (it is woken if the commit queued any row).
    let Recorded { id: row, repeat, handed, queued, hop_receipt: hop_answer, statuses } = recorded;
    let handed =
        if early.is_empty() { handed } else { crate::outbound::cut_through::adopt(node, early, row, handed).await };
    node.outbound.hand_over(handed, queued);
    if repeat {
        // Another delivery of it was taken while this one was verified (a sender's retry, or
        // two deliveries at once): answered with what was stored, and counted as a repeat.
        Metrics::bump(&node.observed.metrics().duplicates_in);
        node.observed.metrics().taken.notify_waiters();
        tracing::info!(document = %doc_id, peer = %taking.received_from, "delivery of a document taken meanwhile answered from storage");
        return Ok(Taken { document: doc_id, digest, hop_receipt: hop_answer, duplicate: true, statuses });
    }
    Metrics::bump(&node.observed.metrics().documents_in);
    node.observed.metrics().taken.notify_waiters();
    node.observed.telemetry().document_taken(matches!(source, Source::Clerk));
    if is_provisional {
        Metrics::bump(&node.observed.metrics().provisional);
        tracing::warn!(document = %doc_id, "document taken with provisional verification: CRLs missing or older than the freshness budget");
    }
    // "000.00.41.H49:2, local:1": each next hop and how many recipients go there.
    let hops = taking.plan.iter().map(|(h, r)| format!("{h}:{}", r.len())).collect::<Vec<_>>().join(", ");
    tracing::info!(document = %doc_id, peer = %taking.received_from, next_hops = %hops, provisional = is_provisional, "document taken");
    Ok(Taken { document: doc_id, digest, hop_receipt: hop_answer, duplicate: false, statuses })
}

/// A verified document whose attachments are stored, ready for the transaction that takes
/// it: what that transaction writes, owned, so that a writer of several documents at once
/// (see [`together`]) can write it as well as the intake itself.
#[derive(Debug)]
pub(crate) struct Taking {
    verified: pki::document::verify::VerifiedEnvelope,
    /// The neighbour it came from, or `clerk`.
    received_from: String,
    /// Local time of its arrival, ms: the time of every row it brings.
    received_at: i64,
    provisional: bool,
    outgoing: bool,
    inline: Vec<crate::storage::inline::InlineBlob>,
    /// The recipients it is routed for, by next hop (those refused are not in it).
    plan: std::collections::BTreeMap<NextHop, Vec<AgencyCode>>,
    /// This node's hop receipt for the neighbour that handed it over.
    hop_receipt: Option<SignedReceipt>,
    /// The status 01 for its sender, when a recipient is served here.
    arrived: Option<SignedReceipt>,
    /// Whether the statuses for its sender go back with the hop receipt (see [`rides`]).
    carry: bool,
    /// The neighbour toward its sender, where statuses not carried go as notices.
    toward_sender: Option<AgencyCode>,
    sender_name: String,
    /// The document as the outbox sends it, for the transfers it is handed to.
    forward: Option<std::sync::Arc<crate::outbound::Forward>>,
}

/// What the transaction that took a document leaves for after its `COMMIT`.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The document's row.
    id: i64,
    /// Whether the row was there already and this delivery routed no recipient anew (another
    /// delivery of the document taken while this one was verified): then this is a repeat,
    /// answered with what was stored.
    repeat: bool,
    /// The transfers to next hops it queued, for the outbox.
    handed: Vec<crate::outbound::Handed>,
    /// Whether the transaction queued any outbox row (notices too): the outbox is woken.
    queued: bool,
    /// The hop receipt answered.
    hop_receipt: Option<Vec<u8>>,
    /// The statuses that go back with it.
    statuses: Vec<Vec<u8>>,
}

impl Taking {
    fn new_document(&self) -> NewDocument<'_> {
        NewDocument {
            document: &self.verified,
            received_from: &self.received_from,
            received_at: self.received_at,
            provisional: self.provisional,
            outgoing: self.outgoing,
            inline: &self.inline,
        }
    }

    fn manifest(&self) -> &Manifest {
        self.verified.manifest()
    }

    /// Its routes: pending to a neighbour, delivered here.
    fn routes(&self) -> Vec<crate::storage::NewRoute<'_>> {
        let mut routes = Vec::new();
        for (hop, rcpts) in &self.plan {
            let (next_hop, state) = match hop {
                NextHop::Local => (None, "delivered"),
                NextHop::Neighbour(n) => (Some(n), "pending"),
            };
            routes.extend(rcpts.iter().map(|r| crate::storage::NewRoute { recipient: r, next_hop, state }));
        }
        routes
    }

    /// Its next hops, each with its recipients found in `routed` (the recipients routed now:
    /// a concurrent or repeated delivery adds nothing), each taken out of it once; next hops
    /// left with none are left out.
    fn newly_routed(&self, routed: &mut std::collections::HashSet<AgencyCode>) -> Vec<(NextHop, Vec<AgencyCode>)> {
        self.plan
            .iter()
            .filter_map(|(hop, rcpts)| {
                let new: Vec<AgencyCode> = rcpts.iter().filter(|r| routed.remove(r)).copied().collect();
                (!new.is_empty()).then_some((*hop, new))
            })
            .collect()
    }

    /// The transfer `transfer` of its row `id` to `next_hop`, for the outbox.
    fn handed(
        &self,
        id: i64,
        transfer: i64,
        next_hop: AgencyCode,
        recipients: Vec<AgencyCode>,
        due: i64,
    ) -> crate::outbound::Handed {
        let transfer = Transfer { id: transfer, kind: TransferKind::Document(id), next_hop, recipients, attempts: 0 };
        crate::outbound::Handed { transfer, forward: self.forward.clone(), due }
    }
}

/// When a transfer an intake queues now falls due to the outbox's claims: from the clock now,
/// not the intake's start (receiving the attachments may have taken longer than the grace).
fn handoff_due(node: &Node) -> i64 {
    millis(node.now()) + crate::outbound::HANDOFF_GRACE.as_millis() as i64
}

/// What a document's first entry in this agency's inbox brings, in its transaction: the
/// document it revokes marked, the clerks' mail, the status 01 for its sender (carried back
/// in `statuses`, or queued as a notice).
async fn arrived_here(
    tx: &mut crate::storage::Tx<'_>,
    node: &Node,
    t: &Taking,
    statuses: &mut Vec<Vec<u8>>,
) -> Result<(), crate::storage::StoreError> {
    let (manifest, now_ms) = (t.manifest(), t.received_at);
    if let Some(target) = manifest.business.target() {
        let verb = superseded_verb(i64::from(manifest.business.code()));
        tx.inbox_supersede(&target.to_string(), &format!("{verb} by {}", manifest.id())).await?;
    }
    crate::mail::document_arrived(tx, node, manifest, &t.sender_name, now_ms).await?;
    if let Some(arrived) = &t.arrived {
        tx.insert_own_receipt(arrived, &node.config.agency.to_string(), now_ms).await?;
        if t.carry {
            statuses.push(arrived.as_bytes().to_vec());
        } else if let Some(n) = t.toward_sender {
            tx.enqueue_notice_of(&arrived.digest(), &n, now_ms).await?;
        }
    }
    Ok(())
}

/// Whether `count` statuses for the sender go back with the hop receipt, given `carry` (the
/// neighbour takes them and is the way back to the sender): only as many as one notice
/// request holds, as the neighbour reads no more; the rest of the time they go as notices.
fn rides(carry: bool, count: usize) -> bool {
    carry && count <= crate::protocol::MAX_NOTICES
}

/// For a repeated delivery, what goes back with the hop receipt out of the statuses `stored`
/// for the sender by the first one: all of them if they ride ([`rides`]), else `None`, and the
/// caller queues them as notices toward the sender (each once ever). A first delivery that
/// carried them queued none, and its answer may have been lost; the repeat may come from a
/// node that does not take them (an older process of a scaled-out neighbour) or after the way
/// back changed, and they must still reach the sender.
fn repeat_back(stored: Vec<Vec<u8>>, carry: bool) -> Option<Vec<Vec<u8>>> {
    (stored.is_empty() || rides(carry, stored.len())).then_some(stored)
}

/// Queues the stored statuses for the sender as notices toward it ([`repeat_back`]), in a
/// transaction of their own, and wakes the outbox to send them.
async fn queue_sender_statuses(
    node: &Node,
    digest: &[u8; 32],
    sender: &AgencyCode,
    toward_sender: Option<AgencyCode>,
    now_ms: i64,
) -> Result<(), crate::storage::StoreError> {
    let Some(n) = toward_sender else { return Ok(()) };
    let mut tx = node.store.begin().await?;
    tx.enqueue_sender_statuses(digest, &node.config.agency, sender, &n, now_ms).await?;
    tx.commit().await?;
    node.outbound.wake_outbox();
    Ok(())
}

/// The intermediate CA certificates of the envelope's signer chains.
fn path_cas(node: &Node, envelope: &Envelope) -> Vec<pki::Certificate> {
    let cache = node.trust.trust().cache();
    envelope
        .headers()
        .map(|headers| {
            headers
                .iter()
                .flat_map(|h| {
                    h.chain
                        .iter()
                        .skip(1)
                        .filter_map(|der| cache.certificate(der).ok().map(std::sync::Arc::unwrap_or_clone))
                })
                .filter(|c| c.ca.is_some())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pki::document::verify::Role;
    use time::macros::datetime;

    use super::*;
    use crate::storage::StoreError;

    /// Whether each variant should be retried, and why; a match without a wildcard, so a new
    /// variant does not compile until someone decides here whether the sender retries it.
    fn should_retry(e: &IntakeError) -> bool {
        match e {
            // The document is at fault or not ours: the same bytes would be refused again.
            IntakeError::Refused { .. } => false,
            // This node's disk or database: may be fixed by the operator.
            IntakeError::Storage(_) => true,
            // A panicking verification thread says nothing about the document.
            IntakeError::Verifier(_) => true,
            // A signing time ahead of our clock: passes once the clocks agree.
            IntakeError::NotYetValid(_) => true,
            // The CRLs may come from the parent or with the next attempt.
            IntakeError::RevocationUnchecked { .. } => true,
            // A broken transfer: the next attempt resumes or starts again.
            IntakeError::Interrupted(_) => true,
            // A slow link: the next attempt may be faster.
            IntakeError::TimedOut { .. } => true,
            // Our seal's key or chain: the operator's to fix.
            IntakeError::Signing(_) => true,
        }
    }

    fn one_of_each() -> Vec<IntakeError> {
        let (claimed, arrival) = (datetime!(2026-03-02 10:00 UTC), datetime!(2026-03-01 10:00 UTC));
        vec![
            IntakeError::Refused { refusal: Refusal::NoRecipients, receipt: Some(vec![7]) },
            IntakeError::Storage(StoreError::Corrupt("a row".into())),
            IntakeError::Verifier(crate::cpu::CpuError::Panicked("boom".into())),
            IntakeError::NotYetValid(ArrivalError::InFuture { index: 1, role: Role::Seal, claimed, arrival }),
            IntakeError::RevocationUnchecked { gaps: "the seal: no CRL".into() },
            IntakeError::Interrupted(crate::storage::blobs::ReceiveError::Interrupted {
                name: "a.pdf".into(),
                kept: 10,
                size: 20,
                reason: "reset".into(),
            }),
            IntakeError::TimedOut { document: "D1".into(), allowed: Duration::from_secs(90) },
            IntakeError::Signing(pki::document::ReceiptError::Format("no key".into())),
        ]
    }

    #[test]
    fn only_a_refusal_is_final() {
        let all = one_of_each();
        assert_eq!(all.len(), 8, "one sample per variant");
        for e in &all {
            assert_eq!(e.is_transient(), should_retry(e), "{e:?}");
        }
        assert_eq!(all.iter().filter(|e| !e.is_transient()).count(), 1);
    }

    #[test]
    fn only_a_refusal_carries_its_signed_receipt() {
        for e in one_of_each() {
            match &e {
                IntakeError::Refused { .. } => assert_eq!(e.receipt(), Some(&[7u8][..])),
                _ => assert_eq!(e.receipt(), None, "{e:?}"),
            }
        }
        let unsigned = IntakeError::Refused { refusal: Refusal::NoRecipients, receipt: None };
        assert_eq!(unsigned.receipt(), None);
    }

    /// The texts senders and signed refusal notes carry, as the strings built before the
    /// types were.
    #[test]
    fn texts_are_the_ones_senders_are_told() {
        let ours: AgencyCode = "000.00.41.H49".parse().unwrap();
        let other: AgencyCode = "000.00.42.H49".parse().unwrap();
        let cases: Vec<(IntakeError, String)> = vec![
            (
                IntakeError::Refused {
                    refusal: Refusal::NotOurSender { node: ours, sender: other },
                    receipt: None,
                },
                format!("this node sends for {ours} only, not for {other}"),
            ),
            (
                IntakeError::Refused { refusal: Refusal::NotARecipient(other), receipt: None },
                format!("{other} is not a recipient of this document (or is listed twice)"),
            ),
            (
                IntakeError::Refused {
                    refusal: Refusal::AttachmentTooLarge { name: "a.pdf".into(), size: 11, limit: 10 },
                    receipt: None,
                },
                "attachment \"a.pdf\" is 11 bytes, over this node's limit of 10".into(),
            ),
            (
                IntakeError::Refused { refusal: Refusal::DocumentTooLarge { total: 11, limit: 10 }, receipt: None },
                "attachments total 11 bytes, over this node's limit of 10".into(),
            ),
            (
                IntakeError::Refused { refusal: Refusal::IdTaken("D1".into()), receipt: None },
                "a different document with the id D1 was already received".into(),
            ),
            (
                IntakeError::Refused {
                    refusal: Refusal::NoRoute(vec![
                        (other, crate::routing::RouteError::Unknown(other)),
                        (ours, crate::routing::RouteError::Unknown(ours)),
                    ]),
                    receipt: None,
                },
                format!(
                    "{}; {}",
                    crate::routing::RouteError::Unknown(other),
                    crate::routing::RouteError::Unknown(ours)
                ),
            ),
            (
                IntakeError::Storage(StoreError::Corrupt("a row".into())),
                "the node cannot store documents now (stored data is damaged: a row); nothing was taken, send again later"
                    .into(),
            ),
            (
                IntakeError::RevocationUnchecked { gaps: "the seal: no CRL".into() },
                "not taken now: the revocation of its signers cannot be checked here (the seal: no CRL); this node asks its parent for CRLs, send again later".into(),
            ),
            (
                IntakeError::TimedOut { document: "D1".into(), allowed: Duration::from_secs(90) },
                "attachments of D1 did not arrive within 1m 30s".into(),
            ),
            (
                IntakeError::Signing(pki::document::ReceiptError::Format("no key".into())),
                "cannot sign a receipt: receipt is not a signed COSE_Sign1 receipt: no key".into(),
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }
}
