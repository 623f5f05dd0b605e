//! Issue 13: the buyer comes back to the platform (Alipay `return_url`, WeChat H5
//! `redirect_url`), `return-check` turns a verified return into an active query, and
//! `GET /v1/orders/{no}?wait=N` answers the moment the order is paid.

mod common;

use std::time::Duration;

use common::{ALLOWED_RETURN_HOST, Backend, CHECKOUT_KEY, RETURN_URL, TestApp};
use serde_json::{Value, json};
use tokio::time::Instant;

async fn checkout_app(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with_checkout(backend).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn order_no(order: &Value) -> &str {
    order["order_no"].as_str().expect("order_no")
}

fn rendered(template: &str, order: &Value) -> String {
    template.replace("{order_no}", order_no(order))
}

/// The buyer presses Pay on the sandbox cashier (a browser form post); answers where the
/// browser is sent next.
async fn browser_pays(app: &TestApp, pay_path: &str) -> String {
    let res = no_redirects()
        .post(format!("{}{pay_path}", app.url))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "text/html")
        .send()
        .await
        .expect("pay");
    assert_eq!(res.status(), 303, "the cashier sends the browser back");
    res.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

/// An Alipay page/wap order paid in the browser with notifications dropped: answers the
/// return query Alipay's redirect carried.
async fn paid_alipay_order_and_its_return(app: &TestApp, channel: &str) -> (Value, String) {
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    let order = app
        .create_order_on("emp_return", "alipay", channel, json!({}))
        .await;
    app.open_alipay_payment(&order).await;
    let location = browser_pays(app, &format!("/sandbox/pay/{}", order_no(&order))).await;
    let back = rendered(RETURN_URL, &order);
    let query = location
        .strip_prefix(&format!("{back}?"))
        .unwrap_or_else(|| panic!("back to {back}: {location}"))
        .to_owned();
    (order, query)
}

async fn return_check(app: &TestApp, order_no: &str, body: &str) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}/v1/orders/{order_no}/return-check", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("return-check");
    (
        res.status().as_u16(),
        res.json().await.expect("json answer"),
    )
}

async fn get_waiting(app: &TestApp, order_no: &str, wait: &str) -> (u16, Value) {
    let res = app
        .http
        .get(format!("{}/v1/orders/{order_no}?wait={wait}", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .send()
        .await
        .expect("get");
    (res.status().as_u16(), res.json().await.expect("json"))
}

/// `GET …?wait=20` in a task of its own; it answers when it was answered, and the order.
fn spawn_wait(app: &TestApp, order_no: &str) -> tokio::task::JoinHandle<(Instant, Value)> {
    let (url, http, no) = (app.url.clone(), app.http.clone(), order_no.to_owned());
    tokio::spawn(async move {
        let res = http
            .get(format!("{url}/v1/orders/{no}?wait=20"))
            .bearer_auth(CHECKOUT_KEY)
            .send()
            .await
            .expect("get");
        let body: Value = res.json().await.expect("json");
        (Instant::now(), body)
    })
}

#[tokio::test]
async fn a_per_order_return_url_on_an_allowed_host_is_what_page_and_h5_carry() {
    let app = checkout_app(Backend::Sqlite).await.expect("sqlite");
    let own = format!("https://{ALLOWED_RETURN_HOST}/pay/{{order_no}}/done?from=pay");
    let page = app
        .create_order_on("emp_own", "alipay", "page", json!({"return_url": own}))
        .await;
    let url = page["payment"]["pay_url"].as_str().unwrap();
    let params =
        paygate_alipay::Params::from_form(url.split_once('?').unwrap().1.as_bytes()).expect("form");
    assert_eq!(
        params.get("return_url"),
        Some(rendered(&own, &page).as_str())
    );

    let h5 = app
        .create_order_on(
            "emp_own",
            "wechatpay",
            "h5",
            json!({"return_url": own, "client_ip": "203.0.113.9"}),
        )
        .await;
    let h5_url = h5["payment"]["h5_url"].as_str().unwrap();
    assert!(
        h5_url.ends_with(&format!(
            "&redirect_url={}",
            paygate_wechatpay::url_encode_component(&rendered(&own, &h5))
        )),
        "{h5_url}"
    );
}

#[tokio::test]
async fn a_per_order_return_url_that_is_not_allowed_is_refused_with_nothing_written() {
    let app = checkout_app(Backend::Sqlite).await.expect("sqlite");
    for (channel, url) in [
        ("page", "https://evil.example/paid/{order_no}"),
        ("page", "http://m.example.cn/paid/{order_no}"),
        ("page", "https://m.example.cn/paid/{employer_id}"),
        ("page", "https://m.example.cn/paid?who=emp_refused"),
        ("page", "https://m.example.cn/EMP_REFUSED/{order_no}"),
        ("qr", "https://m.example.cn/paid/{order_no}"),
    ] {
        let body = json!({"employer_id": "emp_refused", "plan": "resume-download-50",
            "provider": "alipay", "channel": channel, "return_url": url});
        let res = app
            .post_order(
                CHECKOUT_KEY,
                &format!("k-{channel}-{}", url.len()),
                &body.to_string(),
            )
            .await;
        assert_eq!(res.status(), 422, "{url}");
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "return_url_not_allowed", "{url}");
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment_order WHERE employer_id <> $1",
            ""
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM idempotency WHERE idempotency_key <> $1",
            ""
        )
        .await,
        0
    );
    assert!(app.sandbox.alipay_requests().is_empty());
}

