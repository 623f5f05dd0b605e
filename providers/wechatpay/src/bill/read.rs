//! The streaming trade-bill parser: one line in memory at a time, columns found by header name,
//! the summary checked against the rows before the iterator ends.

use std::io::{self, BufRead, BufReader, Read};
use std::iter::FusedIterator;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use flate2::read::MultiGzDecoder;

use super::amount::{parse_count, parse_yuan};
use super::{BillError, BillRow, BillRowKind, BillTotals};

/// Far above any real line (27 short values); a line longer than this is not a bill line, and
/// reading stops there rather than buffering it whole.
const MAX_LINE: usize = 16 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Beijing time: the bill's timestamps carry no zone.
const BEIJING_SECONDS: i32 = 8 * 3600;

// Detail columns.
const TRADE_TIME: &str = "交易时间";
const APPID: &str = "公众账号ID";
const MCHID: &str = "商户号";
const TRANSACTION_ID: &str = "微信订单号";
const OUT_TRADE_NO: &str = "商户订单号";
const TRADE_TYPE: &str = "交易类型";
const TRADE_STATE: &str = "交易状态";
const CURRENCY: &str = "货币种类";
const SETTLEMENT: &str = "应结订单金额";
const ORDER: &str = "订单金额";
const REFUND_ID: &str = "微信退款单号";
const OUT_REFUND_NO: &str = "商户退款单号";
const REFUND: &str = "退款金额";
const REFUND_STATUS: &str = "退款状态";
const REQUESTED_REFUND: &str = "申请退款金额";

// Summary columns.
const COUNT_TOTAL: &str = "总交易单数";
const SETTLEMENT_TOTAL: &str = "应结订单总金额";
const REFUND_TOTAL: &str = "退款总金额";
const ORDER_TOTAL: &str = "订单总金额";
const REQUESTED_REFUND_TOTAL: &str = "申请退款总金额";

/// The uncompressed bill, buffered.
pub(crate) enum Decoder<R: Read> {
    Plain(BufReader<R>),
    Gzip(Box<BufReader<MultiGzDecoder<R>>>),
}

pub(crate) fn decoder<R: Read>(reader: R, gzip: bool) -> Decoder<R> {
    if gzip {
        Decoder::Gzip(Box::new(BufReader::new(MultiGzDecoder::new(reader))))
    } else {
        Decoder::Plain(BufReader::new(reader))
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
        }
    }
}

impl<R: Read> BufRead for Decoder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self {
            Decoder::Plain(r) => r.fill_buf(),
            Decoder::Gzip(r) => r.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match self {
            Decoder::Plain(r) => r.consume(amount),
            Decoder::Gzip(r) => r.consume(amount),
        }
    }
}

/// Where each column we read sits in a detail row.
struct Columns {
    width: usize,
    trade_time: usize,
    appid: usize,
    mchid: usize,
    transaction_id: usize,
    out_trade_no: usize,
    trade_type: usize,
    trade_state: usize,
    currency: usize,
    settlement: usize,
    order: usize,
    /// Absent from a `SUCCESS` bill, which lists no refunds.
    refunds: Option<RefundColumns>,
}

struct RefundColumns {
    refund_id: usize,
    out_refund_no: usize,
    refund: usize,
    refund_status: usize,
    requested_refund: usize,
}

impl Columns {
    fn from_header(header: &str) -> Result<Columns, BillError> {
        let names: Vec<&str> = header.split(',').collect();
        let find = |name: &'static str| {
            names
                .iter()
                .position(|n| *n == name)
                .ok_or(BillError::MissingColumn(name))
        };
        let refunds = match find(REFUND_ID) {
            Err(_) => None,
            Ok(refund_id) => Some(RefundColumns {
                refund_id,
                out_refund_no: find(OUT_REFUND_NO)?,
                refund: find(REFUND)?,
                refund_status: find(REFUND_STATUS)?,
                requested_refund: find(REQUESTED_REFUND)?,
            }),
        };
        Ok(Columns {
            width: names.len(),
            trade_time: find(TRADE_TIME)?,
            appid: find(APPID)?,
            mchid: find(MCHID)?,
            transaction_id: find(TRANSACTION_ID)?,
            out_trade_no: find(OUT_TRADE_NO)?,
            trade_type: find(TRADE_TYPE)?,
            trade_state: find(TRADE_STATE)?,
            currency: find(CURRENCY)?,
            settlement: find(SETTLEMENT)?,
            order: find(ORDER)?,
            refunds,
        })
    }
}

