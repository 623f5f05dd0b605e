//! The console overview's sums: money in and out per Beijing day and provider, and the
//! discrepancies reconciliation left unhealed. Each sum is one grouped statement over a range of
//! an index on the Beijing day itself (`payment_day`, `refund_day`, migration
//! `20261207000060`): the groups come in index order and nothing is sorted.

use std::ops::Range;
use std::sync::LazyLock;

use super::db::Db;
use super::sql::{Columns, Value};
use crate::domain::{Fen, ProviderId};

/// Beijing is UTC+8 all year: its day number is `(ms + 8 h) / 24 h`, the same integer
/// division on both backends. The indexes are on this exact expression: a statement that
/// spells it differently is not served by them.
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
        "SELECT {day} AS day, provider, COUNT(*) AS n, CAST(SUM(amount_fen) AS BIGINT) AS fen
         FROM {table} WHERE {day} >= $1 AND {day} < $2 {extra}
         GROUP BY {day}, provider ORDER BY day, provider"
    )
}

async fn totals(db: &Db, sql: &str, days: Range<i64>) -> Result<Vec<DayTotal>, sqlx::Error> {
    let values: [Value; 2] = [days.start.into(), days.end.into()];
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

/// Payments per day and provider, served by `payment_day`.
static PAYMENTS: LazyLock<String> = LazyLock::new(|| totals_sql("payment", "paid_at", ""));

/// Succeeded refunds per day and provider, served by the partial index `refund_day`.
static REFUNDS: LazyLock<String> =
    LazyLock::new(|| totals_sql("refund", "succeeded_at", "AND status = 'succeeded'"));

/// Payments received per Beijing day and provider, on the Beijing `days`.
pub async fn daily_payments(db: &Db, days: Range<i64>) -> Result<Vec<DayTotal>, sqlx::Error> {
    totals(db, &PAYMENTS, days).await
}

/// Refunds that went back per Beijing day and provider, on the Beijing `days`.
pub async fn daily_refunds(db: &Db, days: Range<i64>) -> Result<Vec<DayTotal>, sqlx::Error> {
    totals(db, &REFUNDS, days).await
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

#[cfg(test)]
mod tests {
    //! The sums are cheap only while each statement spells the day exactly as its index does
    //! (migration `20261207000060`): these fail when the plan stops using the index or sorts.

    use std::time::Duration;

    use sqlx::Row;

    use super::super::db::Backend;
    use super::*;

    async fn plan(db: &Db, sql: &str) -> String {
        let explain = match db.backend() {
            Backend::Sqlite => "EXPLAIN QUERY PLAN",
            Backend::Postgres => "EXPLAIN",
        };
        let mut conn = db.pool().acquire().await.expect("connection");
        if db.backend() == Backend::Postgres {
            // The test's tables are empty, so any plan is as cheap as any other: with the other
            // ways made dear, the plan shows whether the index can serve the statement in order
            // (if it cannot, the planner still sorts or scans: disabled is not impossible).
            for off in [
                "enable_seqscan",
                "enable_bitmapscan",
                "enable_sort",
                "enable_hashagg",
            ] {
                sqlx::query(sqlx::AssertSqlSafe(format!("SET {off} = off")))
                    .execute(&mut *conn)
                    .await
                    .expect("set");
            }
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{explain} {sql}")))
            .bind(0_i64)
            .bind(1_i64)
            .fetch_all(&mut *conn)
            .await
            .expect("explain");
        rows.iter()
            .map(|r| r.get::<String, _>(r.len() - 1))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn assert_day_indexes(db: &Db) {
        for (sql, index) in [(&*PAYMENTS, "payment_day"), (&*REFUNDS, "refund_day")] {
            let plan = plan(db, sql).await;
            assert!(plan.contains(index), "{index} not used:\n{plan}");
            for sorted in ["TEMP B-TREE", "Sort", "HashAggregate"] {
                assert!(
                    !plan.contains(sorted),
                    "{index}: the groups are sorted:\n{plan}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_daily_sums_read_their_day_index_in_order_on_sqlite() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, 1, Duration::from_secs(5))
            .await
            .expect("connect");
        db.migrate().await.expect("migrate");
        assert_day_indexes(&db).await;
    }

    #[tokio::test]
    async fn the_daily_sums_read_their_day_index_in_order_on_postgres() {
        let Ok(base) = std::env::var("PAYGATE_TEST_POSTGRES_URL") else {
            eprintln!("PAYGATE_TEST_POSTGRES_URL is unset: skipping");
            return;
        };
        let name = format!("overview_plan_{}", hex::encode(rand::random::<[u8; 8]>()));
        let admin = Db::connect(&base, 1, Duration::from_secs(5))
            .await
            .expect("connect");
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(admin.pool())
            .await
            .expect("create database");
        let mut url = url::Url::parse(&base).expect("a URL");
        url.set_path(&name);
        let db = Db::connect(url.as_str(), 1, Duration::from_secs(5))
            .await
            .expect("connect");
        db.migrate().await.expect("migrate");
        assert_day_indexes(&db).await;
        db.close().await;
        let drop = format!("DROP DATABASE {name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(admin.pool())
            .await
            .expect("drop database");
    }
}
