//! Moves of an order that several paths share: the cancel use case, the expiry job and the
//! erasure close orders through these, so each move is written once. What the provider
//! reports is settled by the settlement tail ([`crate::settlement`]).

use chrono::{DateTime, Utc};

use crate::clock::to_millis;
use crate::domain::OrderNo;
use crate::providers::{PaymentProvider, ProviderError};
use crate::settlement::{self, Deps, Seen, SeenError};
use crate::store::{Db, events, orders};

/// Why an order was closed, as the `order.closed` event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The checkout flow cancelled it.
    Cancelled,
    /// Its time ran out.
    Expired,
    /// The employer's account was deleted (an erasure, DESIGN.md §10).
    AccountDeleted,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Cancelled => "cancelled",
            CloseReason::Expired => "expired",
            CloseReason::AccountDeleted => "account_deleted",
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
    let closed = orders::mark_closed(&mut tx, order_no, now_ms).await?;
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
    if closed {
        db.order_watch().changed(order_no);
    }
    Ok(closed)
}

/// How closing an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Closed here and (unless the provider was unreachable) at the provider.
    Closed,
    /// The buyer had paid: settled instead (late, if the close here came first).
    Paid,
}

/// The query-then-close that cancel and expiry share. Ask first (a paid order is settled, not
/// closed); otherwise close here first, so the order is never shown as payable again, then at
/// the provider. A payment that slipped in between (the provider refuses the close) is
/// settled; the order being closed by then, it is flagged `payment.late`. A provider that
/// cannot be reached for the close leaves the order closed here: the provider refuses payment
/// after the `time_expire` it was given, and a payment reported anyway is honoured as late.
pub async fn query_then_close(
    deps: &Deps<'_>,
    provider: &dyn PaymentProvider,
    no: &OrderNo,
    reason: CloseReason,
) -> Result<Closing, SeenError> {
    if let Seen::Settled = settlement::query_and_settle(deps, provider, no).await? {
        return Ok(Closing::Paid);
    }
    if !close_locally(deps.db, no, reason, deps.clock.now()).await? {
        // Paid or closed meanwhile (a notification won the race).
        let order = orders::get(deps.db.pool(), no).await?;
        return Ok(match order.map(|o| o.status.is_settled()) {
            Some(true) => Closing::Paid,
            _ => Closing::Closed,
        });
    }
    match provider.close(no).await {
        Ok(()) => Ok(Closing::Closed),
        Err(ProviderError::Rejected(e)) => {
            // Typically "already paid": the buyer paid between the query and the close.
            tracing::warn!(order_no = %no, error = format!("{e:#}"), "the provider refused the close; asking again");
            match settlement::query_and_settle(deps, provider, no).await {
                Ok(Seen::Settled) => Ok(Closing::Paid),
                _ => Ok(Closing::Closed),
            }
        }
        Err(ProviderError::Unavailable(e)) => {
            tracing::warn!(order_no = %no, error = format!("{e:#}"), "provider unavailable for a close; closed here");
            Ok(Closing::Closed)
        }
    }
}
