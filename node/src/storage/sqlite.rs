//! SQLite's one writer connection, driven by the write itself; and a few read connections
//! driven the same way, for the point reads of a document's way through the node.
//!
//! Every statement sqlx runs on SQLite is a round trip to the connection's own worker thread:
//! a channel send, a thread woken, the answer sent back and a task woken. On this 2-vCPU
//! machine that is 0.07 ms idle and 0.3–0.5 ms under load, and SQLite's one writer is held
//! across every round trip of a write, so a node's writes were bound by thread wake-ups (a
//! quarter of its CPU in a profile) with the CPUs a third idle. Here the writer's connection
//! is opened with rusqlite on the same file (the same bundled SQLite library sqlx links) and a
//! write runs its statements in the task that holds the writer, in microseconds each: no
//! thread is woken until the batch commits (see [`super::batch`]), whose `COMMIT` and sync run
//! on a blocking thread. The reads a document's way through a node makes (is it a retry; the
//! transfers due, and when the next one falls due; the document and its attachments to send)
//! run the same way on [`Readers`],
//! each a few microseconds in the task that asks; sqlx's pool keeps the other reads (listings,
//! the console's queries), whose size is up to the asker.
//!
//! A statement binds its [`Arg`]s by number, as sqlx does: `$n` (or `?n`) takes the n-th, and
//! bare `?` take them in order (a statement uses one form or the other, see
//! [`super::values`]). Statements are prepared once and kept, by text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::config::DbConfig;
use rusqlite::types::{Null, ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags};

use super::SQLITE_BUSY_TIMEOUT;
use super::statement::{Arg, Row, SqliteRow};

/// How long a reader waits for a lock, in the task that reads, before the read goes to sqlx's
/// pool instead (see `Store::fetch_all`).
const READER_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(20);

/// Read connections kept open for [`Readers`]: one per task reading at once, as many as a
/// 2-core node keeps busy (more are opened when needed, and closed after).
const IDLE_READERS: usize = 4;

/// Prepared statements kept, by text: more than the distinct statements of the writes (the
/// multi-row statements' lengths vary with the number of rows).
const CACHED_STATEMENTS: usize = 256;

/// A connection of the writer or of [`Readers`].
#[derive(Debug)]
pub(crate) struct Conn {
    conn: Connection,
}

