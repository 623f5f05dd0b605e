//! Refunds, paygate's and the provider's: started through the API or the CLI ([`start`]),
//! resolved by the provider's answer, its notifications and the refund job ([`query_due`]),
//! and settled through the one path in [`settle`].
//!
//! A refund paygate starts is written (and its amount held back from the order) before the
//! provider hears of it, so a crash after the call leaves a `processing` refund the job asks
//! about. The provider is asked once per refund number; an unknown outcome is resolved by a
//! query of that number, never by a second refund under a new one.

pub mod settle;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use settle::{
    RefundFailure, RefundOutcome, RefundReport, RefundSettleError, RefundSettled, settle_refund,
};

use crate::app::AppState;
use crate::checkout::OwnedClaim;
use crate::clock::to_millis;
use crate::domain::{Fen, OrderNo, OrderStatus, RefundId, RefundOrigin, RefundStatus};
use crate::providers::{NewRefund, PaymentProvider, ProviderError, RefundState, TradeStatus};
use crate::settle::{SettleError, Source};
use crate::store::idempotency;
use crate::store::orders::{self, Cursor, OrderRow};
use crate::store::refunds::{self, RefundRow};

/// alipay.md §5: a refund query no sooner than 10 s after the refund; WeChat's refunds take
/// at least as long.
pub const FIRST_QUERY_AFTER: chrono::Duration = chrono::Duration::seconds(10);
/// The longest wait between two queries of a refund that stays `processing`.
const MAX_QUERY_INTERVAL: chrono::Duration = chrono::Duration::hours(1);

/// Why a refund could not be started. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no such order")]
    UnknownOrder,
    #[error("the order is {0}, not paid")]
    NotRefundable(OrderStatus),
    #[error("the amount must be more than zero and at most the {refundable} still refundable")]
    AmountInvalid { refundable: Fen },
    #[error("the order's provider is not configured")]
    ProviderDisabled,
    /// The reason is shown to the buyer: it must say nothing about the employer.
    #[error("the reason names the employer")]
    ReasonNotNeutral,
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// When a processing refund is asked about after `attempts` queries: 10 s, 20 s, 40 s, … an hour
/// at most.
fn next_query(now: DateTime<Utc>, attempts: i64) -> DateTime<Utc> {
    let factor = 1i32 << attempts.clamp(0, 16);
    now + (FIRST_QUERY_AFTER * factor).min(MAX_QUERY_INTERVAL)
}

