//! Trade bills (交易账单, wechatpay-v3.md §6): the file behind `GET /v3/bill/tradebill`, read and
//! written as streams so that memory stays flat in the size of the bill.
//!
//! - [`verify_bill_hash`] / [`bill_hash`]: SHA-1 over the uncompressed bytes, as WeChat gives it.
//! - [`TradeBillReader`]: the detail rows as typed [`BillRow`]s, one line at a time, then the
//!   summary, checked against the rows before the iterator ends.
//! - [`write_trade_bill`]: the provider's side (sandbox, benchmarks): the exact `ALL` format.
//!
//! A [`BillRow`] has no field for 用户标识 (the payer's openid), 商品名称 or 商户数据包: the
//! parser never copies them out of the line it is reading (design §1.2).
//!
//! ```
//! use paygate_wechatpay::bill::{
//!     BillRowKind, BillRowSpec, TradeBillReader, bill_hash, verify_bill_hash, write_trade_bill,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let payment = BillRowSpec {
//!     trade_time: "2026-11-29T04:00:00Z".parse()?,
//!     appid: "wx2421b1c4370ec43b".into(),
//!     mchid: "1900000001".into(),
//!     transaction_id: "4200000000202611290000000001".into(),
//!     out_trade_no: "P2026112912000000AB12CD34".into(),
//!     payer_openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
//!     trade_type: "NATIVE".into(),
//!     trade_state: "SUCCESS".into(),
//!     description: "简历精修".into(),
//!     attach: String::new(),
//!     amount_fen: 19900,
//!     refund: None,
//! };
//! let mut file = Vec::new();
//! write_trade_bill([payment], &mut file)?;
//! verify_bill_hash(&file[..], false, &bill_hash(&file[..], false)?)?;
//!
//! let mut reader = TradeBillReader::new(&file[..], false);
//! for row in reader.by_ref() {
//!     let row = row?;
//!     assert_eq!((row.kind, row.amount_fen), (BillRowKind::Payment, 19900));
//!     assert!(!format!("{row:?}").contains("oUpF8uMu"));
//! }
//! assert_eq!(reader.totals().map(|t| (t.count, t.payment_fen)), Some((1, 19900)));
//! # Ok(())
//! # }
//! ```

mod amount;
mod read;
mod write;

use std::io::Read;

use chrono::{DateTime, Utc};
use sha1::{Digest, Sha1};

pub use read::TradeBillReader;
pub use write::{BillRowSpec, RefundSpec, WriteOptions, write_trade_bill, write_trade_bill_with};

use crate::model::BillDownload;

/// The detail header of an `ALL` trade bill, as WeChat writes it (no backticks on headers).
pub const ALL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";

/// The summary header of an `ALL` (and `REFUND`) trade bill.
pub const ALL_SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// Payment or refund. WeChat's `ALL` bill lists both, one row each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillRowKind {
    Payment,
    Refund,
}

/// One detail row of a trade bill, typed. Payer data (用户标识), 商品名称 and 商户数据包 are
/// not here: the parser drops them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// 交易时间: payment time, or the time the refund was requested. Written in Beijing time
    /// (`yyyy-MM-dd HH:mm:ss`, +08:00).
    pub trade_time: DateTime<Utc>,
    /// 公众账号ID.
    pub appid: String,
    /// 商户号.
    pub mchid: String,
    /// 微信订单号.
    pub transaction_id: String,
    /// 商户订单号 (paygate's order number).
    pub out_trade_no: String,
    /// 交易类型: `NATIVE`, `JSAPI`, `MWEB`, `APP`, …
    pub trade_type: String,
    /// 交易状态: `SUCCESS`, `REFUND` or `REVOKED`.
    pub trade_state: String,
    /// 货币种类 (`CNY`).
    pub currency: String,
    pub kind: BillRowKind,
    /// What the merchant asked for, to compare with the local record: a payment's 订单金额
    /// (= `amount.total` of the order), a refund's 申请退款金额 (= `amount.refund` of the
    /// refund request).
    pub amount_fen: i64,
    /// What moves on the merchant's account: a payment's 应结订单金额 (订单金额 less
    /// non-recharge vouchers), a refund's 退款金额. These are what the summary row adds up.
    pub settled_fen: i64,
    /// 微信退款单号; refunds only.
    pub refund_id: Option<String>,
    /// 商户退款单号; refunds only.
    pub out_refund_no: Option<String>,
    /// 退款状态 as it was when the bill was made (`SUCCESS`, `PROCESSING`, …); refunds only.
    pub refund_status: Option<String>,
}

