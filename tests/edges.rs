//! The edges (issue 12): one error shape per audience, unambiguous security headers, and every
//! resource bounded (header-read and request timeouts, idle keep-alive, in-flight cap with load
//! shedding, body limits, rate limits), each shown against the real server on port 0.

mod common;

use std::time::{Duration, Instant};

use common::{CHECKOUT_KEY, TestApp, transaction_json};
use paygate::clock::Clock;
use paygate::config::LimitsConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The answer is the JSON envelope of DESIGN.md §4 with `code` and `status`.
async fn assert_envelope(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status(), status, "status");
    let content_type = res.headers()[reqwest::header::CONTENT_TYPE].clone();
    let text = res.text().await.expect("body");
    assert!(
        content_type
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{content_type:?}: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["error"]["code"], code, "{text}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{text}"
    );
}

/// WeChat's failure shape: `{"code":"FAIL","message":…}`.
async fn assert_wechat_fail(res: reqwest::Response, status: u16) {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.expect("a JSON answer");
    assert_eq!(body["code"], "FAIL");
    assert!(body["message"].is_string());
}

async fn assert_alipay_fail(res: reqwest::Response, status: u16) {
    assert_eq!(res.status(), status);
    assert_eq!(res.text().await.unwrap(), "fail");
}

fn limits(edit: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
    let mut limits = LimitsConfig {
        provider_timeout_ms: 2_000,
        ..LimitsConfig::default()
    };
    edit(&mut limits);
    limits
}

async fn spawn_with(edit: impl FnOnce(&mut LimitsConfig)) -> TestApp {
    TestApp::spawn_with_limits(common::Backend::Sqlite, limits(edit))
        .await
        .expect("sqlite")
}