impl Conn {
    /// Opens the database file at `path` (created by the pool's migrations before) with the
    /// settings every connection of the node has (see [`super::set_up`]).
    pub(crate) fn open(path: &Path) -> Result<Conn, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
        // The query planner's stability guarantee: a kept statement keeps its plan. Without
        // it SQLite (3.51) prepares a statement again whenever a value bound to its `LIMIT`
        // changes (it plans with the value): the outbox's claim, `LIMIT` the free places, was
        // parsed and planned again at nearly every claim (4.7 % of the CPU of four hops under
        // load, in a profile).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        for pragma in super::SQLITE_PRAGMAS {
            // `journal_mode` answers with a row; the others with none.
            conn.query_row(pragma, [], |_| Ok(())).or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })?;
        }
        Ok(Conn { conn })
    }

    /// The name SQLite gave the database file (symbolic links resolved), which its log is
    /// named after (`-wal` added).
    pub(crate) fn file_name(&self) -> Option<&str> {
        self.conn.path().filter(|p| !p.is_empty())
    }

    /// Opens the writer's connection: [`Conn::open`] with its temporary files in memory.
    ///
    /// Each write of a batch is a savepoint (see [`super::batch`]), so SQLite copies every
    /// page a write changes that existed when the write began into a statement journal
    /// first, to be able to roll that one write back. SQLite keeps that journal in memory up
    /// to 64 KiB only, then in a temporary file for the rest of the transaction: one `pwrite`
    /// through the file system per copied page, 8 % of all the CPU of one hop from a clerk in
    /// a profile. In memory, a copy is a `memcpy`; the journal is emptied at each write's end,
    /// so it holds no more than the pages one write changes: the log's indexing, the one
    /// large write, goes in parts for that (`storage::tlog::INTEGRATE_PER_WRITE`). The
    /// readers keep the default: their sorts of large results may still spill to disk.
    ///
    /// Its automatic checkpoint is off: the writer runs it itself (see
    /// `batch::Batch::checkpoint_if_due`), because SQLite ignores the outcome of its own, and a
    /// sync of the log failing there would go unseen (Linux reports a failed write-back once
    /// per open file).
    pub(crate) fn open_writer(path: &Path) -> Result<Conn, rusqlite::Error> {
        let writer = Conn::open(path)?;
        writer.conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0")?;
        Ok(writer)
    }

    /// Opens a read connection: [`Conn::open`] with `query_only`, so that nothing read
    /// through it can write, and a short busy timeout (see [`READER_BUSY_TIMEOUT`]).
    ///
    /// Without the memory map the pool's connections have: a connection starting a read after
    /// another one committed drops its whole map (SQLite cannot know the file kept its size),
    /// and a node commits many times a second, so each point read paid an `munmap` (a TLB
    /// shootdown on every core), a new `mmap` and page faults, a third of the time of reading
    /// a document to forward in a profile; copying its few pages with `pread` costs less.
    /// One hop from a clerk, six interleaved pairs: CPU per document 3.35 ms (median) with
    /// the map, 3.15 ms without.
    fn open_reader(path: &Path) -> Result<Conn, rusqlite::Error> {
        let reader = Conn::open(path)?;
        reader.conn.execute_batch("PRAGMA query_only = 1; PRAGMA mmap_size = 0")?;
        reader.conn.busy_timeout(READER_BUSY_TIMEOUT)?;
        Ok(reader)
    }

    /// Whether the connection is inside a transaction: false after SQLite rolled one back by
    /// itself (it does on `SQLITE_FULL` and I/O errors).
    pub(crate) fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    /// `BEGIN IMMEDIATE` if no other connection holds SQLite's write lock: `Ok(false)`, at
    /// once, if one does (another process writing the database), instead of blocking the
    /// thread in the busy handler.
    pub(crate) fn begin_now(&self) -> Result<bool, rusqlite::Error> {
        self.conn.busy_timeout(std::time::Duration::ZERO)?;
        let began = self.conn.execute_batch("BEGIN IMMEDIATE");
        self.conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
        match began {
            Ok(()) => Ok(true),
            Err(e) if is_busy(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs statements without parameters (`BEGIN`, a savepoint's, `COMMIT`).
    pub(crate) fn batch(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.conn.execute_batch(sql)
    }

    /// The frames in the log, moved into the database file or not (`PRAGMA
    /// wal_checkpoint(NOOP)`, which only reads the log's index, in about a microsecond; 0 when
    /// the index is being rebuilt).
    pub(crate) fn log_frames(&self) -> Result<i64, rusqlite::Error> {
        let mut statement = self.conn.prepare_cached("PRAGMA wal_checkpoint(NOOP)")?;
        let frames: i64 = statement.query_row([], |r| r.get(1))?;
        Ok(frames.max(0))
    }

    /// Moves what it can of the log into the database file without waiting for anyone
    /// (`PRAGMA wal_checkpoint(PASSIVE)`): the automatic checkpoint's work. An error is the
    /// checkpoint's own (a sync that failed), not a reader in the way.
    pub(crate) fn checkpoint(&self) -> Result<(), rusqlite::Error> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
    }

    /// Moves every committed frame of the log into the database file, syncs it, and cuts the
    /// log to nothing (`PRAGMA wal_checkpoint(TRUNCATE)`, which waits for readers in the busy
    /// handler). Returns the frames left in the log: 0 when it is empty, more when a reader
    /// still needed them when the busy handler gave up.
    pub(crate) fn truncate_log(&self) -> Result<i64, rusqlite::Error> {
        let (busy, frames): (i64, i64) =
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(if busy != 0 { frames.max(1) } else { frames.max(0) })
    }

    /// Runs one statement; returns the rows it changed. Rows it answers are read and dropped.
    pub(crate) fn execute(&self, sql: &str, args: &[Arg]) -> Result<u64, rusqlite::Error> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        bind(&mut stmt, args)?;
        let mut rows = stmt.raw_query();
        while rows.next()?.is_some() {}
        drop(rows);
        Ok(self.conn.changes())
    }

    /// Runs one statement and returns the rows it answers.
    pub(crate) fn fetch_all(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, rusqlite::Error> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        bind(&mut stmt, args)?;
        let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let width = columns.len();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(row.get::<_, Value>(i)?);
            }
            out.push(Row::Sqlite(SqliteRow { columns: Arc::clone(&columns), values }));
        }
        Ok(out)
    }
}

