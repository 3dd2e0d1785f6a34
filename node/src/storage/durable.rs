//! Group commit for SQLite: many transactions, one `fsync`.
//!
//! With `synchronous = FULL`, SQLite syncs its write-ahead log at every `COMMIT` while the
//! process-wide write lock is held, so commits are serialised behind the disk: one fsync per
//! transaction, and every other writer waits for it. Here SQLite runs with `synchronous =
//! NORMAL` (in WAL mode: a commit writes its frames to the log without syncing it; SQLite
//! still syncs the log before each checkpoint and the database after), and durability comes
//! from [`WalSync::durable`], which every [`super::Tx::commit`] awaits *after* releasing the
//! write lock: it syncs the log file once for every commit that finished before the sync
//! began. A commit is on disk when `commit` returns, as before; concurrent commits share one
//! fsync instead of queueing for one each.
//!
//! Why that is enough: a committed transaction is its frames in the `-wal` file (appended with
//! `write`), and `fdatasync` of that file, from any descriptor, puts them on disk; a frame that
//! is no longer in the log was copied into the database by a checkpoint, which SQLite syncs
//! itself. PostgreSQL needs none of this: its own WAL writer already flushes concurrent
//! commits together.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

/// The write-ahead log of one SQLite database and how far it is known to be on disk.
#[derive(Debug)]
pub(crate) struct WalSync {
    /// The `-wal` file.
    path: PathBuf,
    /// Commits finished so far (a ticket per commit).
    committed: AtomicU64,
    /// The highest ticket known durable; held while a sync runs, so that one sync at a time
    /// serves everyone waiting.
    synced: tokio::sync::Mutex<u64>,
    /// Syncs done, for the figures (`commits / syncs` is the batch size).
    syncs: AtomicU64,
}

impl WalSync {
    /// The barrier for the database file `database` (its log is `database-wal`).
    pub(crate) fn new(database: PathBuf) -> WalSync {
        let mut wal = database.into_os_string();
        wal.push("-wal");
        WalSync {
            path: wal.into(),
            committed: AtomicU64::new(0),
            synced: tokio::sync::Mutex::new(0),
            syncs: AtomicU64::new(0),
        }
    }

    /// Returns once every commit that finished before this call is on disk. Call it after
    /// `COMMIT` succeeded and after the write lock is released.
    pub(crate) async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= ticket {
            // A sync that began after this commit finished has completed.
            return Ok(());
        }
        // Every commit with a ticket up to here has finished: this sync covers them all.
        let upto = self.committed.load(Ordering::SeqCst);
        let path = self.path.clone();
        let result = tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
            Ok(file) => file.sync_data(),
            // No log: the last checkpoint moved everything into the database and removed it,
            // and SQLite synced the database after that checkpoint.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(format!("the log sync task failed: {e}"))))?;
        result.map_err(|e| {
            StoreError::Io(std::io::Error::new(e.kind(), format!("syncing {}: {e}", self.path.display())))
        })?;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        *synced = upto;
        Ok(())
    }

    /// (commits, syncs) so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.committed.load(Ordering::Relaxed), self.syncs.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_share_syncs_and_each_waits_for_one() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("node.db");
        std::fs::write(format!("{}-wal", db.display()), b"frames").unwrap();
        let wal = std::sync::Arc::new(WalSync::new(db));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move { wal.durable().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let (commits, syncs) = wal.counts();
        assert_eq!(commits, 64);
        assert!((1..=64).contains(&syncs), "{syncs}");
        // A commit after the others gets its own sync: nothing synced before it covers it.
        wal.durable().await.unwrap();
        assert_eq!(wal.counts(), (65, syncs + 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_syncs_its_own_log_once_per_batch_of_commits() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/node.db", dir.path().display());
        let store = std::sync::Arc::new(crate::storage::Store::open(&url, dir.path()).await.unwrap());
        let wal = store.wal.as_ref().unwrap();
        assert_eq!(wal.path, dir.path().join("node.db-wal"), "the file SQLite writes its log to");
        assert!(wal.path.exists());
        let (commits, syncs) = store.group_commit_counts().unwrap();
        let tx = store.begin().await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.group_commit_counts(), Some((commits + 1, syncs + 1)), "a lone commit is synced");
        // Concurrent writers: every commit waits for a sync, and they share them.
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.begin().await?.commit().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let (after_commits, after_syncs) = store.group_commit_counts().unwrap();
        assert_eq!(after_commits, commits + 33);
        assert!(after_syncs > syncs + 1 && after_syncs <= syncs + 33, "{after_syncs}");
        println!("33 commits, {} syncs", after_syncs - syncs);
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_synced_is_an_error_and_a_missing_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = WalSync::new(dir.path().join("gone.db"));
        missing.durable().await.unwrap();
        // A directory where the log should be: opening works, syncing a directory works too on
        // Linux, so make the path unreadable instead (root ignores modes: use a dangling
        // component that is a file).
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let broken = WalSync::new(file.join("node.db"));
        let err = broken.durable().await.unwrap_err();
        assert!(err.to_string().contains("syncing"), "{err}");
    }
}