/// The whole return, on both backends: pay in the browser with the notification lost, come
/// back with Alipay's signed query, and `return-check` settles the order exactly once.
#[tokio::test]
async fn the_sandbox_return_query_passes_return_check_which_settles_an_unnotified_order_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = checkout_app(backend).await else {
            continue;
        };
        for channel in ["page", "wap"] {
            let (order, query) = paid_alipay_order_and_its_return(&app, channel).await;
            let no = order_no(&order);
            let params = paygate_alipay::Params::from_form(query.as_bytes()).unwrap();
            let method = format!("alipay.trade.{channel}.pay.return");
            assert_eq!(params.get("method"), Some(method.as_str()));
            assert_eq!(params.get("out_trade_no"), Some(no));
            assert_eq!(params.get("total_amount"), Some("199.00"));
            // The notification was dropped: nothing has settled it.
            app.assert_unsettled(no).await;

            let (status, answer) = return_check(&app, no, &query).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["status"], "paid");
            assert_eq!(answer["payment_record"]["source"], "query");
            // Again (the page reloaded): still one payment, one grant, one event.
            let (status, _) = return_check(&app, no, &format!("?{query}")).await;
            assert_eq!(status, 200);
            app.assert_settled_once(no).await;
        }
    }
}

#[tokio::test]
async fn a_tampered_return_query_is_refused_and_changes_nothing() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = checkout_app(backend).await else {
            continue;
        };
        let (order, query) = paid_alipay_order_and_its_return(&app, "page").await;
        let other = app
            .create_order_on("emp_other", "alipay", "page", json!({}))
            .await;
        let no = order_no(&order);
        let params = paygate_alipay::Params::from_form(query.as_bytes()).unwrap();
        let altered = |key: &str, value: &str| {
            let mut p = params.clone();
            p.insert(key, value);
            p.to_form()
        };
        let before = app.dump_database().await;
        // One base64 character of the signature changed (away from the `==` padding).
        let mut flipped = params.get("sign").unwrap().to_owned();
        let other_char = if flipped.as_bytes()[10] == b'A' {
            "B"
        } else {
            "A"
        };
        flipped.replace_range(10..11, other_char);
        for (target, body) in [
            (no, altered("total_amount", "0.01")),
            (no, altered("out_trade_no", order_no(&other))),
            (no, altered("sign", &flipped)),
            (no, String::new()),
            // Genuine, but about another order.
            (order_no(&other), query.clone()),
        ] {
            let (status, answer) = return_check(&app, target, &body).await;
            assert_eq!(status, 422, "{body}: {answer}");
            assert_eq!(answer["error"]["code"], "return_query_rejected");
        }
        app.assert_unsettled(no).await;
        app.assert_unsettled(order_no(&other)).await;
        assert_eq!(app.dump_database().await, before, "no row changed");
    }
}

