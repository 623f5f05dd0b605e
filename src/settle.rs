//! The one settlement path: a verified report that an order is paid (from a callback, an
//! active query or reconciliation) becomes, in ONE transaction, the order's `paid` state, the
//! payment row, the entitlements and the outbox events — exactly once, however often, late or
//! concurrently it is reported.

use crate::clock::{rfc3339_beijing_millis, to_millis};
use crate::domain::{Currency, Fen, OrderNo, ProviderId};
use crate::entitlements;
use crate::store::{self, Db, events, orders};

/// What a provider says was paid, after its signature and merchant ids checked out.
#[derive(Debug, Clone)]
pub struct PaidTrade {
    pub order_no: OrderNo,
    pub provider: ProviderId,
    pub provider_txn_id: String,
    pub amount: Fen,
    pub currency: Currency,
    pub trade_type: Option<String>,
    pub bank_type: Option<String>,
    pub paid_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Notification,
    Query,
    Reconciliation,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Notification => "notification",
            Source::Query => "query",
            Source::Reconciliation => "reconciliation",
        }
    }
}

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
    let now_ms = to_millis(now);
    let paid_ms = to_millis(trade.paid_at);
    // The duplicate (providers repeat every notification) is answered from a read: the same
    // provider transaction already settled this order with this amount. Anything else —
    // unknown, or known with other facts — goes through the gate below, which decides.
    if orders::is_settled_by(db, trade).await? {
        return Ok(Settled::Already);
    }
    let mut tx = db.begin_write().await?;
    // The gate: only a pending or closed order with the same amount, provider and currency
    // moves to paid.
    let facts = orders::PaidFacts {
        order_no: &trade.order_no,
        amount: trade.amount,
        provider: trade.provider,
        currency: trade.currency,
        paid_ms,
    };
    let Some(flipped) = orders::mark_paid(&mut tx, &facts, now_ms).await? else {
        // Nothing moved: tell a duplicate from a report that does not fit the order.
        let order = orders::get(&mut *tx, &trade.order_no).await?;
        let payment = orders::payment_of(&mut *tx, &trade.order_no).await?;
        tx.rollback().await?;
        let Some(order) = order else {
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
        return match payment {
            Some(p) if p.provider_txn_id == trade.provider_txn_id => Ok(Settled::Already),
            _ => Err(SettleError::ConflictingTransaction),
        };
    };
    let late = flipped.late;

    let payment_id = crate::domain::ids::prefixed_id("pay");
    let inserted = sqlx::query(
        "INSERT INTO payment (payment_id, order_no, provider, provider_txn_id, amount_fen, currency,
                              trade_type, bank_type, source, paid_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&payment_id)
    .bind(trade.order_no.as_str())
    .bind(trade.provider.as_str())
    .bind(&trade.provider_txn_id)
    .bind(trade.amount.get())
    .bind(trade.currency.as_str())
    .bind(&trade.trade_type)
    .bind(&trade.bank_type)
    .bind(source.as_str())
    .bind(paid_ms)
    .bind(now_ms)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        // The same provider transaction id on another order: never settle twice from one payment.
        return Err(if store::is_unique_violation(&e) {
            SettleError::ConflictingTransaction
        } else {
            e.into()
        });
    }

    // A payment that reaches an erased account (its order closed by the erasure, paid late)
    // is recorded like any other but grants nothing: there is nobody left to use it, and it is
    // refunded in full (`privacy::refund_if_erased`, reason `account_deleted`).
    let erased = crate::privacy::is_erased(&mut *tx, &flipped.employer_id).await?;
    let granted = if erased {
        Vec::new()
    } else {
        entitlements::grant(
            &mut tx,
            &flipped.employer_id,
            &trade.order_no,
            &flipped.plan_id,
            &flipped.grants,
            now,
        )
        .await?
    };

    let order_no = trade.order_no.as_str();
    let paid = serde_json::json!({
        "order_no": order_no,
        "employer_id": flipped.employer_id,
        "plan": flipped.plan_id,
        "amount": trade.amount,
        "provider": trade.provider,
        "provider_transaction_id": trade.provider_txn_id,
        "paid_at": rfc3339_beijing_millis(paid_ms),
        "source": source.as_str(),
    });
    // The events last, in one append: the outbox counter row is held from here to the commit.
    let granted_json: Vec<serde_json::Value> = granted.iter().map(|e| e.to_json()).collect();
    let mut appended = vec![("order.paid", Some(order_no), &paid)];
    appended.extend(
        granted_json
            .iter()
            .map(|data| ("entitlement.granted", Some(order_no), data)),
    );
    if late {
        appended.push(("payment.late", Some(order_no), &paid));
    }
    events::append_all(&mut tx, &appended, now_ms).await?;
    tx.commit().await?;
    db.order_watch().changed(&trade.order_no);
    tracing::info!(order_no, provider = %trade.provider, source = source.as_str(), late, erased, "order settled");
    crate::telemetry::settled(trade.provider.as_str(), source.as_str(), late);
    Ok(Settled::Now { late })
}
