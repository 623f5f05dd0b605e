//! Refunds. A refund's status changes only here, each as a conditional update whose `WHERE`
//! names the states [`RefundStatus::can_become`] allows to move.

use sqlx::AnyPool;

use super::orders::{corrupt, fen_of};
use super::sql::{opt_time_of, time_of};
use crate::domain::{
    Actor, Currency, Fen, OrderNo, OutRefundNo, ProviderId, RefundId, RefundOrigin, RefundStatus,
};

#[derive(Debug, Clone)]
pub struct RefundRow {
    pub refund_id: RefundId,
    pub order_no: OrderNo,
    pub provider: ProviderId,
    /// The number the provider knows the refund by, or the mark of a refund inferred from a
    /// query answer.
    pub out_refund_no: OutRefundNo,
    pub provider_refund_id: Option<String>,
    pub amount: Fen,
    pub currency: Currency,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub origin: RefundOrigin,
    pub failure: Option<String>,
    pub next_query_at: Option<i64>,
    pub query_attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub succeeded_at: Option<i64>,
    pub failed_at: Option<i64>,
    /// Who started it (`console:<name>`, `api_key:<id>`, `cli`); `None` for a refund made at
    /// the provider's portal and for refunds from before actors were recorded.
    pub actor: Option<Actor>,
}

const COLUMNS: &str = "refund_id, order_no, provider, out_refund_no, provider_refund_id, \
     amount_fen, currency, reason, status, origin, failure, next_query_at, query_attempts, \
     created_at, updated_at, succeeded_at, failed_at, actor";

fn from_row(r: &impl super::Columns) -> Result<RefundRow, sqlx::Error> {
    let text = |column: &'static str| r.column::<String>(column);
    let (refund_id, order_no, provider) =
        (text("refund_id")?, text("order_no")?, text("provider")?);
    let (currency, status, origin) = (text("currency")?, text("status")?, text("origin")?);
    let out_refund_no = text("out_refund_no")?;
    let time = |column: &'static str| -> Result<i64, sqlx::Error> {
        let ms = r.column(column)?;
        time_of(column, ms)?;
        Ok(ms)
    };
    let opt_time = |column: &'static str| -> Result<Option<i64>, sqlx::Error> {
        let ms = r.column(column)?;
        opt_time_of(column, ms)?;
        Ok(ms)
    };
    Ok(RefundRow {
        refund_id: RefundId::parse(&refund_id).ok_or_else(|| corrupt("refund_id", &refund_id))?,
        order_no: OrderNo::parse(&order_no).ok_or_else(|| corrupt("order_no", &order_no))?,
        provider: ProviderId::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        out_refund_no: OutRefundNo::parse(&out_refund_no)
            .ok_or_else(|| corrupt("out_refund_no", &out_refund_no))?,
        provider_refund_id: r.column("provider_refund_id")?,
        amount: fen_of("amount_fen", r.column("amount_fen")?)?,
        currency: Currency::parse(&currency).ok_or_else(|| corrupt("currency", &currency))?,
        reason: r.column("reason")?,
        status: RefundStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        origin: RefundOrigin::parse(&origin).ok_or_else(|| corrupt("origin", &origin))?,
        failure: r.column("failure")?,
        // Times stay milliseconds here, checked to be times: rendered later, they cannot fail.
        next_query_at: opt_time("next_query_at")?,
        query_attempts: r.column("query_attempts")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        succeeded_at: opt_time("succeeded_at")?,
        failed_at: opt_time("failed_at")?,
        actor: r
            .column::<Option<String>>("actor")?
            .map(|a| super::sql::parsed("actor", &a, Actor::parse))
            .transpose()?,
    })
}

fn may_become(next: RefundStatus) -> String {
    let sources: Vec<String> = [
        RefundStatus::Processing,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
    ]
    .into_iter()
    .filter(|s| s.can_become(next))
    .map(|s| format!("'{}'", s.as_str()))
    .collect();
    format!("status IN ({})", sources.join(", "))
}

