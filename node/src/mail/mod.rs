//! Email notifications: clerks do not watch a terminal all day, yet the law asks them to
//! confirm receipt the same day and to handle urgent (hỏa tốc) documents at once.
//!
//! **Invariant: mail never holds up a document.** The document path only inserts rows into
//! `mail_outbox`, inside the very transaction that takes the document, stores the refusal or
//! the status; the SMTP conversation happens later in the mail worker ([`run`]). So a document
//! is never lost or delayed because the relay is down, and a notification exists if and only if
//! its event was committed.
//!
//! **Invariant: a notification is queued once.** Each has a dedup key (`arrived:<document>`,
//! `failed:<receipt digest>`, `status:<receipt digest>`, `expiry:<fingerprint>:<step>`,
//! `digest:<date>`), unique in the table: a retried delivery, a restart or a second process
//! adds nothing. Its Message-ID is derived from the key, so the one duplicate that cannot be
//! ruled out (the relay accepted it, then the node died before recording that) reaches the
//! mailbox with the same Message-ID as the first copy, which mail clients recognise.
//!
//! - [`config`] — `[mail]`, raw and validated.
//! - [`message`] — what each notification says (Vietnamese, Vietnam time) and the email.
//! - [`queue`] — the table: enqueue, claim, outcome, health.
//! - [`periodic`] — certificate expiry and the daily digest of overdue documents.
//! - [`sender`] — the worker: SMTP over rustls (*ring*), retries with backoff and jitter.

pub mod config;
pub mod message;
pub mod periodic;
pub mod queue;
pub mod sender;

use pki::document::manifest::Manifest;
use pki::document::{ReceiptKind, SignedReceipt, StatusCode};
use time::OffsetDateTime;

pub use config::{MailConfig, RawMail, TlsMode};
pub use message::{Audience, Kind, Notification, StatusMeaning};
pub use queue::MailQueue;
pub use sender::run;

use crate::Node;
use crate::storage::{StoreError, Tx};

/// A time from the database's milliseconds (the epoch for values no clock produces).
fn from_millis(ms: i64) -> OffsetDateTime {
    crate::storage::from_millis(ms).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn agency(node: &Node) -> message::Agency<'_> {
    message::Agency { code: node.config.agency, name: &node.config.name }
}

/// Queues `n` for its audience inside `tx`. False when mail is off, nobody is listed for that
/// audience, or the same notification was queued before.
pub async fn enqueue(tx: &mut Tx<'_>, node: &Node, n: &Notification, now_ms: i64) -> Result<bool, StoreError> {
    let Some(mail) = &node.config.mail else { return Ok(false) };
    let recipients = match n.audience {
        Audience::Clerks => &mail.clerks,
        Audience::Operators => &mail.operators,
    };
    if recipients.is_empty() {
        return Ok(false);
    }
    let message_id = message::message_id(&node.config.agency, &n.dedup_key, mail.from_domain());
    let new = queue::enqueue(tx, n, recipients, &message_id, now_ms).await?;
    if new {
        tracing::debug!(kind = n.kind.as_str(), key = %n.dedup_key, "notification queued");
    }
    Ok(new)
}

/// A neighbour's log does not extend the checkpoint this node co-signed (see
/// `tlog::witness`): the notification for the operators.
pub fn log_fork(
    node: &Node,
    log: &pki::AgencyCode,
    reason: &str,
    witnessed_size: u64,
    at: OffsetDateTime,
) -> Notification {
    message::log_fork(agency(node), log, reason, witnessed_size, at)
}

/// A document was put in this agency's inbox: the clerks are told. Called by `intake` inside
/// the transaction that takes the document, with what it already holds.
pub async fn document_arrived(
    tx: &mut Tx<'_>,
    node: &Node,
    manifest: &Manifest,
    sender_name: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    if node.config.mail.as_ref().is_none_or(|m| m.clerks.is_empty()) {
        return Ok(());
    }
    let n = message::arrived(agency(node), manifest, sender_name, from_millis(now_ms));
    enqueue(tx, node, &n, now_ms).await.map(|_| ())
}

