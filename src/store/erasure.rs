//! The statements an erasure runs across tables (DESIGN.md §10, issue 20): the employer id
//! replaced by its pseudonym in orders, entitlements, outbox payloads and stored answers, and
//! what clients sent as free text removed (the reasons of the employer's refunds, the résumé
//! ids of its access checks). The requests themselves are `erasures`, the erased accounts
//! `erased_employers`; what to rewrite and in which order is `privacy::erase`'s.

use sqlx::AnyPool;

use super::orders::{corrupt, json_column};
use super::{Backend, Db, Tx};
use crate::domain::{EmployerId, OrderNo, OrderStatus, ProviderId, RefundId};

/// `LIKE '%text%'` for a text that may hold `%` or `_` (employer ids may hold `_`), with `\`
/// escapes. A `LIKE` only narrows the rows read (SQLite's is case-insensitive): the caller
/// decides on the decoded value.
pub(crate) fn contains_pattern(text: &str) -> String {
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

fn order_no_of(text: &str) -> Result<OrderNo, sqlx::Error> {
    OrderNo::parse(text).ok_or_else(|| corrupt("order_no", "not an order number"))
}

fn provider_of(text: &str) -> Result<ProviderId, sqlx::Error> {
    ProviderId::parse(text).ok_or_else(|| corrupt("provider", text))
}

/// The employer's orders still `pending`, by order number.
pub async fn pending_orders(
    pool: &AnyPool,
    employer: &EmployerId,
) -> Result<Vec<(OrderNo, ProviderId)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT order_no, provider FROM payment_order WHERE employer_id = $1 AND status = 'pending'
         ORDER BY order_no",
    )
    .bind(employer.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|(no, provider)| Ok((order_no_of(no)?, provider_of(provider)?)))
        .collect()
}

/// Orders and entitlements still held under the employer id (one made while an erasure's
/// transaction ran is found by the next round).
pub async fn rows_left(pool: &AnyPool, employer: &EmployerId) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM payment_order WHERE employer_id = $1)
              + (SELECT COUNT(*) FROM entitlement WHERE employer_id = $1)",
    )
    .bind(employer.as_str())
    .fetch_one(pool)
    .await?;
    u64::try_from(n).map_err(|e| corrupt("COUNT(*)", e))
}

/// One order renamed by [`rename_orders`], as it stood.
#[derive(Debug, Clone)]
pub struct RenamedOrder {
    pub order_no: OrderNo,
    pub status: OrderStatus,
    pub provider: ProviderId,
}

/// The employer's orders moved to the pseudonym. On PostgreSQL this locks them, so a
/// settlement in flight commits before or settles after, under the pseudonym.
pub async fn rename_orders(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
) -> Result<Vec<RenamedOrder>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "UPDATE payment_order SET employer_id = $1 WHERE employer_id = $2
         RETURNING order_no, status, provider",
    )
    .bind(pseudonym.as_str())
    .bind(employer.as_str())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|(no, status, provider)| {
            Ok(RenamedOrder {
                order_no: order_no_of(no)?,
                status: OrderStatus::parse(status).ok_or_else(|| corrupt("status", status))?,
                provider: provider_of(provider)?,
            })
        })
        .collect()
}

/// The employer's entitlements moved to the pseudonym (after their revocation).
pub async fn rename_entitlements(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE entitlement SET employer_id = $1 WHERE employer_id = $2")
        .bind(pseudonym.as_str())
        .bind(employer.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Outbox events whose payload contains `text`: (event id, payload). A payload that does not
/// decode is an error naming `payload_json`.
pub async fn events_containing(
    tx: &mut Tx,
    text: &str,
) -> Result<Vec<(i64, serde_json::Value)>, sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT event_id, payload_json FROM outbox_event WHERE payload_json LIKE $1 ESCAPE '\\'",
    )
    .bind(contains_pattern(text))
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(id, payload)| Ok((id, json_column("payload_json", &payload)?)))
        .collect()
}

