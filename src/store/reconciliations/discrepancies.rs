//! A run's discrepancy rows: written as the run finds them, read back page by page (the CSV).

use chrono::NaiveDate;
use sqlx::{AnyPool, Row};

use super::columns::opt_fen;
use crate::domain::reconciliation::{Discrepancy, DiscrepancyClass, DiscrepancyKind};
use crate::domain::{Fen, ProviderId};
use crate::store::orders::corrupt;

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
    .bind(d.class.as_str())
    .bind(d.kind.as_str())
    .bind(&d.order_no)
    .bind(&d.provider_txn_id)
    .bind(&d.refund_no)
    .bind(d.bill_amount_fen.map(Fen::get))
    .bind(d.local_amount_fen.map(Fen::get))
    .bind(&d.bill_status)
    .bind(&d.local_status)
    .bind(i64::from(d.healed))
    .bind(&d.note)
    .bind(d.duplicate_amount_fen.map(Fen::get))
    .execute(pool)
    .await?;
    Ok(())
}

/// A page of a run's discrepancies after `after_seq`, in order. A class or kind that is not
/// one of ours is an error naming its column.
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
    rows.iter().map(discrepancy_from).collect()
}

/// The discrepancies not healed, per provider and class, in the completed runs of the bill
/// dates from `since` on (one run per provider and date: a re-run replaced the date's earlier
/// one). Reads the runs (a row per provider and day) and, by the primary key, the discrepancy
/// rows of those dates only, so its cost is those days' discrepancies, not the history's
/// (`/metrics`, at every scrape).
pub async fn unhealed(
    pool: &AnyPool,
    since: NaiveDate,
) -> Result<Vec<(ProviderId, DiscrepancyClass, u64)>, sqlx::Error> {
    // CROSS JOIN keeps the runs as SQLite's outer loop: without statistics its planner scans
    // every discrepancy row ever written and looks each run up (measured: 730,000 rows, a
    // quarter of a second per scrape; benches/scrape.rs). PostgreSQL plans it as the inner
    // join it is.
    let rows = sqlx::query(
        "SELECT r.provider, d.class, COUNT(*) AS n
         FROM reconciliation_run r CROSS JOIN reconciliation_discrepancy d
         WHERE d.reconciliation_id = r.reconciliation_id
           AND r.status = 'completed' AND r.bill_date >= $1 AND d.healed = 0
         GROUP BY r.provider, d.class",
    )
    .bind(since.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let provider: String = r.try_get("provider")?;
            let class: String = r.try_get("class")?;
            let n: i64 = r.try_get("n")?;
            Ok((
                ProviderId::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
                DiscrepancyClass::parse_stored(&class).ok_or_else(|| corrupt("class", &class))?,
                u64::try_from(n).map_err(|e| corrupt("COUNT(*)", e))?,
            ))
        })
        .collect()
}

fn discrepancy_from(r: &sqlx::any::AnyRow) -> Result<(i64, Discrepancy), sqlx::Error> {
    let class: String = r.try_get("class")?;
    let kind: String = r.try_get("kind")?;
    Ok((
        r.try_get("seq")?,
        Discrepancy {
            class: DiscrepancyClass::parse_stored(&class)
                .ok_or_else(|| corrupt("class", &class))?,
            kind: DiscrepancyKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
            order_no: r.try_get("order_no")?,
            provider_txn_id: r.try_get("provider_txn_id")?,
            refund_no: r.try_get("refund_no")?,
            bill_amount_fen: opt_fen(r, "bill_amount_fen")?,
            local_amount_fen: opt_fen(r, "local_amount_fen")?,
            bill_status: r.try_get("bill_status")?,
            local_status: r.try_get("local_status")?,
            healed: r.try_get::<i64, _>("healed")? != 0,
            note: r.try_get("note")?,
            duplicate_amount_fen: opt_fen(r, "duplicate_amount_fen")?,
        },
    ))
}

/// Up to `limit` of a run's discrepancies of `class` (any when `None`), healed or not (either
/// when `None`), in order (the console's run page).
pub async fn filtered(
    pool: &AnyPool,
    id: &str,
    class: Option<DiscrepancyClass>,
    healed: Option<bool>,
    limit: i64,
) -> Result<Vec<(i64, Discrepancy)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, class, kind, order_no, provider_txn_id, refund_no, bill_amount_fen,
                local_amount_fen, bill_status, local_status, healed, note, duplicate_amount_fen
         FROM reconciliation_discrepancy
         WHERE reconciliation_id = $1 AND ($2 IS NULL OR class = $2) AND ($3 IS NULL OR healed = $3)
         ORDER BY seq LIMIT $4",
    )
    .bind(id)
    .bind(class.map(|c| c.as_str()))
    .bind(healed.map(i64::from))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(discrepancy_from).collect()
}
