//! WeChat Pay refunds: `POST /v3/refund/domestic/refunds` and `GET /v3/refund/domestic/refunds/
//! {out_refund_no}` (wechatpay-v3.md §5), with paygate's privacy allowlist.
//!
//! A refund is accepted as `PROCESSING`; [`REFUND_SETTLE_SECS`] later (divided by
//! `time_divisor`), or at once with [`Sandbox::complete_wechat_refunds`], it completes: `SUCCESS`,
//! or `CLOSED` / `ABNORMAL` while the `wechat_refund_outcome` fault says so. A
//! `REFUND.SUCCESS` / `REFUND.CLOSED` / `REFUND.ABNORMAL` notification then goes out through the
//! same outbox, retry schedule and faults as payment notifications: to the request's
//! `notify_url` when it named one; a refund made at the merchant portal
//! ([`crate::portal`]) goes to the order's own notify_url, standing in for the refund URL of
//! the merchant platform settings; an API refund without a `notify_url` is not notified. The
//! refunds live in their order (`Order::refunds`), under the one ledger lock.
//!
//! Checks, in order: the allowlist and field rules (400 `INVALID_REQUEST` / `PARAM_ERROR`); a
//! known `out_refund_no` (identical parameters → the same refund as it is now, anything else →
//! 400 `INVALID_REQUEST`); the order (unknown or not paid → 404 `RESOURCE_NOT_EXISTS`); the
//! amounts (`total` ≠ the order's, `refund` < 1 or > the order's total → 400 `PARAM_ERROR`;
//! more than is left → 403 `NOT_ENOUGH`); at most [`MAX_REFUNDS_PER_ORDER`] (403 `RULE_LIMIT`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rand::Rng as _;
use serde_json::{Map, Value, json};

use crate::cashier::yuan;
use crate::faults::WechatRefundOutcome;
use crate::portal::{
    PortalProvider, PortalRefund, PortalRefundError, PortalRefundStatus, portal_refund_no,
};
use crate::wechat::{Answer, ApiError, Order, OrderState};
use crate::wechat_order::{refuse_outside_allowlist, valid_notify_url};
use crate::{Sandbox, lock};

/// How long a refund stays `PROCESSING` before it succeeds (divided by `time_divisor`).
/// WeChat pays a balance refund back within minutes and a card refund within days; one
/// minute keeps the standalone sandbox lively.
pub const REFUND_SETTLE_SECS: u64 = 60;
/// "≤50 partial refunds" per order.
pub const MAX_REFUNDS_PER_ORDER: usize = 50;

/// Top-level request fields paygate may send: the order number, the refund number, the
/// amounts, a reason and a notify URL. WeChat would also take `transaction_id`,
/// `funds_account`, `goods_detail` and `amount.from`; the sandbox refuses them.
const ALLOWED_REFUND_FIELDS: &[&str] = &[
    "out_trade_no",
    "out_refund_no",
    "reason",
    "notify_url",
    "amount",
];
const ALLOWED_REFUND_AMOUNT_FIELDS: &[&str] = &["refund", "total", "currency"];

/// Where the buyer's money goes back: a fixed, obviously fake balance account, present in the
/// answer and the notification as WeChat's are, for the gateway to drop.
const USER_RECEIVED_ACCOUNT: &str = "支付用户零钱";

/// What a re-post must repeat exactly to get the same refund back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RefundParams {
    out_trade_no: String,
    out_refund_no: String,
    reason: Option<String>,
    notify_url: Option<String>,
    refund: i64,
    total: i64,
    currency: String,
}

/// One refund of an order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RefundEntry {
    params: RefundParams,
    refund_id: String,
    create_time: String,
    /// `create_time` as an instant: which day's bill the refund is in (WeChat's 交易时间 of a
    /// refund row is when it was requested).
    created_at: DateTime<Utc>,
    state: RefundState,
    /// Where its `REFUND.*` notification goes: the request's `notify_url`, or for a portal
    /// refund the order's; `None`: not notified.
    notify_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum RefundState {
    Processing,
    Success { success_time: String },
    Closed,
    Abnormal,
}

impl RefundEntry {
    /// What it takes from the amount left to refund: its amount while `PROCESSING` or once
    /// `SUCCESS`; nothing once `CLOSED` or `ABNORMAL` (the amount is free for a new refund).
    fn counted_fen(&self) -> i64 {
        match self.state {
            RefundState::Processing | RefundState::Success { .. } => self.params.refund,
            RefundState::Closed | RefundState::Abnormal => 0,
        }
    }

