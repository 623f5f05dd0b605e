//! Reading a trade bill: the ZIP's detail entry, one GBK line at a time.

use std::io::{Read, Seek};

use chrono::NaiveDateTime;
use encoding_rs::GBK;
use zip::ZipArchive;

use super::format::{
    ACCOUNT_PREFIX, DETAIL_SUFFIX, FINISHED_AT, HEADER_TIME, KIND, KIND_PAYMENT, KIND_REFUND,
    ORDER_AMOUNT, OUT_REQUEST_NO, OUT_TRADE_NO, PAYMENT_FOOTER, PERIOD_END, PERIOD_PREFIX,
    RECEIVED, REFUND_FOOTER, TRADE_NO, normalize_header, parse_amount, split_fields,
};
use super::lines::Lines;
use super::{BillError, BillRow, BillRowKind, BillTotals};
use crate::time::parse_beijing_time;

/// The ZIP's general-purpose flag bit 11: the entry name is UTF-8.
const UTF8_NAME_FLAG: u16 = 0x0800;

/// A downloaded trade bill, its detail entry found.
///
/// ```no_run
/// # fn main() -> Result<(), paygate_alipay::bill::BillError> {
/// use paygate_alipay::bill::TradeBillReader;
///
/// let file = std::fs::File::open("20880211096256330156_20190916.csv.zip").unwrap();
/// let mut bill = TradeBillReader::open(file)?;
/// let mut rows = bill.rows()?;
/// for row in &mut rows {
///     let row = row?; // any error refuses the whole bill
///     # let _ = row;
/// }
/// let totals = rows.totals().expect("checked once every row was read");
/// # let _ = totals;
/// # Ok(())
/// # }
/// ```
pub struct TradeBillReader<R> {
    archive: ZipArchive<R>,
    index: usize,
    entry_name: String,
}

impl<R> std::fmt::Debug for TradeBillReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradeBillReader")
            .field("entry_name", &self.entry_name)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> TradeBillReader<R> {
    /// Reads the ZIP's directory and finds the one entry whose name ends in `_业务明细.csv` (the
    /// summary, `…_业务明细(汇总).csv`, does not). Alipay writes entry names in GBK without the
    /// UTF-8 flag; other tools write UTF-8, with or without it: both are read.
    pub fn open(reader: R) -> Result<TradeBillReader<R>, BillError> {
        let archive = ZipArchive::new(reader).map_err(BillError::Zip)?;
        let mut found = None;
        for index in 0..archive.len() {
            let entry = archive.by_index_data(index).map_err(BillError::Zip)?;
            let utf8_flag = entry.flags().as_u16() & UTF8_NAME_FLAG != 0;
            if let Some(name) = detail_entry_name(entry.name_raw(), utf8_flag) {
                if found.is_some() {
                    return Err(BillError::SeveralDetailEntries);
                }
                found = Some((index, name));
            }
        }
        let (index, entry_name) = found.ok_or(BillError::NoDetailEntry)?;
        Ok(TradeBillReader {
            archive,
            index,
            entry_name,
        })
    }

    /// The detail entry's name, decoded.
    pub fn entry_name(&self) -> &str {
        &self.entry_name
    }

    /// Starts reading the detail entry: the `#` lines and the column header are read now (a
    /// bill without the columns paygate needs is refused here), the rows as they are asked for.
    pub fn rows(&mut self) -> Result<TradeBillRows<'_>, BillError> {
        TradeBillRows::from_csv(self.detail_entry()?)
    }

    /// The detail entry's inflated bytes, for a caller that reads them through its own bounds
    /// (size, lines) before [`TradeBillRows::from_csv`].
    pub fn detail_entry(&mut self) -> Result<impl Read + '_, BillError> {
        self.archive.by_index(self.index).map_err(BillError::Zip)
    }
}

/// The name of a detail entry, or `None` for any other entry.
fn detail_entry_name(raw: &[u8], utf8_flag: bool) -> Option<String> {
    let utf8 = || std::str::from_utf8(raw).ok().map(str::to_owned);
    let gbk = || {
        GBK.decode_without_bom_handling_and_without_replacement(raw)
            .map(|name| name.into_owned())
    };
    let is_detail = |name: &String| name.ends_with(DETAIL_SUFFIX);
    if utf8_flag {
        return utf8().filter(is_detail);
    }
    // Unflagged: GBK as Alipay writes it, else UTF-8 as many zip tools write it unflagged. A
    // name that is not the detail entry in one reading is not it in the other either: the
    // suffix's bytes differ between the two encodings.
    gbk().filter(is_detail).or_else(|| utf8().filter(is_detail))
}

/// Column positions, found by header name.
struct Columns {
    count: usize,
    trade_no: usize,
    out_trade_no: usize,
    kind: usize,
    finished_at: usize,
    amount: usize,
    received: usize,
    out_request_no: usize,
}

