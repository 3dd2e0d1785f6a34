//! Durable state: documents, attachments, routes, the outbox, receipts, CRLs.
//!
//! One code path for SQLite (embedded default, WAL) and PostgreSQL: sqlx's `Any` driver with
//! portable SQL (`$n` placeholders, `RETURNING`, `ON CONFLICT`), and one migration set per
//! backend under `migrations/`, embedded in the binary and applied at start. Where the two
//! differ (claiming outbox work), the SQL is chosen by [`Backend`]. SQLite allows one writer:
//! write transactions take a process-wide lock instead of failing with SQLITE_BUSY.
//!
//! Attachments live outside the database in a content-addressed [`blobs::BlobStore`].

/// The condition under which a worker may record the outcome of a claimed row of a leased
/// queue: it is still pending and held by this owner (or by nobody: a SQLite claim is a plain
/// read). `held_by!()` binds `$1` = row id, `$2` = owner; `held_by!(owner = "$n")` names the
/// owner's placeholder and leaves the rows to the caller (several at once). The one statement
/// of "only the holder of a claim finishes it", for the outbox and the mail queue alike.
macro_rules! held_by {
    () => {
        concat!("id = $1 AND ", held_by!(owner = "$2"))
    };
    (owner = $owner:literal) => {
        concat!("state = 'pending' AND (lease_owner = ", $owner, " OR lease_owner IS NULL)")
    };
}
pub(crate) use held_by;

mod batch;
pub mod blobs;
mod deferred;
mod delivery;
mod documents;
mod faults;
pub mod inline;
mod outbox;
#[cfg(test)]
mod plans;
mod receipts;
pub mod space;
mod sqlite;
mod statement;
pub mod tlog;
mod values;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, ConnectOptions};

pub(crate) use statement::{Arg, Row};

pub use delivery::WAITING;
pub use documents::{
    ATTACHMENTS, DocInsert, INBOX, NewDocument, NewRoute, SENT, SUPERSEDER, StoredDocument, superseded_verb,
};
pub use faults::StorageFaults;
pub use outbox::{Claim, HopQueue, Leased, NewTransfer, NextDue, OUTBOX_BY_HOP, QueueDepths, Transfer, TransferKind};
pub use receipts::StoredReceipt;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite, one writer.
    Sqlite,
    /// PostgreSQL, shared by one or several node processes.
    Postgres,
}

impl Backend {
    /// The backend a database URL names (`sqlite:…`, otherwise PostgreSQL; the config only
    /// accepts those two).
    pub fn of_url(url: &str) -> Backend {
        if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres }
    }

    /// Its name in backups and messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite's writer connection failed (see [`sqlite`]).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database URL names an in-memory SQLite database, which the node's writer and readers
    /// (connections of their own) could not share.
    #[error(
        "{url}: an in-memory SQLite database cannot be shared by the node's writer and readers; name a file (sqlite:///var/lib/lienthong/node.db)"
    )]
    InMemory {
        /// The URL.
        url: String,
    },
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The batch of writes this one was committed with failed (see [`batch`]): nothing of it
    /// was kept. Shared by every write in the batch.
    #[error("{0}")]
    Batch(std::sync::Arc<StoreError>),
    /// The task recording this write together with others ended before it said how the
    /// write went (it panicked, or the runtime is stopping): whether it was kept is not
    /// known to the caller, who treats it as not kept and finds it out on the next attempt.
    #[error("the task recording this write with others ended before it answered")]
    Abandoned,
    /// The attachment store failed.
    #[error("attachment store: {0}")]
    Io(#[from] std::io::Error),
    /// A directory of the node's data could not be created or read.
    #[error("{path}: {source}")]
    Dir {
        /// The directory.
        path: std::path::PathBuf,
        /// What happened.
        source: std::io::Error,
    },
    /// A stored value does not read back (a bug or a damaged database).
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// An attachment does not match the manifest.
    #[error("attachment {name:?}: {problem}")]
    Attachment {
        /// Its name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// A `COMMIT` failed in a way that leaves open whether what it held is kept (see
    /// [`InDoubt`]): its writers are not told that nothing was kept, but that it may have been.
    #[error("{commit}; {why}")]
    CommitInDoubt {
        /// Why the `COMMIT` failed.
        commit: Box<StoreError>,
        /// Why that leaves its outcome open.
        why: InDoubt,
    },
    /// SQLite's log may still hold the frames of a commit that failed (a sync of the log
    /// failed), and emptying it failed too: a crash now would bring that commit back, so the
    /// node takes no write until the log is emptied (see `batch`).
    #[error(
        "the database's log {} may hold a commit that failed and cannot be emptied yet ({cause}); no write is taken until it is",
        log.display()
    )]
    LogNotEmptied {
        /// The log's file.
        log: std::path::PathBuf,
        /// Why it is not empty.
        cause: LogCheckpointError,
    },
    /// Storing would leave less than the configured reserve free on a filesystem the node
    /// writes to.
    #[error(
        "{free} bytes free on {} for {needed} bytes to store, below the reserve of {reserve} bytes (limits.min_free_bytes)",
        path.display()
    )]
    NoSpace {
        /// A directory on that filesystem.
        path: std::path::PathBuf,
        /// Bytes available there.
        free: u64,
        /// Bytes the write needs.
        needed: u64,
        /// The reserve.
        reserve: u64,
    },
}

