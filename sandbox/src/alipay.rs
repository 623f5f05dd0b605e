//! Alipay's classic gateway as the merchant sees it: `/sandbox/alipay/gateway.do`.
//!
//! Parameters come split any way between the URL query and the form body (alipay.md §1). The
//! app signature is checked with the app public key; every answer is
//! `{"<method>_response":{…},"sign":"…"}`, `/` written as `\/`, signed with the simulator's
//! "Alipay" key over exactly the node bytes emitted. Paying an order (the cashier) sends a
//! form-encoded `trade_status_sync` notification (V1 rule) until it is answered `success`;
//! so does every refund, with its `refund_fee`, `out_biz_no` and `gmt_refund`. Refunds and the
//! refund query live in the `refund` submodule.

mod bill;
mod refund;

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng as _;
use serde_json::{Value, json};

use crate::delivery::DeliveryRecord;
use crate::faults::Faults;
use crate::outbox::Payload;
use crate::wechat::{CashierView, PayError, PayTiming, random_hex};
use crate::wire::alipay::{
    BILL_METHOD, MAX_ORDER_FEN, Params, RequestError, beijing_time, error_response, escape_slashes,
    parse_beijing_time, signed_notification, signed_response, verify_request, yuan_to_fen,
};
use crate::wire::rsa::{PrivateKey, PublicKey};
use crate::{Sandbox, lock};
use refund::AlipayRefund;

/// Where the Alipay gateway lives in the sandbox (`[alipay] gateway_url` =
/// `{public_url}/sandbox/alipay/gateway.do`).
pub const GATEWAY_PATH: &str = "/sandbox/alipay/gateway.do";

/// Delays before the 2nd, 3rd, … notification when not answered `success`: 4m, 10m, 10m, 1h,
/// 2h, 6h, 15h (8 notifications in all, alipay.md §6). Each is divided by `time_divisor`.
pub const RETRY_SCHEDULE_SECS: [u64; 7] = [
    4 * 60,
    10 * 60,
    10 * 60,
    3600,
    2 * 3600,
    6 * 3600,
    15 * 3600,
];

/// The merchant app the sandbox checks requests against, and its own "Alipay" key.
#[derive(Clone)]
pub struct AlipaySandboxConfig {
    pub app_id: String,
    /// The app public key (SPKI/PKCS#1 PEM or bare Base64) that verifies request signatures.
    pub app_public_key_pem: String,
    /// The simulator's Alipay private key: signs answers and notifications.
    pub alipay_private_key_pem: String,
    /// The payee (`seller_id`, a `2088…` PID) put in notifications.
    pub seller_id: String,
}