    pub(crate) fn status(&self) -> &'static str {
        match self.state {
            RefundState::Processing => "PROCESSING",
            RefundState::Success { .. } => "SUCCESS",
            RefundState::Closed => "CLOSED",
            RefundState::Abnormal => "ABNORMAL",
        }
    }

    /// When it was requested.
    pub(crate) fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// `amount.refund`, in fen.
    pub(crate) fn amount_fen(&self) -> i64 {
        self.params.refund
    }

    pub(crate) fn refund_id(&self) -> &str {
        &self.refund_id
    }

    pub(crate) fn out_refund_no(&self) -> &str {
        &self.params.out_refund_no
    }

    fn success_time(&self) -> Option<&str> {
        match &self.state {
            RefundState::Success { success_time } => Some(success_time),
            _ => None,
        }
    }

    /// The create / query answer, `user_received_account` included as WeChat's is.
    fn answer_json(&self, transaction_id: &str) -> Value {
        let p = &self.params;
        let mut refund = json!({
            "refund_id": self.refund_id,
            "out_refund_no": p.out_refund_no,
            "transaction_id": transaction_id,
            "out_trade_no": p.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": USER_RECEIVED_ACCOUNT,
            "create_time": self.create_time,
            "status": self.status(),
            "funds_account": "AVAILABLE",
            "amount": {
                "total": p.total,
                "refund": p.refund,
                "from": [],
                "payer_total": p.total,
                "payer_refund": p.refund,
                "settlement_refund": p.refund,
                "settlement_total": p.total,
                "discount_refund": 0,
                "currency": p.currency,
            },
            "promotion_detail": [],
        });
        if let Some(success_time) = self.success_time() {
            refund["success_time"] = json!(success_time);
        }
        refund
    }

    /// The decrypted `REFUND.*` resource (note `refund_status`, not `status`).
    fn resource_json(&self, mchid: &str, transaction_id: &str) -> Value {
        let p = &self.params;
        let mut resource = json!({
            "mchid": mchid,
            "transaction_id": transaction_id,
            "out_trade_no": p.out_trade_no,
            "refund_id": self.refund_id,
            "out_refund_no": p.out_refund_no,
            "refund_status": self.status(),
            "user_received_account": USER_RECEIVED_ACCOUNT,
            "amount": {
                "total": p.total,
                "refund": p.refund,
                "payer_total": p.total,
                "payer_refund": p.refund,
            },
        });
        if let Some(success_time) = self.success_time() {
            resource["success_time"] = json!(success_time);
        }
        resource
    }
}

/// `POST /v3/refund/domestic/refunds`.
pub(crate) async fn create_refund(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = sandbox
        .authenticate(&Method::POST, &uri, &headers, &body)
        .and_then(|_| sandbox.create_refund(&body));
    sandbox.respond(answer).await
}

/// `GET /v3/refund/domestic/refunds/{out_refund_no}`.
pub(crate) async fn query_refund(
    State(sandbox): State<Sandbox>,
    Path(out_refund_no): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let answer = sandbox
        .authenticate(&Method::GET, &uri, &headers, b"")
        .and_then(|_| {
            let orders = lock(&sandbox.inner.wechat.orders);
            let (order, refund) = find_refund(orders.values(), &out_refund_no)
                .ok_or_else(|| refund_not_exist("退款单不存在"))?;
            Ok(Answer::json(&refund.answer_json(transaction_id(order))))
        });
    sandbox.respond(answer).await
}

