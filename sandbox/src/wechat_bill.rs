//! WeChat Pay trade bills (wechatpay-v3.md §6) made from the sandbox's ledger:
//! `GET /v3/bill/tradebill?bill_date=&bill_type=ALL[&tar_type=GZIP]` and the download it points
//! to, `GET /v3/billdownload/file?token=…`.
//!
//! The bill of a Beijing day lists every payment whose `success_time` falls in it (交易状态
//! `SUCCESS`) and every refund *requested* in it (its 交易时间 is the refund's `create_time`,
//! its 退款状态 what the refund is when the bill is made: `PROCESSING`, `SUCCESS`, `CLOSED` or
//! `ABNORMAL`), written by `wire::wechat_bill` with the buyer's openid in 用户标识, so a gateway
//! test can show the parser drops it. 手续费 is 0.60% of a payment, rounded to the fen as the
//! published bill's fees are; refunds carry none.
//!
//! Both requests are authenticated like every API call (the download's signature covers its
//! path and query, `/v3/billdownload/file?token=…`). The bill request is answered signed; the
//! download is answered with the raw file and no signature, as WeChat does.

use std::io::Write as _;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use chrono::NaiveDate;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;

use crate::Sandbox;
use crate::bill::{
    BAD_ENCODING_MARKER, BillDay, BillProvider, IssuedBill, TokenError, public_base, query_value,
    replace_once,
};
use crate::faults::Faults;
use crate::wechat::{API_PREFIX, Answer, ApiError, OrderState};
use crate::wire::wechat_bill::{TradeBillRow, sha1_hex, write_trade_bill};
use crate::{bill, lock};

/// How long a `download_url` works, by the sandbox clock: WeChat's current docs say 5 minutes
/// (older ones 30 s, wechatpay-v3.md §9).
pub const WECHAT_BILL_URL_SECS: i64 = 5 * 60;

/// What the `bill_bad_encoding` fault puts in place of one row's openid: never valid UTF-8.
const NOT_UTF8: &[u8] = b"\xFF\xFE\xFD";

/// The amount of the `bill_extra_row` fault's payment: 1.00 yuan.
const FOREIGN_AMOUNT_FEN: i64 = 100;

/// 费率 of every payment, in hundredths of a percent (0.60%, the usual rate).
const FEE_RATE_BASIS_POINTS: i64 = 60;

/// `GET /v3/bill/tradebill`.
pub(crate) async fn trade_bill(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let answer = sandbox
        .authenticate(&Method::GET, &uri, &headers, b"")
        .and_then(|_| sandbox.issue_wechat_bill(uri.query().unwrap_or(""), &headers));
    sandbox.respond(answer).await
}

/// `GET /v3/billdownload/file?token=…`: the file, unsigned; errors are signed like any answer.
pub(crate) async fn download(
    State(sandbox): State<Sandbox>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let opened = sandbox
        .authenticate(&Method::GET, &uri, &headers, b"")
        .and_then(|_| {
            let token = query_value(uri.query().unwrap_or(""), "token").unwrap_or("");
            sandbox
                .bill_tokens()
                .open(BillProvider::Wechat, token, sandbox.now())
                .map_err(|error| {
                    // WeChat's answer to a stale or unknown token is not documented [?].
                    ApiError::invalid_request(match error {
                        TokenError::Expired => "下载链接已过期，请重新申请账单",
                        TokenError::Unknown => "下载链接无效",
                    })
                })
        });
    match opened {
        Ok((bytes, file_name)) => {
            sandbox.api_latency().await;
            if sandbox.faults().bill_endless_download {
                return bill::endless_response();
            }
            bill::file_response(bytes, &file_name)
        }
        Err(error) => sandbox.respond(Err(error)).await,
    }
}

fn system_error() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "SYSTEM_ERROR",
        "系统错误",
    )
}

/// The bill request's parameters.
struct BillQuery {
    day: BillDay,
    gzip: bool,
}

