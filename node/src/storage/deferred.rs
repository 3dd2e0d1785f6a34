//! Statements a write does not wait for, sent to SQLite together with the next one it does
//! wait for (at the latest with its `RELEASE`).
//!
//! On SQLite every statement is a round trip to sqlx's worker thread (a channel send, a thread
//! woken, the answer sent back and a task woken: about 0.1–0.2 ms on this 2-vCPU machine), and
//! SQLite's one writer is held for the whole write (see [`super::batch`]). A document's write
//! was about a dozen statements, most of them inserts whose answer nobody reads (the
//! attachments' rows, the routes of a document just inserted, the outbox row, the hop receipt,
//! the log's leaves): the writer was held for the round trips, not for SQLite's work, and one
//! hop's rate was bound by it with the CPUs half idle. Those inserts are now kept here and sent
//! as one multi-statement query in front of the next statement whose answer is needed. sqlx
//! runs such a query statement by statement on its worker, binding `$n` by number across all
//! of them, so each kept statement's parameters are renumbered after those already kept.
//!
//! What this changes, and what it does not:
//! - A kept statement that fails fails the write, as it would have at once, only later: at the
//!   next statement or at the commit (callers end the write on any error anyway, and the
//!   write's savepoint undoes whatever of it ran).
//! - Nothing outside the write sees its rows before the batch commits, kept or not, so the
//!   order of the write's statements is the only order that matters, and it is kept.
//! - PostgreSQL runs each statement at once: a prepared statement there holds one command,
//!   and its transactions are not serialised behind one writer.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AnyConnection};

use super::values::MAX_BINDS;

/// A statement kept with more parameters than this runs at once instead (after the kept
/// ones): renumbered, a long multi-row list would get named parameters back, which SQLite
/// binds in n² steps (see [`super::values`]).
const MAX_KEPT_PARAMETERS: usize = 64;

/// A value bound to a kept statement: owned, since the statement outlives the call that made
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    /// INTEGER (or NULL).
    Int(Option<i64>),
    /// TEXT (or NULL).
    Text(Option<String>),
    /// BLOB.
    Bytes(Vec<u8>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Arg {
        Arg::Bytes(v)
    }
}

/// The statements kept so far, as one query.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    sql: String,
    args: Vec<Arg>,
}

impl Kept {
    /// Whether nothing is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.sql.is_empty()
    }

    /// Whether a statement of `args` parameters can be kept (otherwise it runs at once, after
    /// those kept).
    pub(crate) fn fits(&self, args: usize) -> bool {
        args <= MAX_KEPT_PARAMETERS && self.args.len() + args <= MAX_BINDS
    }

    /// Keeps `sql`, its parameters renumbered after those kept (the caller checked
    /// [`Kept::fits`], or `sql` has none).
    pub(crate) fn keep(&mut self, sql: &str, args: Vec<Arg>) {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(&renumber(sql, self.args.len()));
        self.args.extend(args);
    }

    /// The query that runs what is kept and then `sql`, leaving nothing kept: one query when
    /// `sql` fits; otherwise what is kept runs now on `conn` and `sql` is returned as written
    /// (its bare `?` stay bare, see [`super::values`]).
    pub(crate) async fn joined(
        &mut self,
        conn: &mut AnyConnection,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<(String, Vec<Arg>), sqlx::Error> {
        if !self.fits(args.len()) {
            self.flush(conn).await?;
            return Ok((sql.to_owned(), args));
        }
        self.keep(sql, args);
        Ok(self.take())
    }

    /// What is kept, as one query, leaving nothing kept.
    pub(crate) fn take(&mut self) -> (String, Vec<Arg>) {
        (std::mem::take(&mut self.sql), std::mem::take(&mut self.args))
    }

    /// Runs what is kept, if anything, on `conn`.
    pub(crate) async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        if self.is_empty() {
            return Ok(());
        }
        let (sql, args) = self.take();
        query(sql, args).execute(conn).await.map(|_| ())
    }
}

