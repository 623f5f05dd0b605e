//! Where a transaction's statements run, so a transaction is written once for both paths: a
//! sqlx transaction (PostgreSQL, or SQLite without the batching writer), or a closure of
//! SQLite's batching writer (see [`super::writer`]). On the rusqlite side every call has
//! finished when it returns, so a transaction written as an `async fn` over [`Exec`] is ready
//! at its first poll there ([`ready`]). `Db::transaction` (`db.rs`) is the one runner that
//! chooses between the two.

use std::future::Future;

use rusqlite::types::{FromSql, ValueRef};

pub use super::sql::query;
use super::sql::{Columns, Tx, Value, params};
use super::sqlite::{prepare, to_sqlx};

pub enum Exec<'a> {
    Sqlx(&'a mut Tx),
    /// `&mut`, not `&`: a shared reference to a connection is not `Send`, and the futures of a
    /// transaction over [`Exec`] must be.
    Sqlite(&'a mut rusqlite::Connection),
}

/// A row read through [`Exec`].
pub enum Row {
    Any(sqlx::any::AnyRow),
    /// Column names and values, copied out of the statement.
    Sqlite(Vec<(String, rusqlite::types::Value)>),
}

impl Columns for Row {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        match self {
            Row::Any(row) => row.column(name),
            Row::Sqlite(cells) => {
                let (_, value) = cells
                    .iter()
                    .find(|(column, _)| column == name)
                    .ok_or_else(|| sqlx::Error::ColumnNotFound(name.to_owned()))?;
                T::column_result(ValueRef::from(value))
                    .map_err(|e| sqlx::Error::Decode(format!("column {name}: {e}").into()))
            }
        }
    }
}

impl Exec<'_> {
    /// The first row of `sql` with `$1`… bound to `values`, if any.
    pub async fn optional(
        &mut self,
        sql: &str,
        values: &[Value],
    ) -> Result<Option<Row>, sqlx::Error> {
        match self {
            Exec::Sqlx(tx) => Ok(query(sql, values)
                .fetch_optional(&mut ***tx)
                .await?
                .map(Row::Any)),
            Exec::Sqlite(conn) => Ok(sqlite_rows(conn, sql, values, true)?.pop()),
        }
    }

    /// Every row of `sql` with `$1`… bound to `values`.
    pub async fn all(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            Exec::Sqlx(tx) => Ok(query(sql, values)
                .fetch_all(&mut ***tx)
                .await?
                .into_iter()
                .map(Row::Any)
                .collect()),
            Exec::Sqlite(conn) => sqlite_rows(conn, sql, values, false),
        }
    }

    /// Runs `sql` with `$1`… bound to `values`; answers the rows it changed.
    pub async fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, sqlx::Error> {
        match self {
            Exec::Sqlx(tx) => Ok(query(sql, values)
                .execute(&mut ***tx)
                .await?
                .rows_affected()),
            Exec::Sqlite(conn) => {
                let changed = prepare(conn, sql, &params(values))
                    .map_err(to_sqlx)?
                    .raw_execute()
                    .map_err(to_sqlx)?;
                Ok(changed as u64)
            }
        }
    }
}

/// The rows of `sql` on the rusqlite connection (the first only when `first_only`), copied out
/// of the statement.
fn sqlite_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    values: &[Value],
    first_only: bool,
) -> Result<Vec<Row>, sqlx::Error> {
    let mut stmt = prepare(conn, sql, &params(values)).map_err(to_sqlx)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(to_sqlx)? {
        let cells = names
            .iter()
            .enumerate()
            .map(|(i, name)| Ok((name.clone(), row.get::<_, rusqlite::types::Value>(i)?)))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(to_sqlx)?;
        out.push(Row::Sqlite(cells));
        if first_only {
            break;
        }
    }
    Ok(out)
}

/// The outcome of a transaction over [`Exec::Sqlite`], which never waits: polled once, it is
/// done. Anything else is a bug in the transaction (an await on something that is not the
/// executor), reported as an error rather than a hang.
pub fn ready<T, E: From<sqlx::Error>>(
    transaction: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use futures_util::FutureExt;
    transaction.now_or_never().unwrap_or_else(|| {
        Err(sqlx::Error::Protocol(
            "a transaction on the batching writer awaited something else".into(),
        )
        .into())
    })
}
