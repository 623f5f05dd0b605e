//! WeChat Pay APIv3 as the merchant sees it: `/sandbox/wechatpay/v3/…`: the ledger, request
//! authentication, signed answers, query, close, `/v3/certificates` and the buyer paying. Order
//! creation per channel is in [`crate::wechat_order`], refunds in [`crate::wechat_refund`].
//!
//! Requests are checked in WeChat's order: headers (400 `INVALID_REQUEST`), then the signature
//! (401 `SIGN_ERROR`), then the parameters (400 `PARAM_ERROR`, …). Every answer, errors and 204s
//! included, is signed with the platform key over the exact bytes sent.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rand::Rng as _;
use serde_json::{Value, json};

use crate::wechat_bill;
use crate::wechat_order::{self, OrderParams};
use crate::wechat_platform::{self, Platform};
use crate::wechat_refund::{self, RefundEntry};
use crate::wire::rsa::{PrivateKey, PublicKey};
use crate::wire::wechat::{
    ApiV3Key, Authorization, HEADER_REQUEST_ID, MAX_SKEW_SECONDS, nonce, signed_headers,
};
use crate::{Sandbox, lock};

/// Where the WeChat API lives in the sandbox. The merchant signs the path after it (`/v3/…`),
/// as WeChat would see it at `https://api.mch.weixin.qq.com`.
pub const API_PREFIX: &str = "/sandbox/wechatpay";

/// The merchant side the sandbox checks requests against, and its own platform key.
#[derive(Clone)]
pub struct WechatSandboxConfig {
    pub mchid: String,
    pub appid: String,
    /// The merchant API certificate serial that `Authorization: … serial_no` must name.
    pub merchant_serial: String,
    pub merchant_public_key_pem: String,
    /// The APIv3 key, its 32 characters.
    pub apiv3_key: String,
    pub platform_private_key_pem: String,
    /// `PUB_KEY_ID_…`, sent as `Wechatpay-Serial`.
    pub platform_key_id: String,
}

impl std::fmt::Debug for WechatSandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatSandboxConfig")
            .field("mchid", &self.mchid)
            .field("appid", &self.appid)
            .field("merchant_serial", &self.merchant_serial)
            .field("platform_key_id", &self.platform_key_id)
            .field("apiv3_key", &"[redacted]")
            .field("platform_private_key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

pub(crate) struct WechatSim {
    pub(crate) mchid: String,
    pub(crate) appid: String,
    merchant_serial: String,
    merchant_key: PublicKey,
    pub(crate) apiv3_key: ApiV3Key,
    /// The platform key (`PUB_KEY_ID_…`) and certificates; what signs now.
    pub(crate) platform: Platform,
    pub(crate) orders: Mutex<HashMap<String, Order>>,
    /// Every API request received, for tests that check what the gateway sends.
    requests: Mutex<Vec<CapturedRequest>>,
}

pub(crate) const MAX_CAPTURED_REQUESTS: usize = 10_000;

/// One WeChat Pay API request as the sandbox received it (before any check), so that tests can
/// assert what leaves the gateway (design §1.1).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CapturedRequest {
    pub method: String,
    /// Path and query as WeChat would see them (after [`API_PREFIX`]), e.g. `/v3/pay/…`.
    pub path: String,
    /// The raw body, lossily decoded as UTF-8 (empty for a GET).
    pub body: String,
}

impl WechatSim {
    pub(crate) fn new(
        config: WechatSandboxConfig,
        now: DateTime<Utc>,
    ) -> anyhow::Result<WechatSim> {
        let merchant_key = PublicKey::from_pem(&config.merchant_public_key_pem)
            .map_err(|e| anyhow::anyhow!("merchant public key: {e}"))?;
        let platform_signer = PrivateKey::from_pem(&config.platform_private_key_pem)
            .map_err(|e| anyhow::anyhow!("platform private key: {e}"))?;
        let apiv3_key = ApiV3Key::new(config.apiv3_key.as_bytes())
            .map_err(|e| anyhow::anyhow!("APIv3 key: {e}"))?;
        anyhow::ensure!(
            config.platform_key_id.starts_with("PUB_KEY_ID_"),
            "platform key id must look like PUB_KEY_ID_…"
        );
        Ok(WechatSim {
            mchid: config.mchid,
            appid: config.appid,
            merchant_serial: config.merchant_serial,
            merchant_key,
            apiv3_key,
            platform: Platform::new(config.platform_key_id, platform_signer, now)?,
            orders: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        })
    }
}

