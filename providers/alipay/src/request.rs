//! Signed gateway.do requests: common parameters, the business content, the `sign`.
//!
//! Privacy (design §1): the business content types below are the whole allowlist. An order
//! carries its number, the amount, the configured neutral subject, the product code where
//! needed and the expiry; a query or close carries the order number; a refund carries the order
//! number, the refund's amount and number and, at most, a neutral reason; a refund query the
//! two numbers. There is no field for `body`, `passback_params`, `goods_detail`, buyer ids or
//! anything else, so none can be sent.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::keys::{SignFailed, Signer};
use crate::money::{MAX_ORDER_FEN, fen_to_yuan};
use crate::params::Params;
use crate::time::beijing_time;

/// An input that Alipay would refuse, caught before anything is signed or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("app_id must be 1-32 characters")]
    AppId,
    #[error("out_trade_no must be 1-64 characters of [A-Za-z0-9_]")]
    OutTradeNo,
    #[error("amount must be between 0.01 and 100000000.00 yuan")]
    Amount,
    #[error("subject must be 1-256 characters without '/', '=' or '&'")]
    Subject,
    #[error("notify_url must be an http(s) URL of at most 256 characters without a query")]
    NotifyUrl,
    #[error(
        "return_url must be an http(s) URL of at most 256 characters, for page or wap pay only"
    )]
    ReturnUrl,
    #[error("out_request_no must be 1-64 characters of [A-Za-z0-9_]")]
    OutRequestNo,
    #[error("refund_reason must be 1-256 characters")]
    RefundReason,
    #[error("a bill URL must be an http(s) URL")]
    BillUrl,
    #[error(transparent)]
    Sign(#[from] SignFailed),
}

/// The ways to start a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderChannel {
    /// `alipay.trade.precreate`: a server call that answers a `qr_code` for the buyer to scan.
    Precreate,
    /// `alipay.trade.page.pay`: a signed URL the desktop browser opens.
    PagePay,
    /// `alipay.trade.wap.pay`: a signed URL the mobile browser opens.
    WapPay,
    /// `alipay.trade.app.pay`: a signed order string handed to the Alipay mobile SDK.
    AppPay,
}

impl OrderChannel {
    pub fn method(self) -> &'static str {
        match self {
            OrderChannel::Precreate => "alipay.trade.precreate",
            OrderChannel::PagePay => "alipay.trade.page.pay",
            OrderChannel::WapPay => "alipay.trade.wap.pay",
            OrderChannel::AppPay => "alipay.trade.app.pay",
        }
    }

    /// Page and wap pay require `product_code` (alipay.md §4). App pay has one possible value,
    /// documented both as required and as the default ([?]); we take the strict reading and send
    /// it. Precreate defaults to FACE_TO_FACE_PAYMENT and a merchant signed for OFFLINE_PAYMENT
    /// must not send it, so it is left out there.
    fn product_code(self) -> Option<&'static str> {
        match self {
            OrderChannel::Precreate => None,
            OrderChannel::PagePay => Some("FAST_INSTANT_TRADE_PAY"),
            OrderChannel::WapPay => Some("QUICK_WAP_WAY"),
            OrderChannel::AppPay => Some("QUICK_MSECURITY_PAY"),
        }
    }
}

/// Calls about an existing trade, by our order number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeCall {
    /// `alipay.trade.query`
    Query,
    /// `alipay.trade.close`
    Close,
}

impl TradeCall {
    pub fn method(self) -> &'static str {
        match self {
            TradeCall::Query => "alipay.trade.query",
            TradeCall::Close => "alipay.trade.close",
        }
    }
}

/// Calls about a refund of an existing trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundCall {
    /// `alipay.trade.refund`
    Refund,
    /// `alipay.trade.fastpay.refund.query`
    Query,
}

impl RefundCall {
    pub fn method(self) -> &'static str {
        match self {
            RefundCall::Refund => "alipay.trade.refund",
            RefundCall::Query => "alipay.trade.fastpay.refund.query",
        }
    }
}

/// The node a method's synchronous answer sits in: `alipay.trade.query` →
/// `alipay_trade_query_response`.
pub fn response_key(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// Everything an order may tell Alipay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// Our order number; strict reading of the docs: `[A-Za-z0-9_]`, at most 64.
    pub out_trade_no: String,
    /// The amount in fen, 1 to 10 000 000 000.
    pub total_fen: i64,
    /// The configured neutral text (never the plan name, employer or anything about a person).
    pub subject: String,
    /// After this instant the buyer can no longer pay (sent as Beijing time).
    pub time_expire: DateTime<Utc>,
    /// Where Alipay posts the notification: `{public_url}/webhooks/alipay`.
    pub notify_url: String,
    /// Page and wap pay only: where Alipay sends the buyer's browser back after paying, with
    /// its signed synchronous return query (never proof of payment). Sent as the `return_url`
    /// common parameter and signed with the rest; it must carry nothing about a person (the
    /// order number is the only variable, design §1).
    pub return_url: Option<String>,
}

