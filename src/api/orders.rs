//! Orders: create (idempotent), read, cancel.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::auth::{Caller, Scope};
use crate::app::AppState;
use crate::clock::{rfc3339_beijing_millis, to_millis};
use crate::domain::{Channel, EmployerId, OrderNo, ProviderId};
use crate::error::{ApiError, envelope};
use crate::lifecycle::{self, CloseReason};
use crate::providers::{NewPayment, PayerHints, ProviderError, TradeStatus};
use crate::settle;
use crate::store::idempotency::{self, Claim};
use crate::store::orders::{self, OrderRow};
use crate::telemetry;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrder {
    employer_id: String,
    plan: String,
    provider: String,
    channel: String,
    /// WeChat `jsapi` only: the buyer's openid, passed through to WeChat and dropped.
    payer_openid: Option<String>,
    /// WeChat `h5` only: the buyer's IP, passed through to WeChat and dropped.
    client_ip: Option<String>,
}

/// The request fields about the payer (design.md §1): they never reach the database, not even
/// hashed into the idempotency record.
const PAYER_FIELDS: [&str; 2] = ["payer_openid", "client_ip"];

/// Checks that the payer facts are exactly those the channel requires, and well-formed.
fn payer_hints(channel: Channel, req: &CreateOrder) -> Result<PayerHints, ApiError> {
    let invalid = |code: &'static str, message: &str| ApiError::bad_request(code, message);
    let openid = match (channel, &req.payer_openid) {
        (Channel::Jsapi, Some(o)) => {
            // WeChat openids are 28 characters of [A-Za-z0-9_-]; allow some room, nothing else.
            if o.is_empty()
                || o.len() > 128
                || !o
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(invalid("invalid_payer_openid", "payer_openid is malformed"));
            }
            Some(o.clone())
        }
        (Channel::Jsapi, None) => {
            return Err(invalid(
                "missing_payer_openid",
                "channel jsapi requires payer_openid",
            ));
        }
        (_, Some(_)) => {
            return Err(invalid(
                "unexpected_payer_openid",
                "payer_openid is accepted for channel jsapi only",
            ));
        }
        (_, None) => None,
    };
    let client_ip = match (channel, &req.client_ip) {
        (Channel::H5, Some(ip)) => {
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|_| invalid("invalid_client_ip", "client_ip is not an IP address"))?;
            Some(ip.to_string())
        }
        (Channel::H5, None) => {
            return Err(invalid(
                "missing_client_ip",
                "channel h5 requires client_ip",
            ));
        }
        (_, Some(_)) => {
            return Err(invalid(
                "unexpected_client_ip",
                "client_ip is accepted for channel h5 only",
            ));
        }
        (_, None) => None,
    };
    Ok(PayerHints { openid, client_ip })
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Checkout)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_idempotency_key",
                "Idempotency-Key header (1 to 255 characters) is required",
            )
        })?
        .to_owned();
    // Validate everything before writing anything.
    let value: serde_json::Value = super::json_body(&body)?;
    let req: CreateOrder = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let employer = EmployerId::parse(&req.employer_id)
        .ok_or_else(|| ApiError::bad_request("invalid_employer_id", "employer_id is malformed"))?;
    let plan = state
        .catalog
        .get(&req.plan)
        .ok_or_else(|| ApiError::Unprocessable("unknown_plan", format!("no plan {:?}", req.plan)))?
        .clone();
    let provider_id = ProviderId::parse(&req.provider).ok_or_else(|| {
        ApiError::Unprocessable(
            "unknown_provider",
            "provider must be wechatpay or alipay".into(),
        )
    })?;
    let provider = configured_provider(&state, provider_id)?;
    let channel = Channel::parse(&req.channel)
        .filter(|c| provider.supports(*c))
        .ok_or_else(|| {
            ApiError::Unprocessable(
                "unsupported_channel",
                format!("{provider_id} does not offer channel {:?}", req.channel),
            )
        })?;

    let payer = payer_hints(channel, &req)?;

    // serde_json's map is ordered, so this is a canonical form of the request. The payer
    // fields are left out: a replay is recognised by everything else.
    let mut canonical = value.clone();
    if let Some(object) = canonical.as_object_mut() {
        for field in PAYER_FIELDS {
            object.remove(field);
        }
    }
    let request_hash = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));
    let now = state.clock.now();
    match idempotency::claim(
        state.db.pool(),
        &caller.0.id,
        &key,
        &request_hash,
        to_millis(now),
    )
    .await?
    {
        Claim::Owned => {}
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let body: serde_json::Value =
                serde_json::from_str(&body).map_err(anyhow::Error::from)?;
            return Ok((status, Json(body)).into_response());
        }
        Claim::Mismatch => {
            return Err(ApiError::Unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body".into(),
            ));
        }
        Claim::InFlight => {
            return Err(ApiError::Conflict(
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is still being processed; retry shortly"
                    .into(),
            ));
        }
    }

    let now_ms = to_millis(now);
    let expires_at = now + chrono::Duration::minutes(state.config.orders.ttl_minutes);
    let order = OrderRow {
        order_no: OrderNo::generate().to_string(),
        employer_id: employer.to_string(),
        plan_id: plan.id.clone(),
        grants_json: serde_json::to_string(&plan.grants).map_err(anyhow::Error::from)?,
        amount_fen: plan.price.get(),
        currency: "CNY".to_owned(),
        provider: provider_id.as_str().to_owned(),
        channel: channel.as_str().to_owned(),
        status: "pending".to_owned(),
        payment_json: None,
        late_payment: false,
        refunded_fen: 0,
        expires_at: to_millis(expires_at),
        paid_at: None,
        closed_at: None,
        created_at: now_ms,
        updated_at: now_ms,
    };
    // The order exists before the provider hears of it, so even an instant callback finds it.
    if let Err(e) = orders::insert(state.db.pool(), &order).await {
        let _ = idempotency::release(state.db.pool(), &caller.0.id, &key).await;
        return Err(e.into());
    }
    let payment = NewPayment {
        order_no: OrderNo::parse(&order.order_no)
            .ok_or_else(|| anyhow::anyhow!("generated order_no"))?,
        amount: plan.price,
        channel,
        description: state.config.orders.description.clone(),
        expires_at,
        payer,
    };
    let instructions = match provider.create(&payment).await {
        Ok(i) => i,
        Err(e) => {
            // Nothing half-created: drop the order and the claim; the same key works later.
            orders::delete_unaccepted(state.db.pool(), &order.order_no).await?;
            idempotency::release(state.db.pool(), &caller.0.id, &key).await?;
            let reason = match e {
                ProviderError::Unavailable(_) => "provider_unavailable",
                ProviderError::Rejected(_) => "provider_rejected",
            };
            telemetry::order_create_failed(provider_id.as_str(), reason);
            return Err(provider_api_error(e));
        }
    };
    let payment_json = serde_json::Value::Object(instructions).to_string();
    let mut order = order;
    order.payment_json = Some(payment_json.clone());
    let body = order_json(&order, None).to_string();
    let mut tx = state.db.begin_write().await?;
    orders::set_payment_json(&mut tx, &order.order_no, &payment_json, now_ms).await?;
    idempotency::complete(&mut tx, &caller.0.id, &key, 201, &body).await?;
    tx.commit().await?;
    tracing::info!(order_no = %order.order_no, provider = %provider_id, channel = channel.as_str(), "order created");
    telemetry::order_created(provider_id.as_str(), channel.as_str());
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// The order as the API shows it; `payment_record` adds the settled payment.
pub fn order_json(o: &OrderRow, payment_record: Option<&orders::PaymentRow>) -> serde_json::Value {
    let amount = crate::domain::Fen::new(o.amount_fen).unwrap_or(crate::domain::Fen::ZERO);
    let payment: serde_json::Value = o
        .payment_json
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(serde_json::Value::Null);
    let mut v = serde_json::json!({
        "order_no": o.order_no,
        "status": o.status,
        "employer_id": o.employer_id,
        "plan": o.plan_id,
        "amount": amount,
        "currency": o.currency,
        "provider": o.provider,
        "channel": o.channel,
        "payment": payment,
        "expires_at": rfc3339_beijing_millis(o.expires_at),
        "created_at": rfc3339_beijing_millis(o.created_at),
    });
    if let Some(paid) = o.paid_at {
        v["paid_at"] = rfc3339_beijing_millis(paid).into();
    }
    if let Some(closed) = o.closed_at {
        v["closed_at"] = rfc3339_beijing_millis(closed).into();
    }
    if o.late_payment {
        v["late_payment"] = true.into();
    }
    if let Some(p) = payment_record {
        v["payment_record"] = serde_json::json!({
            "provider_transaction_id": p.provider_txn_id,
            "amount": crate::domain::Fen::new(p.amount_fen).unwrap_or(crate::domain::Fen::ZERO),
            "currency": p.currency,
            "trade_type": p.trade_type,
            "bank_type": p.bank_type,
            "source": p.source,
            "paid_at": rfc3339_beijing_millis(p.paid_at),
        });
        v["refunds"] = serde_json::json!([]);
    }
    v
}

