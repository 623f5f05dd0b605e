//! The one settlement path: a verified report that an order is paid (from a callback, an
//! active query or reconciliation) becomes, in ONE transaction, the order's `paid` state, the
//! payment row, the entitlements and the outbox events — exactly once, however often, late or
//! concurrently it is reported.

use crate::clock::{rfc3339_beijing_millis, to_millis};
use crate::domain::Fen;
use crate::entitlements::{self, Entitlement};
use crate::store::exec::Exec;
use crate::store::payments::{self, NewPayment, SettledBy};
use crate::store::{Db, events, is_unique_violation, orders};

/// What a provider reports as paid is defined by the providers layer (it is what an adapter
/// returns); named here as settlement's callers have always named it.
pub use crate::providers::PaidTrade;

/// How paygate learned of the payment: a domain type ([`crate::domain::status::PaymentSource`]),
/// named here as settlement's callers have always named it.
pub use crate::domain::status::PaymentSource as Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// This report settled the order (and granted); `late` when the order had been closed.
    Now { late: bool },
    /// Settled before by the same provider transaction: a duplicate, nothing changed.
    Already,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("no such order")]
    UnknownOrder,
    #[error("paid amount {reported} differs from the order's {expected}")]
    AmountMismatch { expected: Fen, reported: Fen },
    #[error("the report names another provider or currency than the order")]
    Mismatch,
    #[error("order was already settled by another provider transaction")]
    ConflictingTransaction,
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

pub async fn settle(
    db: &Db,
    trade: &PaidTrade,
    source: Source,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Settled, SettleError> {
    // The duplicate (providers repeat every notification) is answered from a read: the same
    // provider transaction already settled this order with this amount. Anything else —
    // unknown, or known with other facts — goes through the gate below, which decides.
    let settled_by = SettledBy {
        order_no: &trade.order_no,
        provider: trade.provider,
        provider_txn_id: &trade.provider_txn_id,
        amount: trade.amount,
        currency: trade.currency,
    };
    if payments::is_settled_by(db, &settled_by).await? {
        return Ok(Settled::Already);
    }
    // One transaction (`Db::transaction`): any error rolls all of it back.
    let owned = trade.clone();
    let moved = db
        .transaction(move |ex| Box::pin(async move { settle_in(ex, &owned, source, now).await }))
        .await?;
    let Moved::Settled { late, erased } = moved else {
        return not_moved(db, trade).await;
    };
    db.order_watch().changed(&trade.order_no);
    tracing::info!(order_no = %trade.order_no, provider = %trade.provider, source = source.as_str(), late, erased, "order settled");
    crate::telemetry::settled(trade.provider.as_str(), source.as_str(), late);
    Ok(Settled::Now { late })
}

/// What the settlement transaction did.
enum Moved {
    /// The order is paid now, with its payment, entitlements (none if its account was erased)
    /// and events.
    Settled { late: bool, erased: bool },
    /// The gate let nothing through: the report does not fit the order as it stands.
    Nothing,
}

/// The settlement transaction (a body of [`Db::transaction`]): the gate, the payment row, the
/// grants and the events.
async fn settle_in(
    ex: &mut Exec<'_>,
    trade: &PaidTrade,
    source: Source,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Moved, SettleError> {
    let now_ms = to_millis(now);
    let paid_ms = to_millis(trade.paid_at);
    // The gate: only a pending or closed order with the same amount, provider and currency
    // moves to paid.
    let facts = orders::PaidFacts {
        order_no: &trade.order_no,
        amount: trade.amount,
        provider: trade.provider,
        currency: trade.currency,
        paid_ms,
    };
    let Some(flipped) = orders::mark_paid(ex, &facts, now_ms).await? else {
        return Ok(Moved::Nothing);
    };
    let payment = NewPayment {
        order_no: &trade.order_no,
        provider: trade.provider,
        provider_txn_id: &trade.provider_txn_id,
        amount: trade.amount,
        currency: trade.currency,
        trade_type: trade.trade_type.as_deref(),
        bank_type: trade.bank_type.as_deref(),
        source,
        paid_ms,
    };
    match payments::insert(ex, &payment, now_ms).await {
        Ok(_) => {}
        // The same provider transaction id on another order: never settle twice from one
        // payment.
        Err(e) if is_unique_violation(&e) => return Err(SettleError::ConflictingTransaction),
        Err(e) => return Err(e.into()),
    }
    // A payment that reaches an erased account (its order closed by the erasure, paid late)
    // is recorded like any other but grants nothing: there is nobody left to use it, and it is
    // refunded in full (`settlement::refund_if_erased`, reason `account_deleted`).
    let erased = crate::store::erased_employers::is_erased(ex, &flipped.employer_id).await?;
    let granted = if erased {
        Vec::new()
    } else {
        let (employer, plan) = (&flipped.employer_id, flipped.plan_id.as_str());
        entitlements::grant(ex, employer, &trade.order_no, plan, &flipped.grants, now).await?
    };
    append_paid_events(ex, trade, source, &flipped, &granted, now_ms).await?;
    Ok(Moved::Settled {
        late: flipped.late,
        erased,
    })
}

/// The settlement's events, last and in one append: the outbox counter row is held from here
/// to the commit. `order.paid`, an `entitlement.granted` per grant, `payment.late` when the
/// order had been closed.
async fn append_paid_events(
    ex: &mut Exec<'_>,
    trade: &PaidTrade,
    source: Source,
    flipped: &orders::Flipped,
    granted: &[Entitlement],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let order_no = trade.order_no.as_str();
    let paid = serde_json::json!({
        "order_no": order_no,
        "employer_id": flipped.employer_id,
        "plan": flipped.plan_id,
        "amount": trade.amount,
        "provider": trade.provider,
        "provider_transaction_id": trade.provider_txn_id,
        "paid_at": rfc3339_beijing_millis(to_millis(trade.paid_at)),
        "source": source,
    });
    let granted_json: Vec<serde_json::Value> = granted.iter().map(Entitlement::to_json).collect();
    let mut appended = vec![("order.paid", Some(order_no), &paid)];
    appended.extend(
        granted_json
            .iter()
            .map(|data| ("entitlement.granted", Some(order_no), data)),
    );
    if flipped.late {
        appended.push(("payment.late", Some(order_no), &paid));
    }
    events::append_all(ex, &appended, now_ms).await?;
    Ok(())
}

/// Nothing moved: tell a duplicate from a report that does not fit the order, from what has
/// committed (the gate's transaction wrote nothing).
async fn not_moved(db: &Db, trade: &PaidTrade) -> Result<Settled, SettleError> {
    let Some(order) = orders::get(db.reader(), &trade.order_no).await? else {
        return Err(SettleError::UnknownOrder);
    };
    if order.amount != trade.amount {
        return Err(SettleError::AmountMismatch {
            expected: order.amount,
            reported: trade.amount,
        });
    }
    if order.provider != trade.provider || order.currency != trade.currency {
        return Err(SettleError::Mismatch);
    }
    match payments::payment_of(db.reader(), &trade.order_no).await? {
        Some(p) if p.provider_txn_id == trade.provider_txn_id => Ok(Settled::Already),
        _ => Err(SettleError::ConflictingTransaction),
    }
}
