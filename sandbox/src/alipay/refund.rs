//! `alipay.trade.refund` and `alipay.trade.fastpay.refund.query` against the Alipay ledger.
//!
//! Rules (alipay.md §5, strict readings where it leaves room):
//!
//! - Only a paid trade (`TRADE_SUCCESS`) is refunded; an unpaid, closed or fully refunded one
//!   answers `ACQ.TRADE_STATUS_ERROR`, an unknown one `ACQ.TRADE_NOT_EXIST`.
//! - `out_request_no` is the idempotency key. The same value again answers 10000 with
//!   `fund_change=N` and the unchanged cumulative `refund_fee`, whatever happened since; with a
//!   different `refund_amount` it answers `ACQ.DISCORDANT_REPEAT_REQUEST` (not in alipay.md's
//!   list: Alipay's published refund error table [?]).
//! - Without `out_request_no` the refund is a full refund numbered `out_trade_no`, so its
//!   `refund_amount` must equal `total_amount`.
//! - More than is left to refund answers `ACQ.REFUND_AMT_NOT_EQUAL_TOTAL`: alipay.md shows it
//!   on the wire for a refund (`撤销或退款金额与订单金额不一致`), and it lists
//!   `ACQ.REASON_TRADE_REFUND_FEE_ERR` without a meaning, so the documented one is used.
//! - A new refund answers `fund_change=Y` and the new cumulative `refund_fee`, with the masked
//!   `buyer_logon_id` and `buyer_user_id` as Alipay's answer carries them: the gateway must drop
//!   them.
//! - The refund query answers `refund_status=REFUND_SUCCESS` with that refund's `refund_amount`,
//!   or, for an `out_request_no` it does not know, only `code` and `msg` [?: the shape of
//!   Alipay's "not found" answer is not confirmed; this is the leanest a client must accept].
//! - Every new refund (this API's, or one made at the portal, [`crate::portal`]) sends its own
//!   `trade_status_sync` (own `notify_id`) to the trade's notify_url, through the same outbox,
//!   retry schedule and faults as the payment's: the payment fields again (payer fields
//!   included, for the gateway to drop), `trade_status` `TRADE_SUCCESS` after a partial refund
//!   or `TRADE_CLOSED` once fully refunded (then with `gmt_close`), `refund_fee` (cumulative),
//!   `out_biz_no` (the refund's `out_request_no`) and `gmt_refund`. alipay.md §6 is unsure
//!   Alipay notifies every full refund [?]: the sandbox always does, and a gateway must not
//!   depend on it either way. A repeated refund (`fund_change=N`) notifies nothing.

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value, json};

use super::{AlipayOrder, AlipaySim, Failure, Outcome, TradeState, find, yuan};
use crate::portal::{
    PortalProvider, PortalRefund, PortalRefundError, PortalRefundStatus, portal_refund_no,
};
use crate::{Sandbox, lock};

/// One refund of a paid trade.
#[derive(Debug, Clone)]
pub(crate) struct AlipayRefund {
    pub(super) out_request_no: String,
    pub(super) refund_fen: i64,
    /// When the money went back.
    pub(super) refunded_at: DateTime<Utc>,
}

impl AlipayRefund {
    /// The refund answer's `gmt_refund_pay`: `yyyy-MM-dd HH:mm:ss` Beijing time.
    fn gmt_refund_pay(&self) -> String {
        crate::wire::alipay::beijing_time(self.refunded_at)
    }

    /// The notification's `gmt_refund`: with milliseconds, as real refund notifications carry
    /// it (`2020-01-08 17:17:05.296`), so a gateway's parser meets that form here first.
    pub(super) fn gmt_refund(&self) -> String {
        let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
        self.refunded_at
            .with_timezone(&beijing)
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string()
    }
}

