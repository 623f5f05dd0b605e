//! Privacy (DESIGN.md §1, §10; issue 11): account deletions carried out within two working
//! days ([`request`], [`carry_out`], the `erasure` job [`run_due`]), the pseudonym that
//! replaces an erased employer id ([`PseudonymKey`]), and retention ([`retention`]).
//!
//! An erasure replaces the employer id everywhere paygate holds it by
//! `erased:` + the first 56 hex digits of HMAC-SHA256(key, id) (224 bits; it still parses as
//! an [`EmployerId`], so every typed path keeps working): the same id always gives the same
//! pseudonym, nobody can reverse it without the key, and with the key destroyed not even
//! paygate can. The accounting (amounts, order numbers, provider transaction ids, refunds,
//! reconciliation rows) is not touched.

pub mod erase;
pub mod idempotency_keys;
pub mod retention;
pub mod workdays;

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use sha2::Sha256;
use sqlx::Row;

use crate::app::AppState;
use crate::checkout::OwnedClaim;
use crate::clock::{rfc3339_beijing_millis, to_millis};
use crate::config::Config;
use crate::domain::{EmployerId, OrderNo};
use crate::store::{idempotency, orders};

pub use erase::Erased;

/// What every pseudonym starts with: a reader of a row sees at once that it was erased.
pub use crate::domain::ids::PSEUDONYM_PREFIX;
/// Hex digits of the HMAC kept: the prefix and these fit [`EmployerId`]'s 64 characters.
const PSEUDONYM_HEX: usize = 56;
/// The refund reason of a payment that arrives for an erased account (shown to the buyer: it
/// names nobody).
pub use crate::domain::status::ACCOUNT_DELETED;

/// The secret key of the pseudonyms. Its `Debug` shows nothing.
pub struct PseudonymKey(SecretSlice<u8>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey([redacted])")
    }
}

impl PseudonymKey {
    /// At least 32 bytes: the strength of the HMAC-SHA256 it keys.
    pub fn new(bytes: Vec<u8>) -> anyhow::Result<PseudonymKey> {
        anyhow::ensure!(
            bytes.len() >= 32,
            "the pseudonym key must be at least 32 bytes"
        );
        Ok(PseudonymKey(SecretSlice::from(bytes)))
    }

    /// A random key for this process only (`serve --sandbox` without a configured file):
    /// pseudonyms then agree only until the next start.
    pub fn generate() -> PseudonymKey {
        let bytes: [u8; 32] = rand::rng().random();
        PseudonymKey(SecretSlice::from(bytes.to_vec()))
    }

    /// `[privacy] pseudonym_key_file` (its text, without the line end, is the key), or a
    /// generated one in sandbox mode, or none: erasures are then refused.
    pub fn load(config: &Config, sandbox: bool) -> anyhow::Result<Option<PseudonymKey>> {
        use anyhow::Context;
        match &config.privacy.pseudonym_key_file {
            Some(file) => {
                let path = config.resolve(file);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let key = text.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
                PseudonymKey::new(key)
                    .with_context(|| format!("[privacy] pseudonym_key_file {}", path.display()))
                    .map(Some)
            }
            None if sandbox => Ok(Some(PseudonymKey::generate())),
            None => Ok(None),
        }
    }

    /// The pseudonym of `id`: always the same for the same id and key.
    pub fn pseudonym(&self, id: &EmployerId) -> EmployerId {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes any key length");
        mac.update(id.as_str().as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        let text = format!("{PSEUDONYM_PREFIX}{}", &digest[..PSEUDONYM_HEX]);
        EmployerId::parse(&text).expect("prefix and hex digits fit an employer id")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErasureStatus {
    Pending,
    Completed,
}

impl ErasureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureStatus::Pending => "pending",
            ErasureStatus::Completed => "completed",
        }
    }

    fn parse(text: &str) -> Option<ErasureStatus> {
        match text {
            "pending" => Some(ErasureStatus::Pending),
            "completed" => Some(ErasureStatus::Completed),
            _ => None,
        }
    }
}

/// One erasure request as stored. The employer id itself is never read back out of it except
/// by [`carry_out`].
#[derive(Debug, Clone)]
pub struct ErasureRow {
    pub erasure_id: String,
    pub status: ErasureStatus,
    pub pseudonym: EmployerId,
    pub requested_at: i64,
    pub due_by: i64,
    pub completed_at: Option<i64>,
}

impl ErasureRow {
    /// As the API and the CLI show it: no employer id, only its pseudonym once carried out.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "erasure_id": self.erasure_id,
            "status": self.status,
            "requested_at": rfc3339_beijing_millis(self.requested_at),
            "due_by": rfc3339_beijing_millis(self.due_by),
        });
        if let Some(at) = self.completed_at {
            v["completed_at"] = rfc3339_beijing_millis(at).into();
            v["pseudonym"] = self.pseudonym.as_str().into();
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("no [privacy] pseudonym_key_file is configured: erasures are refused")]
    NotConfigured,
    #[error("no such erasure request")]
    UnknownErasure,
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

