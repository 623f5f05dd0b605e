//! The local side of a run: `payment` and `refund` rows of one provider, looked up by the
//! bill's transaction ids, paged through by day, and counted.

use sqlx::{AnyPool, Row};

use super::columns::fen;
use crate::domain::reconciliation::Tally;
use crate::domain::{Fen, ProviderId};

/// Transaction ids looked up per statement (see `staged::ROWS_PER_STATEMENT` for why not more).
pub const LOOKUP_CHUNK: usize = 128;

/// A local payment as the bill's rows are matched against it.
#[derive(Debug, Clone, Copy)]
pub struct LocalPayment {
    pub amount: Fen,
    pub paid_at: i64,
}

/// The local payments of `provider` among `txn_ids` (at most [`LOOKUP_CHUNK`]), by transaction id.
pub async fn payments_by_txn(
    reader: &AnyPool,
    provider: ProviderId,
    txn_ids: &[&str],
) -> Result<Vec<(String, LocalPayment)>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT provider_txn_id, amount_fen, paid_at FROM payment
         WHERE provider = $1 AND provider_txn_id IN (",
    );
    for i in 0..txn_ids.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("${}", i + 2));
    }
    sql.push(')');
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(provider.as_str().to_owned());
    for id in txn_ids {
        query = query.bind((*id).to_owned());
    }
    let rows = query.fetch_all(reader).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("provider_txn_id")?,
                LocalPayment {
                    amount: fen(r, "amount_fen")?,
                    paid_at: r.try_get("paid_at")?,
                },
            ))
        })
        .collect()
}

/// A local payment of a day, as the missing-remote check pages through them.
#[derive(Debug, Clone)]
pub struct DayPayment {
    pub payment_id: String,
    pub order_no: String,
    pub provider_txn_id: String,
    pub amount: Fen,
    pub paid_at: i64,
}

/// A page of `provider`'s payments paid in [`from`, `to`), after `after` = (paid_at,
/// payment_id), in that order.
pub async fn payments_paid_between(
    reader: &AnyPool,
    provider: ProviderId,
    (from, to): (i64, i64),
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<DayPayment>, sqlx::Error> {
    let (after_at, after_id) = after.unwrap_or((from - 1, ""));
    let rows = sqlx::query(
        "SELECT payment_id, order_no, provider_txn_id, amount_fen, paid_at FROM payment
         WHERE provider = $1 AND paid_at >= $2 AND paid_at < $3
           AND (paid_at > $4 OR (paid_at = $4 AND payment_id > $5))
         ORDER BY paid_at, payment_id LIMIT $6",
    )
    .bind(provider.as_str())
    .bind(from)
    .bind(to)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DayPayment {
                payment_id: r.try_get("payment_id")?,
                order_no: r.try_get("order_no")?,
                provider_txn_id: r.try_get("provider_txn_id")?,
                amount: fen(r, "amount_fen")?,
                paid_at: r.try_get("paid_at")?,
            })
        })
        .collect()
}

/// The count and sum of `provider`'s payments paid in [`from`, `to`).
pub async fn local_payments(
    reader: &AnyPool,
    provider: ProviderId,
    day: (i64, i64),
) -> Result<Tally, sqlx::Error> {
    tally(
        reader,
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM payment
         WHERE provider = $1 AND paid_at >= $2 AND paid_at < $3",
        provider,
        day,
    )
    .await
}

/// The count and sum of `provider`'s refunds requested in [`from`, `to`), failed ones left out.
pub async fn local_refunds(
    reader: &AnyPool,
    provider: ProviderId,
    day: (i64, i64),
) -> Result<Tally, sqlx::Error> {
    tally(
        reader,
        "SELECT COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM refund
         WHERE provider = $1 AND created_at >= $2 AND created_at < $3 AND status <> 'failed'",
        provider,
        day,
    )
    .await
}

async fn tally(
    reader: &AnyPool,
    sql: &'static str,
    provider: ProviderId,
    (from, to): (i64, i64),
) -> Result<Tally, sqlx::Error> {
    let (count, amount): (i64, i64) = sqlx::query_as(sql)
        .bind(provider.as_str())
        .bind(from)
        .bind(to)
        .fetch_one(reader)
        .await?;
    Ok(Tally {
        count: count as u64,
        amount_fen: amount,
    })
}
