//! Reconciliation runs, their discrepancies, and the bill rows staged while a run computes.

use sqlx::{AnyPool, Row};

use super::Tx;
use crate::reconcile::bill::BillEntry;

/// Rows per INSERT statement. Small on purpose: binding `$n` parameters costs more than
/// linearly in their number (measured: 1,000 rows a statement staged 100 k rows in 12 s, 200 in
/// 3.4 s, 32 to 50 in 1.7–2.3 s).
const ROWS_PER_STATEMENT: usize = 32;

/// Stages `rows` (each with its position in the bill) under `run_key`, in one transaction.
pub async fn stage(
    tx: &mut Tx,
    run_key: &str,
    rows: &[(i64, BillEntry)],
) -> Result<(), sqlx::Error> {
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
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Transaction ids looked up per statement (see [`ROWS_PER_STATEMENT`] for why not more).
pub const LOOKUP_CHUNK: usize = 128;

/// A local payment as the bill's rows are matched against it.
#[derive(Debug, Clone, Copy)]
pub struct LocalPayment {
    pub amount_fen: i64,
    pub paid_at: i64,
}

/// The local payments of `provider` among `txn_ids` (at most [`LOOKUP_CHUNK`]), by transaction id.
pub async fn payments_by_txn(
    reader: &AnyPool,
    provider: &str,
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
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(provider.to_owned());
    for id in txn_ids {
        query = query.bind((*id).to_owned());
    }
    let rows = query.fetch_all(reader).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("provider_txn_id")?,
                LocalPayment {
                    amount_fen: r.try_get("amount_fen")?,
                    paid_at: r.try_get("paid_at")?,
                },
            ))
        })
        .collect()
}

/// A staged bill payment that no local payment of the same amount matches, with the local
/// payment of its transaction id if there is one.
#[derive(Debug, Clone)]
pub struct UnmatchedPayment {
    pub seq: i64,
    pub order_no: Option<String>,
    pub provider_txn_id: String,
    pub amount_fen: i64,
    pub status: String,
    pub local_amount_fen: Option<i64>,
}

/// A page, after `after_seq`, of the payments staged under `run_key` that no local payment
/// matches (none of that transaction id, another amount, or a bill status other than
/// `SUCCESS`), leaving out each row that repeats the transaction id of an earlier row of
/// `all_key` (every bill payment, when staged: the repeats are `duplicate_remote`).
pub async fn unmatched_payments(
    reader: &AnyPool,
    (run_key, all_key): (&str, &str),
    provider: &str,
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
    .bind(provider)
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
                amount_fen: r.try_get("amount_fen")?,
                status: r.try_get("status")?,
                local_amount_fen: r.try_get("local_amount")?,
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
    pub amount_fen: i64,
    pub status: String,
    /// The amount of the first row with that transaction id.
    pub first_amount_fen: i64,
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
                amount_fen: r.try_get("amount_fen")?,
                status: r.try_get("status")?,
                first_amount_fen: r.try_get("first_amount")?,
            })
        })
        .collect()
}

/// How many payment rows staged under `run_key` are local payments paid in [`from`, `to`).
pub async fn staged_payments_paid_between(
    reader: &AnyPool,
    run_key: &str,
    provider: &str,
    from: i64,
    to: i64,
) -> Result<u64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM reconciliation_bill_row b
         JOIN payment p ON p.provider = $2 AND p.provider_txn_id = b.provider_txn_id
         WHERE b.run_key = $1 AND b.kind = 'payment' AND p.paid_at >= $3 AND p.paid_at < $4",
    )
    .bind(run_key)
    .bind(provider)
    .bind(from)
    .bind(to)
    .fetch_one(reader)
    .await?;
    Ok(count as u64)
}

/// A local payment of a day, as the missing-remote check pages through them.
#[derive(Debug, Clone)]
pub struct DayPayment {
    pub payment_id: String,
    pub order_no: String,
    pub provider_txn_id: String,
    pub amount_fen: i64,
    pub paid_at: i64,
}

