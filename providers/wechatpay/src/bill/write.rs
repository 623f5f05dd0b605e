//! Writing a trade bill as WeChat does: the provider's side, for the sandbox and benchmarks.

use std::fmt;
use std::io::{self, BufWriter, Write};

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};

use super::amount::{Fee, Yuan};
use super::{ALL_HEADER, ALL_SUMMARY_HEADER, BillTotals};

/// 费率 written on every row; the fee of a payment is this share of its amount.
const FEE_RATE: &str = "0.60%";

/// One row to write. The provider's view of a trade, so it carries what WeChat writes and a
/// [`super::BillRow`] never holds: the payer's openid (用户标识), 商品名称 and 商户数据包.
#[derive(Clone, PartialEq, Eq)]
pub struct BillRowSpec {
    pub trade_time: DateTime<Utc>,
    pub appid: String,
    pub mchid: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    /// 用户标识: the payer's openid. Shown as `[redacted]` by `Debug`.
    pub payer_openid: String,
    /// `NATIVE`, `JSAPI`, …
    pub trade_type: String,
    /// `SUCCESS` for a payment, `REFUND` for a refund.
    pub trade_state: String,
    /// 商品名称.
    pub description: String,
    /// 商户数据包.
    pub attach: String,
    /// A payment's amount, written as both 订单金额 and 应结订单金额 (no vouchers), or a
    /// refund's, written as both 申请退款金额 and 退款金额.
    pub amount_fen: i64,
    /// `Some` for a refund row.
    pub refund: Option<RefundSpec>,
}

/// The refund columns of a refund row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSpec {
    /// 微信退款单号.
    pub refund_id: String,
    /// 商户退款单号.
    pub out_refund_no: String,
    /// 退款状态, e.g. `SUCCESS`.
    pub refund_status: String,
}

impl fmt::Debug for BillRowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BillRowSpec")
            .field("trade_time", &self.trade_time)
            .field("transaction_id", &self.transaction_id)
            .field("out_trade_no", &self.out_trade_no)
            .field("payer_openid", &"[redacted]")
            .field("trade_type", &self.trade_type)
            .field("trade_state", &self.trade_state)
            .field("amount_fen", &self.amount_fen)
            .field("refund", &self.refund)
            .finish_non_exhaustive()
    }
}

/// The formatting choices where WeChat's samples disagree (wechatpay-v3.md §9 item 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Start with the UTF-8 BOM, as the one real downloaded file we have (the PHP SDK's
    /// fixture) does.
    pub bom: bool,
    /// Write 总交易单数 as `45.0` (that fixture) rather than `12` (the doc page's sample).
    pub count_as_decimal: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            bom: true,
            count_as_decimal: false,
        }
    }
}

/// Writes an `ALL` trade bill with [`WriteOptions::default`]: the UTF-8 BOM, the detail
/// header, one backtick-prefixed row per spec, the summary header and row, every line (the
/// last included) ending in CRLF. Streams: rows are written as the iterator yields them, through
/// a buffer, so a million-row bill needs no more memory than a ten-row one. Returns the totals
/// written in the summary.
///
/// A text value with a line break or a `` ,` `` (which would split it into two values) is
/// refused with `InvalidInput`, as is a negative amount.
pub fn write_trade_bill<W: Write + ?Sized>(
    rows: impl IntoIterator<Item = BillRowSpec>,
    out: &mut W,
) -> io::Result<BillTotals> {
    write_trade_bill_with(rows, out, WriteOptions::default())
}

/// [`write_trade_bill`] with the formatting choices made explicit.
pub fn write_trade_bill_with<W: Write + ?Sized>(
    rows: impl IntoIterator<Item = BillRowSpec>,
    out: &mut W,
    options: WriteOptions,
) -> io::Result<BillTotals> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    if options.bom {
        out.write_all(b"\xEF\xBB\xBF")?;
    }
    write!(out, "{ALL_HEADER}\r\n")?;
    let mut totals = BillTotals::default();
    let mut fee_total: i64 = 0;
    for row in rows {
        let fee = write_row(&mut out, &row)?;
        totals.count += 1;
        match row.refund {
            None => {
                totals.payment_fen = sum(totals.payment_fen, row.amount_fen)?;
                totals.order_fen = sum(totals.order_fen, row.amount_fen)?;
            }
            Some(_) => {
                totals.refund_fen = sum(totals.refund_fen, row.amount_fen)?;
                totals.requested_refund_fen = sum(totals.requested_refund_fen, row.amount_fen)?;
            }
        }
        fee_total = sum(fee_total, fee)?;
    }
    write!(out, "{ALL_SUMMARY_HEADER}\r\n")?;
    let count = if options.count_as_decimal {
        format!("{}.0", totals.count)
    } else {
        totals.count.to_string()
    };
    write!(
        out,
        "`{count},`{},`{},`0.00,`{},`{},`{}\r\n",
        Yuan(totals.payment_fen),
        Yuan(totals.refund_fen),
        Fee(fee_total),
        Yuan(totals.order_fen),
        Yuan(totals.requested_refund_fen),
    )?;
    out.flush()?;
    Ok(totals)
}

