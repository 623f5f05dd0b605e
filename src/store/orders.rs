//! Orders and their payments.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order_no: String,
    pub employer_id: String,
    pub plan_id: String,
    pub grants_json: String,
    pub amount_fen: i64,
    pub currency: String,
    pub provider: String,
    pub channel: String,
    pub status: String,
    pub payment_json: Option<String>,
    pub late_payment: bool,
    pub refunded_fen: i64,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

const ORDER_COLUMNS: &str = "order_no, employer_id, plan_id, grants_json, amount_fen, currency, \
     provider, channel, status, payment_json, late_payment, refunded_fen, expires_at, paid_at, \
     closed_at, created_at, updated_at";

fn order_from_row(r: &AnyRow) -> Result<OrderRow, sqlx::Error> {
    Ok(OrderRow {
        order_no: r.try_get("order_no")?,
        employer_id: r.try_get("employer_id")?,
        plan_id: r.try_get("plan_id")?,
        grants_json: r.try_get("grants_json")?,
        amount_fen: r.try_get("amount_fen")?,
        currency: r.try_get("currency")?,
        provider: r.try_get("provider")?,
        channel: r.try_get("channel")?,
        status: r.try_get("status")?,
        payment_json: r.try_get("payment_json")?,
        late_payment: r.try_get::<i64, _>("late_payment")? != 0,
        refunded_fen: r.try_get("refunded_fen")?,
        expires_at: r.try_get("expires_at")?,
        paid_at: r.try_get("paid_at")?,
        closed_at: r.try_get("closed_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub async fn insert(pool: &AnyPool, o: &OrderRow) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO payment_order ({ORDER_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    )))
    .bind(&o.order_no)
    .bind(&o.employer_id)
    .bind(&o.plan_id)
    .bind(&o.grants_json)
    .bind(o.amount_fen)
    .bind(&o.currency)
    .bind(&o.provider)
    .bind(&o.channel)
    .bind(&o.status)
    .bind(&o.payment_json)
    .bind(i64::from(o.late_payment))
    .bind(o.refunded_fen)
    .bind(o.expires_at)
    .bind(o.paid_at)
    .bind(o.closed_at)
    .bind(o.created_at)
    .bind(o.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get<'e, E>(exec: E, order_no: &str) -> Result<Option<OrderRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM payment_order WHERE order_no = $1"
    )))
    .bind(order_no)
    .fetch_optional(exec)
    .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// Removes an order the provider never accepted (nothing half-created is left behind).
/// Only a pending order with no payment can go.
pub async fn delete_unaccepted(pool: &AnyPool, order_no: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM payment_order WHERE order_no = $1 AND status = 'pending' AND payment_json IS NULL")
        .bind(order_no)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_payment_json(
    conn: &mut sqlx::AnyConnection,
    order_no: &str,
    payment_json: &str,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE payment_order SET payment_json = $1, updated_at = $2 WHERE order_no = $3")
        .bind(payment_json)
        .bind(now_ms)
        .bind(order_no)
        .execute(conn)
        .await?;
    Ok(())
}

/// pending → closed. False when the order was no longer pending (paid meanwhile).
pub async fn mark_closed(
    tx: &mut super::Tx,
    order_no: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE payment_order SET status = 'closed', closed_at = $1, updated_at = $1
         WHERE order_no = $2 AND status = 'pending'",
    )
    .bind(now_ms)
    .bind(order_no)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// An order a job looks at: its number and provider, and its place in the pass's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueOrder {
    pub order_no: String,
    pub provider: String,
    /// The time the pass orders by (`created_at` or `expires_at`).
    pub key: i64,
}

/// Where a pass resumes: after this (key, order_no). Keyset paging, so orders that stay
/// pending (a provider that did not answer) are not met again within one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub order_no: String,
}

impl Cursor {
    pub fn start() -> Cursor {
        Cursor {
            key: i64::MIN,
            order_no: String::new(),
        }
    }

    pub fn after(order: &DueOrder) -> Cursor {
        Cursor {
            key: order.key,
            order_no: order.order_no.clone(),
        }
    }
}

fn due_orders(rows: Vec<(String, String, i64)>) -> Vec<DueOrder> {
    rows.into_iter()
        .map(|(order_no, provider, key)| DueOrder {
            order_no,
            provider,
            key,
        })
        .collect()
}

/// Pending orders created at or before `created_before` that have not expired yet: due an
/// active query. Oldest first, after `cursor`.
pub async fn pending_created_before(
    pool: &AnyPool,
    created_before: i64,
    now_ms: i64,
    cursor: &Cursor,
    limit: i64,
) -> Result<Vec<DueOrder>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT order_no, provider, created_at FROM payment_order
         WHERE status = 'pending' AND created_at <= $1 AND expires_at > $2
           AND (created_at > $3 OR (created_at = $3 AND order_no > $4))
         ORDER BY created_at, order_no LIMIT $5",
    )
    .bind(created_before)
    .bind(now_ms)
    .bind(cursor.key)
    .bind(&cursor.order_no)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(due_orders(rows))
}

/// Pending orders whose expiry has passed. Earliest expiry first, after `cursor`.
pub async fn pending_expired(
    pool: &AnyPool,
    now_ms: i64,
    cursor: &Cursor,
    limit: i64,
) -> Result<Vec<DueOrder>, sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT order_no, provider, expires_at FROM payment_order
         WHERE status = 'pending' AND expires_at <= $1
           AND (expires_at > $2 OR (expires_at = $2 AND order_no > $3))
         ORDER BY expires_at, order_no LIMIT $4",
    )
    .bind(now_ms)
    .bind(cursor.key)
    .bind(&cursor.order_no)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(due_orders(rows))
}

#[derive(Debug, Clone)]
pub struct PaymentRow {
    pub payment_id: String,
    pub provider_txn_id: String,
    pub amount_fen: i64,
    pub currency: String,
    pub trade_type: Option<String>,
    pub bank_type: Option<String>,
    pub source: String,
    pub paid_at: i64,
}

pub async fn payment_of<'e, E>(exec: E, order_no: &str) -> Result<Option<PaymentRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT payment_id, provider_txn_id, amount_fen, currency, trade_type, bank_type, source, paid_at
         FROM payment WHERE order_no = $1",
    )
    .bind(order_no)
    .fetch_optional(exec)
    .await?;
    row.map(|r| {
        Ok(PaymentRow {
            payment_id: r.try_get("payment_id")?,
            provider_txn_id: r.try_get("provider_txn_id")?,
            amount_fen: r.try_get("amount_fen")?,
            currency: r.try_get("currency")?,
            trade_type: r.try_get("trade_type")?,
            bank_type: r.try_get("bank_type")?,
            source: r.try_get("source")?,
            paid_at: r.try_get("paid_at")?,
        })
    })
    .transpose()
}
