//! Orders and their payments. Every change of an order's status is written here, each as one
//! conditional update whose `WHERE` names the states [`OrderStatus::can_become`] allows to move:
//! that update is the gate two concurrent reports meet at.

use sqlx::{AnyPool, Row};

use super::db::Db;
use super::payments;
pub use super::payments::{PaymentRow, payment_of};
use super::sql::{Columns, Statement, Tx, Value, millis_of, opt_millis_of};
// Where callers found them before `sql` held them (privacy, refunds, reconciliations).
pub(crate) use super::sql::{corrupt, fen_of, json_column};

use crate::domain::{Channel, Currency, EmployerId, Fen, Grant, OrderNo, OrderStatus, ProviderId};

/// An order as stored, every column parsed into its domain type.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order_no: OrderNo,
    pub employer_id: EmployerId,
    pub plan_id: String,
    /// The plan's grants frozen at order time.
    pub grants: Vec<Grant>,
    pub amount: Fen,
    pub currency: Currency,
    pub provider: ProviderId,
    pub channel: Channel,
    pub status: OrderStatus,
    /// The provider's payment instructions (a JSON object), once the provider accepted.
    pub payment_json: Option<serde_json::Value>,
    pub late_payment: bool,
    /// Refunds that succeeded, in total.
    pub refunded: Fen,
    /// paygate's refunds still in flight, held back from what may still be refunded.
    pub refund_pending: Fen,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl OrderRow {
    /// What a new refund may still take: paid, less what went back and what is in flight.
    pub fn refundable(&self) -> Fen {
        self.amount
            .checked_sub(self.refunded)
            .and_then(|left| left.checked_sub(self.refund_pending))
            .unwrap_or(Fen::ZERO)
    }
}

pub(super) const ORDER_COLUMNS: &str = "order_no, employer_id, plan_id, grants_json, amount_fen, currency, \
     provider, channel, status, payment_json, late_payment, refunded_fen, refund_pending_fen, \
     expires_at, paid_at, closed_at, created_at, updated_at";

pub(super) fn order_from_row(r: &impl Columns) -> Result<OrderRow, sqlx::Error> {
    let text = |column: &'static str| r.column::<String>(column);
    let order_no = text("order_no")?;
    let employer_id = text("employer_id")?;
    let currency = text("currency")?;
    let provider = text("provider")?;
    let channel = text("channel")?;
    let status = text("status")?;
    let grants: Vec<Grant> =
        serde_json::from_str(&text("grants_json")?).map_err(|e| corrupt("grants_json", e))?;
    Ok(OrderRow {
        order_no: OrderNo::parse(&order_no).ok_or_else(|| corrupt("order_no", &order_no))?,
        employer_id: EmployerId::parse(&employer_id)
            .ok_or_else(|| corrupt("employer_id", "not an employer id"))?,
        plan_id: text("plan_id")?,
        grants,
        amount: fen_of("amount_fen", r.column("amount_fen")?)?,
        currency: Currency::parse(&currency).ok_or_else(|| corrupt("currency", &currency))?,
        provider: ProviderId::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel", &channel))?,
        status: OrderStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        payment_json: r
            .column::<Option<String>>("payment_json")?
            .map(|text| json_column("payment_json", &text))
            .transpose()?,
        late_payment: r.column::<i64>("late_payment")? != 0,
        refunded: fen_of("refunded_fen", r.column("refunded_fen")?)?,
        refund_pending: fen_of("refund_pending_fen", r.column("refund_pending_fen")?)?,
        expires_at: millis_of("expires_at", r.column("expires_at")?)?,
        paid_at: opt_millis_of("paid_at", r.column("paid_at")?)?,
        closed_at: opt_millis_of("closed_at", r.column("closed_at")?)?,
        created_at: millis_of("created_at", r.column("created_at")?)?,
        updated_at: millis_of("updated_at", r.column("updated_at")?)?,
    })
}

/// `status IN ('…', …)` for the states that may become `next`: built from the one table of
/// moves, never from input.
fn may_become(next: OrderStatus) -> String {
    let sources: Vec<String> = OrderStatus::sources_of(next)
        .into_iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("status IN ({})", sources.join(", "))
}

