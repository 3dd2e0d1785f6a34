//! SQLite's one writer connection, driven by the write itself.
//!
//! Every statement sqlx runs on SQLite is a round trip to the connection's own worker thread:
//! a channel send, a thread woken, the answer sent back and a task woken. On this 2-vCPU
//! machine that is 0.07 ms idle and 0.3–0.5 ms under load, and SQLite's one writer is held
//! across every round trip of a write, so a node's writes were bound by thread wake-ups (a
//! quarter of its CPU in a profile) with the CPUs a third idle. Here the writer's connection
//! is opened with rusqlite on the same file (the same bundled SQLite library sqlx links) and a
//! write runs its statements in the task that holds the writer, in microseconds each: no
//! thread is woken until the batch commits (see [`super::batch`]), whose `COMMIT` and sync run
//! on a blocking thread. sqlx's pool keeps the reads.
//!
//! A statement binds its [`Arg`]s by number, as sqlx does: `$n` (or `?n`) takes the n-th, and
//! bare `?` take them in order (a statement uses one form or the other, see
//! [`super::values`]). Statements are prepared once and kept, by text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::types::{Null, ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags};

use super::statement::{Arg, Row, SqliteRow};

/// Prepared statements kept, by text: more than the distinct statements of the writes (the
/// multi-row statements' lengths vary with the number of rows).
const CACHED_STATEMENTS: usize = 256;

/// The writer's connection.
#[derive(Debug)]
pub(crate) struct WriteConn {
    conn: Connection,
}

impl WriteConn {
    /// Opens the database file at `path` (created by the pool's migrations before) with the
    /// settings every connection of the node has (see [`super::set_up`]).
    pub(crate) fn open(path: &Path) -> Result<WriteConn, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
        for pragma in super::SQLITE_PRAGMAS {
            // `journal_mode` answers with a row; the others with none.
            conn.query_row(pragma, [], |_| Ok(())).or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })?;
        }
        Ok(WriteConn { conn })
    }

    /// Runs statements without parameters (`BEGIN`, a savepoint's, `COMMIT`).
    pub(crate) fn batch(&self, sql: &str) -> Result<(), rusqlite::Error> {
        self.conn.execute_batch(sql)
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

    fn conn() -> (tempfile::TempDir, WriteConn) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b BLOB)")
            .unwrap();
        let conn = WriteConn::open(&path).unwrap();
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

    #[test]
    fn only_a_file_is_opened_by_the_writer() {
        assert_eq!(database_file("sqlite:///var/lib/x/node.db?mode=rwc"), Some(PathBuf::from("/var/lib/x/node.db")));
        assert_eq!(database_file("sqlite::memory:"), None);
    }
}