/// One order of the ledger.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Order {
    pub(crate) params: OrderParams,
    /// The create answer's value: `code_url` (Native), `prepay_id` (JSAPI, App) or `h5_url`.
    pub(crate) prepay: String,
    /// What the cashier's QR code holds: the code_url, JSAPI's `package`, the App prepay_id or
    /// the h5_url.
    pub(crate) qr: String,
    pub(crate) state: OrderState,
    /// Every refund accepted for it, oldest first (only ever for a paid order).
    pub(crate) refunds: Vec<RefundEntry>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum OrderState {
    NotPay,
    Success(Payment),
    Closed,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Payment {
    pub(crate) transaction_id: String,
    pub(crate) success_time: String,
    /// `success_time` as an instant: which day's bill the payment is in.
    pub(crate) paid_at: DateTime<Utc>,
    pub(crate) openid: String,
}

impl Order {
    /// The Transaction JSON exactly as WeChat's query answers it (payer included once paid: the
    /// gateway must drop it).
    pub(crate) fn transaction_json(&self) -> Value {
        let p = &self.params;
        let mut t = json!({
            "appid": p.appid,
            "mchid": p.mchid,
            "out_trade_no": p.out_trade_no,
            "attach": "",
        });
        match &self.state {
            OrderState::NotPay => {
                t["trade_state"] = json!("NOTPAY");
                t["trade_state_desc"] = json!("订单未支付");
                t["amount"] = json!({"total": p.total, "currency": p.currency});
            }
            OrderState::Closed => {
                t["trade_state"] = json!("CLOSED");
                t["trade_state_desc"] = json!("订单已关闭");
                t["amount"] = json!({"total": p.total, "currency": p.currency});
            }
            OrderState::Success(payment) => {
                t["transaction_id"] = json!(payment.transaction_id);
                t["trade_type"] = json!(p.channel.trade_type());
                // 转入退款 once refunds were accepted for the whole total (processing or
                // succeeded; a closed or abnormal one gave its amount back).
                if self.refunded_fen() >= p.total {
                    t["trade_state"] = json!("REFUND");
                    t["trade_state_desc"] = json!("转入退款");
                } else {
                    t["trade_state"] = json!("SUCCESS");
                    t["trade_state_desc"] = json!("支付成功");
                }
                t["bank_type"] = json!("OTHERS");
                t["success_time"] = json!(payment.success_time);
                t["payer"] = json!({"openid": payment.openid});
                t["amount"] = json!({
                    "total": p.total,
                    "payer_total": p.total,
                    "currency": p.currency,
                    "payer_currency": p.currency,
                });
            }
        }
        t
    }
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            "/sandbox/wechatpay/v3/pay/transactions/native",
            post(wechat_order::native_order),
        )
        .route(
            "/sandbox/wechatpay/v3/pay/transactions/jsapi",
            post(wechat_order::jsapi_order),
        )
        .route(
            "/sandbox/wechatpay/v3/pay/transactions/h5",
            post(wechat_order::h5_order),
        )
        .route(
            "/sandbox/wechatpay/v3/pay/transactions/app",
            post(wechat_order::app_order),
        )
        .route("/sandbox/wechatpay/v3/certificates", get(certificates))
        .route(
            "/sandbox/wechatpay/rotate-platform-key",
            post(wechat_platform::rotate_platform_key),
        )
        .route(
            "/sandbox/wechatpay/platform-mode",
            post(wechat_platform::set_platform_mode),
        )
        .route(
            "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/{out_trade_no}",
            get(query_order),
        )
        .route(
            "/sandbox/wechatpay/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            post(close_order),
        )
        .route(
            "/sandbox/wechatpay/v3/refund/domestic/refunds",
            post(wechat_refund::create_refund),
        )
        .route(
            "/sandbox/wechatpay/v3/refund/domestic/refunds/{out_refund_no}",
            get(wechat_refund::query_refund),
        )
        .route(
            "/sandbox/wechatpay/v3/bill/tradebill",
            get(wechat_bill::trade_bill),
        )
        .route(
            "/sandbox/wechatpay/v3/billdownload/file",
            get(wechat_bill::download),
        )
        .route("/sandbox/wechatpay/{*rest}", any(not_found))
}

/// A WeChat error: `{"code","message"}` with its HTTP status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The WeChat error code, e.g. `PARAM_ERROR`.
    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
    }

    pub(crate) fn sign_error() -> ApiError {
        // WeChat says no more than this about why; neither do we.
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "SIGN_ERROR",
            "错误的签名，验签失败",
        )
    }

    pub(crate) fn param(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "PARAM_ERROR", message)
    }

    fn order_not_exist() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "ORDER_NOT_EXIST", "订单不存在")
    }
}

