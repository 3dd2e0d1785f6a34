//! Backup and restore of a node's database and attachment store, for moving a node to a new
//! machine or recovering one, with nothing lost.
//!
//! A backup is a directory: `backup.json` (what it holds), the database (`node.db`, a
//! consistent SQLite snapshot taken with `VACUUM INTO` while the node runs; or
//! `database.dump`, from `pg_dump --format=custom`, also consistent while the node runs) and
//! `blobs/`, the attachment files (small attachments are in the database itself, see
//! `storage::inline`). The database is taken first and the attachments after: attachment
//! files are written before the transaction that refers to them commits and are never
//! removed, so every attachment the database snapshot refers to is in the copy.
//!
//! Restore goes onto an empty node only (no database content, no attachments), checks that the
//! backup belongs to the configured agency, and ends by checking every attachment the restored
//! database refers to against its SHA-256. Leases held by the old machine are released so its
//! unfinished transfers resume at once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::Row;

use crate::config::Config;
use crate::storage::{Backend, Store, StoreError};

/// What a backup holds, written as `backup.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Layout version of the backup directory.
    pub format: u32,
    /// The agency whose node this is.
    pub agency: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// When it was taken (RFC 3339, UTC).
    pub created: String,
    /// Documents in the database: exact for SQLite; for PostgreSQL counted just before the
    /// dump, so the dump holds at least this many.
    pub documents: i64,
    /// Receipts, counted like documents.
    pub receipts: i64,
    /// Attachment files copied.
    pub attachment_files: u64,
    /// Their total size, bytes.
    pub attachment_bytes: u64,
    /// Small attachments kept in the database (`storage::inline`), backed up with it; counted
    /// like documents (0 in backups taken before they existed).
    #[serde(default)]
    pub inline_attachments: i64,
}

/// What a restore found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    /// Documents in the restored database.
    pub documents: i64,
    /// Receipts in the restored database.
    pub receipts: i64,
    /// Attachments the database refers to, each checked against its SHA-256.
    pub attachments_checked: u64,
    /// Transfers still to be sent, which resume when the node starts.
    pub pending_transfers: i64,
}

/// A backup or restore failure. Nothing is changed on the node when one is returned, except
/// by a restore that failed half-way onto the (then still unused) new node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What happened.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A query failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// `pg_dump` or `pg_restore` failed or is missing.
    #[error("{program}: {problem}")]
    Tool {
        /// The program.
        program: String,
        /// Its error output or why it could not run.
        problem: String,
    },
    /// The backup directory would be overwritten.
    #[error("{0} is not empty; a backup goes into a new directory")]
    OutputNotEmpty(PathBuf),
    /// The restore target already holds data.
    #[error("the node to restore onto is not empty: {0}; restore onto a new node only")]
    TargetNotEmpty(String),
    /// The backup belongs to another agency or backend.
    #[error("the backup is of {found}, but this node is configured as {expected}")]
    Mismatch {
        /// What the backup is.
        found: String,
        /// What the config says.
        expected: String,
    },
    /// The backup directory is not a readable backup.
    #[error("{path} is not a lienthong backup: {problem}")]
    NotABackup {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A restored attachment is missing or damaged.
    #[error("attachment {sha256} (of document {document}) {problem}")]
    Attachment {
        /// Its SHA-256, hex.
        sha256: String,
        /// A document that refers to it.
        document: String,
        /// What is wrong.
        problem: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_owned(), source }
}

/// The database file of a `sqlite:` URL.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// `pg_dump`/`pg_restore`: from `pg_bin` if given, else from `PATH`.
fn tool(pg_bin: Option<&Path>, name: &str) -> PathBuf {
    pg_bin.map_or_else(|| PathBuf::from(name), |d| d.join(name))
}

