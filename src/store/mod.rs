//! Storage: sqlx `Any` over SQLite (embedded default) or PostgreSQL (production), as [`Db`]: a
//! writer and a reader.
//!
//! Both backends run the same SQL: `$n` placeholders, `ON CONFLICT`, `RETURNING`, integer
//! fen and epoch-millisecond times. Uniqueness and conditional updates do the concurrency
//! work; the in-process writer queue of SQLite only orders writes, it guards nothing.

pub mod erased_employers;
pub mod erasure;
pub mod erasures;
pub mod events;
pub mod exec;
pub mod idempotency;
pub mod idempotency_keys;
pub mod inline;
pub mod jobs;
pub mod orders;
pub mod reconciliations;
pub mod refunds;
pub mod reread;
pub mod retention;
pub mod time;
pub mod writer;

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Connection, Executor};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database: where writes go and where reads go.
///
/// On SQLite, every write goes through ONE writer connection: writers queue in the process, in
/// the pool's fair async queue, instead of sleeping in SQLite's busy handler for its single
/// write lock; reads use a pool of their own, read-only connections, which WAL lets run beside
/// the writer and never take the write lock. On PostgreSQL both are one ordinary pool.
#[derive(Clone, Debug)]
pub struct Db {
    /// Writes, and reads that must see the same connection's writes.
    pool: AnyPool,
    /// Reads that need no write: answered from a snapshot of what has committed.
    reader: AnyPool,
    backend: Backend,
    /// SQLite (a file): the batching writer of the hottest transactions, sharing the writer
    /// connection's turn. None on PostgreSQL and for `:memory:`.
    batch_writer: Option<writer::Writer>,
    /// SQLite (a file): the inline readers of the hottest lookups. None elsewhere.
    inline: Option<std::sync::Arc<inline::Readers>>,
    /// Committed status changes of orders, announced to this instance's waiters (`wait=`).
    order_watch: crate::order_watch::OrderWatch,
    /// SQLite: `db_acquire_timeout_ms`, the whole wait of a write for the pool's connection and
    /// the file's write lock together, and the busy timeout the writer connection has now.
    write_wait: Duration,
    writer_busy_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A writer connection's busy timeout is set again before `BEGIN IMMEDIATE` only when what is
/// left of the wait differs from it by more than this (one round trip saved on most writes).
const BUSY_TOLERANCE_MS: u64 = 50;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A PostgreSQL connection idle longer than this is pinged before it is used again.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLite settings of every connection, writer and readers alike.
async fn sqlite_session(
    conn: &mut sqlx::AnyConnection,
    read_only: bool,
    busy_timeout: Duration,
) -> Result<(), sqlx::Error> {
    // WAL keeps readers off the writer's back. busy_timeout still matters for other processes
    // on the same file (the CLI beside `serve`); inside one process the writer is alone. It is
    // the acquire timeout: a file locked by someone else fails as fast as a pool that is dry.
    conn.execute("PRAGMA journal_mode = WAL").await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {}",
        busy_timeout.as_millis()
    )))
    .execute(&mut *conn)
    .await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    // Deleted and overwritten content is zeroed, not left in free pages and cells: an erased
    // employer id must not survive in the file (issue 11; the WAL is checkpointed after each
    // erasure).
    conn.execute("PRAGMA secure_delete = ON").await?;
    if read_only {
        conn.execute("PRAGMA query_only = ON").await?;
    }
    Ok(())
}

