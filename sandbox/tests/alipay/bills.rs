//! Alipay trade bills: `alipay.data.dataservice.bill.downloadurl.query` and the ZIP download,
//! driven with the crate's own Client and read back with its TradeBillReader, on an injected
//! clock so that payments and refunds land at exact Beijing times.

use std::io::{Cursor, Read as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use paygate_alipay::bill::{BillError, BillRow, BillRowKind, BillTotals, TradeBillReader};
use paygate_alipay::{Error, Signer};
use paygate_sandbox::{Faults, SandboxClock};
use serde_json::{Value, json};

use crate::{
    APP_ID, APP_KEY, Harness, NOWHERE, SELLER_ID, api_error, order, order_no, paid_trade,
    start_with,
};

/// A clock the test sets (the Alipay client keeps the real one: the gateway checks only the
/// format of a request's timestamp).
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
}

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

async fn start_at(t: DateTime<Utc>) -> (Harness, FakeClock) {
    let clock = FakeClock::at(t);
    let h = start_with(1000, clock.sandbox()).await;
    (h, clock)
}

/// Asks for the day's bill URL and downloads the ZIP.
async fn fetch(h: &Harness, date: NaiveDate) -> Vec<u8> {
    let url = h.client.bill_download_url(date).await.unwrap();
    let mut zip = Vec::new();
    h.client
        .download_bill(url.as_str(), &mut zip)
        .await
        .unwrap();
    zip
}

/// Every row and the checked totals, or the reader's first error.
fn read(zip: &[u8]) -> Result<(Vec<BillRow>, BillTotals), BillError> {
    let mut bill = TradeBillReader::open(Cursor::new(zip))?;
    let mut rows = bill.rows()?;
    let read = (&mut rows).collect::<Result<Vec<_>, _>>()?;
    Ok((read, rows.totals().expect("totals once every row is read")))
}

fn payments(rows: &[BillRow]) -> Vec<(&str, i64)> {
    rows.iter()
        .filter(|r| r.kind == BillRowKind::Payment)
        .map(|r| (r.out_trade_no.as_deref().unwrap(), r.amount_fen))
        .collect()
}

fn refunds(rows: &[BillRow]) -> Vec<(&str, &str, i64)> {
    rows.iter()
        .filter(|r| r.kind == BillRowKind::Refund)
        .map(|r| {
            (
                r.out_trade_no.as_deref().unwrap(),
                r.out_request_no.as_deref().unwrap(),
                r.amount_fen,
            )
        })
        .collect()
}

/// A paid trade and the buyer's account as Alipay shows it (`buyer_logon_id`).
async fn paid_with_account(h: &Harness, prefix: &str, total_fen: i64) -> (String, String) {
    let no = order_no(prefix);
    h.client
        .precreate(&order(&no, total_fen, NOWHERE))
        .await
        .unwrap();
    let (status, paid) = h.pay(&no).await;
    assert_eq!(status, 200);
    (no, paid["buyer_logon_id"].as_str().unwrap().to_owned())
}

/// The detail CSV of the ZIP, decoded from GBK.
fn detail_text(zip: &[u8]) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let (name, _) = encoding_rs::GBK.decode_without_bom_handling(entry.name_raw());
        if name.ends_with("_业务明细.csv") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let (text, _, errors) = encoding_rs::GBK.decode(&bytes);
            assert!(!errors, "GBK");
            return text.into_owned();
        }
    }
    panic!("no detail entry");
}

/// A gateway.do bill query with the business content `biz` as given, signed with the app key
/// (or, with `tamper`, changed after signing); the method's answer node.
async fn raw_bill(h: &Harness, biz: Value, tamper: bool) -> Value {
    let signer = Signer::from_pem_or_base64(APP_KEY).unwrap();
    let request =
        paygate_alipay::bill::bill_download_url_request(APP_ID, &signer, day(D), Utc::now())
            .unwrap();
    let mut params = request.params().clone();
    params.remove("sign");
    params.insert("biz_content", biz.to_string());
    let sign = signer
        .sign(params.sign_content(&["sign"]).as_bytes())
        .unwrap();
    params.insert("sign", sign);
    if tamper {
        params.insert(
            "biz_content",
            json!({"bill_type": "trade", "bill_date": "2031-03-03"}).to_string(),
        );
    }
    let raw = h
        .http
        .post(h.gateway())
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(params.to_form())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str::<Value>(&raw).unwrap()
        ["alipay_data_dataservice_bill_downloadurl_query_response"]
        .clone()
}