/// Starts a refund of `amount` of a paid order: checks and holds the amount and writes the
/// refund (`processing`) — with the API request's answer, when there is a claim — in one
/// transaction; then asks the provider and applies its answer, and stores the final answer.
/// Answers the refund as it stands then. On an error nothing was written.
pub async fn start(
    state: &AppState,
    order_no: &OrderNo,
    amount: Fen,
    reason: Option<String>,
    claim: Option<OwnedClaim<'_>>,
    render: impl Fn(&RefundRow) -> String,
) -> Result<RefundRow, StartError> {
    let now = state.clock.now();
    let now_ms = to_millis(now);
    let mut tx = state.db.begin_write().await?;
    let order = orders::get(&mut *tx, order_no)
        .await?
        .ok_or(StartError::UnknownOrder)?;
    if let Some(reason) = &reason
        && reason
            .to_lowercase()
            .contains(&order.employer_id.as_str().to_lowercase())
    {
        tx.rollback().await?;
        return Err(StartError::ReasonNotNeutral);
    }
    if !matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded
    ) {
        tx.rollback().await?;
        return Err(StartError::NotRefundable(order.status));
    }
    let Some(provider) = state.providers.get(order.provider).cloned() else {
        tx.rollback().await?;
        return Err(StartError::ProviderDisabled);
    };
    let refundable = order.refundable();
    if amount == Fen::ZERO
        || amount > refundable
        || !orders::reserve_refund(&mut tx, order_no, amount, now_ms).await?
    {
        tx.rollback().await?;
        return Err(StartError::AmountInvalid { refundable });
    }
    let refund_id = RefundId::generate();
    let row = RefundRow {
        out_refund_no: crate::domain::OutRefundNo::Issued(refund_id.to_string()),
        refund_id,
        order_no: order_no.clone(),
        provider: order.provider,
        provider_refund_id: None,
        amount,
        currency: order.currency,
        reason,
        status: RefundStatus::Processing,
        origin: RefundOrigin::Paygate,
        failure: None,
        next_query_at: Some(to_millis(now + FIRST_QUERY_AFTER)),
        query_attempts: 0,
        created_at: now_ms,
        updated_at: now_ms,
        succeeded_at: None,
        failed_at: None,
    };
    refunds::insert(&mut tx, &row).await?;
    if let Some(c) = claim {
        idempotency::complete(&mut tx, c.api_key_id, c.key, 201, &render(&row)).await?;
    }
    tx.commit().await?;
    tracing::info!(order_no = %order_no, refund_id = %row.refund_id, provider = %order.provider, "refund started");

    let answer = provider.refund(&new_refund(&row, &order)).await;
    if let Applied::DatabaseDown(e) = apply_answer(state, &row, answer).await {
        tracing::warn!(refund_id = %row.refund_id, error = %e,
            "database unavailable after the refund was sent; the refund job applies the answer");
    }
    let now_row = refunds::get(state.db.pool(), &row.refund_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    if let Some(c) = claim {
        // A replay answers the refund as the first request's answer left it.
        let mut conn = state.db.pool().acquire().await?;
        idempotency::complete(&mut conn, c.api_key_id, c.key, 201, &render(&now_row)).await?;
    }
    Ok(now_row)
}

/// The request that leaves for the provider, the same every time it is sent.
fn new_refund(row: &RefundRow, order: &OrderRow) -> NewRefund {
    NewRefund {
        order_no: row.order_no.clone(),
        refund_no: row.out_refund_no.to_string(),
        amount: row.amount,
        total: order.amount,
        reason: row.reason.clone(),
    }
}

/// Applies what the provider answered about one of paygate's refunds (create or query): a
/// final answer settles it; anything else leaves it `processing` for the refund job.
async fn apply_answer(
    state: &AppState,
    row: &RefundRow,
    answer: Result<RefundState, ProviderError>,
) -> Applied {
    let now = state.clock.now();
    let report = |amount: Option<Fen>, provider_refund_id, outcome| RefundReport {
        order_no: row.order_no.clone(),
        provider: row.provider,
        out_refund_no: row.out_refund_no.to_string(),
        provider_refund_id,
        amount,
        order_total: None,
        outcome,
    };
    let report = match answer {
        Ok(RefundState::Succeeded {
            amount,
            provider_refund_id,
            at,
        }) => report(
            Some(amount),
            provider_refund_id,
            RefundOutcome::Succeeded { at },
        ),
        Ok(RefundState::Failed(failure)) => report(None, None, RefundOutcome::Failed(failure)),
        Ok(RefundState::Processing { provider_refund_id }) => {
            return reschedule(state, row, provider_refund_id.as_deref(), now).await;
        }
        Ok(RefundState::NotFound) => return Applied::NotFound,
        Err(e) => {
            let kind = match e {
                ProviderError::Unavailable(_) => "unavailable",
                ProviderError::Rejected(_) => "unverified",
            };
            tracing::warn!(order_no = %row.order_no, refund_id = %row.refund_id, kind,
                error = format!("{:#}", anyhow::Error::from(e)),
                "refund outcome unknown; the refund job asks the provider");
            return reschedule(state, row, None, now).await;
        }
    };
    match settle::settle_refund(&state.db, &report, now).await {
        Ok(_) => Applied::Final,
        Err(RefundSettleError::Db(e)) if crate::store::is_unavailable(&e) => {
            Applied::DatabaseDown(e)
        }
        Err(e) => {
            tracing::error!(order_no = %row.order_no, refund_id = %row.refund_id,
                error = %e, "a refund answer could not be settled");
            Applied::Pending
        }
    }
}

