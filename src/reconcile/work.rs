//! A run in progress: its work row, and its bounds with the flag that stops its reading.

use chrono::{DateTime, Utc};

use crate::clock::to_millis;
use crate::config::ReconciliationConfig;
use crate::providers::bounds::{BillLimits, Bounds};
use crate::store::Db;
use crate::store::reconciliations as store;

/// A run still marked working this long after it started died with its process: the next run
/// sweeps what it left. A run of a day's bill takes seconds to minutes.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Dropped before [`Work::finish`] or [`Work::abandon`] (the request that runs it was cancelled
/// or timed out), it stops the reading thread and drops the run's rows at once, rather than
/// leaving them to the sweep 6 hours later.
pub(super) struct Work {
    db: Db,
    pub(super) id: String,
    pub(super) bounds: Bounds,
    open: bool,
}

impl Work {
    /// Sweeps what runs that died long ago left behind, then writes this run's work row.
    pub(super) async fn begin(
        db: &Db,
        config: &ReconciliationConfig,
        started: DateTime<Utc>,
    ) -> Result<Work, sqlx::Error> {
        let cutoff = to_millis(started) - ABANDONED_AFTER.as_millis() as i64;
        match store::sweep_abandoned(db, cutoff).await {
            Ok(0) => {}
            Ok(swept) => tracing::warn!(
                swept,
                "swept the leftovers of reconciliations that never finished"
            ),
            Err(e) => tracing::warn!(error = %e, "sweeping unfinished reconciliations failed"),
        }
        let id = crate::domain::ids::prefixed_id("rec");
        store::begin_work(db, &id, to_millis(started)).await?;
        let limits = BillLimits::from_max_bill_bytes(config.max_bill_bytes);
        Ok(Work {
            db: db.clone(),
            id,
            bounds: Bounds::new(limits),
            open: true,
        })
    }

    /// The run failed: what it wrote goes with it, before the caller hears of the failure.
    pub(super) async fn abandon(mut self) {
        self.open = false;
        self.bounds.cancel.cancel();
        if let Err(e) = store::abandon(&self.db, &self.id).await {
            tracing::warn!(error = %e, "dropping a failed reconciliation's rows failed");
        }
    }

    /// The run's result is stored (its work row went in the same transaction).
    pub(super) fn finish(mut self) {
        self.open = false;
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // Whatever happened, no reading thread of this run goes on.
        self.bounds.cancel.cancel();
        if !self.open {
            return;
        }
        let (db, id) = (self.db.clone(), std::mem::take(&mut self.id));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (the process is ending): the next run's sweep deletes them.
            return;
        };
        runtime.spawn(async move {
            match store::abandon(&db, &id).await {
                Ok(()) => tracing::info!(
                    reconciliation_id = id,
                    "a cancelled reconciliation's rows were dropped"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping a cancelled reconciliation's rows failed")
                }
            }
        });
    }
}
