//! The client's bill calls: the download URL query and the streamed download, against a scripted
//! local server.

use std::io::{Cursor, Write};

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use paygate_alipay::bill::{BillRowKind, TradeBillReader};
use paygate_alipay::simulator::{BillRowSpec, sign_response, verify_gateway_request};
use paygate_alipay::{ApiError, Error, Params, RequestError, ResponseError};
use tokio::net::TcpListener;

use crate::fixtures::{ALIPAY_KEY, APP_PUBLIC_KEY};
use crate::gateway::{FakeGateway, client_for};

const METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";
/// As Alipay writes it: `/` escaped, a token that opens the bill.
const URL_NODE: &str = r#"{"code":"10000","msg":"Success","bill_download_url":"http:\/\/dwbillcenter.alipay.com\/downloadBillFile.resource?bizType=trade&userId=20880211096256330156&fileType=csv.zip&bizDates=20190916&downloadFileName=20880211096256330156_20190916.csv.zip&timestamp=1568684809&token=secret-token-1"}"#;
const URL: &str = "http://dwbillcenter.alipay.com/downloadBillFile.resource?bizType=trade&userId=20880211096256330156&fileType=csv.zip&bizDates=20190916&downloadFileName=20880211096256330156_20190916.csv.zip&timestamp=1568684809&token=secret-token-1";

fn bill_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2019, 9, 16).unwrap()
}

fn answer(node: &str) -> (u16, String) {
    (200, sign_response(METHOD, node, &ALIPAY_KEY).unwrap())
}