/// Read connections on the database file, each used by one read at a time in the task that
/// reads: a read that finds none idle opens one.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    idle: std::sync::Mutex<Vec<Conn>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Readers {
        Readers { path, idle: std::sync::Mutex::new(Vec::new()) }
    }

    /// The rows `sql` answers, read on an idle connection (opened if none is).
    pub(crate) fn fetch_all(&self, sql: &str, args: &[Arg]) -> Result<Vec<Row>, rusqlite::Error> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let conn = match idle {
            Some(c) => c,
            None => Conn::open_reader(&self.path)?,
        };
        let rows = conn.fetch_all(sql, args);
        // A connection that failed is closed rather than kept: its state is not known.
        if rows.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        rows
    }

    /// Closes the idle connections (before the store closes).
    pub(crate) fn close(&self) {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

/// Whether `e` is `SQLITE_BUSY`: another connection holds the lock asked for.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy)
}

/// Binds `args` to `stmt` by number (see the module's doc).
fn bind(stmt: &mut rusqlite::CachedStatement<'_>, args: &[Arg]) -> Result<(), rusqlite::Error> {
    let mut bare = 0;
    for index in 1..=stmt.parameter_count() {
        let n = match stmt.parameter_name(index) {
            None => {
                bare += 1;
                bare
            }
            Some(name) => name.get(1..).and_then(|digits| digits.parse::<usize>().ok()).unwrap_or(0),
        };
        let Some(arg) = n.checked_sub(1).and_then(|i| args.get(i)) else {
            return Err(rusqlite::Error::InvalidParameterCount(n, args.len()));
        };
        stmt.raw_bind_parameter(index, value(arg))?;
    }
    Ok(())
}

fn value(arg: &Arg) -> ToSqlOutput<'_> {
    use rusqlite::types::ValueRef;
    match arg {
        Arg::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(*v)),
        Arg::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
        Arg::Bytes(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
        Arg::Int(None) | Arg::Text(None) | Arg::Bytes(None) => ToSqlOutput::from(Null),
    }
}