/// Why a failed `COMMIT` may be kept all the same (see [`StoreError::CommitInDoubt`]).
#[derive(Debug, thiserror::Error)]
pub enum InDoubt {
    /// SQLite: the `COMMIT` may be whole in the log, and the log could not be emptied after it
    /// (see `batch`): what it held is not in the database, but a crash before the log is
    /// emptied brings it back.
    #[error("the database's log may still hold that commit and cannot be emptied yet ({0}), so a restart may find it")]
    LogNotEmptied(LogCheckpointError),
    /// PostgreSQL: the server did not answer the `COMMIT` (the connection failed first) or
    /// ended the session in answer (`FATAL`, `PANIC`): it may have done it.
    #[error("the database did not answer the COMMIT, or ended the session in answer; it may have done it")]
    NoAnswer,
}

/// Why SQLite's log could not be emptied after a failed commit (see
/// [`StoreError::LogNotEmptied`]).
#[derive(Debug, thiserror::Error)]
pub enum LogCheckpointError {
    /// The checkpoint (or opening the connection to run it) failed.
    #[error("checkpoint: {0}")]
    Checkpoint(rusqlite::Error),
    /// The checkpoint could not finish before the busy handler gave up: other connections
    /// still read the frames of the log (a long read, a backup), or another process held the
    /// database's write lock. Holds the frames left in the log.
    #[error("other connections still use the database; {0} frames left in the log")]
    Busy(i64),
    /// The log was cut, but syncing that failed.
    #[error("sync: {0}")]
    Sync(std::io::Error),
}

