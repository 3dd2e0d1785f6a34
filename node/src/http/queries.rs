//! The console's own reads and its two writes on the outbox (portable SQL, both backends).
//! The writes touch only transfers that no worker is finishing: a dead one (retry or drop),
//! or a waiting one (retry now, which only moves its next attempt forward).

use sqlx::Row as _;

use crate::storage::{Arg, Store, StoreError};

/// A transfer waiting or dead-lettered, as the console lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct TransferRow {
    /// Row id.
    pub(crate) id: i64,
    /// `document` or `notice`.
    pub(crate) kind: String,
    /// The document's id.
    pub(crate) document: String,
    /// Its subject (documents only).
    pub(crate) subject: Option<String>,
    /// The next hop.
    pub(crate) next_hop: String,
    /// The recipients it carries for.
    pub(crate) recipients: String,
    /// `pending` or `dead`.
    pub(crate) state: String,
    /// Failed attempts.
    pub(crate) attempts: i64,
    /// Next attempt, ms.
    pub(crate) next_attempt_at: i64,
    /// The latest error.
    pub(crate) last_error: Option<String>,
    /// Queued, ms.
    pub(crate) created_at: i64,
}

/// At most this many transfers are listed (dead first, then the oldest waiting).
pub(crate) const LISTED: i64 = 200;

/// Transfers waiting or dead, dead first, then by age.
pub(crate) async fn transfers(store: &Store) -> Result<Vec<TransferRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT o.id, o.kind, COALESCE(d.doc_id, r.doc_id, '') AS doc_id, d.subject, o.next_hop, o.recipients,
                o.state, o.attempts, o.next_attempt_at, o.last_error, o.created_at
         FROM outbox o LEFT JOIN documents d ON d.id = o.document LEFT JOIN receipts r ON r.id = o.receipt
         WHERE o.state IN ('pending', 'dead')
         ORDER BY CASE WHEN o.state = 'dead' THEN 0 ELSE 1 END, o.created_at, o.id LIMIT $1",
    )
    .bind(LISTED)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TransferRow {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                document: r.try_get("doc_id")?,
                subject: r.try_get("subject")?,
                next_hop: r.try_get("next_hop")?,
                recipients: r.try_get("recipients")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// What a retry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retried {
    /// A dead transfer is waiting again, with a fresh count of attempts.
    Revived,
    /// A waiting transfer's next attempt is now.
    Hastened,
    /// Nothing: no such transfer, or it is done, refused or dropped.
    NotWaiting,
}

/// Retries transfer `id` now: a dead one goes back to waiting with its attempts reset (so
/// the retry policy applies afresh), a waiting one is due at once.
pub(crate) async fn retry(store: &Store, id: i64, now: i64) -> Result<Retried, StoreError> {
    let mut tx = store.begin().await?;
    let state: Option<String> = tx
        .fetch_optional("SELECT state FROM outbox WHERE id = $1", vec![Arg::from(id)])
        .await?
        .map(|r| r.try_get("state"))
        .transpose()?;
    let outcome = match state.as_deref() {
        Some("dead") => {
            tx.execute("UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND state = 'dead'", vec![Arg::from(id), Arg::from(now)]).await?;
            Retried::Revived
        }
        Some("pending") => {
            tx.execute(
                "UPDATE outbox SET next_attempt_at = $2 WHERE id = $1 AND state = 'pending'",
                vec![Arg::from(id), Arg::from(now)],
            )
            .await?;
            Retried::Hastened
        }
        _ => Retried::NotWaiting,
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Drops dead transfer `id` (state `dropped`: kept for the record, never sent, no longer an
/// alert). False when it is not dead: a waiting transfer cannot be dropped, since its sender
/// has not been told it failed.
pub(crate) async fn drop_dead(store: &Store, id: i64, now: i64) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let done = tx.execute("UPDATE outbox SET state = 'dropped', done_at = $2, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND state = 'dead'", vec![Arg::from(id), Arg::from(now)]).await?;
    tx.commit().await?;
    Ok(done > 0)
}
