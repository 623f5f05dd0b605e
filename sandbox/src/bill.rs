//! What the two providers' bills share: the Beijing day a bill covers, which dates have one, the
//! download tokens, and the faults that act on a finished file. The formats themselves are
//! written by [`crate::wire::wechat_bill`] and [`crate::wire::alipay_bill`]; the WeChat and
//! Alipay halves are in
//! [`crate::wechat_bill`] and `alipay::bill`.
//!
//! A bill is made from the ledger when it is asked for, under the faults set at that moment, and
//! kept behind a random token until its URL expires; the download serves exactly those bytes.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Days, FixedOffset, NaiveDate, TimeZone as _, Utc};

use crate::{Sandbox, lock};

/// The order number of the `bill_extra_row` fault's row starts with this, then the bill's date
/// (`yyyyMMdd`) and `0001`: plainly a number paygate never issued (its own are 26 characters of
/// `[0-9A-Z]` with no such prefix).
pub const FOREIGN_PREFIX: &str = "FOREIGN";

/// At most this many download tokens are kept; the oldest go first. A long-running standalone
/// sandbox must not grow without bound, and a bill is asked for a few times a day.
const MAX_TOKENS: usize = 256;

/// Beijing time. China has kept +08:00 all year since 1991, so a fixed offset is exact.
pub(crate) fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// The instants a bill of `date` covers: from 00:00:00 Beijing time that day to 00:00:00 the
/// next, the end excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BillDay {
    pub(crate) date: NaiveDate,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl BillDay {
    pub(crate) fn new(date: NaiveDate) -> Option<BillDay> {
        let midnight = |d: NaiveDate| {
            beijing()
                .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
                .single()
                .map(|t| t.with_timezone(&Utc))
        };
        Some(BillDay {
            date,
            start: midnight(date)?,
            end: midnight(date.checked_add_days(Days::new(1))?)?,
        })
    }

    pub(crate) fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// `yyyyMMdd`.
    pub(crate) fn stamp(&self) -> String {
        self.date.format("%Y%m%d").to_string()
    }

    /// Where the `bill_extra_row` fault puts its row: one second into the day, so it lies
    /// inside the day even in today's bill.
    pub(crate) fn foreign_time(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::seconds(1)
    }

    /// The `bill_extra_row` fault's order number: the same for every bill of the day, so that a
    /// re-run meets the same stranger.
    pub(crate) fn foreign_out_trade_no(&self) -> String {
        format!("{FOREIGN_PREFIX}{}0001", self.stamp())
    }
}

/// Which provider's download a token opens: a WeChat token is refused by Alipay's download
/// route and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BillProvider {
    Wechat,
    Alipay,
}

/// A bill made and waiting to be downloaded.
pub(crate) struct IssuedBill {
    pub(crate) provider: BillProvider,
    /// Exactly what the download serves (WeChat: gzip-compressed when asked for).
    pub(crate) bytes: Vec<u8>,
    /// The download's file name, for `Content-Disposition`.
    pub(crate) file_name: String,
    /// By the sandbox clock.
    pub(crate) expires_at: DateTime<Utc>,
}

/// Why a download token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Never issued, issued for the other provider, or evicted.
    Unknown,
    Expired,
}

#[derive(Default)]
pub(crate) struct BillTokens {
    /// Token → the bill, and the order tokens were issued in (for eviction).
    issued: Mutex<(HashMap<String, IssuedBill>, Vec<String>)>,
}

impl BillTokens {
    /// Keeps `bill` behind a new random token, which it returns.
    pub(crate) fn issue(&self, bill: IssuedBill, now: DateTime<Utc>) -> String {
        let token = crate::wechat::random_hex(40);
        let mut guard = lock(&self.issued);
        let (bills, order) = &mut *guard;
        bills.retain(|_, b| b.expires_at > now);
        order.retain(|t| bills.contains_key(t));
        while order.len() >= MAX_TOKENS {
            let oldest = order.remove(0);
            bills.remove(&oldest);
        }
        bills.insert(token.clone(), bill);
        order.push(token.clone());
        token
    }

    /// The bytes and file name behind `token`, for `provider`, if it has not expired by `now`.
    /// A token may be used again until it expires (a client retries a failed download with the
    /// same URL); it opens that one file and nothing else.
    pub(crate) fn open(
        &self,
        provider: BillProvider,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<u8>, String), TokenError> {
        let guard = lock(&self.issued);
        let bill = guard
            .0
            .get(token)
            .filter(|b| b.provider == provider)
            .ok_or(TokenError::Unknown)?;
        if now >= bill.expires_at {
            return Err(TokenError::Expired);
        }
        Ok((bill.bytes.clone(), bill.file_name.clone()))
    }
}

impl Sandbox {
    /// Today in Beijing, by the sandbox clock: the last date with a bill (what has happened so
    /// far); a later date has none yet.
    pub(crate) fn bill_today(&self) -> NaiveDate {
        self.now().with_timezone(&beijing()).date_naive()
    }

    pub(crate) fn bill_tokens(&self) -> &BillTokens {
        &self.inner.bill_tokens
    }
}