impl Sandbox {
    fn create_refund(&self, body: &[u8]) -> Result<Answer, ApiError> {
        let request: Value =
            serde_json::from_slice(body).map_err(|_| ApiError::param("请求体不是合法的JSON"))?;
        let params = parse_refund(&request)?;
        let mut orders = lock(&self.inner.wechat.orders);

        // The same number is the same refund: identical parameters answer it as it is now.
        if let Some((order, existing)) = find_refund(orders.values(), &params.out_refund_no) {
            return if existing.params == params {
                Ok(Answer::json(&existing.answer_json(transaction_id(order))))
            } else {
                Err(ApiError::invalid_request(
                    "请求重入时，参数与首次请求时不一致",
                ))
            };
        }

        let order = orders
            .get_mut(&params.out_trade_no)
            .filter(|order| matches!(order.state, OrderState::Success(_)))
            .ok_or_else(|| refund_not_exist("订单不存在或未支付"))?;
        if params.total != order.params.total {
            return Err(ApiError::param("amount.total与订单金额不一致"));
        }
        if params.refund > params.total {
            return Err(ApiError::param("退款金额不能大于订单金额"));
        }
        if params.refund > params.total - order.refunded_fen() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "NOT_ENOUGH",
                "订单可退金额不足",
            ));
        }
        if order.refunds.len() >= MAX_REFUNDS_PER_ORDER {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "RULE_LIMIT",
                "订单退款次数超过50次",
            ));
        }
        let notify_url = params.notify_url.clone();
        let entry = self.accept_wechat_refund(order, params, notify_url);
        Ok(Answer::json(&entry.answer_json(transaction_id(order))))
    }

    /// Records a new `PROCESSING` refund of `order` (checked by the caller) and starts its
    /// completion timer; the refund as recorded.
    fn accept_wechat_refund(
        &self,
        order: &mut Order,
        params: RefundParams,
        notify_url: Option<String>,
    ) -> RefundEntry {
        let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
        let now = self.now().with_timezone(&beijing);
        let entry = RefundEntry {
            refund_id: new_refund_id(&now.format("%Y%m%d").to_string()),
            create_time: now.to_rfc3339_opts(SecondsFormat::Secs, false),
            created_at: now.with_timezone(&Utc),
            state: RefundState::Processing,
            notify_url,
            params,
        };
        let out_refund_no = entry.params.out_refund_no.clone();
        tracing::info!(
            out_trade_no = %entry.params.out_trade_no,
            out_refund_no = %out_refund_no,
            "sandbox: WeChat refund accepted"
        );
        order.refunds.push(entry.clone());
        self.keep_wechat_order(order);
        self.settle_wechat_refund_later(out_refund_no);
        entry
    }

    /// Completes the refund [`REFUND_SETTLE_SECS`] (divided by `time_divisor`) from now.
    fn settle_wechat_refund_later(&self, out_refund_no: String) {
        let (sandbox, divisor) = (self.clone(), u64::from(self.time_divisor()));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(REFUND_SETTLE_SECS * 1000 / divisor)).await;
            sandbox.settle_wechat_refund(&out_refund_no);
        });
    }

    /// A restarted simulator's refunds still `PROCESSING` ([`crate::ledger_file`]) complete
    /// [`REFUND_SETTLE_SECS`] from now, as if just accepted.
    pub(crate) fn resume_wechat_refunds(&self) {
        let processing: Vec<String> = lock(&self.inner.wechat.orders)
            .values()
            .flat_map(|order| &order.refunds)
            .filter(|refund| refund.state == RefundState::Processing)
            .map(|refund| refund.params.out_refund_no.clone())
            .collect();
        for out_refund_no in processing {
            self.settle_wechat_refund_later(out_refund_no);
        }
    }

    /// A `PROCESSING` refund completes now, as the `wechat_refund_outcome` fault says:
    /// `SUCCESS` (with a `success_time`), `CLOSED` or `ABNORMAL`; its `REFUND.*` notification
    /// starts when it has somewhere to go. False when there is no such refund or it already
    /// completed.
    fn settle_wechat_refund(&self, out_refund_no: &str) -> bool {
        let wechat = &self.inner.wechat;
        let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
        let success_time = self
            .now()
            .with_timezone(&beijing)
            .to_rfc3339_opts(SecondsFormat::Secs, false);
        let outcome = self.faults().wechat_refund_outcome;
        // The notification is queued under the ledger lock, so whoever reads the final status
        // can count on it being on its way.
        let mut orders = lock(&wechat.orders);
        let Some(order) = orders.values_mut().find(|order| {
            order
                .refunds
                .iter()
                .any(|r| r.params.out_refund_no == out_refund_no)
        }) else {
            return false;
        };
        let transaction_id = transaction_id(order).to_owned();
        let Some(refund) = order.refunds.iter_mut().find(|r| {
            r.params.out_refund_no == out_refund_no && r.state == RefundState::Processing
        }) else {
            return false;
        };
        refund.state = match outcome {
            WechatRefundOutcome::Success => RefundState::Success { success_time },
            WechatRefundOutcome::Closed => RefundState::Closed,
            WechatRefundOutcome::Abnormal => RefundState::Abnormal,
        };
        tracing::info!(
            out_refund_no,
            status = refund.status(),
            "sandbox: WeChat refund completed"
        );
        let notice = refund.notify_url.clone().map(|notify_url| {
            let resource = refund.resource_json(&wechat.mchid, &transaction_id);
            (refund.params.out_trade_no.clone(), notify_url, resource)
        });
        // Kept before its notification is queued: a kept notification never names a refund
        // the file still has as processing.
        self.keep_wechat_order(order);
        if let Some((out_trade_no, notify_url, resource)) = notice {
            self.notify_wechat(out_trade_no, notify_url, resource);
        }
        true
    }

    /// Every `PROCESSING` WeChat refund completes now (`SUCCESS`, or what the
    /// `wechat_refund_outcome` fault says) and its notification starts, without waiting for
    /// [`REFUND_SETTLE_SECS`]; how many did.
    pub fn complete_wechat_refunds(&self) -> usize {
        let processing: Vec<String> = lock(&self.inner.wechat.orders)
            .values()
            .flat_map(|order| &order.refunds)
            .filter(|refund| refund.state == RefundState::Processing)
            .map(|refund| refund.params.out_refund_no.clone())
            .collect();
        processing
            .iter()
            .filter(|out_refund_no| self.settle_wechat_refund(out_refund_no))
            .count()
    }

    /// The refunds of a WeChat order, oldest first, each as the refund query answers it
    /// (`user_received_account` included); empty for an unknown order.
    pub fn wechat_refunds(&self, out_trade_no: &str) -> Vec<Value> {
        lock(&self.inner.wechat.orders)
            .get(out_trade_no)
            .map(|order| {
                let transaction_id = transaction_id(order);
                order
                    .refunds
                    .iter()
                    .map(|refund| refund.answer_json(transaction_id))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Sandbox {
    /// A refund made at the merchant portal, outside paygate: a `PROCESSING` refund numbered
    /// `PORTAL…` that completes like any other and notifies the order's notify_url. `None`
    /// when the WeChat ledger does not hold `out_trade_no`.
    pub(crate) fn wechat_portal_refund(
        &self,
        out_trade_no: &str,
        amount_fen: i64,
    ) -> Option<Result<PortalRefund, PortalRefundError>> {
        let mut orders = lock(&self.inner.wechat.orders);
        let order = orders.get_mut(out_trade_no)?;
        Some(self.wechat_portal_refund_of(order, amount_fen))
    }

    fn wechat_portal_refund_of(
        &self,
        order: &mut Order,
        amount_fen: i64,
    ) -> Result<PortalRefund, PortalRefundError> {
        if !matches!(order.state, OrderState::Success(_)) {
            return Err(PortalRefundError::NotPaid);
        }
        let left_fen = order.params.total - order.refunded_fen();
        if amount_fen > left_fen {
            return Err(PortalRefundError::NotEnough { left_fen });
        }
        if order.refunds.len() >= MAX_REFUNDS_PER_ORDER {
            return Err(PortalRefundError::TooManyRefunds);
        }
        let params = RefundParams {
            out_trade_no: order.params.out_trade_no.clone(),
            out_refund_no: portal_refund_no(),
            reason: None,
            notify_url: None,
            refund: amount_fen,
            total: order.params.total,
            currency: order.params.currency.clone(),
        };
        let notify_url = Some(order.params.notify_url.clone());
        let entry = self.accept_wechat_refund(order, params, notify_url);
        Ok(PortalRefund {
            provider: PortalProvider::Wechatpay,
            out_trade_no: entry.params.out_trade_no,
            refund_no: entry.params.out_refund_no,
            amount: yuan(amount_fen),
            status: PortalRefundStatus::Processing,
        })
    }
}

impl Order {
    /// What its refunds take from the total: `PROCESSING` and `SUCCESS` ones.
    pub(crate) fn refunded_fen(&self) -> i64 {
        self.refunds.iter().map(RefundEntry::counted_fen).sum()
    }
}

fn refund_not_exist(message: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS", message)
}

/// A refunded order is always paid; "" cannot happen.
fn transaction_id(order: &Order) -> &str {
    match &order.state {
        OrderState::Success(payment) => &payment.transaction_id,
        OrderState::NotPay | OrderState::Closed => "",
    }
}

fn find_refund<'a>(
    mut orders: impl Iterator<Item = &'a Order>,
    out_refund_no: &str,
) -> Option<(&'a Order, &'a RefundEntry)> {
    orders.find_map(|order| {
        order
            .refunds
            .iter()
            .find(|refund| refund.params.out_refund_no == out_refund_no)
            .map(|refund| (order, refund))
    })
}

/// 1–64 characters of `[0-9A-Za-z_-|*@]`.
fn valid_out_refund_no(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'|' | b'*' | b'@'))
}

