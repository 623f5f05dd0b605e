//! What an erasure does (DESIGN.md §10), for one employer:
//!
//! 1. each order still `pending` is asked about and closed here and at the provider through
//!    [`lifecycle::query_then_close`] (one that turns out paid settles through the one
//!    settlement path, and is then erased like any paid order);
//! 2. in ONE transaction: active entitlements revoked (`entitlement.revoked`, reason
//!    `account_deleted`), any order that became pending meanwhile closed here
//!    (`order.closed`, reason `account_deleted`), and the id replaced by its pseudonym in
//!    orders, entitlements, outbox payloads (every JSON string equal to it), stored
//!    idempotency answers (and their request fingerprint) and the erasure requests; what a
//!    client sent as free text removed: the
//!    reasons of the employer's refunds (and any reason naming it), in the refunds and in their
//!    stored answers, the résumé ids of its access checks, and every `Idempotency-Key` still
//!    stored as text (written before keys were hashed) that names it hashed; the pseudonym
//!    recorded in `erased_employer`, whose unique key makes `employer.erased` once;
//! 3. orders closed in step 2 are closed at their provider too;
//! 4. on SQLite, the WAL is checkpointed and truncated: with `secure_delete` on, the old
//!    values are then in no page of the database file and no frame of the WAL.
//!
//! Amounts, order numbers, provider transaction ids, refunds and reconciliation rows are not
//! touched: finance's totals are the same before and after.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::PseudonymKey;
use crate::app::AppState;
use crate::clock::to_millis;
use crate::domain::{EmployerId, OrderNo, ProviderId};
use crate::lifecycle::{self, CloseReason};
use crate::store::{Backend, Tx, erasure, events, idempotency, orders};

/// What one erasure changed.
#[derive(Debug, Clone, Default)]
pub struct Erased {
    pub orders: u64,
    pub entitlements_revoked: u64,
    pub events_rewritten: u64,
    pub idempotency_rewritten: u64,
    /// Refund reasons removed, résumé ids forgotten.
    pub free_text_removed: u64,
    /// False when the employer had been erased before: no second `employer.erased`.
    pub first: bool,
}

/// Carries out the erasure of `employer` for request `erasure_id` (see the module docs).
/// Every other pending request for the same employer is completed with it. An order the
/// checkout flow created for the id while the transaction ran (PostgreSQL: invisible to it)
/// is found afterwards and erased by one more round.
pub async fn erase_employer(
    state: &AppState,
    key: &PseudonymKey,
    employer: &EmployerId,
    erasure_id: &str,
) -> Result<Erased, sqlx::Error> {
    let mut total = Erased::default();
    for _ in 0..3 {
        let round = erase_once(state, key, employer, erasure_id).await?;
        total.orders += round.orders;
        total.entitlements_revoked += round.entitlements_revoked;
        total.events_rewritten += round.events_rewritten;
        total.idempotency_rewritten += round.idempotency_rewritten;
        total.free_text_removed += round.free_text_removed;
        total.first |= round.first;
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM payment_order WHERE employer_id = $1)
                  + (SELECT COUNT(*) FROM entitlement WHERE employer_id = $1)",
        )
        .bind(employer.as_str())
        .fetch_one(state.db.pool())
        .await?;
        if left == 0 {
            break;
        }
    }
    checkpoint(state).await;
    Ok(total)
}

