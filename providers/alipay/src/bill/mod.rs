//! Trade bills (对账单, alipay.md §7), for the daily reconciliation (design §10).
//!
//! - [`bill_download_url_request`] / [`read_bill_download_url_response`]:
//!   `alipay.data.dataservice.bill.downloadurl.query` for a `trade` bill of one day; the
//!   answer's [`BillUrl`] is good for 30 seconds. The client's `bill_download_url` and
//!   `download_bill` do the HTTP.
//! - [`TradeBillReader`]: the downloaded ZIP → the detail CSV (GBK) → typed [`BillRow`]s, one
//!   line at a time, and, once they are all read, the file's own footer totals checked
//!   ([`TradeBillRows::totals`]). Memory stays flat in the size of the bill: nothing is
//!   collected.
//! - `simulator::write_trade_bill_zip`: Alipay's side, the same format written row by row, for
//!   the sandbox and benchmarks.
//!
//! Privacy (design §1): the payer column (对方账户), the product name (商品名称) and the remark
//! (备注) have no field in [`BillRow`]; the parser drops them with the rest of the line.

mod download;
pub(crate) mod format;
mod lines;
mod read;
pub(crate) mod write;

use chrono::{DateTime, Utc};

use crate::money::AmountError;

pub use download::{
    BILL_METHOD, BillUrl, bill_download_url_request, read_bill_download_url_response,
};
pub use lines::MAX_LINE_BYTES;
pub use read::{TradeBillReader, TradeBillRows};

/// A line of the detail file: `业务类型` `交易` or `退款`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillRowKind {
    /// `交易`: a payment; its amounts are positive in the file.
    Payment,
    /// `退款`: a refund; its amounts are negative in the file.
    Refund,
}

/// One payment or refund of the day, as the bill states it.
///
/// There is deliberately no status: the trade bill has no status column (a row is a payment or a
/// refund that completed that day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// `完成时间`, Beijing time in the file: when the payment or the refund completed.
    pub trade_time: DateTime<Utc>,
    /// `支付宝交易号`. A refund row carries the trade number of the payment it refunds.
    pub trade_no: String,
    /// `商户订单号`: our order number. A refund row carries the refunded order's. `None` when
    /// the column is empty: a payment that was not a merchant's order (a collection code, a QR
    /// sticker), which the merchant still receives and the totals count.
    pub out_trade_no: Option<String>,
    pub kind: BillRowKind,
    /// `订单金额（元）` in fen, as a positive number for refunds too: for a payment the trade's
    /// `total_amount`, which is what paygate stores as the paid amount and what settlement
    /// checked, so a reconciliation compares like with like; for a refund the refunded amount.
    /// (`商家实收` would differ from the paid amount by any discount.)
    pub amount_fen: i64,
    /// `商家实收（元）` in fen, positive for refunds too: what the merchant received (or gave
    /// back), the amount the bill's footer totals add up.
    pub received_fen: i64,
    /// `退款批次号/请求号` of a refund row: the `out_request_no` the refund was made with. `None`
    /// for payments, and for a refund row where the column is empty.
    pub out_request_no: Option<String>,
}

/// A bill's payment and refund counts and `商家实收` sums, in fen (refunds as positive numbers),
/// as the footer lines state them and the rows add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BillTotals {
    pub payments: u64,
    pub payment_fen: i64,
    pub refunds: u64,
    pub refund_fen: i64,
}

impl BillTotals {
    pub(crate) fn add(&mut self, kind: BillRowKind, fen: i64) -> Result<(), BillError> {
        let (count, sum) = match kind {
            BillRowKind::Payment => (&mut self.payments, &mut self.payment_fen),
            BillRowKind::Refund => (&mut self.refunds, &mut self.refund_fen),
        };
        *count += 1;
        *sum = sum.checked_add(fen).ok_or(BillError::Overflow)?;
        Ok(())
    }
}

/// Why a bill was refused. A bill is all or nothing: a reconciliation must not run on part of
/// one. Errors name the line and the column, never a value from the file.
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("the bill is not a readable ZIP")]
    Zip(#[source] zip::result::ZipError),
    #[error("reading the bill failed (a truncated or corrupt entry)")]
    Read(#[source] std::io::Error),
    #[error("the ZIP holds no `…_业务明细.csv` entry")]
    NoDetailEntry,
    #[error("the ZIP holds more than one `…_业务明细.csv` entry")]
    SeveralDetailEntries,
    #[error("line {line} is not valid GBK")]
    Encoding { line: u64 },
    #[error("line {line} is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
    #[error("the bill ends before its column header")]
    NoHeader,
    #[error("the column header has no `{0}` column")]
    MissingColumn(&'static str),
    #[error("the column header names `{0}` more than once")]
    RepeatedColumn(&'static str),
    #[error("line {line} has {found} fields where the header has {expected}")]
    FieldCount {
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("line {line} has an unterminated quoted field")]
    Quote { line: u64 },
    #[error("line {line}: `{column}` is missing or malformed")]
    Field { line: u64, column: &'static str },
    #[error("line {line}: `{column}` is not an exact amount in yuan")]
    Amount {
        line: u64,
        column: &'static str,
        #[source]
        source: AmountError,
    },
    #[error("line {line}: `{column}` has the wrong sign for a {kind:?} row")]
    Sign {
        line: u64,
        column: &'static str,
        kind: BillRowKind,
    },
    #[error("line {line}: 业务类型 is neither 交易 nor 退款")]
    Kind { line: u64 },
    #[error("line {line}: a row after the footer lines")]
    RowAfterFooter { line: u64 },
    #[error("line {line}: the `{footer}` line is malformed or repeated")]
    Footer { line: u64, footer: &'static str },
    #[error("the bill has no `{0}` footer line")]
    MissingFooter(&'static str),
    #[error(
        "the {kind:?} rows do not add up to the footer: {rows} rows, {fen} fen; footer {footer_rows} rows, {footer_fen} fen"
    )]
    TotalsMismatch {
        kind: BillRowKind,
        rows: u64,
        fen: i64,
        footer_rows: u64,
        footer_fen: i64,
    },
    #[error("the bill's amounts overflow")]
    Overflow,
}