/// The node's database and attachment store.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's one writer, which commits writes in batches (see [`batch`]); PostgreSQL takes
    /// concurrent transactions and groups their syncs itself.
    writer: Option<batch::Writer>,
    /// SQLite's read connections for [`Store::fetch_all`] (see [`sqlite::Readers`]).
    readers: Option<sqlite::Readers>,
    blobs: blobs::BlobStore,
    /// Where the node writes: the data directory and, on SQLite, the database's directory.
    write_dirs: Vec<std::path::PathBuf>,
    faults: std::sync::Mutex<faults::FaultLog>,
    /// The agency whose transparency log every write transaction appends to; unset, nothing
    /// is logged (see [`Store::keep_log`]).
    log: std::sync::OnceLock<pki::AgencyCode>,
}

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Milliseconds since the Unix epoch, the unit of local times in the database.
pub fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time of a [`millis`] value; `None` only for values no clock produces.
pub fn from_millis(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

impl Store {
    /// Opens (creating if needed) the database at `url` and the attachment store under
    /// `data_dir`, and applies migrations.
    pub async fn open(url: &str, data_dir: &Path) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        blobs::create_dir_durably(data_dir).map_err(|source| StoreError::Dir { path: data_dir.to_owned(), source })?;
        let backend = Backend::of_url(url);
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        // One connection first, set up as the pool's will be: a database that cannot be opened
        // (missing, damaged, on a read-only filesystem) fails here at once with its own error,
        // instead of the pool retrying quietly until its acquire timeout.
        let mut probe = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await?;
        set_up(&mut probe, backend).await?;
        sqlx::Connection::close(probe).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| Box::pin(async move { set_up(conn, backend).await }))
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => MIGRATE_SQLITE.run(&pool).await?,
            Backend::Postgres => MIGRATE_POSTGRES.run(&pool).await?,
        }
        // SQLite's writer, on a connection of its own (see `sqlite`).
        let (writer, readers) = match backend {
            Backend::Sqlite => {
                let Some(file) = sqlite::database_file(&url) else {
                    return Err(StoreError::InMemory { url });
                };
                (Some(batch::Writer::open(file.clone())?), Some(sqlite::Readers::new(file)))
            }
            Backend::Postgres => (None, None),
        };
        let blobs = blobs::BlobStore::open(&data_dir.join("blobs"))?;
        let mut write_dirs = vec![data_dir.to_owned()];
        // The database's directory counts on its own when it is on another filesystem.
        let device = |d: &Path| std::fs::metadata(d).ok().map(|m| std::os::unix::fs::MetadataExt::dev(&m));
        if let Some(dir) = space::sqlite_dir(&url)
            && device(&dir) != device(data_dir)
        {
            write_dirs.push(dir);
        }
        Ok(Store {
            pool,
            backend,
            writer,
            readers,
            blobs,
            write_dirs,
            faults: Default::default(),
            log: Default::default(),
        })
    }

    /// Free bytes on each filesystem the node writes to (the data directory; on SQLite also
    /// the database's directory when it is on another filesystem).
    pub fn free_space(&self) -> Vec<(std::path::PathBuf, std::io::Result<u64>)> {
        self.write_dirs.iter().map(|d| (d.clone(), space::available(d))).collect()
    }

    /// Refuses, before anything is written, a write of `needed` bytes that would leave less
    /// than `reserve` free on a filesystem the node writes to. A reserve of 0 checks nothing.
    pub fn ensure_space(&self, needed: u64, reserve: u64) -> Result<(), StoreError> {
        if reserve == 0 {
            return Ok(());
        }
        for dir in &self.write_dirs {
            let free = space::available(dir).map_err(|source| StoreError::Dir { path: dir.clone(), source })?;
            if !space::fits(free, needed, reserve) {
                return Err(StoreError::NoSpace { path: dir.clone(), free, needed, reserve });
            }
        }
        Ok(())
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The attachment store.
    pub fn blobs(&self) -> &blobs::BlobStore {
        &self.blobs
    }

    /// The pool, for read queries.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The rows `sql` answers, for a point read on a document's way through the node (on
    /// SQLite read in this task, see [`sqlite::Readers`]; it must be small) or a query written
    /// once for the store and a transaction (see [`Tx::fetch_all`]).
    pub(crate) async fn fetch_all(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        match &self.readers {
            Some(readers) => match readers.fetch_all(sql, &args) {
                // Another connection holds a lock a reader waits for only in rare moments (a
                // checkpoint that truncates the log, recovery): the pool's readers wait for it,
                // off this thread.
                Err(e) if sqlite::is_busy(&e) => self.fetch_all_pooled(sql, args).await,
                rows => Ok(rows?),
            },
            None => self.fetch_all_pooled(sql, args).await,
        }
    }

    async fn fetch_all_pooled(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        Ok(statement::query(sql, args).fetch_all(&self.pool).await?.into_iter().map(Row::from).collect())
    }

    /// [`Store::fetch_all`] for the one row `sql` answers; an error if it answers none.
    pub(crate) async fn fetch_one(&self, sql: &str, args: Vec<Arg>) -> Result<Row, StoreError> {
        self.fetch_all(sql, args).await?.into_iter().next().ok_or_else(no_row)
    }

    /// Begins a write transaction. On SQLite it joins the batch of writes that is open (see
    /// [`batch`]), holding the process's one writer until it ends; [`Tx::commit`] still
    /// returns only once the write is committed.
    ///
    /// On PostgreSQL the transaction is ours, not sqlx's (see [`Tx`]): `BEGIN` is sent as a
    /// plain statement on a pooled connection, so a connection that is somehow still inside a
    /// transaction makes `BEGIN` fail ("cannot start a transaction within a transaction")
    /// instead of silently nesting a savepoint. Such a connection is closed and one fresh
    /// connection is tried before giving up.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        self.begin_as("BEGIN", true).await
    }

    /// A transaction whose `COMMIT` does not wait for the disk's sync (PostgreSQL: `SET LOCAL
    /// synchronous_commit = off`, sent with the `BEGIN` in one round trip; SQLite: a batch at
    /// `synchronous = NORMAL`, see [`batch`]). A crash of the process loses nothing of it; a
    /// crash of the machine or of the database server may take it back, never partly and
    /// never before anything committed earlier, if it comes within a bound: on SQLite
    /// [`batch::UNSYNCED_FOR_AT_MOST`] and the sync's own time (the writer syncs the log then,
    /// sooner with the next synced commit that writes), on PostgreSQL three times its
    /// `wal_writer_delay` (0.6 s by default). Other connections read it as soon as it
    /// commits, before its sync: what it holds must be safe to have acted on and then lose.
    /// One exception is accepted: a hop receipt recorded so is in this node's answers about
    /// a document's path (`path::own_part`) and in what its clerks see of the document
    /// (`track`, `fetch`, the route `forwarded`) at once; a crash of the machine within that
    /// window, followed by the failure of the transfer's whole schedule of attempts, would end
    /// in this node refusing a document whose next hop's receipt it had shown.
    ///
    /// Only for what the node gets back by itself if it is lost, where what it did meanwhile
    /// is safe to do again:
    /// - leases (outbox and mail claims and their renewals): one lost is a lease run out,
    ///   which the guarded finish already handles;
    /// - the record of a hop receipt that came alone, on a transfer's first attempt, and the
    ///   finish of a batch of notices the neighbour took: lost, the transfer is pending
    ///   again with its whole schedule of attempts, sent again, and the neighbour, which
    ///   keeps what it took durably, answers from storage with the same receipt and takes
    ///   notices once. Not a hop receipt with statuses (they leave this node, to the sender
    ///   and to clerks' mail, once committed) nor one after failed attempts (taken back, the
    ///   transfer could die on one more failure and this node would sign a refusal for a
    ///   document the next hop holds): see `outbound::may_record_unsynced`.
    ///
    /// Nothing this node promises (a document or notice taken, a receipt it signs, a
    /// clerk's submission or status) is ever written in one. Measured over four hops one
    /// document at a time: syncs per document 15.2 -> 8.4.
    pub(crate) async fn begin_unsynced(&self) -> Result<Tx<'_>, StoreError> {
        self.begin_as("BEGIN; SET LOCAL synchronous_commit = off", false).await
    }

    /// [`Store::begin_unsynced`] for a claim of the earliest due rows of a queue (see
    /// `outbox::claim_rows_except`), on PostgreSQL with sorts and sequential scans off for the
    /// transaction: the claim is to read the due rows in order from the queue's index, stop at
    /// the first few it may take, and lease those by their key. Left to its estimates, the
    /// server sorted every due row for each claim whenever they were more than its statistics
    /// said (a node's tables grow from nothing, and a prepared statement keeps its generic
    /// plan): 5,500 due rows read and 2,400 sorted for 14 taken, 1.6 ms a claim, in a
    /// benchmark of 6,000 documents; 38 ms with 100,000 due (migration 0011 gave the index the
    /// order); and a claim planned on a small outbox read the whole table twice, once to sort
    /// it and once to find the rows taken. The claim's read of when the next row falls due
    /// runs in it too. The statements run in no other transaction, so the plans they keep are
    /// always made under these settings.
    pub(crate) async fn begin_claim(&self) -> Result<Tx<'_>, StoreError> {
        self.begin_as(
            "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off",
            false,
        )
        .await
    }

    /// [`Store::begin`], opening a PostgreSQL transaction with `begin` (one plain query), or
    /// joining SQLite's batch synced or not.
    async fn begin_as(&self, begin: &'static str, synced: bool) -> Result<Tx<'_>, StoreError> {
        let mut tx = Tx {
            conn: None,
            unit: None,
            log: self.log.get().copied(),
            log_pending: Vec::new(),
            deferred: deferred::Deferred::default(),
            backend: self.backend,
            queued: false,
            _store: std::marker::PhantomData,
        };
        if let Some(writer) = &self.writer {
            tx.unit = Some(writer.join(synced).await?);
            return Ok(tx);
        }
        let mut retried = false;
        loop {
            // Held by the `Tx` from the start: if this future is dropped halfway (a request
            // timing out), the connection is closed, never returned to the pool mid-`BEGIN`.
            tx.conn = Some(self.pool.acquire().await?);
            let began = match tx.conn.as_mut() {
                Some(conn) => sqlx::raw_sql(begin).execute(&mut **conn).await,
                None => unreachable!("the connection was just acquired"),
            };
            match began {
                Ok(_) => return Ok(tx),
                Err(e) => {
                    if let Some(conn) = tx.conn.take() {
                        discard(conn).await;
                    }
                    if retried {
                        return Err(e.into());
                    }
                    tracing::warn!(error = %e, "BEGIN failed; that database connection is closed, trying a fresh one");
                    retried = true;
                }
            }
        }
    }

    /// SQLite: how many batches of writes were committed since the store was opened, and how
    /// many writes they held (their ratio is the commits group commit saved; batches of
    /// unsynced writes commit without a sync). `None` on PostgreSQL.
    pub fn write_batches(&self) -> Option<(u64, u64)> {
        self.writer.as_ref().map(batch::Writer::committed)
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.flush().await;
        }
        if let Some(readers) = &self.readers {
            readers.close();
        }
        self.pool.close().await;
    }
}

