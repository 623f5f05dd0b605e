//! What the gateway reads from a provider's trade bill, whatever its format: one entry per
//! payment or refund, with nothing about the payer (the provider crates' parsers drop those
//! columns before a row exists).

use chrono::{DateTime, Utc};

use crate::domain::Fen;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Payment,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Payment => "payment",
            EntryKind::Refund => "refund",
        }
    }
}

/// The status a bill gives an entry that did happen; anything else is a `status_mismatch`
/// against a local record that says it happened.
pub const SUCCESS: &str = "SUCCESS";

/// One row of a trade bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillEntry {
    pub kind: EntryKind,
    /// The merchant order number (`out_trade_no`): ours, or a number paygate never issued;
    /// `None` when the row has none (an Alipay payment by collection code or QR sticker, not
    /// an order of paygate's).
    pub order_no: Option<String>,
    /// The provider's transaction id (WeChat 微信订单号, Alipay 支付宝交易号).
    pub provider_txn_id: String,
    /// Refunds: the refund's number (`out_refund_no` / `out_request_no`) when the bill has it.
    pub refund_no: Option<String>,
    /// Payments: the paid amount; refunds: the refunded amount (positive).
    pub amount: Fen,
    /// `SUCCESS` for an entry that happened; the provider's word otherwise (`PROCESSING`, …).
    pub status: String,
    pub at: DateTime<Utc>,
}

/// The bill's own totals, checked by the parser against its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BillTotals {
    pub payments: u64,
    pub payment_amount: Fen,
    pub refunds: u64,
    pub refund_amount: Fen,
}

impl BillTotals {
    pub const NONE: BillTotals = BillTotals {
        payments: 0,
        payment_amount: Fen::ZERO,
        refunds: 0,
        refund_amount: Fen::ZERO,
    };
}
