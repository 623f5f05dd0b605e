//! Retention's deletes (DESIGN.md §10 `retention`): each one counts what it would delete on a
//! dry run, or deletes and says how many rows went. What is old enough is
//! `privacy::retention`'s to decide.

use chrono::{DateTime, Utc};
use sqlx::AnyPool;

use super::Tx;
use super::orders::corrupt;
use crate::clock::to_millis as millis;

/// Count (dry run) or change: how many rows either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    DryRun,
    Apply,
}

/// One delete: the rows it takes (`FROM … WHERE …` with one bound value `$1`) and the
/// statement that removes them.
struct Delete {
    from_where: &'static str,
    change: &'static str,
}

const IDEMPOTENCY: Delete = Delete {
    from_where: "FROM idempotency WHERE created_at < $1",
    change: "DELETE FROM idempotency WHERE created_at < $1",
};

const EVENTS: Delete = Delete {
    from_where: "FROM outbox_event WHERE event_id <= $1",
    change: "DELETE FROM outbox_event WHERE event_id <= $1",
};

const RESUME_IDS: Delete = Delete {
    from_where: "FROM entitlement_audit WHERE resume_id IS NOT NULL AND created_at < $1",
    change: "UPDATE entitlement_audit SET resume_id = NULL WHERE resume_id IS NOT NULL AND created_at < $1",
};

const RESUME_ACCESS: Delete = Delete {
    from_where: "FROM resume_access WHERE created_at < $1 AND entitlement_id IN
         (SELECT entitlement_id FROM entitlement WHERE status <> 'active')",
    change: "DELETE FROM resume_access WHERE created_at < $1 AND entitlement_id IN
         (SELECT entitlement_id FROM entitlement WHERE status <> 'active')",
};

async fn run(tx: &mut Tx, mode: Mode, delete: &Delete, bound: i64) -> Result<u64, sqlx::Error> {
    match mode {
        Mode::DryRun => {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) {}",
                delete.from_where
            )))
            .bind(bound)
            .fetch_one(&mut **tx)
            .await?;
            u64::try_from(n).map_err(|e| corrupt("COUNT(*)", e))
        }
        Mode::Apply => Ok(sqlx::query(delete.change)
            .bind(bound)
            .execute(&mut **tx)
            .await?
            .rows_affected()),
    }
}

/// Stored idempotent answers created before `cutoff` (the key may then be used again).
pub async fn idempotency_before(
    tx: &mut Tx,
    mode: Mode,
    cutoff: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    run(tx, mode, &IDEMPOTENCY, millis(cutoff)).await
}

/// Outbox events up to and including `through`.
pub async fn events_through(tx: &mut Tx, mode: Mode, through: i64) -> Result<u64, sqlx::Error> {
    run(tx, mode, &EVENTS, through).await
}

/// The résumé ids of access-check audit rows written before `cutoff` (the rows stay).
pub async fn resume_ids_before(
    tx: &mut Tx,
    mode: Mode,
    cutoff: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    run(tx, mode, &RESUME_IDS, millis(cutoff)).await
}

/// "Already opened" rows written before `cutoff` of entitlements no longer active.
pub async fn resume_access_before(
    tx: &mut Tx,
    mode: Mode,
    cutoff: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    run(tx, mode, &RESUME_ACCESS, millis(cutoff)).await
}

/// What decides how far the feed may be pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedBounds {
    /// The first event that must stay: created at or after the cutoff, or (when `pushed`) not
    /// yet delivered. None: no event must.
    pub first_kept: Option<i64>,
    /// The newest event. None: the outbox is empty.
    pub last: Option<i64>,
    /// Every event id up to this one was deleted before.
    pub pruned_through: i64,
}

/// [`FeedBounds`] at `cutoff`; `pushed`: events go to a push target, so an undelivered one stays
/// whatever its age.
pub async fn feed_bounds(
    tx: &mut Tx,
    cutoff: DateTime<Utc>,
    pushed: bool,
) -> Result<FeedBounds, sqlx::Error> {
    let first_kept: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(event_id) FROM outbox_event
         WHERE created_at >= $1 OR ($2 = 1 AND delivered_at IS NULL)",
    )
    .bind(millis(cutoff))
    .bind(i64::from(pushed))
    .fetch_one(&mut **tx)
    .await?;
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(event_id) FROM outbox_event")
        .fetch_one(&mut **tx)
        .await?;
    let pruned_through = pruned_through(&mut **tx).await?;
    Ok(FeedBounds {
        first_kept,
        last,
        pruned_through,
    })
}

async fn pruned_through<'e, E>(exec: E) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query_scalar("SELECT value FROM event_counter WHERE name = 'outbox_pruned_through'")
        .fetch_one(exec)
        .await
}

/// Records that every event id up to `through` is gone.
pub async fn set_pruned_through(tx: &mut Tx, through: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE event_counter SET value = $1 WHERE name = 'outbox_pruned_through'")
        .bind(through)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Where the feed starts: every event id up to this one was deleted by retention.
pub async fn feed_starts_after(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    pruned_through(pool).await
}