/// Records every write, to show the download arrives in pieces.
#[derive(Default)]
struct Sink {
    bytes: Vec<u8>,
    writes: usize,
    largest_write: usize,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        self.largest_write = self.largest_write.max(buf.len());
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_url_query_sends_exactly_the_bill_type_and_date_signed_and_reads_the_url() {
    let gateway = FakeGateway::start(vec![answer(URL_NODE)]).await;
    let url = gateway
        .client()
        .bill_download_url(bill_date())
        .await
        .unwrap();
    assert_eq!(url.as_str(), URL);
    assert!(!format!("{url:?}").contains("secret-token"));

    let requests = gateway.requests.lock().unwrap();
    let params = Params::from_form(&requests[0].body).unwrap();
    assert_eq!(params.get("method"), Some(METHOD));
    assert_eq!(
        params.get("biz_content"),
        Some(r#"{"bill_type":"trade","bill_date":"2019-09-16"}"#)
    );
    assert_eq!(params.get("notify_url"), None);
    assert_eq!(verify_gateway_request(&params, &APP_PUBLIC_KEY), Ok(()));
}

#[tokio::test]
async fn a_bill_that_does_not_exist_yet_is_recognisable_and_not_retried() {
    let gateway = FakeGateway::start(vec![
        answer(
            r#"{"code":"40004","msg":"Business Failed","sub_code":"isp.bill_not_exist","sub_msg":"账单不存在"}"#,
        ),
        answer(URL_NODE),
    ])
    .await;
    let error = gateway
        .client()
        .bill_download_url(bill_date())
        .await
        .unwrap_err();
    assert!(error.api().unwrap().is_bill_not_exist());
    assert!(!error.api().unwrap().is_trade_not_exist());
    assert!(!error.is_unavailable());
    assert_eq!(gateway.count(), 1);
}

#[test]
fn the_older_bill_not_exist_code_is_recognised_too_and_other_codes_are_not() {
    let api = |sub_code: &str| ApiError {
        code: "40004".into(),
        sub_code: Some(sub_code.into()),
        signed: true,
    };
    assert!(api("BILL_NOT_EXIST").is_bill_not_exist());
    assert!(!api("isv.invalid-arguments").is_bill_not_exist());
    assert!(!api("ACQ.TRADE_NOT_EXIST").is_bill_not_exist());
}

#[tokio::test]
async fn the_url_query_is_retried_while_alipay_is_unavailable() {
    let gateway = FakeGateway::start(vec![
        (503, String::new()),
        answer(r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#),
        answer(URL_NODE),
    ])
    .await;
    let url = gateway
        .client()
        .bill_download_url(bill_date())
        .await
        .unwrap();
    assert_eq!(url.as_str(), URL);
    assert_eq!(gateway.count(), 3);
}

#[tokio::test]
async fn an_answer_without_an_http_url_or_with_a_bad_signature_is_refused() {
    for node in [
        r#"{"code":"10000","msg":"Success"}"#,
        r#"{"code":"10000","msg":"Success","bill_download_url":""}"#,
        r#"{"code":"10000","msg":"Success","bill_download_url":"file:\/\/\/etc\/passwd"}"#,
    ] {
        let gateway = FakeGateway::start(vec![answer(node)]).await;
        let error = gateway
            .client()
            .bill_download_url(bill_date())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::Response(ResponseError::Field("bill_download_url"))
            ),
            "{node}: {error:?}"
        );
    }
    let (_, signed) = answer(URL_NODE);
    let forged = signed.replace("dwbillcenter.alipay.com", "evil.example.com");
    let gateway = FakeGateway::start(vec![(200, forged)]).await;
    let error = gateway
        .client()
        .bill_download_url(bill_date())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Response(ResponseError::BadSignature)),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_bill_is_fetched_with_a_plain_get_streamed_into_the_sink_and_parses() {
    let start = Utc.with_ymd_and_hms(2019, 9, 15, 16, 0, 0).unwrap();
    let specs = (0..50_000u32).map(|i| BillRowSpec {
        trade_no: format!("2019091622001{i:015}"),
        out_trade_no: format!("P{i:025}"),
        kind: BillRowKind::Payment,
        subject: "职前通服务".into(),
        created_at: start + Duration::seconds(i64::from(i)),
        finished_at: start + Duration::seconds(i64::from(i) + 3),
        payer_account: "*某某(planted@example.com)".into(),
        amount_fen: 19900,
        out_request_no: None,
    });
    let mut zip = Cursor::new(Vec::new());
    let written = paygate_alipay::simulator::write_trade_bill_zip(
        "20880211096256330156",
        bill_date(),
        specs,
        &mut zip,
    )
    .unwrap();
    let zip = zip.into_inner();

    let gateway = FakeGateway::start_bytes(vec![(200, zip.clone())]).await;
    let url = gateway.url.replace(
        "/gateway.do",
        "/downloadBillFile.resource?bizType=trade&token=t1",
    );
    let mut sink = Sink::default();
    let length = gateway
        .client()
        .download_bill(&url, &mut sink)
        .await
        .unwrap();

    assert_eq!(length, zip.len() as u64);
    assert_eq!(sink.bytes, zip);
    assert!(sink.writes > 1, "one write of {} bytes", sink.largest_write);
    assert!(sink.largest_write < zip.len());
    let requests = gateway.requests.lock().unwrap();
    assert_eq!(
        requests[0].request_line,
        "GET /downloadBillFile.resource?bizType=trade&token=t1 HTTP/1.1"
    );
    assert!(requests[0].body.is_empty());

    let mut bill = TradeBillReader::open(Cursor::new(&sink.bytes)).unwrap();
    let mut rows = bill.rows().unwrap();
    assert_eq!(rows.by_ref().filter(|r| r.is_ok()).count(), 50_000);
    assert_eq!(rows.totals(), Some(written));
}

#[tokio::test]
async fn an_expired_url_is_an_http_error_and_writes_nothing() {
    let gateway = FakeGateway::start(vec![(403, "expired".into())]).await;
    let url = gateway
        .url
        .replace("/gateway.do", "/downloadBillFile.resource");
    let mut sink = Sink::default();
    let error = gateway
        .client()
        .download_bill(&url, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Http(403)), "{error:?}");
    assert!(!error.is_unavailable());
    assert!(sink.bytes.is_empty());
}

#[tokio::test]
async fn a_url_that_is_not_http_is_refused_before_any_request() {
    let gateway = FakeGateway::start(vec![]).await;
    let mut sink = Sink::default();
    for url in ["file:///etc/passwd", "not a url", ""] {
        let error = gateway
            .client()
            .download_bill(url, &mut sink)
            .await
            .unwrap_err();
        assert!(
            matches!(error, Error::Request(RequestError::BillUrl)),
            "{url}: {error:?}"
        );
    }
    assert_eq!(gateway.count(), 0);
}

#[tokio::test]
async fn a_failed_download_does_not_reveal_the_token_of_its_url() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/downloadBillFile.resource?token=secret-token-2",
        listener.local_addr().unwrap()
    );
    drop(listener);
    let mut sink = Sink::default();
    let error = client_for("http://127.0.0.1:9/gateway.do")
        .download_bill(&url, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert!(error.is_unavailable());
    let mut cause: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = cause {
        assert!(!format!("{e} {e:?}").contains("secret-token"), "{e:?}");
        cause = e.source();
    }
}

#[tokio::test]
async fn a_sink_that_fails_is_its_own_error() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let gateway = FakeGateway::start_bytes(vec![(200, vec![b'P'; 1000])]).await;
    let url = gateway.url.replace("/gateway.do", "/bill");
    let error = gateway
        .client()
        .download_bill(&url, &mut Full)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Sink(_)), "{error:?}");
    assert!(!error.is_unavailable());
}
