//! What a sent document is waiting for: its pending outbox transfers, so the sender's clerk
//! sees `sending (retrying: …)` while a next hop is down instead of a bare `new`.

use sqlx::Row;

use super::{Store, StoreError, split_codes};
use crate::protocol::Waiting;

/// The query of [`Store::waiting_transfers`], run for each document of a clerk's sent listing
/// that no recipient has answered for: the document by its digest, its transfers by
/// `outbox_document` (before migration 0010 every waiting transfer of the node was read and
/// sorted for each such document). Public so that the integration tests can ask
/// PostgreSQL's planner for its plan.
pub const WAITING: &str = "SELECT o.next_hop, o.recipients, o.attempts, o.last_error, o.next_attempt_at
     FROM outbox o JOIN documents d ON o.document = d.id
     WHERE d.digest = $1 AND o.kind = 'document' AND o.state = 'pending'
     ORDER BY o.id";

impl Store {
    /// The pending document transfers of the document with envelope digest `digest`.
    pub async fn waiting_transfers(&self, digest: &[u8]) -> Result<Vec<Waiting>, StoreError> {
        let rows = sqlx::query(WAITING).bind(digest.to_vec()).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                Ok(Waiting {
                    next_hop: r.try_get("next_hop")?,
                    recipients: split_codes(&r.try_get::<String, _>("recipients")?)?
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                    last_error: r.try_get("last_error")?,
                    next_attempt_ms: r.try_get("next_attempt_at")?,
                })
            })
            .collect()
    }
}
