//! Moves of an order that several paths share: the cancel endpoint, the active query and the
//! expiry job close orders and settle what a provider reports through these, so each move is
//! written once.

use chrono::{DateTime, Utc};

use crate::clock::to_millis;
use crate::domain::OrderNo;
use crate::settle::{self, PaidTrade, SettleError, Settled, Source};
use crate::store::{Db, events, orders};

/// Why an order was closed, as the `order.closed` event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The checkout flow cancelled it.
    Cancelled,
    /// Its time ran out.
    Expired,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Cancelled => "cancelled",
            CloseReason::Expired => "expired",
        }
    }
}

/// pending → closed, with its `order.closed` event, in one transaction. False when the order
/// was no longer pending (paid or closed meanwhile): nothing is written then.
pub async fn close_locally(
    db: &Db,
    order_no: &OrderNo,
    reason: CloseReason,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let now_ms = to_millis(now);
    let mut tx = db.begin_write().await?;
    let closed = orders::mark_closed(&mut tx, order_no.as_str(), now_ms).await?;
    if closed {
        let data = serde_json::json!({"order_no": order_no, "reason": reason.as_str()});
        events::append(
            &mut tx,
            "order.closed",
            Some(order_no.as_str()),
            &data,
            now_ms,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(closed)
}

/// Settles a payment a provider's (verified) query answer reports: the same exactly-once path
/// as a notification.
pub async fn settle_queried(
    db: &Db,
    trade: &PaidTrade,
    now: DateTime<Utc>,
) -> Result<Settled, SettleError> {
    settle::settle(db, trade, Source::Query, now).await
}