async fn erase_once(
    state: &AppState,
    key: &PseudonymKey,
    employer: &EmployerId,
    erasure_id: &str,
) -> Result<Erased, sqlx::Error> {
    for (no, provider) in pending_orders(state.db.pool(), employer).await? {
        let Some(provider) = state.providers.get(provider).cloned() else {
            continue;
        };
        if let Err(e) = lifecycle::query_then_close(
            &state.tail(),
            provider.as_ref(),
            &no,
            CloseReason::AccountDeleted,
        )
        .await
        {
            // Closed below in the transaction, and at the provider after it.
            tracing::warn!(order_no = %no, error = %crate::error::chain(&e), "closing a pending order of an erased account");
        }
    }

    let pseudonym = key.pseudonym(employer);
    let now = state.clock.now();
    let now_ms = to_millis(now);
    let mut tx = state.db.begin_write().await?;
    let mut erased = Erased::default();

    // The orders first: on PostgreSQL this locks them, so a settlement in flight commits
    // before (its grant is then seen and revoked below) or settles after, under the
    // pseudonym of an erased account (nothing granted).
    let renamed: Vec<(String, String, String)> = sqlx::query_as(
        "UPDATE payment_order SET employer_id = $1 WHERE employer_id = $2
         RETURNING order_no, status, provider",
    )
    .bind(pseudonym.as_str())
    .bind(employer.as_str())
    .fetch_all(&mut *tx)
    .await?;
    erased.orders = renamed.len() as u64;
    // A pending order left by step 1 (its provider unreachable, or created since) is closed
    // here in this transaction, and at its provider after it.
    let mut raced = Vec::new();
    for (no, status, provider) in &renamed {
        if status != "pending" {
            continue;
        }
        let no =
            OrderNo::parse(no).ok_or_else(|| orders::corrupt("order_no", "not an order number"))?;
        let provider = ProviderId::parse(provider)
            .ok_or_else(|| orders::corrupt("provider", "not a provider"))?;
        if orders::mark_closed(&mut tx, &no, now_ms).await? {
            let data =
                serde_json::json!({"order_no": no, "reason": CloseReason::AccountDeleted.as_str()});
            events::append(&mut tx, "order.closed", Some(no.as_str()), &data, now_ms).await?;
            raced.push((no, provider));
        }
    }

    let revoked =
        crate::entitlements::revoke_for_erasure(&mut tx, employer, &pseudonym, now).await?;
    erased.entitlements_revoked = revoked as u64;
    sqlx::query("UPDATE entitlement SET employer_id = $1 WHERE employer_id = $2")
        .bind(pseudonym.as_str())
        .bind(employer.as_str())
        .execute(&mut *tx)
        .await?;
    erased.events_rewritten = rewrite_events(&mut tx, employer, &pseudonym).await?;
    erased.idempotency_rewritten = rewrite_idempotency(&mut tx, employer, &pseudonym).await?;
    erased.idempotency_rewritten += hash_text_keys(state, &mut tx, employer).await?;
    erased.free_text_removed = remove_free_text(&mut tx, employer, &pseudonym).await?;
    sqlx::query(
        "UPDATE privacy_erasure SET status = 'completed', employer_id = NULL, completed_at = $1
         WHERE employer_id = $2",
    )
    .bind(now_ms)
    .bind(employer.as_str())
    .execute(&mut *tx)
    .await?;
    erased.first = sqlx::query(
        "INSERT INTO erased_employer (pseudonym, erasure_id, erased_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(pseudonym.as_str())
    .bind(erasure_id)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if erased.first {
        let data = serde_json::json!({"pseudonym": pseudonym, "erasure_id": erasure_id});
        events::append(&mut tx, "employer.erased", None, &data, now_ms).await?;
    }
    tx.commit().await?;
    tracing::info!(
        erasure_id,
        orders = erased.orders,
        entitlements_revoked = erased.entitlements_revoked,
        events_rewritten = erased.events_rewritten,
        first = erased.first,
        "employer erased"
    );

    for (no, provider) in &raced {
        if let Some(provider) = state.providers.get(*provider)
            && let Err(e) = provider.close(no).await
        {
            tracing::warn!(order_no = %no, error = format!("{:#}", anyhow::Error::from(e)), "closing an erased account's order at the provider");
        }
    }
    Ok(erased)
}

async fn pending_orders<'e, E>(
    exec: E,
    employer: &EmployerId,
) -> Result<Vec<(OrderNo, ProviderId)>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT order_no, provider FROM payment_order WHERE employer_id = $1 AND status = 'pending'
         ORDER BY order_no",
    )
    .bind(employer.as_str())
    .fetch_all(exec)
    .await?;
    rows.iter()
        .map(|r| {
            let no: String = r.try_get("order_no")?;
            let provider: String = r.try_get("provider")?;
            Ok((
                OrderNo::parse(&no)
                    .ok_or_else(|| orders::corrupt("order_no", "not an order number"))?,
                ProviderId::parse(&provider)
                    .ok_or_else(|| orders::corrupt("provider", "not a provider"))?,
            ))
        })
        .collect()
}

/// `LIKE '%text%'` for a text that may hold `%` or `_` (employer ids may hold `_`).
fn contains_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Replaces every JSON string equal to `from` by `to`, at any depth. True when one was. (Only
/// whole strings: "emp_42" is another employer. The one free text of a stored answer, a
/// refund's reason, is removed by [`remove_free_text`].)
pub fn replace_strings(value: &mut serde_json::Value, from: &str, to: &str) -> bool {
    match value {
        serde_json::Value::String(s) if s == from => {
            *s = to.to_owned();
            true
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| replace_strings(v, from, to) | changed),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, v| replace_strings(v, from, to) | changed),
        _ => false,
    }
}

