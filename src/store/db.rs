//! [`Db`]: where writes go and where reads go, and the one way each kind of work runs on
//! either backend: [`Db::transaction`] (a transaction body over [`Exec`]: the batching writer
//! on a SQLite file, a sqlx transaction elsewhere) and [`Db::lookup_optional`] /
//! [`Db::lookup_all`] (a read by key: inline on a SQLite file, else the pooled reader; one
//! statement, its values bound once, one decoder).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Connection};

use super::exec::{self, Exec};
use super::sql::{Found, Statement, Tx, Value, params, query};
use super::sqlite::{self, Role, prepare, to_sqlx};
use super::{inline, writer};

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
    inline: Option<Arc<inline::Readers>>,
    /// Committed status changes of orders, announced to this instance's waiters (`wait=`).
    order_watch: crate::order_watch::OrderWatch,
    /// SQLite: `db_acquire_timeout_ms`, the whole wait of a write for the pool's connection and
    /// the file's write lock together, and the busy timeout the writer connection has now.
    write_wait: Duration,
    writer_busy_ms: Arc<AtomicU64>,
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
        if url.starts_with("sqlite:") {
            connect_sqlite(url, max, acquire_timeout).await
        } else {
            connect_postgres(url, max, acquire_timeout).await
        }
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

    /// THE transaction runner: `body` runs as one transaction, on SQLite (a file) as a closure
    /// of the batching writer (its commit shared with whatever is queued beside it, see
    /// [`writer`]), elsewhere as a sqlx transaction from [`Db::begin_write`]. Any `Err` rolls
    /// all of it back. `body` awaits nothing but its executor: on the batching writer it is
    /// polled once ([`exec::ready`]), so every body written for this runner is run on both
    /// backends by `tests/transactions.rs`.
    pub async fn transaction<T, E, F>(&self, body: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: for<'c, 'x> FnOnce(&'c mut Exec<'x>) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
    {
        if let Some(writer) = &self.batch_writer {
            return writer
                .write_with(move |conn| exec::ready(body(&mut Exec::Sqlite(conn))))
                .await;
        }
        let mut tx = self.begin_write().await?;
        let out = body(&mut Exec::Sqlx(&mut tx)).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Write statements that must commit together (or one on its own), answering the rows each
    /// changed, through [`Db::transaction`].
    pub async fn write_all(&self, statements: Vec<Statement>) -> Result<Vec<u64>, sqlx::Error> {
        if self.batch_writer.is_none()
            && let [(sql, values)] = statements.as_slice()
        {
            // One statement is its own transaction: no BEGIN and COMMIT round trips around it.
            let done = query(sql, values).execute(&self.pool).await?;
            return Ok(vec![done.rows_affected()]);
        }
        self.transaction(move |ex| Box::pin(async move { execute_all(ex, &statements).await }))
            .await
    }

    /// A read-only lookup by key, `sql` with `$1`… bound to `values`: its first row decoded
    /// by `decode`, if any. On a SQLite file it runs inline, on this thread (see [`inline`]);
    /// on PostgreSQL, or when SQLite answered busy, on the reader pool. One statement, bound
    /// once, one decoder: both paths read the same thing.
    pub async fn lookup_optional<T>(
        &self,
        sql: &str,
        values: &[Value],
        decode: impl Fn(&Found<'_>) -> Result<T, sqlx::Error>,
    ) -> Result<Option<T>, sqlx::Error> {
        Ok(self
            .lookup(sql, values, true, decode)
            .await?
            .into_iter()
            .next())
    }

    /// [`Db::lookup_optional`] answering every row (a lookup by key with a few rows: an
    /// order's refunds).
    pub async fn lookup_all<T>(
        &self,
        sql: &str,
        values: &[Value],
        decode: impl Fn(&Found<'_>) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        self.lookup(sql, values, false, decode).await
    }

    async fn lookup<T>(
        &self,
        sql: &str,
        values: &[Value],
        first_only: bool,
        decode: impl Fn(&Found<'_>) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let decode = &decode;
        self.inline_or_pooled(
            |conn| {
                let mut stmt = prepare(conn, sql, &params(values)).map_err(to_sqlx)?;
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(to_sqlx)? {
                    out.push(decode(&Found::Inline(row))?);
                    if first_only {
                        break;
                    }
                }
                Ok(out)
            },
            |pool| async move {
                let q = query(sql, values);
                let rows = if first_only {
                    q.fetch_optional(pool).await?.into_iter().collect()
                } else {
                    q.fetch_all(pool).await?
                };
                rows.iter().map(|r| decode(&Found::Pooled(r))).collect()
            },
        )
        .await
    }

    /// `inline` on this thread where there are inline readers (see [`inline`]); `pooled` on
    /// the reader pool on PostgreSQL, or when SQLite answered busy.
    pub(super) async fn inline_or_pooled<'a, T, Fut>(
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

/// PostgreSQL: one pool for writes and reads.
async fn connect_postgres(
    url: &str,
    max: u32,
    acquire_timeout: Duration,
) -> Result<Db, sqlx::Error> {
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                // A connection used within the last seconds is live; only one that sat idle is
                // pinged before use (a restarted server has cut it). Pinging every acquire
                // doubled the round trips of a one-query read.
                if meta.idle_for > IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect(url)
        .await?;
    Ok(Db {
        reader: pool.clone(),
        pool,
        backend: Backend::Postgres,
        batch_writer: None,
        inline: None,
        order_watch: Default::default(),
        write_wait: acquire_timeout,
        writer_busy_ms: Default::default(),
    })
}

/// SQLite: one writer connection, a pool of readers, and on a file the batching writer and
/// the inline readers; every connection with the settings of [`sqlite::session`].
async fn connect_sqlite(url: &str, max: u32, acquire_timeout: Duration) -> Result<Db, sqlx::Error> {
    let url = if url.contains('?') || url.contains(":memory:") {
        url.to_owned()
    } else {
        format!("{url}?mode=rwc")
    };
    let writer_busy_ms = Arc::new(AtomicU64::new(0));
    let busy_set = writer_busy_ms.clone();
    let writer = sqlite_pool(&url, 1, acquire_timeout, Role::Writer, move || {
        busy_set.store(millis(acquire_timeout), Ordering::Relaxed);
    })
    .await?;
    let mut db = Db {
        reader: writer.clone(),
        pool: writer.clone(),
        backend: Backend::Sqlite,
        batch_writer: None,
        inline: None,
        order_watch: Default::default(),
        write_wait: acquire_timeout,
        writer_busy_ms,
    };
    if url.contains(":memory:") {
        // Every connection to :memory: is a database of its own: one connection for all.
        return Ok(db);
    }
    db.reader = sqlite_pool(&url, max, acquire_timeout, Role::Reader, || ()).await?;
    let file = SqliteConnectOptions::from_str(&url)?
        .get_filename()
        .to_owned();
    db.batch_writer = Some(writer::Writer::open(&file, writer, acquire_timeout)?);
    db.inline = Some(Arc::new(inline::Readers::open(&file)?));
    Ok(db)
}

/// A pool of SQLite connections of `role`, each set up by [`sqlite::session`]; `connected`
/// runs after each is. No ping before handing one out: it is a file in this process, not a
/// socket that can die idle, and the ping is one more round trip to the connection's worker
/// thread on every query.
async fn sqlite_pool(
    url: &str,
    max: u32,
    busy_timeout: Duration,
    role: Role,
    connected: impl Fn() + Send + Sync + 'static,
) -> Result<AnyPool, sqlx::Error> {
    let connected = Arc::new(connected);
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(busy_timeout)
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            let connected = connected.clone();
            Box::pin(async move {
                for pragma in sqlite::session(role, busy_timeout) {
                    sqlx::query(sqlx::AssertSqlSafe(pragma))
                        .execute(&mut *conn)
                        .await?;
                }
                connected();
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// Runs `statements` in order on `ex`; answers the rows each changed.
async fn execute_all(ex: &mut Exec<'_>, statements: &[Statement]) -> Result<Vec<u64>, sqlx::Error> {
    let mut changed = Vec::with_capacity(statements.len());
    for (sql, values) in statements {
        changed.push(ex.execute(sql, values).await?);
    }
    Ok(changed)
}
