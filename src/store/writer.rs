//! SQLite's batching writer: the hot write path (a résumé's first access) as closures run on a
//! synchronous connection, the queued ones in one transaction and one commit.
//!
//! Through sqlx every statement of a transaction is a message to the connection's worker
//! thread and a wake-up back; the profile of issue 9 showed five such round trips per first
//! access costing far more than SQLite's own work. Here a caller hands over its whole
//! transaction as a closure. A task takes every closure queued at that moment, runs them on a
//! blocking thread inside one `BEGIN IMMEDIATE … COMMIT`, each inside a savepoint of its own,
//! and only then tells each caller its outcome:
//!
//! - a closure that fails has its savepoint rolled back; the others still commit, and the
//!   failing caller gets its own error;
//! - a commit that fails fails every caller of the batch (nothing of it was written);
//! - no caller hears "done" before the commit that holds its write returned.
//!
//! While a batch runs, the task holds the sqlx writer pool's only connection, so every other
//! write of the process (which all go through that pool) waits its turn in the pool's queue
//! instead of in SQLite's busy handler. [`Writer::close`] runs what is queued and then stops.
//!
//! `db_acquire_timeout_ms` is each caller's whole wait (DESIGN.md §13): its time in the queue,
//! for the pool's connection and for the file's write lock together. Every caller has its own
//! deadline; a batch waits for the lock no longer than its earliest one, refuses (SQLITE_BUSY)
//! the callers whose time is up, and waits on for the others, so a lock held by another
//! process fails each caller after about the setting, not one batch's wait plus its own.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::sqlite::{Role, SqliteError, apply_session, to_sqlx};

/// At most this many callers share one commit; the rest wait for the next.
const MAX_BATCH: usize = 256;

type Outcome<T> = Result<T, sqlx::Error>;

/// A caller's transaction with its answer channel: run on the connection, or refused unrun.
trait Job: Send {
    /// Runs the transaction; answers whether it failed and how to deliver its outcome once the
    /// batch's commit is known.
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran;
    /// Tells the caller why its transaction was not run.
    fn refuse(self: Box<Self>, why: sqlx::Error);
}

struct Ran {
    failed: bool,
    deliver: Deliver,
}

/// Hands a caller its outcome, given the batch's commit error if there was one.
type Deliver = Box<dyn FnOnce(Option<&SqliteError>) + Send>;

struct Typed<T, E, F> {
    f: F,
    done: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Job for Typed<T, E, F>
where
    T: Send + 'static,
    E: From<sqlx::Error> + Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, E> + Send,
{
    fn run(self: Box<Self>, conn: &mut Connection) -> Ran {
        let Typed { f, done } = *self;
        let out = f(conn);
        Ran {
            failed: out.is_err(),
            deliver: Box::new(move |commit| {
                let outcome = match (out, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(e)) => Err(sqlx::Error::from(e.clone()).into()),
                    (Ok(v), None) => Ok(v),
                };
                // A caller that went away (its request was cancelled) needs no answer.
                let _ = done.send(outcome);
            }),
        }
    }

    fn refuse(self: Box<Self>, why: sqlx::Error) {
        let _ = self.done.send(Err(why.into()));
    }
}

/// A caller's transaction and the moment its wait for the write lock is up.
struct Queued {
    job: Box<dyn Job>,
    deadline: Instant,
}

enum Msg {
    Job(Queued),
    Close(oneshot::Sender<()>),
}

/// A busy answer this close to a caller's deadline ends its wait: SQLite's busy handler sleeps
/// in steps and may return a little before the timeout it was given.
const DEADLINE_SLACK: Duration = Duration::from_millis(50);

/// The handle callers queue on. Cloning is cheap; the task stops after [`Writer::close`].
#[derive(Clone, Debug)]
pub struct Writer {
    queue: mpsc::UnboundedSender<Msg>,
    stats: Arc<Stats>,
    /// `db_acquire_timeout_ms`: how long a caller may wait, from queueing to the write lock.
    wait: Duration,
}

/// How many transactions ran in how many commits (the load tool reports the batch size).
#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    transactions: AtomicU64,
}

impl Writer {
    /// Opens the writer's own connection to the SQLite file at `path` (which exists: the sqlx
    /// writer created it) and starts the task on the current runtime. `gate` is the sqlx writer
    /// pool whose one connection is held while a batch runs; `busy_timeout` is each caller's
    /// whole wait (see the module docs).
    pub fn open(path: &Path, gate: AnyPool, busy_timeout: Duration) -> Result<Writer, sqlx::Error> {
        let conn = Connection::open(path).map_err(to_sqlx)?;
        apply_session(&conn, Role::Writer, busy_timeout)?;
        let (queue, rx) = mpsc::unbounded_channel();
        let stats = Arc::<Stats>::default();
        tokio::spawn(run(conn, rx, gate, stats.clone()));
        Ok(Writer {
            queue,
            stats,
            wait: busy_timeout,
        })
    }

    /// Runs `f` as a transaction of its own (a savepoint inside the batch's transaction) and
    /// answers its outcome once it has committed: `f`'s error if it failed (nothing of it is
    /// written), the commit's error if the batch could not commit.
    pub async fn write<T, F>(&self, f: F) -> Outcome<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_with(move |conn| f(conn).map_err(to_sqlx)).await
    }

    /// [`Writer::write`] for a transaction with an error of its own: any `Err` rolls it back,
    /// and the writer's failures (commit, closed, crashed) arrive as `E` too.
    pub async fn write_with<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<sqlx::Error> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T, E>>();
        let job: Box<dyn Job> = Box::new(Typed { f, done });
        let deadline = Instant::now() + self.wait;
        self.queue
            .send(Msg::Job(Queued { job, deadline }))
            .map_err(|_| sqlx::Error::PoolClosed)?;
        // The task dropped the job without an answer: it panicked or the runtime stopped.
        answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }

    /// Batches committed so far, and the transactions they held.
    pub fn commits(&self) -> (u64, u64) {
        (
            self.stats.commits.load(Ordering::Relaxed),
            self.stats.transactions.load(Ordering::Relaxed),
        )
    }

    /// Runs everything queued before this call, then stops; later writes answer `PoolClosed`.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Msg::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