/// Whether a receipt may be mailed at all: a status addressed to this agency, mail on with
/// clerks listed, and either a refusal (02, 16) or recall request (13), which are always mailed,
/// or any status with `notify_status`. Decided from the receipt alone, before any query.
pub fn may_mail(node: &Node, receipt: &SignedReceipt) -> bool {
    let Some(mail) = &node.config.mail else { return false };
    let r = &receipt.receipt;
    let ReceiptKind::Status(code) = r.kind else { return false };
    !mail.clerks.is_empty()
        && r.to == node.config.agency
        && (mail.notify_status
            || matches!(code, StatusCode::Refused | StatusCode::RefusedByRecipient | StatusCode::RecallRequested))
}

/// A status addressed to this agency was stored about the document of `manifest`: a refusal
/// (02, 16) of a document this agency sent, and a recall request (13) for a document it
/// received (the clerk must answer it), are always mailed to the clerks; other statuses of its
/// documents only with `notify_status`. Called inside the transaction that stores the
/// receipt, wherever it comes from: a neighbour, this node's own dead-lettering, or a recipient
/// this node could not route.
pub async fn receipt_for_us(
    tx: &mut Tx<'_>,
    node: &Node,
    receipt: &SignedReceipt,
    manifest: &Manifest,
    now_ms: i64,
) -> Result<(), StoreError> {
    if !may_mail(node, receipt) {
        return Ok(());
    }
    let Some(mail) = &node.config.mail else { return Ok(()) };
    let r = &receipt.receipt;
    let ReceiptKind::Status(code) = r.kind else { return Ok(()) };
    let sent_here = manifest.from == node.config.agency;
    let meaning = match code {
        StatusCode::RecallRequested if !sent_here => StatusMeaning::RecallRequested,
        _ if !sent_here => return Ok(()),
        StatusCode::Refused => StatusMeaning::Undeliverable,
        StatusCode::RefusedByRecipient => {
            // A 16 answering this agency's recall request refuses the recall, not the document.
            let recalled =
                tx.status_held(&r.envelope, &node.config.agency, &r.by, StatusCode::RecallRequested.code()).await?;
            if recalled { StatusMeaning::RecallRefused } else { StatusMeaning::RefusedByRecipient }
        }
        StatusCode::RecallRequested => return Ok(()),
        _ => StatusMeaning::Progress,
    };
    if !meaning.always_mailed() && !mail.notify_status {
        return Ok(());
    }
    let n = message::status(agency(node), manifest, code, meaning, r, &receipt.digest());
    enqueue(tx, node, &n, now_ms).await.map(|_| ())
}

/// The mail queue for the health read-out (`None` when mail is off and nothing was ever
/// queued).
pub async fn health(
    config: &crate::config::Config,
    store: &crate::storage::Store,
    now: OffsetDateTime,
) -> Result<Option<MailQueue>, StoreError> {
    let q = queue::health(store, crate::storage::millis(now)).await?;
    if config.mail.is_none() && q.pending + q.dead + q.sent == 0 {
        return Ok(None);
    }
    Ok(Some(q))
}

/// Alerts about the mail queue for the operator.
pub fn alerts(q: &MailQueue) -> Vec<String> {
    let mut alerts = Vec::new();
    if q.dead > 0 {
        alerts.push(format!("{} notification mail(s) dead-lettered (the relay refused them or kept failing)", q.dead));
    }
    if q.retrying > 0 {
        alerts.push(format!(
            "{} notification mail(s) waiting for the relay, the oldest for {} s: {}",
            q.retrying,
            q.oldest_pending_seconds,
            q.last_error.as_deref().unwrap_or("(no error recorded)")
        ));
    }
    alerts
}
