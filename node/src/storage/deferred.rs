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
//! PostgreSQL runs the sub-statements of one statement under one snapshot and in no set
//! order, so only writes that neither read nor conflict with each other may be kept
//! together: inserts into rows of their own (or `ON CONFLICT DO NOTHING` where two could
//! meet), whose parents earlier statements wrote. Foreign keys are checked at the end of the
//! statement, as they would be after the last of separate statements.

use super::Arg;

/// The most parameters one PostgreSQL statement binds (its protocol counts them in 16 bits).
const MAX_PG_BINDS: usize = 65_535;

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

    /// The one statement of every write kept, and its arguments; `None` if none is kept.
    /// Empties the list.
    pub(crate) fn take(&mut self) -> Option<(String, Vec<Arg>)> {
        let mut statements = std::mem::take(&mut self.statements);
        let args = std::mem::take(&mut self.args);
        let last = statements.pop()?;
        if statements.is_empty() {
            return Some((last, args));
        }
        let mut sql = String::with_capacity(statements.iter().map(|s| s.len() + 12).sum::<usize>() + last.len() + 5);
        for (i, s) in statements.iter().enumerate() {
            sql.push_str(if i == 0 { "WITH " } else { ", " });
            sql.push_str(&format!("w{i} AS ({s})"));
        }
        sql.push(' ');
        sql.push_str(&last);
        Some((sql, args))
    }
}

/// `sql` with each placeholder `$k` outside quotes made `$(k + offset)`.
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
    fn kept_writes_go_in_one_statement_in_order_with_their_arguments() {
        let mut kept = Deferred::default();
        assert!(kept.take().is_none());
        kept.push("INSERT INTO a (x) VALUES ($1)", vec![Arg::from(1)]);
        assert_eq!(kept.take(), Some(("INSERT INTO a (x) VALUES ($1)".to_owned(), vec![Arg::from(1)])));
        assert!(kept.is_empty());
        kept.push("INSERT INTO a (x) VALUES ($1)", vec![Arg::from(1)]);
        kept.push("INSERT INTO b (x, y) VALUES ($1, $2)", vec![Arg::from(2), Arg::from("b")]);
        kept.push("INSERT INTO c (x) VALUES ($1) ON CONFLICT DO NOTHING", vec![Arg::from(3)]);
        let (sql, args) = kept.take().unwrap();
        assert_eq!(
            sql,
            "WITH w0 AS (INSERT INTO a (x) VALUES ($1)), w1 AS (INSERT INTO b (x, y) VALUES ($2, $3)) INSERT INTO c (x) VALUES ($4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(args, vec![Arg::from(1), Arg::from(2), Arg::from("b"), Arg::from(3)]);
        assert!(kept.is_empty() && kept.take().is_none());
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
