//! Account deletions (scope `privacy`, DESIGN.md §10): `POST /v1/privacy/erasures` records a
//! request (idempotent) and answers 202; `GET /v1/privacy/erasures/{erasure_id}` reads it. The
//! `erasure` job carries requests out within minutes; both answers show the pseudonym once
//! it is done and never the employer id.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::auth::{Caller, Scope};
use super::idempotent::{self, Claimed};
use crate::domain::{EmployerId, ErasureId};
use crate::error::ApiError;
use crate::privacy::{self, PrivacyError};
use crate::state::AppState;
use crate::store::idempotency::OwnedClaim;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateErasure {
    employer_id: String,
}

fn privacy_error(e: PrivacyError) -> ApiError {
    match e {
        PrivacyError::NotConfigured => ApiError::Unprocessable(
            "privacy_not_configured",
            "no [privacy] pseudonym_key_file is configured; erasures cannot be carried out".into(),
        ),
        PrivacyError::UnknownErasure => not_found(),
        PrivacyError::Db(e) => ApiError::Database(e),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("erasure_not_found", "no such erasure request".into())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Privacy)?;
    let key = idempotent::key(&state, &headers)?;
    let req: CreateErasure = super::json_body(&body)?;
    let employer = EmployerId::parse(&req.employer_id).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_employer_id",
            "employer_id must be 1 to 64 characters of letters, digits and _-.:",
        )
    })?;
    // The fingerprint holds the pseudonym, not the id: a stored fingerprint of the id could be
    // tested against guessed ids after the erasure.
    let pseudonym =
        privacy::pseudonym_of(state.pseudonym_key.as_deref(), &employer).map_err(privacy_error)?;
    let fingerprint = serde_json::json!({"employer": pseudonym});
    match idempotent::claim(&state, &caller, &key, "privacy_erasures", &fingerprint).await? {
        Claimed::Owned => {}
        Claimed::Answered(response) => return Ok(response),
    }
    let claim = OwnedClaim {
        api_key_id: &caller.0.id,
        key: key.stored(),
    };
    let actor = crate::domain::Actor::ApiKey(caller.0.id.clone());
    let recorded = privacy::request(&state.erasures(), &employer, &actor, Some(claim), |r| {
        r.to_json().to_string()
    })
    .await;
    let row = match recorded {
        Ok(row) => row,
        Err(e) => {
            crate::store::idempotency::release(state.db.pool(), &caller.0.id, key.stored()).await?;
            return Err(privacy_error(e));
        }
    };
    Ok((StatusCode::ACCEPTED, Json(row.to_json())).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(erasure_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Privacy)?;
    let erasure_id = ErasureId::parse(&erasure_id).ok_or_else(not_found)?;
    let row = crate::store::erasures::get(state.db.reader(), &erasure_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(row.to_json()))
}
