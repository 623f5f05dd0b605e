//! `Client::trade_bill` and `Client::download_bill` against a minimal HTTP/1.1 server on port 0
//! that records what it receives: signed requests, verified answers, unsigned downloads
//! streamed into the sink, retries, and "bill not ready".

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::NaiveDate;
use paygate_wechatpay::{
    Authorization, BillDownload, Client, ClientError, MerchantCredentials, PlatformKeys,
    RetryPolicy, Signer, TradeBillReader, Verifier, VerifyError, signed_headers,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::fixtures::{
    MERCHANT_KEY, MERCHANT_PUB, PLATFORM_SERIAL, platform_signer, platform_verifier,
};

const NOW: i64 = 1_780_000_000;
const MCHID: &str = "1900000001";
const MERCHANT_SERIAL: &str = "444F4864EA9B34415F1A0AF4A2F9D0E3B1F2C3D4";
const FIXTURE: &[u8] = include_bytes!("../fixtures/bill.ALL.csv");
const FIXTURE_SHA1: &str = "9bb6cd819be348f17a9cbcedddc8eb62fefbd790";

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    /// An answer signed as WeChat signs it.
    fn signed(status: u16, body: &str) -> Reply {
        let headers = signed_headers(
            platform_signer(),
            PLATFORM_SERIAL,
            NOW,
            "0123456789abcdef0123456789abcdef",
            body.as_bytes(),
        )
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        Reply {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    /// An unsigned answer, as bill downloads are.
    fn raw(status: u16, body: &[u8]) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
        }
    }
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

/// A server on port 0: each request is recorded and answered by `handler(request, n)` (n counts
/// requests from 0), one request per connection, the body sent in 16 KiB pieces.
struct Server {
    base: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    async fn start(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let count = Arc::new(AtomicUsize::new(0));
        let recorded = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, recorded, count) = (handler.clone(), recorded.clone(), count.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8(head).unwrap();
                    let mut lines = head.split("\r\n");
                    let mut request_line = lines.next().unwrap().split(' ');
                    let request = Recorded {
                        method: request_line.next().unwrap().to_owned(),
                        target: request_line.next().unwrap().to_owned(),
                        headers: lines
                            .filter_map(|l| l.split_once(": "))
                            .map(|(n, v)| (n.to_owned(), v.to_owned()))
                            .collect(),
                    };
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let reply = handler(&request, n);
                    recorded.lock().unwrap().push(request);
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (name, value) in &reply.headers {
                        out.push_str(&format!("{name}: {value}\r\n"));
                    }
                    out.push_str("\r\n");
                    stream.write_all(out.as_bytes()).await.unwrap();
                    for piece in reply.body.chunks(16 * 1024) {
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                        stream.flush().await.unwrap();
                    }
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server { base, requests }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn client(api_base: &str) -> Client {
    let mut keys = PlatformKeys::new();
    keys.insert(PLATFORM_SERIAL, platform_verifier());
    let creds = MerchantCredentials {
        mchid: MCHID.to_owned(),
        serial_no: MERCHANT_SERIAL.to_owned(),
        signer: Signer::from_pem(MERCHANT_KEY).unwrap(),
    };
    Client::new(
        reqwest::Client::new(),
        api_base,
        Arc::new(creds),
        Arc::new(RwLock::new(keys)),
        Arc::new(|| NOW),
    )
    .with_retry(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    })
}

/// The request's `Authorization` is the merchant's signature over `GET\n{canonical}\n…\n\n`.
fn assert_signed(request: &Recorded, canonical_url: &str) {
    let authorization = Authorization::parse(request.header("Authorization").unwrap()).unwrap();
    assert_eq!(authorization.mchid, MCHID);
    assert_eq!(authorization.serial_no, MERCHANT_SERIAL);
    assert_eq!(authorization.timestamp, NOW);
    let message = authorization.message("GET", canonical_url, b"");
    let merchant = Verifier::from_pem(MERCHANT_PUB).unwrap();
    assert!(
        merchant.verify_base64(&message, &authorization.signature),
        "signed over {canonical_url}"
    );
    assert!(request.header("User-Agent").is_some());
    assert!(request.header("Accept").is_some());
}

fn answer(download_url: &str) -> String {
    format!(
        r#"{{"hash_type":"SHA1","hash_value":"{FIXTURE_SHA1}","download_url":"{download_url}"}}"#
    )
}

#[tokio::test]
async fn trade_bill_is_a_signed_get_whose_verified_answer_parses() {
    let server = Server::start(|_, _| {
        Reply::signed(
            200,
            &answer("https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO"),
        )
    })
    .await;
    let client = client(&server.base);
    let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();

    let bill = client.trade_bill(date, true).await.unwrap();
    assert_eq!(bill.hash_type, "SHA1");
    assert_eq!(bill.hash_value, FIXTURE_SHA1);
    assert!(
        bill.download_url
            .ends_with("token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO")
    );
    // The token is not in the Debug output.
    assert!(!format!("{bill:?}").contains("6XIv5TUP"));

    client.trade_bill(date, false).await.unwrap();
    let requests = server.requests();
    let gzip = "/v3/bill/tradebill?bill_date=2026-11-29&bill_type=ALL&tar_type=GZIP";
    let plain = "/v3/bill/tradebill?bill_date=2026-11-29&bill_type=ALL";
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.method.as_str(), r.target.as_str()))
            .collect::<Vec<_>>(),
        [("GET", gzip), ("GET", plain)]
    );
    assert_signed(&requests[0], gzip);
    assert_signed(&requests[1], plain);
}