pub async fn rewrite_event(
    tx: &mut Tx,
    event_id: i64,
    payload: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox_event SET payload_json = $1 WHERE event_id = $2")
        .bind(payload.to_string())
        .bind(event_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The refunds of the employer's orders (already renamed to `pseudonym`) that still carry a
/// reason, and any other refund whose reason contains `text`, before
/// [`clear_refund_reasons`] removes the reasons.
const REASON_HOLDERS: &str = "FROM refund WHERE reason IS NOT NULL AND (reason LIKE $2 ESCAPE '\\'
     OR order_no IN (SELECT order_no FROM payment_order WHERE employer_id = $1))";

pub async fn refunds_with_reasons(
    tx: &mut Tx,
    pseudonym: &EmployerId,
    text: &str,
) -> Result<Vec<RefundId>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT refund_id {REASON_HOLDERS} ORDER BY refund_id"
    )))
    .bind(pseudonym.as_str())
    .bind(contains_pattern(text))
    .fetch_all(&mut **tx)
    .await?;
    ids.iter()
        .map(|id| RefundId::parse(id).ok_or_else(|| corrupt("refund_id", id)))
        .collect()
}

/// Removes the reasons [`refunds_with_reasons`] lists: a client's text about the employer's
/// refund. The refund (amount, numbers, status) stays, as accounting requires.
pub async fn clear_refund_reasons(
    tx: &mut Tx,
    pseudonym: &EmployerId,
    text: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE refund SET reason = NULL WHERE refund_id IN (SELECT refund_id {REASON_HOLDERS})"
    )))
    .bind(pseudonym.as_str())
    .bind(contains_pattern(text))
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// A stored idempotent answer: its API key, its stored key and its body, decoded.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub api_key_id: String,
    pub key: String,
    pub body: serde_json::Value,
}

/// Stored answers whose body contains `text`. A body that does not decode is an error naming
/// `response_body`.
pub async fn answers_containing(tx: &mut Tx, text: &str) -> Result<Vec<StoredAnswer>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT api_key_id, idempotency_key, response_body FROM idempotency
         WHERE response_body LIKE $1 ESCAPE '\\'",
    )
    .bind(contains_pattern(text))
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(api_key_id, key, body)| {
            Ok(StoredAnswer {
                api_key_id,
                key,
                body: json_column("response_body", &body)?,
            })
        })
        .collect()
}

/// A stored answer rewritten, with the fingerprint of a request that can no longer be replayed.
pub async fn rewrite_answer(
    tx: &mut Tx,
    answer: &StoredAnswer,
    request_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency SET response_body = $1, request_hash = $2
         WHERE api_key_id = $3 AND idempotency_key = $4",
    )
    .bind(answer.body.to_string())
    .bind(request_hash)
    .bind(&answer.api_key_id)
    .bind(&answer.key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The résumé ids the employer's access checks recorded (a client's text): the audit rows keep
/// kind and quota change, the "already opened" rows go (the entitlements are revoked).
pub async fn forget_resume_ids(tx: &mut Tx, pseudonym: &EmployerId) -> Result<u64, sqlx::Error> {
    let audits = sqlx::query(
        "UPDATE entitlement_audit SET resume_id = NULL WHERE resume_id IS NOT NULL
         AND entitlement_id IN (SELECT entitlement_id FROM entitlement WHERE employer_id = $1)",
    )
    .bind(pseudonym.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let opened = sqlx::query(
        "DELETE FROM resume_access
         WHERE entitlement_id IN (SELECT entitlement_id FROM entitlement WHERE employer_id = $1)",
    )
    .bind(pseudonym.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(audits + opened)
}

/// What `PRAGMA wal_checkpoint(TRUNCATE)` answered: `busy` is 0 when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalCheckpoint {
    pub busy: i64,
    pub log: i64,
    pub done: i64,
}

/// SQLite: copies the WAL into the database and truncates it to zero bytes, so the frames that
/// held old values are gone (`secure_delete` already zeroed them in the pages). `None` on
/// PostgreSQL, which has no such file.
pub async fn checkpoint_wal(db: &Db) -> Result<Option<WalCheckpoint>, sqlx::Error> {
    if db.backend() != Backend::Sqlite {
        return Ok(None);
    }
    let (busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(db.pool())
        .await?;
    Ok(Some(WalCheckpoint { busy, log, done }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_the_id_are_escaped() {
        assert_eq!(contains_pattern("emp_4"), "%emp\\_4%");
    }
}
