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

/// Why a bill could not be had or read. A run that meets one applies nothing.
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    /// The provider has no bill for that date yet ("not exist"): try again later.
    #[error("the provider has no bill for this date yet")]
    NotReady,
    #[error("the provider could not be reached for the bill")]
    Unavailable(#[source] anyhow::Error),
    /// The file failed its own checks (hash, totals, encoding, truncation): refused whole.
    #[error("the bill failed its checks: {0}")]
    Invalid(#[source] anyhow::Error),
    /// Past `[reconciliation] max_bill_bytes` (downloaded, decompressed or in lines): refused
    /// whole, as an invalid bill.
    #[error("the bill was refused: {0}")]
    TooLarge(#[from] super::bounds::Exceeded),
    /// The run was dropped (its request cancelled or timed out) while the bill was read.
    #[error("the reconciliation was cancelled")]
    Cancelled,
    #[error("the bill could not be written or read locally")]
    Io(#[from] std::io::Error),
}

/// Counts entries by kind as a bill is read: the totals of what was staged.
pub fn tally(totals: &mut BillTotals, entry: &BillEntry) -> Result<(), BillError> {
    let (count, sum) = match entry.kind {
        EntryKind::Payment => (&mut totals.payments, &mut totals.payment_amount),
        EntryKind::Refund => (&mut totals.refunds, &mut totals.refund_amount),
    };
    *count += 1;
    *sum = sum
        .checked_add(entry.amount)
        .ok_or_else(|| BillError::Invalid(anyhow::anyhow!("the bill's amounts overflow")))?;
    Ok(())
}

/// A provider crate's parser error: the file is refused, as too large when a bound of
/// [`super::bounds`] stopped the reading, or the run is cancelled.
pub fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> BillError {
    match super::bounds::why_stopped(&e) {
        Some(super::bounds::Stopped::Exceeded(x)) => BillError::TooLarge(x),
        Some(super::bounds::Stopped::Cancelled) => BillError::Cancelled,
        None => BillError::Invalid(e.into()),
    }
}

impl BillTotals {
    pub const NONE: BillTotals = BillTotals {
        payments: 0,
        payment_amount: Fen::ZERO,
        refunds: 0,
        refund_amount: Fen::ZERO,
    };
}
