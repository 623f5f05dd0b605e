//! The bill rows a run stages in `reconciliation_bill_row` (under its id, and every bill
//! payment under `{id}/payments` when the exact checks need them), and the set-based queries
//! that set them against `payment` and `refund` and return only what does not match.

use sqlx::{AnyPool, Row};

use super::columns::{fen, opt_fen};
use crate::domain::bill::BillEntry;
use crate::domain::{Fen, ProviderId};
use crate::store::Db;

/// Rows per INSERT statement. Small on purpose: binding `$n` parameters costs more than
/// linearly in their number (measured: 1,000 rows a statement staged 100 k rows in 12 s, 200 in
/// 3.4 s, 32 to 50 in 1.7–2.3 s).
const ROWS_PER_STATEMENT: usize = 32;

/// Stages `rows` (each with its position in the bill) under `run_key`, in one transaction.
pub async fn stage(db: &Db, run_key: &str, rows: &[(i64, BillEntry)]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO reconciliation_bill_row (run_key, seq, kind, order_no, provider_txn_id,
             refund_no, amount_fen, status, occurred_at) VALUES ",
        );
        for i in 0..chunk.len() {
            let p = i * 9;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8,
                p + 9
            ));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, row) in chunk {
            query = query
                .bind(run_key.to_owned())
                .bind(*seq)
                .bind(row.kind.as_str())
                .bind(row.order_no.clone())
                .bind(row.provider_txn_id.clone())
                .bind(row.refund_no.clone())
                .bind(row.amount.get())
                .bind(row.status.clone())
                .bind(crate::clock::to_millis(row.at));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

pub async fn drop_staged(pool: &AnyPool, run_key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM reconciliation_bill_row WHERE run_key = $1")
        .bind(run_key)
        .execute(pool)
        .await?;
    Ok(())
}

/// A staged bill payment that no local payment of the same amount matches, with the local
/// payment of its transaction id if there is one.
#[derive(Debug, Clone)]
pub struct UnmatchedPayment {
    pub seq: i64,
    pub order_no: Option<String>,
    pub provider_txn_id: String,
    pub amount: Fen,
    pub status: String,
    pub local_amount: Option<Fen>,
}

/// A page, after `after_seq`, of the payments staged under `run_key` that no local payment
/// matches (none of that transaction id, another amount, or a bill status other than
/// `SUCCESS`), leaving out each row that repeats the transaction id of an earlier row of
/// `all_key` (every bill payment, when staged: the repeats are `duplicate_remote`).
pub async fn unmatched_payments(
    reader: &AnyPool,
    (run_key, all_key): (&str, &str),
    provider: ProviderId,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<UnmatchedPayment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT b.seq, b.order_no, b.provider_txn_id, b.amount_fen, b.status,
                p.amount_fen AS local_amount
         FROM reconciliation_bill_row b
         LEFT JOIN payment p ON p.provider = $2 AND p.provider_txn_id = b.provider_txn_id
         WHERE b.run_key = $1 AND b.kind = 'payment' AND b.seq > $3
           AND (p.payment_id IS NULL OR p.amount_fen <> b.amount_fen OR b.status <> 'SUCCESS')
           AND NOT EXISTS (SELECT 1 FROM reconciliation_bill_row d
                           WHERE d.run_key = $5 AND d.kind = 'payment'
                             AND d.provider_txn_id = b.provider_txn_id AND d.seq < b.seq)
         ORDER BY b.seq LIMIT $4",
    )
    .bind(run_key)
    .bind(provider.as_str())
    .bind(after_seq)
    .bind(limit)
    .bind(all_key)
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UnmatchedPayment {
                seq: r.try_get("seq")?,
                order_no: r.try_get("order_no")?,
                provider_txn_id: r.try_get("provider_txn_id")?,
                amount: fen(r, "amount_fen")?,
                status: r.try_get("status")?,
                local_amount: opt_fen(r, "local_amount")?,
            })
        })
        .collect()
}