fn run_tool(program: &Path, args: &[&std::ffi::OsStr]) -> Result<(), BackupError> {
    let name = program.display().to_string();
    let output = Command::new(program).args(args).output().map_err(|e| BackupError::Tool {
        program: name.clone(),
        problem: format!("cannot run it ({e}); install the PostgreSQL client tools or pass --pg-bin"),
    })?;
    if !output.status.success() {
        return Err(BackupError::Tool {
            program: name,
            problem: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

async fn count(pool: &sqlx::AnyPool, table: &str) -> Result<i64, BackupError> {
    let sql = match table {
        "documents" => "SELECT COUNT(*) AS n FROM documents",
        "receipts" => "SELECT COUNT(*) AS n FROM receipts",
        "inline_blobs" => "SELECT COUNT(*) AS n FROM inline_blobs",
        _ => "SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'",
    };
    Ok(sqlx::query(sql).fetch_one(pool).await?.try_get("n")?)
}

/// Every attachment file under `blobs` (not the temporary files).
fn blob_files(blobs: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(blobs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(io(blobs)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io(blobs))?;
        let path = entry.path();
        if entry.file_name() == "tmp" || !path.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&path).map_err(io(&path))? {
            let file = file.map_err(io(&path))?;
            if file.path().is_file() {
                files.push(file.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Copies every attachment file from `from` to `to` (both `blobs` directories), syncing each;
/// returns (files, bytes).
fn copy_blobs(from: &Path, to: &Path) -> Result<(u64, u64), BackupError> {
    let (mut files, mut bytes) = (0, 0);
    for file in blob_files(from)? {
        let relative = file
            .strip_prefix(from)
            .map_err(|e| BackupError::Io { path: file.clone(), source: std::io::Error::other(e.to_string()) })?;
        let target = to.join(relative);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        bytes += std::fs::copy(&file, &target).map_err(io(&file))?;
        std::fs::File::open(&target).and_then(|f| f.sync_all()).map_err(io(&target))?;
        files += 1;
    }
    Ok((files, bytes))
}

fn empty_or_absent(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io(dir)(e)),
    }
}

/// Backs up the node configured by `config` into the new directory `out`, while it runs.
pub async fn backup(
    config: &Config,
    out: &Path,
    pg_bin: Option<&Path>,
    now: time::OffsetDateTime,
) -> Result<Manifest, BackupError> {
    if !empty_or_absent(out)? {
        return Err(BackupError::OutputNotEmpty(out.to_owned()));
    }
    private_dir(out)?;
    let store = Store::open(&config.database, &config.data_dir).await?;
    let (backend, counts) = match store.backend() {
        Backend::Sqlite => {
            let file = out.join("node.db");
            let target = file.to_str().ok_or_else(|| BackupError::Io {
                path: file.clone(),
                source: std::io::Error::other("the path is not UTF-8"),
            })?;
            sqlx::query("VACUUM INTO $1").bind(target).execute(store.pool()).await?;
            // Count in the snapshot itself, so the numbers are exactly what it holds.
            let snapshot = sqlx::AnyPool::connect(&format!("sqlite://{target}?mode=ro")).await?;
            let counts = (
                count(&snapshot, "documents").await?,
                count(&snapshot, "receipts").await?,
                count(&snapshot, "inline_blobs").await?,
            );
            snapshot.close().await;
            (Backend::Sqlite.name(), counts)
        }
        Backend::Postgres => {
            let counts = (
                count(store.pool(), "documents").await?,
                count(store.pool(), "receipts").await?,
                count(store.pool(), "inline_blobs").await?,
            );
            let dump = out.join("database.dump");
            run_tool(
                &tool(pg_bin, "pg_dump"),
                &["--format=custom".as_ref(), "--file".as_ref(), dump.as_os_str(), config.database.as_ref()],
            )?;
            (Backend::Postgres.name(), counts)
        }
    };
    let (documents, receipts, inline_attachments) = counts;
    store.close().await;
    let (attachment_files, attachment_bytes) = copy_blobs(&config.data_dir.join("blobs"), &out.join("blobs"))?;
    let manifest = Manifest {
        format: 1,
        agency: config.agency.to_string(),
        backend: backend.to_owned(),
        created: pki::format_utc(now),
        documents,
        receipts,
        attachment_files,
        attachment_bytes,
        inline_attachments,
    };
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| BackupError::Io { path: out.join("backup.json"), source: std::io::Error::other(e.to_string()) })?;
    std::fs::write(out.join("backup.json"), json).map_err(io(out))?;
    // A backup holds every document and receipt of the agency: this user's only, like the
    // node's own data (the directory was 0700 from the start, so nothing was ever exposed).
    make_private(out)?;
    Ok(manifest)
}

/// Creates `dir` (and missing parents) with mode 0700 on Unix.
fn private_dir(dir: &Path) -> Result<(), BackupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))?;
    set_mode(dir, 0o700)
}

/// Sets every file under `dir` to 0600 and every directory to 0700: the database snapshot,
/// the dump and the copied attachments are created with the process umask (or, for copies,
/// the source's mode), so they are narrowed here.
fn make_private(dir: &Path) -> Result<(), BackupError> {
    set_mode(dir, 0o700)?;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            make_private(&path)?;
        } else if meta.is_file() {
            set_mode(&path, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), BackupError> {
    Ok(())
}

/// Reads `backup.json`.
pub fn read_manifest(from: &Path) -> Result<Manifest, BackupError> {
    let path = from.join("backup.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BackupError::NotABackup { path: from.to_owned(), problem: format!("backup.json: {e}") })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| BackupError::NotABackup { path: from.to_owned(), problem: format!("backup.json: {e}") })?;
    if manifest.format != 1 {
        return Err(BackupError::NotABackup {
            path: from.to_owned(),
            problem: format!("backup format {} is not known to this version", manifest.format),
        });
    }
    Ok(manifest)
}

/// Restores the backup in `from` onto the new, empty node configured by `config`.
pub async fn restore(config: &Config, from: &Path, pg_bin: Option<&Path>) -> Result<Restored, BackupError> {
    let manifest = read_manifest(from)?;
    if manifest.agency != config.agency.to_string() {
        return Err(BackupError::Mismatch {
            found: format!("agency {}", manifest.agency),
            expected: format!("agency {}", config.agency),
        });
    }
    let backend = Backend::of_url(&config.database).name();
    if manifest.backend != backend {
        return Err(BackupError::Mismatch {
            found: format!("a {} database", manifest.backend),
            expected: format!("a {backend} database"),
        });
    }
    let blobs = config.data_dir.join("blobs");
    if !blob_files(&blobs)?.is_empty() {
        return Err(BackupError::TargetNotEmpty(format!("{} holds attachments", blobs.display())));
    }
    match sqlite_file(&config.database) {
        Some(file) => {
            if file.exists() {
                return Err(BackupError::TargetNotEmpty(format!("{} exists", file.display())));
            }
            let source = from.join("node.db");
            if !source.is_file() {
                return Err(BackupError::NotABackup { path: from.to_owned(), problem: "node.db is missing".into() });
            }
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            std::fs::copy(&source, &file).map_err(io(&file))?;
            std::fs::File::open(&file).and_then(|f| f.sync_all()).map_err(io(&file))?;
        }
        None => {
            let dump = from.join("database.dump");
            if !dump.is_file() {
                return Err(BackupError::NotABackup {
                    path: from.to_owned(),
                    problem: "database.dump is missing".into(),
                });
            }
            // The target database must exist and hold nothing of ours (no tables at all).
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&config.database).await?;
            let tables: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'")
                    .fetch_one(&pool)
                    .await?
                    .try_get("n")?;
            pool.close().await;
            if tables > 0 {
                return Err(BackupError::TargetNotEmpty(format!("the database has {tables} table(s)")));
            }
            run_tool(
                &tool(pg_bin, "pg_restore"),
                &[
                    "--exit-on-error".as_ref(),
                    "--no-owner".as_ref(),
                    "--no-privileges".as_ref(),
                    "--dbname".as_ref(),
                    config.database.as_ref(),
                    dump.as_os_str(),
                ],
            )?;
        }
    }
    copy_blobs(&from.join("blobs"), &blobs)?;

    // Open as the node would (applying any newer migrations), then check everything.
    let store = Store::open(&config.database, &config.data_dir).await?;
    store.release_leases(None).await?;
    let rows = sqlx::query(
        "SELECT DISTINCT a.sha256, a.size, d.doc_id FROM attachments a JOIN documents d ON d.id = a.document ORDER BY d.doc_id",
    )
    .fetch_all(store.pool())
    .await?;
    let mut checked = 0;
    for row in rows {
        let sha: Vec<u8> = row.try_get("sha256")?;
        let size: i64 = row.try_get("size")?;
        let document: String = row.try_get("doc_id")?;
        let problem =
            |p: String| BackupError::Attachment { sha256: hex::encode(&sha), document: document.clone(), problem: p };
        let digest: [u8; 32] = sha.as_slice().try_into().map_err(|_| problem("has a malformed hash".into()))?;
        // Kept in the database (`storage::inline`): restored with it, checked here all the same,
        // one at a time.
        let inline: Option<Vec<u8>> = sqlx::query_scalar("SELECT bytes FROM inline_blobs WHERE sha256 = $1")
            .bind(sha.clone())
            .fetch_optional(store.pool())
            .await?;
        if let Some(bytes) = inline {
            if bytes.len() as i64 != size || pki::sha256(&bytes) != digest {
                return Err(problem("does not match its SHA-256 or size: damaged".into()));
            }
            checked += 1;
            continue;
        }
        let path = store.blobs().path(&digest);
        let mut file = std::fs::File::open(&path).map_err(|e| problem(format!("is missing: {e}")))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0i64;
        loop {
            let n = file.read(&mut buf).map_err(|e| problem(format!("cannot be read: {e}")))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            total += n as i64;
        }
        if total != size || ctx.finish().as_ref() != digest.as_slice() {
            return Err(problem("does not match its SHA-256 or size: damaged".into()));
        }
        checked += 1;
    }
    let inline = count(store.pool(), "inline_blobs").await?;
    let restored = Restored {
        documents: count(store.pool(), "documents").await?,
        receipts: count(store.pool(), "receipts").await?,
        attachments_checked: checked,
        pending_transfers: count(store.pool(), "pending").await?,
    };
    store.close().await;
    if inline < manifest.inline_attachments {
        return Err(BackupError::NotABackup {
            path: from.to_owned(),
            problem: format!(
                "it lists {} small attachments in its database but the restored database holds {inline}",
                manifest.inline_attachments
            ),
        });
    }
    if restored.documents < manifest.documents || restored.receipts < manifest.receipts {
        return Err(BackupError::NotABackup {
            path: from.to_owned(),
            problem: format!(
                "it lists {} documents and {} receipts but the restored database holds {} and {}",
                manifest.documents, manifest.receipts, restored.documents, restored.receipts
            ),
        });
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite:///var/lib/lienthong/node.db"), Some("/var/lib/lienthong/node.db".into()));
        assert_eq!(sqlite_file("sqlite://data/node.db?mode=rwc"), Some("data/node.db".into()));
        assert_eq!(sqlite_file("sqlite:node.db"), Some("node.db".into()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
