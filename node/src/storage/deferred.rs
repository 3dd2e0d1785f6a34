//! Writes whose answer nobody reads, sent to PostgreSQL together (see [`super::Tx::defer`]).
//!
//! Every statement is a round trip to PostgreSQL (sqlx does not pipeline), and on the
//! benchmark's two cores the server's CPU per round trip bounds a node on PostgreSQL: a
//! document took about 12 at the receiving node, most of them inserts whose answer nobody
//! reads (its attachments' rows, their bytes, its routes and inbox entry when it is new, the
//! receipts the node signs, the log's leaves). Kept here, they run in one statement before
//! the transaction's next statement or its `COMMIT`: each but the last a data-modifying `WITH`
//! query (`WITH w0 AS (INSERT …), w1 AS (INSERT …) INSERT …`), their placeholders renumbered
//! after those before them.
//!
//! PostgreSQL runs the sub-statements of one statement under one snapshot, and documents no
//! order among them, so only writes that cannot meet may be kept together: inserts of rows
//! of their own (or `ON CONFLICT DO NOTHING` where two could meet), which read only rows
//! earlier statements wrote (a document's, whose id they carry), and a status's update of
//! its document's routes (`Tx::keep_route_state`, `Tx::keep_route_states`), which nothing else kept beside it
//! touches (the caller's obligation, said there). Foreign keys are checked at
//! the end of the statement, as they would be after the last of separate statements. (In
//! practice PostgreSQL 15 runs the main statement first and then the `WITH` queries from the
//! last to the first, so the first write kept is the main statement and the others follow it
//! written in the reverse order: the ids of rows inserted together then follow the order
//! kept, as a test of the storage suite checks. Nothing relies on it but the order in which
//! listings show receipts of the same instant; the log's leaves, whose order matters, go one
//! insert a statement, see `Tx::keep_log_entries`.)
//!
//! The statement's text changes with the kinds and numbers of rows kept, and sqlx prepares
//! every text it has not seen on a connection (a round trip of its own) and keeps 100 of them
//! a connection, closing the oldest (another round trip). So that varied documents do not
//! push the node's own statements out of that cache, a process keeps at most
//! [`PREPARED_SHAPES`] combined texts prepared; any other is sent unprepared (its own round
//! trip to be parsed, as a miss costs anyway, and nothing evicted).

use super::Arg;

/// The most parameters one PostgreSQL statement binds (its protocol counts them in 16 bits).
const MAX_PG_BINDS: usize = 65_535;

/// The most distinct statements of kept writes together a process keeps prepared on its
/// connections (see the module's doc): the node's own statements take about 40 of sqlx's 100
/// a connection.
const PREPARED_SHAPES: usize = 48;

/// The texts of statements of kept writes together this process has prepared, by hash.
static SHAPES: std::sync::LazyLock<Shapes> = std::sync::LazyLock::new(|| Shapes::new(PREPARED_SHAPES));

/// A bounded set of statement texts (by hash; a collision only prepares a statement or not).
#[derive(Debug)]
struct Shapes {
    seen: std::sync::Mutex<std::collections::HashSet<u64>>,
    most: usize,
}

impl Shapes {
    fn new(most: usize) -> Shapes {
        Shapes { seen: Default::default(), most }
    }

    /// Whether `sql` is to be prepared: it was before, or there is room for it (then it is
    /// counted).
    fn prepare(&self, sql: &str) -> bool {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(sql);
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(&hash) {
            return true;
        }
        if seen.len() < self.most {
            seen.insert(hash);
            return true;
        }
        false
    }
}

/// The one statement of the writes kept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) args: Vec<Arg>,
    /// Whether sqlx is to prepare it and keep it prepared (see [`PREPARED_SHAPES`]).
    pub(crate) prepare: bool,
}

/// The writes a transaction keeps, their placeholders already numbered for the one statement
/// they go in.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    statements: Vec<String>,
    args: Vec<Arg>,
}

impl Deferred {
    /// Whether no write is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// Whether a write binding `args` more would take the statement past PostgreSQL's limit
    /// (the caller sends what is kept first).
    pub(crate) fn is_full_for(&self, args: usize) -> bool {
        !self.is_empty() && self.args.len() + args > MAX_PG_BINDS
    }

    /// Keeps `sql` (placeholders `$1` … `$n`, as written for a statement of its own) and its
    /// `args`.
    pub(crate) fn push(&mut self, sql: &str, args: Vec<Arg>) {
        self.statements.push(renumber(sql, self.args.len()));
        self.args.extend(args);
    }

    /// The one statement of every write kept; `None` if none is kept. Empties the list.
    pub(crate) fn take(&mut self) -> Option<Statement> {
        self.take_with(&SHAPES)
    }

