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
/// read). Binds `$1` = row id, `$2` = owner. The one statement of "only the holder of a claim
/// finishes it", for the outbox and the mail queue alike.
macro_rules! held_by {
    () => {
        "id = $1 AND state = 'pending' AND (lease_owner = $2 OR lease_owner IS NULL)"
    };
}
pub(crate) use held_by;

pub mod blobs;
mod delivery;
mod documents;
mod outbox;
mod receipts;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Transaction};
use tokio::sync::{Mutex, MutexGuard};

pub use documents::{DocInsert, NewDocument, StoredDocument};
pub use outbox::{Leased, QueueDepths, Transfer, TransferKind};
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
    /// Migrations failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
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
}

/// The node's database and attachment store.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    write: Mutex<()>,
    blobs: blobs::BlobStore,
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
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Dir { path: data_dir.to_owned(), source })?;
        let backend = Backend::of_url(url);
        let pool = match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
                let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL: readers do not block the writer. FULL: a commit is on disk when
                            // it returns, which is what a hop receipt promises.
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = FULL",
                                "PRAGMA busy_timeout = 10000",
                                "PRAGMA foreign_keys = ON",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?.disable_statement_logging();
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => MIGRATE_SQLITE.run(&pool).await?,
            Backend::Postgres => MIGRATE_POSTGRES.run(&pool).await?,
        }
        let blobs = blobs::BlobStore::open(&data_dir.join("blobs"))?;
        Ok(Store { pool, backend, write: Mutex::new(()), blobs })
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

    /// Begins a write transaction; on SQLite it holds the process's write lock until dropped.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        let guard = match self.backend {
            Backend::Sqlite => Some(self.write.lock().await),
            Backend::Postgres => None,
        };
        let tx = self.pool.begin().await?;
        Ok(Tx { tx, _guard: guard })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx<'a> {
    tx: Transaction<'static, Any>,
    _guard: Option<MutexGuard<'a, ()>>,
}

impl Tx<'_> {
    /// Commits.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
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
