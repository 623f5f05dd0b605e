//! What an erasure does (DESIGN.md §10), for one employer:
//!
//! 1. each order still `pending` is asked about and closed here and at the provider through
//!    `lifecycle::query_then_close` (one that turns out paid settles through the one
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

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::deps::ErasureDeps;
use crate::clock::to_millis;
use crate::domain::reasons::ACCOUNT_DELETED;
use crate::domain::{EmployerId, ErasureId, OrderNo, OrderStatus, ProviderId, PseudonymKey};
use crate::store::erasure::{self, StoredAnswer};
use crate::store::{Tx, erased_employers, erasures, events, idempotency, orders};

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

impl Erased {
    fn add(&mut self, round: &Erased) {
        self.orders += round.orders;
        self.entitlements_revoked += round.entitlements_revoked;
        self.events_rewritten += round.events_rewritten;
        self.idempotency_rewritten += round.idempotency_rewritten;
        self.free_text_removed += round.free_text_removed;
        self.first |= round.first;
    }
}

/// Carries out the erasure of `employer` for request `erasure_id` (see the module docs).
/// Every other pending request for the same employer is completed with it. An order the
/// checkout flow created for the id while the transaction ran (PostgreSQL: invisible to it)
/// is found afterwards and erased by one more round.
pub async fn erase_employer(
    deps: &ErasureDeps<'_>,
    key: &PseudonymKey,
    employer: &EmployerId,
    erasure_id: &ErasureId,
) -> Result<Erased, sqlx::Error> {
    let mut total = Erased::default();
    for _ in 0..3 {
        let round = erase_once(deps, key, employer, erasure_id).await?;
        total.add(&round);
        if erasure::rows_left(deps.db.pool(), employer).await? == 0 {
            break;
        }
    }
    checkpoint(deps.db).await;
    Ok(total)
}

async fn erase_once(
    deps: &ErasureDeps<'_>,
    key: &PseudonymKey,
    employer: &EmployerId,
    erasure_id: &ErasureId,
) -> Result<Erased, sqlx::Error> {
    close_pending(deps, employer).await?;
    let actor = crate::store::erasures::get(deps.db.pool(), erasure_id)
        .await?
        .and_then(|r| r.actor);
    let pseudonym = key.pseudonym(employer);
    let now = deps.clock.now();
    let mut tx = deps.db.begin_write().await?;
    let (mut erased, raced) = rename_orders(&mut tx, employer, &pseudonym, now).await?;
    let revoked =
        crate::entitlements::revoke_for_erasure(&mut tx, employer, &pseudonym, now).await?;
    erased.entitlements_revoked = revoked as u64;
    erasure::rename_entitlements(&mut tx, employer, &pseudonym).await?;
    erased.events_rewritten = rewrite_events(&mut tx, employer, &pseudonym).await?;
    erased.idempotency_rewritten = rewrite_idempotency(&mut tx, employer, &pseudonym).await?;
    erased.idempotency_rewritten += hash_text_keys(deps, &mut tx, employer).await?;
    erased.free_text_removed = remove_free_text(&mut tx, employer, &pseudonym).await?;
    erasures::complete_all_of(&mut tx, employer, now).await?;
    erased.first = erased_employers::record(&mut tx, &pseudonym, erasure_id, now).await?;
    if erased.first {
        let data = serde_json::json!({
            "pseudonym": pseudonym,
            "erasure_id": erasure_id,
            "actor": actor,
        });
        events::append(&mut tx, "employer.erased", None, &data, to_millis(now)).await?;
    }
    tx.commit().await?;
    tracing::info!(
        %erasure_id,
        orders = erased.orders,
        entitlements_revoked = erased.entitlements_revoked,
        events_rewritten = erased.events_rewritten,
        first = erased.first,
        "employer erased"
    );
    close_at_providers(deps, &raced).await;
    Ok(erased)
}

/// Step 1: each order still `pending` is asked about, and closed here and at the provider.
/// One that fails is closed in the transaction, and at its provider after it.
async fn close_pending(deps: &ErasureDeps<'_>, employer: &EmployerId) -> Result<(), sqlx::Error> {
    for (no, provider) in erasure::pending_orders(deps.db.pool(), employer).await? {
        let Some(provider) = deps.providers.get(provider) else {
            continue;
        };
        let reason = crate::lifecycle::CloseReason::AccountDeleted;
        let closed =
            crate::lifecycle::query_then_close(&deps.tail(), provider.as_ref(), &no, reason).await;
        if let Err(e) = closed {
            tracing::warn!(order_no = %no, error = %crate::error::chain(&e), "closing a pending order of an erased account");
        }
    }
    Ok(())
}

