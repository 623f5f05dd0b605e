//! The settlement tail (DESIGN.md §5, §10; issue 18): the one way every path that learns of a
//! payment — a notification (WeChat, Alipay), the browser's return-check, the active query,
//! the expiry's query-then-close, the refund path's settle-first, the reconciliation heal —
//! settles it and follows up.
//!
//! - [`query_and_settle`] asks the provider about one order and settles what it reports;
//! - [`settle`] settles a verified report and runs the after step;
//! - [`after_settlement`], the after step of a payment settled now: the waiting `?wait=`
//!   pages are woken (`OrderWatch`), and a payment that reached an erased account goes back
//!   at once through the full `account_deleted` refund ([`refund_if_erased`]) instead of
//!   waiting for the erasure sweep. The events were appended to the outbox inside the
//!   settlement's transaction; the push delivers them from there.
//!
//! Order of the use cases: the tail issues refunds (`refunds::issue`); refund reports
//! (`refunds::report`) call the tail to settle a missed payment first. Never the other way.

use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::reasons::ACCOUNT_DELETED;
use crate::domain::{OrderNo, ProviderId, ProviderMissing};
use crate::providers::{PaymentProvider, ProviderError, Registry, TradeStatus};
use crate::refunds::issue as refund_issue;
use crate::refunds::settle::{RefundSettleError, record_inferred_full_refund};
use crate::settle::{self as one_path, PaidTrade, SettleError, Settled, Source};
use crate::store::{Db, orders};

/// What the tail touches: the database, the providers (to ask, and to refund), the clock.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub db: &'a Db,
    pub providers: &'a Registry,
    pub clock: &'a dyn Clock,
}

impl<'a> Deps<'a> {
    /// The provider of `id`, or the one typed error of a provider this instance lacks.
    pub fn provider(&self, id: ProviderId) -> Result<Arc<dyn PaymentProvider>, ProviderMissing> {
        self.refunds().provider(id)
    }

    /// What issuing a refund needs, out of these.
    pub fn refunds(&self) -> refund_issue::Deps<'a> {
        refund_issue::Deps {
            db: self.db,
            providers: self.providers,
            clock: self.clock,
        }
    }
}

/// What the provider said about one order, once what it reported was settled.
#[derive(Debug)]
pub enum Seen {
    /// Paid (or paid and refunded): settled here now, or before.
    Settled,
    NotPaid,
}