#[tokio::test]
async fn a_days_bill_lists_each_payment_and_refund_once_and_reads_back() {
    let (h, clock) = start_at(beijing(D, (10, 0, 0))).await;
    let (a, account_a) = paid_with_account(&h, "BILLA", 19900).await;
    let paid_a = h.client.query(&a).await.unwrap();
    clock.advance(chrono::Duration::minutes(5));
    let (b, account_b) = paid_with_account(&h, "BILLB", 5000).await;
    clock.advance(chrono::Duration::minutes(5));
    h.client.refund(&a, "RA1", 5000, None).await.unwrap();

    let url = h.client.bill_download_url(day(D)).await.unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/sandbox/alipay/bill/download?token=", h.base)),
        "under the public base"
    );
    let mut zip = Vec::new();
    h.client
        .download_bill(url.as_str(), &mut zip)
        .await
        .unwrap();
    assert_eq!(h.sandbox.alipay_bill(day(D)).unwrap(), zip);

    let bill = TradeBillReader::open(Cursor::new(&zip[..])).unwrap();
    assert_eq!(
        bill.entry_name(),
        format!("{SELLER_ID}0156_20310304_业务明细.csv")
    );
    let (rows, totals) = read(&zip).unwrap();
    assert_eq!(
        payments(&rows),
        vec![(a.as_str(), 19900), (b.as_str(), 5000)]
    );
    assert_eq!(refunds(&rows), vec![(a.as_str(), "RA1", 5000)]);
    assert_eq!(
        totals,
        BillTotals {
            payments: 2,
            payment_fen: 24900,
            refunds: 1,
            refund_fen: 5000,
        }
    );
    let row_a = &rows[0];
    assert_eq!(row_a.trade_time, beijing(D, (10, 0, 0)));
    assert_eq!(
        Some(row_a.trade_no.as_str()),
        Some(paid_a.trade_no.as_str())
    );
    assert_eq!(rows[2].trade_time, beijing(D, (10, 10, 0)));
    assert_eq!(
        rows[2].trade_no, row_a.trade_no,
        "a refund row carries its payment's trade_no"
    );

    // The buyer's account is in the file (对方账户), for the gateway to drop: once per row of
    // that trade.
    let text = detail_text(&zip);
    assert_eq!(text.matches(&format!(",{account_a}\t,")).count(), 2);
    assert_eq!(text.matches(&format!(",{account_b}\t,")).count(), 1);
}

#[tokio::test]
async fn payments_and_refunds_at_2359_59_and_0000_00_beijing_land_in_their_own_days() {
    let (h, clock) = start_at(beijing(D, (23, 59, 59))).await;
    let late = paid_trade(&h, "LATE", 200).await;
    h.client.refund(&late, "RL1", 100, None).await.unwrap();
    clock.set(beijing(NEXT, (0, 0, 0)));
    let early = paid_trade(&h, "EARLY", 300).await;
    h.client.refund(&late, "RL2", 100, None).await.unwrap();

    let (rows, _) = read(&fetch(&h, day(D)).await).unwrap();
    assert_eq!(payments(&rows), vec![(late.as_str(), 200)]);
    assert_eq!(refunds(&rows), vec![(late.as_str(), "RL1", 100)]);
    assert!(
        rows.iter()
            .all(|r| r.trade_time == beijing(D, (23, 59, 59)))
    );

    let (rows, _) = read(&fetch(&h, day(NEXT)).await).unwrap();
    assert_eq!(payments(&rows), vec![(early.as_str(), 300)]);
    assert_eq!(refunds(&rows), vec![(late.as_str(), "RL2", 100)]);
}

#[tokio::test]
async fn a_quiet_day_has_an_empty_bill_and_a_day_to_come_has_none() {
    let (h, _clock) = start_at(beijing(D, (9, 0, 0))).await;
    paid_trade(&h, "TODAY", 100).await;

    let (rows, totals) = read(&fetch(&h, day((2030, 1, 1))).await).unwrap();
    assert!(rows.is_empty());
    assert_eq!(totals, BillTotals::default());
    // Today's bill holds what has happened so far.
    assert_eq!(read(&fetch(&h, day(D)).await).unwrap().0.len(), 1);

    let error = h.client.bill_download_url(day(NEXT)).await.unwrap_err();
    assert!(error.api().unwrap().is_bill_not_exist(), "{error:?}");
    let (code, sub_code, signed) = api_error(error);
    assert_eq!(
        (code.as_str(), sub_code.as_deref(), signed),
        ("40004", Some("isp.bill_not_exist"), true)
    );
}

#[tokio::test]
async fn the_download_url_works_for_30_seconds_of_the_sandbox_clock() {
    let (h, clock) = start_at(beijing(D, (11, 0, 0))).await;
    paid_trade(&h, "EXP", 100).await;
    let url = h.client.bill_download_url(day(D)).await.unwrap();
    clock.advance(chrono::Duration::seconds(29));
    let mut zip = Vec::new();
    h.client
        .download_bill(url.as_str(), &mut zip)
        .await
        .unwrap();
    assert_eq!(read(&zip).unwrap().0.len(), 1);

    clock.advance(chrono::Duration::seconds(1));
    let expired = h.client.download_bill(url.as_str(), &mut Vec::new()).await;
    assert!(matches!(expired, Err(Error::Http(403))), "{expired:?}");

    let forged = format!(
        "{}/sandbox/alipay/bill/download?token={}",
        h.base,
        "0".repeat(40)
    );
    let unknown = h.client.download_bill(&forged, &mut Vec::new()).await;
    assert!(matches!(unknown, Err(Error::Http(404))), "{unknown:?}");
}