/// Business fields paygate may send in a refund (design §1.1): the trade, the amount, the
/// refund's number and a neutral reason. Anything else → `ACQ.INVALID_PARAMETER`.
const ALLOWED_REFUND_FIELDS: &[&str] = &[
    "out_trade_no",
    "trade_no",
    "refund_amount",
    "out_request_no",
    "refund_reason",
];

/// Business fields of a refund query: the trade and the refund's number.
const ALLOWED_REFUND_QUERY_FIELDS: &[&str] = &["out_trade_no", "trade_no", "out_request_no"];

// Methods on the shared `Sandbox` carry the provider in their name, so the WeChat half can
// have refunds of its own.
impl Sandbox {
    /// `alipay.trade.refund`.
    pub(super) fn alipay_refund(
        &self,
        sim: &AlipaySim,
        biz: &Map<String, Value>,
    ) -> Result<Outcome, Failure> {
        allowlist(biz, ALLOWED_REFUND_FIELDS)?;
        // A string of plain digits, or a JSON number taken by its text: never through a float.
        let amount_text = match biz.get("refund_amount") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let refund_fen = crate::wire::alipay::yuan_to_fen(&amount_text)
            .filter(|fen| (1..=crate::wire::alipay::MAX_ORDER_FEN).contains(fen))
            .ok_or_else(|| invalid("refund_amount"))?;
        let out_request_no = request_no(biz)?;
        match biz.get("refund_reason") {
            None => {}
            Some(Value::String(reason)) if reason.chars().count() <= 256 => {}
            Some(_) => return Err(invalid("refund_reason")),
        }

        let mut orders = lock(&sim.orders);
        let key = find(&orders, biz)?.out_trade_no.clone();
        let order = orders.get_mut(&key).ok_or_else(Failure::not_exist)?;
        let TradeState::Success(payment) = &order.state else {
            return Err(status_error());
        };
        let buyer = (payment.buyer_logon_id.clone(), payment.buyer_id.clone());
        let full_refund = out_request_no.is_none();
        let out_request_no = out_request_no.unwrap_or_else(|| order.out_trade_no.clone());

        // The same refund again moves no money, even once the trade is fully refunded.
        if let Some(done) = order
            .refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
        {
            if done.refund_fen != refund_fen {
                return Err(Failure::business(
                    "ACQ.DISCORDANT_REPEAT_REQUEST",
                    "不一致的请求",
                ));
            }
            let gmt_refund_pay = done.gmt_refund_pay();
            return Ok(refund_answer(order, &buyer, false, 0, &gmt_refund_pay));
        }
        if order.status() != "TRADE_SUCCESS" {
            return Err(status_error());
        }
        let left = order.total_fen - order.refunded_fen();
        if (full_refund && refund_fen != order.total_fen) || refund_fen > left {
            return Err(Failure::business(
                "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                "撤销或退款金额与订单金额不一致",
            ));
        }
        let refund = self.record_alipay_refund(order, out_request_no, refund_fen);
        Ok(refund_answer(
            order,
            &buyer,
            true,
            refund_fen,
            &refund.gmt_refund_pay(),
        ))
    }

    /// Records a new refund of the paid `order` (checked by the caller) and queues its
    /// notification when the trade named a notify_url, under the ledger lock like WeChat's, so
    /// whoever reads the refund can count on its notification being on its way.
    fn record_alipay_refund(
        &self,
        order: &mut AlipayOrder,
        out_request_no: String,
        refund_fen: i64,
    ) -> AlipayRefund {
        let refund = AlipayRefund {
            out_request_no,
            refund_fen,
            refunded_at: self.now(),
        };
        order.refunds.push(refund.clone());
        tracing::info!(
            out_trade_no = %order.out_trade_no,
            out_request_no = %refund.out_request_no,
            refund_fen,
            "sandbox: Alipay trade refunded"
        );
        self.notify_alipay(order, Some(&refund.out_request_no));
        refund
    }

