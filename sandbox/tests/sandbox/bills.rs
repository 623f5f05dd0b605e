//! WeChat trade bills: requested and downloaded with the crate's own Client, checked with its
//! SHA-1 and read back with its TradeBillReader, on an injected clock so that payments and
//! refunds land at exact Beijing times.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use paygate_sandbox::{Faults, SandboxClock};
use paygate_wechatpay::{
    BillDownload, BillError, BillRow, BillRowKind, BillTotals, TradeBillReader,
};

use crate::harness::{
    APPID, Harness, MCHID, credentials, now, order, order_no, signed_get, start_with,
    start_with_divisor,
};
use crate::refunds::{assert_api_error, paid_order, refund_of};

const NOWHERE: &str = "http://127.0.0.1:9/webhooks/wechatpay";

/// A clock the test sets; the sandbox and the client both read it.
#[derive(Clone)]
struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    fn at(t: DateTime<Utc>) -> FakeClock {
        FakeClock(Arc::new(AtomicI64::new(t.timestamp_millis())))
    }

    fn set(&self, t: DateTime<Utc>) {
        self.0.store(t.timestamp_millis(), Ordering::SeqCst);
    }

    fn advance(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    fn sandbox(&self) -> SandboxClock {
        let millis = self.0.clone();
        Arc::new(move || {
            DateTime::from_timestamp_millis(millis.load(Ordering::SeqCst)).expect("in range")
        })
    }

    fn client(&self) -> paygate_wechatpay::Clock {
        let millis = self.0.clone();
        Arc::new(move || millis.load(Ordering::SeqCst).div_euclid(1000))
    }
}

/// A Beijing wall-clock time.
fn beijing(date: (i32, u32, u32), time: (u32, u32, u32)) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(date.0, date.1, date.2, time.0, time.1, time.2)
        .unwrap()
        .with_timezone(&Utc)
}

