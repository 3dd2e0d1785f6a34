//! Multi-row statements: the `VALUES` lists and `IN` lists of one statement for many rows, so
//! a document's rows cost one statement (one prepared statement run on SQLite's writer, one
//! round trip to PostgreSQL) instead of one per row.
//!
//! The placeholders are written here, not with sqlx's `QueryBuilder`: through the `Any`
//! driver `QueryBuilder::push_bind` writes `?` (`AnyArguments` keeps the default
//! `format_placeholder`), which PostgreSQL does not accept. PostgreSQL gets `$n`. SQLite gets
//! `$n` too where rows share parameters, and a bare `?` per value where they do not: SQLite
//! keeps named parameters (`$n`, `?n`) in a list it searches from the start for each one,
//! when parsing the statement (and again when sqlx binds each value by name), so a statement of n
//! named parameters costs n² steps — 3.4 % of a node's CPU in a profile, from the log's
//! 2,500-parameter inserts. Bare `?` are not named, so binding them is linear. (Shared
//! parameters cannot be bare: sqlx numbers bare ones in order, apart from named ones.)

use std::fmt::Write;

use super::Backend;

/// The most parameters one statement binds: SQLite's limit before 3.32 (999; later versions
/// and the bundled one allow 32,766, PostgreSQL 65,535), so a statement fits any SQLite a node
/// may be linked with. Longer lists are split into several statements.
pub(crate) const MAX_BINDS: usize = 999;

/// How many rows of `per_row` parameters one statement takes after `shared` parameters bound
/// once for all rows (at least one).
pub(crate) fn rows_per_statement(per_row: usize, shared: usize) -> usize {
    (MAX_BINDS.saturating_sub(shared) / per_row.max(1)).max(1)
}

/// How many rows a statement for `rows` of them is written with (at most `most`, a statement's
/// worth, and at least `rows`): `rows` rounded up to a power of two, the caller repeating its
/// last row to fill, where a row twice does what it does once. For statements whose number of
/// rows is the size of a batch (`outbound::answers`): each text is prepared and kept on the
/// connection that runs it, and sqlx keeps 100 a connection, of which the node's own take
/// about 40 (see `deferred`); a text for each size up to 64 would push them out, eight do not.
pub(crate) fn padded(rows: usize, most: usize) -> usize {
    rows.next_power_of_two().min(most).max(rows)
}

/// `rows` copies of `row`, comma-separated, each `{}` replaced by the next placeholder after
/// the `shared` ones (`$1` … `$shared`, which `row` may name itself): `values("($1, {}, {})",
/// 1, 2)` is `($1, $2, $3), ($1, $4, $5)`.
pub(crate) fn values(row: &str, shared: usize, rows: usize) -> String {
    placeholders(row, shared, rows, false)
}

/// [`values`] for rows that share no parameter: on SQLite every `{}` becomes a bare `?`.
pub(crate) fn unshared_values(backend: Backend, row: &str, rows: usize) -> String {
    placeholders(row, 0, rows, backend == Backend::Sqlite)
}

fn placeholders(row: &str, shared: usize, rows: usize, bare: bool) -> String {
    let mut pieces = row.split("{}");
    let first = pieces.next().unwrap_or_default();
    let rest: Vec<&str> = pieces.collect();
    let mut out = String::with_capacity(rows * (row.len() + 4 * rest.len()));
    let mut n = shared;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push_str(first);
        for piece in &rest {
            n += 1;
            if bare {
                out.push('?');
                out.push_str(piece);
            } else {
                let _ = write!(out, "${n}{piece}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_numbered_after_the_shared_parameters() {
        assert_eq!(values("($1, {}, {}, $2)", 2, 2), "($1, $3, $4, $2), ($1, $5, $6, $2)");
        assert_eq!(values("{}", 3, 3), "$4, $5, $6");
        assert_eq!(values("({})", 0, 1), "($1)");
        assert_eq!(values("({})", 0, 0), "");
    }

    #[test]
    fn unshared_rows_are_bare_on_sqlite_only() {
        assert_eq!(unshared_values(Backend::Sqlite, "({}, {})", 2), "(?, ?), (?, ?)");
        assert_eq!(unshared_values(Backend::Postgres, "({}, {})", 2), "($1, $2), ($3, $4)");
    }

    #[test]
    fn batches_are_padded_to_few_sizes_within_a_statement() {
        let sizes: std::collections::BTreeSet<usize> = (1..=200).map(|n| padded(n.min(76), 76)).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64, 76]);
        assert_eq!((padded(5, 76), padded(65, 76), padded(76, 76), padded(3, 2)), (8, 76, 76, 3));
    }

    #[test]
    fn a_statement_stays_within_the_parameter_limit() {
        for (per_row, shared) in [(5, 1), (3, 2), (1, 3), (1, 0), (999, 0), (1000, 5)] {
            let rows = rows_per_statement(per_row, shared);
            assert!(rows >= 1);
            if per_row + shared <= MAX_BINDS {
                assert!(shared + rows * per_row <= MAX_BINDS, "{per_row} {shared}");
                assert!(shared + (rows + 1) * per_row > MAX_BINDS, "{per_row} {shared}: not full");
            }
        }
    }
}