fn key(state: &AppState) -> Result<&PseudonymKey, PrivacyError> {
    state
        .pseudonym_key
        .as_deref()
        .ok_or(PrivacyError::NotConfigured)
}

/// The pseudonym under which this request may be fingerprinted (idempotency) and shown.
pub fn pseudonym_of(state: &AppState, employer: &EmployerId) -> Result<EmployerId, PrivacyError> {
    Ok(key(state)?.pseudonym(employer))
}

const COLUMNS: &str = "erasure_id, status, pseudonym, requested_at, due_by, completed_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ErasureRow, sqlx::Error> {
    let corrupt =
        |column: &'static str| move || crate::store::orders::corrupt(column, "not a valid value");
    let status: String = r.try_get("status")?;
    let pseudonym: String = r.try_get("pseudonym")?;
    Ok(ErasureRow {
        erasure_id: r.try_get("erasure_id")?,
        status: ErasureStatus::parse(&status).ok_or_else(corrupt("status"))?,
        pseudonym: EmployerId::parse(&pseudonym).ok_or_else(corrupt("pseudonym"))?,
        requested_at: r.try_get("requested_at")?,
        due_by: r.try_get("due_by")?,
        completed_at: r.try_get("completed_at")?,
    })
}

/// Records an erasure request (`pending`, due in two working days), with the API request's
/// answer when there is a claim, in one transaction.
pub async fn request(
    state: &AppState,
    employer: &EmployerId,
    claim: Option<OwnedClaim<'_>>,
    render: impl Fn(&ErasureRow) -> String,
) -> Result<ErasureRow, PrivacyError> {
    let pseudonym = key(state)?.pseudonym(employer);
    let now = state.clock.now();
    let row = ErasureRow {
        erasure_id: crate::domain::ids::prefixed_id("era"),
        status: ErasureStatus::Pending,
        pseudonym,
        requested_at: to_millis(now),
        due_by: to_millis(workdays::due_by(now, &state.config.privacy.holidays)),
        completed_at: None,
    };
    let mut tx = state.db.begin_write().await?;
    sqlx::query(
        "INSERT INTO privacy_erasure (erasure_id, employer_id, pseudonym, status, requested_at, due_by)
         VALUES ($1, $2, $3, 'pending', $4, $5)",
    )
    .bind(&row.erasure_id)
    .bind(employer.as_str())
    .bind(row.pseudonym.as_str())
    .bind(row.requested_at)
    .bind(row.due_by)
    .execute(&mut *tx)
    .await?;
    if let Some(c) = claim {
        idempotency::complete(&mut tx, c.api_key_id, c.key, 202, &render(&row)).await?;
    }
    tx.commit().await?;
    tracing::info!(erasure_id = %row.erasure_id, "erasure requested");
    Ok(row)
}

pub async fn get<'e, E>(exec: E, erasure_id: &str) -> Result<Option<ErasureRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM privacy_erasure WHERE erasure_id = $1"
    )))
    .bind(erasure_id)
    .fetch_optional(exec)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Carries out one request (a completed one is answered as it is) and answers it as it
/// stands then.
pub async fn carry_out(state: &AppState, erasure_id: &str) -> Result<ErasureRow, PrivacyError> {
    let key = key(state)?;
    let employer: Option<Option<String>> =
        sqlx::query_scalar("SELECT employer_id FROM privacy_erasure WHERE erasure_id = $1")
            .bind(erasure_id)
            .fetch_optional(state.db.pool())
            .await?;
    match employer {
        None => return Err(PrivacyError::UnknownErasure),
        Some(Some(employer)) => {
            let employer = EmployerId::parse(&employer).ok_or_else(|| {
                crate::store::orders::corrupt("employer_id", "not an employer id")
            })?;
            erase::erase_employer(state, key, &employer, erasure_id).await?;
        }
        // Completed already (by this request, or by another one for the same employer).
        Some(None) => {}
    }
    get(state.db.pool(), erasure_id)
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

/// The `erasure` job: carries out pending requests, oldest first; refunds payments that
/// reached an erased account after its erasure and are not refunded yet (a crash between the
/// settlement and its refund is healed here); reports what is past its `due_by`.
pub async fn run_due(state: &AppState) -> anyhow::Result<ErasurePass> {
    let mut pass = ErasurePass::default();
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT erasure_id FROM privacy_erasure WHERE status = 'pending'
         ORDER BY requested_at, erasure_id LIMIT 100",
    )
    .fetch_all(state.db.pool())
    .await?;
    for id in pending {
        match carry_out(state, &id).await {
            Ok(_) => pass.completed += 1,
            Err(e) => {
                pass.failed += 1;
                tracing::error!(erasure_id = %id, error = %crate::error::chain(&e), "erasure failed; the next pass retries");
            }
        }
    }
    let owed: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT o.order_no FROM payment_order o WHERE {OWED} ORDER BY o.order_no LIMIT 100"
    )))
    .fetch_all(state.db.pool())
    .await?;
    for no in owed {
        let no = OrderNo::parse(&no)
            .ok_or_else(|| crate::store::orders::corrupt("order_no", "not an order number"))?;
        if refund_if_erased(state, &no).await {
            pass.refunds_started += 1;
        }
    }
    let now_ms = to_millis(state.clock.now());
    let overdue: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM privacy_erasure WHERE status = 'pending' AND due_by < $1",
    )
    .bind(now_ms)
    .fetch_one(state.db.pool())
    .await?;
    pass.overdue = u64::try_from(overdue).unwrap_or(0);
    crate::telemetry::erasures_overdue(pass.overdue);
    if pass.overdue > 0 {
        tracing::error!(
            overdue = pass.overdue,
            "erasure requests are past their due_by (two working days)"
        );
    }
    Ok(pass)
}

