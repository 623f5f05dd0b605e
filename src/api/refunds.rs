//! Refunds of an order (scope `finance`): start one (idempotent), read one. Each handler
//! parses, calls [`crate::refunds`], and renders.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::auth::{Caller, Scope};
use super::idempotent::{self, Claimed};
use crate::clock::rfc3339_beijing_millis;
use crate::domain::OwnedClaim;
use crate::domain::{Fen, RefundId};
use crate::error::ApiError;
use crate::refunds::{self, StartError};
use crate::state::AppState;
use crate::store::refunds::{self as store, RefundRow};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRefund {
    amount: String,
    #[serde(default)]
    reason: Option<String>,
}

fn invalid_amount(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable("refund_amount_invalid", message.into())
}

/// A neutral, short, printable reason, or none (`domain::reasons::refund_reason`).
fn reason(text: Option<String>) -> Result<Option<String>, ApiError> {
    crate::domain::reasons::refund_reason(text)
        .map_err(|e| ApiError::bad_request("invalid_reason", e.to_string()))
}

/// One refund as the API shows it.
pub fn refund_json(r: &RefundRow) -> serde_json::Value {
    let mut v = serde_json::json!({
        "refund_id": r.refund_id,
        "order_no": r.order_no,
        "amount": r.amount,
        "currency": r.currency,
        "status": r.status,
        "origin": r.origin,
        "reason": r.reason,
        "created_at": rfc3339_beijing_millis(r.created_at),
        "succeeded_at": r.succeeded_at.map(rfc3339_beijing_millis),
        "actor": r.actor,
    });
    if let Some(failure) = &r.failure {
        v["failure"] = failure.clone().into();
    }
    v
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_no): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Finance)?;
    let key = idempotent::key(&state, &headers)?;
    let no = super::body::order_no(&order_no)?;
    let req: CreateRefund = super::json_body(&body)?;
    let amount = Fen::parse_yuan(&req.amount)
        .map_err(|e| invalid_amount(format!("amount {:?}: {e}", req.amount)))?;
    if amount == Fen::ZERO {
        return Err(invalid_amount("amount must be more than zero"));
    }
    let reason = reason(req.reason)?;
    let fingerprint = serde_json::json!({"order_no": no, "amount": amount, "reason": reason});
    match idempotent::claim(&state, &caller, &key, "refunds", &fingerprint).await? {
        Claimed::Owned => {}
        Claimed::Answered(response) => return Ok(response),
    }
    let claim = OwnedClaim {
        api_key_id: &caller.0.id,
        key: key.stored(),
    };
    let actor = crate::domain::Actor::ApiKey(caller.0.id.clone());
    let started = refunds::start(
        &state.refunds(),
        &no,
        amount,
        reason,
        &actor,
        Some(claim),
        |r| refund_json(r).to_string(),
    )
    .await;
    let refund = match started {
        Ok(refund) => refund,
        Err(e) => {
            // Nothing was written: the same key may be used again.
            crate::store::idempotency::release(state.db.pool(), &caller.0.id, key.stored()).await?;
            return Err(start_error(e));
        }
    };
    Ok((StatusCode::CREATED, Json(refund_json(&refund))).into_response())
}

fn start_error(e: StartError) -> ApiError {
    match e {
        StartError::UnknownOrder => ApiError::NotFound("order_not_found", "no such order".into()),
        StartError::NotRefundable(status) => ApiError::Conflict(
            "order_not_refundable",
            format!("the order is {status}; only paid orders can be refunded"),
        ),
        StartError::AmountInvalid { refundable } => invalid_amount(format!(
            "amount must be more than zero and at most {refundable}, what is still refundable"
        )),
        StartError::ProviderDisabled(_) => ApiError::Unprocessable(
            "provider_disabled",
            "the order's provider is not configured".into(),
        ),
        StartError::ReasonNotNeutral => ApiError::bad_request(
            "invalid_reason",
            "the reason is shown to the buyer and must not name the employer",
        ),
        StartError::Db(e) => ApiError::Database(e),
    }
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((order_no, refund_id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Finance)?;
    let not_found = || ApiError::NotFound("refund_not_found", "no such refund".into());
    let no = super::body::order_no(&order_no)?;
    let id = RefundId::parse(&refund_id).ok_or_else(not_found)?;
    let refund = store::get(state.db.reader(), &id)
        .await?
        .filter(|r| r.order_no == no)
        .ok_or_else(not_found)?;
    Ok(Json(refund_json(&refund)))
}
