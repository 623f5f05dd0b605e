//! SQLite's inline reads: the hottest read-only lookups (a repeat view's cover, a duplicate
//! callback's payment, an order read) run on the calling thread, on a synchronous read-only
//! connection of their own.
//!
//! Through sqlx each query is a hand-over to the connection's worker thread and a wake-up
//! back, which the profile of issue 9 showed costing several times the lookup itself. Here a
//! lookup is a few microseconds of SQLite work on pages the process already has, so it runs
//! where it is asked, like the signature check before it. Two rules keep that from ever
//! stalling the runtime:
//!
//! - the connections never wait for a lock: busy timeout 0, and a busy answer (a checkpoint
//!   resetting the WAL, another process's exclusive lock) sends the caller to the pooled
//!   reader, which may wait;
//! - only single-row or single-order lookups by key come here (`Db::lookup_optional`,
//!   `Db::lookup_all`), never a scan.
//!
//! WAL readers do not block the writer nor wait for it, and each lookup is its own snapshot of
//! what has committed (a statement's read transaction ends when its rows are dropped).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::sqlite::{Role, apply_session, to_sqlx};

/// Connections kept for reuse. Lookups are synchronous, so no more run at once than there are
/// threads asking; the rest are opened on demand and closed after.
const KEEP: usize = 8;

#[derive(Debug)]
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Opens the first connection to `path` now, so a file that cannot be read fails at start.
    pub fn open(path: &Path) -> Result<Readers, sqlx::Error> {
        let readers = Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        let first = readers.connect()?;
        readers.idle().push(first);
        Ok(readers)
    }

    fn connect(&self) -> Result<Connection, sqlx::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(to_sqlx)?;
        apply_session(&conn, Role::Inline, Duration::ZERO)?;
        Ok(conn)
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while the lock was held cannot leave the Vec half-changed.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `lookup` now, on this thread. None when SQLite answered busy: ask the pool.
    pub fn read<T>(
        &self,
        lookup: impl FnOnce(&Connection) -> Result<T, sqlx::Error>,
    ) -> Option<Result<T, sqlx::Error>> {
        let popped = self.idle().pop();
        let conn = match popped {
            Some(conn) => conn,
            None => match self.connect() {
                Ok(conn) => conn,
                Err(e) => return Some(Err(e)),
            },
        };
        let outcome = lookup(&conn);
        {
            let mut idle = self.idle();
            if idle.len() < KEEP {
                idle.push(conn);
            }
        }
        match outcome {
            Err(e) if is_busy(&e) => None,
            other => Some(other),
        }
    }

    /// Closes every kept connection (shutdown).
    pub fn close(&self) {
        self.idle().clear();
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED, with any extended code.
fn is_busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| {
            matches!(
                c & 0xff,
                rusqlite::ffi::SQLITE_BUSY | rusqlite::ffi::SQLITE_LOCKED
            )
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::Db;
    use super::super::sqlite::SqliteError;

    async fn db(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}", dir.path().join("inline.db").display());
        Db::connect(&url, 2, Duration::from_secs(2)).await.unwrap()
    }

    async fn pooled(pool: &sqlx::AnyPool) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT 7").fetch_one(pool).await
    }

    #[tokio::test]
    async fn a_lookup_runs_inline_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        let values = [6_i64.into()];
        let found = db
            .lookup_optional("SELECT $1 AS v", &values, |r| {
                use super::super::Columns;
                Ok(matches!(r, super::super::Found::Inline(_)).then_some(r.column::<i64>("v")?))
            })
            .await;
        assert_eq!(
            found.unwrap(),
            Some(Some(6)),
            "answered by the inline reader, bound once"
        );
    }

    #[tokio::test]
    async fn the_inline_reader_runs_the_closure() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        let found = db
            .inline_or_pooled(
                |c| Ok(c.query_row("SELECT 6", [], |r| r.get::<_, i64>(0)).unwrap()),
                pooled,
            )
            .await;
        assert_eq!(found.unwrap(), 6, "answered by the inline reader");
    }

    /// SQLite busy (a checkpoint resetting the WAL, another process's exclusive lock): the
    /// lookup never waits on the caller's thread; the pooled reader answers instead.
    #[tokio::test]
    async fn a_busy_lookup_is_asked_of_the_pooled_reader() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        let found = db
            .inline_or_pooled(
                |_| Err(SqliteError::busy("database is locked").into()),
                pooled,
            )
            .await;
        assert_eq!(found.unwrap(), 7, "answered by the pool");
    }

    /// Any other failure is the answer: asking again elsewhere would hide it.
    #[tokio::test]
    async fn another_failure_of_a_lookup_is_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir).await;
        let found = db
            .inline_or_pooled(
                |c| {
                    c.query_row("SELECT * FROM no_such_table", [], |r| r.get::<_, i64>(0))
                        .map_err(super::to_sqlx)
                },
                pooled,
            )
            .await;
        let err = found.unwrap_err();
        assert!(err.to_string().contains("no_such_table"), "{err}");
    }
}