/// A page of `provider`'s payments paid in [`from`, `to`), after `after` = (paid_at,
/// payment_id), in that order.
pub async fn payments_paid_between(
    reader: &AnyPool,
    provider: &str,
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
    .bind(provider)
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
                amount_fen: r.try_get("amount_fen")?,
                paid_at: r.try_get("paid_at")?,
            })
        })
        .collect()
}

pub async fn drop_staged(pool: &AnyPool, run_key: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM reconciliation_bill_row WHERE run_key = $1")
        .bind(run_key)
        .execute(pool)
        .await?;
    Ok(())
}

/// One discrepancy, as stored and as the CSV shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    pub class: &'static str,
    pub kind: &'static str,
    /// `None`: the bill row names no merchant order.
    pub order_no: Option<String>,
    pub provider_txn_id: Option<String>,
    pub refund_no: Option<String>,
    pub bill_amount_fen: Option<i64>,
    pub local_amount_fen: Option<i64>,
    pub bill_status: Option<String>,
    pub local_status: Option<String>,
    pub healed: bool,
    pub note: Option<String>,
    /// `duplicate_remote`: the amount of the row that repeats the transaction id
    /// (`bill_amount_fen` is the first row's).
    pub duplicate_amount_fen: Option<i64>,
}

pub async fn insert_discrepancy(
    pool: &AnyPool,
    reconciliation_id: &str,
    seq: i64,
    d: &Discrepancy,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reconciliation_discrepancy (reconciliation_id, seq, class, kind, order_no,
            provider_txn_id, refund_no, bill_amount_fen, local_amount_fen, bill_status,
            local_status, healed, note, duplicate_amount_fen)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(reconciliation_id)
    .bind(seq)
    .bind(d.class)
    .bind(d.kind)
    .bind(&d.order_no)
    .bind(&d.provider_txn_id)
    .bind(&d.refund_no)
    .bind(d.bill_amount_fen)
    .bind(d.local_amount_fen)
    .bind(&d.bill_status)
    .bind(&d.local_status)
    .bind(i64::from(d.healed))
    .bind(&d.note)
    .bind(d.duplicate_amount_fen)
    .execute(pool)
    .await?;
    Ok(())
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub reconciliation_id: String,
    pub provider: String,
    pub bill_date: String,
    pub status: String,
    pub failure: Option<String>,
    /// The run's summary (a JSON object); stored as text in `summary_json`.
    pub summary: serde_json::Value,
    pub started_at: i64,
    pub finished_at: i64,
}

const RUN_COLUMNS: &str = "reconciliation_id, provider, bill_date, status, failure, summary_json, started_at, finished_at";

fn run_from(r: &sqlx::any::AnyRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        reconciliation_id: r.try_get("reconciliation_id")?,
        provider: r.try_get("provider")?,
        bill_date: r.try_get("bill_date")?,
        status: r.try_get("status")?,
        failure: r.try_get("failure")?,
        summary: super::orders::json_column(
            "summary_json",
            &r.try_get::<String, _>("summary_json")?,
        )?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

/// The run of (provider, date), if any.
pub async fn of_date<'e, E>(
    exec: E,
    provider: &str,
    bill_date: &str,
) -> Result<Option<RunRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM reconciliation_run WHERE provider = $1 AND bill_date = $2"
    )))
    .bind(provider)
    .bind(bill_date)
    .fetch_optional(exec)
    .await?;
    row.as_ref().map(run_from).transpose()
}