/// How long a SQLite connection waits for a lock another one holds (`busy_timeout`), the
/// pool's and the writer's alike.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of every SQLite connection of the node, the pool's and the writer's, with
/// [`SQLITE_BUSY_TIMEOUT`] (see [`set_up`]).
const SQLITE_PRAGMAS: [&str; 4] = [
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA mmap_size = 268435456",
];

/// Sets up a new connection. SQLite: WAL (readers do not block the writer); `synchronous =
/// FULL` (a commit is on disk when it returns, which is what a hop receipt promises); a busy
/// timeout; foreign keys; and the database file read through a memory map (up to 256 MiB):
/// with several connections, each re-read pages another one changed with `pread`, copying
/// them — 20 % of the CPU of a node taking documents in a profile, and its rate fell as the
/// database grew; mapped, SQLite reads them in place (one hop at 256 in flight: +40 %).
/// (The in-task readers turn the map off again, see `sqlite::Conn::open_reader`.)
/// Writes still go through `write` and `fsync`, so durability is unchanged; a read error of
/// the disk under the map would stop the process (SIGBUS) instead of failing one query.
///
/// PostgreSQL: a commit is on disk when it returns only with `synchronous_commit` on (or
/// `local`, `remote_write`, `remote_apply`), and a database, a role or the whole server may
/// have been set to `off` (common tuning advice for other applications): a session of the
/// node that finds it off sets it back on for itself (the node's deliberately unsynced
/// writes still turn it off per transaction, see [`Store::begin_unsynced`]). A server running
/// with `fsync = off` cannot be made durable by any session: refused, with the reason, since
/// every receipt the node signed would promise what the server does not keep.
async fn set_up(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            for pragma in SQLITE_PRAGMAS {
                sqlx::query(pragma).execute(&mut *conn).await?;
            }
            let busy = format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis());
            sqlx::query(sqlx::AssertSqlSafe(busy)).execute(&mut *conn).await?;
        }
        Backend::Postgres => {
            let (synchronous, fsync): (String, String) =
                sqlx::query_as("SELECT current_setting('synchronous_commit'), current_setting('fsync')")
                    .fetch_one(&mut *conn)
                    .await?;
            if fsync == "off" {
                return Err(sqlx::Error::Configuration(
                    "the PostgreSQL server runs with fsync = off: nothing it commits survives a crash of its machine, so the receipts this node signs would promise what it does not keep; turn fsync on (postgresql.conf) and reload the server".into(),
                ));
            }
            if synchronous == "off" {
                sqlx::raw_sql("SET synchronous_commit = on").execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}

/// Closes a pooled connection instead of returning it to the pool: the one way to be sure
/// that whatever state it is in (a transaction the database may or may not have rolled back
/// itself) goes with it. Closing rolls back anything still open (SQLite rolls back on
/// `sqlite3_close`; PostgreSQL aborts the transaction of a session that ends). The pool opens
/// a replacement when it needs one.
async fn discard(conn: PoolConnection<Any>) {
    // Bounded: a connection that hangs while closing is dropped (which closes it too).
    let closing = conn.close();
    if !matches!(tokio::time::timeout(Duration::from_secs(5), closing).await, Ok(Ok(()))) {
        tracing::warn!("a database connection did not close cleanly; it was dropped");
    }
}

/// A write transaction. On SQLite it is one write in a batch (see [`batch`]): a savepoint in
/// the open database transaction, rolled back alone when it fails, committed with the batch.
/// On PostgreSQL it is a transaction of its own, and ends in one of three ways, only the first
/// two giving the connection back to the pool:
/// - [`Tx::commit`] returns `Ok` only when `COMMIT` itself succeeded: the work is durable
///   (except in a transaction from [`Store::begin_unsynced`], which holds nothing promised).
/// - [`Tx::rollback`] (a transaction ended on purpose) sends `ROLLBACK`.
/// - Anything else — `COMMIT` or `ROLLBACK` failing, or the `Tx` dropped, as every `?` on a
///   failed statement does — closes the connection, which rolls back whatever is open.
///
/// Why not sqlx's `Transaction`: sqlx counts transaction depth itself and only lowers the
/// count when its own `COMMIT`/`ROLLBACK` succeeds. When SQLite rolls a transaction back on
/// its own (a `COMMIT` failing with `SQLITE_FULL` does), the `ROLLBACK` sqlx queues on drop
/// fails with "no transaction is active", the failure is dropped unseen, the count stays at
/// one, and the pool takes the connection back after a ping. The next `begin` on it sends
/// `SAVEPOINT` instead of `BEGIN`; after one more failure the rollback is `ROLLBACK TO
/// SAVEPOINT`, which does not end the transaction: the connection then holds SQLite's write
/// lock for good and every later "commit" on it releases a savepoint inside a transaction that
/// never commits (sqlx documents that automatic rollbacks may not be counted). Here sqlx never
/// sees a transaction: the batch's savepoints are plain statements of ours, a batch whose
/// transaction ended on its own fails as a whole, and a connection whose state is uncertain
/// is never reused.
///
/// Every statement error inside a transaction must end it (callers use `?`): PostgreSQL
/// answers `COMMIT` of a transaction aborted by an earlier error with a rollback, not an
/// error, and SQLite may have rolled back the whole batch.
pub struct Tx<'a> {
    /// PostgreSQL: the transaction's own connection; `None` once it ended.
    conn: Option<PoolConnection<Any>>,
    /// SQLite: this write in the open batch; `None` once it ended.
    unit: Option<batch::Unit>,
    /// The agency whose log this transaction's events are appended to (see [`Store::keep_log`]).
    log: Option<pki::AgencyCode>,
    /// Log entries of this transaction's events not written yet: on SQLite in one statement
    /// when it commits, on PostgreSQL with the next writes it sends together (see
    /// [`Tx::log_entry`]).
    log_pending: Vec<Vec<u8>>,
    /// PostgreSQL: writes kept to run together before the next statement (see [`Tx::defer`]).
    deferred: deferred::Deferred,
    backend: Backend,
    /// Whether a statement of this transaction queued an outbox row (see [`Tx::queued`]).
    queued: bool,
    /// A transaction is of one store (and holds its writer on SQLite).
    _store: std::marker::PhantomData<&'a Store>,
}

