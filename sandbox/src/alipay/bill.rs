//! Alipay trade bills (alipay.md §7) made from the sandbox's ledger:
//! `alipay.data.dataservice.bill.downloadurl.query` through gateway.do, and the download its
//! `bill_download_url` points to, `GET /sandbox/alipay/bill/download?token=…`.
//!
//! The bill of a Beijing day lists every payment whose `gmt_payment` falls in it (业务类型 交易)
//! and every refund that *completed* in it (退款, its `gmt_refund_pay`; the sandbox's Alipay
//! refunds complete at once), written by `wire::alipay_bill::write_trade_bill_zip` for
//! the account `<seller_id>0156`, with the buyer's `buyer_logon_id` in 对方账户, so a gateway
//! test can show the parser drops it.
//!
//! The query is checked and answered like every gateway.do call (app signature, API faults,
//! signed answer); the download is a plain GET whose token is the only key, as Alipay's.

use std::io::{Cursor, Read as _, Write as _};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use encoding_rs::GBK;
use serde_json::{Map, Value, json};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::{AlipaySim, Failure, Outcome, TradeState};
use crate::bill::{
    BAD_ENCODING_MARKER, BillDay, BillProvider, IssuedBill, TokenError, file_response, public_base,
    query_value, replace_once,
};
use crate::faults::Faults;
use crate::wire::alipay_bill::{BillRow as BillRowSpec, BillRowKind, write_trade_bill_zip};
use crate::{Sandbox, lock};

/// Where a `bill_download_url` points, under the sandbox's public base.
pub(crate) const DOWNLOAD_PATH: &str = "/sandbox/alipay/bill/download";

/// How long a `bill_download_url` works, by the sandbox clock (alipay.md §7).
pub const ALIPAY_BILL_URL_SECS: i64 = 30;

/// The earliest daily bill Alipay keeps (alipay.md §7).
const FIRST_BILL_DATE: (i32, u32, u32) = (2016, 1, 1);

/// What the `bill_bad_encoding` fault puts in place of one row's payer account: never GBK (no
/// GBK sequence has the byte 0xFF).
const NOT_GBK: &[u8] = b"\xFF\xFF";

/// The amount of the `bill_extra_row` fault's payment: 1.00 yuan.
const FOREIGN_AMOUNT_FEN: i64 = 100;

/// Business fields of the query (alipay.md §7): the two the bill needs.
const ALLOWED_BILL_FIELDS: &[&str] = &["bill_type", "bill_date"];

/// The invalid-argument answer. alipay.md lists only the old English code, spelt
/// `INVAILID_ARGUMENTS`; what the live gateway answers today is unconfirmed [?].
fn invalid_arguments(sub_msg: &str) -> Failure {
    Failure::business("INVAILID_ARGUMENTS", sub_msg)
}

impl Sandbox {
    /// `alipay.data.dataservice.bill.downloadurl.query`: the file made now under the current
    /// faults, kept behind a new token for [`ALIPAY_BILL_URL_SECS`].
    pub(super) fn alipay_bill_url(
        &self,
        sim: &AlipaySim,
        biz: &Map<String, Value>,
        headers: &HeaderMap,
    ) -> Result<Outcome, Failure> {
        if let Some(key) = biz
            .keys()
            .find(|key| !ALLOWED_BILL_FIELDS.contains(&key.as_str()))
        {
            return Err(invalid_arguments(&format!(
                "sandbox: field `{key}` is not simulated"
            )));
        }
        if biz.get("bill_type").and_then(Value::as_str) != Some("trade") {
            // `signcustomer` (the balance bill) exists at Alipay; paygate reconciles trades only.
            return Err(invalid_arguments("bill_type仅支持trade"));
        }
        let date = biz.get("bill_date").and_then(Value::as_str).unwrap_or("");
        let day = parse_bill_date(date)?;
        let faults = self.faults();
        // Real Alipay has a day's bill from about 09:00-10:00 the next day and refuses today's
        // as an invalid argument; the sandbox serves it at once (design §7), today's included:
        // only a day still to come has none.
        if faults.bill_not_ready || day.date > self.bill_today() {
            return Err(Failure::business("isp.bill_not_exist", "账单不存在"));
        }
        let bytes = self.alipay_bill_zip(sim, &day, &faults).map_err(|error| {
            tracing::error!(error = %error, "sandbox: writing an Alipay bill failed");
            Failure {
                code: "20000",
                msg: "Service Currently Unavailable",
                sub_code: "isp.unknow-error",
                sub_msg: "系统繁忙".to_owned(),
            }
        })?;
        let now = self.now();
        let expires_at = if faults.bill_url_expired {
            now
        } else {
            now + chrono::Duration::seconds(ALIPAY_BILL_URL_SECS)
        };
        let token = self.bill_tokens().issue(
            IssuedBill {
                provider: BillProvider::Alipay,
                bytes,
                file_name: format!("{}_{}.csv.zip", account(sim), day.stamp()),
                expires_at,
            },
            now,
        );
        tracing::info!(bill_date = %day.date, "sandbox: Alipay trade bill issued");
        Ok(Outcome::Success(vec![(
            "bill_download_url",
            json!(format!(
                "{}{DOWNLOAD_PATH}?token={token}",
                public_base(headers)
            )),
        )]))
    }