    fn take_with(&mut self, shapes: &Shapes) -> Option<Statement> {
        let statements = std::mem::take(&mut self.statements);
        let args = std::mem::take(&mut self.args);
        let (first, rest) = statements.split_first()?;
        if rest.is_empty() {
            return Some(Statement { sql: first.clone(), args, prepare: true });
        }
        let mut sql = String::with_capacity(statements.iter().map(|s| s.len() + 12).sum::<usize>());
        for (i, s) in rest.iter().rev().enumerate() {
            sql.push_str(if i == 0 { "WITH " } else { ", " });
            sql.push_str(&format!("w{i} AS ({s})"));
        }
        sql.push(' ');
        sql.push_str(first);
        let prepare = shapes.prepare(&sql);
        Some(Statement { sql, args, prepare })
    }
}

/// `sql` with each placeholder `$k` outside quotes made `$(k + offset)`: for the node's own
/// statements, which hold no comments, quoted names, dollar quotes or backslash escapes, and
/// no `$` but in placeholders and `'…'` literals.
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    while let Some((_, c)) = chars.next() {
        out.push(c);
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted => {
                let mut digits = String::new();
                while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
                    digits.push(d);
                }
                match digits.parse::<usize>() {
                    Ok(k) => out.push_str(&(k + offset).to_string()),
                    Err(_) => out.push_str(&digits),
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_after_the_writes_before_and_quotes_are_left_alone() {
        assert_eq!(renumber("INSERT INTO t (a, b) VALUES ($1, $2)", 0), "INSERT INTO t (a, b) VALUES ($1, $2)");
        assert_eq!(
            renumber("INSERT INTO t (a, b) VALUES ($1, $12), ($1, '$3')", 7),
            "INSERT INTO t (a, b) VALUES ($8, $19), ($8, '$3')"
        );
    }

    #[test]
    fn kept_writes_go_in_one_statement_with_their_arguments_the_first_as_the_main_one() {
        let shapes = Shapes::new(8);
        let mut kept = Deferred::default();
        assert!(kept.take_with(&shapes).is_none());
        kept.push("INSERT INTO a (x) VALUES ($1)", vec![Arg::from(1)]);
        let alone = kept.take_with(&shapes).unwrap();
        assert_eq!(
            alone,
            Statement { sql: "INSERT INTO a (x) VALUES ($1)".into(), args: vec![Arg::from(1)], prepare: true }
        );
        assert!(kept.is_empty());
        kept.push("INSERT INTO a (x) VALUES ($1)", vec![Arg::from(1)]);
        kept.push("INSERT INTO b (x, y) VALUES ($1, $2)", vec![Arg::from(2), Arg::from("b")]);
        kept.push("INSERT INTO c (x) VALUES ($1) ON CONFLICT DO NOTHING", vec![Arg::from(3)]);
        let together = kept.take_with(&shapes).unwrap();
        assert_eq!(
            together.sql,
            "WITH w0 AS (INSERT INTO c (x) VALUES ($4) ON CONFLICT DO NOTHING), w1 AS (INSERT INTO b (x, y) VALUES ($2, $3)) INSERT INTO a (x) VALUES ($1)"
        );
        assert_eq!(together.args, vec![Arg::from(1), Arg::from(2), Arg::from("b"), Arg::from(3)]);
        assert!(together.prepare);
        assert!(kept.is_empty() && kept.take_with(&shapes).is_none());
    }

    #[test]
    fn only_so_many_texts_of_writes_together_are_prepared() {
        let shapes = Shapes::new(2);
        let together = |rows: usize| {
            let mut kept = Deferred::default();
            kept.push("INSERT INTO a (x) VALUES ($1)", vec![Arg::from(1)]);
            kept.push(&format!("INSERT INTO b (x) VALUES {}", vec!["($1)"; rows].join(", ")), vec![Arg::from(2)]);
            kept.take_with(&shapes).unwrap().prepare
        };
        assert!(together(1) && together(2), "room for two");
        assert!(!together(3), "a third is sent unprepared");
        assert!(together(1) && together(2), "the first two stay prepared");
        let mut alone = Deferred::default();
        alone.push("INSERT INTO b (x) VALUES ($1), ($1), ($1), ($1)", vec![Arg::from(2)]);
        assert!(alone.take_with(&shapes).unwrap().prepare, "a write alone is a statement of the node's own");
    }

    #[test]
    fn a_write_that_would_pass_the_parameter_limit_does_not_fit() {
        let mut kept = Deferred::default();
        assert!(!kept.is_full_for(MAX_PG_BINDS + 1), "an empty list takes any write, which then goes alone");
        kept.push("INSERT INTO a (x) VALUES ($1)", vec![Arg::from(1); 65_000]);
        assert!(!kept.is_full_for(535));
        assert!(kept.is_full_for(536));
    }
}
