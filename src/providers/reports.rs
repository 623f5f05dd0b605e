//! What a provider reports, after its signature and merchant ids checked out: a payment
//! ([`PaidTrade`]) or a refund ([`RefundReport`]). Defined here, in the providers layer, because
//! it is what the adapters return; the settlement and refund paths above take it as it is.

use chrono::{DateTime, Utc};

use crate::domain::{Currency, Fen, OrderNo, ProviderId};

/// What a provider says was paid, after its signature and merchant ids checked out.
#[derive(Debug, Clone)]
pub struct PaidTrade {
    pub order_no: OrderNo,
    pub provider: ProviderId,
    pub provider_txn_id: String,
    pub amount: Fen,
    pub currency: Currency,
    pub trade_type: Option<String>,
    pub bank_type: Option<String>,
    pub paid_at: DateTime<Utc>,
}

/// Why a refund will not go back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundFailure {
    /// WeChat `CLOSED`: closed without paying out.
    Closed,
    /// WeChat `ABNORMAL`: the buyer's account could not take it; finance must resolve it (a
    /// new refund, or offline). Reported, never retried blindly.
    Abnormal,
    /// The provider refused the request (its error code, e.g. `NOT_ENOUGH`).
    Refused(String),
}

impl RefundFailure {
    pub fn kind(&self) -> &'static str {
        match self {
            RefundFailure::Closed => "closed",
            RefundFailure::Abnormal => "abnormal",
            RefundFailure::Refused(_) => "refused",
        }
    }

    /// As stored in `refund.failure` and shown in `refund.failed`.
    pub fn describe(&self) -> String {
        match self {
            RefundFailure::Refused(code) => format!("refused:{code}"),
            other => other.kind().to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The money went back; `at` is the provider's time when it gives one.
    Succeeded {
        at: Option<DateTime<Utc>>,
    },
    Failed(RefundFailure),
}

/// What a provider says about one refund, after its signature and merchant ids checked out.
#[derive(Debug, Clone)]
pub struct RefundReport {
    pub order_no: OrderNo,
    pub provider: ProviderId,
    /// `out_refund_no` (WeChat) / `out_request_no` = `out_biz_no` (Alipay).
    pub out_refund_no: String,
    pub provider_refund_id: Option<String>,
    /// This refund's amount. None when the report does not say (an Alipay notification gives
    /// only the cumulative `refund_fee`): known refunds have theirs, others are asked for.
    pub amount: Option<Fen>,
    /// The order's total as the report states it, checked against ours when given.
    pub order_total: Option<Fen>,
    pub outcome: RefundOutcome,
}