fn day(date: (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap()
}

const D: (i32, u32, u32) = (2031, 3, 4);
const NEXT: (i32, u32, u32) = (2031, 3, 5);

async fn start_at(t: DateTime<Utc>, time_divisor: u32) -> (Harness, FakeClock) {
    let clock = FakeClock::at(t);
    let h = start_with(time_divisor, clock.sandbox(), clock.client()).await;
    (h, clock)
}

/// Asks for the bill and downloads it; the downloaded bytes (compressed when `gzip`).
async fn fetch(h: &Harness, date: NaiveDate, gzip: bool) -> (BillDownload, Vec<u8>) {
    let bill = h.client.trade_bill(date, gzip).await.unwrap();
    let mut file = Vec::new();
    h.client.download_bill(&bill, &mut file).await.unwrap();
    (bill, file)
}

/// Every row and the checked totals, or the reader's first error.
fn read(file: &[u8], gzip: bool) -> Result<(Vec<BillRow>, BillTotals), BillError> {
    let mut reader = TradeBillReader::new(file, gzip);
    let rows = (&mut reader).collect::<Result<Vec<_>, _>>()?;
    Ok((
        rows,
        reader.totals().expect("totals once every row is read"),
    ))
}

fn payments(rows: &[BillRow]) -> Vec<(&str, i64, &str)> {
    rows.iter()
        .filter(|r| r.kind == BillRowKind::Payment)
        .map(|r| {
            (
                r.out_trade_no.as_str(),
                r.amount_fen,
                r.trade_state.as_str(),
            )
        })
        .collect()
}

fn refunds(rows: &[BillRow]) -> Vec<(&str, &str, i64, &str)> {
    rows.iter()
        .filter(|r| r.kind == BillRowKind::Refund)
        .map(|r| {
            (
                r.out_trade_no.as_str(),
                r.out_refund_no.as_deref().unwrap(),
                r.amount_fen,
                r.refund_status.as_deref().unwrap(),
            )
        })
        .collect()
}

/// A paid order of `total` fen, and the openid the buyer paid with (WeChat's side of the
/// transaction shows it; the crate's Transaction type has no field for it).
async fn paid_with_openid(h: &Harness, prefix: &str, total: i64) -> (String, String) {
    let out_trade_no = order_no(prefix);
    h.client
        .native_order(&order(&out_trade_no, total, NOWHERE))
        .await
        .unwrap();
    let paid = h.sandbox.pay(&out_trade_no).unwrap();
    let openid = paid["payer"]["openid"].as_str().unwrap().to_owned();
    (out_trade_no, openid)
}

#[tokio::test]
async fn a_days_bill_lists_each_payment_and_refund_once_and_reads_back() {
    let (h, clock) = start_at(beijing(D, (10, 0, 0)), 1000).await;
    let (a, openid_a) = paid_with_openid(&h, "BILLA", 19900).await;
    clock.advance(chrono::Duration::minutes(5));
    let (b, openid_b) = paid_with_openid(&h, "BILLB", 5000).await;
    let unpaid = order_no("BILLU");
    h.client
        .native_order(&order(&unpaid, 700, NOWHERE))
        .await
        .unwrap();
    let refund_no = order_no("RFA");
    h.client
        .refund(&refund_of(&a, &refund_no, 5000, 19900))
        .await
        .unwrap();
    h.sandbox.complete_wechat_refunds();

    let (bill, file) = fetch(&h, day(D), false).await;
    assert_eq!(bill.hash_type, "SHA1");
    bill.verify_file(&file[..], false).unwrap();
    assert!(file.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with BOM");
    assert_eq!(h.sandbox.wechat_bill(day(D)).unwrap(), file);

    let (rows, totals) = read(&file, false).unwrap();
    assert_eq!(
        payments(&rows),
        vec![
            (a.as_str(), 19900, "SUCCESS"),
            (b.as_str(), 5000, "SUCCESS")
        ]
    );
    assert_eq!(
        refunds(&rows),
        vec![(a.as_str(), refund_no.as_str(), 5000, "SUCCESS")]
    );
    assert_eq!(
        (totals.count, totals.order_fen, totals.requested_refund_fen),
        (3, 24900, 5000)
    );
    let paid_a = h.client.query_by_out_trade_no(&a).await.unwrap();
    let row_a = rows.iter().find(|r| r.out_trade_no == a).unwrap();
    assert_eq!(Some(&row_a.transaction_id), paid_a.transaction_id.as_ref());
    assert_eq!(row_a.trade_time, beijing(D, (10, 0, 0)));
    assert_eq!((row_a.appid.as_str(), row_a.mchid.as_str()), (APPID, MCHID));
    assert_eq!(row_a.trade_type, "NATIVE");

    // The payer's openid is in the file (用户标识), for the gateway to drop.
    let text = String::from_utf8(file.clone()).unwrap();
    for openid in [&openid_a, &openid_b] {
        assert!(
            text.contains(&format!(",`{openid},")),
            "the openid is planted"
        );
    }
    // Once per payment and once per refund of that payment.
    assert_eq!(text.matches(openid_a.as_str()).count(), 2);

    // The same bill gzip-compressed: the hash is still the uncompressed file's.
    let (zipped, compressed) = fetch(&h, day(D), true).await;
    assert!(compressed.starts_with(&[0x1f, 0x8b]), "gzip");
    assert_eq!(zipped.hash_value, bill.hash_value);
    zipped.verify_file(&compressed[..], true).unwrap();
    assert_eq!(read(&compressed, true).unwrap().0, rows);
}

#[tokio::test]
async fn payments_at_2359_59_and_0000_00_beijing_land_in_their_own_days() {
    let (h, clock) = start_at(beijing(D, (23, 59, 59)), 1).await;
    let late = paid_order(&h, "LATE", 100, NOWHERE).await;
    let refund_no = order_no("RFL");
    h.client
        .refund(&refund_of(&late, &refund_no, 100, 100))
        .await
        .unwrap();
    clock.set(beijing(NEXT, (0, 0, 0)));
    let early = paid_order(&h, "EARLY", 200, NOWHERE).await;

    // The refund was requested on D and is still PROCESSING: D's bill says so.
    let (rows, _) = read(&fetch(&h, day(D), false).await.1, false).unwrap();
    assert_eq!(payments(&rows), vec![(late.as_str(), 100, "SUCCESS")]);
    assert_eq!(
        refunds(&rows),
        vec![(late.as_str(), refund_no.as_str(), 100, "PROCESSING")]
    );
    assert_eq!(rows[0].trade_time, beijing(D, (23, 59, 59)));

    let (rows, _) = read(&fetch(&h, day(NEXT), false).await.1, false).unwrap();
    assert_eq!(payments(&rows), vec![(early.as_str(), 200, "SUCCESS")]);
    assert!(
        refunds(&rows).is_empty(),
        "a refund is billed on the day it was requested"
    );

    // Completed on the next day, the refund's row stays on D, with its status as it is now.
    assert_eq!(h.sandbox.complete_wechat_refunds(), 1);
    let (rows, _) = read(&fetch(&h, day(D), false).await.1, false).unwrap();
    assert_eq!(
        refunds(&rows),
        vec![(late.as_str(), refund_no.as_str(), 100, "SUCCESS")]
    );
}

#[tokio::test]
async fn a_quiet_day_has_an_empty_bill_and_a_day_to_come_has_none() {
    let (h, _clock) = start_at(beijing(D, (9, 0, 0)), 1000).await;
    paid_order(&h, "TODAY", 100, NOWHERE).await;

    let (bill, file) = fetch(&h, day((2030, 1, 1)), false).await;
    bill.verify_file(&file[..], false).unwrap();
    let (rows, totals) = read(&file, false).unwrap();
    assert!(rows.is_empty());
    assert_eq!(totals, BillTotals::default());

    // Today's bill holds what has happened so far.
    let (rows, _) = read(&fetch(&h, day(D), false).await.1, false).unwrap();
    assert_eq!(rows.len(), 1);

    let error = h.client.trade_bill(day(NEXT), false).await.unwrap_err();
    assert!(error.is_bill_not_ready(), "{error:?}");
    assert_api_error(Err::<(), _>(error), 400, "NO_STATEMENT_EXIST");
}

#[tokio::test]
async fn the_download_url_works_for_five_minutes_of_the_sandbox_clock() {
    let (h, clock) = start_at(beijing(D, (11, 0, 0)), 1000).await;
    paid_order(&h, "EXP", 100, NOWHERE).await;
    let bill = h.client.trade_bill(day(D), false).await.unwrap();
    let base = format!("{}/sandbox/wechatpay/v3/billdownload/file?token=", h.base);
    assert!(
        bill.download_url.starts_with(&base),
        "under the public base"
    );

    clock.advance(chrono::Duration::seconds(299));
    let mut file = Vec::new();
    h.client.download_bill(&bill, &mut file).await.unwrap();
    // Again: a retried download uses the same URL.
    let mut again = Vec::new();
    h.client.download_bill(&bill, &mut again).await.unwrap();
    assert_eq!(again, file);

    clock.advance(chrono::Duration::seconds(1));
    let expired = h.client.download_bill(&bill, &mut Vec::new()).await;
    assert_api_error(expired, 400, "INVALID_REQUEST");

    // A token never issued opens nothing either.
    let forged = BillDownload {
        download_url: format!("{base}{}", "0".repeat(40)),
        ..bill
    };
    assert_api_error(
        h.client.download_bill(&forged, &mut Vec::new()).await,
        400,
        "INVALID_REQUEST",
    );
}

#[tokio::test]
async fn bill_requests_and_downloads_must_be_signed() {
    let h = start_with_divisor(1000).await;
    let today = Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let path = format!("/v3/bill/tradebill?bill_date={today}&bill_type=ALL");
    let unsigned = h
        .http
        .get(format!("{}/sandbox/wechatpay{path}", h.base))
        .header("Accept", "application/json")
        .header("User-Agent", "paygate-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let body: serde_json::Value = unsigned.json().await.unwrap();
    assert_eq!(body["code"], "SIGN_ERROR");

    let bill = h.client.trade_bill(today, false).await.unwrap();
    let url = bill.download_url.clone();
    let download_path = url
        .strip_prefix(&format!("{}/sandbox/wechatpay", h.base))
        .unwrap();
    let get = |authorization: Option<String>| {
        let mut request = h
            .http
            .get(&url)
            .header("Accept", "*/*")
            .header("User-Agent", "paygate-tests");
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        request.send()
    };
    let sign = |path: &str| {
        credentials().authorization("GET", path, now(), &paygate_wechatpay::new_nonce(), b"")
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    // Signed over another token: refused.
    let other = format!("/v3/billdownload/file?token={}", "f".repeat(40));
    assert_eq!(get(Some(sign(&other))).await.unwrap().status(), 401);

    // Signed over this path and query: the raw file, with no signature on it.
    let answer = get(Some(sign(download_path))).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().get("Wechatpay-Signature").is_none());
    let file = answer.bytes().await.unwrap();
    bill.verify_file(&file[..], false).unwrap();
}

/// Two paid orders, one more refunded, then the faults.
async fn day_with_faults(faults: impl FnOnce(&[String]) -> Faults) -> (Harness, Vec<String>) {
    let (h, clock) = start_at(beijing(D, (12, 0, 0)), 1000).await;
    let mut nos = Vec::new();
    for (prefix, total) in [("FA", 1000), ("FB", 2000), ("FC", 3000)] {
        nos.push(paid_order(&h, prefix, total, NOWHERE).await);
        clock.advance(chrono::Duration::seconds(1));
    }
    h.client
        .refund(&refund_of(&nos[0], &order_no("RFF"), 400, 1000))
        .await
        .unwrap();
    h.sandbox.complete_wechat_refunds();
    h.sandbox.set_faults(faults(&nos));
    (h, nos)
}

#[tokio::test]
async fn row_faults_leave_out_add_and_alter_rows_of_a_bill_that_still_adds_up() {
    let (h, nos) = day_with_faults(|nos| Faults {
        bill_missing_row: Some(nos[0].clone()),
        bill_extra_row: true,
        bill_altered_amount: Some(nos[1].clone()),
        bill_altered_status: Some(nos[2].clone()),
        ..Faults::default()
    })
    .await;
    let (bill, file) = fetch(&h, day(D), true).await;
    bill.verify_file(&file[..], true).unwrap();
    let (rows, totals) = read(&file, true).unwrap();
    assert_eq!(
        payments(&rows),
        vec![
            ("FOREIGN203103040001", 100, "SUCCESS"),
            (nos[1].as_str(), 2001, "SUCCESS"),
            (nos[2].as_str(), 3000, "REVOKED"),
        ]
    );
    // The missing payment's refund is still there.
    assert_eq!(refunds(&rows).len(), 1);
    assert_eq!(refunds(&rows)[0].0, nos[0]);
    assert_eq!(totals.order_fen, 100 + 2001 + 3000);
    let foreign = rows
        .iter()
        .find(|r| r.out_trade_no.starts_with("FOREIGN"))
        .unwrap();
    assert_eq!(foreign.trade_time, beijing(D, (0, 0, 1)));
    assert_eq!(foreign.transaction_id.len(), 28);

    // Switched off, the next bill is the ledger again.
    h.sandbox.set_faults(Faults::default());
    let (rows, _) = read(&fetch(&h, day(D), false).await.1, false).unwrap();
    assert_eq!(payments(&rows).len(), 3);
    assert!(
        payments(&rows)
            .iter()
            .all(|(no, _, state)| !no.starts_with("FOREIGN") && *state == "SUCCESS")
    );
}

#[tokio::test]
async fn a_wrong_hash_is_caught_by_the_sha1_check() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_wrong_hash: true,
        ..Faults::default()
    })
    .await;
    let (bill, file) = fetch(&h, day(D), true).await;
    assert!(matches!(
        bill.verify_file(&file[..], true),
        Err(BillError::HashMismatch { .. })
    ));
    // The file itself is sound.
    assert_eq!(read(&file, true).unwrap().0.len(), 4);
}