/// Splits a data line (detail or summary) into its values, each without its leading backtick.
/// Every value starts with `` ` ``, so values are separated by `` ,` `` rather than by `,`: a
/// comma inside a value (a product name) does not shift the columns.
fn values(line: &str) -> Option<Values<'_>> {
    line.strip_prefix('`')
        .map(|rest| Values { rest: Some(rest) })
}

/// The values of a line (a byte scan for `` ,` ``: `str::split` with a string pattern is
/// generic, and slow in the debug build the tests run).
struct Values<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let bytes = rest.as_bytes();
        for i in 0..bytes.len().saturating_sub(1) {
            if bytes[i] == b',' && bytes[i + 1] == b'`' {
                // Both are ASCII, so `i` and `i + 2` are character boundaries.
                self.rest = Some(&rest[i + 2..]);
                return Some(&rest[..i]);
            }
        }
        self.rest = None;
        Some(rest)
    }
}

/// A value that stands for "none": empty, or the `0` a payment row has in its refund-number
/// columns (wechatpay-v3.md §6).
fn is_placeholder(value: &str) -> bool {
    value.is_empty() || value == "0"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Rows,
    Done,
    Failed,
}

/// Reads a trade bill (`ALL`, or `SUCCESS` / `REFUND`) as an iterator of [`BillRow`]s.
///
/// Line by line, never holding more than one line (at most 16 KiB) and the running sums: memory
/// stays flat in the size of the bill. Tolerates a UTF-8 BOM, CRLF or LF line ends, blank
/// lines, and a last line without a line end; finds columns by header name; strips the leading
/// backtick of every value.
///
/// After the last detail row it reads the summary header and row and checks them against the
/// rows: 总交易单数 against the number of rows (written `12` or `45.0`), 应结订单总金额 against
/// the sum of 应结订单金额, and, where the bill has them, 退款总金额, 订单总金额 and 申请退款总金额
/// against 退款金额, 订单金额 and 申请退款金额, exactly in fen. Only then does the iterator end
/// (`None`) and [`TradeBillReader::totals`] answer. Any problem (a malformed value, an amount
/// with more than 2 decimals, totals that differ, a missing summary, anything after it) is
/// yielded as one `Err`, after which the iterator ends: a caller must treat the whole bill as
/// refused, not only that row.
///
/// How a row's [`BillRowKind`] is decided: a row is a refund if 交易状态 is `REFUND`, or its
/// 商户退款单号 is neither empty nor `0`, or 退款金额 or 申请退款金额 is above 0 (a payment row
/// carries `` `0,`0,`0.00 `` there). A refund row must then have both refund numbers.
pub struct TradeBillReader<R: Read> {
    input: Decoder<R>,
    line: Vec<u8>,
    line_no: u64,
    state: State,
    columns: Option<Columns>,
    sums: BillTotals,
    totals: Option<BillTotals>,
}

impl<R: Read> TradeBillReader<R> {
    /// `gzip`: the file was downloaded with `tar_type=GZIP`.
    pub fn new(reader: R, gzip: bool) -> TradeBillReader<R> {
        TradeBillReader {
            input: decoder(reader, gzip),
            line: Vec::with_capacity(1024),
            line_no: 0,
            state: State::Header,
            columns: None,
            sums: BillTotals::default(),
            totals: None,
        }
    }

    /// The checked totals, once the iterator has ended without an error; `None` before that
    /// and after an error.
    pub fn totals(&self) -> Option<BillTotals> {
        self.totals
    }

