//! Test clocks (issue 22): in sandbox mode one simulated clock, shared by the gateway and the
//! embedded simulator, moved by `POST /sandbox/clock/advance`, which runs every job that came
//! due on the way before it answers. Outside sandbox mode none of it exists.

mod common;

use std::sync::Arc;

use axum::response::IntoResponse;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use common::{Backend, CHECKOUT_KEY, TestApp};
use paygate::app::{Application, Options};
use paygate::clock::{Clock, TestClock, beijing, rfc3339_beijing};
use paygate::config::Config;
use serde_json::{Value, json};

/// Both backends: the PostgreSQL one only when a server is configured.
macro_rules! on_both_backends_with_test_clock {
    ($sqlite:ident, $postgres:ident, $body:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body(
                TestApp::spawn_with_test_clock(Backend::Sqlite, vec![])
                    .await
                    .unwrap(),
            )
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            if let Some(app) = TestApp::spawn_with_test_clock(Backend::Postgres, vec![]).await {
                $body(app).await;
            }
        }
    };
}

async fn clock_app() -> TestApp {
    TestApp::spawn_with_test_clock(Backend::Sqlite, vec![])
        .await
        .expect("sqlite always runs")
}

/// `POST /sandbox/clock/advance` with `body`: the status, the header, the answer.
async fn advance_with(app: &TestApp, body: Value) -> (u16, Option<String>, Value) {
    let res = app
        .http
        .post(format!("{}/sandbox/clock/advance", app.url))
        .json(&body)
        .send()
        .await
        .expect("advance");
    let status = res.status().as_u16();
    let header = res
        .headers()
        .get("Paygate-Test-Clock")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, header, res.json().await.expect("json"))
}

async fn advance(app: &TestApp, body: Value) -> Value {
    let (status, _, answer) = advance_with(app, body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn now(app: &TestApp) -> DateTime<Utc> {
    app.test_clock.as_ref().expect("a test clock").now()
}

/// The runs of `job` in an advance's answer.
fn runs<'a>(answer: &'a Value, job: &str) -> Vec<&'a Value> {
    answer["ran"]
        .as_array()
        .expect("ran")
        .iter()
        .filter(|r| r["job"] == job)
        .collect()
}

