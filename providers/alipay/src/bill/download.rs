//! `alipay.data.dataservice.bill.downloadurl.query`: where to download the trade bill of a day.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::{Signer, Verifier};
use crate::request::{RequestError, SignedRequest, signed};
use crate::response::{ResponseError, parse_node};

pub const BILL_METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";

/// The business content: exactly these two fields. `trade` is the acquiring bill (API payments
/// and refunds); paygate asks only for daily bills.
#[derive(Serialize)]
struct BillBizContent {
    bill_type: &'static str,
    bill_date: String,
}

#[derive(Deserialize)]
struct BillUrlWire {
    bill_download_url: Option<String>,
}

/// Where to download a bill: an http(s) URL carrying its own token, valid for 30 seconds
/// (alipay.md §7). Whoever holds it can download the bill, payer columns included, so `Debug`
/// does not print it; nor should it be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct BillUrl(String);

impl BillUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BillUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BillUrl([redacted])")
    }
}

/// Builds and signs the query for the `trade` bill of `bill_date` (Beijing date, `yyyy-MM-dd`).
/// Bills are T+1: the bill of a day is there from about 09:00-10:00 the next morning; before
/// that Alipay answers `isp.bill_not_exist`, and for today an invalid-argument error.
pub fn bill_download_url_request(
    app_id: &str,
    signer: &Signer,
    bill_date: NaiveDate,
    now: DateTime<Utc>,
) -> Result<SignedRequest, RequestError> {
    let biz = BillBizContent {
        bill_type: "trade",
        bill_date: bill_date.format("%Y-%m-%d").to_string(),
    };
    signed(BILL_METHOD, app_id, None, &biz, signer, now)
}

/// Verifies and reads the answer: `bill_download_url`, which must be an http(s) URL. A bill that
/// does not exist (yet) comes back as an [`ApiError`](crate::ApiError) for which
/// `is_bill_not_exist()` holds.
pub fn read_bill_download_url_response(
    raw: &str,
    verifier: &Verifier,
) -> Result<BillUrl, ResponseError> {
    let wire: BillUrlWire = parse_node(raw, BILL_METHOD, verifier)?;
    let url = wire
        .bill_download_url
        .filter(|u| {
            url::Url::parse(u).is_ok_and(|parsed| matches!(parsed.scheme(), "http" | "https"))
        })
        .ok_or(ResponseError::Field("bill_download_url"))?;
    Ok(BillUrl(url))
}
