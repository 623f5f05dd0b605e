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

use crate::clock::Clock;
use crate::config::PrivacyConfig;
use crate::store::Db;
use crate::store::idempotency_keys::IdempotencyKeys;
use crate::store::retention::{self, FeedBounds, Mode};

/// What a retention pass uses of the application.
#[derive(Clone, Copy)]
pub struct RetentionDeps<'a> {
    pub db: &'a Db,
    pub clock: &'a dyn Clock,
    pub config: &'a PrivacyConfig,
    pub idempotency_keys: &'a IdempotencyKeys,
    /// Events go to a push target (`[events] url`): an undelivered one stays whatever its age.
    pub events_pushed: bool,
}

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

/// How far the feed may be pruned: everything before the first event that must stay (all of it
/// when none must), never less than was pruned before.
fn prune_through(b: FeedBounds) -> i64 {
    match (b.first_kept, b.last) {
        (Some(first_kept), _) => first_kept - 1,
        (None, Some(last)) => last,
        (None, None) => b.pruned_through,
    }
    .max(b.pruned_through)
}

/// One retention pass; with `dry_run` nothing is changed and the report says what would go.
pub async fn run(deps: &RetentionDeps<'_>, dry_run: bool) -> Result<RetentionReport, sqlx::Error> {
    let privacy = deps.config;
    let now = deps.clock.now();
    let cutoff = |days: i64| now - Duration::days(days);
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let mut tx = deps.db.begin_write().await?;
    let mut report = RetentionReport {
        dry_run,
        ..RetentionReport::default()
    };
    report.idempotency_deleted =
        retention::idempotency_before(&mut tx, mode, cutoff(privacy.idempotency_days)).await?;

    let bounds =
        retention::feed_bounds(&mut tx, cutoff(privacy.events_days), deps.events_pushed).await?;
    let through = prune_through(bounds);
    report.events_starts_after = through;
    report.events_deleted = retention::events_through(&mut tx, mode, through).await?;
    if mode == Mode::Apply {
        retention::set_pruned_through(&mut tx, through).await?;
    }

    let access_cutoff = cutoff(privacy.access_resume_days);
    report.access_resume_ids_cleared =
        retention::resume_ids_before(&mut tx, mode, access_cutoff).await?;
    report.resume_access_deleted =
        retention::resume_access_before(&mut tx, mode, access_cutoff).await?;

    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
        super::erase::checkpoint(deps.db).await;
        // Rows of Idempotency-Keys stored as text before they were hashed go with their age;
        // once none is left, claims stop looking for them.
        deps.idempotency_keys.refresh(deps.db).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_is_pruned_as_a_prefix_and_never_back() {
        let b = |first_kept, last, pruned_through| FeedBounds {
            first_kept,
            last,
            pruned_through,
        };
        assert_eq!(prune_through(b(Some(10), Some(20), 3)), 9);
        assert_eq!(prune_through(b(None, Some(20), 3)), 20);
        assert_eq!(prune_through(b(None, None, 3)), 3);
        // An event kept below what was pruned before (cannot happen) prunes nothing back.
        assert_eq!(prune_through(b(Some(2), Some(20), 7)), 7);
    }
}
