//! Issuing paygate's refunds and following them to a final state: [`start`] (the API, the CLI
//! and the settlement tail's `account_deleted` refund), the provider's answer, and the refund
//! job [`query_due`]. A final answer settles through the one refund settlement path
//! (`refunds/settle.rs`). This file issues; it never settles a payment (that is the settlement
//! tail's, which calls [`start`]: the order is tail → issue, report → tail, never a circle).
//!
//! A refund paygate starts is written (and its amount held back from the order) before the
//! provider hears of it, so a crash after the call leaves a `processing` refund the job asks
//! about. The provider is asked once per refund number; an unknown outcome is resolved by a
//! query of that number, never by a second refund under a new one.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::settle::{self, RefundOutcome, RefundReport, RefundSettleError};
use crate::clock::{Clock, to_millis};
use crate::domain::{
    Actor, Fen, OrderNo, OrderStatus, OwnedClaim, ProviderMissing, RefundId, RefundOrigin,
    RefundStatus,
};
use crate::providers::{NewRefund, PaymentProvider, ProviderError, RefundState, Registry};
use crate::store::Db;
use crate::store::idempotency;
use crate::store::orders::{self, Cursor, OrderRow};
use crate::store::refunds::{self, RefundRow};

/// What issuing and following refunds touches.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub db: &'a Db,
    pub providers: &'a Registry,
    pub clock: &'a dyn Clock,
}

impl Deps<'_> {
    /// The provider of `id`, or the one typed error of a provider this instance lacks.
    pub fn provider(
        &self,
        id: crate::domain::ProviderId,
    ) -> Result<Arc<dyn PaymentProvider>, ProviderMissing> {
        self.providers.get(id).cloned().ok_or(ProviderMissing(id))
    }
}