/// `insert`'s statement: every column of [`ORDER_COLUMNS`], in order.
static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=ORDER_COLUMNS.split(',').count())
        .map(|i| format!("${i}"))
        .collect();
    format!(
        "INSERT INTO payment_order ({ORDER_COLUMNS}) VALUES ({})",
        placeholders.join(", ")
    )
});

/// A new order: `pending`, no payment yet.
pub async fn insert(db: &Db, o: &OrderRow) -> Result<(), sqlx::Error> {
    let grants_json =
        serde_json::to_string(&o.grants).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let values: Vec<Value> = vec![
        o.order_no.as_str().into(),
        o.employer_id.as_str().into(),
        o.plan_id.as_str().into(),
        grants_json.into(),
        o.amount.get().into(),
        o.currency.as_str().into(),
        o.provider.as_str().into(),
        o.channel.as_str().into(),
        OrderStatus::Pending.as_str().into(),
        o.payment_json.as_ref().map(|v| v.to_string()).into(),
        i64::from(o.late_payment).into(),
        o.refunded.get().into(),
        o.refund_pending.get().into(),
        o.expires_at.into(),
        o.paid_at.into(),
        o.closed_at.into(),
        o.created_at.into(),
        o.updated_at.into(),
    ];
    db.write_all(vec![(INSERT.as_str(), values)]).await?;
    Ok(())
}

pub async fn get<'e, E>(exec: E, order_no: &OrderNo) -> Result<Option<OrderRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ORDER_COLUMNS} FROM payment_order WHERE order_no = $1"
    )))
    .bind(order_no.as_str())
    .fetch_optional(exec)
    .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// Removes an order the provider never accepted (nothing half-created is left behind).
/// Only a pending order with no payment can go.
pub async fn delete_unaccepted(pool: &AnyPool, order_no: &OrderNo) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM payment_order WHERE order_no = $1 AND status = 'pending' AND payment_json IS NULL",
    )
    .bind(order_no.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// The provider's payment instructions stored on the order, as a statement of
/// [`Db::write_all`].
pub fn set_payment_json(
    order_no: &OrderNo,
    payment_json: &serde_json::Value,
    now_ms: i64,
) -> Statement {
    (
        "UPDATE payment_order SET payment_json = $1, updated_at = $2 WHERE order_no = $3",
        vec![
            payment_json.to_string().into(),
            now_ms.into(),
            order_no.as_str().into(),
        ],
    )
}

/// What a payment must match to settle an order.
#[derive(Debug, Clone)]
pub struct PaidFacts<'a> {
    pub order_no: &'a OrderNo,
    pub amount: Fen,
    pub provider: ProviderId,
    pub currency: Currency,
    pub paid_ms: i64,
}

/// The order a payment just settled.
#[derive(Debug, Clone)]
pub struct Flipped {
    /// The order had been closed: the payment raced the close.
    pub late: bool,
    pub employer_id: EmployerId,
    pub plan_id: String,
    pub grants: Vec<Grant>,
}

/// pending or closed → paid, only with the same amount, provider and currency. None when
/// nothing moved (a duplicate, or a report that does not fit). `late_payment` reads the row's
/// old status (SET sees the old row).
pub async fn mark_paid(
    ex: &mut super::exec::Exec<'_>,
    paid: &PaidFacts<'_>,
    now_ms: i64,
) -> Result<Option<Flipped>, sqlx::Error> {
    let sql = format!(
        "UPDATE payment_order
         SET late_payment = CASE WHEN status = 'closed' THEN 1 ELSE 0 END,
             status = 'paid', paid_at = $1, updated_at = $2
         WHERE order_no = $3 AND {}
           AND amount_fen = $4 AND provider = $5 AND currency = $6
         RETURNING late_payment, employer_id, plan_id, grants_json",
        may_become(OrderStatus::Paid)
    );
    let values = [
        paid.paid_ms.into(),
        now_ms.into(),
        paid.order_no.as_str().into(),
        paid.amount.get().into(),
        paid.provider.as_str().into(),
        paid.currency.as_str().into(),
    ];
    let row = ex.optional(&sql, &values).await?;
    row.map(|r| {
        let employer_id: String = r.column("employer_id")?;
        let grants_json: String = r.column("grants_json")?;
        Ok(Flipped {
            late: r.column::<i64>("late_payment")? != 0,
            employer_id: EmployerId::parse(&employer_id)
                .ok_or_else(|| corrupt("employer_id", "not an employer id"))?,
            plan_id: r.column("plan_id")?,
            grants: serde_json::from_str(&grants_json).map_err(|e| corrupt("grants_json", e))?,
        })
    })
    .transpose()
}