fn parse_refund(request: &Value) -> Result<RefundParams, ApiError> {
    let object = request
        .as_object()
        .ok_or_else(|| ApiError::param("请求体必须是JSON对象"))?;
    refuse_outside_allowlist(object, "", ALLOWED_REFUND_FIELDS)?;
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match object.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(ApiError::param(format!("{key}不能为空"))),
            Some(_) => Err(ApiError::param(format!("{key}参数类型错误"))),
        }
    };
    let required = |key: &str| text(key)?.ok_or_else(|| ApiError::param(format!("缺少参数{key}")));
    let out_trade_no = required("out_trade_no")?;
    let out_refund_no = required("out_refund_no")?;
    let reason = text("reason")?;
    let notify_url = text("notify_url")?;

    if !crate::wechat::valid_out_trade_no(&out_trade_no) {
        return Err(ApiError::param(
            "out_trade_no要求6-32个字符内，只能是数字、大小写字母_-|*",
        ));
    }
    if !valid_out_refund_no(&out_refund_no) {
        return Err(ApiError::param(
            "out_refund_no要求64个字符内，只能是数字、大小写字母_-|*@",
        ));
    }
    if let Some(reason) = &reason
        && (reason.chars().count() > 80 || reason.chars().any(|c| c.len_utf8() > 3))
    {
        return Err(ApiError::param("reason长度超过80个字符或含有非法字符"));
    }
    if let Some(url) = &notify_url
        && !valid_notify_url(url, 256)
    {
        return Err(ApiError::param("notify_url必须是不带参数的http(s)绝对地址"));
    }

    let amount = object
        .get("amount")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::param("缺少参数amount"))?;
    refuse_outside_allowlist(amount, "amount.", ALLOWED_REFUND_AMOUNT_FIELDS)?;
    let fen = |amount: &Map<String, Value>, key: &str| -> Result<i64, ApiError> {
        let value = amount
            .get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::param(format!("amount.{key}必须是整数（分）")))?;
        if value < 1 {
            return Err(ApiError::param(format!("amount.{key}必须大于0")));
        }
        Ok(value)
    };
    let refund = fen(amount, "refund")?;
    let total = fen(amount, "total")?;
    let currency = match amount.get("currency") {
        Some(Value::String(c)) if c == "CNY" => c.clone(),
        None => return Err(ApiError::param("缺少参数amount.currency")),
        Some(_) => return Err(ApiError::param("amount.currency仅支持CNY")),
    };
    Ok(RefundParams {
        out_trade_no,
        out_refund_no,
        reason,
        notify_url,
        refund,
        total,
        currency,
    })
}