pub async fn insert(tx: &mut super::Tx, r: &RefundRow) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO refund ({COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    )))
    .bind(r.refund_id.as_str())
    .bind(r.order_no.as_str())
    .bind(r.provider.as_str())
    .bind(r.out_refund_no.to_string())
    .bind(&r.provider_refund_id)
    .bind(r.amount.get())
    .bind(r.currency.as_str())
    .bind(&r.reason)
    .bind(r.status.as_str())
    .bind(r.origin.as_str())
    .bind(&r.failure)
    .bind(r.next_query_at)
    .bind(r.query_attempts)
    .bind(r.created_at)
    .bind(r.updated_at)
    .bind(r.succeeded_at)
    .bind(r.failed_at)
    .bind(r.actor.as_ref().map(ToString::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get<'e, E>(exec: E, refund_id: &RefundId) -> Result<Option<RefundRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM refund WHERE refund_id = $1"
    )))
    .bind(refund_id.as_str())
    .fetch_optional(exec)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn by_out_refund_no<'e, E>(
    exec: E,
    provider: ProviderId,
    out_refund_no: &OutRefundNo,
) -> Result<Option<RefundRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM refund WHERE provider = $1 AND out_refund_no = $2"
    )))
    .bind(provider.as_str())
    .bind(out_refund_no.to_string())
    .fetch_optional(exec)
    .await?;
    row.as_ref().map(from_row).transpose()
}

static OF_ORDER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM refund WHERE order_no = $1 ORDER BY created_at, refund_id")
});

/// The order's refunds, oldest first.
pub async fn of_order<'e, E>(exec: E, order_no: &OrderNo) -> Result<Vec<RefundRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(sqlx::AssertSqlSafe(OF_ORDER.as_str()))
        .bind(order_no.as_str())
        .fetch_all(exec)
        .await?;
    rows.iter().map(from_row).collect()
}

/// [`of_order`] as a lookup by key (see [`super::Db::lookup_all`]): what an order read shows.
pub async fn of_order_lookup(
    db: &super::Db,
    order_no: &OrderNo,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    let values = [order_no.as_str().into()];
    db.lookup_all(OF_ORDER.as_str(), &values, |r| from_row(r))
        .await
}

/// → succeeded. False when another report got there first.
pub async fn mark_succeeded(
    tx: &mut super::Tx,
    refund_id: &RefundId,
    provider_refund_id: Option<&str>,
    succeeded_at: i64,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE refund SET status = 'succeeded', succeeded_at = $1, updated_at = $2,
                           provider_refund_id = COALESCE($3, provider_refund_id),
                           next_query_at = NULL
         WHERE refund_id = $4 AND {}",
        may_become(RefundStatus::Succeeded)
    )))
    .bind(succeeded_at)
    .bind(now_ms)
    .bind(provider_refund_id)
    .bind(refund_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// processing → failed. False when it was no longer processing.
pub async fn mark_failed(
    tx: &mut super::Tx,
    refund_id: &RefundId,
    failure: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE refund SET status = 'failed', failure = $1, failed_at = $2, updated_at = $2,
                           next_query_at = NULL
         WHERE refund_id = $3 AND {}",
        may_become(RefundStatus::Failed)
    )))
    .bind(failure)
    .bind(now_ms)
    .bind(refund_id.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// A processing refund is asked about again at `next_at` (the refund job); the provider's own
/// refund id is kept once known.
pub async fn schedule_query(
    pool: &AnyPool,
    refund_id: &RefundId,
    provider_refund_id: Option<&str>,
    next_at: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refund SET next_query_at = $1, query_attempts = query_attempts + 1, updated_at = $2,
                           provider_refund_id = COALESCE($3, provider_refund_id)
         WHERE refund_id = $4 AND status = 'processing'",
    )
    .bind(next_at)
    .bind(now_ms)
    .bind(provider_refund_id)
    .bind(refund_id.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Gives a refund inferred from a query answer for `order_no` (whose number the answer did
/// not say) the number a later notification names. False when it already had another.
pub async fn adopt_out_refund_no(
    tx: &mut super::Tx,
    refund_id: &RefundId,
    order_no: &OrderNo,
    out_refund_no: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let inferred = OutRefundNo::Inferred(order_no.clone());
    let n = sqlx::query(
        "UPDATE refund SET out_refund_no = $1, updated_at = $2
         WHERE refund_id = $3 AND out_refund_no = $4",
    )
    .bind(out_refund_no)
    .bind(now_ms)
    .bind(refund_id.as_str())
    .bind(inferred.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Processing refunds due a query at `now_ms`, by (next_query_at, refund_id) after `cursor`.
pub async fn due_query(
    pool: &AnyPool,
    now_ms: i64,
    cursor: &super::orders::Cursor,
    limit: i64,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM refund
         WHERE status = 'processing' AND next_query_at <= $1
           AND (next_query_at > $2 OR (next_query_at = $2 AND refund_id > $3))
         ORDER BY next_query_at, refund_id LIMIT $4"
    )))
    .bind(now_ms)
    .bind(cursor.key)
    .bind(&cursor.id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}