    /// A refund made at the merchant portal: done at once, numbered `PORTAL…`, notified like
    /// any refund. `None` when the Alipay ledger does not hold `out_trade_no`.
    pub(crate) fn alipay_portal_refund(
        &self,
        out_trade_no: &str,
        amount_fen: i64,
    ) -> Option<Result<PortalRefund, PortalRefundError>> {
        let sim = self.inner.alipay.get()?;
        let mut orders = lock(&sim.orders);
        let order = orders.get_mut(out_trade_no)?;
        if !matches!(order.state, TradeState::Success(_)) {
            return Some(Err(PortalRefundError::NotPaid));
        }
        let left_fen = order.total_fen - order.refunded_fen();
        if amount_fen > left_fen {
            return Some(Err(PortalRefundError::NotEnough { left_fen }));
        }
        let refund = self.record_alipay_refund(order, portal_refund_no(), amount_fen);
        Some(Ok(PortalRefund {
            provider: PortalProvider::Alipay,
            out_trade_no: order.out_trade_no.clone(),
            refund_no: refund.out_request_no,
            amount: yuan(amount_fen),
            status: PortalRefundStatus::Success,
        }))
    }

    /// `alipay.trade.fastpay.refund.query`.
    pub(super) fn alipay_refund_query(
        &self,
        sim: &AlipaySim,
        biz: &Map<String, Value>,
    ) -> Result<Outcome, Failure> {
        allowlist(biz, ALLOWED_REFUND_QUERY_FIELDS)?;
        let out_request_no = request_no(biz)?.ok_or_else(|| invalid("out_request_no"))?;
        let orders = lock(&sim.orders);
        let order = find(&orders, biz)?;
        let Some(refund) = order
            .refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
        else {
            return Ok(Outcome::Success(Vec::new()));
        };
        Ok(Outcome::Success(vec![
            ("out_request_no", json!(refund.out_request_no)),
            ("out_trade_no", json!(order.out_trade_no)),
            ("refund_amount", json!(yuan(refund.refund_fen))),
            ("refund_status", json!("REFUND_SUCCESS")),
            ("total_amount", json!(order.amount())),
            ("trade_no", json!(order.trade_no)),
        ]))
    }
}

/// The 10000 answer of a refund, fields in Alipay's order. `send_back_fee` is what this call
/// sent back (0.00 for a repeat).
fn refund_answer(
    order: &super::AlipayOrder,
    (buyer_logon_id, buyer_user_id): &(String, String),
    fund_change: bool,
    send_back_fen: i64,
    gmt_refund_pay: &str,
) -> Outcome {
    Outcome::Success(vec![
        ("buyer_logon_id", json!(buyer_logon_id)),
        ("buyer_user_id", json!(buyer_user_id)),
        ("fund_change", json!(if fund_change { "Y" } else { "N" })),
        ("gmt_refund_pay", json!(gmt_refund_pay)),
        ("out_trade_no", json!(order.out_trade_no)),
        ("refund_fee", json!(yuan(order.refunded_fen()))),
        ("send_back_fee", json!(yuan(send_back_fen))),
        ("trade_no", json!(order.trade_no)),
    ])
}

fn allowlist(biz: &Map<String, Value>, allowed: &[&str]) -> Result<(), Failure> {
    match biz.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(Failure::business(
            "ACQ.INVALID_PARAMETER",
            format!("sandbox: field `{key}` is outside paygate's privacy allowlist"),
        )),
        None => Ok(()),
    }
}

/// `out_request_no`: absent (or empty) gives `None`; else 1-64 characters of the kind the
/// sandbox takes in `out_trade_no`.
fn request_no(biz: &Map<String, Value>) -> Result<Option<String>, Failure> {
    match biz.get("out_request_no") {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s))
            if s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(invalid("out_request_no")),
    }
}

fn invalid(field: &str) -> Failure {
    Failure::business("ACQ.INVALID_PARAMETER", format!("参数{field}不正确"))
}

fn status_error() -> Failure {
    Failure::business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
}