#[tokio::test]
async fn a_trade_bill_answer_that_fails_verification_is_refused() {
    let server = Server::start(|_, _| {
        let mut reply = Reply::signed(
            200,
            &answer("https://api.mch.weixin.qq.com/v3/billdownload/file?token=a"),
        );
        // Another download URL than the one signed.
        reply.body = answer("https://evil.example/v3/billdownload/file?token=a").into_bytes();
        reply
    })
    .await;
    let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    assert!(matches!(
        client(&server.base).trade_bill(date, false).await,
        Err(ClientError::Verify(VerifyError::BadSignature))
    ));
}

#[tokio::test]
async fn a_bill_not_yet_made_is_recognisable() {
    let server = Server::start(|_, n| match n {
        0 => Reply::signed(
            400,
            r#"{"code":"NO_STATEMENT_EXIST","message":"The statement does not exist"}"#,
        ),
        1 => Reply::signed(
            400,
            r#"{"code":"STATEMENT_CREATING","message":"账单生成中"}"#,
        ),
        _ => Reply::signed(400, r#"{"code":"PARAM_ERROR","message":"参数错误"}"#),
    })
    .await;
    let client = client(&server.base);
    let date = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
    for expected in ["NO_STATEMENT_EXIST", "STATEMENT_CREATING"] {
        let error = client.trade_bill(date, false).await.unwrap_err();
        assert_eq!(error.api_code(), Some(expected));
        assert!(error.is_bill_not_ready());
        assert!(!error.is_unavailable());
    }
    let error = client.trade_bill(date, false).await.unwrap_err();
    assert_eq!(error.api_code(), Some("PARAM_ERROR"));
    assert!(!error.is_bill_not_ready());
    // 400s are not retried: one request each.
    assert_eq!(server.requests().len(), 3);
}

/// Counts the writes it receives, to show the download arrives in pieces.
#[derive(Default)]
struct Sink {
    bytes: Vec<u8>,
    writes: usize,
    largest_write: usize,
}

impl std::io::Write for Sink {
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

/// A generated bill of about 2.4 MB.
fn big_bill() -> Vec<u8> {
    let rows = (0..10_000u64).map(|i| paygate_wechatpay::BillRowSpec {
        trade_time: chrono::DateTime::from_timestamp(NOW + i as i64, 0).unwrap(),
        appid: "wx2421b1c4370ec43b".to_owned(),
        mchid: MCHID.to_owned(),
        transaction_id: format!("4200000000{i:018}"),
        out_trade_no: format!("P{i:025}"),
        payer_openid: "oPAYER".to_owned(),
        trade_type: "NATIVE".to_owned(),
        trade_state: "SUCCESS".to_owned(),
        description: "职前通".to_owned(),
        attach: String::new(),
        amount_fen: 19900,
        refund: None,
    });
    let mut file = Vec::new();
    paygate_wechatpay::write_trade_bill(rows, &mut file).unwrap();
    file
}

#[tokio::test]
async fn download_is_a_signed_get_of_the_url_whose_unsigned_answer_streams_into_the_sink() {
    let file = big_bill();
    let served = file.clone();
    let server = Server::start(move |_, _| Reply::raw(200, &served)).await;
    // WeChat's download host is not the API base: a URL anywhere is signed by its path + query.
    let client = client("https://api.mch.weixin.qq.com");
    let bill = BillDownload {
        hash_type: "SHA1".to_owned(),
        hash_value: paygate_wechatpay::bill_hash(&file[..], false).unwrap(),
        download_url: format!("{}/v3/billdownload/file?token=tok%2Ben_1", server.base),
    };
    let mut sink = Sink::default();
    let written = client.download_bill(&bill, &mut sink).await.unwrap();

    assert_eq!(written, file.len() as u64);
    assert_eq!(sink.bytes, file);
    // Written as it arrived, never as one piece.
    assert!(sink.writes > 1, "{} writes", sink.writes);
    assert!(sink.largest_write < file.len());
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, "/v3/billdownload/file?token=tok%2Ben_1");
    assert_signed(&requests[0], "/v3/billdownload/file?token=tok%2Ben_1");

    // What was downloaded checks out and reads.
    bill.verify_file(&sink.bytes[..], false).unwrap();
    let mut reader = TradeBillReader::new(&sink.bytes[..], false);
    assert_eq!(reader.by_ref().filter(|r| r.is_ok()).count(), 10_000);
    assert_eq!(reader.totals().unwrap().payment_fen, 10_000 * 19900);
}

#[tokio::test]
async fn a_download_under_the_api_base_is_signed_as_the_part_after_it() {
    // The sandbox mounts WeChat's paths under /sandbox/wechatpay and checks the signature over
    // what follows, as for every other request.
    let server = Server::start(|_, _| Reply::raw(200, FIXTURE)).await;
    let api_base = format!("{}/sandbox/wechatpay", server.base);
    let bill = BillDownload {
        hash_type: "SHA1".to_owned(),
        hash_value: FIXTURE_SHA1.to_owned(),
        download_url: format!("{api_base}/v3/billdownload/file?token=abc"),
    };
    let mut file = Vec::new();
    let written = client(&api_base)
        .download_bill(&bill, &mut file)
        .await
        .unwrap();
    assert_eq!((written, &file[..]), (FIXTURE.len() as u64, FIXTURE));
    let request = &server.requests()[0];
    assert_eq!(
        request.target,
        "/sandbox/wechatpay/v3/billdownload/file?token=abc"
    );
    assert_signed(request, "/v3/billdownload/file?token=abc");
    bill.verify_file(&file[..], false).unwrap();
}

#[tokio::test]
async fn a_gzip_download_is_written_as_sent_and_checked_uncompressed() {
    let compressed = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(FIXTURE).unwrap();
        encoder.finish().unwrap()
    };
    let served = compressed.clone();
    let server = Server::start(move |_, _| Reply::raw(200, &served)).await;
    let bill = BillDownload {
        hash_type: "SHA1".to_owned(),
        hash_value: FIXTURE_SHA1.to_owned(),
        download_url: format!("{}/v3/billdownload/file?token=gz", server.base),
    };
    let mut file = Vec::new();
    client(&server.base)
        .download_bill(&bill, &mut file)
        .await
        .unwrap();
    assert_eq!(file, compressed);
    bill.verify_file(&file[..], true).unwrap();
    let mut reader = TradeBillReader::new(&file[..], true);
    assert_eq!(reader.by_ref().map(Result::unwrap).count(), 45);
    assert_eq!(reader.totals().unwrap().count, 45);
}