#[tokio::test]
async fn bill_not_ready_answers_no_statement_exist() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_not_ready: true,
        ..Faults::default()
    })
    .await;
    let error = h.client.trade_bill(day(D), true).await.unwrap_err();
    assert!(error.is_bill_not_ready(), "{error:?}");
}

#[tokio::test]
async fn an_expired_url_fault_hands_out_a_url_that_no_longer_works() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_url_expired: true,
        ..Faults::default()
    })
    .await;
    let bill = h.client.trade_bill(day(D), true).await.unwrap();
    let result = h.client.download_bill(&bill, &mut Vec::new()).await;
    assert_api_error(result, 400, "INVALID_REQUEST");
}

#[tokio::test]
async fn a_truncated_bill_passes_the_hash_and_is_refused_for_its_missing_summary() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_truncated: true,
        ..Faults::default()
    })
    .await;
    for gzip in [true, false] {
        let (bill, file) = fetch(&h, day(D), gzip).await;
        bill.verify_file(&file[..], gzip).unwrap();
        assert!(
            matches!(read(&file, gzip), Err(BillError::MissingSummary)),
            "gzip {gzip}"
        );
    }
    assert!(matches!(
        read(&h.sandbox.wechat_bill(day(D)).unwrap(), false),
        Err(BillError::MissingSummary)
    ));
}