/// The orders first: on PostgreSQL this locks them, so a settlement in flight commits before
/// (its grant is then seen and revoked) or settles after, under the pseudonym of an erased
/// account (nothing granted). A pending order left by step 1 (its provider unreachable, or
/// created since) is closed here; it is returned to be closed at its provider after the
/// commit.
async fn rename_orders(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
    now: DateTime<Utc>,
) -> Result<(Erased, Vec<(OrderNo, ProviderId)>), sqlx::Error> {
    let renamed = erasure::rename_orders(tx, employer, pseudonym).await?;
    let erased = Erased {
        orders: renamed.len() as u64,
        ..Erased::default()
    };
    let mut raced = Vec::new();
    for order in renamed {
        if order.status != OrderStatus::Pending {
            continue;
        }
        if orders::mark_closed(tx, &order.order_no, to_millis(now)).await? {
            let data = serde_json::json!({"order_no": order.order_no, "reason": ACCOUNT_DELETED});
            let no = Some(order.order_no.as_str());
            events::append(tx, "order.closed", no, &data, to_millis(now)).await?;
            raced.push((order.order_no, order.provider));
        }
    }
    Ok((erased, raced))
}

/// Step 3: the orders closed in the transaction, closed at their provider too.
async fn close_at_providers(deps: &ErasureDeps<'_>, raced: &[(OrderNo, ProviderId)]) {
    for (no, provider) in raced {
        if let Some(provider) = deps.providers.get(*provider)
            && let Err(e) = provider.close(no).await
        {
            tracing::warn!(order_no = %no, error = format!("{:#}", anyhow::Error::from(e)), "closing an erased account's order at the provider");
        }
    }
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

/// Every outbox payload that names the employer, rewritten with the pseudonym. The store's
/// `LIKE` only narrows the rows read; the JSON decides.
async fn rewrite_events(
    tx: &mut Tx,
    employer: &EmployerId,
    pseudonym: &EmployerId,
) -> Result<u64, sqlx::Error> {
    let mut n = 0;
    for (id, mut data) in erasure::events_containing(tx, employer.as_str()).await? {
        if replace_strings(&mut data, employer.as_str(), pseudonym.as_str()) {
            erasure::rewrite_event(tx, id, &data).await?;
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
    let fingerprint = erased_fingerprint(pseudonym);
    let mut n = 0;
    for mut answer in erasure::answers_containing(tx, employer.as_str()).await? {
        if replace_strings(&mut answer.body, employer.as_str(), pseudonym.as_str()) {
            erasure::rewrite_answer(tx, &answer, &fingerprint).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Every `Idempotency-Key` still stored as text (written before keys were hashed) that holds
/// the id, hashed as claims store keys now.
async fn hash_text_keys(
    deps: &ErasureDeps<'_>,
    tx: &mut Tx,
    employer: &EmployerId,
) -> Result<u64, sqlx::Error> {
    let rows = idempotency::text_keys_containing(tx, employer.as_str()).await?;
    for (api_key_id, text) in &rows {
        let hashed = deps.idempotency_keys.digest(text);
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
    let refunds = erasure::refunds_with_reasons(tx, pseudonym, employer.as_str()).await?;
    let fingerprint = erased_fingerprint(pseudonym);
    for refund_id in &refunds {
        for answer in erasure::answers_containing(tx, refund_id.as_str()).await? {
            if let Some(answer) = without_reason(answer, refund_id.as_str()) {
                erasure::rewrite_answer(tx, &answer, &fingerprint).await?;
            }
        }
    }
    let reasons = erasure::clear_refund_reasons(tx, pseudonym, employer.as_str()).await?;
    let resume_ids = erasure::forget_resume_ids(tx, pseudonym).await?;
    Ok(reasons + resume_ids)
}

/// The stored answer of refund `refund_id` with its reason removed; None when it is another
/// answer or has no reason.
fn without_reason(mut answer: StoredAnswer, refund_id: &str) -> Option<StoredAnswer> {
    let data = &mut answer.body;
    if data["refund_id"] == refund_id && !data["reason"].is_null() {
        data["reason"] = serde_json::Value::Null;
        return Some(answer);
    }
    None
}

/// SQLite: the WAL checkpointed and truncated, so the frames that held the old values are gone;
/// `secure_delete` already zeroed them in the pages. A checkpoint that a long reader blocks is
/// logged; the next erasure (or SQLite's own checkpoints) finishes it.
pub async fn checkpoint(db: &crate::store::Db) {
    match erasure::checkpoint_wal(db).await {
        Ok(None) => {}
        Ok(Some(c)) if c.busy == 0 => {}
        Ok(Some(c)) => {
            tracing::warn!(
                busy = c.busy,
                log = c.log,
                done = c.done,
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
}