/// Everything a refund may tell Alipay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// The paid order; same rule as [`OrderRequest::out_trade_no`].
    pub out_trade_no: String,
    /// The refund's own number, `[A-Za-z0-9_]`, at most 64: the idempotency key at Alipay. A new
    /// value for each refund; a retry of the same refund must reuse it (Alipay then answers
    /// `fund_change=N` instead of refunding twice). Alipay takes a refund without one as a full
    /// refund numbered `out_trade_no`; we always send one, so pass `out_trade_no` for that.
    pub out_request_no: String,
    /// This refund's amount in fen (not the cumulative total), 1 to 10 000 000 000.
    pub refund_fen: i64,
    /// A neutral text chosen by the caller, such as "订单退款". It goes to Alipay and may be shown
    /// to the buyer, so it must say nothing about a person (design §1): never the employer, the
    /// plan, a complaint or a free text typed by someone.
    pub refund_reason: Option<String>,
}

#[derive(Serialize)]
struct OrderBizContent<'a> {
    out_trade_no: &'a str,
    total_amount: String,
    subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_code: Option<&'static str>,
    time_expire: String,
}

#[derive(Serialize)]
struct TradeBizContent<'a> {
    out_trade_no: &'a str,
}

#[derive(Serialize)]
struct RefundBizContent<'a> {
    out_trade_no: &'a str,
    refund_amount: String,
    out_request_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct RefundQueryBizContent<'a> {
    out_trade_no: &'a str,
    out_request_no: &'a str,
}

/// A request with its `sign`, ready to go out in the form its method needs.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    method: &'static str,
    params: Params,
}

impl SignedRequest {
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// All parameters, `sign` included.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The `application/x-www-form-urlencoded` body of a server call.
    pub fn form_body(&self) -> String {
        self.params.to_form()
    }

    /// The signed URL a browser opens (page and wap pay): every parameter URL-encoded in the
    /// query of `gateway_url`.
    pub fn browser_url(&self, gateway_url: &str) -> String {
        let separator = if gateway_url.contains('?') { '&' } else { '?' };
        format!("{gateway_url}{separator}{}", self.params.to_form())
    }

    /// The order string for the mobile SDK (app pay): the signed parameters sorted and
    /// URL-encoded as `k=v&…`, then `&sign=…`.
    pub fn order_string(&self) -> String {
        let mut unsigned = self.params.clone();
        let sign = unsigned.remove("sign").unwrap_or_default();
        let mut tail = Params::new();
        tail.insert("sign", sign);
        format!("{}&{}", unsigned.to_form(), tail.to_form())
    }
}