#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    #[error("asking the provider failed")]
    Provider(#[from] ProviderError),
    #[error("the provider reports a payment that does not fit the order")]
    DoesNotFit(#[source] SettleError),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// Settles a verified report through the one settlement path, then runs [`after_settlement`].
pub async fn settle(
    deps: &Deps<'_>,
    trade: &PaidTrade,
    source: Source,
) -> Result<Settled, SettleError> {
    let settled = one_path::settle(deps.db, trade, source, deps.clock.now()).await?;
    after_settlement(deps, &trade.order_no, settled).await;
    Ok(settled)
}

/// The after step of every settlement: only a payment settled by this report (`Now`) has
/// one. Its waiters are woken, and an erased account's payment is refunded at once.
pub async fn after_settlement(deps: &Deps<'_>, order_no: &OrderNo, settled: Settled) {
    if let Settled::Now { .. } = settled {
        deps.db.order_watch().changed(order_no);
        refund_if_erased(deps, order_no).await;
    }
}

/// Asks the provider about one order and settles what it reports: a payment through the one
/// settlement path; a trade paid and then fully refunded (both reports missed) as paid, then
/// refunded, so its entitlement follows the money: never closed silently.
pub async fn query_and_settle(
    deps: &Deps<'_>,
    provider: &dyn PaymentProvider,
    no: &OrderNo,
) -> Result<Seen, SeenError> {
    match provider.query(no).await? {
        TradeStatus::Paid(trade) => match settle(deps, &trade, Source::Query).await {
            Ok(_) => Ok(Seen::Settled),
            Err(SettleError::Db(e)) => Err(SeenError::Db(e)),
            Err(e) => Err(SeenError::DoesNotFit(e)),
        },
        TradeStatus::Refunded(trade) => match settle_refunded_trade(deps, &trade).await {
            Ok(()) => Ok(Seen::Settled),
            Err(RefundSettleError::Db(e)) => Err(SeenError::Db(e)),
            Err(e) => {
                tracing::error!(order_no = %no, error = %crate::error::chain(&e), "a refunded trade could not be recorded");
                Ok(Seen::Settled)
            }
        },
        TradeStatus::Pending | TradeStatus::Closed | TradeStatus::Unknown(_) => Ok(Seen::NotPaid),
    }
}

/// A query answer says the trade was paid and then fully refunded, while paygate had it pending
/// (both reports missed): settle the payment, then record the refund of what was left, so the
/// entitlement follows at once; the after step runs once both are recorded.
pub async fn settle_refunded_trade(
    deps: &Deps<'_>,
    trade: &PaidTrade,
) -> Result<(), RefundSettleError> {
    let settled = match one_path::settle(deps.db, trade, Source::Query, deps.clock.now()).await {
        Ok(settled) => settled,
        Err(SettleError::Db(e)) => return Err(e.into()),
        Err(e) => {
            tracing::error!(order_no = %trade.order_no, error = %e, "the payment of a refunded trade does not fit the order");
            return Err(RefundSettleError::OrderNotPaid);
        }
    };
    let recorded = record_inferred_full_refund(deps.db, &trade.order_no, deps.clock.now()).await;
    after_settlement(deps, &trade.order_no, settled).await;
    recorded.map(|_| ())
}

/// The provider reports a refund (or a refunded trade) of an order still pending or closed
/// here: its payment was missed. Ask the provider and settle the payment it reports — without
/// the after step, which the caller runs once the refund report is applied (an erased
/// account's refund is then of what the report left).
pub async fn settle_missed_payment(
    deps: &Deps<'_>,
    order_no: &OrderNo,
) -> Result<Settled, RefundSettleError> {
    let order = orders::get(deps.db.pool(), order_no)
        .await?
        .ok_or(RefundSettleError::UnknownOrder)?;
    let provider = deps.provider(order.provider)?;
    let trade = match provider.query(order_no).await {
        Ok(TradeStatus::Paid(trade) | TradeStatus::Refunded(trade)) => trade,
        Ok(other) => {
            tracing::warn!(%order_no, status = ?other, "a refund was reported for an order the provider does not show paid");
            return Err(RefundSettleError::OrderNotPaid);
        }
        Err(e) => return Err(RefundSettleError::Provider(e)),
    };
    match one_path::settle(deps.db, &trade, Source::Query, deps.clock.now()).await {
        Ok(settled) => Ok(settled),
        Err(SettleError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!(%order_no, error = %e, "the payment of a refunded order does not fit the order");
            Err(RefundSettleError::OrderNotPaid)
        }
    }
}

/// A payment that reached an erased account (settled under its pseudonym, nothing granted)
/// goes back in full through the refund path, reason `account_deleted`. True when a refund
/// was started now; anything else (not erased, nothing left to refund, a refund already in
/// flight, the provider not answering yet) is logged and left to the next `erasure` pass.
pub async fn refund_if_erased(deps: &Deps<'_>, order_no: &OrderNo) -> bool {
    // A read of what has committed (every settlement asks, almost always for nothing): on the
    // reader, so it never queues for the writer. The refund path guards its own writes.
    let owed = crate::store::erased_employers::is_owed(deps.db.reader(), order_no).await;
    let order = match owed {
        Ok(false) => return false,
        Ok(true) => orders::get(deps.db.pool(), order_no).await,
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
    let started = refund_issue::start(
        &deps.refunds(),
        order_no,
        order.refundable(),
        Some(ACCOUNT_DELETED.to_owned()),
        // The erasure's promise (DESIGN.md §5): whichever path learned of the payment.
        &crate::domain::Actor::Job("erasure"),
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