async fn load(state: &AppState, order_no: &str) -> Result<(OrderNo, OrderRow), ApiError> {
    let not_found = || ApiError::NotFound("order_not_found", "no such order".into());
    let no = OrderNo::parse(order_no).ok_or_else(not_found)?;
    let order = orders::get(state.db.pool(), no.as_str())
        .await?
        .ok_or_else(not_found)?;
    Ok((no, order))
}

async fn full_json(state: &AppState, order: &OrderRow) -> Result<serde_json::Value, ApiError> {
    let payment = orders::payment_of(state.db.pool(), &order.order_no).await?;
    Ok(order_json(order, payment.as_ref()))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_no): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Checkout)?;
    let (_, order) = load(&state, &order_no).await?;
    Ok(Json(full_json(&state, &order).await?))
}

fn paid_conflict(order: serde_json::Value) -> Response {
    let mut body = envelope("order_paid", "the order was paid and cannot be cancelled");
    body["order"] = order;
    (StatusCode::CONFLICT, Json(body)).into_response()
}

/// Closes an unpaid order at the provider, then here. If the buyer paid meanwhile, the
/// payment is settled and the answer is 409 with the (paid) order.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_no): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Checkout)?;
    let (no, order) = load(&state, &order_no).await?;
    match order.status.as_str() {
        "pending" => {}
        "closed" => return Ok(Json(full_json(&state, &order).await?).into_response()),
        _ => return Ok(paid_conflict(full_json(&state, &order).await?)),
    }
    let provider_id =
        ProviderId::parse(&order.provider).ok_or_else(|| anyhow::anyhow!("stored provider"))?;
    let provider = configured_provider(&state, provider_id)?;
    // Ask before closing: a paid order must be honoured, not closed.
    let status = provider.query(&no).await.map_err(provider_api_error)?;
    if let TradeStatus::Paid(trade) = status {
        settle_reported(&state, &trade).await?;
    } else {
        provider.close(&no).await.map_err(provider_api_error)?;
        lifecycle::close_locally(&state.db, &no, CloseReason::Cancelled, state.clock.now()).await?;
    }
    let order = orders::get(state.db.pool(), no.as_str())
        .await?
        .ok_or_else(|| anyhow::anyhow!("order vanished"))?;
    let json = full_json(&state, &order).await?;
    Ok(if order.status == "closed" {
        Json(json).into_response()
    } else {
        paid_conflict(json)
    })
}

fn configured_provider(
    state: &AppState,
    id: ProviderId,
) -> Result<std::sync::Arc<dyn crate::providers::PaymentProvider>, ApiError> {
    state.providers.get(id).cloned().ok_or_else(|| {
        ApiError::Unprocessable("provider_disabled", format!("{id} is not configured"))
    })
}

fn provider_api_error(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unavailable(e) => ApiError::ProviderUnavailable(e),
        ProviderError::Rejected(e) => ApiError::ProviderRejected(e),
    }
}

async fn settle_reported(state: &AppState, trade: &settle::PaidTrade) -> Result<(), ApiError> {
    match lifecycle::settle_queried(&state.db, trade, state.clock.now()).await {
        Ok(_) => Ok(()),
        Err(settle::SettleError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(
            "provider reported a payment that does not fit: {e}"
        ))),
    }
}