#[tokio::test]
async fn a_download_that_fails_before_any_byte_is_retried_and_a_refusal_is_not() {
    let server = Server::start(|request, n| match (request.target.as_str(), n) {
        (_, 0) => Reply::raw(503, b""),
        ("/v3/billdownload/file?token=ok", _) => Reply::raw(200, FIXTURE),
        _ => Reply::raw(
            404,
            br#"{"code":"RESOURCE_NOT_EXISTS","message":"token expired"}"#,
        ),
    })
    .await;
    let client = client(&server.base);
    let ok = BillDownload {
        hash_type: "SHA1".to_owned(),
        hash_value: FIXTURE_SHA1.to_owned(),
        download_url: format!("{}/v3/billdownload/file?token=ok", server.base),
    };
    let mut file = Vec::new();
    client.download_bill(&ok, &mut file).await.unwrap();
    assert_eq!(file, FIXTURE);
    assert_eq!(server.requests().len(), 2, "the 503 was retried once");

    let expired = BillDownload {
        download_url: format!("{}/v3/billdownload/file?token=expired", server.base),
        ..ok.clone()
    };
    let mut file = Vec::new();
    match client.download_bill(&expired, &mut file).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "RESOURCE_NOT_EXISTS"));
        }
        other => panic!("{other:?}"),
    }
    assert!(file.is_empty());
    assert_eq!(server.requests().len(), 3, "a 404 is not retried");
}

#[tokio::test]
async fn a_sink_that_fails_or_a_url_that_is_not_one_is_an_error() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let server = Server::start(|_, _| Reply::raw(200, FIXTURE)).await;
    let client = client(&server.base);
    let bill = BillDownload {
        hash_type: "SHA1".to_owned(),
        hash_value: FIXTURE_SHA1.to_owned(),
        download_url: format!("{}/v3/billdownload/file?token=t", server.base),
    };
    assert!(matches!(
        client.download_bill(&bill, &mut Full).await,
        Err(ClientError::Sink(_))
    ));
    for url in [
        "/v3/billdownload/file?token=t",
        "ftp://example.com/x",
        "not a url",
    ] {
        let bill = BillDownload {
            download_url: url.to_owned(),
            ..bill.clone()
        };
        let error = client
            .download_bill(&bill, &mut Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::DownloadUrl));
        // The error does not quote the URL (its token).
        assert!(!error.to_string().contains("token"));
    }
}