/// What a handler answers before it is signed.
pub(crate) struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(value: &Value) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn no_content() -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: Vec::new(),
        }
    }
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Answer {
        Answer {
            status: error.status,
            body: serde_json::to_vec(&json!({"code": error.code, "message": error.message}))
                .unwrap_or_default(),
        }
    }
}

impl Sandbox {
    /// An API answer: after `api_latency_ms`, signed.
    pub(crate) async fn respond(&self, answer: Result<Answer, ApiError>) -> Response {
        self.api_latency().await;
        self.signed(answer.unwrap_or_else(Answer::from))
    }

    /// Signs an answer with the platform key that signs now, over the exact bytes sent.
    fn signed(&self, answer: Answer) -> Response {
        let (serial, signer) = self.inner.wechat.platform.signing();
        let nonce = nonce(32);
        let mut signed_body = answer.body.clone();
        if self.faults().corrupt_response_signature {
            signed_body.extend_from_slice(b" ");
        }
        let headers = signed_headers(
            &signer,
            &serial,
            self.now().timestamp(),
            &nonce,
            &signed_body,
        );
        let request_id = format!(
            "{}-{}",
            random_hex(32),
            if answer.status.is_success() {
                0
            } else {
                answer.status.as_u16()
            }
        );
        let mut response = (answer.status, answer.body.clone()).into_response();
        let map = response.headers_mut();
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                map.insert(name, value);
            }
        }
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            map.insert(HEADER_REQUEST_ID, value);
        }
        if !answer.body.is_empty() {
            map.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        response
    }

    /// WeChat's request rules, in WeChat's order. `uri` is the full request URI; the signed
    /// canonical URL is its path and query after [`API_PREFIX`].
    pub(crate) fn authenticate(
        &self,
        method: &Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Authorization, ApiError> {
        let wechat = &self.inner.wechat;
        let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut requests = lock(&wechat.requests);
        if requests.len() >= MAX_CAPTURED_REQUESTS {
            // A long-running standalone sandbox keeps only the newest requests.
            requests.remove(0);
        }
        requests.push(CapturedRequest {
            method: method.as_str().to_owned(),
            path: path_and_query
                .strip_prefix(API_PREFIX)
                .unwrap_or(path_and_query)
                .to_owned(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        drop(requests);
        if self.take_api_error() {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SYSTEM_ERROR",
                "系统错误",
            ));
        }
        let present = |name| headers.get(name).is_some_and(|v| !v.is_empty());
        if !present(header::ACCEPT) || !present(header::USER_AGENT) {
            return Err(ApiError::invalid_request("Http头缺少Accept或User-Agent"));
        }
        if method == Method::POST {
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                return Err(ApiError::invalid_request(
                    "Http头Content-Type值必须为application/json",
                ));
            }
        }

        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(Authorization::parse)
            .ok_or_else(ApiError::sign_error)?;
        if authorization.mchid != wechat.mchid || authorization.serial_no != wechat.merchant_serial
        {
            return Err(ApiError::sign_error());
        }
        let skew = authorization
            .unix_seconds()
            .map(|at| self.now().timestamp().abs_diff(at));
        if skew.is_none_or(|skew| skew >= MAX_SKEW_SECONDS) {
            return Err(ApiError::sign_error());
        }
        let canonical_url = path_and_query
            .strip_prefix(API_PREFIX)
            .unwrap_or(path_and_query);
        let message = authorization.message(method.as_str(), canonical_url, body);
        if !wechat
            .merchant_key
            .verify_base64(&message, &authorization.signature)
        {
            return Err(ApiError::sign_error());
        }
        Ok(authorization)
    }
}

/// 6–32 characters of `[0-9A-Za-z_-|*]`.
pub(crate) fn valid_out_trade_no(value: &str) -> bool {
    (6..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*'))
}

/// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…`.
async fn query_order(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let answer = sandbox
        .authenticate(&Method::GET, &uri, &headers, b"")
        .and_then(|_| {
            let wechat = &sandbox.inner.wechat;
            let mchid = uri
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|pair| pair.strip_prefix("mchid="));
            match mchid {
                None => return Err(ApiError::param("缺少参数mchid")),
                Some(m) if m != wechat.mchid => {
                    return Err(ApiError::param("mchid与请求头不一致"));
                }
                Some(_) => {}
            }
            let orders = lock(&wechat.orders);
            let order = orders
                .get(&out_trade_no)
                .ok_or_else(ApiError::order_not_exist)?;
            Ok(Answer::json(&order.transaction_json()))
        });
    sandbox.respond(answer).await
}

/// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` → 204, re-entrant.
async fn close_order(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = sandbox
        .authenticate(&Method::POST, &uri, &headers, &body)
        .and_then(|auth| {
            let wechat = &sandbox.inner.wechat;
            let request: Value = serde_json::from_slice(&body)
                .map_err(|_| ApiError::param("请求体不是合法的JSON"))?;
            match request.get("mchid").and_then(Value::as_str) {
                None => return Err(ApiError::param("缺少参数mchid")),
                Some(m) if m != auth.mchid => return Err(ApiError::sign_error()),
                Some(_) => {}
            }
            if sandbox.faults().pay_before_close {
                // The buyer's payment lands just before the close: the close is refused.
                let _ = sandbox.pay(&out_trade_no);
            }
            let mut orders = lock(&wechat.orders);
            let order = orders
                .get_mut(&out_trade_no)
                .ok_or_else(ApiError::order_not_exist)?;
            match order.state {
                // A paid order is refunded, not closed (v3 code unconfirmed; as for re-orders).
                OrderState::Success(_) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ORDER_PAID",
                    "该订单已支付",
                )),
                OrderState::NotPay | OrderState::Closed => {
                    order.state = OrderState::Closed;
                    sandbox.keep_wechat_order(order);
                    tracing::info!(out_trade_no = %out_trade_no, "sandbox: WeChat order closed");
                    Ok(Answer::no_content())
                }
            }
        });
    sandbox.respond(answer).await
}

/// `GET /v3/certificates`: the listed platform certificates, each encrypted under the APIv3
/// key, signed like every answer (with the certificate that signs now in certificate mode).
async fn certificates(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let answer = sandbox
        .authenticate(&Method::GET, &uri, &headers, b"")
        .map(|_| {
            let wechat = &sandbox.inner.wechat;
            Answer::json(&wechat.platform.listing(&wechat.apiv3_key))
        });
    sandbox.respond(answer).await
}

async fn not_found(State(sandbox): State<Sandbox>) -> Response {
    sandbox
        .respond(Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_EXISTS",
            "sandbox: this WeChat Pay API is not simulated",
        )))
        .await
}

impl Sandbox {
    /// The channel an order was created on, as its `trade_type` (`NATIVE`, `JSAPI`, `MWEB`,
    /// `APP`); None for an unknown order.
    pub fn wechat_trade_type(&self, out_trade_no: &str) -> Option<&'static str> {
        lock(&self.inner.wechat.orders)
            .get(out_trade_no)
            .map(|order| order.params.channel.trade_type())
    }
}

/// Why the buyer could not pay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    #[error("no such order")]
    NotFound,
    #[error("the order is closed")]
    Closed,
    #[error("the order is already paid")]
    AlreadyPaid,
    /// [`PayTiming::RacedTheClose`] of an order that was never closed.
    #[error("the order is not closed, so no payment can have raced its close")]
    NotClosed,
}

/// When the buyer's payment lands, as `POST /sandbox/pay/{out_trade_no}[?late=true]` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayTiming {
    /// An order still open (unpaid, not closed): the ordinary payment. A closed one is
    /// refused, as the providers refuse it.
    #[default]
    Open,
    /// `late=true`: the order was closed at the provider, but the buyer's payment was already
    /// under way there when the close arrived (password entered, bank debiting) and completes
    /// after all: the trade becomes paid and its notification follows. A merchant honours a
    /// payment reported for an order it closed; this is how a test produces one. Refused for an
    /// order that is not closed.
    RacedTheClose,
}

impl PayTiming {
    /// Whether a trade that is `closed` (else open; a paid one never gets here) may be paid
    /// this way.
    pub(crate) fn admits(self, closed: bool) -> Result<(), PayError> {
        match (self, closed) {
            (PayTiming::Open, false) | (PayTiming::RacedTheClose, true) => Ok(()),
            (PayTiming::Open, true) => Err(PayError::Closed),
            (PayTiming::RacedTheClose, false) => Err(PayError::NotClosed),
        }
    }
}

impl Sandbox {
    /// Every WeChat Pay API request (order, query, close, refund, …) received so far, in arrival
    /// order.
    pub fn wechat_requests(&self) -> Vec<CapturedRequest> {
        lock(&self.inner.wechat.requests).clone()
    }