impl Db {
    /// Connects; a missing SQLite file is created (WAL mode, foreign keys on). SQLite gets one
    /// writer connection and `max_connections` readers; PostgreSQL one pool of
    /// `max_connections`. No query waits longer than `acquire_timeout` for a connection (nor,
    /// on SQLite, for the file's write lock): an outage answers `PoolTimedOut` in seconds.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Db, sqlx::Error> {
        install_default_drivers();
        let max = max_connections.max(1);
        if !url.starts_with("sqlite:") {
            let pool = AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        // A connection used within the last seconds is live; only one that sat
                        // idle is pinged before use (a restarted server has cut it). Pinging
                        // every acquire doubled the round trips of a one-query read.
                        if meta.idle_for > IDLE_BEFORE_PING {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect(url)
                .await?;
            return Ok(Db {
                reader: pool.clone(),
                pool,
                backend: Backend::Postgres,
                batch_writer: None,
                inline: None,
                order_watch: Default::default(),
                write_wait: acquire_timeout,
                writer_busy_ms: Default::default(),
            });
        }
        let url = if url.contains('?') || url.contains(":memory:") {
            url.to_owned()
        } else {
            format!("{url}?mode=rwc")
        };
        // No ping before handing out a SQLite connection: it is a file in this process, not a
        // socket that can die idle, and the ping is one more round trip to the connection's
        // worker thread on every query.
        let writer_busy_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let busy_set = writer_busy_ms.clone();
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let busy_set = busy_set.clone();
                Box::pin(async move {
                    sqlite_session(conn, false, acquire_timeout).await?;
                    busy_set.store(millis(acquire_timeout), Ordering::Relaxed);
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if url.contains(":memory:") {
            // Every connection to :memory: is a database of its own: one connection for all.
            return Ok(Db {
                reader: writer.clone(),
                pool: writer,
                backend: Backend::Sqlite,
                batch_writer: None,
                inline: None,
                order_watch: Default::default(),
                write_wait: acquire_timeout,
                writer_busy_ms,
            });
        }
        let reader = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(false)
            .after_connect(move |conn, _| Box::pin(sqlite_session(conn, true, acquire_timeout)))
            .connect(&url)
            .await?;
        let file = SqliteConnectOptions::from_str(&url)?
            .get_filename()
            .to_owned();
        let batch_writer = writer::Writer::open(&file, writer.clone(), acquire_timeout)?;
        let inline = inline::Readers::open(&file)?;
        Ok(Db {
            pool: writer,
            reader,
            backend: Backend::Sqlite,
            batch_writer: Some(batch_writer),
            inline: Some(std::sync::Arc::new(inline)),
            order_watch: Default::default(),
            write_wait: acquire_timeout,
            writer_busy_ms,
        })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await,
        }
    }

    /// The writer: writes, and reads inside a write.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Read-only work that must not wait for (or hold) the write lock: what has committed.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// Waits for work in flight to finish and closes every connection (shutdown).
    pub async fn close(&self) {
        if let Some(w) = &self.batch_writer {
            w.close().await;
        }
        self.pool.close().await;
        self.reader.close().await;
        if let Some(inline) = &self.inline {
            inline.close();
        }
    }

    /// Write statements that must commit together (or one on its own), answering the rows each
    /// changed: on SQLite one closure of the batching writer (its commit shared with whatever
    /// is queued beside it), elsewhere one pooled transaction.
    pub async fn write_all(&self, statements: Vec<Statement>) -> Result<Vec<u64>, sqlx::Error> {
        if let Some(writer) = &self.batch_writer {
            return writer
                .write_with(move |conn| {
                    exec::ready(execute_all(&mut exec::Exec::Sqlite(conn), &statements))
                })
                .await;
        }
        if let [(sql, values)] = statements.as_slice() {
            // One statement is its own transaction: no BEGIN and COMMIT round trips around it.
            let done = exec::query(sql, values).execute(&self.pool).await?;
            return Ok(vec![done.rows_affected()]);
        }
        let mut tx = self.begin_write().await?;
        let changed = execute_all(&mut exec::Exec::Sqlx(&mut tx), &statements).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// A read-only lookup by key: on SQLite `inline`, on this thread (see [`inline`]); on
    /// PostgreSQL, or when SQLite answered busy, `pooled` on the reader pool. Both must read
    /// the same thing.
    pub async fn lookup<'a, T, Fut>(
        &'a self,
        inline: impl FnOnce(&rusqlite::Connection) -> Result<T, sqlx::Error>,
        pooled: impl FnOnce(&'a AnyPool) -> Fut,
    ) -> Result<T, sqlx::Error>
    where
        Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
    {
        if let Some(readers) = &self.inline {
            match readers.read(inline) {
                Some(found) => return found,
                None => crate::telemetry::sqlite_inline_busy(),
            }
        }
        pooled(&self.reader).await
    }

    /// The batching writer, where there is one (a SQLite file): see [`writer`].
    pub fn batch_writer(&self) -> Option<&writer::Writer> {
        self.batch_writer.as_ref()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where committed order status changes are announced to waiters on this instance.
    pub fn order_watch(&self) -> &crate::order_watch::OrderWatch {
        &self.order_watch
    }

    /// A transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later can
    /// fail with SQLITE_BUSY instead of waiting its turn.
    ///
    /// SQLite: the wait for the pool's one writer connection (held meanwhile by the batching
    /// writer, perhaps waiting for a lock held by another process) and the wait for the lock
    /// are one wait of `db_acquire_timeout_ms`: the connection's busy timeout is what is left.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        if self.backend == Backend::Postgres {
            return self.pool.begin().await;
        }
        let started = std::time::Instant::now();
        let mut conn = self.pool.acquire().await?;
        let left = millis(self.write_wait.saturating_sub(started.elapsed()));
        if self.writer_busy_ms.load(Ordering::Relaxed).abs_diff(left) > BUSY_TOLERANCE_MS {
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {left}")))
                .execute(&mut *conn)
                .await?;
            self.writer_busy_ms.store(left, Ordering::Relaxed);
        }
        sqlx::Transaction::begin(
            conn,
            Some(sqlx::SqlSafeStr::into_sql_str("BEGIN IMMEDIATE")),
        )
        .await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
    }

    /// Readiness: can this instance take a payment now? PostgreSQL: a query answers. SQLite:
    /// a read answers and the write lock can be taken (a file locked by another process
    /// leaves reads working, but no payment could settle). Bounded by `within` whatever the
    /// database does; `Err(None)` when that bound ran out.
    pub async fn ready(&self, within: Duration) -> Result<(), Option<sqlx::Error>> {
        let check = async {
            self.ping().await?;
            if self.backend == Backend::Sqlite {
                let tx = self.begin_write().await?;
                tx.rollback().await?;
            }
            Ok::<(), sqlx::Error>(())
        };
        match tokio::time::timeout(within, check).await {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        }
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

/// A value bound to a statement of [`Db::write_all`], on either path.
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

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        v.map_or(Value::NullInt, Value::Int)
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::NullText | Value::NullInt => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// A write statement and its `$1`… values.
pub type Statement = (&'static str, Vec<Value>);

/// Runs `statements` in order on `ex`; answers the rows each changed.
async fn execute_all(
    ex: &mut exec::Exec<'_>,
    statements: &[Statement],
) -> Result<Vec<u64>, sqlx::Error> {
    let mut changed = Vec::with_capacity(statements.len());
    for (sql, values) in statements {
        changed.push(ex.execute(sql, values).await?);
    }
    Ok(changed)
}

/// A row of either read path, by column name: sqlx's `AnyRow` or rusqlite's `Row` (the
/// inline readers and the batching writer), so one decoder serves both.
pub trait Columns {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>;
}

impl Columns for sqlx::any::AnyRow {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        sqlx::Row::try_get(self, name)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn column<T>(&self, name: &str) -> Result<T, sqlx::Error>
    where
        T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.get(name).map_err(writer::to_sqlx)
    }
}

/// True when `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