/// The database could not be reached while the refund job worked through its refunds: the
/// pass stops there and fails, and the next slot starts over.
#[derive(Debug, thiserror::Error)]
#[error("the database is unavailable; the pass stopped early and the next slot retries")]
pub struct DatabaseDown(#[source] pub sqlx::Error);

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
    ProviderDisabled(#[source] ProviderMissing),
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
    deps: &Deps<'_>,
    order_no: &OrderNo,
    amount: Fen,
    reason: Option<String>,
    actor: &Actor,
    claim: Option<OwnedClaim<'_>>,
    render: impl Fn(&RefundRow) -> String,
) -> Result<RefundRow, StartError> {
    let now = deps.clock.now();
    let mut tx = deps.db.begin_write().await?;
    let held = hold(deps, &mut tx, order_no, (amount, reason, actor), now).await;
    let (order, provider, row) = match held {
        Ok(held) => held,
        Err(e) => {
            tx.rollback().await?;
            return Err(e);
        }
    };
    refunds::insert(&mut tx, &row).await?;
    if let Some(c) = claim {
        idempotency::complete(&mut tx, c.api_key_id, c.key, 201, &render(&row)).await?;
    }
    tx.commit().await?;
    tracing::info!(order_no = %order_no, refund_id = %row.refund_id, provider = %order.provider, "refund started");

    let answer = provider.refund(&new_refund(&row, &order)).await;
    if let Applied::DatabaseDown(e) = apply_answer(deps, &row, answer).await {
        tracing::warn!(refund_id = %row.refund_id, error = %e,
            "database unavailable after the refund was sent; the refund job applies the answer");
    }
    let now_row = refunds::get(deps.db.pool(), &row.refund_id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    if let Some(c) = claim {
        // A replay answers the refund as the first request's answer left it.
        let mut conn = deps.db.pool().acquire().await?;
        idempotency::complete(&mut conn, c.api_key_id, c.key, 201, &render(&now_row)).await?;
    }
    Ok(now_row)
}

/// The checks of [`start`] and the hold of the amount, inside its transaction (the caller rolls
/// back on an error): the order, its provider, and the `processing` refund to write.
async fn hold(
    deps: &Deps<'_>,
    tx: &mut crate::store::Tx,
    order_no: &OrderNo,
    (amount, reason, actor): (Fen, Option<String>, &Actor),
    now: DateTime<Utc>,
) -> Result<(OrderRow, Arc<dyn PaymentProvider>, RefundRow), StartError> {
    let now_ms = to_millis(now);
    let order = orders::get(&mut **tx, order_no)
        .await?
        .ok_or(StartError::UnknownOrder)?;
    if let Some(reason) = &reason
        && reason
            .to_lowercase()
            .contains(&order.employer_id.as_str().to_lowercase())
    {
        return Err(StartError::ReasonNotNeutral);
    }
    if !order.status.may_refund() {
        return Err(StartError::NotRefundable(order.status));
    }
    let provider = deps
        .provider(order.provider)
        .map_err(StartError::ProviderDisabled)?;
    let refundable = order.refundable();
    if amount == Fen::ZERO
        || amount > refundable
        || !orders::reserve_refund(tx, order_no, amount, now_ms).await?
    {
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
        actor: Some(actor.clone()),
    };
    Ok((order, provider, row))
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
    deps: &Deps<'_>,
    row: &RefundRow,
    answer: Result<RefundState, ProviderError>,
) -> Applied {
    let now = deps.clock.now();
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
            return reschedule(deps, row, provider_refund_id.as_deref(), now).await;
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
            return reschedule(deps, row, None, now).await;
        }
    };
    match settle::settle_refund(deps.db, &report, now).await {
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
    deps: &Deps<'_>,
    row: &RefundRow,
    provider_refund_id: Option<&str>,
    now: DateTime<Utc>,
) -> Applied {
    let next = next_query(now, row.query_attempts);
    if let Err(e) = refunds::schedule_query(
        deps.db.pool(),
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
pub async fn query_due(deps: &Deps<'_>) -> anyhow::Result<RefundPass> {
    let now_ms = to_millis(deps.clock.now());
    let mut pass = RefundPass::default();
    let mut cursor = Cursor::start();
    for _ in 0..MAX_BATCHES {
        let due = refunds::due_query(deps.db.pool(), now_ms, &cursor, BATCH).await?;
        let Some(last) = due.last() else { break };
        cursor = Cursor::after(
            last.next_query_at.unwrap_or(now_ms),
            last.refund_id.as_str(),
        );
        let full = due.len() as i64 >= BATCH;
        for row in due {
            pass.checked += 1;
            let Ok(provider) = deps.provider(row.provider) else {
                tracing::warn!(refund_id = %row.refund_id, provider = %row.provider,
                    "refund of a provider that is not configured; left alone");
                continue;
            };
            match query_one(deps, provider, &row).await? {
                Applied::Final => pass.settled += 1,
                Applied::Pending => pass.still_processing += 1,
                Applied::NotFound => pass.resent += 1,
                Applied::DatabaseDown(e) => return Err(DatabaseDown(e).into()),
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
    deps: &Deps<'_>,
    provider: Arc<dyn PaymentProvider>,
    row: &RefundRow,
) -> anyhow::Result<Applied> {
    let answer = provider
        .refund_query(&row.order_no, &row.out_refund_no.to_string())
        .await;
    let applied = apply_answer(deps, row, answer).await;
    if !matches!(applied, Applied::NotFound) {
        return Ok(applied);
    }
    if row.origin != RefundOrigin::Paygate {
        return Ok(reschedule(deps, row, None, deps.clock.now()).await);
    }
    // Never arrived: send the very same request again (same number, same amounts).
    let order = orders::get(deps.db.pool(), &row.order_no)
        .await?
        .ok_or_else(|| anyhow::anyhow!("refund of a missing order"))?;
    tracing::warn!(order_no = %row.order_no, refund_id = %row.refund_id,
        "the provider has no such refund; sending the same request again");
    let answer = provider.refund(&new_refund(row, &order)).await;
    match apply_answer(deps, row, answer).await {
        Applied::NotFound => Ok(reschedule(deps, row, None, deps.clock.now()).await),
        down @ Applied::DatabaseDown(_) => Ok(down),
        _ => Ok(Applied::NotFound),
    }
}