#[tokio::test]
async fn a_bad_encoding_passes_the_hash_and_is_refused_as_not_utf8() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_bad_encoding: true,
        ..Faults::default()
    })
    .await;
    let (bill, file) = fetch(&h, day(D), true).await;
    bill.verify_file(&file[..], true).unwrap();
    assert!(matches!(
        read(&file, true),
        Err(BillError::NotUtf8 { line: 2 })
    ));
}

#[tokio::test]
async fn bill_faults_are_set_over_http_and_shown() {
    let h = start_with_divisor(1000).await;
    let put = h
        .http
        .put(format!("{}/sandbox/faults", h.base))
        .json(&serde_json::json!({
            "bill_missing_row": "A",
            "bill_extra_row": true,
            "bill_altered_amount": "B",
            "bill_altered_status": "C",
            "bill_wrong_hash": true,
            "bill_not_ready": true,
            "bill_url_expired": true,
            "bill_truncated": true,
            "bill_bad_encoding": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let faults = h.sandbox.faults();
    assert_eq!(faults.bill_missing_row.as_deref(), Some("A"));
    assert_eq!(faults.bill_altered_amount.as_deref(), Some("B"));
    assert_eq!(faults.bill_altered_status.as_deref(), Some("C"));
    assert!(faults.bill_extra_row && faults.bill_wrong_hash && faults.bill_not_ready);
    assert!(faults.bill_url_expired && faults.bill_truncated && faults.bill_bad_encoding);
    let shown: serde_json::Value = h
        .http
        .get(format!("{}/sandbox/faults", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["bill_missing_row"], "A");
    // Bodies from before the bill faults still parse, to harmless bills.
    h.http
        .put(format!("{}/sandbox/faults", h.base))
        .json(&serde_json::json!({"api_latency_ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(h.sandbox.faults().bill_missing_row, None);
    assert!(!h.sandbox.faults().bill_not_ready);
}

#[tokio::test]
async fn only_all_bills_are_simulated() {
    let h = start_with_divisor(1000).await;
    assert!(h.sandbox.alipay_bill(day(D)).is_err(), "no Alipay half");
    for path in [
        "/v3/bill/tradebill?bill_date=2020-01-01&bill_type=SUCCESS",
        "/v3/bill/tradebill?bill_date=2020-01-01&bill_type=REFUND",
        "/v3/bill/tradebill?bill_type=ALL",
        "/v3/bill/tradebill?bill_date=2020-1-1",
    ] {
        let (status, body) = signed_get(&h, path).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("PARAM_ERROR")),
            "{path}"
        );
    }
    // The answer to a good request is signed and shaped as WeChat's.
    let (status, body) = signed_get(&h, "/v3/bill/tradebill?bill_date=2020-01-01").await;
    assert_eq!(status, 200);
    assert_eq!(body["hash_type"], "SHA1");
    assert_eq!(body["hash_value"].as_str().unwrap().len(), 40);
    assert_eq!(body.as_object().unwrap().len(), 3);
}
