//! The outbox: events written in the same transaction as the change they report.

use serde::Serialize;
use sqlx::Row;

use super::exec::Exec;
use super::sql::{Columns, Tx, Value, json_column};

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub order_no: Option<String>,
    pub created_at: String,
    pub data: serde_json::Value,
}

/// Appends an event. Its id comes from a counter row updated in this transaction, so ids are
/// gap-free and become visible in id order (the row lock is held until commit).
pub async fn append(
    tx: &mut Tx,
    event_type: &str,
    order_no: Option<&str>,
    data: &serde_json::Value,
    now_ms: i64,
) -> Result<i64, sqlx::Error> {
    let ids = append_all(&mut Exec::Sqlx(tx), &[(event_type, order_no, data)], now_ms).await?;
    ids.first().copied().ok_or(sqlx::Error::RowNotFound)
}

/// Appends `events` in order with consecutive ids, as [`append`] would one by one, in two
/// statements however many there are: one step of the counter row, one insert.
pub async fn append_all(
    ex: &mut Exec<'_>,
    events: &[(&str, Option<&str>, &serde_json::Value)],
    now_ms: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let count = i64::try_from(events.len()).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let last: i64 = ex
        .optional(
            "UPDATE event_counter SET value = value + $1 WHERE name = 'outbox' RETURNING value",
            &[count.into()],
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?
        .column("value")?;
    let ids: Vec<i64> = (last - count + 1..=last).collect();
    // ($1, $2, $3, $4, $5, $5), ($6, …): id, type, order, payload, time (created and due).
    let rows: Vec<String> = (0..events.len())
        .map(|i| {
            let p = i * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO outbox_event (event_id, event_type, order_no, payload_json, created_at, next_attempt_at)
         VALUES {}",
        rows.join(", ")
    );
    let mut values = Vec::with_capacity(events.len() * 5);
    for (id, (event_type, order_no, data)) in ids.iter().zip(events) {
        values.extend([
            Value::Int(*id),
            (*event_type).into(),
            order_no.map(str::to_owned).into(),
            data.to_string().into(),
            now_ms.into(),
        ]);
    }
    ex.execute(&sql, &values).await?;
    Ok(ids)
}

/// An undelivered event due for a push attempt, with its attempt bookkeeping.
#[derive(Debug, Clone)]
pub struct Due {
    pub event: Event,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

/// Undelivered events whose next attempt is due, oldest first.
pub async fn due_for_push(
    pool: &sqlx::AnyPool,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT event_id, event_type, order_no, payload_json, created_at, attempts, next_attempt_at
         FROM outbox_event
         WHERE delivered_at IS NULL AND next_attempt_at <= $1
         ORDER BY event_id LIMIT $2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Due {
                event: event_from_row(r)?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: r.try_get("next_attempt_at")?,
            })
        })
        .collect()
}

/// Claims one attempt at `due`: moves its next attempt to `claim_until` (so no other instance
/// pushes it meanwhile) and counts the attempt. False when someone else claimed it first.
pub async fn claim_push(
    pool: &sqlx::AnyPool,
    due: &Due,
    claim_until: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE outbox_event SET next_attempt_at = $1, attempts = attempts + 1
         WHERE event_id = $2 AND delivered_at IS NULL AND next_attempt_at = $3",
    )
    .bind(claim_until)
    .bind(due.event.id)
    .bind(due.next_attempt_at)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub async fn mark_delivered(
    pool: &sqlx::AnyPool,
    event_id: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox_event SET delivered_at = $1 WHERE event_id = $2")
        .bind(now_ms)
        .bind(event_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn retry_push_at(
    pool: &sqlx::AnyPool,
    event_id: i64,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox_event SET next_attempt_at = $1 WHERE event_id = $2 AND delivered_at IS NULL",
    )
    .bind(at_ms)
    .bind(event_id)
    .execute(pool)
    .await?;
    Ok(())
}

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<Event, sqlx::Error> {
    let payload: String = r.try_get("payload_json")?;
    Ok(Event {
        id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        order_no: r.try_get("order_no")?,
        created_at: crate::clock::rfc3339_beijing_millis(r.try_get("created_at")?),
        data: json_column("payload_json", &payload)?,
    })
}

pub async fn list_after(
    pool: &sqlx::AnyPool,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT event_id, event_type, order_no, payload_json, created_at FROM outbox_event
         WHERE event_id > $1 ORDER BY event_id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// An order's events in the order they happened (its timeline), at most `limit`.
pub async fn of_order(
    db: &super::Db,
    order_no: &crate::domain::OrderNo,
    limit: i64,
) -> Result<Vec<Event>, sqlx::Error> {
    db.lookup_all(
        "SELECT event_id, event_type, order_no, payload_json, created_at FROM outbox_event
         WHERE order_no = $1 ORDER BY event_id LIMIT $2",
        &[order_no.as_str().into(), limit.into()],
        |r| {
            let payload: String = r.column("payload_json")?;
            Ok(Event {
                id: r.column("event_id")?,
                event_type: r.column("event_type")?,
                order_no: r.column("order_no")?,
                created_at: crate::clock::rfc3339_beijing_millis(super::sql::millis_of(
                    "created_at",
                    r.column("created_at")?,
                )?),
                data: json_column("payload_json", &payload)?,
            })
        },
    )
    .await
}

/// Where the event push stands: the newest event, how far delivery got without a gap, and
/// the oldest event still undelivered (with its attempts and since when it is due).
#[derive(Debug, Clone, Default)]
pub struct PushStatus {
    pub newest: Option<i64>,
    pub undelivered: i64,
    pub oldest_undelivered: Option<Undelivered>,
}

#[derive(Debug, Clone)]
pub struct Undelivered {
    pub id: i64,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
}

pub async fn push_status(db: &super::Db) -> Result<PushStatus, sqlx::Error> {
    let newest = db
        .lookup_optional(
            "SELECT MAX(event_id) AS newest FROM outbox_event",
            &[],
            |r| r.column::<Option<i64>>("newest"),
        )
        .await?
        .flatten();
    let undelivered = db
        .lookup_optional(
            "SELECT COUNT(*) AS n FROM outbox_event WHERE delivered_at IS NULL",
            &[],
            |r| r.column::<i64>("n"),
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let oldest_undelivered = db
        .lookup_optional(
            "SELECT event_id, created_at, attempts, next_attempt_at FROM outbox_event
             WHERE delivered_at IS NULL ORDER BY event_id LIMIT 1",
            &[],
            |r| {
                Ok(Undelivered {
                    id: r.column("event_id")?,
                    created_at: super::sql::millis_of("created_at", r.column("created_at")?)?,
                    attempts: r.column("attempts")?,
                    next_attempt_at: r.column("next_attempt_at")?,
                })
            },
        )
        .await?;
    Ok(PushStatus {
        newest,
        undelivered,
        oldest_undelivered,
    })
}
