//! A run's rows: `reconciliation_run` (the result, replacing the date's previous run
//! atomically) and `reconciliation_work` (a run in progress, so what a failed or dead run wrote
//! can be dropped).

use chrono::NaiveDate;
use sqlx::{AnyPool, Row};

use crate::domain::ProviderId;
use crate::store::orders::{corrupt, json_column};
use crate::store::{Db, Tx, events};

/// How a run ended, as stored in `reconciliation_run.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        [RunStatus::Completed, RunStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub reconciliation_id: String,
    pub provider: ProviderId,
    pub bill_date: NaiveDate,
    pub status: RunStatus,
    pub failure: Option<String>,
    /// The run's summary (a JSON object); stored as text in `summary_json`.
    pub summary: serde_json::Value,
    pub started_at: i64,
    pub finished_at: i64,
    /// Who started it; `None` for runs from before actors were recorded.
    pub actor: Option<crate::domain::Actor>,
}

const RUN_COLUMNS: &str = "reconciliation_id, provider, bill_date, status, failure, summary_json, started_at, finished_at, actor";

/// A stored run; what does not decode (provider, date, status, summary JSON) is an error
/// naming its column.
fn run_from(r: &sqlx::any::AnyRow) -> Result<RunRow, sqlx::Error> {
    let provider: String = r.try_get("provider")?;
    let bill_date: String = r.try_get("bill_date")?;
    let status: String = r.try_get("status")?;
    Ok(RunRow {
        reconciliation_id: r.try_get("reconciliation_id")?,
        provider: ProviderId::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        bill_date: crate::domain::parse_date(&bill_date)
            .map_err(|e| corrupt("bill_date", format!("{bill_date:?}: {e}")))?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        failure: r.try_get("failure")?,
        summary: json_column("summary_json", &r.try_get::<String, _>("summary_json")?)?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        actor: r
            .try_get::<Option<String>, _>("actor")?
            .map(|a| crate::store::sql::parsed("actor", &a, crate::domain::Actor::parse))
            .transpose()?,
    })
}

/// The run of (provider, date), if any.
pub async fn of_date<'e, E>(
    exec: E,
    provider: ProviderId,
    bill_date: NaiveDate,
) -> Result<Option<RunRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM reconciliation_run WHERE provider = $1 AND bill_date = $2"
    )))
    .bind(provider.as_str())
    .bind(bill_date.to_string())
    .fetch_optional(exec)
    .await?;
    row.as_ref().map(run_from).transpose()
}

pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<RunRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM reconciliation_run WHERE reconciliation_id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(run_from).transpose()
}

/// Per provider, the latest bill date whose run completed (`/metrics`: a day still open after
/// its last try is an alert). One row per provider and date, so this reads a few hundred rows a
/// year at most.
pub async fn last_completed_days(
    pool: &AnyPool,
) -> Result<Vec<(ProviderId, NaiveDate)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT provider, MAX(bill_date) AS bill_date FROM reconciliation_run
         WHERE status = 'completed' GROUP BY provider",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let provider: String = r.try_get("provider")?;
            let bill_date: String = r.try_get("bill_date")?;
            Ok((
                ProviderId::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
                crate::domain::parse_date(&bill_date)
                    .map_err(|e| corrupt("bill_date", format!("{bill_date:?}: {e}")))?,
            ))
        })
        .collect()
}

/// Runs newest date first, filtered by provider and an inclusive date range (either end open
/// when `None`).
pub async fn list(
    pool: &AnyPool,
    provider: Option<ProviderId>,
    (from, to): (Option<NaiveDate>, Option<NaiveDate>),
    limit: i64,
) -> Result<Vec<RunRow>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM reconciliation_run
         WHERE ($1 IS NULL OR provider = $1) AND bill_date >= $2 AND bill_date <= $3
         ORDER BY bill_date DESC, provider LIMIT $4"
    )))
    .bind(provider.map(|p| p.as_str()))
    .bind(from.map_or_else(|| "0000-01-01".to_owned(), |d| d.to_string()))
    .bind(to.map_or_else(|| "9999-12-31".to_owned(), |d| d.to_string()))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(run_from).collect()
}

/// Stores a completed `run` in place of the date's previous run and its discrepancies, with
/// its `reconciliation.completed` event (`data`, at `finished_at`), in one transaction. The
/// new run's discrepancies were written before, under its id; its work row goes.
pub async fn store_completed(
    db: &Db,
    run: &RunRow,
    data: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    replace(&mut tx, run).await?;
    events::append(
        &mut tx,
        "reconciliation.completed",
        None,
        data,
        run.finished_at,
    )
    .await?;
    tx.commit().await
}

async fn replace(tx: &mut Tx, run: &RunRow) -> Result<(), sqlx::Error> {
    if let Some(old) = of_date(&mut **tx, run.provider, run.bill_date).await? {
        sqlx::query("DELETE FROM reconciliation_discrepancy WHERE reconciliation_id = $1")
            .bind(&old.reconciliation_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM reconciliation_run WHERE reconciliation_id = $1")
            .bind(&old.reconciliation_id)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("DELETE FROM reconciliation_work WHERE reconciliation_id = $1")
        .bind(&run.reconciliation_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO reconciliation_run ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )))
    .bind(&run.reconciliation_id)
    .bind(run.provider.as_str())
    .bind(run.bill_date.to_string())
    .bind(run.status.as_str())
    .bind(&run.failure)
    .bind(run.summary.to_string())
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(run.actor.as_ref().map(ToString::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A run starts: its work row says so until its result is stored or it fails.
pub async fn begin_work(db: &Db, id: &str, started_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO reconciliation_work (reconciliation_id, started_at) VALUES ($1, $2)")
        .bind(id)
        .bind(started_at)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// What a run that did not finish leaves behind: its staged bill rows (under its id and
/// `{id}/payments`), its discrepancy rows (a finished run's are kept: its run row exists) and
/// its work row.
async fn drop_unfinished(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM reconciliation_bill_row WHERE run_key = $1 OR run_key = $2")
        .bind(id)
        .bind(format!("{id}/payments"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM reconciliation_discrepancy WHERE reconciliation_id = $1
           AND NOT EXISTS (SELECT 1 FROM reconciliation_run WHERE reconciliation_id = $1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM reconciliation_work WHERE reconciliation_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// A run that failed: what it wrote goes with it.
pub async fn abandon(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    drop_unfinished(db, id).await
}

/// Runs started before `cutoff` that never finished nor failed (the process died under them):
/// what they left is deleted. Answers how many.
pub async fn sweep_abandoned(db: &Db, cutoff: i64) -> Result<usize, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT reconciliation_id FROM reconciliation_work WHERE started_at < $1",
    )
    .bind(cutoff)
    .fetch_all(db.reader())
    .await?;
    for id in &ids {
        drop_unfinished(db, id).await?;
    }
    Ok(ids.len())
}