/// WeChat's H5 redirect carries nothing: `return-check` with an empty body is an active query
/// (it settles a paid order), and a body, blanks included, is refused.
#[tokio::test]
async fn a_wechat_return_check_is_an_active_query() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = checkout_app(backend).await else {
            continue;
        };
        app.set_faults(json!({"drop_notifications": 1.0})).await;
        let order = app
            .create_order_on(
                "emp_h5",
                "wechatpay",
                "h5",
                json!({"client_ip": "203.0.113.9"}),
            )
            .await;
        let no = order_no(&order);
        // The browser opens the h5_url with our redirect_url, pays, and is sent back to it.
        let h5_url = order["payment"]["h5_url"].as_str().unwrap();
        let page = app
            .http
            .get(h5_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the Pay form")
            .replace("&amp;", "&");
        let location = browser_pays(&app, &action).await;
        assert_eq!(location, rendered(RETURN_URL, &order));

        let (status, _) = return_check(&app, no, "out_trade_no=x").await;
        assert_eq!(status, 422);
        // Blanks are a body too (README: any body is 422).
        let (status, answer) = return_check(&app, no, " \r\n\t").await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["code"], "return_query_rejected");
        app.assert_unsettled(no).await;
        let (status, answer) = return_check(&app, no, "").await;
        assert_eq!(status, 200);
        assert_eq!(answer["status"], "paid");
        app.assert_settled_once(no).await;
    }
}

#[tokio::test]
async fn wait_answers_within_a_second_of_a_settlement_on_the_same_instance() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = checkout_app(backend).await else {
            continue;
        };
        let (order, query) = paid_alipay_order_and_its_return(&app, "page").await;
        let no = order_no(&order).to_owned();
        let waiting = spawn_wait(&app, &no);
        let watch = app.db.order_watch().clone();
        common::wait_until("the wait has begun", || watch.waiters() == 1).await;
        let (status, _) = return_check(&app, &no, &query).await;
        assert_eq!(status, 200);
        let settled = Instant::now();
        let (answered, body) = waiting.await.expect("waiter");
        assert_eq!(body["status"], "paid");
        assert!(
            answered.saturating_duration_since(settled) < Duration::from_secs(1),
            "answered {:?} after the settlement",
            answered.saturating_duration_since(settled)
        );
        assert!(watch.is_empty(), "the finished wait left nothing behind");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_sees_a_settlement_by_another_instance_within_the_reread_interval() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(a) = checkout_app(backend).await else {
            continue;
        };
        let b = a.spawn_sibling().await;
        let order = a
            .create_order_on("emp_two", "alipay", "page", json!({}))
            .await;
        let no = order_no(&order).to_owned();
        let waiting = spawn_wait(&a, &no);
        let watch = a.db.order_watch().clone();
        common::wait_until("the wait has begun", || watch.waiters() == 1).await;
        // Alipay's notification reaches instance B; A learns of it from the database only.
        let (status, answer) = b
            .post_alipay_callback(&common::alipay_notification(&order, &[]))
            .await;
        assert_eq!((status, answer.as_str()), (200, "success"));
        let settled = Instant::now();
        let (answered, body) = waiting.await.expect("waiter");
        assert_eq!(body["status"], "paid");
        let after = answered.saturating_duration_since(settled);
        // One re-read interval, plus the read and the answer (room for a loaded CI machine).
        assert!(
            after < paygate::order_watch::REREAD_INTERVAL + Duration::from_millis(500),
            "answered {after:?} after the settlement"
        );
    }
}

