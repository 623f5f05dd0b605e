//! Erased employers (`erased_employer`, DESIGN.md §10): the pseudonym of every account
//! erased, whose unique key makes `employer.erased` once, and the payments that reached such an
//! account after its erasure and are owed back.

use chrono::{DateTime, Utc};
use sqlx::AnyPool;

use super::Tx;
use super::exec::Exec;
use super::orders::corrupt;
use crate::clock::to_millis as millis;
use crate::domain::{EmployerId, ErasureId, OrderNo};

/// An order `o` whose payment reached an erased account after its erasure and is not all
/// refunded or being refunded: settled under the pseudonym, nothing granted (settlement grants
/// nothing to an erased account, and an order paid before the erasure always had its grant —
/// revoked by the erasure, but there: that payment is the employer's purchase, not refunded).
pub const OWED: &str = "o.status IN ('paid', 'partially_refunded')
     AND o.refunded_fen + o.refund_pending_fen < o.amount_fen
     AND EXISTS (SELECT 1 FROM erased_employer x WHERE x.pseudonym = o.employer_id)
     AND NOT EXISTS (SELECT 1 FROM entitlement e WHERE e.order_no = o.order_no)";

/// True when `employer` is the pseudonym of an erased account.
pub async fn is_erased(ex: &mut Exec<'_>, employer: &EmployerId) -> Result<bool, sqlx::Error> {
    let found = ex
        .optional(
            "SELECT 1 AS erased FROM erased_employer WHERE pseudonym = $1",
            &[employer.as_str().into()],
        )
        .await?;
    Ok(found.is_some())
}

/// Records `pseudonym` as erased by `erasure_id`. False when it was erased before.
pub async fn record(
    tx: &mut Tx,
    pseudonym: &EmployerId,
    erasure_id: &ErasureId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO erased_employer (pseudonym, erasure_id, erased_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(pseudonym.as_str())
    .bind(erasure_id.as_str())
    .bind(millis(now))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Up to `limit` orders whose payment is owed back to an erased account ([`OWED`]).
pub async fn owed_orders(pool: &AnyPool, limit: i64) -> Result<Vec<OrderNo>, sqlx::Error> {
    let nos: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT o.order_no FROM payment_order o WHERE {OWED} ORDER BY o.order_no LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    nos.iter()
        .map(|no| OrderNo::parse(no).ok_or_else(|| corrupt("order_no", "not an order number")))
        .collect()
}

/// Whether the payment of `order_no` is owed back to an erased account ([`OWED`]). Every
/// settled callback asks, almost always for nothing: pass the reader, so it never queues for
/// the writer.
pub async fn is_owed(reader: &AnyPool, order_no: &OrderNo) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM payment_order o WHERE o.order_no = $1 AND {OWED}"
    )))
    .bind(order_no.as_str())
    .fetch_one(reader)
    .await?;
    Ok(n > 0)
}