#[derive(Debug)]
enum Applied {
    Final,
    Pending,
    NotFound,
    /// The database could not be reached: the job pass stops (the next slot retries).
    DatabaseDown(sqlx::Error),
}

async fn reschedule(
    state: &AppState,
    row: &RefundRow,
    provider_refund_id: Option<&str>,
    now: DateTime<Utc>,
) -> Applied {
    let next = next_query(now, row.query_attempts);
    if let Err(e) = refunds::schedule_query(
        state.db.pool(),
        &row.refund_id,
        provider_refund_id,
        to_millis(next),
        to_millis(now),
    )
    .await
    {
        if crate::store::is_unavailable(&e) {
            return Applied::DatabaseDown(e);
        }
        tracing::error!(refund_id = %row.refund_id, error = %e, "scheduling a refund query failed");
    }
    Applied::Pending
}

/// One refund-job pass.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct RefundPass {
    pub checked: u64,
    pub settled: u64,
    pub still_processing: u64,
    /// The provider had no such refund: the same request (same number) was sent again.
    pub resent: u64,
}

const BATCH: i64 = 500;
const MAX_BATCHES: usize = 20;

/// The refund job: every `processing` refund due a query is asked about until it is final.
/// One the provider never received (its create was lost) is sent again under the same
/// number, which the provider refunds at most once.
pub async fn query_due(state: &AppState) -> anyhow::Result<RefundPass> {
    let now_ms = to_millis(state.clock.now());
    let mut pass = RefundPass::default();
    let mut cursor = Cursor::start();
    for _ in 0..MAX_BATCHES {
        let due = refunds::due_query(state.db.pool(), now_ms, &cursor, BATCH).await?;
        let Some(last) = due.last() else { break };
        cursor = Cursor::after(
            last.next_query_at.unwrap_or(now_ms),
            last.refund_id.as_str(),
        );
        let full = due.len() as i64 >= BATCH;
        for row in due {
            pass.checked += 1;
            let Some(provider) = state.providers.get(row.provider).cloned() else {
                tracing::warn!(refund_id = %row.refund_id, provider = %row.provider,
                    "refund of a provider that is not configured; left alone");
                continue;
            };
            match query_one(state, provider, &row).await? {
                Applied::Final => pass.settled += 1,
                Applied::Pending => pass.still_processing += 1,
                Applied::NotFound => pass.resent += 1,
                Applied::DatabaseDown(e) => return Err(crate::jobs::DatabaseDown(e).into()),
            }
        }
        if !full {
            break;
        }
    }
    let job = "refunds";
    crate::telemetry::job_orders(job, "settled", pass.settled);
    crate::telemetry::job_orders(job, "still_processing", pass.still_processing);
    crate::telemetry::job_orders(job, "resent", pass.resent);
    Ok(pass)
}

async fn query_one(
    state: &AppState,
    provider: Arc<dyn PaymentProvider>,
    row: &RefundRow,
) -> anyhow::Result<Applied> {
    let answer = provider
        .refund_query(&row.order_no, &row.out_refund_no.to_string())
        .await;
    let applied = apply_answer(state, row, answer).await;
    if !matches!(applied, Applied::NotFound) {
        return Ok(applied);
    }
    if row.origin != RefundOrigin::Paygate {
        return Ok(reschedule(state, row, None, state.clock.now()).await);
    }
    // Never arrived: send the very same request again (same number, same amounts).
    let order = orders::get(state.db.pool(), &row.order_no)
        .await?
        .ok_or_else(|| anyhow::anyhow!("refund of a missing order"))?;
    tracing::warn!(order_no = %row.order_no, refund_id = %row.refund_id,
        "the provider has no such refund; sending the same request again");
    let answer = provider.refund(&new_refund(row, &order)).await;
    match apply_answer(state, row, answer).await {
        Applied::NotFound => Ok(reschedule(state, row, None, state.clock.now()).await),
        down @ Applied::DatabaseDown(_) => Ok(down),
        _ => Ok(Applied::NotFound),
    }
}

