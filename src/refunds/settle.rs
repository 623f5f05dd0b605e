//! The one refund settlement path, the twin of [`crate::settle`]: a verified report that a
//! refund went back (or will not) becomes, in ONE transaction, the refund's final state, the
//! order's `partially_refunded` / `refunded` state, the entitlements that follow the money
//! (DESIGN.md §5) and the outbox events — exactly once, however often, late or concurrently it
//! is reported (a notification, the refund job's query, the create answer itself).

use chrono::{DateTime, Utc};

use crate::clock::{rfc3339_beijing, to_millis};
use crate::domain::{Fen, OrderNo, OutRefundNo, RefundId, RefundOrigin, RefundStatus};
use crate::entitlements::{self, RefundEffect};
use crate::store::refunds::{self, RefundRow};
use crate::store::{Db, Tx, events, orders};

/// What a provider reports of a refund is defined by the providers layer (it is what an
/// adapter returns); named here as the refund path's callers have always named it.
pub use crate::providers::{RefundFailure, RefundOutcome, RefundReport};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundSettled {
    /// This report moved the refund to its final state.
    Now {
        refund_id: RefundId,
        status: RefundStatus,
    },
    /// Reported before: nothing changed.
    Already,
    /// A failure of a refund paygate never knew: nothing to record.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum RefundSettleError {
    #[error("no such order")]
    UnknownOrder,
    /// The provider reports a refund of an order paygate has not seen paid: settle the payment
    /// first (ask the provider), then report again.
    #[error("the order is not settled here yet")]
    OrderNotPaid,
    #[error("the refund number belongs to another order")]
    OtherOrder,
    #[error("the report names another provider than the order")]
    ProviderMismatch,
    /// The order's provider is not configured here: nobody can be asked about it.
    #[error(transparent)]
    ProviderMissing(#[from] crate::domain::ProviderMissing),
    #[error("refund amount {reported} differs from the refund's {expected}")]
    AmountMismatch { expected: Fen, reported: Fen },
    /// A refund paygate did not start, reported without its amount: ask the provider.
    #[error("the report does not say the refund's amount")]
    AmountUnknown,
    #[error("the refunds would exceed the payment")]
    Exceeds,
    /// Settling it needed an answer from the provider (the payment, the amount) that it could
    /// not give now: try again later.
    #[error("the provider could not be asked")]
    Provider(#[source] crate::providers::ProviderError),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

pub async fn settle_refund(
    db: &Db,
    report: &RefundReport,
    now: DateTime<Utc>,
) -> Result<RefundSettled, RefundSettleError> {
    // A repeated report of a refund already in that final state is answered from a read.
    if let Some(known) =
        refunds::by_out_refund_no(db.reader(), report.provider, &issued(report)).await?
    {
        let total_fits = match report.order_total {
            None => true,
            Some(total) => orders::get(db.reader(), &known.order_no)
                .await?
                .is_some_and(|o| o.amount == total),
        };
        let same_facts = known.order_no == report.order_no
            && report.amount.is_none_or(|a| a == known.amount)
            && total_fits;
        let already = match report.outcome {
            RefundOutcome::Succeeded { .. } => known.status == RefundStatus::Succeeded,
            RefundOutcome::Failed(_) => known.status != RefundStatus::Processing,
        };
        if same_facts && already {
            return Ok(RefundSettled::Already);
        }
    }
    match settle_once(db, report, now).await {
        // Two first reports of a refund paygate did not start raced to record it (PostgreSQL):
        // the loser finds it recorded now.
        Err(RefundSettleError::Db(e)) if crate::store::is_unique_violation(&e) => {
            settle_once(db, report, now).await
        }
        other => other,
    }
}

async fn settle_once(
    db: &Db,
    report: &RefundReport,
    now: DateTime<Utc>,
) -> Result<RefundSettled, RefundSettleError> {
    let mut tx = db.begin_write().await?;
    let outcome = settle_in(&mut tx, report, &issued(report), now).await;
    match outcome {
        Ok(RefundSettled::Now { .. }) => tx.commit().await?,
        _ => tx.rollback().await?,
    }
    outcome
}

/// The number a provider's report names its refund by.
fn issued(report: &RefundReport) -> OutRefundNo {
    OutRefundNo::Issued(report.out_refund_no.clone())
}

/// Settles `report`, whose refund is known by `number` (the report's own, or the mark of one
/// inferred from a query answer).
async fn settle_in(
    tx: &mut Tx,
    report: &RefundReport,
    number: &OutRefundNo,
    now: DateTime<Utc>,
) -> Result<RefundSettled, RefundSettleError> {
    let now_ms = to_millis(now);
    if let Some(total) = report.order_total {
        let order = orders::get(&mut **tx, &report.order_no)
            .await?
            .ok_or(RefundSettleError::UnknownOrder)?;
        if order.amount != total {
            return Err(RefundSettleError::AmountMismatch {
                expected: order.amount,
                reported: total,
            });
        }
    }
    let known = refunds::by_out_refund_no(&mut **tx, report.provider, number).await?;
    let refund = match known {
        Some(r) => {
            if r.order_no != report.order_no {
                return Err(RefundSettleError::OtherOrder);
            }
            if let Some(amount) = report.amount
                && amount != r.amount
            {
                return Err(RefundSettleError::AmountMismatch {
                    expected: r.amount,
                    reported: amount,
                });
            }
            r
        }
        None => {
            let order = orders::get(&mut **tx, &report.order_no)
                .await?
                .ok_or(RefundSettleError::UnknownOrder)?;
            if order.provider != report.provider {
                return Err(RefundSettleError::ProviderMismatch);
            }
            if matches!(report.outcome, RefundOutcome::Failed(_)) {
                return Ok(RefundSettled::Ignored);
            }
            if !order.status.is_settled() {
                return Err(RefundSettleError::OrderNotPaid);
            }
            let amount = report.amount.ok_or(RefundSettleError::AmountUnknown)?;
            if let Some(covered) = covered_by_inferred(tx, &order, amount, report, now_ms).await? {
                return Ok(covered);
            }
            // A refund made outside paygate (the merchant portal): recorded as it is reported.
            let row = RefundRow {
                refund_id: RefundId::generate(),
                order_no: report.order_no.clone(),
                provider: report.provider,
                out_refund_no: number.clone(),
                provider_refund_id: report.provider_refund_id.clone(),
                amount,
                currency: order.currency,
                reason: None,
                status: RefundStatus::Processing,
                origin: RefundOrigin::Provider,
                failure: None,
                next_query_at: None,
                query_attempts: 0,
                created_at: now_ms,
                updated_at: now_ms,
                succeeded_at: None,
                failed_at: None,
                actor: None,
            };
            refunds::insert(tx, &row).await?;
            row
        }
    };
    match &report.outcome {
        RefundOutcome::Succeeded { at } => succeed(tx, &refund, report, *at, now).await,
        RefundOutcome::Failed(failure) => fail(tx, &refund, failure, now_ms).await,
    }
}

/// An order fully refunded from a query answer (number unknown then) meets the notification
/// that names the refund: the same money, not a second refund. Adopt the number when the
/// amounts agree; either way acknowledge.
async fn covered_by_inferred(
    tx: &mut Tx,
    order: &orders::OrderRow,
    amount: Fen,
    report: &RefundReport,
    now_ms: i64,
) -> Result<Option<RefundSettled>, RefundSettleError> {
    let fits = order
        .refunded
        .checked_add(amount)
        .is_some_and(|total| total <= order.amount);
    if fits {
        return Ok(None);
    }
    let inferred = refunds::of_order(&mut **tx, &order.order_no)
        .await?
        .into_iter()
        .find(|r| r.out_refund_no.is_inferred());
    let Some(inferred) = inferred else {
        return Err(RefundSettleError::Exceeds);
    };
    if inferred.amount == amount {
        let (id, no) = (&inferred.refund_id, &order.order_no);
        refunds::adopt_out_refund_no(tx, id, no, &report.out_refund_no, now_ms).await?;
        return Ok(Some(RefundSettled::Now {
            refund_id: inferred.refund_id,
            status: RefundStatus::Succeeded,
        }));
    }
    tracing::info!(order_no = %order.order_no, "refund notification covered by a refund already inferred from a query");
    Ok(Some(RefundSettled::Already))
}

async fn succeed(
    tx: &mut Tx,
    refund: &RefundRow,
    report: &RefundReport,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<RefundSettled, RefundSettleError> {
    let now_ms = to_millis(now);
    // succeeded_at: the provider's time when it gives one (WeChat `success_time`, Alipay
    // `gmt_refund` / `gmt_refund_pay`), else the moment paygate learned of it.
    let at = at.unwrap_or(now);
    let at_ms = to_millis(at);
    let moved = refunds::mark_succeeded(
        tx,
        &refund.refund_id,
        report.provider_refund_id.as_deref(),
        at_ms,
        now_ms,
    )
    .await?;
    if !moved {
        return Ok(RefundSettled::Already);
    }
    // A refund of paygate's own still held its amount back; a failed one gave it back already.
    let reserved =
        refund.origin == RefundOrigin::Paygate && refund.status == RefundStatus::Processing;
    let order_after = orders::record_refund(tx, &refund.order_no, refund.amount, reserved, now_ms)
        .await?
        .ok_or(RefundSettleError::Exceeds)?;
    let order = orders::get(&mut **tx, &refund.order_no)
        .await?
        .ok_or(RefundSettleError::UnknownOrder)?;
    let changed = entitlements::follow_refunds(
        tx,
        &refund.order_no,
        &order.grants,
        order_after.amount,
        order_after.refunded,
        now,
    )
    .await?;
    let data = serde_json::json!({
        "refund_id": refund.refund_id,
        "order_no": refund.order_no,
        "amount": refund.amount,
        "origin": refund.origin,
        "actor": refund.actor,
        "order_status": order_after.status,
        "refunded_total": order_after.refunded,
        "succeeded_at": rfc3339_beijing(at),
    });
    events::append(
        tx,
        "refund.succeeded",
        Some(refund.order_no.as_str()),
        &data,
        now_ms,
    )
    .await?;
    let revoked = changed
        .iter()
        .filter(|(_, e)| *e == RefundEffect::Revoked)
        .count();
    tracing::info!(order_no = %refund.order_no, refund_id = %refund.refund_id,
        origin = refund.origin.as_str(), status = %order_after.status, revoked,
        reduced = changed.len() - revoked, "refund succeeded");
    crate::telemetry::refund_settled(
        refund.provider.as_str(),
        "succeeded",
        refund.origin.as_str(),
    );
    Ok(RefundSettled::Now {
        refund_id: refund.refund_id.clone(),
        status: RefundStatus::Succeeded,
    })
}

async fn fail(
    tx: &mut Tx,
    refund: &RefundRow,
    failure: &RefundFailure,
    now_ms: i64,
) -> Result<RefundSettled, RefundSettleError> {
    if !refunds::mark_failed(tx, &refund.refund_id, &failure.describe(), now_ms).await? {
        return Ok(RefundSettled::Already);
    }
    if refund.origin == RefundOrigin::Paygate {
        orders::release_refund(tx, &refund.order_no, refund.amount, now_ms).await?;
    }
    let data = serde_json::json!({
        "refund_id": refund.refund_id,
        "order_no": refund.order_no,
        "amount": refund.amount,
        "origin": refund.origin,
        "actor": refund.actor,
        "reason": failure.describe(),
    });
    events::append(
        tx,
        "refund.failed",
        Some(refund.order_no.as_str()),
        &data,
        now_ms,
    )
    .await?;
    match failure {
        RefundFailure::Abnormal => tracing::error!(order_no = %refund.order_no,
            refund_id = %refund.refund_id, "refund ABNORMAL: the buyer's account did not take it; finance must resolve it"),
        other => tracing::warn!(order_no = %refund.order_no, refund_id = %refund.refund_id,
            failure = other.describe(), "refund failed"),
    }
    crate::telemetry::refund_settled(
        refund.provider.as_str(),
        match failure {
            RefundFailure::Closed => "failed_closed",
            RefundFailure::Abnormal => "failed_abnormal",
            RefundFailure::Refused(_) => "failed_refused",
        },
        refund.origin.as_str(),
    );
    Ok(RefundSettled::Now {
        refund_id: refund.refund_id.clone(),
        status: RefundStatus::Failed,
    })
}

/// A query answer says the trade is fully refunded, and paygate knew of no (or not every)
/// refund: record what is missing as one refund of the provider's, so the entitlement follows
/// the money now; a later notification naming the refund is matched to it.
pub async fn record_inferred_full_refund(
    db: &Db,
    order_no: &OrderNo,
    now: DateTime<Utc>,
) -> Result<RefundSettled, RefundSettleError> {
    let mut tx = db.begin_write().await?;
    let order = orders::get(&mut *tx, order_no)
        .await?
        .ok_or(RefundSettleError::UnknownOrder)?;
    if !order.status.is_settled() {
        tx.rollback().await?;
        return Err(RefundSettleError::OrderNotPaid);
    }
    let Some(missing) = order
        .amount
        .checked_sub(order.refunded)
        .filter(|m| *m > Fen::ZERO)
    else {
        tx.rollback().await?;
        return Ok(RefundSettled::Already);
    };
    let number = OutRefundNo::Inferred(order_no.clone());
    let report = RefundReport {
        order_no: order_no.clone(),
        provider: order.provider,
        out_refund_no: number.to_string(),
        provider_refund_id: None,
        amount: Some(missing),
        order_total: None,
        outcome: RefundOutcome::Succeeded { at: None },
    };
    let outcome = settle_in(&mut tx, &report, &number, now).await;
    match outcome {
        Ok(RefundSettled::Now { .. }) => tx.commit().await?,
        _ => tx.rollback().await?,
    }
    outcome
}
