//! Retention (DESIGN.md §10 `retention`, `[privacy]`): nothing kept longer than its purpose
//! needs. The daily job and `paygate privacy retention [--dry-run]` run [`run`]:
//!
//! - stored idempotency answers older than `idempotency_days` are deleted: the key may then be
//!   used again (a retry that late is a new request);
//! - delivered outbox events older than `events_days` are deleted, as a prefix of the feed
//!   only: every id up to the highest deleted one is gone, every later one is still there, and
//!   `GET /v1/events` says so as `starts_after`. With no push target (`[events] url` unset)
//!   the feed is the delivery, so an event counts as delivered once it is that old;
//! - access-check audit rows older than `access_resume_days` lose the résumé id (the row, its
//!   kind and its quota change stay, so counts do), and the "this résumé was already opened"
//!   rows of entitlements no longer active go with it.

use chrono::Duration;
use serde::Serialize;

use crate::app::AppState;
use crate::clock::to_millis;
use crate::store::Tx;

#[derive(Debug, Default, Clone, Serialize)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub idempotency_deleted: u64,
    pub events_deleted: u64,
    /// Every event id up to this one is gone (0: none ever was).
    pub events_starts_after: i64,
    pub access_resume_ids_cleared: u64,
    pub resume_access_deleted: u64,
}

/// One retention pass; with `dry_run` nothing is changed and the report says what would go.
pub async fn run(state: &AppState, dry_run: bool) -> Result<RetentionReport, sqlx::Error> {
    let privacy = &state.config.privacy;
    let now = state.clock.now();
    let cutoff = |days: i64| to_millis(now - Duration::days(days));
    let (idem_cutoff, events_cutoff, access_cutoff) = (
        cutoff(privacy.idempotency_days),
        cutoff(privacy.events_days),
        cutoff(privacy.access_resume_days),
    );
    let mut tx = state.db.begin_write().await?;
    let mut report = RetentionReport {
        dry_run,
        ..RetentionReport::default()
    };

    report.idempotency_deleted = count_or_do(
        &mut tx,
        dry_run,
        "FROM idempotency WHERE created_at < $1",
        "DELETE FROM idempotency WHERE created_at < $1",
        idem_cutoff,
    )
    .await?;

    // The first event that must stay: young, or (with a push target) not yet delivered.
    // Everything before it goes.
    let keep_from: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(event_id) FROM outbox_event
         WHERE created_at >= $1 OR ($2 = 1 AND delivered_at IS NULL)",
    )
    .bind(events_cutoff)
    .bind(i64::from(state.pusher.is_some()))
    .fetch_one(&mut *tx)
    .await?;
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(event_id) FROM outbox_event")
        .fetch_one(&mut *tx)
        .await?;
    let pruned_before: i64 =
        sqlx::query_scalar("SELECT value FROM event_counter WHERE name = 'outbox_pruned_through'")
            .fetch_one(&mut *tx)
            .await?;
    let through = match (keep_from, last) {
        (Some(first_kept), _) => first_kept - 1,
        (None, Some(last)) => last,
        (None, None) => pruned_before,
    }
    .max(pruned_before);
    report.events_starts_after = through;
    report.events_deleted = count_or_do(
        &mut tx,
        dry_run,
        "FROM outbox_event WHERE event_id <= $1",
        "DELETE FROM outbox_event WHERE event_id <= $1",
        through,
    )
    .await?;
    if !dry_run {
        sqlx::query("UPDATE event_counter SET value = $1 WHERE name = 'outbox_pruned_through'")
            .bind(through)
            .execute(&mut *tx)
            .await?;
    }

    report.access_resume_ids_cleared = count_or_do(
        &mut tx,
        dry_run,
        "FROM entitlement_audit WHERE resume_id IS NOT NULL AND created_at < $1",
        "UPDATE entitlement_audit SET resume_id = NULL WHERE resume_id IS NOT NULL AND created_at < $1",
        access_cutoff,
    )
    .await?;
    report.resume_access_deleted = count_or_do(
        &mut tx,
        dry_run,
        "FROM resume_access WHERE created_at < $1 AND entitlement_id IN
             (SELECT entitlement_id FROM entitlement WHERE status <> 'active')",
        "DELETE FROM resume_access WHERE created_at < $1 AND entitlement_id IN
             (SELECT entitlement_id FROM entitlement WHERE status <> 'active')",
        access_cutoff,
    )
    .await?;

    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        super::erase::checkpoint(state).await;
        // Rows of Idempotency-Keys stored as text before they were hashed go with their age;
        // once none is left, claims stop looking for them.
        state.idempotency_keys.refresh(&state.db).await?;
    }
    tracing::info!(
        dry_run,
        idempotency = report.idempotency_deleted,
        events = report.events_deleted,
        events_starts_after = report.events_starts_after,
        access_resume_ids = report.access_resume_ids_cleared,
        "retention pass"
    );
    Ok(report)
}

/// `SELECT COUNT(*) {from_where}` on a dry run, else `{change}`: how many rows either way.
async fn count_or_do(
    tx: &mut Tx,
    dry_run: bool,
    from_where: &'static str,
    change: &'static str,
    bound: i64,
) -> Result<u64, sqlx::Error> {
    if dry_run {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) {from_where}")))
                .bind(bound)
                .fetch_one(&mut **tx)
                .await?;
        return Ok(u64::try_from(n).unwrap_or(0));
    }
    Ok(sqlx::query(change)
        .bind(bound)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// Where the feed starts: every event id up to this one was deleted by retention.
pub async fn feed_starts_after(pool: &sqlx::AnyPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM event_counter WHERE name = 'outbox_pruned_through'")
        .fetch_one(pool)
        .await
}
