//! A write's statements in one form for both backends: the SQL (`$n` placeholders, or bare
//! `?` on SQLite, see [`super::values`]), its [`Arg`]s, and the [`Row`]s it answers.
//!
//! One form because the two backends run a write's statements differently: PostgreSQL through
//! sqlx, SQLite on the process's one writer connection, which the write drives itself (see
//! [`super::sqlite`]). The code of a write (`Tx`'s methods) is written once against this.

use std::sync::Arc;

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, ColumnIndex};

use super::StoreError;

/// A value bound to a statement: owned, so that a statement's arguments can be built
/// before the connection is at hand and outlive the call that built them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arg {
    /// INTEGER (or NULL).
    Int(Option<i64>),
    /// TEXT (or NULL).
    Text(Option<String>),
    /// BLOB (or NULL).
    Bytes(Option<Vec<u8>>),
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

impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Arg {
        Arg::Bytes(Some(v))
    }
}

impl From<&[u8]> for Arg {
    fn from(v: &[u8]) -> Arg {
        Arg::Bytes(Some(v.to_vec()))
    }
}

impl From<Option<Vec<u8>>> for Arg {
    fn from(v: Option<Vec<u8>>) -> Arg {
        Arg::Bytes(v)
    }
}

/// A sqlx query of `sql` with `args` bound in order (PostgreSQL's statements, and SQLite's
/// reads on the pool).
pub(crate) fn query(sql: &str, args: Vec<Arg>) -> Query<'static, Any, AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// A row a statement answered: from sqlx (PostgreSQL, and reads on the pool) or from SQLite's
/// writer connection. Read with [`Row::try_get`], as sqlx's rows are.
pub(crate) enum Row {
    /// A row from sqlx.
    Any(AnyRow),
    /// A row from the SQLite writer connection, its values copied out.
    Sqlite(SqliteRow),
}

/// A row read on the SQLite writer connection: the statement's column names (shared by its
/// rows) and the row's values.
#[derive(Debug)]
pub(crate) struct SqliteRow {
    pub(crate) columns: Arc<[String]>,
    pub(crate) values: Vec<rusqlite::types::Value>,
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Row::Any(row) => f.debug_struct("Row").field("columns", &sqlx::Row::len(row)).finish_non_exhaustive(),
            Row::Sqlite(row) => row.fmt(f),
        }
    }
}

impl From<AnyRow> for Row {
    fn from(row: AnyRow) -> Row {
        Row::Any(row)
    }
}

/// A value a column can be read as: one that both sqlx (through `Any`) and rusqlite decode.
pub(crate) trait Cell:
    Sized + for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql
{
}

impl<T> Cell for T where T: Sized + for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + rusqlite::types::FromSql {}

/// Names a column: by name or by position, as sqlx's `ColumnIndex` does.
pub(crate) trait Column: ColumnIndex<AnyRow> + std::fmt::Debug + Copy {
    /// Its position among `names`.
    fn position(self, names: &[String]) -> Option<usize>;
}

impl Column for &str {
    fn position(self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n == self)
    }
}

impl Column for usize {
    fn position(self, names: &[String]) -> Option<usize> {
        (self < names.len()).then_some(self)
    }
}

impl Row {
    /// The value of `column` as a `T`: an error if there is no such column or its value is not
    /// a `T` (NULL is a value only of `Option`s).
    pub(crate) fn try_get<T: Cell, C: Column>(&self, column: C) -> Result<T, StoreError> {
        match self {
            Row::Any(row) => Ok(sqlx::Row::try_get(row, column)?),
            Row::Sqlite(row) => {
                let Some(value) = column.position(&row.columns).and_then(|i| row.values.get(i)) else {
                    return Err(StoreError::Corrupt(format!("no column {column:?} in a row read")));
                };
                T::column_result(rusqlite::types::ValueRef::from(value))
                    .map_err(|e| StoreError::Corrupt(format!("column {column:?}: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    fn sqlite_row() -> Row {
        Row::Sqlite(SqliteRow {
            columns: vec!["id".to_owned(), "name".to_owned(), "bytes".to_owned(), "gone".to_owned()].into(),
            values: vec![Value::Integer(7), Value::Text("Hạ Long".into()), Value::Blob(vec![1, 2]), Value::Null],
        })
    }

    #[test]
    fn a_sqlite_row_reads_by_name_and_position() {
        let row = sqlite_row();
        assert_eq!(row.try_get::<i64, _>("id").unwrap(), 7);
        assert_eq!(row.try_get::<String, _>(1).unwrap(), "Hạ Long");
        assert_eq!(row.try_get::<Vec<u8>, _>("bytes").unwrap(), vec![1, 2]);
        assert_eq!(row.try_get::<Option<String>, _>("gone").unwrap(), None);
        assert_eq!(row.try_get::<Option<i64>, _>("id").unwrap(), Some(7));
    }

    #[test]
    fn a_missing_column_or_a_wrong_type_is_an_error_not_a_default() {
        let row = sqlite_row();
        assert!(matches!(row.try_get::<i64, _>("nope"), Err(StoreError::Corrupt(_))));
        assert!(matches!(row.try_get::<i64, _>(4), Err(StoreError::Corrupt(_))));
        assert!(matches!(row.try_get::<i64, _>("name"), Err(StoreError::Corrupt(_))));
        assert!(matches!(row.try_get::<String, _>("gone"), Err(StoreError::Corrupt(_))));
    }
}
