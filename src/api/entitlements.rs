//! Entitlements of an employer, and the résumé service's access check.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::auth::{Caller, Scope};
use crate::domain::{Action, EmployerId};
use crate::entitlements::{self, Access, Refusal};
use crate::error::ApiError;
use crate::state::AppState;

fn employer(id: &str) -> Result<EmployerId, ApiError> {
    EmployerId::parse(id)
        .ok_or_else(|| ApiError::bad_request("invalid_employer_id", "employer_id is malformed"))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(employer_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Entitlements)?;
    let employer = employer(&employer_id)?;
    let list = entitlements::list(&state.db, &employer, state.clock.now()).await?;
    Ok(Json(
        serde_json::json!({"employer_id": employer, "entitlements": list}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessRequest {
    resume_id: String,
    action: String,
}

pub async fn access(
    State(state): State<AppState>,
    caller: Caller,
    Path(employer_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Entitlements)?;
    let employer = employer(&employer_id)?;
    let req: AccessRequest = super::json_body(&body)?;
    let action = Action::parse(&req.action).ok_or_else(|| {
        ApiError::bad_request("invalid_action", "action must be \"view\" or \"download\"")
    })?;
    if req.resume_id.is_empty() || req.resume_id.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_resume_id",
            "resume_id must be 1 to 128 characters",
        ));
    }
    let access = entitlements::access(
        &state.db,
        &employer,
        &req.resume_id,
        action,
        state.clock.now(),
    )
    .await?;
    match access {
        Access::Granted(granted) => Ok(Json(granted).into_response()),
        Access::Refused(Refusal::Expired) => Err(ApiError::Refused(
            "entitlement_expired",
            "the entitlement for this action has expired".into(),
        )),
        Access::Refused(Refusal::NoEntitlement) => Err(ApiError::Refused(
            "no_entitlement",
            "no active entitlement covers this action".into(),
        )),
    }
}