#[tokio::test]
async fn wait_answers_pending_when_nothing_happens_and_refuses_a_bad_wait() {
    let app = checkout_app(Backend::Sqlite).await.expect("sqlite");
    let order = app.create_order("emp_idle", "resume-view-30d").await;
    let no = order_no(&order);
    let started = Instant::now();
    let (status, body) = get_waiting(&app, no, "1").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "pending");
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited");
    for bad in ["31", "-1", "1.5", "soon"] {
        let (status, body) = get_waiting(&app, no, bad).await;
        assert_eq!(status, 400, "wait={bad}");
        assert_eq!(body["error"]["code"], "invalid_wait");
    }
    // A paid order answers at once, whatever the wait.
    app.pay(no).await;
    app.wait_for_status(no, "paid").await;
    let started = Instant::now();
    let (_, body) = get_waiting(&app, no, "30").await;
    assert_eq!(body["status"], "paid");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// 1,000 pages waiting at once (100 on each of 10 orders): all answered `paid` when their
/// order settles, and nothing is left watched afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_waits_complete() {
    let app = checkout_app(Backend::Sqlite).await.expect("sqlite");
    let mut orders = Vec::new();
    for i in 0..10 {
        orders.push(
            order_no(
                &app.create_order(&format!("emp_w{i}"), "resume-view-30d")
                    .await,
            )
            .to_owned(),
        );
    }
    let http = reqwest::Client::new();
    let mut waits = tokio::task::JoinSet::new();
    for k in 0..1000 {
        let (http, url, no) = (http.clone(), app.url.clone(), orders[k % 10].clone());
        waits.spawn(async move {
            let res = http
                .get(format!("{url}/v1/orders/{no}?wait=25"))
                .bearer_auth(CHECKOUT_KEY)
                .send()
                .await
                .expect("get");
            let body: Value = res.json().await.expect("json");
            body["status"].as_str().map(str::to_owned)
        });
    }
    let watch = app.db.order_watch().clone();
    common::wait_until("1,000 waits have begun", || watch.waiters() == 1000).await;
    for no in &orders {
        app.pay(no).await;
    }
    let mut paid = 0;
    while let Some(status) = waits.join_next().await {
        assert_eq!(status.expect("wait").as_deref(), Some("paid"));
        paid += 1;
    }
    assert_eq!(paid, 1000);
    assert!(watch.is_empty());
}

/// `paygate serve --sandbox` with stderr captured (not a terminal): plain-text logs without a
/// single escape character, paygate's own INFO lines kept, the scheduler's INFO chatter not.
#[test]
fn logs_written_to_a_pipe_carry_no_escape_codes_and_no_library_chatter() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["serve", "--sandbox"])
        .env(
            "PAYGATE_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("logs.db").display()),
        )
        .env("PAYGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env_remove("PAYGATE_CONFIG")
        .env_remove("PAYGATE_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run paygate");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, got) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).split(b'\n') {
            if lines.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Until the scheduler has started (it logs on start) and the server listens.
    while !String::from_utf8_lossy(&log).contains("paygate listening") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match got.recv_timeout(left) {
            Ok(line) => {
                log.extend_from_slice(&line);
                log.push(b'\n');
            }
            Err(_) => break,
        }
    }
    // A little more of the running server's output, then stop it.
    while let Ok(line) = got.recv_timeout(Duration::from_millis(300)) {
        log.extend_from_slice(&line);
        log.push(b'\n');
    }
    child.kill().expect("stop paygate");
    let _ = child.wait();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("paygate listening"), "{text}");
    assert!(text.contains(" INFO "), "{text}");
    assert!(
        !log.contains(&0x1b),
        "an escape character in the logs: {text:?}"
    );
    assert!(!text.contains("Job creator created"), "{text}");
}

/// `serve --sandbox`'s stand-in merchant page shows what the browser brought back.
#[tokio::test]
async fn the_sandbox_merchant_return_page_shows_the_return_query() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(format!(
            "{}/sandbox/return/P0000000000000000000000001?out_trade_no=P0000000000000000000000001&total_amount=199.00",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("total_amount") && html.contains("199.00"),
        "{html}"
    );
    assert!(html.contains("/v1/orders/P0000000000000000000000001/return-check"));
}
