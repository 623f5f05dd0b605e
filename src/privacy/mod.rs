//! Privacy (DESIGN.md §1, §10; issue 11): account deletions carried out within two working
//! days ([`erasures`]: [`request`], [`carry_out`], the `erasure` job [`run_due`]; what one
//! does: [`erase`]), the pseudonym that replaces an erased employer id
//! ([`crate::domain::pseudonym`], its file: [`key`]), and retention ([`retention`]).
//!
//! An erasure replaces the employer id everywhere paygate holds it by its pseudonym (it still
//! parses as an [`crate::domain::EmployerId`], so every typed path keeps working). The
//! accounting (amounts, order numbers, provider transaction ids, refunds, reconciliation rows)
//! is not touched. Every statement is in `store/` (`erasures`, `erased_employers`, `erasure`,
//! `retention`).

pub mod deps;
pub mod erase;
pub mod erasures;
pub mod key;
pub mod retention;
pub mod workdays;

pub use deps::{ErasureDeps, SettlementTail};
pub use erase::Erased;
pub use erasures::{ErasurePass, PrivacyError, carry_out, pseudonym_of, request, run_due};
pub use retention::{RetentionDeps, RetentionReport};

pub use crate::domain::ids::PSEUDONYM_PREFIX;
pub use crate::domain::pseudonym::ACCOUNT_DELETED;
pub use crate::domain::{ErasureRow, ErasureStatus, PseudonymKey};
pub use crate::store::erased_employers::is_erased;
/// How `Idempotency-Key`s are stored (moved to `store`; this path is kept for its callers).
pub use crate::store::idempotency_keys;

// `refund_if_erased` below moves to the settlement tail (issue 18 item 4); until then it keeps
// its imports here.
use crate::app::AppState;
use crate::domain::OrderNo;
use crate::store::erased_employers::OWED;
use crate::store::orders;

/// A payment that reached an erased account (settled under its pseudonym, nothing granted)
/// goes back in full through the refund path, reason `account_deleted`. True when a refund
/// was started now; anything else (not erased, nothing left to refund, a refund already in
/// flight, the provider not answering yet) is logged and left to the next `erasure` pass.
pub async fn refund_if_erased(state: &AppState, order_no: &OrderNo) -> bool {
    // A read of what has committed (every settled callback asks, almost always for nothing):
    // on the reader, so it never queues for the writer. The refund path guards its own writes.
    let owed: Result<i64, sqlx::Error> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM payment_order o WHERE o.order_no = $1 AND {OWED}"
    )))
    .bind(order_no.as_str())
    .fetch_one(state.db.reader())
    .await;
    let order = match owed {
        Ok(0) => return false,
        Ok(_) => orders::get(state.db.pool(), order_no).await,
        Err(e) => Err(e),
    };
    let order = match order {
        Ok(Some(order)) => order,
        Ok(None) => return false,
        Err(e) => {
            tracing::error!(%order_no, error = %e, "reading an order for an erased-account refund");
            return false;
        }
    };
    let started = crate::refunds::start(
        state,
        order_no,
        order.refundable(),
        Some(ACCOUNT_DELETED.to_owned()),
        None,
        |_| String::new(),
    )
    .await;
    match started {
        Ok(refund) => {
            tracing::info!(%order_no, refund_id = %refund.refund_id, "payment for an erased account refunded");
            true
        }
        Err(e) => {
            tracing::warn!(%order_no, error = %crate::error::chain(&e), "refund for an erased account not started; the erasure job retries");
            false
        }
    }
}
