//! Idempotency keys as Stripe does them: claim `(api key, key)`, store the answer, replay it.
//! The key is stored as a keyed hash ([`super::idempotency_keys`]), never as text.

use sqlx::{AnyPool, Row};

/// A claim older than this with no stored answer belongs to a request that died; a retry may
/// take it over.
const STALE_CLAIM_MS: i64 = 60_000;

/// How a row's `idempotency_key` was written (column `key_form`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// The header's text, as rows were written before keys were hashed.
    Text,
    /// HMAC-SHA256 under the key derived from `[privacy] pseudonym_key_file`.
    Keyed,
    /// HMAC-SHA256 under a public constant: no pseudonym key was configured.
    Unkeyed,
}

impl KeyForm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyForm::Text => "text",
            KeyForm::Keyed => "keyed",
            KeyForm::Unkeyed => "unkeyed",
        }
    }
}

/// An `Idempotency-Key` as one row may hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub value: String,
    pub form: KeyForm,
}

/// Moves a row of this key written in an earlier form ($4, $5) to the current one ($1, $2), so
/// the insert below finds it; a key that has a current row already keeps that one.
const REKEY: &str = "UPDATE idempotency SET idempotency_key = $1, key_form = $2
     WHERE api_key_id = $3 AND idempotency_key = $4 AND key_form = $5
       AND NOT EXISTS (SELECT 1 FROM idempotency i WHERE i.api_key_id = $3 AND i.idempotency_key = $1)";

fn rekey_statement(api_key_id: &str, from: &StoredKey, to: &StoredKey) -> super::Statement {
    (
        REKEY,
        vec![
            to.value.clone().into(),
            to.form.as_str().into(),
            api_key_id.into(),
            from.value.clone().into(),
            from.form.as_str().into(),
        ],
    )
}

/// Whether any row is in another form than `form` (old rows are matched until none are left).
pub async fn other_forms_exist(pool: &AnyPool, form: KeyForm) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM idempotency WHERE key_form <> $1 LIMIT 1")
            .bind(form.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

/// The keys still stored as text that contain `text`: (API key, key).
pub async fn text_keys_containing(
    tx: &mut super::Tx,
    text: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT api_key_id, idempotency_key FROM idempotency
         WHERE key_form = 'text' AND idempotency_key LIKE $1 ESCAPE '\\'",
    )
    .bind(super::erasure::contains_pattern(text))
    .fetch_all(&mut **tx)
    .await
}

/// A text key rewritten in its hashed form, or dropped when its hashed row exists already.
pub async fn hash_text_key(
    tx: &mut super::Tx,
    api_key_id: &str,
    text: &str,
    to: &StoredKey,
) -> Result<(), sqlx::Error> {
    let from = StoredKey {
        value: text.to_owned(),
        form: KeyForm::Text,
    };
    let (sql, values) = rekey_statement(api_key_id, &from, to);
    super::exec::query(sql, &values).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM idempotency WHERE api_key_id = $1 AND idempotency_key = $2 AND key_form = 'text'")
        .bind(api_key_id)
        .bind(text)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The idempotency claim a request owns: its answer is stored in the same transaction as the
/// change it reports (`complete`). (`checkout::OwnedClaim` is the same thing and can become a
/// re-export of this one.)
#[derive(Debug, Clone, Copy)]
pub struct OwnedClaim<'a> {
    pub api_key_id: &'a str,
    pub key: &'a str,
}

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

/// What a claim compares: the SHA-256 of the route and the request's meaning (a canonical
/// JSON value: serde_json's map is ordered), so the same key on another route or with another
/// request is refused.
pub fn request_hash(route: &str, request: &serde_json::Value) -> String {
    use sha2::Digest;
    let fingerprint = serde_json::json!({"route": route, "request": request});
    hex::encode(sha2::Sha256::digest(fingerprint.to_string().as_bytes()))
}

/// Claims `stored` for this API key. `earlier`: the forms an older row of the same key may be
/// in; such a row is moved to `stored` in the same write, so it answers as it always did.
pub async fn claim(
    db: &super::Db,
    api_key_id: &str,
    stored: &StoredKey,
    earlier: &[StoredKey],
    request_hash: &str,
    now_ms: i64,
) -> Result<Claim, sqlx::Error> {
    let key = stored.value.as_str();
    let mut statements: Vec<super::Statement> = earlier
        .iter()
        .map(|from| rekey_statement(api_key_id, from, stored))
        .collect();
    statements.push((
        "INSERT INTO idempotency (api_key_id, idempotency_key, key_form, request_hash, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        vec![
            api_key_id.into(),
            key.into(),
            stored.form.as_str().into(),
            request_hash.into(),
            now_ms.into(),
        ],
    ));
    let changed = db.write_all(statements).await?;
    if changed.last() == Some(&1) {
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