impl std::fmt::Debug for AlipaySandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlipaySandboxConfig")
            .field("app_id", &self.app_id)
            .field("seller_id", &self.seller_id)
            .field("alipay_private_key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

pub(crate) struct AlipaySim {
    app_id: String,
    seller_id: String,
    app_key: PublicKey,
    pub(crate) signer: PrivateKey,
    pub(crate) orders: Mutex<HashMap<String, AlipayOrder>>,
    /// Every gateway.do request received, for tests that check what the gateway sends.
    requests: Mutex<Vec<Vec<(String, String)>>>,
}

impl AlipaySim {
    pub(crate) fn new(config: AlipaySandboxConfig) -> anyhow::Result<AlipaySim> {
        let app_key = PublicKey::from_pem(&config.app_public_key_pem)
            .map_err(|e| anyhow::anyhow!("alipay app public key: {e}"))?;
        let signer = PrivateKey::from_pem(&config.alipay_private_key_pem)
            .map_err(|e| anyhow::anyhow!("alipay private key: {e}"))?;
        anyhow::ensure!(!config.app_id.is_empty(), "alipay app_id is empty");
        Ok(AlipaySim {
            app_id: config.app_id,
            seller_id: config.seller_id,
            app_key,
            signer,
            orders: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
        })
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct AlipayOrder {
    out_trade_no: String,
    /// Alipay's trade number: 28 digits, the creation date first.
    trade_no: String,
    total_fen: i64,
    subject: String,
    notify_url: Option<String>,
    /// Page/wap pay: the `return_url` common parameter, and the `method` of the signed return
    /// query the browser is sent there with after paying.
    return_to: Option<(String, String)>,
    /// The QR code content (precreate), or the cashier link for page/wap pay.
    qr_code: String,
    gmt_create: String,
    /// `gmt_create` as an instant (the bill's 创建时间).
    created_at: DateTime<Utc>,
    state: TradeState,
    /// Refunds made, oldest first (only a paid trade has any).
    refunds: Vec<AlipayRefund>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum TradeState {
    WaitBuyerPay,
    Success(Payment),
    Closed,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Payment {
    gmt_payment: String,
    /// `gmt_payment` as an instant: which day's bill the payment is in.
    paid_at: DateTime<Utc>,
    buyer_id: String,
    buyer_logon_id: String,
}

impl AlipayOrder {
    fn status(&self) -> &'static str {
        match self.state {
            TradeState::WaitBuyerPay => "WAIT_BUYER_PAY",
            // A fully refunded trade is closed (alipay.md §5); a partly refunded one is not.
            TradeState::Success(_) if self.refunded_fen() >= self.total_fen => "TRADE_CLOSED",
            TradeState::Success(_) => "TRADE_SUCCESS",
            TradeState::Closed => "TRADE_CLOSED",
        }
    }

    /// Everything refunded so far: Alipay's cumulative `refund_fee`.
    fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(|r| r.refund_fen).sum()
    }

    fn amount(&self) -> String {
        yuan(self.total_fen)
    }

    /// The `alipay.trade.query` node fields after code/msg, as Alipay answers them (buyer fields
    /// included once paid: the gateway must drop them).
    fn query_fields(&self) -> Vec<(&'static str, Value)> {
        let amount = self.amount();
        let mut fields = vec![
            ("buyer_pay_amount", json!("0.00")),
            ("invoice_amount", json!("0.00")),
            ("out_trade_no", json!(self.out_trade_no)),
            ("point_amount", json!("0.00")),
            ("receipt_amount", json!("0.00")),
            ("total_amount", json!(amount)),
            ("trade_no", json!(self.trade_no)),
            ("trade_status", json!(self.status())),
        ];
        if let TradeState::Success(payment) = &self.state {
            fields = vec![
                ("buyer_logon_id", json!(payment.buyer_logon_id)),
                ("buyer_pay_amount", json!(amount)),
                ("buyer_user_id", json!(payment.buyer_id)),
                ("buyer_user_type", json!("PRIVATE")),
                (
                    "fund_bill_list",
                    json!([{"amount": amount, "fund_channel": "ALIPAYACCOUNT"}]),
                ),
                ("invoice_amount", json!(amount)),
                ("out_trade_no", json!(self.out_trade_no)),
                ("point_amount", json!("0.00")),
                ("receipt_amount", json!(amount)),
                ("send_pay_date", json!(payment.gmt_payment)),
                ("total_amount", json!(amount)),
                ("trade_no", json!(self.trade_no)),
                ("trade_status", json!(self.status())),
            ];
        }
        fields
    }

    /// The provider-side trade as `POST /sandbox/pay/{no}` answers it.
    fn trade_json(&self) -> Value {
        let mut node = serde_json::Map::new();
        for (key, value) in self.query_fields() {
            node.insert(key.to_owned(), value);
        }
        Value::Object(node)
    }
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(GATEWAY_PATH, any(gateway))
        .route(bill::DOWNLOAD_PATH, get(bill::download))
}

/// A business or gateway failure, answered inside the method's node.
#[derive(Debug)]
struct Failure {
    code: &'static str,
    msg: &'static str,
    sub_code: &'static str,
    sub_msg: String,
}

impl Failure {
    fn business(sub_code: &'static str, sub_msg: impl Into<String>) -> Failure {
        Failure {
            code: "40004",
            msg: "Business Failed",
            sub_code,
            sub_msg: sub_msg.into(),
        }
    }

    fn invalid(sub_code: &'static str, sub_msg: impl Into<String>) -> Failure {
        Failure {
            code: "40002",
            msg: "Invalid Arguments",
            sub_code,
            sub_msg: sub_msg.into(),
        }
    }

    fn not_exist() -> Failure {
        Failure::business("ACQ.TRADE_NOT_EXIST", "交易不存在")
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("code", json!(self.code)),
            ("msg", json!(self.msg)),
            ("sub_code", json!(self.sub_code)),
            ("sub_msg", json!(self.sub_msg)),
        ]
    }
}

impl From<RequestError> for Failure {
    fn from(error: RequestError) -> Failure {
        Failure {
            code: error.code(),
            msg: error.msg(),
            sub_code: error.sub_code(),
            sub_msg: error.to_string(),
        }
    }
}

/// What a handled method answers.
enum Outcome {
    /// The node fields after `code`/`msg` of a 10000 answer.
    Success(Vec<(&'static str, Value)>),
    /// A browser order (page/wap pay): off to the cashier.
    Redirect(String),
}

/// A JSON object with its keys in the given order (Alipay puts `code` and `msg` first).
fn ordered_node(fields: &[(&'static str, Value)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| {
            format!(
                "{}:{}",
                serde_json::to_string(key).unwrap_or_default(),
                serde_json::to_string(value).unwrap_or_default()
            )
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

/// `GET|POST /sandbox/alipay/gateway.do`.
async fn gateway(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(sim) = sandbox.inner.alipay.get() else {
        return (
            StatusCode::NOT_FOUND,
            "sandbox: the Alipay half is not configured",
        )
            .into_response();
    };
    let params = match Params::from_request(query.as_deref().unwrap_or("").as_bytes(), &body) {
        Ok(params) => params,
        Err(error) => {
            return unsigned_error(&Failure::invalid(
                "isv.invalid-parameter",
                error.to_string(),
            ));
        }
    };
    {
        let mut requests = lock(&sim.requests);
        if requests.len() >= crate::wechat::MAX_CAPTURED_REQUESTS {
            requests.remove(0);
        }
        requests.push(
            params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
    }
    let Some(method) = params.non_empty("method").map(str::to_owned) else {
        return unsigned_error(&Failure::from(RequestError::Missing("method")));
    };
    let known = matches!(
        method.as_str(),
        "alipay.trade.precreate"
            | "alipay.trade.page.pay"
            | "alipay.trade.wap.pay"
            | "alipay.trade.app.pay"
            | "alipay.trade.query"
            | "alipay.trade.close"
            | "alipay.trade.refund"
            | "alipay.trade.fastpay.refund.query"
            | BILL_METHOD
    );
    if !known {
        return unsigned_error(&Failure::invalid(
            "isv.invalid-method",
            "sandbox: this Alipay method is not simulated",
        ));
    }
    // The app SDK hands the signed order string to Alipay; here the "app" opens
    // `gateway.do?{order_string}` and lands on the cashier like a browser order.
    let browser = matches!(
        method.as_str(),
        "alipay.trade.page.pay" | "alipay.trade.wap.pay" | "alipay.trade.app.pay"
    );
    let outcome = sandbox.handle(sim, &method, &params, &headers);
    sandbox.api_latency().await;
    match outcome {
        // 302, as Alipay's gateway sends the browser on to its cashier.
        Ok(Outcome::Redirect(location)) => match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        },
        Ok(Outcome::Success(fields)) => {
            let mut node = vec![("code", json!("10000")), ("msg", json!("Success"))];
            node.extend(fields);
            sandbox.signed_answer(sim, &method, &node)
        }
        Err(failure) if browser => (
            StatusCode::BAD_REQUEST,
            Html(format!(
                "<!doctype html><meta charset=\"utf-8\"><title>支付宝 sandbox</title>\
                 <p>{} {}</p>",
                failure.code, failure.sub_code
            )),
        )
            .into_response(),
        Err(failure) => sandbox.signed_answer(sim, &method, &failure.fields()),
    }
}

/// `{"error_response":{…}}`, unsigned, as Alipay answers some gateway-level failures.
fn unsigned_error(failure: &Failure) -> Response {
    let node = escape_slashes(&ordered_node(&failure.fields()));
    json_response(error_response(&node))
}

fn json_response(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html;charset=utf-8"),
    );
    response
}

impl Sandbox {
    /// `{"<method>_response":<node>,"sign":"…"}` signed over the exact node bytes (or, with the
    /// `corrupt_response_signature` fault, over other bytes).
    fn signed_answer(
        &self,
        sim: &AlipaySim,
        method: &str,
        fields: &[(&'static str, Value)],
    ) -> Response {
        let node = escape_slashes(&ordered_node(fields));
        let mut signed = node.clone();
        if self.faults().corrupt_response_signature {
            signed.push(' ');
        }
        json_response(signed_response(method, &node, &signed, &sim.signer))
    }

    /// `headers`: the request's, for the `Host` a bill download URL points back to.
    fn handle(
        &self,
        sim: &AlipaySim,
        method: &str,
        params: &Params,
        headers: &HeaderMap,
    ) -> Result<Outcome, Failure> {
        // Alipay needs the app before it can check its signature.
        if let Some(app_id) = params.non_empty("app_id")
            && app_id != sim.app_id
        {
            return Err(Failure::invalid("isv.invalid-app-id", "无效的AppID参数"));
        }
        verify_request(params, &sim.app_key)?;
        if self.take_api_error() {
            return Err(Failure {
                code: "20000",
                msg: "Service Currently Unavailable",
                sub_code: "isp.unknow-error",
                sub_msg: "系统繁忙".to_owned(),
            });
        }
        let biz: Value = match params.non_empty("biz_content") {
            Some(text) => serde_json::from_str(text)
                .map_err(|_| Failure::invalid("isv.invalid-parameter", "biz_content不是JSON"))?,
            None => {
                return Err(Failure {
                    code: "40001",
                    msg: "Missing Required Arguments",
                    sub_code: "isv.missing-biz-content",
                    sub_msg: "缺少biz_content".to_owned(),
                });
            }
        };
        let biz = biz
            .as_object()
            .ok_or_else(|| Failure::invalid("isv.invalid-parameter", "biz_content不是JSON对象"))?;
        match method {
            "alipay.trade.precreate" => self.create(sim, method, params, biz).map(|order| {
                Outcome::Success(vec![
                    ("out_trade_no", json!(order.out_trade_no)),
                    ("qr_code", json!(order.qr_code)),
                ])
            }),
            "alipay.trade.page.pay" | "alipay.trade.wap.pay" | "alipay.trade.app.pay" => self
                .create(sim, method, params, biz)
                .map(|order| Outcome::Redirect(format!("/sandbox/cashier/{}", order.out_trade_no))),
            "alipay.trade.query" => {
                let orders = lock(&sim.orders);
                let order = find(&orders, biz)?;
                Ok(Outcome::Success(order.query_fields()))
            }
            "alipay.trade.close" => {
                if self.faults().pay_before_close
                    && let Some(no) = biz.get("out_trade_no").and_then(Value::as_str)
                {
                    // The buyer's payment lands just before the close: the close is refused.
                    let _ = self.pay_alipay(no, PayTiming::Open);
                }
                let mut orders = lock(&sim.orders);
                let key = find(&orders, biz)?.out_trade_no.clone();
                let order = orders.get_mut(&key).ok_or_else(Failure::not_exist)?;
                match order.state {
                    TradeState::WaitBuyerPay => {
                        order.state = TradeState::Closed;
                        self.keep_alipay_order(&key, order);
                        tracing::info!(out_trade_no = %order.out_trade_no, "sandbox: Alipay trade closed");
                        Ok(Outcome::Success(vec![
                            ("out_trade_no", json!(order.out_trade_no)),
                            ("trade_no", json!(order.trade_no)),
                        ]))
                    }
                    // Only WAIT_BUYER_PAY trades can be closed (alipay.md §5).
                    _ => Err(Failure::business(
                        "ACQ.TRADE_STATUS_ERROR",
                        "交易状态不合法",
                    )),
                }
            }
            "alipay.trade.refund" => self.alipay_refund(sim, biz),
            "alipay.trade.fastpay.refund.query" => self.alipay_refund_query(sim, biz),
            BILL_METHOD => self.alipay_bill_url(sim, biz, headers),
            _ => Err(Failure::invalid("isv.invalid-method", "不存在的方法名")),
        }
    }

    /// Precreate, page or wap pay: records the trade, or finds the identical one again.
    fn create(
        &self,
        sim: &AlipaySim,
        method: &str,
        params: &Params,
        biz: &serde_json::Map<String, Value>,
    ) -> Result<AlipayOrder, Failure> {
        for key in biz.keys() {
            if !ALLOWED_ORDER_FIELDS.contains(&key.as_str()) {
                return Err(Failure::business(
                    "ACQ.INVALID_PARAMETER",
                    format!("sandbox: field `{key}` is outside paygate's privacy allowlist"),
                ));
            }
        }
        let text = |key: &str| match biz.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(Failure::business(
                "ACQ.INVALID_PARAMETER",
                format!("参数{key}不正确"),
            )),
        };
        let out_trade_no = text("out_trade_no")?;
        if out_trade_no.len() > 64
            || !out_trade_no
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(Failure::business(
                "ACQ.INVALID_PARAMETER",
                "参数out_trade_no不正确",
            ));
        }
        let subject = text("subject")?;
        if subject.chars().count() > 256 || subject.contains(['/', '=', '&']) {
            return Err(Failure::business(
                "ACQ.INVALID_PARAMETER",
                "参数subject不正确",
            ));
        }
        // A string of plain digits, or a JSON number taken by its text: never through a float.
        let amount_text = match biz.get("total_amount") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let total_fen = yuan_to_fen(&amount_text)
            .filter(|fen| (1..=MAX_ORDER_FEN).contains(fen))
            .ok_or_else(|| Failure::business("ACQ.INVALID_PARAMETER", "参数total_amount不正确"))?;
        let expected_product = match method {
            "alipay.trade.page.pay" => Some("FAST_INSTANT_TRADE_PAY"),
            "alipay.trade.wap.pay" => Some("QUICK_WAP_WAY"),
            "alipay.trade.app.pay" => Some("QUICK_MSECURITY_PAY"),
            _ => None,
        };
        let product = biz.get("product_code").and_then(Value::as_str);
        let product_ok = match expected_product {
            Some(expected) => product == Some(expected),
            None => product.is_none_or(|p| p == "FACE_TO_FACE_PAYMENT"),
        };
        if !product_ok {
            return Err(Failure::business(
                "ACQ.INVALID_PARAMETER",
                "参数product_code不正确",
            ));
        }
        if let Some(expire) = biz.get("time_expire")
            && expire.as_str().and_then(parse_beijing_time).is_none()
        {
            return Err(Failure::business(
                "ACQ.INVALID_PARAMETER",
                "参数time_expire不正确",
            ));
        }
        let notify_url = params.non_empty("notify_url").map(str::to_owned);
        // Only browser orders come back through the browser (alipay.md §4, return_url).
        let return_method = match method {
            "alipay.trade.page.pay" => Some("alipay.trade.page.pay.return"),
            "alipay.trade.wap.pay" => Some("alipay.trade.wap.pay.return"),
            _ => None,
        };
        let return_to = params
            .non_empty("return_url")
            .zip(return_method)
            .map(|(url, method)| (url.to_owned(), method.to_owned()));

        let mut orders = lock(&sim.orders);
        if let Some(existing) = orders.get(&out_trade_no) {
            if existing.total_fen != total_fen || existing.subject != subject {
                return Err(Failure::business(
                    "ACQ.CONTEXT_INCONSISTENT",
                    "交易信息被篡改",
                ));
            }
            return match existing.state {
                TradeState::WaitBuyerPay => Ok(existing.clone()),
                TradeState::Success(_) => {
                    Err(Failure::business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"))
                }
                TradeState::Closed => Err(Failure::business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")),
            };
        }
        let now = self.now();
        let order = AlipayOrder {
            out_trade_no: out_trade_no.clone(),
            trade_no: new_trade_no(&beijing_time(now)),
            total_fen,
            subject,
            notify_url,
            return_to,
            qr_code: format!("https://qr.alipay.com/bax0{}", random_base36(20)),
            gmt_create: beijing_time(now),
            created_at: now,
            state: TradeState::WaitBuyerPay,
            refunds: Vec::new(),
        };
        tracing::info!(out_trade_no = %out_trade_no, method, "sandbox: Alipay trade created");
        self.keep_alipay_order(&out_trade_no, &order);
        orders.insert(out_trade_no, order.clone());
        Ok(order)
    }
}

/// Business fields paygate may send (design §1.1). Alipay accepts many more (`body`,
/// `passback_params`, `goods_detail`, …); the sandbox refuses them so that a privacy regression
/// fails paygate's tests instead of reaching a provider.
const ALLOWED_ORDER_FIELDS: &[&str] = &[
    "out_trade_no",
    "total_amount",
    "subject",
    "product_code",
    "time_expire",
    "timeout_express",
    "quit_url",
];

/// The trade named by `trade_no` (which wins) or `out_trade_no`.
fn find<'a>(
    orders: &'a HashMap<String, AlipayOrder>,
    biz: &serde_json::Map<String, Value>,
) -> Result<&'a AlipayOrder, Failure> {
    let by_trade_no = biz
        .get("trade_no")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    let by_out_trade_no = biz
        .get("out_trade_no")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty());
    match (by_trade_no, by_out_trade_no) {
        (Some(trade_no), _) => orders.values().find(|o| o.trade_no == trade_no),
        (None, Some(out_trade_no)) => orders.get(out_trade_no),
        (None, None) => {
            return Err(Failure::business(
                "ACQ.INVALID_PARAMETER",
                "out_trade_no和trade_no不能同时为空",
            ));
        }
    }
    .ok_or_else(Failure::not_exist)
}

impl Sandbox {
    /// What has been refunded on the Alipay trade `out_trade_no` (0 before any refund), or
    /// `None` when the ledger does not hold it.
    pub fn alipay_refunded_fen(&self, out_trade_no: &str) -> Option<i64> {
        let sim = self.inner.alipay.get()?;
        lock(&sim.orders)
            .get(out_trade_no)
            .map(AlipayOrder::refunded_fen)
    }

    /// Whether the Alipay ledger holds `out_trade_no`.
    pub(crate) fn alipay_has(&self, out_trade_no: &str) -> bool {
        self.inner
            .alipay
            .get()
            .is_some_and(|sim| lock(&sim.orders).contains_key(out_trade_no))
    }

    /// The buyer pays an Alipay trade (`timing`: see [`PayTiming`]): TRADE_SUCCESS, and the
    /// `trade_status_sync` notification starts in the background (when the order named a
    /// notify_url).
    pub(crate) fn pay_alipay(
        &self,
        out_trade_no: &str,
        timing: PayTiming,
    ) -> Result<Value, PayError> {
        let sim = self.inner.alipay.get().ok_or(PayError::NotFound)?;
        let order = {
            let mut orders = lock(&sim.orders);
            let order = orders.get_mut(out_trade_no).ok_or(PayError::NotFound)?;
            match order.state {
                TradeState::Success(_) => return Err(PayError::AlreadyPaid),
                TradeState::Closed => timing.admits(true)?,
                TradeState::WaitBuyerPay => timing.admits(false)?,
            }
            let now = self.now();
            order.state = TradeState::Success(Payment {
                gmt_payment: beijing_time(now),
                paid_at: now,
                buyer_id: new_buyer_id(),
                buyer_logon_id: new_buyer_logon_id(),
            });
            self.keep_alipay_order(out_trade_no, order);
            order.clone()
        };
        tracing::info!(out_trade_no, "sandbox: Alipay trade paid");
        self.notify_alipay(&order, None);
        Ok(order.trade_json())
    }

    /// Starts a `trade_status_sync` about `order` as it is now (a snapshot): its payment, or
    /// with `refund` the refund of that `out_request_no`. Nothing when the trade named no
    /// notify_url.
    fn notify_alipay(&self, order: &AlipayOrder, refund: Option<&str>) {
        let Some(notify_url) = order.notify_url.clone() else {
            return;
        };
        self.enqueue_notification(
            random_hex(34),
            order.out_trade_no.clone(),
            notify_url,
            Payload::Alipay {
                order: Box::new(order.clone()),
                refund: refund.map(str::to_owned),
            },
            &RETRY_SCHEDULE_SECS,
        );
    }

    /// Where the browser goes after paying a page/wap trade that named a `return_url`: that
    /// URL with Alipay's signed synchronous return query (V1 rule, like a notification): the
    /// trade's numbers and amount, `seller_id`, `app_id`, the `*.pay.return` method, a
    /// timestamp. None for a trade that is not paid or named no return_url.
    pub(crate) fn alipay_return_location(&self, out_trade_no: &str) -> Option<String> {
        let sim = self.inner.alipay.get()?;
        let order = lock(&sim.orders).get(out_trade_no)?.clone();
        let TradeState::Success(_) = order.state else {
            return None;
        };
        let (return_url, method) = order.return_to.as_ref()?;
        let mut params = Params::default();
        for (key, value) in [
            ("app_id", sim.app_id.clone()),
            ("auth_app_id", sim.app_id.clone()),
            ("charset", "utf-8".to_owned()),
            ("method", (*method).to_owned()),
            ("out_trade_no", order.out_trade_no.clone()),
            ("seller_id", sim.seller_id.clone()),
            ("timestamp", beijing_time(self.now())),
            ("total_amount", order.amount()),
            ("trade_no", order.trade_no.clone()),
            ("version", "1.0".to_owned()),
        ] {
            params.insert(key, value);
        }
        let query = signed_notification(params, &sim.signer);
        let separator = if return_url.contains('?') { '&' } else { '?' };
        Some(format!("{return_url}{separator}{query}"))
    }

    pub(crate) fn alipay_cashier_view(&self, out_trade_no: &str) -> Option<CashierView> {
        let sim = self.inner.alipay.get()?;
        let orders = lock(&sim.orders);
        let order = orders.get(out_trade_no)?;
        Some(CashierView {
            total_fen: order.total_fen,
            code_url: order.qr_code.clone(),
            description: order.subject.clone(),
            state: match order.state {
                TradeState::WaitBuyerPay => "NOTPAY",
                TradeState::Success(_) => "SUCCESS",
                TradeState::Closed => "CLOSED",
            },
            provider: "Alipay",
        })
    }

    /// Every gateway.do request (all parameters, query string and form body merged) received
    /// so far, in arrival order (the newest 10,000): what left the merchant, `biz_content`
    /// included.
    pub fn alipay_requests(&self) -> Vec<Vec<(String, String)>> {
        self.inner
            .alipay
            .get()
            .map(|sim| lock(&sim.requests).clone())
            .unwrap_or_default()
    }

    /// The simulator's Alipay public key (SPKI PEM), for the gateway's `alipay_public_key`.
    pub fn alipay_public_key_pem(&self) -> Option<String> {
        self.inner
            .alipay
            .get()
            .map(|sim| sim.signer.public_key_pem())
    }

    /// The `trade_status_sync` form body for a paid trade, signed now: its payment, or with
    /// `refund` the refund of that `out_request_no` (`refund_fee` counts the refunds up to and
    /// including it).
    fn alipay_notification(
        &self,
        sim: &AlipaySim,
        order: &AlipayOrder,
        refund: Option<&str>,
        notify_id: &str,
    ) -> String {
        let TradeState::Success(payment) = &order.state else {
            return String::new();
        };
        let amount = order.amount();
        let mut trade_status = "TRADE_SUCCESS";
        let mut refund_fields = Vec::new();
        if let Some(out_request_no) = refund {
            let Some(at) = order
                .refunds
                .iter()
                .position(|r| r.out_request_no == out_request_no)
            else {
                return String::new();
            };
            let this = &order.refunds[at];
            let refund_fee: i64 = order.refunds[..=at].iter().map(|r| r.refund_fen).sum();
            refund_fields.push(("refund_fee", yuan(refund_fee)));
            refund_fields.push(("out_biz_no", this.out_request_no.clone()));
            refund_fields.push(("gmt_refund", this.gmt_refund()));
            // A fully refunded trade is closed (alipay.md §6).
            if refund_fee >= order.total_fen {
                trade_status = "TRADE_CLOSED";
                refund_fields.push(("gmt_close", beijing_time(this.refunded_at)));
            }
        }
        let mut params = Params::default();
        for (key, value) in [
            ("notify_id", notify_id.to_owned()),
            ("notify_time", beijing_time(self.now())),
            ("notify_type", "trade_status_sync".to_owned()),
            ("app_id", sim.app_id.clone()),
            ("auth_app_id", sim.app_id.clone()),
            ("charset", "utf-8".to_owned()),
            ("version", "1.0".to_owned()),
            ("seller_id", sim.seller_id.clone()),
            ("out_trade_no", order.out_trade_no.clone()),
            ("trade_no", order.trade_no.clone()),
            ("trade_status", trade_status.to_owned()),
            ("total_amount", amount.clone()),
            ("receipt_amount", amount.clone()),
            ("invoice_amount", amount.clone()),
            ("buyer_pay_amount", amount.clone()),
            ("point_amount", "0.00".to_owned()),
            ("subject", order.subject.clone()),
            ("gmt_create", order.gmt_create.clone()),
            ("gmt_payment", payment.gmt_payment.clone()),
            ("buyer_id", payment.buyer_id.clone()),
            ("buyer_logon_id", payment.buyer_logon_id.clone()),
            (
                "fund_bill_list",
                json!([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}]).to_string(),
            ),
        ]
        .into_iter()
        .chain(refund_fields)
        {
            params.insert(key, value);
        }
        signed_notification(params, &sim.signer)
    }

    /// POSTs one notification; the status and whether the body was exactly `success`.
    async fn post_alipay(&self, notify_url: &str, body: String) -> (Option<u16>, bool) {
        let request = self
            .inner
            .http
            .post(notify_url)
            .header(
                header::CONTENT_TYPE.as_str(),
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let answer = response.bytes().await.unwrap_or_default();
                (Some(status), answer.as_ref() == b"success")
            }
            Err(error) => {
                tracing::debug!(error = %error, "sandbox: Alipay notification delivery failed");
                (None, false)
            }
        }
    }
}

impl Sandbox {
    /// One delivery attempt of a `trade_status_sync` (the payment, or with `refund` that
    /// refund): every copy at once, the same notify_id, each signed afresh. True when a copy
    /// was answered `success`.
    pub(crate) async fn send_alipay(
        &self,
        notify_id: &str,
        attempt: u32,
        order: &AlipayOrder,
        refund: Option<&str>,
        notify_url: &str,
        faults: &Faults,
    ) -> bool {
        let Some(sim) = self.inner.alipay.get() else {
            return false;
        };
        let mut copies = tokio::task::JoinSet::new();
        for _ in 0..faults.copies() {
            let body = self.alipay_notification(sim, order, refund, notify_id);
            let (sandbox, notify_url) = (self.clone(), notify_url.to_owned());
            copies.spawn(async move { sandbox.post_alipay(&notify_url, body).await });
        }
        let mut acknowledged = false;
        while let Some(joined) = copies.join_next().await {
            let (status, success) = joined.unwrap_or((None, false));
            acknowledged |= success;
            self.record(DeliveryRecord {
                notification_id: notify_id.to_owned(),
                out_trade_no: order.out_trade_no.clone(),
                attempt,
                probe: false,
                status,
                acknowledged: success,
                dropped: false,
                at: self.now().to_rfc3339_opts(SecondsFormat::Millis, false),
            });
        }
        acknowledged
    }
}

/// 28 digits like Alipay's `2019091622001458860515315453`: the date, `2200`, 16 more digits.
/// `beijing` is `yyyy-MM-dd HH:mm:ss`.
fn new_trade_no(beijing: &str) -> String {
    let date: String = beijing
        .chars()
        .filter(char::is_ascii_digit)
        .take(8)
        .collect();
    let mut rng = rand::rng();
    format!(
        "{date}2200{:016}",
        rng.random_range(0..10_000_000_000_000_000u64)
    )
}

/// A buyer's user id: `2088` and 12 digits.
fn new_buyer_id() -> String {
    format!(
        "2088{:012}",
        rand::rng().random_range(0..1_000_000_000_000u64)
    )
}

/// A masked logon id, as Alipay shows it (`159****5620`).
fn new_buyer_logon_id() -> String {
    let mut rng = rand::rng();
    format!(
        "1{:02}****{:04}",
        rng.random_range(30..100u32),
        rng.random_range(0..10_000u32)
    )
}

fn random_base36(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.random_range(0..36)]))
        .collect()
}

/// An amount of the ledger (never negative) in yuan.
pub(crate) fn yuan(fen: i64) -> String {
    crate::wire::alipay::fen_to_yuan(fen).unwrap_or_default()
}
