//! Storage failures, remembered for the operator: how many since start, the latest with its
//! time, and (once the database takes writes again) the same in the database, so that
//! `lienthong-node status` shows a failure after it is over.

use std::sync::Mutex;

use serde::Serialize;
use sqlx::Row as _;

use super::{Arg, Store, StoreError};

/// In memory: what the running process saw.
#[derive(Debug, Default)]
pub(crate) struct FaultLog {
    since_start: u64,
    /// Seen but not yet written to the database.
    unrecorded: u64,
    last: Option<(i64, String)>,
}

/// Storage failures, for the health read-out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StorageFaults {
    /// Failures seen by the running process (absent when read from storage alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_start: Option<u64>,
    /// Failures recorded in the database over the node's life (counter `storage_errors`).
    pub recorded: i64,
    /// When the latest failure happened, ms.
    pub last_at_ms: Option<i64>,
    /// What it said.
    pub last_error: Option<String>,
}

impl StoreError {
    /// Whether this is a failure of the node's storage (database, files, space), as opposed to
    /// a problem with what was being stored (an attachment that does not match its manifest).
    pub fn is_storage_failure(&self) -> bool {
        match self {
            StoreError::Batch(e) => e.is_storage_failure(),
            e => !matches!(e, StoreError::Attachment { .. }),
        }
    }

    /// Whether it is unknown that nothing of the failed write was kept: its `COMMIT` failed
    /// in a way that may bring it back after a restart (see [`StoreError::CommitInDoubt`]).
    pub fn is_in_doubt(&self) -> bool {
        match self {
            StoreError::CommitInDoubt { .. } | StoreError::Abandoned => true,
            StoreError::Batch(e) => e.is_in_doubt(),
            _ => false,
        }
    }

    /// Whether the failure says the disk (or the database's space) is full: ENOSPC or EDQUOT
    /// from a file, SQLITE_FULL, PostgreSQL's `disk_full`, or the configured reserve.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } => true,
            StoreError::Batch(e) => e.is_disk_full(),
            StoreError::Io(e) | StoreError::Dir { source: e, .. } => io_full(e),
            StoreError::LogNotEmptied { cause, .. }
            | StoreError::CommitInDoubt { why: super::InDoubt::LogNotEmptied(cause), .. } => cause.is_disk_full(),
            StoreError::Database(sqlx::Error::Io(e)) => io_full(e),
            // The writer's connection (see `sqlite`).
            StoreError::Sqlite(e) => sqlite_full(e),
            StoreError::Database(sqlx::Error::Database(e)) => {
                // SQLITE_FULL is 13 (extended codes keep it in the low byte); 53100 is
                // PostgreSQL's disk_full.
                e.code().is_some_and(|c| c == "53100" || c.parse::<i64>().is_ok_and(|n| n & 0xff == 13))
            }
            _ => false,
        }
    }
}

impl super::LogCheckpointError {
    /// Whether emptying the log failed for a full disk (its checkpoint's copy into the
    /// database file, or the cut's sync).
    fn is_disk_full(&self) -> bool {
        match self {
            super::LogCheckpointError::Checkpoint(e) => sqlite_full(e),
            super::LogCheckpointError::Sync(e) => io_full(e),
            super::LogCheckpointError::Busy(_) => false,
        }
    }
}

/// ENOSPC or EDQUOT from a file.
fn io_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        || e.raw_os_error() == Some(28)
}

/// SQLITE_FULL, in the low byte of the extended code.
fn sqlite_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(e, _) if e.extended_code & 0xff == 13)
}

impl Store {
    /// Remembers a storage failure seen at `now` (ms); failures of what was stored (see
    /// [`StoreError::is_storage_failure`]) are not counted.
    pub fn note_failure(&self, error: &StoreError, now: i64) {
        if !error.is_storage_failure() {
            return;
        }
        let mut log = lock(&self.faults);
        log.since_start += 1;
        log.unrecorded += 1;
        log.last = Some((now, error.to_string()));
    }

    /// What the running process saw: failures since start, and the latest.
    pub fn faults_seen(&self) -> (u64, Option<(i64, String)>) {
        let log = lock(&self.faults);
        (log.since_start, log.last.clone())
    }

    /// Writes the failures seen since the last call into the database (the counter and the
    /// latest); true if there was anything to write. Fails, and keeps them, while the
    /// database still refuses writes.
    pub async fn record_faults(&self) -> Result<bool, StoreError> {
        let (count, last) = {
            let log = lock(&self.faults);
            (log.unrecorded, log.last.clone())
        };
        let Some((at, error)) = last.filter(|_| count > 0) else { return Ok(false) };
        let mut tx = self.begin().await?;
        tx.count("storage_errors", i64::try_from(count).unwrap_or(i64::MAX)).await?;
        tx.execute("INSERT INTO storage_faults (id, at, error) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET at = $1, error = $2", vec![Arg::from(at), Arg::from(error)]).await?;
        tx.commit().await?;
        let mut log = lock(&self.faults);
        log.unrecorded = log.unrecorded.saturating_sub(count);
        Ok(true)
    }

    /// The failures recorded in the database.
    pub async fn recorded_faults(&self) -> Result<StorageFaults, StoreError> {
        let recorded = sqlx::query("SELECT value FROM counters WHERE name = 'storage_errors'")
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.try_get::<i64, _>("value"))
            .transpose()?
            .unwrap_or(0);
        let last = sqlx::query("SELECT at, error FROM storage_faults WHERE id = 1").fetch_optional(self.pool()).await?;
        Ok(StorageFaults {
            since_start: None,
            recorded,
            last_at_ms: last.as_ref().map(|r| r.try_get("at")).transpose()?,
            last_error: last.as_ref().map(|r| r.try_get("error")).transpose()?,
        })
    }
}

fn lock(m: &Mutex<FaultLog>) -> std::sync::MutexGuard<'_, FaultLog> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk met by SQLite's writer connection is reported as one (the refusal then
    /// says so, and the node alerts), like the same failure through sqlx.
    #[test]
    fn sqlite_full_on_the_writer_is_a_full_disk() {
        let failure = |code| StoreError::Sqlite(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None));
        assert!(failure(rusqlite::ffi::SQLITE_FULL).is_disk_full());
        assert!(StoreError::Batch(std::sync::Arc::new(failure(rusqlite::ffi::SQLITE_FULL))).is_disk_full());
        assert!(!failure(rusqlite::ffi::SQLITE_CONSTRAINT).is_disk_full());
        assert!(!failure(rusqlite::ffi::SQLITE_IOERR).is_disk_full());
        assert!(failure(rusqlite::ffi::SQLITE_CONSTRAINT).is_storage_failure());
    }
}
