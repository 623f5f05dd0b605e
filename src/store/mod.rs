//! Storage: sqlx `Any` over SQLite (embedded default) or PostgreSQL (production), as [`Db`]: a
//! writer and a reader.
//!
//! Both backends run the same SQL: `$n` placeholders, `ON CONFLICT`, `RETURNING`, integer
//! fen and epoch-millisecond times. Uniqueness and conditional updates do the concurrency
//! work; the in-process writer queue of SQLite only orders writes, it guards nothing.

pub mod events;
pub mod idempotency;
pub mod jobs;
pub mod orders;
pub mod reconciliations;
pub mod refunds;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

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
    /// Committed status changes of orders, announced to this instance's waiters (`wait=`).
    order_watch: crate::order_watch::OrderWatch,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLite settings of every connection, writer and readers alike.
async fn sqlite_session(
    conn: &mut sqlx::AnyConnection,
    read_only: bool,
) -> Result<(), sqlx::Error> {
    // WAL keeps readers off the writer's back. busy_timeout still matters for other processes
    // on the same file (the CLI beside `serve`); inside one process the writer is alone.
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    if read_only {
        conn.execute("PRAGMA query_only = ON").await?;
    }
    Ok(())
}

impl Db {
    /// Connects; a missing SQLite file is created (WAL mode, foreign keys on). SQLite gets one
    /// writer connection and `max_connections` readers; PostgreSQL one pool of
    /// `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, sqlx::Error> {
        install_default_drivers();
        let max = max_connections.max(1);
        if !url.starts_with("sqlite:") {
            let pool = AnyPoolOptions::new()
                .max_connections(max)
                .connect(url)
                .await?;
            return Ok(Db {
                reader: pool.clone(),
                pool,
                backend: Backend::Postgres,
                order_watch: Default::default(),
            });
        }
        let url = if url.contains('?') || url.contains(":memory:") {
            url.to_owned()
        } else {
            format!("{url}?mode=rwc")
        };
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| Box::pin(sqlite_session(conn, false)))
            .connect(&url)
            .await?;
        if url.contains(":memory:") {
            // Every connection to :memory: is a database of its own: one connection for all.
            return Ok(Db {
                reader: writer.clone(),
                pool: writer,
                backend: Backend::Sqlite,
                order_watch: Default::default(),
            });
        }
        let reader = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(|conn, _| Box::pin(sqlite_session(conn, true)))
            .connect(&url)
            .await?;
        Ok(Db {
            pool: writer,
            reader,
            backend: Backend::Sqlite,
            order_watch: Default::default(),
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
        self.pool.close().await;
        self.reader.close().await;
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
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
    }
}

/// True when `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