/// An order `o` whose payment reached an erased account after its erasure and is not all
/// refunded or being refunded: settled under the pseudonym, nothing granted (settlement grants
/// nothing to an erased account, and an order paid before the erasure always had its grant —
/// revoked by the erasure, but there: that payment is the employer's purchase, not refunded).
const OWED: &str = "o.status IN ('paid', 'partially_refunded')
     AND o.refunded_fen + o.refund_pending_fen < o.amount_fen
     AND EXISTS (SELECT 1 FROM erased_employer x WHERE x.pseudonym = o.employer_id)
     AND NOT EXISTS (SELECT 1 FROM entitlement e WHERE e.order_no = o.order_no)";

/// True when `employer` is the pseudonym of an erased account.
pub async fn is_erased(
    ex: &mut crate::store::exec::Exec<'_>,
    employer: &EmployerId,
) -> Result<bool, sqlx::Error> {
    let found = ex
        .optional(
            "SELECT 1 AS erased FROM erased_employer WHERE pseudonym = $1",
            &[employer.as_str().into()],
        )
        .await?;
    Ok(found.is_some())
}

/// A payment that reached an erased account (settled under its pseudonym, nothing granted)
/// goes back in full through the refund path, reason `account_deleted`. True when a refund
/// was started now; anything else (not erased, nothing left to refund, a refund already in
/// flight, the provider not answering yet) is logged and left to the next `erasure` pass.
pub async fn refund_if_erased(state: &AppState, order_no: &OrderNo) -> bool {
    // A read of what has committed (every settled callback asks, almost always for nothing):
    // on the reader, so it never queues for the writer. The refund path guards its own writes.
    let owed: Result<i64, sqlx::Error> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM payment_order o WHERE o.order_no = $1 AND {OWED}"
    )))
    .bind(order_no.as_str())
    .fetch_one(state.db.reader())
    .await;
    let order = match owed {
        Ok(0) => return false,
        Ok(_) => orders::get(state.db.pool(), order_no).await,
        Err(e) => Err(e),
    };
    let order = match order {
        Ok(Some(order)) => order,
        Ok(None) => return false,
        Err(e) => {
            tracing::error!(%order_no, error = %e, "reading an order for an erased-account refund");
            return false;
        }
    };
    let started = crate::refunds::start(
        state,
        order_no,
        order.refundable(),
        Some(ACCOUNT_DELETED.to_owned()),
        None,
        |_| String::new(),
    )
    .await;
    match started {
        Ok(refund) => {
            tracing::info!(%order_no, refund_id = %refund.refund_id, "payment for an erased account refunded");
            true
        }
        Err(e) => {
            tracing::warn!(%order_no, error = %crate::error::chain(&e), "refund for an erased account not started; the erasure job retries");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pseudonym_is_stable_keyed_prefixed_and_an_employer_id() {
        let key = PseudonymKey::new(vec![7; 32]).unwrap();
        let id = EmployerId::parse("emp_42").unwrap();
        let p = key.pseudonym(&id);
        assert_eq!(p, key.pseudonym(&id));
        assert!(p.as_str().starts_with(PSEUDONYM_PREFIX));
        assert_eq!(p.as_str().len(), PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX);
        assert!(!p.as_str().contains("emp_42"));
        let other_key = PseudonymKey::new(vec![8; 32]).unwrap();
        assert_ne!(other_key.pseudonym(&id), p);
        assert_ne!(key.pseudonym(&EmployerId::parse("emp_43").unwrap()), p);
        // HMAC-SHA256(key = 32 × 0x07, "emp_42"), as Python's hmac module computes it.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[7; 32]).unwrap();
        mac.update(b"emp_42");
        let full = hex::encode(mac.finalize().into_bytes());
        assert_eq!(&p.as_str()[PSEUDONYM_PREFIX.len()..], &full[..56]);
    }

    #[test]
    fn a_short_key_is_refused_and_debug_shows_nothing() {
        assert!(PseudonymKey::new(vec![1; 31]).is_err());
        let key = PseudonymKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        assert_eq!(format!("{key:?}"), "PseudonymKey([redacted])");
    }
}
