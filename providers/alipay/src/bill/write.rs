//! Writing a trade bill the way Alipay does (alipay.md §7), for the sandbox and benchmarks:
//! re-exported as `simulator::write_trade_bill_zip`.

use std::fmt::Write as _;
use std::io::{Seek, Write};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use encoding_rs::{EncoderResult, GBK};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::format::{
    ACCOUNT_PREFIX, DETAIL_COLUMNS, DETAIL_SUFFIX, HEADER_TIME, KIND_PAYMENT, KIND_REFUND,
    PAYMENT_FOOTER, PERIOD_END, PERIOD_PREFIX, REFUND_FOOTER, SUMMARY_COLUMNS, SUMMARY_SUFFIX,
    format_amount, marker,
};
use super::{BillError, BillRowKind, BillTotals};
use crate::time::beijing_time;

/// One row to write. Unlike [`BillRow`](super::BillRow) it carries what Alipay's file holds and
/// paygate never keeps: the product name and the payer's account (对方账户), so tests can plant a
/// value there and show that the parser drops it.
#[derive(Clone, PartialEq, Eq)]
pub struct BillRowSpec {
    /// `支付宝交易号`; a refund row repeats its payment's.
    pub trade_no: String,
    /// `商户订单号`.
    pub out_trade_no: String,
    pub kind: BillRowKind,
    /// `商品名称`.
    pub subject: String,
    /// `创建时间`: when the trade was created (a refund row repeats its payment's).
    pub created_at: DateTime<Utc>,
    /// `完成时间`: when the payment or the refund completed. Written to the second.
    pub finished_at: DateTime<Utc>,
    /// `对方账户`, e.g. `*三(138****0000)`.
    pub payer_account: String,
    /// Fen, positive; written negative for a refund, in both `订单金额` and `商家实收` (the
    /// simulator gives no discounts).
    pub amount_fen: i64,
    /// `退款批次号/请求号`: a refund's `out_request_no`; `None` for payments.
    pub out_request_no: Option<String>,
}

impl std::fmt::Debug for BillRowSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillRowSpec")
            .field("trade_no", &self.trade_no)
            .field("out_trade_no", &self.out_trade_no)
            .field("kind", &self.kind)
            .field("finished_at", &self.finished_at)
            .field("payer_account", &"[redacted]")
            .field("amount_fen", &self.amount_fen)
            .field("out_request_no", &self.out_request_no)
            .finish_non_exhaustive()
    }
}

/// Why a bill could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BillWriteError {
    #[error("writing the ZIP failed")]
    Zip(#[source] zip::result::ZipError),
    #[error("writing the bill failed")]
    Io(#[source] std::io::Error),
    #[error("the account must be 1-32 ASCII letters or digits")]
    Account,
    #[error(
        "row {row}: `{field}` is empty where required, holds a comma, quote, tab or line break, or has no GBK encoding"
    )]
    Text { row: u64, field: &'static str },
    #[error("row {row}: the amount must be a positive number of fen")]
    Amount { row: u64 },
    #[error("row {row}: a payment has no out_request_no")]
    OutRequestNo { row: u64 },
    #[error("the bill's amounts overflow")]
    Overflow,
}

impl From<zip::result::ZipError> for BillWriteError {
    fn from(error: zip::result::ZipError) -> BillWriteError {
        BillWriteError::Zip(error)
    }
}

impl From<std::io::Error> for BillWriteError {
    fn from(error: std::io::Error) -> BillWriteError {
        BillWriteError::Io(error)
    }
}

