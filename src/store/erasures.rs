//! The erasure requests (`privacy_erasure`, DESIGN.md §10): recorded `pending` with the
//! employer id, completed with the id removed. Read back as [`ErasureRow`], which never holds
//! the id; only [`employer_of`] reads it, to carry the request out.

use chrono::{DateTime, Utc};
use sqlx::AnyPool;

use super::Tx;
use super::orders::corrupt;
use super::sql::{opt_time_of, time_of};
use crate::clock::to_millis as millis;
use crate::domain::{EmployerId, ErasureId, ErasureRow, ErasureStatus};

const COLUMNS: &str = "erasure_id, status, pseudonym, requested_at, due_by, completed_at, actor";

fn from_row(r: &impl super::Columns) -> Result<ErasureRow, sqlx::Error> {
    let text = |column: &'static str| r.column::<String>(column);
    let (erasure_id, status, pseudonym) =
        (text("erasure_id")?, text("status")?, text("pseudonym")?);
    Ok(ErasureRow {
        erasure_id: ErasureId::parse(&erasure_id)
            .ok_or_else(|| corrupt("erasure_id", &erasure_id))?,
        status: ErasureStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        pseudonym: EmployerId::parse(&pseudonym)
            .ok_or_else(|| corrupt("pseudonym", "not an employer id"))?,
        requested_at: time_of("requested_at", r.column("requested_at")?)?,
        due_by: time_of("due_by", r.column("due_by")?)?,
        completed_at: opt_time_of("completed_at", r.column("completed_at")?)?,
        actor: r
            .column::<Option<String>>("actor")?
            .map(|a| super::sql::parsed("actor", &a, crate::domain::Actor::parse))
            .transpose()?,
    })
}

/// Records a `pending` request for `employer` (`row` says everything else).
pub async fn insert(
    tx: &mut Tx,
    row: &ErasureRow,
    employer: &EmployerId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO privacy_erasure (erasure_id, employer_id, pseudonym, status, requested_at,
             due_by, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.erasure_id.as_str())
    .bind(employer.as_str())
    .bind(row.pseudonym.as_str())
    .bind(row.status.as_str())
    .bind(millis(row.requested_at))
    .bind(millis(row.due_by))
    .bind(row.actor.as_ref().map(ToString::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(
    pool: &AnyPool,
    erasure_id: &ErasureId,
) -> Result<Option<ErasureRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM privacy_erasure WHERE erasure_id = $1"
    )))
    .bind(erasure_id.as_str())
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Whose request it is: `None` for no such request, `Some(None)` once it was carried out (the
/// id is gone from the row then).
pub async fn employer_of(
    pool: &AnyPool,
    erasure_id: &ErasureId,
) -> Result<Option<Option<EmployerId>>, sqlx::Error> {
    let stored: Option<Option<String>> =
        sqlx::query_scalar("SELECT employer_id FROM privacy_erasure WHERE erasure_id = $1")
            .bind(erasure_id.as_str())
            .fetch_optional(pool)
            .await?;
    stored
        .map(|employer| {
            employer
                .map(|e| {
                    EmployerId::parse(&e)
                        .ok_or_else(|| corrupt("employer_id", "not an employer id"))
                })
                .transpose()
        })
        .transpose()
}

/// Up to `limit` pending requests, oldest first.
pub async fn pending(pool: &AnyPool, limit: i64) -> Result<Vec<ErasureId>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT erasure_id FROM privacy_erasure WHERE status = 'pending'
         ORDER BY requested_at, erasure_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    ids.iter()
        .map(|id| ErasureId::parse(id).ok_or_else(|| corrupt("erasure_id", id)))
        .collect()
}

/// How many requests are still pending past their `due_by` at `now`.
pub async fn overdue(pool: &AnyPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM privacy_erasure WHERE status = 'pending' AND due_by < $1",
    )
    .bind(millis(now))
    .fetch_one(pool)
    .await?;
    u64::try_from(n).map_err(|e| corrupt("COUNT(*)", e))
}

/// Every pending request for `employer` completed at `now`, the id removed from them.
pub async fn complete_all_of(
    tx: &mut Tx,
    employer: &EmployerId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE privacy_erasure SET status = 'completed', employer_id = NULL, completed_at = $1
         WHERE employer_id = $2",
    )
    .bind(millis(now))
    .bind(employer.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The newest requests first, at most `limit` (the console's list).
pub async fn recent(db: &super::Db, limit: i64) -> Result<Vec<ErasureRow>, sqlx::Error> {
    db.lookup_all(
        &format!(
            "SELECT {COLUMNS} FROM privacy_erasure ORDER BY requested_at DESC, erasure_id DESC
             LIMIT $1"
        ),
        &[limit.into()],
        |r| from_row(r),
    )
    .await
}

/// How many requests are pending, and how many of those are past their `due_by` at `now`.
pub async fn pending_and_overdue(
    db: &super::Db,
    now: DateTime<Utc>,
) -> Result<(i64, i64), sqlx::Error> {
    db.lookup_optional(
        "SELECT COUNT(*) AS pending,
                COALESCE(SUM(CASE WHEN due_by < $1 THEN 1 ELSE 0 END), 0) AS overdue
         FROM privacy_erasure WHERE status = 'pending'",
        &[millis(now).into()],
        |r| {
            use super::Columns;
            Ok((r.column("pending")?, r.column("overdue")?))
        },
    )
    .await?
    .ok_or(sqlx::Error::RowNotFound)
}