/// A bill payment whose transaction id an earlier row of the bill already had.
#[derive(Debug, Clone)]
pub struct RepeatedPayment {
    pub seq: i64,
    pub order_no: Option<String>,
    pub provider_txn_id: String,
    pub amount: Fen,
    pub status: String,
    /// The amount of the first row with that transaction id.
    pub first_amount: Fen,
}

/// A page, after `after_seq`, of the payments staged under `all_key` (every bill payment, by
/// position in the bill) that repeat the transaction id of an earlier one.
pub async fn repeated_payments(
    reader: &AnyPool,
    all_key: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<RepeatedPayment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT b.seq, b.order_no, b.provider_txn_id, b.amount_fen, b.status,
                f.amount_fen AS first_amount
         FROM reconciliation_bill_row b
         JOIN reconciliation_bill_row f ON f.run_key = b.run_key AND f.kind = 'payment'
              AND f.provider_txn_id = b.provider_txn_id
              AND f.seq = (SELECT MIN(m.seq) FROM reconciliation_bill_row m
                           WHERE m.run_key = b.run_key AND m.kind = 'payment'
                             AND m.provider_txn_id = b.provider_txn_id)
         WHERE b.run_key = $1 AND b.kind = 'payment' AND b.seq > $2 AND b.seq > f.seq
         ORDER BY b.seq LIMIT $3",
    )
    .bind(all_key)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RepeatedPayment {
                seq: r.try_get("seq")?,
                order_no: r.try_get("order_no")?,
                provider_txn_id: r.try_get("provider_txn_id")?,
                amount: fen(r, "amount_fen")?,
                status: r.try_get("status")?,
                first_amount: fen(r, "first_amount")?,
            })
        })
        .collect()
}

/// How many payment rows staged under `run_key` are local payments paid in [`from`, `to`).
pub async fn staged_payments_paid_between(
    reader: &AnyPool,
    run_key: &str,
    provider: ProviderId,
    (from, to): (i64, i64),
) -> Result<u64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM reconciliation_bill_row b
         JOIN payment p ON p.provider = $2 AND p.provider_txn_id = b.provider_txn_id
         WHERE b.run_key = $1 AND b.kind = 'payment' AND p.paid_at >= $3 AND p.paid_at < $4",
    )
    .bind(run_key)
    .bind(provider.as_str())
    .bind(from)
    .bind(to)
    .fetch_one(reader)
    .await?;
    Ok(count as u64)
}

/// A local payment of the day that no bill payment staged under the run's key has.
#[derive(Debug, Clone)]
pub struct MissingPayment {
    pub payment_id: String,
    pub order_no: String,
    pub provider_txn_id: String,
    pub amount: Fen,
}

/// A page, after `after_id` (by payment id), of `provider`'s payments paid in [`from`, `to`)
/// whose transaction id no payment staged under `all_key` (every bill payment) has.
pub async fn payments_not_staged(
    reader: &AnyPool,
    all_key: &str,
    provider: ProviderId,
    (from, to): (i64, i64),
    after_id: &str,
    limit: i64,
) -> Result<Vec<MissingPayment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.payment_id, p.order_no, p.provider_txn_id, p.amount_fen FROM payment p
         WHERE p.provider = $2 AND p.paid_at >= $3 AND p.paid_at < $4 AND p.payment_id > $5
           AND NOT EXISTS (SELECT 1 FROM reconciliation_bill_row b
                           WHERE b.run_key = $1 AND b.kind = 'payment'
                             AND b.provider_txn_id = p.provider_txn_id)
         ORDER BY p.payment_id LIMIT $6",
    )
    .bind(all_key)
    .bind(provider.as_str())
    .bind(from)
    .bind(to)
    .bind(after_id)
    .bind(limit)
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MissingPayment {
                payment_id: r.try_get("payment_id")?,
                order_no: r.try_get("order_no")?,
                provider_txn_id: r.try_get("provider_txn_id")?,
                amount: fen(r, "amount_fen")?,
            })
        })
        .collect()
}