/// Like WeChat's `50000000382019052709732678859`: 29 digits starting `50`, the date inside.
fn new_refund_id(yyyymmdd: &str) -> String {
    let mut rng = rand::rng();
    format!(
        "50000{:05}{yyyymmdd}{:011}",
        rng.random_range(0..100_000u32),
        rng.random_range(0..100_000_000_000u64)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{new_refund_id, parse_refund};

    fn base() -> serde_json::Value {
        json!({
            "out_trade_no": "PG20261129000001",
            "out_refund_no": "RF20261129000001@1",
            "amount": {"refund": 100, "total": 19900, "currency": "CNY"},
        })
    }

    #[test]
    fn only_the_allowlisted_fields_are_taken() {
        assert!(parse_refund(&base()).is_ok());
        for (path, value) in [
            ("transaction_id", json!("4200000000202611290000000001")),
            ("funds_account", json!("AVAILABLE")),
            ("goods_detail", json!([])),
        ] {
            let mut request = base();
            request[path] = value;
            assert_eq!(
                parse_refund(&request).unwrap_err().code(),
                "INVALID_REQUEST"
            );
        }
        let mut from = base();
        from["amount"]["from"] = json!([{"account": "AVAILABLE", "amount": 100}]);
        assert_eq!(parse_refund(&from).unwrap_err().code(), "INVALID_REQUEST");
    }

    #[test]
    fn amounts_numbers_and_texts_are_checked() {
        for (path, value) in [
            ("refund", json!(0)),
            ("refund", json!(1.5)),
            ("total", json!("19900")),
            ("currency", json!("USD")),
        ] {
            let mut request = base();
            request["amount"][path] = value;
            assert_eq!(parse_refund(&request).unwrap_err().code(), "PARAM_ERROR");
        }
        for (path, value) in [
            ("out_refund_no", json!("has space")),
            ("out_refund_no", json!("x".repeat(65))),
            ("reason", json!("长".repeat(81))),
            ("notify_url", json!("https://example.com/hook?x=1")),
            ("notify_url", json!(null)),
        ] {
            let mut request = base();
            request[path] = value;
            assert_eq!(parse_refund(&request).unwrap_err().code(), "PARAM_ERROR");
        }
    }

    #[test]
    fn refund_ids_look_like_wechats() {
        let id = new_refund_id("20261129");
        assert_eq!(id.len(), 29);
        assert!(id.starts_with("50") && id.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(&id[10..18], "20261129");
    }
}
