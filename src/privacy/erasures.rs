//! Erasure requests (DESIGN.md §10, issue 11): recorded ([`request`]), carried out within two
//! working days ([`carry_out`], the `erasure` job [`run_due`]).

use serde::Serialize;

use super::deps::ErasureDeps;
use super::erase;
use super::workdays;
use crate::domain::{EmployerId, ErasureId, ErasureRow, ErasureStatus, PseudonymKey};
use crate::store::idempotency::OwnedClaim;
use crate::store::{erased_employers, erasures, idempotency};

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("no [privacy] pseudonym_key_file is configured: erasures are refused")]
    NotConfigured,
    #[error("no such erasure request")]
    UnknownErasure,
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

fn key(key: Option<&PseudonymKey>) -> Result<&PseudonymKey, PrivacyError> {
    key.ok_or(PrivacyError::NotConfigured)
}

/// The pseudonym under which this request may be fingerprinted (idempotency) and shown.
pub fn pseudonym_of(
    pseudonym_key: Option<&PseudonymKey>,
    employer: &EmployerId,
) -> Result<EmployerId, PrivacyError> {
    Ok(key(pseudonym_key)?.pseudonym(employer))
}

/// Records an erasure request (`pending`, due in two working days), with the API request's
/// answer when there is a claim, in one transaction.
pub async fn request(
    deps: &ErasureDeps<'_>,
    employer: &EmployerId,
    actor: &crate::domain::Actor,
    claim: Option<OwnedClaim<'_>>,
    render: impl Fn(&ErasureRow) -> String,
) -> Result<ErasureRow, PrivacyError> {
    let pseudonym = key(deps.key)?.pseudonym(employer);
    let now = deps.clock.now();
    let row = ErasureRow {
        erasure_id: ErasureId::generate(),
        status: ErasureStatus::Pending,
        pseudonym,
        requested_at: now,
        due_by: workdays::due_by(now, &deps.config.holidays),
        completed_at: None,
        actor: Some(actor.clone()),
    };
    let mut tx = deps.db.begin_write().await?;
    erasures::insert(&mut tx, &row, employer).await?;
    if let Some(c) = claim {
        idempotency::complete(&mut tx, c.api_key_id, c.key, 202, &render(&row)).await?;
    }
    tx.commit().await?;
    tracing::info!(erasure_id = %row.erasure_id, "erasure requested");
    Ok(row)
}

/// Carries out one request (a completed one is answered as it is) and answers it as it
/// stands then.
pub async fn carry_out(
    deps: &ErasureDeps<'_>,
    erasure_id: &ErasureId,
) -> Result<ErasureRow, PrivacyError> {
    let key = key(deps.key)?;
    match erasures::employer_of(deps.db.pool(), erasure_id).await? {
        None => return Err(PrivacyError::UnknownErasure),
        Some(Some(employer)) => {
            erase::erase_employer(deps, key, &employer, erasure_id).await?;
        }
        // Completed already (by this request, or by another one for the same employer).
        Some(None) => {}
    }
    erasures::get(deps.db.pool(), erasure_id)
        .await?
        .ok_or(PrivacyError::UnknownErasure)
}

/// One pass of the `erasure` job.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ErasurePass {
    pub completed: u64,
    pub failed: u64,
    /// Still pending past `due_by` after this pass.
    pub overdue: u64,
    /// Payments that arrived for erased accounts and were sent back now.
    pub refunds_started: u64,
}

/// Requests carried out, and payments owed back to erased accounts looked at, per pass.
const PER_PASS: i64 = 100;

/// The `erasure` job: carries out pending requests, oldest first; refunds payments that
/// reached an erased account after its erasure and are not refunded yet (a crash between the
/// settlement and its refund is healed here); reports what is past its `due_by` (and
/// `/metrics` reads the same count from the database at every scrape).
pub async fn run_due(deps: &ErasureDeps<'_>) -> anyhow::Result<ErasurePass> {
    let mut pass = ErasurePass::default();
    for id in erasures::pending(deps.db.pool(), PER_PASS).await? {
        match carry_out(deps, &id).await {
            Ok(_) => pass.completed += 1,
            Err(e) => {
                pass.failed += 1;
                tracing::error!(erasure_id = %id, error = %crate::error::chain(&e), "erasure failed; the next pass retries");
            }
        }
    }
    for no in erased_employers::owed_orders(deps.db.pool(), PER_PASS).await? {
        if crate::settlement::refund_if_erased(&deps.tail(), &no).await {
            pass.refunds_started += 1;
        }
    }
    pass.overdue = erasures::overdue(deps.db.pool(), deps.clock.now()).await?;
    if pass.overdue > 0 {
        tracing::error!(
            overdue = pass.overdue,
            "erasure requests are past their due_by (two working days)"
        );
    }
    Ok(pass)
}