/// Builds and signs an order request for `channel`.
pub fn order_request(
    channel: OrderChannel,
    app_id: &str,
    signer: &Signer,
    order: &OrderRequest,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RequestError> {
    check_out_trade_no(&order.out_trade_no)?;
    if !(1..=MAX_ORDER_FEN).contains(&order.total_fen) {
        return Err(RequestError::Amount);
    }
    check_subject(&order.subject)?;
    check_notify_url(&order.notify_url)?;
    if let Some(return_url) = &order.return_url {
        check_return_url(channel, return_url)?;
    }
    let biz = OrderBizContent {
        out_trade_no: &order.out_trade_no,
        total_amount: fen_to_yuan(order.total_fen).map_err(|_| RequestError::Amount)?,
        subject: &order.subject,
        product_code: channel.product_code(),
        time_expire: beijing_time(order.time_expire),
    };
    signed_with_urls(
        channel.method(),
        app_id,
        Some(&order.notify_url),
        order.return_url.as_deref(),
        &biz,
        signer,
        now,
    )
}

/// Builds and signs a query or close of our order `out_trade_no`.
pub fn trade_request(
    call: TradeCall,
    app_id: &str,
    signer: &Signer,
    out_trade_no: &str,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RequestError> {
    check_out_trade_no(out_trade_no)?;
    signed(
        call.method(),
        app_id,
        None,
        &TradeBizContent { out_trade_no },
        signer,
        now,
    )
}

/// Builds and signs `alipay.trade.refund`: exactly `out_trade_no`, `refund_amount` (yuan),
/// `out_request_no` and, when given, `refund_reason`.
pub fn refund_request(
    app_id: &str,
    signer: &Signer,
    refund: &RefundRequest,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RequestError> {
    check_out_trade_no(&refund.out_trade_no)?;
    check_out_request_no(&refund.out_request_no)?;
    if !(1..=MAX_ORDER_FEN).contains(&refund.refund_fen) {
        return Err(RequestError::Amount);
    }
    if let Some(reason) = &refund.refund_reason {
        check_refund_reason(reason)?;
    }
    let biz = RefundBizContent {
        out_trade_no: &refund.out_trade_no,
        refund_amount: fen_to_yuan(refund.refund_fen).map_err(|_| RequestError::Amount)?,
        out_request_no: &refund.out_request_no,
        refund_reason: refund.refund_reason.as_deref(),
    };
    signed(RefundCall::Refund.method(), app_id, None, &biz, signer, now)
}

/// Builds and signs `alipay.trade.fastpay.refund.query` of refund `out_request_no` of our order
/// `out_trade_no`.
pub fn refund_query_request(
    app_id: &str,
    signer: &Signer,
    out_trade_no: &str,
    out_request_no: &str,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RequestError> {
    check_out_trade_no(out_trade_no)?;
    check_out_request_no(out_request_no)?;
    let biz = RefundQueryBizContent {
        out_trade_no,
        out_request_no,
    };
    signed(RefundCall::Query.method(), app_id, None, &biz, signer, now)
}

pub(crate) fn signed(
    method: &'static str,
    app_id: &str,
    notify_url: Option<&str>,
    biz: &impl Serialize,
    signer: &Signer,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RequestError> {
    signed_with_urls(method, app_id, notify_url, None, biz, signer, now)
}

/// The common parameters are the allowlist: the seven every call has, `notify_url` for orders
/// and `return_url` for browser orders (page/wap), and `biz_content`. Nothing else is signed or
/// sent.
fn signed_with_urls(
    method: &'static str,
    app_id: &str,
    notify_url: Option<&str>,
    return_url: Option<&str>,
    biz: &impl Serialize,
    signer: &Signer,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RequestError> {
    if app_id.is_empty() || app_id.chars().count() > 32 {
        return Err(RequestError::AppId);
    }
    // Serialising a struct of strings cannot fail; the exact text is what gets signed and sent.
    let biz_content = serde_json::to_string(biz).map_err(|_| RequestError::Sign(SignFailed))?;
    let mut params = Params::new();
    params.insert("app_id", app_id);
    params.insert("method", method);
    params.insert("format", "JSON");
    params.insert("charset", "utf-8");
    params.insert("sign_type", "RSA2");
    params.insert("timestamp", beijing_time(now));
    params.insert("version", "1.0");
    if let Some(url) = notify_url {
        params.insert("notify_url", url);
    }
    if let Some(url) = return_url {
        params.insert("return_url", url);
    }
    params.insert("biz_content", biz_content);
    // Request rule: everything but `sign`; `sign_type` is signed.
    let sign = signer.sign(params.sign_content(&["sign"]).as_bytes())?;
    params.insert("sign", sign);
    Ok(SignedRequest { method, params })
}

fn check_out_trade_no(out_trade_no: &str) -> Result<(), RequestError> {
    // The docs allow letters, digits and `_`; real traffic shows `-` too ([?]). We send only
    // what the docs allow (our order numbers are [0-9A-Z]).
    let ok = (1..=64).contains(&out_trade_no.len())
        && out_trade_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RequestError::OutTradeNo)
    }
}

fn check_out_request_no(out_request_no: &str) -> Result<(), RequestError> {
    // alipay.md gives only "≤64"; strict reading: the same characters as `out_trade_no`.
    let ok = (1..=64).contains(&out_request_no.len())
        && out_request_no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RequestError::OutRequestNo)
    }
}

fn check_refund_reason(reason: &str) -> Result<(), RequestError> {
    // The 256-character limit is Alipay's published field size ([?]: not in alipay.md).
    let ok = !reason.trim().is_empty()
        && reason.chars().count() <= 256
        && !reason.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(RequestError::RefundReason)
    }
}

fn check_subject(subject: &str) -> Result<(), RequestError> {
    let ok = !subject.trim().is_empty()
        && subject.chars().count() <= 256
        && !subject.contains(['/', '=', '&']);
    if ok {
        Ok(())
    } else {
        Err(RequestError::Subject)
    }
}

fn check_notify_url(notify_url: &str) -> Result<(), RequestError> {
    let parsed = url::Url::parse(notify_url).map_err(|_| RequestError::NotifyUrl)?;
    // Alipay wants a notify URL without query parameters of its own.
    let ok = matches!(parsed.scheme(), "http" | "https")
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && notify_url.chars().count() <= 256;
    if ok {
        Ok(())
    } else {
        Err(RequestError::NotifyUrl)
    }
}

fn check_return_url(channel: OrderChannel, return_url: &str) -> Result<(), RequestError> {
    // Only a browser order comes back through the browser; precreate and app pay have no page
    // to return to, so a return_url there is a caller's mistake, not something to drop quietly.
    let browser = matches!(channel, OrderChannel::PagePay | OrderChannel::WapPay);
    let ok = browser
        && return_url.chars().count() <= 256
        && url::Url::parse(return_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(RequestError::ReturnUrl)
    }
}