#[tokio::test]
async fn every_api_error_is_the_envelope() {
    let app = TestApp::spawn().await;
    let get = |path: &str| {
        app.http
            .get(format!("{}{path}", app.url))
            .bearer_auth(CHECKOUT_KEY)
    };
    assert_envelope(
        get("/v1/nothing-here").send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    // A path parameter that is not UTF-8 once decoded: axum's Path rejection.
    assert_envelope(
        get("/v1/orders/%E9").send().await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    let res = app
        .http
        .delete(format!("{}/v1/plans", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .send()
        .await
        .unwrap();
    assert!(res.headers().contains_key("allow"), "405 keeps Allow");
    assert_envelope(res, 405, "method_not_allowed").await;
    // 3 MB: over the 64 KiB API limit.
    let big = format!(r#"{{"employer_id":"{}"}}"#, "x".repeat(3 << 20));
    let res = app.post_order(CHECKOUT_KEY, "big-1", &big).await;
    assert_envelope(res, 413, "payload_too_large").await;
    // A handler's own error keeps its own code.
    assert_envelope(
        get("/v1/orders/NOSUCHORDER").send().await.unwrap(),
        404,
        "order_not_found",
    )
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_order WHERE $1 = $1", "")
            .await,
        0
    );
}

#[tokio::test]
async fn webhook_errors_are_in_each_providers_shape() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(64 * 1024 + 1);
    let post = |provider: &str| {
        app.http
            .post(format!("{}/webhooks/{provider}", app.url))
            .body(big.clone())
    };
    assert_wechat_fail(post("wechatpay").send().await.unwrap(), 413).await;
    assert_alipay_fail(post("alipay").send().await.unwrap(), 413).await;
    let res = app
        .http
        .get(format!("{}/webhooks/wechatpay", app.url))
        .send()
        .await
        .unwrap();
    assert_wechat_fail(res, 405).await;
    let res = app
        .http
        .get(format!("{}/webhooks/alipay", app.url))
        .send()
        .await
        .unwrap();
    assert_alipay_fail(res, 405).await;
}

#[tokio::test]
async fn authorization_is_one_header_with_a_case_insensitive_scheme() {
    let app = TestApp::spawn().await;
    let plans = |values: &[&str]| {
        let mut req = app.http.get(format!("{}/v1/plans", app.url));
        for v in values {
            req = req.header("Authorization", *v);
        }
        req.send()
    };
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let res = plans(&[&format!("{scheme}   {CHECKOUT_KEY}")])
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
    let good = format!("Bearer {CHECKOUT_KEY}");
    // Two headers: refused even when both carry the same good key.
    assert_envelope(plans(&[&good, &good]).await.unwrap(), 401, "unauthorized").await;
    assert_envelope(
        plans(&[&good, "Bearer nope"]).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_envelope(
        plans(&["Bearer nope", &good]).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_envelope(
        plans(&[&format!("Basic {CHECKOUT_KEY}")]).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn a_repeated_wechat_signature_header_is_refused_and_the_single_one_settles() {
    let app = TestApp::spawn().await;
    let order = app.create_order("emp_edges", "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap().to_owned();
    let tx = transaction_json(&order, "4200000000202611290000000077", 19900);
    let signed = app
        .sandbox
        .wechat_notification(&tx, app.clock.now().timestamp());
    for name in [
        "Wechatpay-Signature",
        "Wechatpay-Serial",
        "Wechatpay-Nonce",
        "Wechatpay-Timestamp",
        "Wechatpay-Signature-Type",
    ] {
        let mut headers = signed.headers.clone();
        let same = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} signed"));
        // The identical value twice: still two headers, still refused.
        headers.push(same);
        let res = app.post_wechat_callback(&headers, &signed.body).await;
        assert_wechat_fail(res, 401).await;
        app.assert_unsettled(&order_no).await;
    }
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 204);
    app.assert_settled_once(&order_no).await;
}

#[tokio::test]
async fn rate_limits_answer_429_per_key_and_per_webhook_source() {
    let app = spawn_with(|l| {
        l.api_rate_per_key = 5;
        l.webhook_rate_per_ip = 5;
    })
    .await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let res = app
            .http
            .get(format!("{}/v1/plans", app.url))
            .bearer_auth(CHECKOUT_KEY)
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 && limited.is_none() {
            assert_eq!(res.headers()["retry-after"], "1");
            limited = Some(res);
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_envelope(limited.expect("some 429"), 429, "rate_limited").await;
    // Another key has its own budget.
    let res = app
        .http
        .get(format!("{}/v1/events", app.url))
        .bearer_auth(common::ENTITLEMENTS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let mut wechat = Vec::new();
    for _ in 0..10 {
        let res = app.post_wechat_callback(&[], "{}").await;
        wechat.push(res.status().as_u16());
        if res.status() == 429 {
            assert_wechat_fail(res, 429).await;
        }
    }
    assert_eq!(
        wechat.iter().filter(|s| **s == 401).count(),
        5,
        "{wechat:?}"
    );
    let res = app
        .http
        .post(format!("{}/webhooks/alipay", app.url))
        .body("a=b")
        .send()
        .await
        .unwrap();
    assert_alipay_fail(res, 429).await;
}

/// A raw HTTP/1.1 request whose body never comes: holds a request in flight.
async fn stalled_body(app: &TestApp) -> TcpStream {
    let addr = app.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {CHECKOUT_KEY}\r\n\
         Idempotency-Key: slow-1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_all(stream: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Classes of traffic (issue 20): with the API's one slot taken, API requests are shed, while
/// health probes are never shed and a webhook takes the slot reserved for webhooks.
#[tokio::test]
async fn past_max_in_flight_requests_are_shed_with_retry_after() {
    // 2 slots: one only webhooks may take, one for the rest of the API.
    let app = spawn_with(|l| l.max_in_flight = 2).await;
    let _slow = stalled_body(&app).await;
    let plans = || {
        app.http
            .get(format!("{}/v1/plans", app.url))
            .bearer_auth(CHECKOUT_KEY)
            .send()
    };
    // The stalled request holds the API's slot once the server has read its head.
    let mut shed = None;
    for _ in 0..50 {
        let res = plans().await.unwrap();
        if res.status() == 503 {
            shed = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shed = shed.expect("a request past the cap is shed");
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_envelope(shed, 503, "overloaded").await;
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let res = app
            .http
            .get(format!("{}{probe}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{probe} is never shed");
    }
    // A webhook takes the reserved slot: refused on its signature, not shed.
    let res = app
        .http
        .post(format!("{}/webhooks/alipay", app.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    assert_alipay_fail(res, status).await;
    drop(_slow);
    // The slot comes back once the server sees the connection gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = plans().await.unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_request_whose_body_trickles_times_out_in_the_envelope() {
    let app = spawn_with(|l| l.request_timeout_ms = 300).await;
    let started = Instant::now();
    let mut slow = stalled_body(&app).await;
    let answer = read_all(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the request timeout"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payment_order WHERE $1 = $1", "")
            .await,
        0
    );
}

/// Slow clients (issue 12, chaos): 200 connections that send half a request head hold nothing
/// the others need, and each is closed once the header-read timeout has passed; an idle
/// keep-alive connection is closed after the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_neither_delay_others_nor_stay_open() {
    let header_timeout = Duration::from_millis(1_000);
    let app = spawn_with(|l| l.header_read_timeout_ms = 1_000).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let opened = Instant::now();
    let mut half_open = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes())
            .await
            .unwrap();
        half_open.push(stream);
    }
    let started = Instant::now();
    let res = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "/healthz took {took:?} beside 200 slow clients"
    );

    // An idle keep-alive connection: one request answered, then nothing.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();

    let closed = futures_util::future::join_all(half_open.iter_mut().map(|stream| async {
        let mut buf = [0u8; 256];
        // EOF or a reset: either way the server let go. Bounded by the timeout plus margin.
        loop {
            match tokio::time::timeout(header_timeout * 4, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }))
    .await;
    assert!(
        closed.iter().all(|c| *c),
        "every half-open connection is closed"
    );
    assert!(
        opened.elapsed() >= header_timeout,
        "not closed before the header timeout"
    );
    let answer = read_all(&mut idle, header_timeout * 4).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // read_all returned before its bound: the server closed the idle connection.
    let again = idle.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").await;
    let mut buf = [0u8; 16];
    let after = idle.read(&mut buf).await;
    assert!(
        again.is_err() || matches!(after, Ok(0) | Err(_)),
        "idle connection closed"
    );
}

/// A flood of forged callbacks (bad signatures, both providers) beside a genuine payment: the
/// forged ones are refused on their signature before any database work (tests/chaos.rs shows
/// them answered 401 at once while the database is down), and the genuine notification settles
/// the order, retried by the sandbox if the flood's address limit caught it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_callbacks_does_not_starve_a_genuine_one() {
    let app = TestApp::spawn().await;
    let target = app
        .create_order("emp_flood_target", "resume-download-50")
        .await;
    let genuine = app
        .create_order("emp_flood_genuine", "resume-download-50")
        .await;
    let tx = transaction_json(&target, "4200000000202611300000000500", 19900);
    let signed = app
        .sandbox
        .wechat_notification(&tx, app.clock.now().timestamp());
    let mut forged_headers = signed.headers.clone();
    for (k, v) in forged_headers.iter_mut() {
        if k.eq_ignore_ascii_case("Wechatpay-Signature") {
            *v = format!("{}A", &v[..v.len() - 4]) + "==";
        }
    }
    let alipay_forged = common::alipay_notification(&target, &[]).replace("&sign=", "&sign=A");
    let flood = (0..400).map(|i| {
        let (http, url) = (app.http.clone(), app.url.clone());
        let wechat = app.wechat_callback_request(&forged_headers, &signed.body);
        let alipay = alipay_forged.clone();
        async move {
            let res = if i % 2 == 0 {
                wechat.send().await.unwrap()
            } else {
                http.post(format!("{url}/webhooks/alipay"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(alipay)
                    .send()
                    .await
                    .unwrap()
            };
            res.status().as_u16()
        }
    });
    let flood = tokio::spawn(futures_util::future::join_all(flood));
    let genuine_no = genuine["order_no"].as_str().unwrap();
    app.pay(genuine_no).await;
    app.wait_for_status(genuine_no, "paid").await;
    let statuses = flood.await.unwrap();
    // Refused on the signature (WeChat 401, Alipay 400), or, past webhook_rate_per_ip from
    // this one address, 429 before being read at all.
    assert!(
        statuses.iter().all(|s| [400, 401, 429].contains(s)),
        "every forged callback refused: {statuses:?}"
    );
    assert!(
        statuses.contains(&401) && statuses.contains(&400),
        "{statuses:?}"
    );
    app.assert_settled_once(genuine_no).await;
    app.assert_unsettled(target["order_no"].as_str().unwrap())
        .await;
}
