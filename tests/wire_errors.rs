//! One error shape down to the protocol level (issue 20): requests hyper refuses before any
//! handler runs (400, 431) and a declared body over the route's limit (413, before the body is
//! read) are answered in the envelope, or on a webhook route in its provider's shape. Raw
//! sockets: these requests are what an HTTP client will not send.

mod common;

use std::time::Duration;

use common::{CHECKOUT_KEY, TestApp};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Well under the 10 s request and header-read timeouts: an answer within it was not held
/// until a timeout.
const PROMPTLY: Duration = Duration::from_secs(5);

struct Answer {
    status: u16,
    head: String,
    body: String,
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a whole answer: {text:?}"));
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head:?}"));
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Sends `bytes` on a new connection; the answer, which must end with the connection closed
/// by the server [`PROMPTLY`].
async fn exchange(app: &TestApp, bytes: &[u8]) -> Answer {
    let mut stream = connect(app).await;
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut out))
        .await
        .expect("answered and closed, not held until a timeout")
        .unwrap();
    parse(&out)
}

fn assert_envelope(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}\n{}", answer.head, answer.body);
    assert!(
        answer.head.contains("content-type: application/json"),
        "{}",
        answer.head
    );
    let body: Value = serde_json::from_str(&answer.body).expect("a JSON body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn assert_wechat_fail(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let body: Value = serde_json::from_str(&answer.body).expect("a JSON body");
    assert_eq!(body["code"], "FAIL", "{body}");
    assert!(body["message"].is_string());
}

fn assert_alipay_fail(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body, "fail");
}

/// 120 headers: over hyper's 100.
fn many_headers() -> String {
    (0..120).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect()
}

#[tokio::test]
async fn requests_hyper_cannot_parse_are_answered_in_the_envelope() {
    let app = TestApp::spawn().await;
    for (what, request) in [
        (
            "a path that is not UTF-8",
            &b"GET /v1/orders/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        ),
        ("a malformed request line", b"NOT A REQUEST\r\n\r\n"),
        (
            "two different Content-Lengths",
            b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
    ] {
        let answer = exchange(&app, request).await;
        assert_envelope(&answer, 400, "bad_request");
        assert!(answer.head.contains("connection: close"), "{what}");
    }
    let answer = exchange(
        &app,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", many_headers()).as_bytes(),
    )
    .await;
    assert_envelope(&answer, 431, "headers_too_large");
}

#[tokio::test]
async fn a_webhook_route_hyper_refuses_answers_in_its_providers_shape() {
    let app = TestApp::spawn().await;
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{}\r\n",
            many_headers()
        )
    };
    assert_wechat_fail(
        &exchange(&app, post("/webhooks/wechatpay").as_bytes()).await,
        431,
    );
    assert_alipay_fail(
        &exchange(&app, post("/webhooks/alipay").as_bytes()).await,
        431,
    );
}

/// A connection that was served first: its answer is untouched, and the refused request after
/// it (its route read afresh) gets its own shape.
#[tokio::test]
async fn a_refused_request_after_a_served_one_on_the_same_connection() {
    let app = TestApp::spawn().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Read the whole first answer, by its Content-Length.
    let mut first = Vec::new();
    let mut buf = [0u8; 4096];
    let served = loop {
        let n = tokio::time::timeout(PROMPTLY, stream.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        assert!(n > 0, "kept alive");
        first.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&first).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .to_ascii_lowercase()
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .expect("a sized answer")
                .trim()
                .parse()
                .unwrap();
            if body.len() >= length {
                break parse(&first);
            }
        }
    };
    assert_eq!(served.status, 200);
    assert!(!served.body.is_empty());
    stream
        .write_all(
            format!(
                "POST /webhooks/wechatpay HTTP/1.1\r\nHost: x\r\n{}\r\n",
                many_headers()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut rest))
        .await
        .expect("answered and closed")
        .unwrap();
    assert_wechat_fail(&parse(&rest), 431);
}

/// A `Content-Length` over the route's limit and no body at all: 413 at once, in paygate's
/// wording, and the connection let go, not held until the request timeout.
#[tokio::test]
async fn an_oversized_content_length_is_413_before_any_body_is_read() {
    let app = TestApp::spawn().await;
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CHECKOUT_KEY}\r\n\
             Idempotency-Key: big-1\r\nContent-Type: application/json\r\n\
             Content-Length: 10000000\r\n\r\n"
        )
    };
    let answer = exchange(&app, head("/v1/orders").as_bytes()).await;
    assert_envelope(&answer, 413, "payload_too_large");
    assert!(answer.body.contains("65536 bytes"), "{}", answer.body);
    assert_wechat_fail(
        &exchange(&app, head("/webhooks/wechatpay").as_bytes()).await,
        413,
    );
    assert_alipay_fail(
        &exchange(&app, head("/webhooks/alipay").as_bytes()).await,
        413,
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_order WHERE $1 = $1", "")
            .await,
        0
    );
}

/// A body that declares no length and grows past the limit is refused as it is read, with the
/// same wording (not the framework's).
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413_in_paygates_wording() {
    let app = TestApp::spawn().await;
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CHECKOUT_KEY}\r\n\
         Idempotency-Key: big-2\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // One byte over the limit, and nothing after it: the server has read all that was sent
    // when it answers, so its close is clean (unread bytes would make it a reset).
    let chunk = vec![b'x'; 65_537];
    stream
        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
        .await
        .unwrap();
    stream.write_all(&chunk).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut out))
        .await
        .expect("answered and closed")
        .unwrap();
    let answer = parse(&out);
    assert_envelope(&answer, 413, "payload_too_large");
    assert!(answer.body.contains("65536 bytes"), "{}", answer.body);
    assert!(!answer.body.contains("Failed to buffer"), "{}", answer.body);
}
