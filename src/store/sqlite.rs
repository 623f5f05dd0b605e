//! SQLite plumbing shared by every connection of a file: the one list of connection settings
//! (sqlx's writer and readers, the batching writer's and the inline readers' rusqlite
//! connections all take theirs from [`session`]), `$n` binding on rusqlite, and rusqlite's
//! errors as sqlx reports them.

use std::borrow::Cow;
use std::time::Duration;

use rusqlite::{Connection, ToSql};

/// Which connection of a SQLite file a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes (sqlx's writer pool, the batching writer).
    Writer,
    /// sqlx's pool of readers: never writes (`query_only`).
    Reader,
    /// The inline readers (`inline.rs`): opened read-only, never wait for a lock.
    Inline,
}

/// The statements that set up a connection of `role`, with `busy_timeout` as its wait for a
/// lock held elsewhere: THE one place the SQLite connection settings are written.
///
/// WAL keeps readers off the writer's back. busy_timeout still matters for other processes on
/// the same file (the CLI beside `serve`); inside one process the writer is alone. It is the
/// acquire timeout: a file locked by someone else fails as fast as a pool that is dry.
/// Deleted and overwritten content is zeroed, not left in free pages and cells: an erased
/// employer id must not survive in the file (issue 11; the WAL is checkpointed after each
/// erasure).
pub fn session(role: Role, busy_timeout: Duration) -> Vec<String> {
    let mut pragmas = vec![format!(
        "PRAGMA busy_timeout = {}",
        busy_timeout.as_millis()
    )];
    if role == Role::Inline {
        // Opened read-only: the file's journal mode (WAL, set by the writer) is the file's, and
        // nothing is written or deleted through it.
        return pragmas;
    }
    pragmas.extend(
        [
            "PRAGMA journal_mode = WAL",
            "PRAGMA foreign_keys = ON",
            "PRAGMA synchronous = NORMAL",
            "PRAGMA secure_delete = ON",
        ]
        .map(str::to_owned),
    );
    if role == Role::Reader {
        pragmas.push("PRAGMA query_only = ON".to_owned());
    }
    pragmas
}

/// [`session`] applied to a rusqlite connection.
pub fn apply_session(
    conn: &Connection,
    role: Role,
    busy_timeout: Duration,
) -> Result<(), sqlx::Error> {
    conn.execute_batch(&session(role, busy_timeout).join(";\n"))
        .map_err(to_sqlx)
}

/// `$1`, `$2`… of `sql` bound to `values` in order, as sqlx binds them: the same statement text
/// serves both paths. Answers the statement ready to run.
pub fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    values: &[&dyn ToSql],
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql)?;
    for (i, value) in values.iter().enumerate() {
        if let Some(index) = stmt.parameter_index(&format!("${}", i + 1))? {
            stmt.raw_bind_parameter(index, value)?;
        }
    }
    Ok(stmt)
}

/// A SQLite error of the writer, as sqlx reports one: the extended result code as the code, so
/// `is_unavailable` and `is_unique_violation` read it as they read sqlx's own.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqliteError {
    code: Option<i32>,
    message: String,
}

impl SqliteError {
    /// SQLITE_BUSY, as a connection that will not wait reports a lock held elsewhere.
    #[cfg(test)]
    pub(crate) fn busy(message: &str) -> SqliteError {
        SqliteError {
            code: Some(rusqlite::ffi::SQLITE_BUSY),
            message: message.to_owned(),
        }
    }

    pub(super) fn unavailable(e: &sqlx::Error) -> SqliteError {
        SqliteError {
            code: Some(rusqlite::ffi::SQLITE_BUSY),
            message: format!("no turn at the write lock: {e}"),
        }
    }
}

impl SqliteError {
    /// SQLITE_BUSY, with any extended code: the lock is held elsewhere.
    pub(super) fn is_busy(&self) -> bool {
        self.code
            .is_some_and(|c| c & 0xff == rusqlite::ffi::SQLITE_BUSY)
    }
}

impl From<&rusqlite::Error> for SqliteError {
    fn from(e: &rusqlite::Error) -> SqliteError {
        SqliteError {
            code: e.sqlite_error().map(|f| f.extended_code),
            message: e.to_string(),
        }
    }
}

impl sqlx::error::DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| c.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A closure's error as the rest of the storage layer speaks it: SQLite's failures as database
/// errors (code kept), anything else (a column of the wrong type) as a decode error.
pub fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    if e.sqlite_error().is_some() {
        sqlx::Error::Database(Box::new(SqliteError::from(&e)))
    } else {
        sqlx::Error::Decode(Box::new(e))
    }
}