#[tokio::test]
async fn the_query_must_be_signed_and_takes_only_daily_trade_bills() {
    let (h, _clock) = start_at(beijing(D, (11, 0, 0))).await;
    let ok = raw_bill(
        &h,
        json!({"bill_type": "trade", "bill_date": "2031-03-04"}),
        false,
    )
    .await;
    assert_eq!(ok["code"], "10000");
    assert!(ok["bill_download_url"].is_string());

    let tampered = raw_bill(
        &h,
        json!({"bill_type": "trade", "bill_date": "2031-03-04"}),
        true,
    )
    .await;
    assert_eq!(
        (tampered["code"].as_str(), tampered["sub_code"].as_str()),
        (Some("40002"), Some("isv.invalid-signature"))
    );
    for biz in [
        json!({"bill_type": "signcustomer", "bill_date": "2031-03-04"}),
        json!({"bill_date": "2031-03-04"}),
        json!({"bill_type": "trade", "bill_date": "2031-03"}),
        json!({"bill_type": "trade", "bill_date": "2015-12-31"}),
        json!({"bill_type": "trade", "bill_date": "20310304"}),
        json!({"bill_type": "trade", "bill_date": "2031-03-04", "smid": "2088"}),
    ] {
        let node = raw_bill(&h, biz.clone(), false).await;
        assert_eq!(
            (node["code"].as_str(), node["sub_code"].as_str()),
            (Some("40004"), Some("INVAILID_ARGUMENTS")),
            "{biz}"
        );
    }
}

/// Three paid trades, the first partly refunded, then the faults.
async fn day_with_faults(faults: impl FnOnce(&[String]) -> Faults) -> (Harness, Vec<String>) {
    let (h, clock) = start_at(beijing(D, (12, 0, 0))).await;
    let mut nos = Vec::new();
    for (prefix, total) in [("FA", 1000), ("FB", 2000), ("FC", 3000)] {
        nos.push(paid_trade(&h, prefix, total).await);
        clock.advance(chrono::Duration::seconds(1));
    }
    h.client.refund(&nos[0], "RFA", 400, None).await.unwrap();
    h.sandbox.set_faults(faults(&nos));
    (h, nos)
}

#[tokio::test]
async fn row_faults_leave_out_add_and_alter_rows_of_a_bill_that_still_adds_up() {
    let (h, nos) = day_with_faults(|nos| Faults {
        bill_missing_row: Some(nos[0].clone()),
        bill_extra_row: true,
        bill_altered_amount: Some(nos[1].clone()),
        // No status column in Alipay's bill: this changes nothing.
        bill_altered_status: Some(nos[2].clone()),
        ..Faults::default()
    })
    .await;
    let (rows, totals) = read(&fetch(&h, day(D)).await).unwrap();
    assert_eq!(
        payments(&rows),
        vec![
            ("FOREIGN203103040001", 100),
            (nos[1].as_str(), 2001),
            (nos[2].as_str(), 3000),
        ]
    );
    assert_eq!(refunds(&rows), vec![(nos[0].as_str(), "RFA", 400)]);
    assert_eq!((totals.payments, totals.payment_fen), (3, 5101));
    let foreign = &rows[0];
    assert_eq!(foreign.trade_time, beijing(D, (0, 0, 1)));
    assert_eq!(foreign.trade_no.len(), 28);
    assert!(foreign.trade_no.starts_with("20310304"));
}

#[tokio::test]
async fn bill_not_ready_answers_isp_bill_not_exist() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_not_ready: true,
        ..Faults::default()
    })
    .await;
    let error = h.client.bill_download_url(day(D)).await.unwrap_err();
    assert!(error.api().unwrap().is_bill_not_exist(), "{error:?}");
}

#[tokio::test]
async fn an_expired_url_fault_hands_out_a_url_that_answers_an_http_error() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_url_expired: true,
        ..Faults::default()
    })
    .await;
    let url = h.client.bill_download_url(day(D)).await.unwrap();
    let result = h.client.download_bill(url.as_str(), &mut Vec::new()).await;
    assert!(matches!(result, Err(Error::Http(403))), "{result:?}");
}

#[tokio::test]
async fn a_truncated_zip_is_refused_by_the_reader() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_truncated: true,
        ..Faults::default()
    })
    .await;
    let zip = fetch(&h, day(D)).await;
    let whole = {
        h.sandbox.set_faults(Faults::default());
        h.sandbox.alipay_bill(day(D)).unwrap()
    };
    assert_eq!(zip.len(), whole.len() / 2);
    assert!(matches!(read(&zip), Err(BillError::Zip(_))));
}

#[tokio::test]
async fn a_row_that_is_not_gbk_is_refused_by_the_reader() {
    let (h, _) = day_with_faults(|_| Faults {
        bill_bad_encoding: true,
        ..Faults::default()
    })
    .await;
    let zip = fetch(&h, day(D)).await;
    // The detail header is line 5; its first row is line 6.
    assert!(
        matches!(read(&zip), Err(BillError::Encoding { line: 6 })),
        "{:?}",
        read(&zip).err()
    );
}
