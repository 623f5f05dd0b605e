//! The erasure's statements over what clients sent as free text (DESIGN.md §10, issue 20): the
//! reasons of the employer's refunds and the résumé ids of its access checks. Renaming the
//! employer id itself stays with `privacy::erase`.

use super::Tx;

/// The refunds of the employer's orders (already renamed to `pseudonym`) that still carry a
/// reason, and any other refund whose reason contains `pattern` (a `LIKE` pattern with `\`
/// escapes): their ids, before [`clear_refund_reasons`] removes the reasons.
const REASON_HOLDERS: &str = "FROM refund WHERE reason IS NOT NULL AND (reason LIKE $2 ESCAPE '\\'
     OR order_no IN (SELECT order_no FROM payment_order WHERE employer_id = $1))";

pub async fn refunds_with_reasons(
    tx: &mut Tx,
    pseudonym: &str,
    pattern: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT refund_id {REASON_HOLDERS} ORDER BY refund_id"
    )))
    .bind(pseudonym)
    .bind(pattern)
    .fetch_all(&mut **tx)
    .await
}

/// Removes the reasons [`refunds_with_reasons`] lists: a client's text about the employer's
/// refund. The refund (amount, numbers, status) stays, as accounting requires.
pub async fn clear_refund_reasons(
    tx: &mut Tx,
    pseudonym: &str,
    pattern: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE refund SET reason = NULL WHERE refund_id IN (SELECT refund_id {REASON_HOLDERS})"
    )))
    .bind(pseudonym)
    .bind(pattern)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Stored answers whose body contains `pattern`: (API key, stored key, body).
pub async fn answers_like(
    tx: &mut Tx,
    pattern: &str,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT api_key_id, idempotency_key, response_body FROM idempotency
         WHERE response_body LIKE $1 ESCAPE '\\'",
    )
    .bind(pattern)
    .fetch_all(&mut **tx)
    .await
}

/// A stored answer rewritten, with the fingerprint of a request that can no longer be replayed.
pub async fn rewrite_answer(
    tx: &mut Tx,
    api_key_id: &str,
    key: &str,
    body: &str,
    request_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency SET response_body = $1, request_hash = $2
         WHERE api_key_id = $3 AND idempotency_key = $4",
    )
    .bind(body)
    .bind(request_hash)
    .bind(api_key_id)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The résumé ids the employer's access checks recorded (a client's text): the audit rows keep
/// kind and quota change, the "already opened" rows go (the entitlements are revoked).
pub async fn forget_resume_ids(tx: &mut Tx, pseudonym: &str) -> Result<u64, sqlx::Error> {
    let audits = sqlx::query(
        "UPDATE entitlement_audit SET resume_id = NULL WHERE resume_id IS NOT NULL
         AND entitlement_id IN (SELECT entitlement_id FROM entitlement WHERE employer_id = $1)",
    )
    .bind(pseudonym)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let opened = sqlx::query(
        "DELETE FROM resume_access
         WHERE entitlement_id IN (SELECT entitlement_id FROM entitlement WHERE employer_id = $1)",
    )
    .bind(pseudonym)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(audits + opened)
}