/// Whether a failed `COMMIT` was answered by the database with a plain error, after which it
/// rolled the transaction back. Not when the connection failed before an answer, and not a
/// PostgreSQL `FATAL` or `PANIC`: the server ends the session (or itself) with those, possibly
/// after the commit record was written (a `PANIC` on a failed sync of its log, which its
/// recovery may replay from the kernel's cache; a `FATAL` while waiting for a synchronous
/// standby, after committing locally).
fn answered_as_rolled_back(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(e) => e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_none_or(|pg| {
            !matches!(pg.severity(), sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic)
        }),
        _ => false,
    }
}

impl Tx<'_> {
    /// Commits. `Ok` means the database said the `COMMIT` holding this work succeeded (with
    /// SQLite's `synchronous = FULL`, and PostgreSQL's `synchronous_commit`, which every
    /// session of the node has on, see `set_up`, the data is on disk); on `Err` nothing of the
    /// transaction is kept, unless the error [`StoreError::is_in_doubt`].
    pub async fn commit(mut self) -> Result<(), StoreError> {
        // A failure here drops `self`, which rolls everything back. PostgreSQL: the writes
        // kept and the log's leaves; SQLite: the leaves (its writes ran as they came).
        self.send_kept(true).await?;
        self.insert_log_entries().await?;
        match self.unit.take() {
            Some(unit) => unit.commit().await,
            None => self.end("COMMIT").await,
        }
    }

    /// Ends the transaction without keeping anything (a transaction ended on purpose: the
    /// work turned out not to be needed).
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        match self.unit.take() {
            Some(unit) => unit.rollback().await,
            None => self.end("ROLLBACK").await,
        }
    }

    async fn end(&mut self, statement: &'static str) -> Result<(), StoreError> {
        // The connection stays in `self` while the statement runs: if this future is dropped
        // halfway, `Drop` closes it (the outcome is unknown, so it is never reused).
        let result = match self.conn.as_mut() {
            Some(conn) => sqlx::raw_sql(statement).execute(&mut **conn).await,
            None => return Ok(()),
        };
        let Some(conn) = self.conn.take() else { return Ok(()) };
        match result {
            // Dropped here, it goes back to the pool: the transaction ended, as the database said.
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, statement, "transaction did not end cleanly; closing its database connection");
                discard(conn).await;
                if statement == "COMMIT" && !answered_as_rolled_back(&e) {
                    return Err(StoreError::CommitInDoubt { commit: Box::new(e.into()), why: InDoubt::NoAnswer });
                }
                Err(e.into())
            }
        }
    }

    /// Runs `sql` with `args` bound (see [`statement`]) as part of the transaction; returns
    /// the rows it changed. On SQLite it runs on the writer's connection, in this task.
    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        self.send_deferred().await?;
        match (self.unit.as_mut(), self.conn.as_mut()) {
            (Some(unit), _) => unit.run(args.len(), |c| c.execute(sql, &args)),
            (None, Some(conn)) => Ok(statement::query(sql, args).execute(&mut **conn).await?.rows_affected()),
            (None, None) => unreachable!("a transaction is used after it ended"),
        }
    }

    /// A write whose answer nobody reads: on PostgreSQL it is kept and runs, with the others
    /// kept since, in one statement (one round trip, see [`deferred`]) before the
    /// transaction's next statement or its `COMMIT`; on SQLite, where a statement is a call
    /// into the library on the writer's connection, it runs now. What the transaction reads
    /// afterwards sees it on both. A write that fails fails the transaction, at the statement
    /// it went with: only writes that cannot conflict with each other (see [`deferred`]).
    pub(crate) async fn defer(&mut self, sql: &str, args: Vec<Arg>) -> Result<(), StoreError> {
        if self.unit.is_some() {
            self.execute(sql, args).await?;
            return Ok(());
        }
        if self.deferred.is_full_for(args.len()) {
            self.send_deferred().await?;
        }
        self.deferred.push(sql, args);
        Ok(())
    }

    /// PostgreSQL: runs the writes kept by [`Tx::defer`] in one statement (more only past the
    /// parameter limit), with the log's leaves kept so far (see [`Tx::keep_log_entries`]).
    async fn send_deferred(&mut self) -> Result<(), StoreError> {
        self.send_kept(false).await
    }

    /// [`Tx::send_deferred`]; the log's leaves go only with other kept writes unless
    /// `leaves` (at commit), so that they never cost a statement of their own before then.
    /// Nothing on SQLite, which keeps no write.
    async fn send_kept(&mut self, leaves: bool) -> Result<(), StoreError> {
        if self.unit.is_some() || (!leaves && self.deferred.is_empty()) {
            return Ok(());
        }
        loop {
            let more = (leaves || !self.deferred.is_empty()) && self.keep_log_entries();
            let Some(kept) = self.deferred.take() else { return Ok(()) };
            match self.conn.as_mut() {
                Some(conn) => {
                    statement::query(&kept.sql, kept.args).persistent(kept.prepare).execute(&mut **conn).await?
                }
                None => unreachable!("only a PostgreSQL transaction keeps writes"),
            };
            if !more {
                return Ok(());
            }
        }
    }

    /// The rows `sql` answers.
    pub(crate) async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Row>, StoreError> {
        self.send_deferred().await?;
        match (self.unit.as_mut(), self.conn.as_mut()) {
            (Some(unit), _) => unit.run(args.len(), |c| c.fetch_all(sql, &args)),
            (None, Some(conn)) => {
                Ok(statement::query(sql, args).fetch_all(&mut **conn).await?.into_iter().map(Row::from).collect())
            }
            (None, None) => unreachable!("a transaction is used after it ended"),
        }
    }

    /// The first row `sql` answers, if any.
    pub(crate) async fn fetch_optional(&mut self, sql: &str, args: Vec<Arg>) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }

    /// The row `sql` answers; an error if it answers none.
    pub(crate) async fn fetch_one(&mut self, sql: &str, args: Vec<Arg>) -> Result<Row, StoreError> {
        self.fetch_optional(sql, args).await?.ok_or_else(no_row)
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // Dropped without commit or rollback: a statement failed (or the work was
            // cancelled). Its state is uncertain; the pool must not get it back.
            conn.close_on_drop();
        }
        // A batched write dropped unfinished rolls back to its savepoint (`batch::Unit`'s drop).
    }
}

/// The error of a query that was to answer a row and answered none (as sqlx's `fetch_one`).
fn no_row() -> StoreError {
    StoreError::Database(sqlx::Error::RowNotFound)
}

/// Joins agency codes for a TEXT column.
pub(crate) fn join_codes(codes: &[pki::AgencyCode]) -> String {
    codes.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Splits a TEXT column of agency codes.
pub(crate) fn split_codes(text: &str) -> Result<Vec<pki::AgencyCode>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(|c| c.parse().map_err(|e: pki::AgencyCodeError| StoreError::Corrupt(e.to_string()))).collect()
}