    /// The trade bill ZIP of `date` (a Beijing date) as the download would serve it now: the
    /// Alipay ledger's payments and refunds of that day under the current faults (rows,
    /// `bill_truncated`, `bill_bad_encoding`; `bill_not_ready` and `bill_url_expired`, about
    /// the API, do not change the bytes). Any date has one, a future one included (empty). An
    /// error without the Alipay half.
    pub fn alipay_bill(&self, date: NaiveDate) -> anyhow::Result<Vec<u8>> {
        let sim = self
            .inner
            .alipay
            .get()
            .ok_or_else(|| anyhow::anyhow!("the Alipay half is not configured"))?;
        let day = BillDay::new(date).ok_or_else(|| anyhow::anyhow!("date out of range"))?;
        self.alipay_bill_zip(sim, &day, &self.faults())
    }

    /// The ZIP, written by `wire::alipay_bill`, then spoiled or cut as the faults say.
    fn alipay_bill_zip(
        &self,
        sim: &AlipaySim,
        day: &BillDay,
        faults: &Faults,
    ) -> anyhow::Result<Vec<u8>> {
        let mut rows = self.alipay_bill_rows(sim, day, faults);
        let bad_encoding = faults.bill_bad_encoding && !rows.is_empty();
        if bad_encoding {
            rows[0].payer_account = BAD_ENCODING_MARKER.to_owned();
        }
        let mut file = write_trade_bill_zip(&account(sim), day.date, &rows)?;
        if bad_encoding {
            file = replace_in_entries(&file, BAD_ENCODING_MARKER.as_bytes(), NOT_GBK)?;
        }
        if faults.bill_truncated {
            // Half a ZIP has no central directory: unreadable as a whole, as a cut download is.
            file.truncate(file.len() / 2);
        }
        Ok(file)
    }

    /// The day's rows, oldest first: payments by `gmt_payment`, refunds by when they completed.
    fn alipay_bill_rows(
        &self,
        sim: &AlipaySim,
        day: &BillDay,
        faults: &Faults,
    ) -> Vec<BillRowSpec> {
        let names = |fault: &Option<String>, no: &str| fault.as_deref() == Some(no);
        let mut rows = Vec::new();
        for order in lock(&sim.orders).values() {
            let TradeState::Success(payment) = &order.state else {
                continue;
            };
            let row = |kind, finished_at, amount_fen, out_request_no| BillRowSpec {
                trade_no: order.trade_no.clone(),
                out_trade_no: order.out_trade_no.clone(),
                kind,
                subject: bill_text(&order.subject),
                created_at: order.created_at,
                finished_at,
                payer_account: payment.buyer_logon_id.clone(),
                amount_fen,
                out_request_no,
            };
            // `bill_altered_status` does not apply: this bill has no status column.
            if day.contains(payment.paid_at)
                && !names(&faults.bill_missing_row, &order.out_trade_no)
            {
                let amount = order.total_fen
                    + i64::from(names(&faults.bill_altered_amount, &order.out_trade_no));
                rows.push(row(BillRowKind::Payment, payment.paid_at, amount, None));
                if names(&faults.bill_duplicate_row, &order.out_trade_no) {
                    rows.push(row(BillRowKind::Payment, payment.paid_at, amount, None));
                }
            }
            for refund in order.refunds.iter().filter(|r| day.contains(r.refunded_at)) {
                rows.push(row(
                    BillRowKind::Refund,
                    refund.refunded_at,
                    refund.refund_fen,
                    Some(refund.out_request_no.clone()),
                ));
            }
        }
        if faults.bill_extra_row {
            rows.push(BillRowSpec {
                trade_no: format!("{}22009999990000000001", day.stamp()),
                out_trade_no: day.foreign_out_trade_no(),
                kind: BillRowKind::Payment,
                subject: "sandbox: a payment the merchant never issued".to_owned(),
                created_at: day.foreign_time(),
                finished_at: day.foreign_time(),
                payer_account: "100****0000".to_owned(),
                amount_fen: FOREIGN_AMOUNT_FEN,
                out_request_no: None,
            });
        }
        rows.sort_by(|a, b| {
            let refund = |r: &BillRowSpec| r.kind == BillRowKind::Refund;
            (a.finished_at, &a.out_trade_no, refund(a), &a.out_request_no).cmp(&(
                b.finished_at,
                &b.out_trade_no,
                refund(b),
                &b.out_request_no,
            ))
        });
        rows
    }
}

