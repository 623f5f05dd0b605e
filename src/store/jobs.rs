//! The job lease (DESIGN.md §10): a row per job with its holder, the holder's expiry, a fencing
//! counter, the last slot taken and when a run of the job last succeeded. One conditional
//! upsert takes a slot, on both backends, so however many instances fire at once, each slot of
//! each job runs on one of them.

use chrono::{DateTime, Utc};
use sqlx::AnyPool;

use super::db::Db;
use super::exec::Exec;
use super::sql::{Columns, Statement, opt_time_of};

/// A slot this instance took: run it, then [`finish`] it with the same fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub slot: i64,
    pub fence: i64,
}

/// Takes `slot` of `job` for `holder` when no earlier-or-equal slot was taken and the lease is
/// free (expired, or already ours). `None`: another instance has it, or it already ran.
pub async fn take(
    db: &Db,
    job: &str,
    holder: &str,
    slot: i64,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Option<Taken>, sqlx::Error> {
    let (job, holder) = (job.to_owned(), holder.to_owned());
    db.transaction(move |ex| {
        Box::pin(async move { take_in(ex, &job, &holder, slot, now_ms, lease_ms).await })
    })
    .await
}

/// [`take`]'s transaction (a body of `Db::transaction`).
async fn take_in(
    ex: &mut Exec<'_>,
    job: &str,
    holder: &str,
    slot: i64,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Option<Taken>, sqlx::Error> {
    // On PostgreSQL a concurrent taker waits on the row lock and re-checks the WHERE against
    // the committed row, so exactly one of them sees its slot move forward. When the WHERE
    // refuses, nothing was written: the transaction commits nothing.
    let values = [
        job.into(),
        holder.into(),
        (now_ms + lease_ms).into(),
        slot.into(),
        now_ms.into(),
    ];
    let taken = ex
        .optional(
            "INSERT INTO job_lease (job, holder, expires_at, fence, last_slot)
             VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (job) DO UPDATE
                SET holder = excluded.holder, expires_at = excluded.expires_at,
                    fence = job_lease.fence + 1, last_slot = excluded.last_slot
              WHERE job_lease.last_slot < excluded.last_slot
                AND (job_lease.expires_at <= $5 OR job_lease.holder = excluded.holder)
             RETURNING fence",
            &values,
        )
        .await?;
    let Some(row) = taken else {
        return Ok(None);
    };
    let fence: i64 = row.column("fence")?;
    let values = [
        job.into(),
        slot.into(),
        holder.into(),
        fence.into(),
        now_ms.into(),
    ];
    ex.execute(
        "INSERT INTO job_run (job, slot, holder, fence, started_at) VALUES ($1, $2, $3, $4, $5)",
        &values,
    )
    .await?;
    Ok(Some(Taken { slot, fence }))
}

/// How a run ended, with what is stored in `job_run.outcome` (JSON: the pass's counts, or
/// `{"error": …}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    Succeeded(&'a str),
    Failed(&'a str),
}

/// Records the run's outcome and frees the lease, if this fence still holds it (a holder that
/// overran its lease and was superseded frees nothing). A success moves the job's
/// `last_success_at` forward whoever holds the lease now: the run did its work.
pub async fn finish(
    db: &Db,
    job: &str,
    taken: Taken,
    outcome: Outcome<'_>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let text = match outcome {
        Outcome::Succeeded(text) | Outcome::Failed(text) => text,
    };
    let run: Statement = (
        "UPDATE job_run SET finished_at = $1, outcome = $2
         WHERE job = $3 AND slot = $4 AND fence = $5",
        vec![
            now_ms.into(),
            text.into(),
            job.into(),
            taken.slot.into(),
            taken.fence.into(),
        ],
    );
    let lease: Statement = (
        "UPDATE job_lease SET expires_at = $1 WHERE job = $2 AND fence = $3",
        vec![now_ms.into(), job.into(), taken.fence.into()],
    );
    let mut statements = vec![run, lease];
    if let Outcome::Succeeded(_) = outcome {
        statements.push((
            "UPDATE job_lease SET last_success_at = $1
             WHERE job = $2 AND (last_success_at IS NULL OR last_success_at < $1)",
            vec![now_ms.into(), job.into()],
        ));
    }
    db.write_all(statements).await?;
    Ok(())
}

/// One job's latest recorded run.
#[derive(Debug, Clone)]
pub struct JobRuns {
    pub job: String,
    pub latest: RunRecord,
}

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub slot: i64,
    pub holder: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The pass's counts (JSON), or `{"error": …}`; `None` while it runs.
    pub outcome: Option<String>,
}

impl RunRecord {
    /// The run's error, when it failed.
    pub fn error(&self) -> Option<String> {
        let outcome: serde_json::Value = serde_json::from_str(self.outcome.as_deref()?).ok()?;
        outcome.get("error")?.as_str().map(str::to_owned)
    }
}

fn record(r: &impl Columns) -> Result<RunRecord, sqlx::Error> {
    Ok(RunRecord {
        slot: r.column("slot")?,
        holder: r.column("holder")?,
        started_at: super::sql::millis_of("started_at", r.column("started_at")?)?,
        finished_at: super::sql::opt_millis_of("finished_at", r.column("finished_at")?)?,
        outcome: r.column("outcome")?,
    })
}

/// Every job's latest run (the operations page): the lease row names its last slot, taken in
/// the same transaction that wrote the run, so this is one primary-key read per job however
/// long the history (a `MAX(slot)` per job read all of it on PostgreSQL: 44 ms at a week).
pub async fn latest_runs(db: &Db) -> Result<Vec<JobRuns>, sqlx::Error> {
    db.lookup_all(
        "SELECT r.job, r.slot, r.holder, r.started_at, r.finished_at, r.outcome
         FROM job_lease l JOIN job_run r ON r.job = l.job AND r.slot = l.last_slot
         ORDER BY r.job",
        &[],
        |r| {
            Ok(JobRuns {
                job: r.column("job")?,
                latest: record(r)?,
            })
        },
    )
    .await
}

/// A job's lease: who holds (or last held) it and until when.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: String,
    pub holder: String,
    pub expires_at: i64,
    pub fence: i64,
    /// When a run of the job last succeeded, on whichever instance.
    pub last_success_at: Option<i64>,
}

pub async fn leases(db: &Db) -> Result<Vec<Lease>, sqlx::Error> {
    db.lookup_all(
        "SELECT job, holder, expires_at, fence, last_success_at FROM job_lease ORDER BY job",
        &[],
        |r| {
            Ok(Lease {
                job: r.column("job")?,
                holder: r.column("holder")?,
                expires_at: r.column("expires_at")?,
                fence: r.column("fence")?,
                last_success_at: super::sql::opt_millis_of(
                    "last_success_at",
                    r.column("last_success_at")?,
                )?,
            })
        },
    )
    .await
}

/// Each job's lease row: the job's name and when a run of it last succeeded (`None`: never).
/// One row per job, so this reads a handful of rows whatever the history (`/metrics`).
pub async fn last_successes(
    pool: &AnyPool,
) -> Result<Vec<(String, Option<DateTime<Utc>>)>, sqlx::Error> {
    let rows = sqlx::query("SELECT job, last_success_at FROM job_lease ORDER BY job")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let at = opt_time_of("last_success_at", r.column("last_success_at")?)?;
            Ok((r.column("job")?, at))
        })
        .collect()
}
