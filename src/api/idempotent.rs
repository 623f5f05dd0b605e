//! `Idempotency-Key` for the creating endpoints (orders, refunds), as Stripe does it: claim
//! `(api key, key)` with a fingerprint of the request, replay the stored answer, refuse the
//! same key with another request.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::auth::Caller;
use crate::clock::to_millis;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::idempotency::{self, Claim};
use crate::store::idempotency_keys::Key;

/// The `Idempotency-Key` header (required, 1 to 255 characters) as it is stored: a keyed
/// hash, never the text (see [`crate::store::idempotency_keys`]).
pub fn key(state: &AppState, headers: &HeaderMap) -> Result<Key, ApiError> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(|k| state.idempotency_keys.key(k))
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_idempotency_key",
                "Idempotency-Key header (1 to 255 characters) is required",
            )
        })
}

pub enum Claimed {
    /// This request owns the key: do the work and store the answer with it.
    Owned,
    /// Answered before (a replay) or refused (another request, or still in flight).
    Answered(Response),
}

/// Claims `key` for a request whose meaning is `request` on `route` (a canonical JSON value:
/// serde_json's map is ordered). The same key on another route or with another request is
/// `idempotency_key_reused`.
pub async fn claim(
    state: &AppState,
    caller: &Caller,
    key: &Key,
    route: &str,
    request: &serde_json::Value,
) -> Result<Claimed, ApiError> {
    // Orders hashed only the request before refunds existed; keep their fingerprint as it was
    // so stored claims still match.
    let request_hash = if route == "orders" {
        hex::encode(Sha256::digest(request.to_string().as_bytes()))
    } else {
        idempotency::request_hash(route, request)
    };
    let now_ms = to_millis(state.clock.now());
    match idempotency::claim(
        &state.db,
        &caller.0.id,
        key.stored_key(),
        key.earlier(),
        &request_hash,
        now_ms,
    )
    .await?
    {
        Claim::Owned => Ok(Claimed::Owned),
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status)
                .map_err(|e| anyhow::anyhow!("stored answer status: {e}"))?;
            let body: serde_json::Value =
                serde_json::from_str(&body).map_err(anyhow::Error::from)?;
            Ok(Claimed::Answered((status, Json(body)).into_response()))
        }
        Claim::Mismatch => Err(ApiError::Unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request".into(),
        )),
        Claim::InFlight => Err(ApiError::Conflict(
            "idempotency_key_in_flight",
            "a request with this Idempotency-Key is still being processed; retry shortly".into(),
        )),
    }
}