/// One detail row in the order of [`ALL_HEADER`]; returns its fee in 0.00001 yuan.
fn write_row(out: &mut impl Write, row: &BillRowSpec) -> io::Result<i64> {
    if row.amount_fen < 0 {
        return Err(invalid("negative amount"));
    }
    for value in [
        &row.appid,
        &row.mchid,
        &row.transaction_id,
        &row.out_trade_no,
        &row.payer_openid,
        &row.trade_type,
        &row.trade_state,
        &row.description,
        &row.attach,
    ]
    .into_iter()
    .chain(
        row.refund
            .iter()
            .flat_map(|r| [&r.refund_id, &r.out_refund_no, &r.refund_status]),
    ) {
        if breaks_format(value) {
            return Err(invalid("a value would break the line or its columns"));
        }
    }
    let beijing = FixedOffset::east_opt(8 * 3600).ok_or_else(|| invalid("offset"))?;
    let local = row.trade_time.with_timezone(&beijing);
    let amount = Yuan(row.amount_fen);
    let zero = Yuan(0);
    // Payment rows carry `0,0,0.00,0.00,,` in the refund columns; refund rows 0.00 as their
    // 应结订单金额 and 订单金额 (wechatpay-v3.md §6, and the PHP fixture).
    let (settlement, refund_id, out_refund_no, refund, refund_type, refund_status, requested) =
        match &row.refund {
            None => (amount, "0", "0", zero, "", "", zero),
            Some(r) => (
                zero,
                r.refund_id.as_str(),
                r.out_refund_no.as_str(),
                amount,
                "ORIGINAL",
                r.refund_status.as_str(),
                amount,
            ),
        };
    let order = if row.refund.is_none() { amount } else { zero };
    // 0.60% of the amount, exactly: fen × 0.006 = fen × 6 in units of 0.00001 yuan. Refund rows
    // carry 0.00000, as in the PHP fixture.
    let fee = if row.refund.is_none() {
        row.amount_fen
            .checked_mul(6)
            .ok_or_else(|| invalid("amount"))?
    } else {
        0
    };
    write!(
        out,
        "`{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02},`{appid},`{mchid},`0,`,`{transaction_id},`{out_trade_no},`{payer},`{trade_type},\
         `{trade_state},`OTHERS,`CNY,`{settlement},`0.00,`{refund_id},`{out_refund_no},`{refund},\
         `0.00,`{refund_type},`{refund_status},`{description},`{attach},`{fee},`{FEE_RATE},\
         `{order},`{requested},`\r\n",
        year = local.year(),
        month = local.month(),
        day = local.day(),
        hour = local.hour(),
        minute = local.minute(),
        second = local.second(),
        appid = row.appid,
        mchid = row.mchid,
        transaction_id = row.transaction_id,
        out_trade_no = row.out_trade_no,
        payer = row.payer_openid,
        trade_type = row.trade_type,
        trade_state = row.trade_state,
        description = row.description,
        attach = row.attach,
        fee = Fee(fee),
    )?;
    Ok(fee)
}

/// A line break ends the row, and `` ,` `` starts a new value: either would shift every column
/// after it. (A plain loop: `str::contains` with a pattern is generic and slow in a debug build,
/// where the tests write bills of 200,000 rows.)
fn breaks_format(value: &str) -> bool {
    let bytes = value.as_bytes();
    for (i, byte) in bytes.iter().enumerate() {
        match byte {
            b'\r' | b'\n' => return true,
            b',' if bytes.get(i + 1) == Some(&b'`') => return true,
            _ => {}
        }
    }
    false
}

fn sum(total: i64, amount: i64) -> io::Result<i64> {
    total
        .checked_add(amount)
        .ok_or_else(|| invalid("totals overflow"))
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}