impl Columns {
    fn from_header(line: &str, line_no: u64) -> Result<Columns, BillError> {
        let names: Vec<String> = split_fields(line)
            .ok_or(BillError::Quote { line: line_no })?
            .iter()
            .map(|name| normalize_header(name))
            .collect();
        let find = |wanted: &'static str| -> Result<usize, BillError> {
            let mut at = names.iter().enumerate().filter(|(_, n)| *n == wanted);
            let (index, _) = at.next().ok_or(BillError::MissingColumn(wanted))?;
            if at.next().is_some() {
                return Err(BillError::RepeatedColumn(wanted));
            }
            Ok(index)
        };
        Ok(Columns {
            count: names.len(),
            trade_no: find(TRADE_NO)?,
            out_trade_no: find(OUT_TRADE_NO)?,
            kind: find(KIND)?,
            finished_at: find(FINISHED_AT)?,
            amount: find(ORDER_AMOUNT)?,
            received: find(RECEIVED)?,
            out_request_no: find(OUT_REQUEST_NO)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between the column header and the first `#` line after it.
    Rows,
    /// Past the end of the rows: only `#` lines (the end marker, the totals, the export time).
    Footer,
    /// Exhausted and checked; `totals` is set.
    Done,
    /// An error was returned; nothing more is read.
    Failed,
}

/// The rows of a detail CSV, read and checked one line at a time.
///
/// Yields every row, then `None` once the file's footer totals are found to match the rows; a
/// bill whose totals do not add up, or that lacks them, ends with an error instead. After an
/// error the iterator yields nothing more.
pub struct TradeBillRows<'a> {
    lines: Lines<'a>,
    columns: Columns,
    account: Option<String>,
    period: Option<(NaiveDateTime, NaiveDateTime)>,
    tally: Tally,
}

impl std::fmt::Debug for TradeBillRows<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradeBillRows")
            .field("line", &self.lines.number)
            .field("state", &self.tally.state)
            .field("totals", &self.tally.totals)
            .finish_non_exhaustive()
    }
}

impl<'a> TradeBillRows<'a> {
    /// Reads a detail CSV already out of its ZIP (GBK bytes): the `#` lines and the column
    /// header now, the rows as they are asked for.
    pub fn from_csv(reader: impl Read + 'a) -> Result<TradeBillRows<'a>, BillError> {
        let mut lines = Lines::new(reader);
        let (mut account, mut period) = (None, None);
        let columns = loop {
            let (number, text) = lines.next()?.ok_or(BillError::NoHeader)?;
            if text.starts_with('#') {
                read_preamble(text, &mut account, &mut period);
            } else if !text.trim().is_empty() {
                break Columns::from_header(text, number)?;
            }
        };
        Ok(TradeBillRows {
            lines,
            columns,
            account,
            period,
            tally: Tally {
                state: State::Rows,
                counted: BillTotals::default(),
                payment_footer: None,
                refund_footer: None,
                totals: None,
            },
        })
    }

    /// The merchant account of the `#账号：[…]` line (the merchant's own PID + `0156`, not a
    /// payer), when the bill has that line.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The `#起始日期：[…]   终止日期：[…]` period, Beijing time, when the bill has that line:
    /// a daily bill of 2019-09-16 runs from 2019-09-16 00:00:00 to 2019-09-17 00:00:00.
    pub fn period(&self) -> Option<(NaiveDateTime, NaiveDateTime)> {
        self.period
    }

    /// The bill's totals, once every row has been read and they were found to match the footer
    /// lines; `None` before that, or after an error.
    pub fn totals(&self) -> Option<BillTotals> {
        self.tally.totals
    }

    fn advance(&mut self) -> Result<Option<BillRow>, BillError> {
        while let Some((number, text)) = self.lines.next()? {
            if let Some(row) = self.tally.read_line(number, text, &self.columns)? {
                return Ok(Some(row));
            }
        }
        self.tally.totals = Some(self.tally.check()?);
        Ok(None)
    }
}

/// The `#` lines before the column header: the account and the period; the title and the
/// marker line are skipped.
fn read_preamble(
    line: &str,
    account: &mut Option<String>,
    period: &mut Option<(NaiveDateTime, NaiveDateTime)>,
) {
    if let Some(value) = line.strip_prefix(ACCOUNT_PREFIX) {
        *account = bracketed(value).map(str::to_owned);
    } else if let Some(value) = line.strip_prefix(PERIOD_PREFIX) {
        *period = value.split_once(PERIOD_END).and_then(|(start, end)| {
            let time = |t: &str| {
                bracketed(t.trim()).and_then(|t| NaiveDateTime::parse_from_str(t, HEADER_TIME).ok())
            };
            Some((time(start)?, time(end)?))
        });
    }
}

/// `[value]` → `value`.
fn bracketed(text: &str) -> Option<&str> {
    text.trim().strip_prefix('[')?.strip_suffix(']')
}

/// What the rows have added up to so far, and what the footer says they should.
struct Tally {
    state: State,
    counted: BillTotals,
    payment_footer: Option<(u64, i64)>,
    refund_footer: Option<(u64, i64)>,
    totals: Option<BillTotals>,
}

impl Tally {
    /// A row, or `None` for a line that is not one (blank, `#`).
    fn read_line(
        &mut self,
        line: u64,
        text: &str,
        columns: &Columns,
    ) -> Result<Option<BillRow>, BillError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        if text.starts_with('#') {
            // The first `#` line ends the rows (it is the end marker in Alipay's files).
            self.state = State::Footer;
            self.read_footer(line, text)?;
            return Ok(None);
        }
        if self.state == State::Footer {
            return Err(BillError::RowAfterFooter { line });
        }
        let row = read_row(line, text, columns)?;
        self.counted.add(row.kind, row.received_fen)?;
        Ok(Some(row))
    }