/// Every outbox payload that names the employer, rewritten with the pseudonym. The `LIKE`
/// only narrows the rows read (SQLite's is case-insensitive); the JSON decides.
async fn rewrite_events(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
) -> Result<u64, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT event_id, payload_json FROM outbox_event WHERE payload_json LIKE $1 ESCAPE '\\'",
    )
    .bind(contains_pattern(employer.as_str()))
    .fetch_all(&mut **tx)
    .await?;
    let mut n = 0;
    for (id, payload) in rows {
        let mut data: serde_json::Value =
            serde_json::from_str(&payload).map_err(|e| orders::corrupt("payload_json", e))?;
        if replace_strings(&mut data, employer.as_str(), pseudonym.as_str()) {
            sqlx::query("UPDATE outbox_event SET payload_json = $1 WHERE event_id = $2")
                .bind(data.to_string())
                .bind(id)
                .execute(&mut **tx)
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

/// The fingerprint that replaces a rewritten answer's: a SHA-256 over a body that held the id
/// could be tested against guessed ids, so it becomes one of the pseudonym, and a retry of such
/// a key after the erasure answers `idempotency_key_reused` rather than replaying.
fn erased_fingerprint(pseudonym: &EmployerId) -> String {
    hex::encode(Sha256::digest(
        format!("erased {}", pseudonym.as_str()).as_bytes(),
    ))
}

/// Stored answers that name the employer (an order's), rewritten with the pseudonym.
async fn rewrite_idempotency(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
) -> Result<u64, sqlx::Error> {
    let rows = erasure::answers_like(tx, &contains_pattern(employer.as_str())).await?;
    let fingerprint = erased_fingerprint(pseudonym);
    let mut n = 0;
    for (api_key_id, key, body) in rows {
        let mut data: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| orders::corrupt("response_body", e))?;
        if replace_strings(&mut data, employer.as_str(), pseudonym.as_str()) {
            erasure::rewrite_answer(tx, &api_key_id, &key, &data.to_string(), &fingerprint).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Every `Idempotency-Key` still stored as text (written before keys were hashed) that holds
/// the id, hashed as claims store keys now.
async fn hash_text_keys(
    state: &AppState,
    tx: &mut Tx,
    employer: &EmployerId,
) -> Result<u64, sqlx::Error> {
    let rows = idempotency::text_keys_like(tx, &contains_pattern(employer.as_str())).await?;
    for (api_key_id, text) in &rows {
        let hashed = state.idempotency_keys.digest(text);
        idempotency::hash_text_key(tx, api_key_id, text, &hashed).await?;
    }
    Ok(rows.len() as u64)
}

/// What a client sent as free text about the employer: the reasons of its refunds (and any
/// reason naming it), in the refund rows and in their stored answers, and the résumé ids of
/// its access checks.
async fn remove_free_text(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
) -> Result<u64, sqlx::Error> {
    let pattern = contains_pattern(employer.as_str());
    let refunds = erasure::refunds_with_reasons(tx, pseudonym.as_str(), &pattern).await?;
    let fingerprint = erased_fingerprint(pseudonym);
    for refund_id in &refunds {
        for (api_key_id, key, body) in
            erasure::answers_like(tx, &contains_pattern(refund_id)).await?
        {
            let mut data: serde_json::Value =
                serde_json::from_str(&body).map_err(|e| orders::corrupt("response_body", e))?;
            if data["refund_id"] == refund_id.as_str() && !data["reason"].is_null() {
                data["reason"] = serde_json::Value::Null;
                erasure::rewrite_answer(tx, &api_key_id, &key, &data.to_string(), &fingerprint)
                    .await?;
            }
        }
    }
    let reasons = erasure::clear_refund_reasons(tx, pseudonym.as_str(), &pattern).await?;
    let resume_ids = erasure::forget_resume_ids(tx, pseudonym.as_str()).await?;
    Ok(reasons + resume_ids)
}

/// SQLite: copies the WAL into the database and truncates it to zero bytes, so the frames
/// that held the old values are gone; `secure_delete` already zeroed them in the pages. A
/// checkpoint that a long reader blocks is logged; the next erasure (or SQLite's own
/// checkpoints) finishes it.
pub async fn checkpoint(state: &AppState) {
    if state.db.backend() != Backend::Sqlite {
        return;
    }
    let result: Result<(i64, i64, i64), sqlx::Error> =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(state.db.pool())
            .await;
    match result {
        Ok((0, _, _)) => {}
        Ok((busy, log, done)) => {
            tracing::warn!(
                busy,
                log,
                done,
                "WAL checkpoint after an erasure was blocked by a reader"
            )
        }
        Err(e) => tracing::error!(error = %e, "WAL checkpoint after an erasure failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_strings_equal_to_the_id_are_replaced() {
        let mut v = serde_json::json!({
            "employer_id": "emp_4",
            "nested": [{"who": "emp_4"}, "emp_42", {"emp_4": 1}],
            "order_no": "X"
        });
        assert!(replace_strings(&mut v, "emp_4", "erased:ab"));
        assert_eq!(
            v,
            serde_json::json!({
                "employer_id": "erased:ab",
                "nested": [{"who": "erased:ab"}, "emp_42", {"emp_4": 1}],
                "order_no": "X"
            })
        );
        assert!(!replace_strings(&mut v, "emp_4", "erased:ab"));
    }

    #[test]
    fn like_wildcards_in_the_id_are_escaped() {
        assert_eq!(contains_pattern("emp_4"), "%emp\\_4%");
    }
}