/// Writes the trade bill of `date` for merchant `account` (the PID + `0156`) as Alipay's ZIP:
/// `<account>_<yyyyMMdd>_业务明细.csv` and `…_业务明细(汇总).csv`, names and contents in GBK
/// (names without the UTF-8 flag), deflated. The detail file has the `#` header lines, the 25
/// columns, one line per row as it comes from `rows` (text fields followed by a TAB, refund
/// amounts negative), the end marker, the `#交易合计` / `#退款合计` lines and the export time;
/// the summary has one `合计` line. Nothing is collected, so a million rows take no more memory
/// than one (the entry must stay under 4 GiB, some 14 million rows: no ZIP64). Returns the
/// totals written in the footer.
///
/// The core has no clock: the export time is written as 06:00:00 the next day.
pub fn write_trade_bill_zip<W: Write + Seek>(
    account: &str,
    date: NaiveDate,
    rows: impl IntoIterator<Item = BillRowSpec>,
    out: W,
) -> Result<BillTotals, BillWriteError> {
    if account.is_empty()
        || account.len() > 32
        || !account.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(BillWriteError::Account);
    }
    let next_day = date
        .checked_add_days(Days::new(1))
        .ok_or(BillWriteError::Overflow)?;
    let stamp = date.format("%Y%m%d");
    let preamble = |title: &str, list: &str| {
        format!(
            "#{title}\n{ACCOUNT_PREFIX}[{account}]\n{PERIOD_PREFIX}[{}]   {PERIOD_END}[{}]\n{}\n",
            date.and_time(NaiveTime::MIN).format(HEADER_TIME),
            next_day.and_time(NaiveTime::MIN).format(HEADER_TIME),
            marker(41, list, 40),
        )
    };
    let six_am = NaiveTime::from_hms_opt(6, 0, 0).unwrap_or(NaiveTime::MIN);
    let exported = format!(
        "#导出时间：[{}]\n",
        next_day.and_time(six_am).format(HEADER_TIME)
    );
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);

    let mut zip = ZipWriter::new(out);
    let detail_name = ours(&format!("{account}_{stamp}{DETAIL_SUFFIX}"));
    zip.start_file_with_options(options.name(&detail_name))?;
    let mut head = preamble("支付宝业务明细查询", "业务明细列表");
    head.push_str(&DETAIL_COLUMNS.join(","));
    head.push('\n');
    zip.write_all(&ours(&head))?;

    let mut totals = BillTotals::default();
    let (mut text, mut line) = (String::with_capacity(512), Vec::with_capacity(512));
    for (index, row) in rows.into_iter().enumerate() {
        let number = index as u64 + 1;
        encode_row(&row, number, &mut text, &mut line)?;
        zip.write_all(&line)?;
        totals
            .add(row.kind, row.amount_fen)
            .map_err(|_: BillError| BillWriteError::Overflow)?;
    }

    let refund_total = if totals.refund_fen == 0 {
        format_amount(0)
    } else {
        format_amount(-totals.refund_fen)
    };
    let foot = format!(
        "{}\n{}{}{}{}元，商家优惠共0.00元\n{}{}{}{}元，商家优惠退款共0.00元\n{exported}",
        marker(41, "业务明细列表结束", 36),
        PAYMENT_FOOTER.prefix,
        totals.payments,
        PAYMENT_FOOTER.middle,
        format_amount(totals.payment_fen),
        REFUND_FOOTER.prefix,
        totals.refunds,
        REFUND_FOOTER.middle,
        refund_total,
    );
    zip.write_all(&ours(&foot))?;

    let net = totals
        .payment_fen
        .checked_sub(totals.refund_fen)
        .map(format_amount)
        .ok_or(BillWriteError::Overflow)?;
    let summary_name = ours(&format!("{account}_{stamp}{SUMMARY_SUFFIX}"));
    zip.start_file_with_options(options.name(&summary_name))?;
    let summary = format!(
        "{}{}\n合计,,{},{},{net},{net},0.00,0.00,0.00,0.00,0.00,{net}\n{}\n{exported}",
        preamble("支付宝业务汇总查询", "业务汇总列表"),
        SUMMARY_COLUMNS.join(","),
        totals.payments,
        totals.refunds,
        marker(40, "业务汇总列表结束", 37),
    );
    zip.write_all(&ours(&summary))?;
    zip.finish()?;
    Ok(totals)
}

/// One detail line, GBK, laid out as in Alipay's files: a TAB after the text fields (ids, the
/// type, store fields, the payer, the refund number), none after the product name, the times or
/// the amounts. `text` and `line` are reused from row to row.
fn encode_row(
    row: &BillRowSpec,
    number: u64,
    text: &mut String,
    line: &mut Vec<u8>,
) -> Result<(), BillWriteError> {
    if row.amount_fen < 0 {
        return Err(BillWriteError::Amount { row: number });
    }
    let (kind, amount) = match row.kind {
        BillRowKind::Payment => (KIND_PAYMENT, format_amount(row.amount_fen)),
        BillRowKind::Refund => (KIND_REFUND, format_amount(-row.amount_fen)),
    };
    if row.kind == BillRowKind::Payment && row.out_request_no.is_some() {
        return Err(BillWriteError::OutRequestNo { row: number });
    }
    let out_request_no = row.out_request_no.as_deref().unwrap_or("");
    let fields = [
        ("trade_no", row.trade_no.as_str(), true),
        ("out_trade_no", row.out_trade_no.as_str(), true),
        ("subject", row.subject.as_str(), false),
        ("payer_account", row.payer_account.as_str(), false),
        ("out_request_no", out_request_no, false),
    ];
    for (field, value, required) in fields {
        // Alipay's exact quoting is unknown, so nothing that would need it is written; and a
        // reader trims fields, so neither is surrounding whitespace.
        let bad = |c: char| matches!(c, ',' | '"') || c.is_control();
        if (required && value.is_empty()) || value.contains(bad) || value.trim() != value {
            return Err(BillWriteError::Text { row: number, field });
        }
    }
    text.clear();
    // Writing into a String cannot fail.
    let _ = writeln!(
        text,
        "{}\t,{}\t,{kind}\t,{},{},{},\t,\t,\t,\t,{}\t,{amount},{amount},\
         0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,{out_request_no}\t,0.00,0.00,",
        row.trade_no,
        row.out_trade_no,
        row.subject,
        beijing_time(row.created_at),
        beijing_time(row.finished_at),
        row.payer_account,
    );
    if !encode_gbk(text, line) {
        // Name the field that has no GBK encoding (the rest of the line is ASCII or ours).
        let (field, _, _) = fields
            .into_iter()
            .find(|(_, value, _)| gbk(value).is_none())
            .unwrap_or(("row", "", false));
        return Err(BillWriteError::Text { row: number, field });
    }
    Ok(())
}

/// Encodes `text` into `out` (cleared first); false when a character has no GBK encoding.
fn encode_gbk(text: &str, out: &mut Vec<u8>) -> bool {
    let mut encoder = GBK.new_encoder();
    out.clear();
    match encoder.max_buffer_length_from_utf8_without_replacement(text.len()) {
        Some(length) => out.reserve(length),
        None => return false,
    }
    let (result, _) = encoder.encode_from_utf8_to_vec_without_replacement(text, out, true);
    result == EncoderResult::InputEmpty
}

/// Our own text (the fixed Chinese of the format, ASCII digits and the checked account) in GBK,
/// where every character has an encoding.
fn ours(text: &str) -> Vec<u8> {
    GBK.encode(text).0.into_owned()
}

/// `text` in GBK, or `None` when a character has no GBK encoding.
fn gbk(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode_gbk(text, &mut out).then_some(out)
}
