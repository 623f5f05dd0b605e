//! The SQL plumbing every store module shares, for both read paths and both executors: the
//! values a statement binds ([`Value`], one list for sqlx and rusqlite alike), a row by column
//! name ([`Columns`], so one decoder serves sqlx's and rusqlite's rows), the transaction type,
//! and the decode errors of stored data that does not parse.

use rusqlite::types::{FromSql, ValueRef};

use super::sqlite::to_sqlx;
use crate::domain::Fen;

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// A value bound to a statement, on either path.
#[derive(Debug, Clone)]
pub enum Value {
    Text(String),
    Int(i64),
    /// SQL NULL where a text goes.
    NullText,
    /// SQL NULL where an integer goes.
    NullInt,
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        v.map_or(Value::NullText, Value::Text)
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Value {
        v.map_or(Value::NullText, |s| Value::Text(s.to_owned()))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        v.map_or(Value::NullInt, Value::Int)
    }
}

impl From<Fen> for Value {
    fn from(v: Fen) -> Value {
        Value::Int(v.get())
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self {
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::NullText | Value::NullInt => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// A write statement and its `$1`… values.
pub type Statement = (&'static str, Vec<Value>);

/// `sql` with `$1`… bound to `values`, as sqlx runs it.
pub fn query<'q>(
    sql: &'q str,
    values: &'q [Value],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in values {
        query = match value {
            Value::Text(s) => query.bind(s.as_str()),
            Value::Int(i) => query.bind(*i),
            Value::NullText => query.bind(None::<String>),
            Value::NullInt => query.bind(None::<i64>),
        };
    }
    query
}

/// `values` as rusqlite binds them (see [`super::sqlite::prepare`]).
pub fn params(values: &[Value]) -> Vec<&dyn rusqlite::ToSql> {
    values.iter().map(|v| v as &dyn rusqlite::ToSql).collect()
}

/// A row of either read path, by column name: sqlx's `AnyRow` or rusqlite's `Row` (the
/// inline readers and the batching writer), so one decoder serves both.
pub trait Columns {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>;
}

impl Columns for sqlx::any::AnyRow {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        sqlx::Row::try_get(self, name)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.get(name).map_err(to_sqlx)
    }
}

/// A row a lookup found, on whichever path answered (see `Db::lookup_optional`): the one
/// type a lookup's decoder is written for.
pub enum Found<'r> {
    Inline(&'r rusqlite::Row<'r>),
    Pooled(&'r sqlx::any::AnyRow),
}

impl Columns for Found<'_> {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        match self {
            Found::Inline(row) => row.column(name),
            Found::Pooled(row) => row.column(name),
        }
    }
}

/// A stored value that does not parse: the row is corrupt, and saying so (naming the column)
/// beats guessing a `null`, a zero or 1970.
pub fn corrupt(column: &'static str, detail: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("stored {column} is invalid: {detail}").into(),
    }
}

/// A JSON text column, decoded: what does not parse is [`corrupt`], never `null`.
pub fn json_column(column: &'static str, text: &str) -> Result<serde_json::Value, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

/// An amount column, which is never negative.
pub fn fen_of(column: &'static str, value: i64) -> Result<Fen, sqlx::Error> {
    Fen::new(value).map_err(|e| corrupt(column, e))
}

/// An epoch-millisecond time column: out of chrono's range is [`corrupt`], never 1970.
pub fn time_of(
    column: &'static str,
    ms: i64,
) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
    chrono::DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(column, ms))
}

/// A stored time kept as its milliseconds (rows rendered as they are stored), checked like
/// [`time_of`]: a value no time can be is a decode error naming the column, never shown.
pub fn millis_of(column: &'static str, ms: i64) -> Result<i64, sqlx::Error> {
    time_of(column, ms).map(|_| ms)
}

/// [`millis_of`] for a nullable column.
pub fn opt_millis_of(column: &'static str, ms: Option<i64>) -> Result<Option<i64>, sqlx::Error> {
    ms.map(|ms| millis_of(column, ms)).transpose()
}

/// [`time_of`] for a nullable column.
pub fn opt_time_of(
    column: &'static str,
    ms: Option<i64>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
    ms.map(|ms| time_of(column, ms)).transpose()
}

/// A text column parsed by `parse` (an enum's or an id's stored form): what does not parse is
/// [`corrupt`], naming the column.
pub fn parsed<T>(
    column: &'static str,
    text: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, sqlx::Error> {
    parse(text).ok_or_else(|| corrupt(column, text))
}

/// True when `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// True when `err` says the database could not be reached or used at all (no connection
/// within the acquire timeout, a broken connection, a file locked by someone else), as
/// opposed to an error of the statement: a job pass stops at the first one.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6): the busy timeout ran out. PostgreSQL class 08
        // (connection exception) and 57P0x (the server is shutting down or restarting).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.as_ref(), "5" | "6" | "517" | "262")
                || code.starts_with("08")
                || code.starts_with("57P0")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_out_of_range_is_a_decode_error_naming_the_column() {
        let t = time_of("created_at", 1_764_400_000_000).unwrap();
        assert_eq!(crate::clock::to_millis(t), 1_764_400_000_000);
        let err = time_of("created_at", i64::MAX).unwrap_err();
        assert!(err.to_string().contains("created_at"), "{err}");
        assert_eq!(opt_time_of("failed_at", None).unwrap(), None);
        assert!(opt_time_of("failed_at", Some(i64::MIN)).is_err());
    }
}