async fn run(
    conn: Connection,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    gate: AnyPool,
    stats: Arc<Stats>,
) {
    let mut conn = Some(conn);
    while let Some(first) = rx.recv().await {
        let mut jobs = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => jobs.push(job),
                Msg::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if jobs.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !jobs.is_empty() {
            let Some(c) = conn.take() else { break };
            match run_jobs(c, jobs, &gate, &stats).await {
                Some(c) => conn = Some(c),
                None => break,
            }
        }
        if let Some(done) = close {
            let _ = done.send(());
            break;
        }
    }
    // Closed: whatever was queued after the close is refused, not dropped unanswered.
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Job(q) => q.job.refuse(sqlx::Error::PoolClosed),
            Msg::Close(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Runs one batch of `jobs` on `conn` while holding `gate`'s connection; answers the
/// connection back, or None when it was lost (the writer stops).
async fn run_jobs(
    c: Connection,
    jobs: Vec<Queued>,
    gate: &AnyPool,
    stats: &Arc<Stats>,
) -> Option<Connection> {
    // Holding the sqlx writer's connection keeps the process's other writes out of SQLite's
    // write lock (and its busy handler) while this batch has it. Waited for no longer than the
    // last caller's deadline.
    let last = jobs
        .iter()
        .map(|q| q.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    let acquired = match tokio::time::timeout_at(last.into(), gate.acquire()).await {
        Ok(acquired) => acquired,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    };
    let held = match acquired {
        Ok(held) => held,
        Err(e) => {
            let failed = SqliteError::unavailable(&e);
            for q in jobs {
                q.job.refuse(failed.clone().into());
            }
            return Some(c);
        }
    };
    let stats = stats.clone();
    let ran = tokio::task::spawn_blocking(move || {
        let mut c = c;
        run_batch(&mut c, jobs, &stats);
        c
    })
    .await;
    drop(held);
    match ran {
        Ok(c) => Some(c),
        // A panic outside the jobs (they are caught one by one): the connection is gone with
        // it; every later write answers PoolClosed.
        Err(e) => {
            tracing::error!(error = %e, "the SQLite writer stopped");
            None
        }
    }
}

/// Takes the write lock for `jobs`, each waiting no longer than its deadline: answers the jobs
/// still to run (none: every one was refused).
fn begin(conn: &mut Connection, mut jobs: Vec<Queued>) -> Vec<Box<dyn Job>> {
    loop {
        let Some(earliest) = jobs.iter().map(|q| q.deadline).min() else {
            return Vec::new();
        };
        // A caller whose time is already up still gets the lock if it is free at once.
        let wait = earliest.saturating_duration_since(Instant::now());
        let begun = conn
            .busy_timeout(wait)
            .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"));
        let e = match begun {
            Ok(()) => return jobs.into_iter().map(|q| q.job).collect(),
            Err(e) => SqliteError::from(&e),
        };
        let busy = e.is_busy();
        let now = Instant::now() + DEADLINE_SLACK;
        let (done, waiting): (Vec<Queued>, Vec<Queued>) =
            jobs.into_iter().partition(|q| !busy || q.deadline <= now);
        for q in done {
            q.job.refuse(e.clone().into());
        }
        jobs = waiting;
    }
}

/// One transaction for all `jobs`, each in a savepoint; outcomes delivered after the commit.
fn run_batch(conn: &mut Connection, jobs: Vec<Queued>, stats: &Stats) {
    let jobs = begin(conn, jobs);
    if jobs.is_empty() {
        return;
    }
    let mut ran = Vec::with_capacity(jobs.len());
    let mut broken: Option<SqliteError> = None;
    for job in jobs {
        if let Some(e) = &broken {
            job.refuse(e.clone().into());
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            let e = SqliteError::from(&e);
            job.refuse(e.clone().into());
            broken = Some(e);
            continue;
        }
        // A panicking closure is a failed one: its savepoint is rolled back, its caller hears
        // "crashed" (its answer channel is dropped), the batch goes on.
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(conn))).ok();
        let failed = r.as_ref().is_none_or(|r| r.failed);
        let end = if failed {
            "ROLLBACK TO job; RELEASE job"
        } else {
            "RELEASE job"
        };
        if let Err(e) = conn.execute_batch(end) {
            broken = Some(SqliteError::from(&e));
        }
        ran.extend(r);
    }
    let commit = match broken {
        Some(e) => Err(e),
        None => conn
            .execute_batch("COMMIT")
            .map_err(|e| SqliteError::from(&e)),
    };
    if commit.is_err() && !conn.is_autocommit() {
        // Nothing of the batch may stay half-written; the next batch begins clean.
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back a failed batch");
        }
    }
    if commit.is_ok() {
        let committed = ran.iter().filter(|r| !r.failed).count() as u64;
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.transactions.fetch_add(committed, Ordering::Relaxed);
        crate::telemetry::sqlite_batch_committed(committed);
    }
    let commit = commit.err();
    for r in ran {
        (r.deliver)(commit.as_ref());
    }
}
