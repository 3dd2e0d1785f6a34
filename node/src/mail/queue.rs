//! The mail queue in the database (`mail_outbox`): queued inside the transaction of the event
//! that causes a notification, claimed by the mail worker, marked sent or failed.
//!
//! The outbox pattern of the document transfers, for mail: on SQLite one process owns the
//! database and claiming is a plain read (the worker is a single task, so nothing runs twice);
//! on PostgreSQL, where several node processes may share the queue, a claim is a lease taken
//! with `FOR UPDATE SKIP LOCKED`, and only the holder of a lease may record the outcome.

use lettre::message::Mailbox;
use sqlx::Row as _;

use super::message::Notification;
use crate::storage::{Arg, Backend, Leased, Row, Store, StoreError, Tx, held_by};

/// A notification claimed for sending.
#[derive(Debug, Clone)]
pub struct QueuedMail {
    /// Row id.
    pub id: i64,
    /// `arrived`, `failed`, `status`, `expiry`, `digest`.
    pub kind: String,
    /// The Message-ID, fixed when queued.
    pub message_id: String,
    /// Recipients, one mailbox per line (parsed when sent, so one damaged row cannot stop the
    /// queue).
    pub recipients: String,
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it was queued (ms): the Date of the email.
    pub created_at: i64,
}

/// Queues a notification for `recipients` with `message_id`; false if a notification with the
/// same dedup key was queued before (a retried delivery, a restart, another process).
pub async fn enqueue(
    tx: &mut Tx<'_>,
    n: &Notification,
    recipients: &[Mailbox],
    message_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let recipients = recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    let done = tx.execute("INSERT INTO mail_outbox (dedup_key, kind, message_id, recipients, subject, body, state, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) ON CONFLICT (dedup_key) DO NOTHING", vec![Arg::from(&n.dedup_key), Arg::from(n.kind.as_str()), Arg::from(message_id), Arg::from(recipients), Arg::from(&n.subject), Arg::from(&n.body), Arg::from(now)]).await?;
    Ok(done > 0)
}

/// Whether a notification with this dedup key was ever queued.
pub async fn queued(store: &Store, dedup_key: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query("SELECT 1 AS one FROM mail_outbox WHERE dedup_key = $1")
        .bind(dedup_key)
        .fetch_optional(store.pool())
        .await?
        .is_some())
}

fn queued_mail(row: &Row) -> Result<QueuedMail, StoreError> {
    Ok(QueuedMail {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        message_id: row.try_get("message_id")?,
        recipients: row.try_get("recipients")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        created_at: row.try_get("created_at")?,
    })
}

/// Claims up to `limit` due notifications for `owner` until `lease_until` (ms).
pub async fn claim(
    store: &Store,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<QueuedMail>, StoreError> {
    let rows = store
        .claim_rows(
            Leased::Mail,
            "id, kind, message_id, recipients, subject, body, attempts, created_at",
            owner,
            now,
            lease_until,
            limit,
        )
        .await?;
    // In the order they fell due (claim_rows' order), oldest first.
    rows.iter().map(queued_mail).collect()
}

/// Records that the relay accepted a notification. False when the claim was lost (its lease
/// ran out and another process took it).
pub async fn mark_sent(store: &Store, id: i64, owner: &str, now: i64) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let done = tx.execute(concat!(
        "UPDATE mail_outbox SET state = 'sent', sent_at = $3, last_attempt_at = $3, lease_owner = NULL, lease_until = NULL WHERE ",
        held_by!()
    ), vec![Arg::from(id), Arg::from(owner), Arg::from(now)]).await?;
    tx.commit().await?;
    Ok(done > 0)
}

/// Records a failed attempt: retried at `next_attempt_at`, or dead-lettered.
pub async fn mark_failed(
    store: &Store,
    id: i64,
    owner: &str,
    error: &str,
    now: i64,
    next_attempt_at: i64,
    dead: bool,
) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let done = tx.execute(concat!(
        "UPDATE mail_outbox SET attempts = attempts + 1, last_error = $3, last_attempt_at = $4, next_attempt_at = $5, state = $6, lease_owner = NULL, lease_until = NULL WHERE ",
        held_by!()
    ), vec![Arg::from(id), Arg::from(owner), Arg::from(error), Arg::from(now), Arg::from(next_attempt_at), Arg::from(if dead { "dead" } else { "pending" })]).await?;
    tx.commit().await?;
    Ok(done > 0)
}

/// Gives a claim back untried (shutdown began): another process, or this one after its
/// restart, takes it at once instead of after the lease.
pub async fn release(store: &Store, id: i64, owner: &str) -> Result<(), StoreError> {
    if store.backend() == Backend::Sqlite {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    tx.execute(
        "UPDATE mail_outbox SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
        vec![Arg::from(id), Arg::from(owner)],
    )
    .await?;
    tx.commit().await
}

/// A dead-lettered notification, for the operator.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadMail {
    /// Row id.
    pub id: i64,
    /// Its kind.
    pub kind: String,
    /// Its subject.
    pub subject: String,
    /// Attempts made.
    pub attempts: i64,
    /// The relay's last answer.
    pub last_error: String,
}

/// The mail queue in the health read-out.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MailQueue {
    /// Waiting to be sent.
    pub pending: i64,
    /// Of which already failed at least once.
    pub retrying: i64,
    /// Given up (after the retry policy, or refused for good by the relay).
    pub dead: i64,
    /// Accepted by the relay.
    pub sent: i64,
    /// Age of the oldest notification waiting, seconds (0 when none waits).
    pub oldest_pending_seconds: i64,
    /// The latest error of a notification still waiting or dead, if any.
    pub last_error: Option<String>,
    /// When it happened (UTC).
    pub last_error_at: Option<String>,
    /// The latest dead-lettered notifications.
    pub dead_letters: Vec<DeadMail>,
}

/// The queue's depths, oldest wait and latest failure, at `now` (ms).
pub async fn health(store: &Store, now: i64) -> Result<MailQueue, StoreError> {
    let d = store.depths(Leased::Mail, now).await?;
    let mut q = MailQueue {
        pending: d.count("pending"),
        retrying: d.retrying,
        dead: d.count("dead"),
        sent: d.count("sent"),
        oldest_pending_seconds: d.oldest_pending_seconds,
        ..MailQueue::default()
    };
    let last = sqlx::query(
        "SELECT last_error, last_attempt_at FROM mail_outbox WHERE last_error IS NOT NULL AND state IN ('pending', 'dead')
         ORDER BY last_attempt_at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    if let Some(r) = last {
        q.last_error = r.try_get("last_error")?;
        q.last_error_at =
            r.try_get::<Option<i64>, _>("last_attempt_at")?.and_then(crate::storage::from_millis).map(pki::format_utc);
    }
    let dead = sqlx::query(
        "SELECT id, kind, subject, attempts, COALESCE(last_error, '') AS last_error FROM mail_outbox WHERE state = 'dead' ORDER BY id DESC LIMIT 10",
    )
    .fetch_all(store.pool())
    .await?;
    q.dead_letters = dead
        .iter()
        .map(|r| {
            Ok(DeadMail {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(q)
}
