//! Orders: create (idempotent), read, cancel. Each handler parses, calls a use case in
//! [`crate::checkout`], and renders.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde::Deserialize;

use super::auth::{Caller, Scope};
use super::idempotent::{self, Claimed};
use crate::checkout::{self, CheckoutError, NewOrder, OwnedClaim};
use crate::clock::rfc3339_beijing_millis;
use crate::domain::{Channel, EmployerId, OrderStatus, ProviderId};
use crate::edge::admission::WaitDegraded;
use crate::error::{ApiError, envelope};
use crate::providers::{PayerHints, ProviderError};
use crate::return_url::ReturnUrl;
use crate::state::AppState;
use crate::store::orders::{self, OrderRow};
use crate::store::refunds;

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
    /// Browser channels (Alipay `page`/`wap`, WeChat `h5`): this order's return URL instead of
    /// `[checkout] return_url`; `{order_no}` its only placeholder, its host allowed by
    /// `[checkout] allowed_return_hosts`.
    return_url: Option<String>,
}

/// The request fields about the payer (DESIGN.md §1): they never reach the database, not even
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
    let key = idempotent::key(&state, &headers)?;
    // Validate everything before writing anything.
    let value: serde_json::Value = super::json_body(&body)?;
    let req: CreateOrder = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    let employer = EmployerId::of_caller(&req.employer_id).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_employer_id",
            "employer_id is malformed or an erased account's pseudonym",
        )
    })?;
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
    let provider = checkout::provider(&state.providers, provider_id).map_err(checkout_error)?;
    let channel = Channel::parse(&req.channel)
        .filter(|c| provider.supports(*c))
        .ok_or_else(|| {
            ApiError::Unprocessable(
                "unsupported_channel",
                format!("{provider_id} does not offer channel {:?}", req.channel),
            )
        })?;
    let payer = payer_hints(channel, &req)?;
    let return_url = match &req.return_url {
        Some(text) => Some(order_return_url(&state, channel, &employer, text)?),
        None => None,
    };

    // The payer fields are left out of the request's fingerprint: a replay is recognised by
    // everything else, and nothing about the payer reaches the database.
    let mut canonical = value;
    if let Some(object) = canonical.as_object_mut() {
        for field in PAYER_FIELDS {
            object.remove(field);
        }
    }
    let claim = match idempotent::claim(&state, &caller, &key, "orders", &canonical).await? {
        Claimed::Owned => OwnedClaim {
            api_key_id: &caller.0.id,
            key: key.stored(),
        },
        Claimed::Answered(response) => return Ok(response),
    };
    let request = NewOrder {
        employer,
        plan,
        provider: provider_id,
        channel,
        payer,
        return_url,
    };
    let (_, body) = checkout::create(&state.checkout(), request, claim, |o| {
        order_json(o, None, &[]).to_string()
    })
    .await
    .map_err(checkout_error)?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Checks an order's own return URL: a valid template (https, `{order_no}` the only
/// placeholder), its host in `[checkout] allowed_return_hosts`, a channel the browser comes back
/// from, and nothing of the employer in it (DESIGN.md §1: the order number is the only
/// variable). Refused with 422 `return_url_not_allowed` before anything is written.
fn order_return_url(
    state: &AppState,
    channel: Channel,
    employer: &EmployerId,
    text: &str,
) -> Result<ReturnUrl, ApiError> {
    let refuse = |why: String| ApiError::Unprocessable("return_url_not_allowed", why);
    if !matches!(channel, Channel::Page | Channel::Wap | Channel::H5) {
        return Err(refuse(format!(
            "channel {} does not return to a page",
            channel.as_str()
        )));
    }
    let url = ReturnUrl::parse(text).map_err(|e| refuse(e.to_string()))?;
    if !url.host_allowed(&state.config.checkout.allowed_return_hosts) {
        return Err(refuse(
            "the return_url host is not in [checkout] allowed_return_hosts".into(),
        ));
    }
    // A whole path segment or query value equal to the employer id (a substring test would
    // refuse `…/8042/…` for employer `42`).
    let carries_employer = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .any(|token| token.eq_ignore_ascii_case(employer.as_str()));
    if carries_employer {
        return Err(refuse(
            "the return_url must not carry the employer id".into(),
        ));
    }
    Ok(url)
}

/// The order as the API shows it; `payment_record` adds the settled payment, with its refunds.
pub fn order_json(
    o: &OrderRow,
    payment_record: Option<&orders::PaymentRow>,
    refunds: &[refunds::RefundRow],
) -> serde_json::Value {
    let payment = o.payment_json.clone().unwrap_or(serde_json::Value::Null);
    let mut v = serde_json::json!({
        "order_no": o.order_no,
        "status": o.status,
        "employer_id": o.employer_id,
        "plan": o.plan_id,
        "amount": o.amount,
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
            "amount": p.amount,
            "currency": p.currency,
            "trade_type": p.trade_type,
            "bank_type": p.bank_type,
            "source": p.source,
            "paid_at": rfc3339_beijing_millis(p.paid_at),
        });
        v["refunded_amount"] = serde_json::json!(o.refunded);
        v["refunds"] = refunds.iter().map(super::refunds::refund_json).collect();
    }
    v
}