    /// The buyer pays `out_trade_no`: the order becomes SUCCESS and the `TRANSACTION.SUCCESS`
    /// callback starts in the background. Answers WeChat's side of the transaction (with
    /// `payer.openid`, which the gateway must never keep).
    ///
    /// An order in the Alipay ledger instead is paid the Alipay way (TRADE_SUCCESS and a
    /// `trade_status_sync` notification); the answer is then its `alipay.trade.query` node.
    pub fn pay(&self, out_trade_no: &str) -> Result<Value, PayError> {
        self.pay_with(out_trade_no, PayTiming::Open)
    }

    /// [`Sandbox::pay`], the payment landing as `timing` says: an open order's, or one that
    /// raced the order's close at the provider and completes after it ([`PayTiming`]).
    pub fn pay_with(&self, out_trade_no: &str, timing: PayTiming) -> Result<Value, PayError> {
        let wechat = &self.inner.wechat;
        if !lock(&wechat.orders).contains_key(out_trade_no) && self.alipay_has(out_trade_no) {
            return self.pay_alipay(out_trade_no, timing);
        }
        let (transaction, notify_url) = {
            let mut orders = lock(&wechat.orders);
            let order = orders.get_mut(out_trade_no).ok_or(PayError::NotFound)?;
            match order.state {
                OrderState::Success(_) => return Err(PayError::AlreadyPaid),
                OrderState::Closed => timing.admits(true)?,
                OrderState::NotPay => timing.admits(false)?,
            }
            let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
            let now = self.now().with_timezone(&beijing);
            // A JSAPI buyer is the one whose openid the merchant sent; the other channels learn
            // who paid only now.
            let openid = match &order.params.payer_openid {
                Some(openid) => openid.0.clone(),
                None => new_openid(),
            };
            order.state = OrderState::Success(Payment {
                transaction_id: new_transaction_id(&now.format("%Y%m%d").to_string()),
                success_time: now.to_rfc3339_opts(SecondsFormat::Secs, false),
                paid_at: now.with_timezone(&Utc),
                openid,
            });
            self.keep_wechat_order(order);
            (order.transaction_json(), order.params.notify_url.clone())
        };
        tracing::info!(out_trade_no, "sandbox: WeChat order paid");
        self.notify_wechat(out_trade_no.to_owned(), notify_url, transaction.clone());
        Ok(transaction)
    }

    /// Whether `out_trade_no` is a WeChat H5 order: the one channel whose cashier sends the
    /// browser on to the `redirect_url` the merchant appended to the h5_url.
    pub(crate) fn is_wechat_h5(&self, out_trade_no: &str) -> bool {
        lock(&self.inner.wechat.orders)
            .get(out_trade_no)
            .is_some_and(|o| matches!(o.params.channel, crate::wechat_order::Channel::H5))
    }

    /// What the cashier page shows of an order.
    pub(crate) fn cashier_view(&self, out_trade_no: &str) -> Option<CashierView> {
        let orders = lock(&self.inner.wechat.orders);
        let Some(order) = orders.get(out_trade_no) else {
            drop(orders);
            return self.alipay_cashier_view(out_trade_no);
        };
        Some(CashierView {
            total_fen: order.params.total,
            code_url: order.qr.clone(),
            description: order.params.description.clone(),
            state: match order.state {
                OrderState::NotPay => "NOTPAY",
                OrderState::Success(_) => "SUCCESS",
                OrderState::Closed => "CLOSED",
            },
            provider: "WeChat Pay",
        })
    }
}

pub(crate) struct CashierView {
    pub(crate) total_fen: i64,
    pub(crate) code_url: String,
    pub(crate) description: String,
    pub(crate) state: &'static str,
    /// "WeChat Pay" or "Alipay", for the page title.
    pub(crate) provider: &'static str,
}

/// Like WeChat's: 28 digits starting `42`, with the pay date inside.
fn new_transaction_id(yyyymmdd: &str) -> String {
    let mut rng = rand::rng();
    format!(
        "42000{:05}{yyyymmdd}{:010}",
        rng.random_range(0..100_000u32),
        rng.random_range(0..10_000_000_000u64)
    )
}

/// Like a real openid: `o` and 27 characters of `[0-9A-Za-z_-]`.
fn new_openid() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
    let mut rng = rand::rng();
    let tail: String = (0..27)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("o{tail}")
}

pub(crate) fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}
