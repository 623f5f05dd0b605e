//! Idempotency keys as Stripe does them: claim `(api key, key)`, store the answer, replay it.

use sqlx::{AnyPool, Row};

/// A claim older than this with no stored answer belongs to a request that died; a retry may
/// take it over.
const STALE_CLAIM_MS: i64 = 60_000;

pub enum Claim {
    /// This request owns the key: do the work, then `complete` or `release`.
    Owned,
    /// Same key, same request, answered before: replay.
    Replay { status: u16, body: String },
    /// Same key, different request body.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

pub async fn claim(
    db: &super::Db,
    api_key_id: &str,
    key: &str,
    request_hash: &str,
    now_ms: i64,
) -> Result<Claim, sqlx::Error> {
    let inserted = db
        .write_all(vec![(
            "INSERT INTO idempotency (api_key_id, idempotency_key, request_hash, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            vec![
                api_key_id.into(),
                key.into(),
                request_hash.into(),
                now_ms.into(),
            ],
        )])
        .await?;
    if inserted == [1] {
        return Ok(Claim::Owned);
    }
    let pool = db.pool();
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body, created_at FROM idempotency
         WHERE api_key_id = $1 AND idempotency_key = $2",
    )
    .bind(api_key_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        // Released between our insert and select: the caller may simply retry.
        return Ok(Claim::InFlight);
    };
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    let status: Option<i64> = row.try_get("response_status")?;
    let body: Option<String> = row.try_get("response_body")?;
    if let (Some(status), Some(body)) = (status, body) {
        return Ok(Claim::Replay {
            status: status as u16,
            body,
        });
    }
    let created_at: i64 = row.try_get("created_at")?;
    if now_ms - created_at > STALE_CLAIM_MS {
        // Take over a dead request's claim; the compare on created_at lets only one retry win.
        let taken = sqlx::query(
            "UPDATE idempotency SET created_at = $1
             WHERE api_key_id = $2 AND idempotency_key = $3 AND created_at = $4 AND response_status IS NULL",
        )
        .bind(now_ms)
        .bind(api_key_id)
        .bind(key)
        .bind(created_at)
        .execute(pool)
        .await?
        .rows_affected();
        if taken == 1 {
            return Ok(Claim::Owned);
        }
    }
    Ok(Claim::InFlight)
}

/// The answer stored with the claim ($1 status, $2 body, $3 API key, $4 key).
const COMPLETE: &str = "UPDATE idempotency SET response_status = $1, response_body = $2
     WHERE api_key_id = $3 AND idempotency_key = $4";

/// [`complete`] as a statement of [`super::Db::write_all`].
pub fn complete_statement(
    api_key_id: &str,
    key: &str,
    status: u16,
    body: String,
) -> super::Statement {
    (
        COMPLETE,
        vec![
            i64::from(status).into(),
            body.into(),
            api_key_id.into(),
            key.into(),
        ],
    )
}

pub async fn complete(
    conn: &mut sqlx::AnyConnection,
    api_key_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(COMPLETE)
        .bind(i64::from(status))
        .bind(body)
        .bind(api_key_id)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets a claim whose request failed with nothing created, so a retry starts afresh.
pub async fn release(pool: &AnyPool, api_key_id: &str, key: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency WHERE api_key_id = $1 AND idempotency_key = $2 AND response_status IS NULL",
    )
    .bind(api_key_id)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}