/// Applies a verified refund report (a notification): settles it, after first settling the
/// payment if the provider reports a refund of an order paygate has not seen paid (the payment
/// is real), and asking the provider for the amount when the report does not carry it.
pub async fn apply_report(
    state: &AppState,
    report: &RefundReport,
) -> Result<RefundSettled, RefundSettleError> {
    let mut report = report.clone();
    for _ in 0..3 {
        match settle::settle_refund(&state.db, &report, state.clock.now()).await {
            Err(RefundSettleError::OrderNotPaid) => {
                settle_payment_first(state, &report.order_no).await?;
            }
            Err(RefundSettleError::AmountUnknown) => {
                report.amount = Some(ask_amount(state, &report).await?);
            }
            other => return other,
        }
    }
    Err(RefundSettleError::OrderNotPaid)
}

/// The provider reports a refund (or a refunded trade) of an order still pending or closed
/// here: its payment was missed. Ask the provider and settle the payment it reports.
async fn settle_payment_first(
    state: &AppState,
    order_no: &OrderNo,
) -> Result<(), RefundSettleError> {
    let order = orders::get(state.db.pool(), order_no)
        .await?
        .ok_or(RefundSettleError::UnknownOrder)?;
    let provider = state
        .providers
        .get(order.provider)
        .cloned()
        .ok_or(RefundSettleError::ProviderMismatch)?;
    let trade = match provider.query(order_no).await {
        Ok(TradeStatus::Paid(trade) | TradeStatus::Refunded(trade)) => trade,
        Ok(other) => {
            tracing::warn!(%order_no, status = ?other, "a refund was reported for an order the provider does not show paid");
            return Err(RefundSettleError::OrderNotPaid);
        }
        Err(e) => return Err(RefundSettleError::Provider(e)),
    };
    match crate::settle::settle(&state.db, &trade, Source::Query, state.clock.now()).await {
        Ok(_) => Ok(()),
        Err(SettleError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!(%order_no, error = %e, "the payment of a refunded order does not fit the order");
            Err(RefundSettleError::OrderNotPaid)
        }
    }
}

/// A refund paygate did not start, reported without its amount (Alipay gives only the
/// cumulative `refund_fee`, and notifications may come out of order): ask the provider.
async fn ask_amount(state: &AppState, report: &RefundReport) -> Result<Fen, RefundSettleError> {
    let provider = state
        .providers
        .get(report.provider)
        .cloned()
        .ok_or(RefundSettleError::ProviderMismatch)?;
    match provider
        .refund_query(&report.order_no, &report.out_refund_no)
        .await
    {
        Ok(RefundState::Succeeded { amount, .. }) => Ok(amount),
        Ok(other) => {
            tracing::warn!(order_no = %report.order_no, state = ?other, "the provider does not confirm a reported refund");
            Err(RefundSettleError::AmountUnknown)
        }
        Err(e) => Err(RefundSettleError::Provider(e)),
    }
}

/// A query answer says the trade was paid and then fully refunded, while paygate had it pending
/// (both reports missed): settle the payment, then record the refund of what was left, so the
/// entitlement follows at once. Used by every path that queries an order.
pub async fn settle_refunded_trade(
    state: &AppState,
    trade: &crate::settle::PaidTrade,
) -> Result<(), RefundSettleError> {
    match crate::settle::settle(&state.db, trade, Source::Query, state.clock.now()).await {
        Ok(_) => {}
        Err(SettleError::Db(e)) => return Err(e.into()),
        Err(e) => {
            tracing::error!(order_no = %trade.order_no, error = %e, "the payment of a refunded trade does not fit the order");
            return Err(RefundSettleError::OrderNotPaid);
        }
    }
    settle::record_inferred_full_refund(&state.db, &trade.order_no, state.clock.now())
        .await
        .map(|_| ())
}
