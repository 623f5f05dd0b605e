//! What a verified WeChat Pay message says, checked against our merchant and reduced to what
//! the gateway keeps: a paid transaction, a refund answer, a refund notification.

use anyhow::anyhow;
use paygate_wechatpay::model::{Refund, RefundStatus as WechatRefundStatus};
use paygate_wechatpay::{TradeState, Transaction};

use crate::domain::{Currency, Fen, OrderNo, ProviderId};
use crate::providers::PaidTrade;
use crate::providers::port::{Callback, CallbackError, Mismatch, ProviderError, RefundState};
use crate::providers::{RefundFailure, RefundOutcome, RefundReport};

/// Checks a verified transaction against our merchant; keeps only what we store. None
/// while it is not paid (`SUCCESS`, or `REFUND`: paid, then refunded).
pub(super) fn paid_trade(
    mchid: &str,
    appid: &str,
    tx: &Transaction,
) -> Result<Option<PaidTrade>, Mismatch> {
    use Mismatch::Malformed;
    if tx.mchid != mchid {
        return Err(Mismatch::NotOurs("mchid"));
    }
    if tx.appid != appid {
        return Err(Mismatch::NotOurs("appid"));
    }
    if !matches!(tx.trade_state, TradeState::Success | TradeState::Refund) {
        return Ok(None);
    }
    let order_no = OrderNo::parse(&tx.out_trade_no).ok_or(Mismatch::NotOurs("out_trade_no"))?;
    let txn_id = tx
        .transaction_id
        .clone()
        .ok_or(Malformed("paid transaction without transaction_id"))?;
    let amount = tx
        .amount
        .as_ref()
        .ok_or(Malformed("paid transaction without amount"))?;
    let total = amount
        .total
        .ok_or(Malformed("paid transaction without amount.total"))?;
    let amount_fen = Fen::new(total).map_err(|_| Malformed("negative amount"))?;
    let currency = amount
        .currency
        .as_deref()
        .ok_or(Malformed("paid transaction without amount.currency"))?;
    let currency =
        Currency::parse(currency).ok_or(Malformed("paid transaction in another currency"))?;
    let paid_at = tx
        .success_time
        .as_deref()
        .ok_or(Malformed("paid transaction without success_time"))?;
    let paid_at = parse_time(paid_at).ok_or(Malformed("success_time is not RFC 3339"))?;
    Ok(Some(PaidTrade {
        order_no,
        provider: ProviderId::Wechatpay,
        provider_txn_id: txn_id,
        amount: amount_fen,
        currency,
        trade_type: tx.trade_type.clone(),
        bank_type: tx.bank_type.clone(),
        paid_at,
    }))
}

/// A verified refund answer (create or query) about our refund `refund_no` of `order_no`.
pub(super) fn refund_state(
    r: &Refund,
    order_no: &OrderNo,
    refund_no: &str,
) -> Result<RefundState, ProviderError> {
    let reject = |m: &'static str| ProviderError::Rejected(anyhow!(m));
    if r.out_trade_no != order_no.as_str() || r.out_refund_no != refund_no {
        return Err(reject("refund answer about another refund"));
    }
    let amount = Fen::new(r.amount.refund).map_err(|_| reject("negative refund amount"))?;
    let provider_refund_id = Some(r.refund_id.clone());
    Ok(match r.status {
        WechatRefundStatus::Success => RefundState::Succeeded {
            amount,
            provider_refund_id,
            at: match r.success_time.as_deref() {
                Some(t) => {
                    Some(parse_time(t).ok_or_else(|| reject("success_time is not RFC 3339"))?)
                }
                None => None,
            },
        },
        WechatRefundStatus::Closed => RefundState::Failed(RefundFailure::Closed),
        WechatRefundStatus::Abnormal => RefundState::Failed(RefundFailure::Abnormal),
        WechatRefundStatus::Processing | WechatRefundStatus::Unknown => {
            RefundState::Processing { provider_refund_id }
        }
    })
}

/// A verified `REFUND.*` notification, checked against our merchant.
pub(super) fn refund_report(
    mchid: &str,
    verified: &paygate_wechatpay::VerifiedNotification,
) -> Result<Callback, CallbackError> {
    let n = verified.refund().map_err(CallbackError::unverified)?;
    if n.mchid != mchid {
        return Err(Mismatch::NotOurs("mchid").into());
    }
    let order_no = OrderNo::parse(&n.out_trade_no).ok_or(Mismatch::NotOurs("out_trade_no"))?;
    let amount =
        Fen::new(n.amount.refund).map_err(|_| Mismatch::Malformed("negative refund amount"))?;
    let total =
        Fen::new(n.amount.total).map_err(|_| Mismatch::Malformed("negative order total"))?;
    let outcome = match n.refund_status {
        WechatRefundStatus::Success => RefundOutcome::Succeeded {
            at: match n.success_time.as_deref() {
                Some(t) => {
                    Some(parse_time(t).ok_or(Mismatch::Malformed("success_time is not RFC 3339"))?)
                }
                None => None,
            },
        },
        WechatRefundStatus::Closed => RefundOutcome::Failed(RefundFailure::Closed),
        WechatRefundStatus::Abnormal => RefundOutcome::Failed(RefundFailure::Abnormal),
        other => return Ok(Callback::Ignored(format!("refund {}", other.as_str()))),
    };
    Ok(Callback::Refund(RefundReport {
        order_no,
        provider: ProviderId::Wechatpay,
        out_refund_no: n.out_refund_no,
        provider_refund_id: Some(n.refund_id),
        amount: Some(amount),
        order_total: Some(total),
        outcome,
    }))
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.to_utc())
}