/// `GET /sandbox/alipay/bill/download?token=…`: the ZIP. An unknown token is 404, an expired one
/// 403 (what Alipay's file server answers is unconfirmed [?]; a client must treat any non-2xx
/// as a failed download).
pub(super) async fn download(
    State(sandbox): State<Sandbox>,
    RawQuery(query): RawQuery,
) -> Response {
    let token = query
        .as_deref()
        .and_then(|q| query_value(q, "token"))
        .unwrap_or("");
    match sandbox
        .bill_tokens()
        .open(BillProvider::Alipay, token, sandbox.now())
    {
        Ok(_) if sandbox.faults().bill_endless_download => crate::bill::endless_response(),
        Ok((bytes, file_name)) => file_response(bytes, &file_name),
        Err(TokenError::Expired) => (
            StatusCode::FORBIDDEN,
            "sandbox: this Alipay bill download URL has expired",
        )
            .into_response(),
        Err(TokenError::Unknown) => (
            StatusCode::NOT_FOUND,
            "sandbox: no Alipay bill behind this URL",
        )
            .into_response(),
    }
}

/// The account a bill is written for: the seller's PID and `0156`, as in Alipay's file names.
fn account(sim: &AlipaySim) -> String {
    format!("{}0156", sim.seller_id)
}

/// A daily `bill_date`: `yyyy-MM-dd`, from 2016-01-01.
fn parse_bill_date(date: &str) -> Result<BillDay, Failure> {
    if date.len() == 7 && NaiveDate::parse_from_str(&format!("{date}-01"), "%Y-%m-%d").is_ok() {
        return Err(invalid_arguments(
            "sandbox: monthly bills are not simulated",
        ));
    }
    let first = NaiveDate::from_ymd_opt(FIRST_BILL_DATE.0, FIRST_BILL_DATE.1, FIRST_BILL_DATE.2);
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|d| date.len() == 10 && Some(*d) >= first)
        .and_then(BillDay::new)
        .ok_or_else(|| invalid_arguments("bill_date不合法"))
}

/// 商品名称 as the GBK bill can hold it: no comma, quote or control character (the writer
/// refuses what would need quoting), nothing GBK lacks (an emoji becomes `?`), no surrounding
/// space.
fn bill_text(text: &str) -> String {
    let mut one = [0u8; 4];
    let mapped: String = text
        .chars()
        .map(|c| match c {
            ',' => '，',
            '"' => '＂',
            c if c.is_control() => ' ',
            c => {
                let (_, _, unmappable) = GBK.encode(c.encode_utf8(&mut one));
                if unmappable { '?' } else { c }
            }
        })
        .collect();
    mapped.trim().to_owned()
}

/// The same ZIP with the first `marker` in any entry replaced: entries are read, patched and
/// deflated again under their raw (GBK) names. The writer will not write bytes that are not
/// GBK, so the `bill_bad_encoding` fault does it afterwards.
fn replace_in_entries(zip: &[u8], marker: &[u8], replacement: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut archive = ZipArchive::new(Cursor::new(zip))?;
    let mut out = ZipWriter::new(Cursor::new(Vec::new()));
    let mut replaced = false;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index)?;
        let name = entry.name_raw().to_vec();
        let mut content = Vec::new();
        entry.read_to_end(&mut content)?;
        if !replaced {
            replaced = replace_once(&mut content, marker, replacement);
        }
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        out.start_file_with_options(options.name(&name))?;
        out.write_all(&content)?;
    }
    Ok(out.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::{bill_text, parse_bill_date};

    #[test]
    fn only_daily_dates_from_2016_are_taken() {
        assert_eq!(parse_bill_date("2031-03-04").unwrap().stamp(), "20310304");
        assert_eq!(parse_bill_date("2016-01-01").unwrap().stamp(), "20160101");
        for bad in [
            "",
            "2031-03",
            "20310304",
            "2031-3-4",
            "2015-12-31",
            "2031-02-30",
        ] {
            let failure = parse_bill_date(bad).err().unwrap();
            assert_eq!(failure.sub_code, "INVAILID_ARGUMENTS", "{bad}");
        }
    }

    #[test]
    fn subjects_are_made_writable_in_gbk() {
        assert_eq!(bill_text(" 职前通,\"服务\"🎉\n "), "职前通，＂服务＂?");
    }
}