use super::body::{order_no, order_not_found};

async fn load(state: &AppState, order_no: &str) -> Result<OrderRow, ApiError> {
    let no = self::order_no(order_no)?;
    orders::get(state.db.reader(), &no)
        .await?
        .ok_or_else(order_not_found)
}

/// The order with its payment and refunds, as `GET /v1/orders/{order_no}` shows it.
pub(super) async fn full_json(
    state: &AppState,
    order: &OrderRow,
) -> Result<serde_json::Value, ApiError> {
    // Only a settled order has a payment, and refunds (in flight, failed or done): the payment
    // row is written in the transaction that settles it. A pending or closed order — what a
    // checkout page polls — is one read.
    if !order.status.is_settled() {
        return Ok(order_json(order, None, &[]));
    }
    let payment = orders::payment_of(state.db.reader(), &order.order_no).await?;
    with_refunds(state, order, payment.as_ref()).await
}

/// A settled order's JSON: its refunds are read.
async fn with_refunds(
    state: &AppState,
    order: &OrderRow,
    payment: Option<&orders::PaymentRow>,
) -> Result<serde_json::Value, ApiError> {
    let refunds = refunds::of_order_lookup(&state.db, &order.order_no).await?;
    Ok(order_json(order, payment, &refunds))
}

/// The order; with `wait=N`, answered as soon as it is no longer `pending` or after N
/// seconds (then still `pending`). Waiting costs a parked task: no database loop (see
/// [`crate::order_watch`]). Past `[limits] max_waits` open waits, the edge marks the request
/// [`WaitDegraded`] and it is answered at once, as without `wait=`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_no): Path<String>,
    RawQuery(query): RawQuery,
    degraded: Option<Extension<WaitDegraded>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Checkout)?;
    let mut wait = crate::edge::admission::wait_param(query.as_deref())?;
    if degraded.is_some() {
        wait = std::time::Duration::ZERO;
    }
    let no = self::order_no(&order_no)?;
    if wait.is_zero() {
        // The order and its payment in one read; a settled order's refunds in a second.
        let (order, payment) = orders::get_with_payment(&state.db, &no)
            .await?
            .ok_or_else(order_not_found)?;
        if !order.status.is_settled() {
            return Ok(Json(order_json(&order, None, &[])));
        }
        return Ok(Json(with_refunds(&state, &order, payment.as_ref()).await?));
    }
    // Subscribed before the first read: a change committed in between still wakes us.
    let mut changes = state.db.order_watch().subscribe(&no);
    let deadline = tokio::time::Instant::now() + wait;
    let mut order = load(&state, &order_no).await?;
    while order.status == OrderStatus::Pending {
        tokio::select! {
            () = changes.changed() => {}
            () = tokio::time::sleep_until(deadline) => break,
        }
        order = load(&state, &order_no).await?;
    }
    drop(changes);
    Ok(Json(full_json(&state, &order).await?))
}

/// `POST /v1/orders/{no}/return-check`: the buyer came back from the provider; the body is
/// the raw query string Alipay appended to the return URL (empty for WeChat). Verified, then
/// the provider is asked and a payment settles; the order is answered. A forged or altered
/// return is 422 `return_query_rejected` and changes nothing.
pub async fn return_check(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_no): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Checkout)?;
    let no = self::order_no(&order_no)?;
    let query = body.strip_prefix(b"?").unwrap_or(&body);
    let order = checkout::return_check(&state.checkout(), &no, query)
        .await
        .map_err(checkout_error)?;
    Ok(Json(full_json(&state, &order).await?))
}

fn paid_conflict(order: serde_json::Value) -> Response {
    let mut body = envelope("order_paid", "the order was paid and cannot be cancelled");
    body["order"] = order;
    (StatusCode::CONFLICT, Json(body)).into_response()
}

/// Closes an unpaid order at the provider and here. If the buyer paid meanwhile, the payment
/// is settled and the answer is 409 with the (paid) order.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_no): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Checkout)?;
    let no = self::order_no(&order_no)?;
    let order = checkout::cancel(&state.checkout(), &no)
        .await
        .map_err(checkout_error)?;
    let json = full_json(&state, &order).await?;
    Ok(match order.status {
        OrderStatus::Closed => Json(json).into_response(),
        _ => paid_conflict(json),
    })
}

pub(super) fn provider_api_error(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Unavailable(e) => ApiError::ProviderUnavailable(e),
        ProviderError::Rejected(e) => ApiError::ProviderRejected(e),
    }
}

fn checkout_error(e: CheckoutError) -> ApiError {
    match e {
        CheckoutError::UnknownOrder => order_not_found(),
        CheckoutError::ProviderDisabled(missing) => {
            ApiError::Unprocessable("provider_disabled", missing.to_string())
        }
        CheckoutError::Provider(p) => provider_api_error(p),
        CheckoutError::ReturnRefused(e) => {
            tracing::info!(error = %e, "browser return refused");
            ApiError::Unprocessable("return_query_rejected", e.to_string())
        }
        CheckoutError::DoesNotFit(e) => ApiError::Internal(e),
        CheckoutError::Db(e) => ApiError::Database(e),
        CheckoutError::Internal(e) => ApiError::Internal(e),
    }
}
