//! The shared re-read of `GET /v1/orders/{no}?wait=N` (`crate::order_watch`): orders settled or
//! closed by another instance wake this instance's waiters.

use super::db::Db;
use crate::order_watch::REREAD_INTERVAL;

/// Orders asked about in one re-read query.
const REREAD_BATCH: usize = 200;

/// Runs until dropped (the server's shutdown aborts it): every [`REREAD_INTERVAL`], asks the
/// database which watched orders left `pending` (settled or closed by another instance) and
/// wakes their waiters. Nothing is read while nobody waits.
pub async fn reread_loop(db: Db) {
    let mut tick = tokio::time::interval(REREAD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let watched = db.order_watch().watched();
        for batch in watched.chunks(REREAD_BATCH) {
            match super::orders::not_pending_among(db.reader(), batch).await {
                Ok(moved) => moved.iter().for_each(|no| db.order_watch().changed(no)),
                Err(e) => {
                    // The waiters still end at their deadline; the next tick tries again.
                    tracing::warn!(error = %e, "re-reading watched orders failed");
                    break;
                }
            }
        }
    }
}