/// Puts `run` in place of the date's previous run and its discrepancies, in `tx`. The new
/// run's discrepancies were written before, under its id.
/// A run starts: its work row says so until its result is stored or it fails.
pub async fn begin_work(pool: &AnyPool, id: &str, started_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO reconciliation_work (reconciliation_id, started_at) VALUES ($1, $2)")
        .bind(id)
        .bind(started_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// What a run that did not finish leaves behind: its staged bill rows (under its id and
/// `{id}/payments`), its discrepancy rows (a finished run's are kept: its run row exists) and
/// its work row.
async fn drop_unfinished(db: &super::Db, id: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM reconciliation_bill_row WHERE run_key = $1 OR run_key = $2")
        .bind(id)
        .bind(format!("{id}/payments"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM reconciliation_discrepancy WHERE reconciliation_id = $1
           AND NOT EXISTS (SELECT 1 FROM reconciliation_run WHERE reconciliation_id = $1)",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM reconciliation_work WHERE reconciliation_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// A run that failed: what it wrote goes with it.
pub async fn abandon(db: &super::Db, id: &str) -> Result<(), sqlx::Error> {
    drop_unfinished(db, id).await
}

/// Runs started before `cutoff` that never finished nor failed (the process died under them):
/// what they left is deleted. Answers how many.
pub async fn sweep_abandoned(db: &super::Db, cutoff: i64) -> Result<usize, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT reconciliation_id FROM reconciliation_work WHERE started_at < $1",
    )
    .bind(cutoff)
    .fetch_all(db.reader())
    .await?;
    for id in &ids {
        drop_unfinished(db, id).await?;
    }
    Ok(ids.len())
}

pub async fn replace(tx: &mut Tx, run: &RunRow) -> Result<(), sqlx::Error> {
    if let Some(old) = of_date(&mut **tx, &run.provider, &run.bill_date).await? {
        sqlx::query("DELETE FROM reconciliation_discrepancy WHERE reconciliation_id = $1")
            .bind(&old.reconciliation_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM reconciliation_run WHERE reconciliation_id = $1")
            .bind(&old.reconciliation_id)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("DELETE FROM reconciliation_work WHERE reconciliation_id = $1")
        .bind(&run.reconciliation_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO reconciliation_run ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(&run.reconciliation_id)
    .bind(&run.provider)
    .bind(&run.bill_date)
    .bind(&run.status)
    .bind(&run.failure)
    .bind(run.summary.to_string())
    .bind(run.started_at)
    .bind(run.finished_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(pool: &AnyPool, id: &str) -> Result<Option<RunRow>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM reconciliation_run WHERE reconciliation_id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(run_from).transpose()
}

/// Runs newest date first, filtered by provider and an inclusive date range (YYYY-MM-DD).
pub async fn list(
    pool: &AnyPool,
    provider: Option<&str>,
    from: &str,
    to: &str,
    limit: i64,
) -> Result<Vec<RunRow>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM reconciliation_run
         WHERE ($1 IS NULL OR provider = $1) AND bill_date >= $2 AND bill_date <= $3
         ORDER BY bill_date DESC, provider LIMIT $4"
    )))
    .bind(provider)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(run_from).collect()
}

/// A page of a run's discrepancies after `after_seq`, in order.
pub async fn discrepancies(
    pool: &AnyPool,
    id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<(i64, Discrepancy)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, class, kind, order_no, provider_txn_id, refund_no, bill_amount_fen,
                local_amount_fen, bill_status, local_status, healed, note, duplicate_amount_fen
         FROM reconciliation_discrepancy WHERE reconciliation_id = $1 AND seq > $2
         ORDER BY seq LIMIT $3",
    )
    .bind(id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let class: String = r.try_get("class")?;
            let kind: String = r.try_get("kind")?;
            Ok((
                r.try_get("seq")?,
                Discrepancy {
                    class: crate::reconcile::class_name(&class)
                        .ok_or_else(|| super::orders::corrupt("class", &class))?,
                    kind: match kind.as_str() {
                        "payment" => "payment",
                        "refund" => "refund",
                        other => return Err(super::orders::corrupt("kind", other)),
                    },
                    order_no: r.try_get("order_no")?,
                    provider_txn_id: r.try_get("provider_txn_id")?,
                    refund_no: r.try_get("refund_no")?,
                    bill_amount_fen: r.try_get("bill_amount_fen")?,
                    local_amount_fen: r.try_get("local_amount_fen")?,
                    bill_status: r.try_get("bill_status")?,
                    local_status: r.try_get("local_status")?,
                    healed: r.try_get::<i64, _>("healed")? != 0,
                    note: r.try_get("note")?,
                    duplicate_amount_fen: r.try_get("duplicate_amount_fen")?,
                },
            ))
        })
        .collect()
}