/// A bill's totals, as its summary row states them and its rows add up (the reader refuses a
/// bill where the two differ). Amounts in fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BillTotals {
    /// 总交易单数: detail rows, payments and refunds together.
    pub count: u64,
    /// 应结订单总金额: the sum of 应结订单金额.
    pub payment_fen: i64,
    /// 退款总金额: the sum of 退款金额 (0 in a `SUCCESS` bill).
    pub refund_fen: i64,
    /// 订单总金额: the sum of 订单金额.
    pub order_fen: i64,
    /// 申请退款总金额: the sum of 申请退款金额 (0 in a `SUCCESS` bill).
    pub requested_refund_fen: i64,
}

/// Why a bill was refused. Values read from the file are never quoted (they may be payer data);
/// errors name the line (1-based, in the uncompressed file) and the column instead.
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("reading the bill failed")]
    Io(#[source] std::io::Error),
    #[error("unsupported bill hash type {0} (expected SHA1)")]
    UnsupportedHashType(String),
    #[error("bill SHA-1 is {actual}, WeChat said {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("the bill is empty")]
    Empty,
    #[error("the bill has no column {0}")]
    MissingColumn(&'static str),
    #[error("line {line} is not UTF-8")]
    NotUtf8 { line: u64 },
    #[error("line {line} is longer than any bill line can be")]
    LineTooLong { line: u64 },
    #[error("line {line} has {found} values, the header has {expected}")]
    FieldCount {
        line: u64,
        expected: usize,
        found: usize,
    },
    #[error("line {line}: {column} is not a valid value")]
    Field { line: u64, column: &'static str },
    #[error("line {line} is neither a detail row nor the summary header")]
    UnexpectedLine { line: u64 },
    #[error("the bill ends before its summary row (truncated?)")]
    MissingSummary,
    #[error("summary {column} is {summary}, the rows add up to {rows}")]
    TotalsMismatch {
        column: &'static str,
        summary: i64,
        rows: i64,
    },
}

impl From<std::io::Error> for BillError {
    fn from(error: std::io::Error) -> Self {
        BillError::Io(error)
    }
}

/// SHA-1 of the uncompressed bill, lower-hex: what WeChat puts in `hash_value`. Streamed, for
/// the provider's side (the sandbox) and for diagnostics.
pub fn bill_hash(reader: impl Read, gzip: bool) -> Result<String, BillError> {
    let mut input = read::decoder(reader, gzip);
    let mut hasher = Sha1::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BillError::Io(e)),
        };
        hasher.update(&buffer[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks a downloaded bill against `hash_value`: SHA-1 over the **uncompressed** bytes
/// (wechatpay-v3.md §6), so a `tar_type=GZIP` download is inflated on the fly. WeChat writes
/// lower-hex; the comparison ignores case.
pub fn verify_bill_hash(reader: impl Read, gzip: bool, hash_value: &str) -> Result<(), BillError> {
    let actual = bill_hash(reader, gzip)?;
    if actual.eq_ignore_ascii_case(hash_value.trim()) {
        Ok(())
    } else {
        Err(BillError::HashMismatch {
            expected: hash_value.to_owned(),
            actual,
        })
    }
}

impl BillDownload {
    /// [`verify_bill_hash`] with this answer's hash, after checking that it is a SHA-1 (the only
    /// `hash_type` WeChat documents).
    pub fn verify_file(&self, reader: impl Read, gzip: bool) -> Result<(), BillError> {
        if !self.hash_type.eq_ignore_ascii_case("SHA1") {
            return Err(BillError::UnsupportedHashType(self.hash_type.clone()));
        }
        verify_bill_hash(reader, gzip, &self.hash_value)
    }
}