/// `GET /v1/plans`: an API answer, to see what a test clock puts in every answer's headers.
async fn plans(app: &TestApp) -> reqwest::Response {
    app.http
        .get(format!("{}/v1/plans", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .send()
        .await
        .unwrap()
}

fn order_no(order: &Value) -> String {
    order["order_no"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_starts_now_answers_in_beijing_time_and_only_goes_forward() {
    let app = clock_app().await;
    let res = app
        .http
        .get(format!("{}/sandbox/clock", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let header = res.headers()["Paygate-Test-Clock"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(header.ends_with("+08:00"), "{header}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["offset_seconds"], 0);
    let shown = DateTime::parse_from_rfc3339(body["now"].as_str().unwrap()).unwrap();
    assert!((shown.with_timezone(&Utc) - Utc::now()).num_seconds().abs() < 5);

    // Every answer carries the header, the API's too.
    let res = plans(&app).await;
    assert!(res.headers().contains_key("Paygate-Test-Clock"));

    let answer = advance(&app, json!({"by": "PT15M"})).await;
    let offset = answer["offset_seconds"].as_i64().unwrap();
    assert!((899..=901).contains(&offset), "{answer}");

    // Backwards, both ways, and nonsense: 422 in the API's envelope; the clock stays.
    let before = now(&app);
    for bad in [
        json!({"to": rfc3339_beijing(Utc::now())}),
        json!({"by": "-5m"}),
        json!({"by": "0m"}),
        json!({"by": "soon"}),
        json!({"by": "20m", "to": "2030-01-01T00:00:00+08:00"}),
        json!({}),
        json!({"to": "tomorrow"}),
        json!({"by": 20}),
        json!({"by": "400d"}),
    ] {
        let (status, header, body) = advance_with(&app, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(header.is_some(), "errors carry the header too");
    }
    assert!(
        now(&app) - before < Duration::seconds(5),
        "nothing moved it"
    );
}

/// `POST /sandbox/pay/{no}` at the simulator, as the buyer's device: the status and the answer.
async fn pay_at_simulator(app: &TestApp, no: &str, query: &str) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}/sandbox/pay/{no}{query}", app.url))
        .header("Accept", "application/json")
        .send()
        .await
        .expect("pay");
    (res.status().as_u16(), res.json().await.expect("json"))
}

/// Unpaid orders of both providers: 20 minutes later the expiry job has closed them here and
/// at the simulator, and a checkout page waiting since before is answered. Then a payment
/// that raced the close at the provider completes after all (`?late=true`): the gateway
/// settles it late, as any payment reported for a closed order.
async fn an_unpaid_order_closes_when_the_clock_passes_its_expiry(app: TestApp) {
    let wechat = order_no(
        &app.create_order("emp_clock_expiry", "resume-download-50")
            .await,
    );
    let alipay = order_no(
        &app.create_order_on("emp_clock_expiry", "alipay", "qr", json!({}))
            .await,
    );
    let waiting = {
        let (url, http, no) = (app.url.clone(), app.http.clone(), wechat.clone());
        tokio::spawn(async move {
            let res = http
                .get(format!("{url}/v1/orders/{no}?wait=25"))
                .bearer_auth(CHECKOUT_KEY)
                .send()
                .await
                .expect("get");
            res.json::<Value>().await.expect("json")
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let answer = advance(&app, json!({"by": "20m"})).await;
    let closed: u64 = runs(&answer, "expire")
        .iter()
        .map(|r| r["closed"].as_u64().unwrap())
        .sum();
    assert_eq!(closed, 2, "{answer}");
    for no in [&wechat, &alipay] {
        assert_eq!(app.order(no).await["status"], "closed");
        // Closed at the simulator too: the buyer can no longer pay it.
        let (status, body) = pay_at_simulator(&app, no, "").await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!("ORDER_CLOSED")),
            "{no}"
        );
    }
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the waiting page is answered")
        .unwrap();
    assert_eq!(waited["status"], "closed", "{waited}");

    // The buyer's payment was under way at the provider when the close arrived, and completes.
    for no in [&wechat, &alipay] {
        let (status, body) = pay_at_simulator(&app, no, "?late=true").await;
        assert_eq!(status, 200, "{body}");
        let order = app.wait_for_status(no, "paid").await;
        assert_eq!(order["late_payment"], true, "{order}");
        assert_eq!(order["payment_record"]["source"], "notification", "{order}");
        assert_eq!(app.events_of(no, "payment.late").await.len(), 1, "{no}");
        assert_eq!(app.events_of(no, "entitlement.granted").await.len(), 1);
        app.assert_settled_once(no).await;
    }
    let list = app.entitlements("emp_clock_expiry").await;
    assert_eq!(list["entitlements"].as_array().unwrap().len(), 2, "{list}");
    // Only a closed order's payment can have raced its close.
    let open = order_no(
        &app.create_order("emp_clock_expiry", "resume-download-50")
            .await,
    );
    let (status, body) = pay_at_simulator(&app, &open, "?late=true").await;
    assert_eq!((status, &body["code"]), (409, &json!("ORDER_NOT_CLOSED")));
    let (status, body) = pay_at_simulator(&app, &open, "?late=soon").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(app.order(&open).await["status"], "pending");
}

on_both_backends_with_test_clock!(
    an_unpaid_order_closes_on_sqlite,
    an_unpaid_order_closes_on_postgres,
    an_unpaid_order_closes_when_the_clock_passes_its_expiry
);

/// A 30-day plan, 31 days later: access refused, the entitlement `expired`,
/// `entitlement.expired` in the feed.
async fn a_thirty_day_plan_runs_out_after_thirty_one_days(app: TestApp) {
    let order = app.create_order("emp_clock_plan", "resume-view-30d").await;
    let no = order_no(&order);
    app.pay(&no).await;
    app.wait_for_status(&no, "paid").await;
    let (status, _) = app.access("emp_clock_plan", "r1", "view").await;
    assert_eq!(status, 200);

    let answer = advance(&app, json!({"by": "31d"})).await;
    let expired: u64 = runs(&answer, "entitlement_expiry")
        .iter()
        .map(|r| r["expired"].as_u64().unwrap())
        .sum();
    assert_eq!(expired, 1, "one expiry run expired it");
    assert_eq!(runs(&answer, "reconciliation").len(), 31);
    // Retention cut-offs are read on the test clock too: the order's stored answer (kept
    // 7 days) went on the way.
    let deleted: u64 = runs(&answer, "retention")
        .iter()
        .map(|r| r["idempotency_deleted"].as_u64().unwrap())
        .sum();
    assert_eq!(deleted, 1, "{answer}");
    // No part of an answer shows the real time: `Date` is the test clock's too.
    let res = plans(&app).await;
    let date = res.headers()["date"].to_str().unwrap().to_owned();
    let date = DateTime::parse_from_rfc2822(&date.replace("GMT", "+0000")).unwrap();
    assert!(
        (date.with_timezone(&Utc) - now(&app)).num_seconds().abs() < 5,
        "{date} is the test clock's now, a month ahead"
    );
    let (status, body) = app.access("emp_clock_plan", "r2", "view").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "entitlement_expired", "{body}");
    let list = app.entitlements("emp_clock_plan").await;
    assert_eq!(list["entitlements"][0]["status"], "expired", "{list}");
    assert_eq!(app.events_of(&no, "entitlement.expired").await.len(), 1);
}

on_both_backends_with_test_clock!(
    a_thirty_day_plan_runs_out_on_sqlite,
    a_thirty_day_plan_runs_out_on_postgres,
    a_thirty_day_plan_runs_out_after_thirty_one_days
);

/// 10:31 Beijing the day after `t`.
fn tomorrow_10_31(t: DateTime<Utc>) -> DateTime<Utc> {
    let day = t.with_timezone(&beijing()).date_naive() + Duration::days(1);
    beijing()
        .from_local_datetime(&day.and_hms_opt(10, 31, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A payment the gateway never heard of (its notification dropped, the order closed here
/// first): tomorrow's 10:30 reconciliation finds it in the bill and heals it.
async fn tomorrows_reconciliation_heals_a_dropped_notification(app: TestApp) {
    let order = app
        .create_order("emp_clock_recon", "resume-download-50")
        .await;
    let no = order_no(&order);
    let parsed = paygate::domain::OrderNo::parse(&no).unwrap();
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    assert!(
        paygate::lifecycle::close_locally(
            &app.db,
            &parsed,
            paygate::lifecycle::CloseReason::Expired,
            now(&app)
        )
        .await
        .unwrap()
    );
    app.pay(&no).await;
    assert_eq!(app.order(&no).await["status"], "closed");
    let paid_on = now(&app).with_timezone(&beijing()).date_naive();

    let to = tomorrow_10_31(now(&app));
    let answer = advance(&app, json!({"to": rfc3339_beijing(to)})).await;
    // Before 10:30 today's run for yesterday comes first; the day of the payment is the last.
    let recon = runs(&answer, "reconciliation");
    let recon: Vec<_> = recon
        .iter()
        .filter(|r| r["date"] == paid_on.to_string())
        .collect();
    assert_eq!(recon.len(), 1, "{answer}");
    assert!(
        recon[0]["completed"]
            .as_array()
            .unwrap()
            .contains(&json!("wechatpay")),
        "{answer}"
    );

    let list = app
        .http
        .get(format!("{}/v1/reconciliations?provider=wechatpay", app.url))
        .bearer_auth(common::FINANCE_KEY)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let run = list["reconciliations"]
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["date"] == paid_on.to_string())
        .unwrap_or_else(|| panic!("the run for {paid_on}: {list}"));
    assert_eq!(run["summary"]["healed"], 1, "{run}");
    let order = app.order(&no).await;
    assert_eq!(order["status"], "paid", "{order}");
    assert_eq!(order["payment_record"]["source"], "reconciliation");
}

on_both_backends_with_test_clock!(
    tomorrows_reconciliation_heals_on_sqlite,
    tomorrows_reconciliation_heals_on_postgres,
    tomorrows_reconciliation_heals_a_dropped_notification
);

/// The next Friday (Beijing) at 16:00, strictly after `t`.
fn next_friday_afternoon(t: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = t.with_timezone(&beijing()).date_naive() + Duration::days(1);
    while day.weekday() != Weekday::Fri {
        day += Duration::days(1);
    }
    beijing()
        .from_local_datetime(&day.and_hms_opt(16, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// An erasure requested on a Friday, with the Monday a holiday: due on Wednesday; advancing
/// over the weekend to the due day finds it carried out before `due_by`.
async fn an_erasure_requested_on_a_friday_is_done_by_its_due_day(backend: Backend) {
    let start = next_friday_afternoon(Utc::now());
    let friday = start.with_timezone(&beijing()).date_naive();
    let monday: NaiveDate = friday + Duration::days(3);
    let Some(app) = TestApp::spawn_with_test_clock(backend, vec![monday]).await else {
        return;
    };
    advance(&app, json!({"to": rfc3339_beijing(start)})).await;
    let (status, body) = app
        .request_erasure("emp_clock_erase", "clock-erase-1")
        .await;
    assert_eq!(status, 202, "{body}");
    let due_by = DateTime::parse_from_rfc3339(body["due_by"].as_str().unwrap()).unwrap();
    let wednesday = friday + Duration::days(5);
    assert_eq!(
        due_by.date_naive(),
        wednesday,
        "two working days: Tuesday, Wednesday"
    );

    let due_day = beijing()
        .from_local_datetime(&wednesday.and_hms_opt(9, 0, 0).unwrap())
        .unwrap();
    let answer = advance(&app, json!({"to": due_day.to_rfc3339()})).await;
    let completed: u64 = runs(&answer, "erasure")
        .iter()
        .map(|r| r["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(completed, 1, "{answer}");
    let erasure = app.erasure(body["erasure_id"].as_str().unwrap()).await;
    assert_eq!(erasure["status"], "completed", "{erasure}");
    let completed_at =
        DateTime::parse_from_rfc3339(erasure["completed_at"].as_str().unwrap()).unwrap();
    assert!(completed_at < due_by, "{erasure}");
    assert!(
        completed_at.with_timezone(&Utc) >= start,
        "carried out on the test clock's time: {erasure}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_requested_on_a_friday_is_done_by_its_due_day_on_sqlite() {
    an_erasure_requested_on_a_friday_is_done_by_its_due_day(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_requested_on_a_friday_is_done_by_its_due_day_on_postgres() {
    an_erasure_requested_on_a_friday_is_done_by_its_due_day(Backend::Postgres).await;
}

/// A production gateway (no `--sandbox`): no `/sandbox/clock` route, no header, and it refuses
/// to run on a test clock at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_sandbox_mode_there_is_no_test_clock() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("paygate.db").display());
    let config = || {
        let mut config =
            Config::from_toml_with_env("", Vec::new(), dir.path().to_owned()).expect("config");
        config.database.url = db_url.clone();
        config
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = Application::build(
        config(),
        listener,
        Options {
            clock: Arc::new(TestClock::default()),
            scheduler: false,
            ..Options::default()
        },
    )
    .await;
    assert!(refused.is_err(), "a test clock outside sandbox mode");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(
        config(),
        listener,
        Options {
            scheduler: false,
            ..Options::default()
        },
    )
    .await
    .expect("production build");
    assert!(
        app.state().clock.as_test_clock().is_none(),
        "the system's clock"
    );
    let url = app.public_url().to_owned();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let requests = [
        http.get(format!("{url}/sandbox/clock")),
        http.post(format!("{url}/sandbox/clock/advance"))
            .json(&json!({"by": "20m"})),
        http.post(format!("{url}/sandbox/clock/advance"))
            .json(&json!({"to": "2030-01-01T00:00:00+08:00"})),
        http.get(format!("{url}/sandbox/clock/advance")),
    ];
    for request in requests {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), 404);
        assert!(!res.headers().contains_key("Paygate-Test-Clock"));
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A standalone simulator running: its URL, the simulator, its clock, and a switch that makes
/// it answer every request 503 (an outage).
struct Standalone {
    url: String,
    sandbox: paygate_sandbox::Sandbox,
    clock: Arc<paygate_sandbox::test_clock::TestClock>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

/// A standalone simulator, as `paygate-sandbox [--test-clock]` serves it (the sandbox crate's
/// router, plus its clock routes with the flag) on port 0, with the fixture keys.
async fn standalone_simulator(test_clock: bool) -> Standalone {
    use paygate_sandbox::{Sandbox, SandboxConfig, WechatSandboxConfig};
    let merchant = paygate_wechatpay::Signer::from_pem(MERCHANT_KEY).unwrap();
    let clock = Arc::new(paygate_sandbox::test_clock::TestClock::default());
    let sandbox = Sandbox::new(SandboxConfig {
        wechatpay: WechatSandboxConfig {
            mchid: paygate::app::SANDBOX_MCHID.into(),
            appid: paygate::app::SANDBOX_APPID.into(),
            merchant_serial: paygate::app::SANDBOX_MERCHANT_SERIAL.into(),
            merchant_public_key_pem: merchant.public_key_pem(),
            apiv3_key: common::APIV3_KEY.into(),
            platform_private_key_pem: PLATFORM_KEY.into(),
            platform_key_id: paygate_sandbox::keys_dir::new_platform_key_id(),
        },
        time_divisor: 1000,
        clock: if test_clock {
            clock.reader()
        } else {
            paygate_sandbox::system_clock()
        },
    })
    .unwrap();
    let mut router = sandbox.router();
    if test_clock {
        router = router.merge(paygate_sandbox::test_clock::routes(clock.clone()));
    }
    let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let outage = down.clone();
    let router = router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let down = outage.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if down {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    next.run(request).await
                }
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Standalone {
        url,
        sandbox,
        clock,
        down,
    }
}

const MERCHANT_KEY: &str = include_str!("fixtures/merchant_key.pem");
const PLATFORM_KEY: &str = include_str!("fixtures/platform_key.pem");

/// A gateway built from a config file's text whose `[wechatpay]` points at the simulator at
/// `simulator_url` and whose `[sandbox]` shares its test clock, on a test clock as `serve`
/// builds it; `dir` holds its key files and database.
async fn gateway_beside(
    simulator_url: &str,
    sandbox: &paygate_sandbox::Sandbox,
    dir: &std::path::Path,
) -> anyhow::Result<Application> {
    let platform = paygate_wechatpay::Signer::from_pem(PLATFORM_KEY)?.public_key_pem();
    std::fs::write(dir.join("merchant.pem"), MERCHANT_KEY)?;
    std::fs::write(dir.join("platform.pem"), platform)?;
    std::fs::write(dir.join("apiv3.key"), common::APIV3_KEY)?;
    let toml = format!(
        r#"[database]
url = "sqlite://{db}"

[wechatpay]
api_base = "{simulator_url}/sandbox/wechatpay"
mchid = "{mchid}"
appid = "{appid}"
merchant_serial = "{serial}"
merchant_private_key_file = "merchant.pem"
apiv3_key_file = "apiv3.key"
platform_public_keys = [{{ id = "{key_id}", file = "platform.pem" }}]

[[api_keys]]
id = "checkout"
secret_sha256 = "{checkout}"
scopes = ["checkout"]

[sandbox]
test_clock = true
simulator_url = "{simulator_url}"
"#,
        db = dir.join("paygate.db").display(),
        mchid = paygate::app::SANDBOX_MCHID,
        appid = paygate::app::SANDBOX_APPID,
        serial = paygate::app::SANDBOX_MERCHANT_SERIAL,
        key_id = sandbox.wechat_platform_key_id(),
        checkout = paygate::keygen::hash_secret(CHECKOUT_KEY),
    );
    let config = Config::from_toml_with_env(&toml, Vec::new(), dir.to_owned())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Application::build(
        config,
        listener,
        Options {
            clock: Arc::new(TestClock::default()),
            scheduler: false,
            ..Options::default()
        },
    )
    .await
}

/// `[sandbox] test_clock = true` beside `paygate-sandbox --test-clock`: the gateway starts at
/// the simulator's time, and an advance moves both, so the expiry closes the order here and at
/// the simulator (the simulator's signed answers fall within the gateway's window), and a
/// payment the simulator signs afterwards is verified and settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_beside_a_standalone_simulator_shares_its_test_clock() {
    let simulator = standalone_simulator(true).await;
    let (simulator_url, sandbox, simulator_clock) =
        (&simulator.url, &simulator.sandbox, &simulator.clock);
    // The simulator's clock is ahead already (moved by an earlier gateway): this one joins it.
    simulator_clock.reach(Utc::now() + Duration::hours(1));
    let dir = tempfile::tempdir().unwrap();
    let app = gateway_beside(simulator_url, sandbox, dir.path())
        .await
        .expect("a gateway beside the simulator");
    assert!(app.sandbox().is_none(), "no embedded simulator");
    let gateway_clock = app.state().clock.clone();
    assert!(
        (gateway_clock.now() - simulator_clock.now())
            .num_seconds()
            .abs()
            < 5,
        "started at the simulator's time"
    );
    let url = app.public_url().to_owned();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();
    let create = |key: &'static str| {
        let body = json!({"employer_id": "emp_beside", "plan": "resume-download-50",
            "provider": "wechatpay", "channel": "native"});
        http.post(format!("{url}/v1/orders"))
            .bearer_auth(CHECKOUT_KEY)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let get = |no: String| {
        http.get(format!("{url}/v1/orders/{no}"))
            .bearer_auth(CHECKOUT_KEY)
            .send()
    };
    let res = create("beside-1").await.unwrap();
    assert_eq!(res.status(), 201);
    let no = order_no(&res.json::<Value>().await.unwrap());

    let res = http
        .post(format!("{url}/sandbox/clock/advance"))
        .json(&json!({"by": "20m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("Paygate-Test-Clock"));
    let answer: Value = res.json().await.unwrap();
    let closed: u64 = runs(&answer, "expire")
        .iter()
        .map(|r| r["closed"].as_u64().unwrap())
        .sum();
    assert_eq!(closed, 1, "{answer}");
    let order: Value = get(no.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(order["status"], "closed", "{order}");
    assert!(
        matches!(sandbox.pay(&no), Err(paygate_sandbox::PayError::Closed)),
        "closed at the simulator too"
    );
    // Both clocks moved, together.
    let shown: Value = http
        .get(format!("{simulator_url}/sandbox/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let offset = shown["offset_seconds"].as_i64().unwrap();
    assert!((4_795..=4_810).contains(&offset), "{shown}");
    assert!(
        (gateway_clock.now() - simulator_clock.now())
            .num_seconds()
            .abs()
            < 5
    );

    // A payment the simulator signs on its moved clock passes the gateway's window check.
    let res = create("beside-2").await.unwrap();
    let paid_no = order_no(&res.json::<Value>().await.unwrap());
    sandbox.pay(&paid_no).expect("pay");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let order: Value = get(paid_no.clone()).await.unwrap().json().await.unwrap();
        if order["status"] == "paid" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never paid: {order}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The simulator down: the advance stops before running anything (502), the clock stays.
    simulator
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let before = gateway_clock.now();
    let res = http
        .post(format!("{url}/sandbox/clock/advance"))
        .json(&json!({"by": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "simulator_unavailable", "{body}");
    assert!(
        gateway_clock.now() - before < Duration::seconds(5),
        "{body}"
    );
}

/// `[sandbox] test_clock = true` beside a simulator started without `--test-clock`: the
/// gateway refuses to start rather than run on clocks that disagree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_beside_a_simulator_without_a_test_clock_refuses_to_start() {
    let simulator = standalone_simulator(false).await;
    let res = reqwest::get(format!("{}/sandbox/clock", simulator.url))
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "no clock routes without the flag");
    let dir = tempfile::tempdir().unwrap();
    let Err(refused) = gateway_beside(&simulator.url, &simulator.sandbox, dir.path()).await else {
        panic!("built beside a simulator with no test clock");
    };
    let chain = format!("{refused:#}");
    assert!(chain.contains("--test-clock"), "{chain}");
}

/// `paygate check-config` refuses a test clock whose provider sections do not point at the
/// simulator (a real provider), whether the file or `PAYGATE_SANDBOX__TEST_CLOCK` turns it on.
#[test]
fn check_config_refuses_a_test_clock_beside_a_real_provider() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paygate.toml");
    let wechatpay = r#"
[wechatpay]
api_base = "https://api.mch.weixin.qq.com"
mchid = "1900000001"
appid = "wx8888888888888888"
merchant_serial = "5A3B1C0D"
merchant_private_key_file = "merchant.pem"
apiv3_key_file = "apiv3.key"
fetch_platform_certificates = true
"#;
    let check = |text: String, env: &[(&str, &str)]| {
        std::fs::write(&config, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
            .args(["--config", config.to_str().unwrap(), "check-config"])
            .envs(env.iter().copied())
            .output()
            .expect("run paygate")
    };
    let beside = "[sandbox]\nsimulator_url = \"http://127.0.0.1:9090\"\n";
    for (text, env) in [
        (format!("{beside}test_clock = true\n{wechatpay}"), vec![]),
        (
            format!("{beside}{wechatpay}"),
            vec![("PAYGATE_SANDBOX__TEST_CLOCK", "true")],
        ),
    ] {
        let out = check(text, &env);
        assert!(!out.status.success(), "{env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("never runs against a real provider"),
            "{stderr}"
        );
    }
}

/// The tests' own sandbox app on its offset clock (sandbox mode, no test clock): no routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_without_a_test_clock_serves_no_clock_routes() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(format!("{}/sandbox/clock", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(!res.headers().contains_key("Paygate-Test-Clock"));
}