fn parse_query(query: &str) -> Result<BillQuery, ApiError> {
    let date = query_value(query, "bill_date")
        .filter(|d| !d.is_empty())
        .ok_or_else(|| ApiError::param("缺少参数bill_date"))?;
    let day = NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .filter(|_| date.len() == 10)
        .and_then(BillDay::new)
        .ok_or_else(|| ApiError::param("bill_date格式不正确，应为yyyy-MM-DD"))?;
    match query_value(query, "bill_type").unwrap_or("ALL") {
        "ALL" => {}
        // Documented types; the sandbox writes the ALL layout only (paygate asks for ALL), and
        // a file with the wrong columns would be worse than a clear refusal.
        "SUCCESS" | "REFUND" | "RECHARGE_REFUND" | "ALL_SPECIAL" | "SUC_SPECIAL"
        | "REF_SPECIAL" => {
            return Err(ApiError::param("sandbox: only bill_type=ALL is simulated"));
        }
        _ => return Err(ApiError::param("bill_type取值不正确")),
    }
    let gzip = match query_value(query, "tar_type") {
        None => false,
        Some("GZIP") => true,
        Some(_) => return Err(ApiError::param("tar_type取值不正确")),
    };
    Ok(BillQuery { day, gzip })
}

impl Sandbox {
    /// The bill request: the file made now under the current faults, kept behind a new token,
    /// and `{hash_type, hash_value, download_url}`.
    fn issue_wechat_bill(&self, query: &str, headers: &HeaderMap) -> Result<Answer, ApiError> {
        let BillQuery { day, gzip } = parse_query(query)?;
        let faults = self.faults();
        // Real WeChat has a day's bill from about 10:00 the next day; the sandbox has it at once
        // (design §7), today's included: only a day still to come has none.
        if faults.bill_not_ready || day.date > self.bill_today() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "NO_STATEMENT_EXIST",
                "账单文件不存在",
            ));
        }
        let file = self.wechat_bill_file(&day, &faults).map_err(|error| {
            tracing::error!(error = %error, "sandbox: writing a WeChat bill failed");
            system_error()
        })?;
        // SHA-1 of the uncompressed file, whatever is downloaded.
        let mut hash_value = sha1_hex(&file);
        if faults.bill_wrong_hash {
            let wrong = if hash_value.starts_with('0') {
                "1"
            } else {
                "0"
            };
            hash_value.replace_range(..1, wrong);
        }
        let (bytes, file_name) = if gzip {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            let compressed = encoder
                .write_all(&file)
                .and_then(|()| encoder.finish())
                .map_err(|_| system_error())?;
            (compressed, format!("tradebill_{}_ALL.csv.gz", day.stamp()))
        } else {
            (file, format!("tradebill_{}_ALL.csv", day.stamp()))
        };
        let now = self.now();
        let expires_at = if faults.bill_url_expired {
            now
        } else {
            now + chrono::Duration::seconds(WECHAT_BILL_URL_SECS)
        };
        let token = self.bill_tokens().issue(
            IssuedBill {
                provider: BillProvider::Wechat,
                bytes,
                file_name,
                expires_at,
            },
            now,
        );
        tracing::info!(bill_date = %day.date, gzip, "sandbox: WeChat trade bill issued");
        Ok(Answer::json(&json!({
            "hash_type": "SHA1",
            "hash_value": hash_value,
            "download_url": format!(
                "{}{API_PREFIX}/v3/billdownload/file?token={token}",
                public_base(headers)
            ),
        })))
    }

    /// The `ALL` trade bill of `date` (a Beijing date) as the download would serve it now,
    /// uncompressed: the ledger's payments and refunds of that day under the current faults
    /// (rows, `bill_truncated`, `bill_bad_encoding`; the faults about the API itself,
    /// `bill_not_ready`, `bill_url_expired` and `bill_wrong_hash`, do not change the bytes).
    /// Any date has one, a future one included (empty).
    pub fn wechat_bill(&self, date: NaiveDate) -> anyhow::Result<Vec<u8>> {
        let day = BillDay::new(date).ok_or_else(|| anyhow::anyhow!("date out of range"))?;
        Ok(self.wechat_bill_file(&day, &self.faults())?)
    }

    /// The file, written by `wire::wechat_bill`, then cut or spoiled as the
    /// faults say.
    fn wechat_bill_file(&self, day: &BillDay, faults: &Faults) -> std::io::Result<Vec<u8>> {
        let mut rows = self.wechat_bill_rows(day, faults);
        let bad_encoding = faults.bill_bad_encoding && !rows.is_empty();
        if bad_encoding {
            rows[0].openid = BAD_ENCODING_MARKER.to_owned();
        }
        let mut file = Vec::new();
        write_trade_bill(rows, &mut file)?;
        if bad_encoding {
            replace_once(&mut file, BAD_ENCODING_MARKER.as_bytes(), NOT_UTF8);
        }
        if faults.bill_truncated {
            truncate_before_summary(&mut file);
        }
        Ok(file)
    }

    /// The day's rows, oldest first: payments by `success_time`, refunds by `create_time`.
    fn wechat_bill_rows(&self, day: &BillDay, faults: &Faults) -> Vec<TradeBillRow> {
        let wechat = &self.inner.wechat;
        let names = |fault: &Option<String>, no: &str| fault.as_deref() == Some(no);
        let mut rows = Vec::new();
        for order in lock(&wechat.orders).values() {
            let OrderState::Success(payment) = &order.state else {
                continue;
            };
            let p = &order.params;
            let row = |trade_time, trade_state: &str| TradeBillRow {
                trade_time,
                appid: p.appid.clone(),
                mchid: p.mchid.clone(),
                transaction_id: payment.transaction_id.clone(),
                out_trade_no: p.out_trade_no.clone(),
                openid: payment.openid.clone(),
                trade_type: p.channel.trade_type().to_owned(),
                trade_state: trade_state.to_owned(),
                description: bill_text(&p.description),
                ..empty_row()
            };
            if day.contains(payment.paid_at) && !names(&faults.bill_missing_row, &p.out_trade_no) {
                let amount =
                    p.total + i64::from(names(&faults.bill_altered_amount, &p.out_trade_no));
                let state = if names(&faults.bill_altered_status, &p.out_trade_no) {
                    "REVOKED"
                } else {
                    "SUCCESS"
                };
                let paid = payment_row(row(payment.paid_at, state), amount);
                if names(&faults.bill_duplicate_row, &p.out_trade_no) {
                    rows.push(paid.clone());
                }
                rows.push(paid);
            }
            for refund in order
                .refunds
                .iter()
                .filter(|r| day.contains(r.created_at()))
            {
                rows.push(TradeBillRow {
                    refund_id: refund.refund_id().to_owned(),
                    out_refund_no: refund.out_refund_no().to_owned(),
                    refund_fen: refund.amount_fen(),
                    refund_type: "ORIGINAL".to_owned(),
                    refund_status: refund.status().to_owned(),
                    requested_refund_fen: refund.amount_fen(),
                    ..row(refund.created_at(), "REFUND")
                });
            }
        }
        if faults.bill_extra_row {
            rows.push(payment_row(
                TradeBillRow {
                    trade_time: day.foreign_time(),
                    appid: wechat.appid.clone(),
                    mchid: wechat.mchid.clone(),
                    transaction_id: format!("4200000000{}0000000001", day.stamp()),
                    out_trade_no: day.foreign_out_trade_no(),
                    openid: "oSandboxForeignPayer0000000000".to_owned(),
                    trade_type: "NATIVE".to_owned(),
                    trade_state: "SUCCESS".to_owned(),
                    description: "sandbox: a payment the merchant never issued".to_owned(),
                    ..empty_row()
                },
                FOREIGN_AMOUNT_FEN,
            ));
        }
        rows.sort_by(|a, b| {
            let key = |r: &TradeBillRow| {
                (
                    r.trade_time,
                    r.out_trade_no.clone(),
                    !r.refund_type.is_empty(),
                    r.out_refund_no.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        rows
    }
}

/// A row with the values every row of the sandbox shares: a direct merchant (特约商户号 `0`),
/// no device, `OTHERS` bank, CNY, no vouchers, the refund numbers `0` of a payment, 0.60%.
fn empty_row() -> TradeBillRow {
    TradeBillRow {
        trade_time: chrono::DateTime::UNIX_EPOCH,
        appid: String::new(),
        mchid: String::new(),
        sub_mchid: "0".to_owned(),
        device_info: String::new(),
        transaction_id: String::new(),
        out_trade_no: String::new(),
        openid: String::new(),
        trade_type: String::new(),
        trade_state: String::new(),
        bank_type: "OTHERS".to_owned(),
        currency: "CNY".to_owned(),
        settlement_fen: 0,
        voucher_fen: 0,
        refund_id: "0".to_owned(),
        out_refund_no: "0".to_owned(),
        refund_fen: 0,
        recharge_refund_fen: 0,
        refund_type: String::new(),
        refund_status: String::new(),
        description: String::new(),
        attach: String::new(),
        fee_hundred_thousandths: 0,
        fee_rate: "0.60%".to_owned(),
        order_fen: 0,
        requested_refund_fen: 0,
        fee_note: String::new(),
    }
}

/// `row` as a payment of `amount_fen`: its 应结订单金额 and 订单金额, and its fee, 0.60% rounded
/// half up to the fen.
fn payment_row(row: TradeBillRow, amount_fen: i64) -> TradeBillRow {
    let fee_fen = (amount_fen.saturating_mul(FEE_RATE_BASIS_POINTS) + 5_000) / 10_000;
    TradeBillRow {
        settlement_fen: amount_fen,
        order_fen: amount_fen,
        fee_hundred_thousandths: fee_fen.saturating_mul(1_000),
        ..row
    }
}

/// 商品名称 as the bill can hold it: no line break, no `` ,` `` (either would shift the columns).
fn bill_text(text: &str) -> String {
    text.replace(['\r', '\n'], " ").replace(",`", ", `")
}

/// Cuts the file at the start of the line nearest its middle, never after the summary header
/// starts: what is left has its header and maybe some rows, but no summary.
fn truncate_before_summary(file: &mut Vec<u8>) {
    let starts: Vec<usize> = file
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| *pair == b"\r\n")
        .map(|(at, _)| at + 2)
        .collect();
    // Line starts after the header: rows, then the summary header, then the summary row; the
    // last one is the end of the file.
    let candidates = &starts[..starts.len().saturating_sub(2)];
    let middle = file.len() / 2;
    let cut = candidates
        .iter()
        .copied()
        .min_by_key(|at| at.abs_diff(middle))
        .unwrap_or(middle);
    file.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::{bill_text, parse_query, truncate_before_summary};

    #[test]
    fn only_all_bills_of_a_real_date_are_asked_for() {
        let ok = parse_query("bill_date=2031-03-04&bill_type=ALL&tar_type=GZIP").unwrap();
        assert!(ok.gzip);
        assert_eq!(ok.day.stamp(), "20310304");
        assert!(!parse_query("bill_date=2031-03-04").unwrap().gzip);
        for bad in [
            "",
            "bill_date=",
            "bill_date=20310304",
            "bill_date=2031-3-4",
            "bill_date=2031-02-30",
            "bill_date=2031-03-04&bill_type=SUCCESS",
            "bill_date=2031-03-04&bill_type=all",
            "bill_date=2031-03-04&tar_type=ZIP",
        ] {
            assert_eq!(
                parse_query(bad).err().map(|e| e.code()),
                Some("PARAM_ERROR"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_cut_leaves_no_summary() {
        let mut file =
            b"\xEF\xBB\xBFheader\r\n`row1\r\n`row2\r\n`row3\r\n\xE6\x80\xBB\r\n`3\r\n".to_vec();
        truncate_before_summary(&mut file);
        // 41 bytes: the line start nearest byte 20 is after row 1.
        assert_eq!(file, b"\xEF\xBB\xBFheader\r\n`row1\r\n");
        let mut empty = b"header\r\nsummary header\r\n`0\r\n".to_vec();
        truncate_before_summary(&mut empty);
        assert_eq!(empty, b"header\r\n");
    }

    #[test]
    fn descriptions_cannot_break_the_columns() {
        assert_eq!(bill_text("a,`b\r\nc"), "a, `b  c");
    }
}
