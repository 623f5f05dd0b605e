//! The console overview's sums: money in and out per Beijing day and provider, and the
//! discrepancies reconciliation left unhealed. Each is one grouped statement over an indexed
//! range (`payment (provider, paid_at)`, `refund (provider, succeeded_at)`).

use super::db::Db;
use super::sql::{Columns, Value};
use crate::domain::{Fen, ProviderId};

/// Beijing is UTC+8 all year: its day number is `(ms + 8 h) / 24 h`, the same integer
/// division on both backends.
const DAY: &str = "(%COL% + 28800000) / 86400000";

/// One provider's count and sum on one Beijing day (days since 1970-01-01 in Beijing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotal {
    pub day: i64,
    pub provider: ProviderId,
    pub count: i64,
    pub amount: Fen,
}

fn totals_sql(table: &str, time: &str, extra: &str) -> String {
    let day = DAY.replace("%COL%", time);
    format!(
        "SELECT provider, {day} AS day, COUNT(*) AS n, CAST(SUM(amount_fen) AS BIGINT) AS fen
         FROM {table} WHERE {time} >= $1 AND {time} < $2 {extra}
         GROUP BY provider, {day} ORDER BY day, provider"
    )
}

async fn totals(
    db: &Db,
    sql: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DayTotal>, sqlx::Error> {
    let values: [Value; 2] = [from_ms.into(), to_ms.into()];
    db.lookup_all(sql, &values, |r| {
        let provider: String = r.column("provider")?;
        Ok(DayTotal {
            day: r.column("day")?,
            provider: super::sql::parsed("provider", &provider, ProviderId::parse)?,
            count: r.column("n")?,
            amount: super::sql::fen_of("amount_fen", r.column("fen")?)?,
        })
    })
    .await
}

/// Payments received per Beijing day and provider, paid in [`from_ms`, `to_ms`).
pub async fn daily_payments(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DayTotal>, sqlx::Error> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| totals_sql("payment", "paid_at", ""));
    totals(db, &SQL, from_ms, to_ms).await
}

/// Refunds that went back per Beijing day and provider, in [`from_ms`, `to_ms`).
pub async fn daily_refunds(
    db: &Db,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<DayTotal>, sqlx::Error> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        totals_sql("refund", "succeeded_at", "AND status = 'succeeded'")
    });
    totals(db, &SQL, from_ms, to_ms).await
}

/// Discrepancies not healed, of the runs of bill dates from `since` (YYYY-MM-DD) on: what
/// finance still has to look at.
pub async fn open_discrepancies(db: &Db, since: chrono::NaiveDate) -> Result<i64, sqlx::Error> {
    db.lookup_optional(
        "SELECT COUNT(*) AS n FROM reconciliation_discrepancy d
         JOIN reconciliation_run r ON r.reconciliation_id = d.reconciliation_id
         WHERE r.bill_date >= $1 AND d.healed = 0",
        &[since.to_string().into()],
        |r| r.column::<i64>("n"),
    )
    .await?
    .ok_or(sqlx::Error::RowNotFound)
}