/// A query of `sql` with `args` bound in order.
pub(crate) fn query(sql: String, args: Vec<Arg>) -> Query<'static, Any, AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// `sql` with every parameter moved `base` places on: `$n` (and `?n`) becomes `$(n + base)`,
/// and the k-th bare `?` becomes `$(k + base)`. Quoted text and identifiers are left alone.
/// The statements here are ours (no comments, no `$`-quoted strings); a statement names its
/// parameters one way or the other, never both.
fn renumber(sql: &str, base: usize) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 16);
    let mut bare = 0;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' => {
                // To the closing quote (a doubled quote inside is two steps of this loop).
                let end = bytes[i + 1..].iter().position(|&b| b == c).map_or(bytes.len(), |p| i + 1 + p + 1);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'$' | b'?' => {
                let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                let n = if digits > 0 {
                    sql[i + 1..i + 1 + digits].parse::<usize>().unwrap_or(0)
                } else if c == b'?' {
                    bare += 1;
                    bare
                } else {
                    0
                };
                if n == 0 {
                    out.push(char::from(c));
                    i += 1;
                } else {
                    out.push('$');
                    out.push_str(&(n + base).to_string());
                    i += 1 + digits;
                }
            }
            _ => {
                // Copy up to the next byte of interest in one piece (keeps UTF-8 intact).
                let next = bytes[i..]
                    .iter()
                    .position(|b| matches!(b, b'\'' | b'"' | b'$' | b'?'))
                    .map_or(bytes.len(), |p| i + p);
                out.push_str(&sql[i..next]);
                i = next;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_after_the_kept_ones() {
        assert_eq!(renumber("INSERT INTO t VALUES ($1, $2, $1)", 3), "INSERT INTO t VALUES ($4, $5, $4)");
        assert_eq!(renumber("INSERT INTO t VALUES (?, ?), (?, ?)", 10), "INSERT INTO t VALUES ($11, $12), ($13, $14)");
        assert_eq!(renumber("SELECT ?2, $10", 1), "SELECT $3, $11");
        assert_eq!(renumber("SELECT $1", 0), "SELECT $1");
    }

    #[test]
    fn quoted_text_is_left_alone() {
        assert_eq!(renumber("SELECT '$1 ?', \"a$2\", $1 || 'n:'", 5), "SELECT '$1 ?', \"a$2\", $6 || 'n:'");
        assert_eq!(renumber("SELECT 'it''s $1', $1", 1), "SELECT 'it''s $1', $2");
        assert_eq!(renumber("SELECT 'Phong Dụ', $1", 1), "SELECT 'Phong Dụ', $2");
    }

    #[test]
    fn statements_are_joined_in_order_with_their_parameters() {
        let mut kept = Kept::default();
        assert!(kept.is_empty());
        kept.keep("INSERT INTO a VALUES ($1, $2, $1)", vec![Arg::from(1), Arg::from("x")]);
        kept.keep("INSERT INTO b VALUES (?, ?)", vec![Arg::from(vec![7u8]), Arg::from(None::<i64>)]);
        kept.keep("RELEASE w1", Vec::new());
        let (sql, args) = kept.take();
        assert_eq!(sql, "INSERT INTO a VALUES ($1, $2, $1);\nINSERT INTO b VALUES ($3, $4);\nRELEASE w1");
        assert_eq!(args, vec![Arg::from(1), Arg::from("x"), Arg::from(vec![7u8]), Arg::Int(None)]);
        assert!(kept.is_empty());
    }

    #[test]
    fn long_statements_are_not_kept() {
        let kept = Kept::default();
        assert!(kept.fits(MAX_KEPT_PARAMETERS));
        assert!(!kept.fits(MAX_KEPT_PARAMETERS + 1));
    }

    /// The property the whole module rests on: sqlx runs every statement of one query on
    /// SQLite, each with its own renumbered parameters, and answers with the last one's rows.
    #[tokio::test]
    async fn sqlite_runs_every_kept_statement_with_its_parameters() {
        use sqlx::{Connection, Row};
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b BLOB)").execute(&mut conn).await.unwrap();
        let mut kept = Kept::default();
        kept.keep("INSERT INTO t (a, b) VALUES ($1, $2)", vec![Arg::from("one"), Arg::from(vec![1u8])]);
        kept.keep("INSERT INTO t (a, b) VALUES (?, ?)", vec![Arg::from("two"), Arg::from(vec![2u8])]);
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(&mut conn).await.unwrap();
        assert_eq!(count, 0, "kept, not run");
        let select = "SELECT a, b FROM t WHERE a = $1 OR a = $2 ORDER BY id";
        let (sql, args) = kept.joined(&mut conn, select, vec![Arg::from("one"), Arg::from("two")]).await.unwrap();
        assert!(kept.is_empty());
        let rows = query(sql, args).fetch_all(&mut conn).await.unwrap();
        let got: Vec<(String, Vec<u8>)> = rows.iter().map(|r| (r.get("a"), r.get("b"))).collect();
        assert_eq!(got, vec![("one".to_owned(), vec![1u8]), ("two".to_owned(), vec![2u8])]);
        // A statement too long to join: what is kept runs first, on its own.
        kept.keep("INSERT INTO t (a) VALUES ($1)", vec![Arg::from("three")]);
        let long: Vec<Arg> = (0..=MAX_KEPT_PARAMETERS as i64).map(Arg::from).collect();
        let (sql, args) = kept.joined(&mut conn, "SELECT 1", long).await.unwrap();
        assert_eq!((sql.as_str(), args.len()), ("SELECT 1", MAX_KEPT_PARAMETERS + 1));
        let three: i64 =
            sqlx::query_scalar("SELECT count(*) FROM t WHERE a = 'three'").fetch_one(&mut conn).await.unwrap();
        assert_eq!(three, 1, "the kept statement ran before the long one");
        // A failing kept statement fails the query that carries it, and stops it there.
        kept.keep("INSERT INTO t (id, a) VALUES ($1, 'dup')", vec![Arg::from(1)]);
        let (sql, args) =
            kept.joined(&mut conn, "INSERT INTO t (a) VALUES ($1)", vec![Arg::from("after")]).await.unwrap();
        assert!(query(sql, args).execute(&mut conn).await.is_err());
        let after: i64 =
            sqlx::query_scalar("SELECT count(*) FROM t WHERE a = 'after'").fetch_one(&mut conn).await.unwrap();
        assert_eq!(after, 0);
    }
}