/// A staged bill refund that no local refund matches, with the local refund it was set
/// against if there is one.
#[derive(Debug, Clone)]
pub struct UnmatchedRefund {
    pub seq: i64,
    pub order_no: Option<String>,
    pub provider_txn_id: String,
    pub refund_no: Option<String>,
    pub amount: Fen,
    pub status: String,
    pub occurred_at: i64,
    pub local_amount: Option<Fen>,
    pub local_status: Option<String>,
}

/// A page, after `after_seq`, of the refunds staged under `run_key` that no local refund
/// (failed ones left out) matches: by refund number, or, for a bill without refund numbers, by
/// order and amount; none, another amount, or one side succeeded and the other not.
pub async fn unmatched_refunds(
    reader: &AnyPool,
    run_key: &str,
    provider: ProviderId,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<UnmatchedRefund>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT b.seq, b.order_no, b.provider_txn_id, b.refund_no, b.amount_fen, b.status,
                b.occurred_at, r.amount_fen AS local_amount, r.status AS local_status
         FROM reconciliation_bill_row b
         LEFT JOIN refund r ON r.provider = $2 AND r.status <> 'failed'
              AND (r.out_refund_no = b.refund_no
                   OR (b.refund_no IS NULL AND r.order_no = b.order_no AND r.amount_fen = b.amount_fen))
         WHERE b.run_key = $1 AND b.kind = 'refund' AND b.seq > $3
           AND (r.refund_id IS NULL OR r.amount_fen <> b.amount_fen
                OR (b.status = 'SUCCESS' AND r.status <> 'succeeded')
                OR (b.status <> 'SUCCESS' AND r.status = 'succeeded'))
         ORDER BY b.seq LIMIT $4",
    )
    .bind(run_key)
    .bind(provider.as_str())
    .bind(after_seq)
    .bind(limit)
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UnmatchedRefund {
                seq: r.try_get("seq")?,
                order_no: r.try_get("order_no")?,
                provider_txn_id: r.try_get("provider_txn_id")?,
                refund_no: r.try_get("refund_no")?,
                amount: fen(r, "amount_fen")?,
                status: r.try_get("status")?,
                occurred_at: r.try_get("occurred_at")?,
                local_amount: opt_fen(r, "local_amount")?,
                local_status: r.try_get("local_status")?,
            })
        })
        .collect()
}

/// A local refund of the day that no bill refund staged under the run's key has.
#[derive(Debug, Clone)]
pub struct MissingRefund {
    pub refund_id: String,
    pub order_no: String,
    pub out_refund_no: String,
    pub amount: Fen,
    pub status: String,
}

/// A page, after `after_id` (by refund id), of `provider`'s refunds requested in [`from`,
/// `to`) (failed ones left out) that no refund staged under `run_key` matches (by refund
/// number, or by order and amount for a bill without refund numbers).
pub async fn refunds_not_staged(
    reader: &AnyPool,
    run_key: &str,
    provider: ProviderId,
    (from, to): (i64, i64),
    after_id: &str,
    limit: i64,
) -> Result<Vec<MissingRefund>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.refund_id, r.order_no, r.out_refund_no, r.amount_fen, r.status FROM refund r
         WHERE r.provider = $2 AND r.status <> 'failed' AND r.created_at >= $3
           AND r.created_at < $4 AND r.refund_id > $5
           AND NOT EXISTS (SELECT 1 FROM reconciliation_bill_row b
                           WHERE b.run_key = $1 AND b.kind = 'refund'
                             AND (b.refund_no = r.out_refund_no
                                  OR (b.refund_no IS NULL AND b.order_no = r.order_no
                                      AND b.amount_fen = r.amount_fen)))
         ORDER BY r.refund_id LIMIT $6",
    )
    .bind(run_key)
    .bind(provider.as_str())
    .bind(from)
    .bind(to)
    .bind(after_id)
    .bind(limit)
    .fetch_all(reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MissingRefund {
                refund_id: r.try_get("refund_id")?,
                order_no: r.try_get("order_no")?,
                out_refund_no: r.try_get("out_refund_no")?,
                amount: fen(r, "amount_fen")?,
                status: r.try_get("status")?,
            })
        })
        .collect()
}