/// The file a `sqlite:` URL names, for the writer to open: `None` for an in-memory database,
/// which a second connection could not share.
pub(crate) fn database_file(url: &str) -> Option<PathBuf> {
    super::space::sqlite_dir(url)?;
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().ok()?;
    Some(options.get_filename().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreError;

    fn conn() -> (tempfile::TempDir, Conn) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b BLOB)")
            .unwrap();
        let conn = Conn::open(&path).unwrap();
        (dir, conn)
    }

    #[test]
    fn parameters_bind_by_number_or_in_order() {
        let (_dir, c) = conn();
        assert_eq!(
            c.execute("INSERT INTO t (a, b) VALUES ($2, $1)", &[Arg::from(vec![1u8]), Arg::from("one")]).unwrap(),
            1
        );
        let two = [Arg::from("two"), Arg::from(vec![2u8]), Arg::from("three"), Arg::Bytes(None)];
        assert_eq!(c.execute("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)", &two).unwrap(), 2);
        let rows = c.fetch_all("SELECT a, b FROM t WHERE a <> $1 ORDER BY id", &[Arg::from("x")]).unwrap();
        let got: Vec<(String, Option<Vec<u8>>)> =
            rows.iter().map(|r| (r.try_get("a").unwrap(), r.try_get("b").unwrap())).collect();
        assert_eq!(got, vec![("one".into(), Some(vec![1])), ("two".into(), Some(vec![2])), ("three".into(), None)]);
    }

    #[test]
    fn a_missing_argument_is_an_error_not_a_null() {
        let (_dir, c) = conn();
        assert!(c.execute("INSERT INTO t (a, b) VALUES ($1, $2)", &[Arg::from("one")]).is_err());
        assert!(c.fetch_all("SELECT count(*) AS n FROM t", &[]).unwrap()[0].try_get::<i64, _>("n").unwrap() == 0);
    }

    #[test]
    fn returning_rows_are_read_by_execute_and_fetch() {
        let (_dir, c) = conn();
        assert_eq!(c.execute("INSERT INTO t (a) VALUES ($1) RETURNING id", &[Arg::from("a")]).unwrap(), 1);
        let rows = c.fetch_all("INSERT INTO t (a) VALUES ($1) RETURNING id", &[Arg::from("b")]).unwrap();
        assert_eq!(rows[0].try_get::<i64, _>("id").unwrap(), 2);
        assert!(c.fetch_all("UPDATE t SET a = 'c' WHERE id = 9", &[]).unwrap().is_empty());
    }

    /// The writer's temporary files are in memory (the pragma is what keeps the journal off
    /// the disk), and a write still rolls back alone from a journal far past the 64 KiB SQLite
    /// keeps in memory by default.
    #[test]
    fn a_writers_savepoint_rolls_back_from_its_journal_in_memory() {
        let (dir, _) = conn();
        let w = Conn::open_writer(&dir.path().join("t.db")).unwrap();
        let temp_store = |c: &Conn| c.conn.query_row("PRAGMA temp_store", [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(temp_store(&w), 2, "the writer's temporary files are in memory");
        assert_eq!(temp_store(&Conn::open_reader(&dir.path().join("t.db")).unwrap()), 0);
        let total = |c: &Conn| c.fetch_all("SELECT sum(length(b)) AS n FROM t", &[]).unwrap()[0].try_get::<i64, _>("n");
        // A batch that added many pages, then a write that changes them all: its journal
        // (about 1 MiB) is far past the 64 KiB SQLite keeps in memory by default.
        w.batch("BEGIN IMMEDIATE").unwrap();
        for _ in 0..250 {
            w.execute("INSERT INTO t (a, b) VALUES ('x', zeroblob(4000))", &[]).unwrap();
        }
        w.batch("SAVEPOINT w").unwrap();
        w.execute("UPDATE t SET b = zeroblob(3000)", &[]).unwrap();
        assert_eq!(total(&w).unwrap(), 750_000);
        w.batch("ROLLBACK TO w; RELEASE w").unwrap();
        w.batch("COMMIT").unwrap();
        assert_eq!(total(&w).unwrap(), 1_000_000, "the write is rolled back, the batch kept");
    }

    #[test]
    fn readers_read_what_is_committed_and_cannot_write() {
        let (dir, c) = conn();
        let readers = Readers::new(dir.path().join("t.db"));
        c.batch("BEGIN IMMEDIATE").unwrap();
        c.execute("INSERT INTO t (a) VALUES ($1)", &[Arg::from("x")]).unwrap();
        let count = |r: &Readers| r.fetch_all("SELECT count(*) AS n FROM t", &[]).unwrap()[0].try_get::<i64, _>("n");
        assert_eq!(count(&readers).unwrap(), 0, "a batch is not read before it commits");
        c.batch("COMMIT").unwrap();
        assert_eq!(count(&readers).unwrap(), 1);
        assert!(readers.fetch_all("DELETE FROM t", &[]).is_err());
        assert_eq!(count(&readers).unwrap(), 1);
    }

    #[test]
    fn begin_does_not_wait_for_another_connections_write() {
        let (dir, c) = conn();
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = std::time::Instant::now();
        assert!(!c.begin_now().unwrap());
        assert!(started.elapsed() < SQLITE_BUSY_TIMEOUT / 2);
        other.execute_batch("COMMIT").unwrap();
        assert!(c.begin_now().unwrap());
        c.batch("COMMIT").unwrap();
    }

    #[tokio::test]
    async fn an_in_memory_database_is_refused_saying_what_to_name() {
        let dir = tempfile::tempdir().unwrap();
        let error = super::super::Store::open("sqlite::memory:", dir.path()).await.unwrap_err();
        assert!(matches!(error, StoreError::InMemory { .. }), "{error}");
        assert!(error.to_string().contains("name a file"), "{error}");
    }

    #[test]
    fn only_a_file_is_opened_by_the_writer() {
        assert_eq!(database_file("sqlite:///var/lib/x/node.db?mode=rwc"), Some(PathBuf::from("/var/lib/x/node.db")));
        assert_eq!(database_file("sqlite::memory:"), None);
    }
}