    /// Reads the next line into `self.line`, without its line end (and without the BOM on the
    /// first line). `false` at the end of the file.
    fn read_line(&mut self) -> Result<bool, BillError> {
        self.line.clear();
        let read = (&mut self.input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.line)?;
        if read == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
        } else if self.line.len() > MAX_LINE {
            return Err(BillError::LineTooLong { line: self.line_no });
        }
        if self.line_no == 1 && self.line.starts_with(UTF8_BOM) {
            self.line.drain(..UTF8_BOM.len());
        }
        Ok(true)
    }

    /// Reads up to the next non-blank line; `false` at the end of the file.
    fn next_line(&mut self) -> Result<bool, BillError> {
        loop {
            if !self.read_line()? {
                return Ok(false);
            }
            if !self.line.is_empty() {
                return Ok(true);
            }
        }
    }

    fn step(&mut self) -> Result<Option<BillRow>, BillError> {
        if self.state == State::Header {
            if !self.next_line()? {
                return Err(BillError::Empty);
            }
            let header = utf8(&self.line, self.line_no)?;
            self.columns = Some(Columns::from_header(header)?);
            self.state = State::Rows;
        }
        if self.state != State::Rows {
            return Ok(None);
        }
        if !self.next_line()? {
            return Err(BillError::MissingSummary);
        }
        let line_no = self.line_no;
        let line = utf8(&self.line, line_no)?;
        let Some(columns) = &self.columns else {
            return Err(BillError::Empty);
        };
        if line.starts_with('`') {
            return parse_row(line, columns, line_no, &mut self.sums).map(Some);
        }
        if !line.starts_with(COUNT_TOTAL) {
            return Err(BillError::UnexpectedLine { line: line_no });
        }
        let summary_header: Vec<String> = line.split(',').map(str::to_owned).collect();
        let has_refunds = columns.refunds.is_some();
        if !self.next_line()? {
            return Err(BillError::MissingSummary);
        }
        let summary = utf8(&self.line, self.line_no)?;
        let totals = check_summary(
            &summary_header,
            summary,
            self.line_no,
            has_refunds,
            &self.sums,
        )?;
        // Nothing may follow the summary: rows after the totals, or a second bill appended,
        // would be rows the totals do not cover.
        if self.next_line()? {
            return Err(BillError::UnexpectedLine { line: self.line_no });
        }
        self.totals = Some(totals);
        self.state = State::Done;
        Ok(None)
    }
}

fn utf8(line: &[u8], line_no: u64) -> Result<&str, BillError> {
    std::str::from_utf8(line).map_err(|_| BillError::NotUtf8 { line: line_no })
}

impl<R: Read> Iterator for TradeBillReader<R> {
    type Item = Result<BillRow, BillError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => None,
            Err(error) => {
                self.state = State::Failed;
                self.totals = None;
                Some(Err(error))
            }
        }
    }
}

impl<R: Read> FusedIterator for TradeBillReader<R> {}

/// One detail row; its amounts are added to `sums` (checked against the summary at the end).
fn parse_row(
    line: &str,
    columns: &Columns,
    line_no: u64,
    sums: &mut BillTotals,
) -> Result<BillRow, BillError> {
    // At most `width` values are kept (a few dozen short slices into the line); a longer line is
    // refused by its count.
    let mut fields: Vec<&str> = Vec::with_capacity(columns.width);
    let mut found = 0;
    for value in values(line).ok_or(BillError::UnexpectedLine { line: line_no })? {
        found += 1;
        if found <= columns.width {
            fields.push(value);
        }
    }
    if found != columns.width {
        return Err(BillError::FieldCount {
            line: line_no,
            expected: columns.width,
            found,
        });
    }
    let field = |column: &'static str| BillError::Field {
        line: line_no,
        column,
    };
    let text = |index: usize, column: &'static str| {
        let value = fields[index];
        if value.is_empty() {
            Err(field(column))
        } else {
            Ok(value.to_owned())
        }
    };
    let amount =
        |index: usize, column: &'static str| parse_yuan(fields[index]).ok_or(field(column));

    let trade_time = parse_time(fields[columns.trade_time]).ok_or(field(TRADE_TIME))?;
    let trade_state = text(columns.trade_state, TRADE_STATE)?;
    let settlement = amount(columns.settlement, SETTLEMENT)?;
    let order = amount(columns.order, ORDER)?;

    let (kind, amount_fen, settled_fen, refund_id, out_refund_no, refund_status) =
        match &columns.refunds {
            None if trade_state == "REFUND" => return Err(field(REFUND_ID)),
            None => (BillRowKind::Payment, order, settlement, None, None, None),
            Some(refunds) => {
                let refund = amount(refunds.refund, REFUND)?;
                let requested = amount(refunds.requested_refund, REQUESTED_REFUND)?;
                add(&mut sums.refund_fen, refund).ok_or(field(REFUND))?;
                add(&mut sums.requested_refund_fen, requested).ok_or(field(REQUESTED_REFUND))?;
                let is_refund = trade_state == "REFUND"
                    || !is_placeholder(fields[refunds.out_refund_no])
                    || refund > 0
                    || requested > 0;
                if is_refund {
                    let refund_id = fields[refunds.refund_id];
                    let out_refund_no = fields[refunds.out_refund_no];
                    if is_placeholder(refund_id) {
                        return Err(field(REFUND_ID));
                    }
                    if is_placeholder(out_refund_no) {
                        return Err(field(OUT_REFUND_NO));
                    }
                    let status = fields[refunds.refund_status];
                    (
                        BillRowKind::Refund,
                        requested,
                        refund,
                        Some(refund_id.to_owned()),
                        Some(out_refund_no.to_owned()),
                        (!status.is_empty()).then(|| status.to_owned()),
                    )
                } else {
                    (BillRowKind::Payment, order, settlement, None, None, None)
                }
            }
        };

    sums.count += 1;
    add(&mut sums.payment_fen, settlement).ok_or(field(SETTLEMENT))?;
    add(&mut sums.order_fen, order).ok_or(field(ORDER))?;

    Ok(BillRow {
        trade_time,
        appid: text(columns.appid, APPID)?,
        mchid: text(columns.mchid, MCHID)?,
        transaction_id: text(columns.transaction_id, TRANSACTION_ID)?,
        out_trade_no: text(columns.out_trade_no, OUT_TRADE_NO)?,
        trade_type: text(columns.trade_type, TRADE_TYPE)?,
        trade_state,
        currency: text(columns.currency, CURRENCY)?,
        kind,
        amount_fen,
        settled_fen,
        refund_id,
        out_refund_no,
        refund_status,
    })
}