    fn read_footer(&mut self, line: u64, text: &str) -> Result<(), BillError> {
        for (footer, slot, kind) in [
            (
                &PAYMENT_FOOTER,
                &mut self.payment_footer,
                BillRowKind::Payment,
            ),
            (&REFUND_FOOTER, &mut self.refund_footer, BillRowKind::Refund),
        ] {
            if !text.starts_with(footer.prefix) {
                continue;
            }
            let refused = || BillError::Footer {
                line,
                footer: footer.name,
            };
            let (count, fen) = footer.parse(text).ok_or_else(refused)?;
            // Payments add up to a positive sum, refunds to a negative one (or zero).
            let fen = match kind {
                BillRowKind::Payment if fen >= 0 => fen,
                BillRowKind::Refund if fen <= 0 => -fen,
                _ => return Err(refused()),
            };
            if slot.replace((count, fen)).is_some() {
                return Err(refused());
            }
        }
        Ok(())
    }

    /// The rows' totals, when the footer lines are there and state the same.
    fn check(&self) -> Result<BillTotals, BillError> {
        let payment = self
            .payment_footer
            .ok_or(BillError::MissingFooter(PAYMENT_FOOTER.name))?;
        let refund = self
            .refund_footer
            .ok_or(BillError::MissingFooter(REFUND_FOOTER.name))?;
        let counted = self.counted;
        for (kind, (footer_rows, footer_fen), rows, fen) in [
            (
                BillRowKind::Payment,
                payment,
                counted.payments,
                counted.payment_fen,
            ),
            (
                BillRowKind::Refund,
                refund,
                counted.refunds,
                counted.refund_fen,
            ),
        ] {
            if (rows, fen) != (footer_rows, footer_fen) {
                return Err(BillError::TotalsMismatch {
                    kind,
                    rows,
                    fen,
                    footer_rows,
                    footer_fen,
                });
            }
        }
        Ok(counted)
    }
}

/// One detail line as a row; every other column (the payer's among them) is dropped here.
fn read_row(line: u64, text: &str, columns: &Columns) -> Result<BillRow, BillError> {
    let fields = split_fields(text).ok_or(BillError::Quote { line })?;
    if fields.len() != columns.count {
        return Err(BillError::FieldCount {
            line,
            expected: columns.count,
            found: fields.len(),
        });
    }
    let c = columns;
    let kind = match &*fields[c.kind] {
        KIND_PAYMENT => BillRowKind::Payment,
        KIND_REFUND => BillRowKind::Refund,
        _ => return Err(BillError::Kind { line }),
    };
    let required = |index: usize, column: &'static str| -> Result<String, BillError> {
        let value = &fields[index];
        if value.is_empty() {
            Err(BillError::Field { line, column })
        } else {
            Ok(value.to_string())
        }
    };
    let amount = |index: usize, column: &'static str| -> Result<i64, BillError> {
        let fen = parse_amount(&fields[index]).map_err(|source| BillError::Amount {
            line,
            column,
            source,
        })?;
        match kind {
            BillRowKind::Payment if fen >= 0 => Ok(fen),
            BillRowKind::Refund if fen <= 0 => Ok(-fen),
            _ => Err(BillError::Sign { line, column, kind }),
        }
    };
    let trade_time = parse_beijing_time(&fields[c.finished_at]).ok_or(BillError::Field {
        line,
        column: FINISHED_AT,
    })?;
    let out_request_no = match kind {
        BillRowKind::Refund => Some(&fields[c.out_request_no])
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string()),
        BillRowKind::Payment => None,
    };
    Ok(BillRow {
        trade_time,
        trade_no: required(c.trade_no, TRADE_NO)?,
        // Empty for a payment that was not a merchant order (a collection code, a QR sticker):
        // still a row of the bill, and its totals.
        out_trade_no: Some(&fields[c.out_trade_no])
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string()),
        kind,
        amount_fen: amount(c.amount, ORDER_AMOUNT)?,
        received_fen: amount(c.received, RECEIVED)?,
        out_request_no,
    })
}

impl Iterator for TradeBillRows<'_> {
    type Item = Result<BillRow, BillError>;

    fn next(&mut self) -> Option<Self::Item> {
        if matches!(self.tally.state, State::Done | State::Failed) {
            return None;
        }
        match self.advance() {
            Ok(Some(row)) => Some(Ok(row)),
            Ok(None) => {
                self.tally.state = State::Done;
                None
            }
            Err(error) => {
                self.tally.state = State::Failed;
                self.tally.totals = None;
                Some(Err(error))
            }
        }
    }
}

impl std::iter::FusedIterator for TradeBillRows<'_> {}