/// The value of `key` in a URL query (`a=1&b=2`), as written: the values the bill routes read
/// (dates, tokens, `ALL`, `GZIP`) never need percent-decoding.
pub(crate) fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// Replaces the first `marker` in `bytes` with `replacement`; false when it is not there.
pub(crate) fn replace_once(bytes: &mut Vec<u8>, marker: &[u8], replacement: &[u8]) -> bool {
    match bytes.windows(marker.len()).position(|w| w == marker) {
        Some(at) => {
            bytes.splice(at..at + marker.len(), replacement.iter().copied());
            true
        }
        None => false,
    }
}

/// A bill file as both providers serve it: the raw bytes, no signature.
pub(crate) fn file_response(bytes: Vec<u8>, file_name: &str) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let map = response.headers_mut();
    map.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        map.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The `bill_endless_download` fault's answer: 200, zeros for as long as the client reads.
pub(crate) fn endless_response() -> Response {
    let zeros = bytes::Bytes::from(vec![0u8; 64 * 1024]);
    let body = axum::body::Body::from_stream(futures_util::stream::repeat(Ok::<
        _,
        std::convert::Infallible,
    >(zeros)));
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// A stand-in payer value that the `bill_bad_encoding` fault swaps for bytes the file's
/// encoding cannot hold, after the provider crate has written the file (its writers refuse to
/// write such bytes themselves).
pub(crate) const BAD_ENCODING_MARKER: &str = "SANDBOXBADENCODINGMARKER";

/// `http://` and the request's `Host` (a host name or address and a port; `localhost` when it is
/// missing or anything else): where the merchant reached the sandbox, so that the download URLs
/// point back there.
pub(crate) fn public_base(headers: &axum::http::HeaderMap) -> String {
    // Plain HTTP, as every sandbox URL (see the README on h5_url).
    format!("http://{}", crate::wechat_order::request_host(headers))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone as _, Utc};

    use super::{
        BillDay, BillProvider, BillTokens, IssuedBill, MAX_TOKENS, TokenError, query_value,
        replace_once,
    };

    fn bill(provider: BillProvider, expires_at: chrono::DateTime<Utc>) -> IssuedBill {
        IssuedBill {
            provider,
            bytes: b"file".to_vec(),
            file_name: "f.csv".to_owned(),
            expires_at,
        }
    }

    #[test]
    fn a_token_opens_its_own_providers_file_until_it_expires() {
        let tokens = BillTokens::default();
        let now = Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap();
        let later = now + chrono::Duration::seconds(30);
        let token = tokens.issue(bill(BillProvider::Alipay, later), now);
        assert_eq!(token.len(), 40);
        assert!(tokens.open(BillProvider::Alipay, &token, now).is_ok());
        assert!(
            tokens.open(BillProvider::Alipay, &token, now).is_ok(),
            "reusable"
        );
        assert_eq!(
            tokens.open(BillProvider::Wechat, &token, now).err(),
            Some(TokenError::Unknown)
        );
        assert_eq!(
            tokens.open(BillProvider::Alipay, &token, later).err(),
            Some(TokenError::Expired)
        );
        assert_eq!(
            tokens.open(BillProvider::Alipay, "", now).err(),
            Some(TokenError::Unknown)
        );
    }

    #[test]
    fn only_the_newest_tokens_are_kept() {
        let tokens = BillTokens::default();
        let now = Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap();
        let far = now + chrono::Duration::hours(1);
        let first = tokens.issue(bill(BillProvider::Wechat, far), now);
        let issued: Vec<String> = (0..MAX_TOKENS)
            .map(|_| tokens.issue(bill(BillProvider::Wechat, far), now))
            .collect();
        assert!(tokens.open(BillProvider::Wechat, &first, now).is_err());
        assert!(
            issued
                .iter()
                .all(|t| tokens.open(BillProvider::Wechat, t, now).is_ok())
        );
    }

    #[test]
    fn a_bill_day_is_midnight_to_midnight_in_beijing() {
        let day = BillDay::new(NaiveDate::from_ymd_opt(2031, 3, 4).unwrap()).unwrap();
        // 2031-03-03 16:00:00Z is 2031-03-04 00:00:00 Beijing time.
        let first = Utc.with_ymd_and_hms(2031, 3, 3, 16, 0, 0).unwrap();
        assert!(day.contains(first));
        assert!(!day.contains(first - chrono::Duration::milliseconds(1)));
        let last = Utc.with_ymd_and_hms(2031, 3, 4, 15, 59, 59).unwrap();
        assert!(day.contains(last + chrono::Duration::milliseconds(999)));
        assert!(!day.contains(last + chrono::Duration::seconds(1)));
        assert_eq!(day.foreign_out_trade_no(), "FOREIGN203103040001");
        assert!(day.contains(day.foreign_time()));
    }

    #[test]
    fn query_values_are_found_by_exact_key() {
        let q = "bill_date=2031-03-04&bill_type=ALL&tar_type=GZIP";
        assert_eq!(query_value(q, "bill_date"), Some("2031-03-04"));
        assert_eq!(query_value(q, "tar_type"), Some("GZIP"));
        assert_eq!(query_value(q, "type"), None);
        assert_eq!(query_value("", "bill_date"), None);
    }

    #[test]
    fn replace_once_replaces_the_first_only() {
        let mut bytes = b"a,XX,b,XX".to_vec();
        assert!(replace_once(&mut bytes, b"XX", b"\xFF"));
        assert_eq!(bytes, b"a,\xFF,b,XX");
        assert!(!replace_once(&mut bytes, b"YY", b""));
    }
}