/// Adds to a running sum; a sum past `i64` fen is no real bill, refused at the row that
/// overflows it.
fn add(sum: &mut i64, amount: i64) -> Option<()> {
    *sum = sum.checked_add(amount)?;
    Some(())
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time, exactly that shape (read by hand: it is on every row
/// and a format-string parser costs more than the rest of the row).
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let b = value.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let number = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |n, c| n * 10 + u32::from(c - b'0'))
    };
    let year = i32::try_from(number(0, 4)).ok()?;
    let local = NaiveDate::from_ymd_opt(year, number(5, 7), number(8, 10))?.and_hms_opt(
        number(11, 13),
        number(14, 16),
        number(17, 19),
    )?;
    let beijing = FixedOffset::east_opt(BEIJING_SECONDS)?;
    local
        .and_local_timezone(beijing)
        .single()
        .map(|time| time.with_timezone(&Utc))
}

/// The summary row, read by its header's names and checked against the rows' sums.
fn check_summary(
    header: &[String],
    line: &str,
    line_no: u64,
    has_refunds: bool,
    sums: &BillTotals,
) -> Result<BillTotals, BillError> {
    let values: Vec<&str> = values(line)
        .ok_or(BillError::UnexpectedLine { line: line_no })?
        .take(header.len() + 1)
        .collect();
    if values.len() != header.len() {
        return Err(BillError::FieldCount {
            line: line_no,
            expected: header.len(),
            found: values.len(),
        });
    }
    let value = |name: &'static str| header.iter().position(|n| n == name).map(|i| values[i]);
    let field = |column: &'static str| BillError::Field {
        line: line_no,
        column,
    };
    let check = |name: &'static str, summary: i64, rows: i64| {
        if summary == rows {
            Ok(summary)
        } else {
            Err(BillError::TotalsMismatch {
                column: name,
                summary,
                rows,
            })
        }
    };
    let total = |name: &'static str, rows: i64| {
        let text = value(name).ok_or(BillError::MissingColumn(name))?;
        let summary = parse_yuan(text).ok_or(field(name))?;
        check(name, summary, rows)
    };

    let count_text = value(COUNT_TOTAL).ok_or(BillError::MissingColumn(COUNT_TOTAL))?;
    let count = parse_count(count_text).ok_or(field(COUNT_TOTAL))?;
    let rows = i64::try_from(sums.count).map_err(|_| field(COUNT_TOTAL))?;
    check(COUNT_TOTAL, count, rows)?;
    let payment_fen = total(SETTLEMENT_TOTAL, sums.payment_fen)?;
    // 订单总金额 is in every documented summary; checked whenever it is there, as 订单金额 is
    // what `BillRow::amount_fen` of a payment holds.
    let order_fen = match value(ORDER_TOTAL) {
        Some(_) => total(ORDER_TOTAL, sums.order_fen)?,
        None => sums.order_fen,
    };
    let (refund_fen, requested_refund_fen) = if has_refunds {
        let refund_fen = total(REFUND_TOTAL, sums.refund_fen)?;
        let requested = match value(REQUESTED_REFUND_TOTAL) {
            Some(_) => total(REQUESTED_REFUND_TOTAL, sums.requested_refund_fen)?,
            None => sums.requested_refund_fen,
        };
        (refund_fen, requested)
    } else if value(REFUND_TOTAL).is_some() {
        // A summary of refunds over rows that have no refund columns: not a format we know.
        return Err(BillError::MissingColumn(REFUND));
    } else {
        (0, 0)
    };
    Ok(BillTotals {
        count: sums.count,
        payment_fen,
        refund_fen,
        order_fen,
        requested_refund_fen,
    })
}
