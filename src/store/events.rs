//! The outbox: events written in the same transaction as the change they report.

use serde::Serialize;
use sqlx::Row;

use super::Tx;

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
    let id: i64 = sqlx::query_scalar(
        "UPDATE event_counter SET value = value + 1 WHERE name = 'outbox' RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO outbox_event (event_id, event_type, order_no, payload_json, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(id)
    .bind(event_type)
    .bind(order_no)
    .bind(data.to_string())
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(id)
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
    rows.into_iter()
        .map(|r| {
            let payload: String = r.try_get("payload_json")?;
            Ok(Event {
                id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                order_no: r.try_get("order_no")?,
                created_at: crate::clock::rfc3339_beijing_millis(r.try_get("created_at")?),
                data: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}