/// pending → closed. False when the order was no longer pending (paid meanwhile).
pub async fn mark_closed(
    tx: &mut Tx,
    order_no: &OrderNo,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE payment_order SET status = 'closed', closed_at = $1, updated_at = $1
         WHERE order_no = $2 AND {}",
        may_become(OrderStatus::Closed)
    )))
    .bind(now_ms)
    .bind(order_no.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Holds `amount` back for a refund paygate is about to ask for: only while the order is paid
/// (or partly refunded) and that much is still refundable counting refunds in flight. The
/// check and the hold are one statement, so concurrent refunds can never together exceed the
/// payment. False when it does not fit.
pub async fn reserve_refund(
    tx: &mut Tx,
    order_no: &OrderNo,
    amount: Fen,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE payment_order SET refund_pending_fen = refund_pending_fen + $1, updated_at = $2
         WHERE order_no = $3 AND status IN ('paid', 'partially_refunded')
           AND amount_fen - refunded_fen - refund_pending_fen >= $1",
    )
    .bind(amount.get())
    .bind(now_ms)
    .bind(order_no.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Gives back what [`reserve_refund`] held for a refund that failed.
pub async fn release_refund(
    tx: &mut Tx,
    order_no: &OrderNo,
    amount: Fen,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let n = sqlx::query(
        "UPDATE payment_order SET refund_pending_fen = refund_pending_fen - $1, updated_at = $2
         WHERE order_no = $3 AND refund_pending_fen >= $1",
    )
    .bind(amount.get())
    .bind(now_ms)
    .bind(order_no.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n != 1 {
        return Err(corrupt(
            "refund_pending_fen",
            "less than the refund it held",
        ));
    }
    Ok(())
}

/// The order after a refund went back.
#[derive(Debug, Clone, Copy)]
pub struct Refunded {
    pub status: OrderStatus,
    pub amount: Fen,
    /// Everything refunded now, this refund included.
    pub refunded: Fen,
}

/// paid or partially refunded → partially refunded or refunded, adding `amount` to what went
/// back (and releasing it from the refunds in flight when paygate had `reserved` it). None when
/// the order is not in a refundable state or the refunds would exceed the payment.
///
/// The new status comes from [`OrderStatus::after_refunds`]; the update compares the row with
/// what was read (compare-and-set) and re-reads on a lost race, so the status written always
/// matches the total written.
pub async fn record_refund(
    tx: &mut Tx,
    order_no: &OrderNo,
    amount: Fen,
    reserved: bool,
    now_ms: i64,
) -> Result<Option<Refunded>, sqlx::Error> {
    loop {
        let Some(order) = get(&mut **tx, order_no).await? else {
            return Ok(None);
        };
        let Some(total) = order
            .refunded
            .checked_add(amount)
            .filter(|t| *t <= order.amount)
        else {
            return Ok(None);
        };
        let next = OrderStatus::after_refunds(order.amount, total);
        if !order.status.can_become(next) {
            return Ok(None);
        }
        let release = if reserved { amount } else { Fen::ZERO };
        let Some(pending) = order.refund_pending.checked_sub(release) else {
            return Err(corrupt(
                "refund_pending_fen",
                "less than the refund it held",
            ));
        };
        let n = sqlx::query(
            "UPDATE payment_order SET status = $1, refunded_fen = $2, refund_pending_fen = $3,
                                      updated_at = $4
             WHERE order_no = $5 AND status = $6 AND refunded_fen = $7 AND refund_pending_fen = $8",
        )
        .bind(next.as_str())
        .bind(total.get())
        .bind(pending.get())
        .bind(now_ms)
        .bind(order_no.as_str())
        .bind(order.status.as_str())
        .bind(order.refunded.get())
        .bind(order.refund_pending.get())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 1 {
            return Ok(Some(Refunded {
                status: next,
                amount: order.amount,
                refunded: total,
            }));
        }
        // Another transaction changed the row between our read and our write (PostgreSQL,
        // READ COMMITTED: the re-read sees its commit). Try again with the new values.
    }
}

/// An order a job looks at: its number and provider, and its place in the pass's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueOrder {
    pub order_no: OrderNo,
    pub provider: ProviderId,
    /// The time the pass orders by (`created_at` or `expires_at`).
    pub key: i64,
}

/// Where a pass resumes: after this (key, order_no). Keyset paging, so orders that stay
/// pending (a provider that did not answer) are not met again within one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    /// The row's id (order number, refund id), which breaks ties between equal keys.
    pub id: String,
}

impl Cursor {
    pub fn start() -> Cursor {
        Cursor {
            key: i64::MIN,
            id: String::new(),
        }
    }

    pub fn after(key: i64, id: &str) -> Cursor {
        Cursor {
            key,
            id: id.to_owned(),
        }
    }
}

fn due_orders(rows: Vec<(String, String, i64)>) -> Result<Vec<DueOrder>, sqlx::Error> {
    rows.into_iter()
        .map(|(order_no, provider, key)| {
            Ok(DueOrder {
                order_no: OrderNo::parse(&order_no)
                    .ok_or_else(|| corrupt("order_no", &order_no))?,
                provider: ProviderId::parse(&provider)
                    .ok_or_else(|| corrupt("provider", &provider))?,
                key,
            })
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
    .bind(&cursor.id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    due_orders(rows)
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
    .bind(&cursor.id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    due_orders(rows)
}

/// `get_with_payment`'s statement: the order's columns, its payment's as `pay_…`.
static WITH_PAYMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let order_columns: Vec<String> = ORDER_COLUMNS
        .split(',')
        .map(|c| format!("o.{}", c.trim()))
        .collect();
    format!(
        "SELECT {}, {} FROM payment_order o LEFT JOIN payment p ON p.order_no = o.order_no
         WHERE o.order_no = $1",
        order_columns.join(", "),
        payments::PREFIXED_COLUMNS
    )
});

fn order_and_payment(r: &impl Columns) -> Result<(OrderRow, Option<PaymentRow>), sqlx::Error> {
    let order = order_from_row(r)?;
    let paid: Option<String> = r.column("pay_payment_id")?;
    let payment = paid
        .map(|_| payments::payment_from_row(r, "pay_"))
        .transpose()?;
    Ok((order, payment))
}

/// An order and its payment, if it has one, in one read (what `GET /v1/orders/{no}` shows);
/// a lookup by key (see [`Db::lookup_optional`]).
pub async fn get_with_payment(
    db: &Db,
    order_no: &OrderNo,
) -> Result<Option<(OrderRow, Option<PaymentRow>)>, sqlx::Error> {
    let values = [order_no.as_str().into()];
    db.lookup_optional(WITH_PAYMENT.as_str(), &values, |r| order_and_payment(r))
        .await
}

/// Which of `order_nos` are no longer `pending` (the `wait=` re-read: one query for many
/// waiting orders).
pub async fn not_pending_among(
    pool: &AnyPool,
    order_nos: &[OrderNo],
) -> Result<Vec<OrderNo>, sqlx::Error> {
    if order_nos.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=order_nos.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT order_no FROM payment_order WHERE status <> 'pending' AND order_no IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for no in order_nos {
        query = query.bind(no.as_str());
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let text: String = row.try_get("order_no")?;
            OrderNo::parse(&text).ok_or_else(|| sqlx::Error::Decode("order_no is malformed".into()))
        })
        .collect()
}
