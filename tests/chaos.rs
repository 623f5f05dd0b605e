//! Database outages during payment notifications (issue 12): the gateway answers fast and in
//! the right shapes while the database is gone, and every paid order converges exactly once
//! afterwards. And a flood of waiting checkout pages (issue 20), which must starve nothing.
//!
//! PostgreSQL: a TCP proxy in the test between the gateway and the server, which cuts every
//! connection and refuses new ones for the outage (as crates.io's ChaosProxy does). SQLite:
//! another connection holds the file's write lock (what a second process writing the same file
//! does); reads go on under WAL, every write waits out the busy timeout and fails.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Backend, CHECKOUT_KEY, TestApp, transaction_json};
use paygate::clock::Clock;
use paygate::config::LimitsConfig;
use paygate::jobs::Job;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::AbortHandle;

/// The outage's length: long enough that the sandbox's first retries all fail.
const OUTAGE: Duration = Duration::from_secs(10);

/// A TCP proxy that can drop every connection and refuse new ones.
struct ChaosProxy {
    port: u16,
    down: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl ChaosProxy {
    async fn start(upstream: String) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (d, l) = (down.clone(), live.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                l.lock().await.push(task.abort_handle());
            }
        })
        .abort_handle();
        ChaosProxy {
            port,
            down,
            live,
            accept,
        }
    }

    async fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for task in self.live.lock().await.drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// How the database goes away and comes back.
enum Outage {
    Proxy(ChaosProxy),
    /// The path of the SQLite file, and the connection holding its write lock meanwhile.
    SqliteLock(String, Option<sqlx::SqliteConnection>),
}

impl Outage {
    async fn start(&mut self) {
        match self {
            Outage::Proxy(proxy) => proxy.cut().await,
            Outage::SqliteLock(path, held) => {
                use sqlx::Connection;
                let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                    .await
                    .unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                *held = Some(conn);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Proxy(proxy) => proxy.restore(),
            Outage::SqliteLock(_, held) => {
                if let Some(mut conn) = held.take() {
                    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
                }
            }
        }
    }
}

fn fast_limits() -> LimitsConfig {
    LimitsConfig {
        db_acquire_timeout_ms: 1_000,
        readiness_timeout_ms: 1_000,
        provider_timeout_ms: 2_000,
        ..LimitsConfig::default()
    }
}

async fn spawn(backend: Backend) -> Option<(TestApp, Outage)> {
    let dir = tempfile::tempdir().unwrap();
    match backend {
        Backend::Sqlite => {
            let path = dir.path().join("paygate.db").display().to_string();
            let app = TestApp::spawn_on_url(&format!("sqlite://{path}"), dir, fast_limits()).await;
            Some((app, Outage::SqliteLock(path, None)))
        }
        Backend::Postgres => {
            let direct = common::fresh_postgres_url().await?;
            let mut url = url::Url::parse(&direct).unwrap();
            let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
            let proxy = ChaosProxy::start(upstream).await;
            url.set_port(Some(proxy.port)).unwrap();
            let app = TestApp::spawn_on_url(url.as_str(), dir, fast_limits()).await;
            Some((app, Outage::Proxy(proxy)))
        }
    }
}

/// `f` answers within `bound`; its answer.
async fn within<T>(bound: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(bound + Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer at all"));
    let took = started.elapsed();
    assert!(
        took < bound,
        "{what} answered after {took:?}, over {bound:?}"
    );
    out
}

async fn outage_during_notifications(backend: Backend) {
    let Some((app, mut outage)) = spawn(backend).await else {
        return;
    };
    // Orders the sandbox will report paid during the outage, one made-up callback, one order
    // left unpaid.
    let mut paid = Vec::new();
    for (i, provider) in ["wechatpay", "alipay", "wechatpay", "alipay"]
        .iter()
        .enumerate()
    {
        let channel = if *provider == "alipay" {
            "qr"
        } else {
            "native"
        };
        let order = app
            .create_order_on(&format!("emp_chaos_{i}"), provider, channel, json!({}))
            .await;
        paid.push(order);
    }
    let by_callback = app.create_order("emp_chaos_cb", "resume-download-50").await;
    let unpaid = app
        .create_order("emp_chaos_unpaid", "resume-download-50")
        .await;
    let no = |o: &Value| o["order_no"].as_str().unwrap().to_owned();
    let tx = transaction_json(&by_callback, "4200000000202611300000000099", 19900);
    let genuine = app
        .sandbox
        .wechat_notification(&tx, app.clock.now().timestamp());

    outage.start().await;
    let outage_began = Instant::now();
    for order in &paid {
        app.pay(&no(order)).await;
    }

    // The API: 503 database_unavailable, fast. (On SQLite, reads go on: WAL.)
    let res = within(Duration::from_secs(3), "POST /v1/orders", async {
        let body = r#"{"employer_id":"emp_chaos_new","plan":"resume-download-50","provider":"wechatpay","channel":"native"}"#;
        app.post_order(CHECKOUT_KEY, "chaos-create-1", body).await
    })
    .await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    if backend == Backend::Postgres {
        let res = within(Duration::from_secs(3), "GET /v1/orders/{no}", async {
            app.http
                .get(format!("{}/v1/orders/{}", app.url, no(&unpaid)))
                .bearer_auth(CHECKOUT_KEY)
                .send()
                .await
                .unwrap()
        })
        .await;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "database_unavailable");
    }
    // Readiness says so within 2 s.
    let res = within(Duration::from_secs(2), "/readyz", async {
        app.http
            .get(format!("{}/readyz", app.url))
            .send()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(res.status(), 503);
    // So does /metrics, for the alert (PaygateDatabaseUnreachable). The gauges it reads from
    // the database are left out when they cannot be read (PostgreSQL gone), not shown as 0;
    // SQLite's readers go on under WAL.
    let metrics = gauges(&app).await;
    assert_eq!(metrics["paygate_database_up"], 0.0, "{metrics:?}");
    let (read, overdue) = match backend {
        Backend::Sqlite => (1.0, Some(0.0)),
        Backend::Postgres => (0.0, None),
    };
    assert_eq!(metrics["paygate_database_gauges_ok"], read, "{metrics:?}");
    assert_eq!(metrics.get("paygate_erasures_overdue").copied(), overdue);
    // The providers get their retry signal: WeChat 5xx FAIL, Alipay 5xx `fail`.
    let res = within(Duration::from_secs(3), "WeChat callback", async {
        app.post_wechat_callback(&genuine.headers, &genuine.body)
            .await
    })
    .await;
    assert!(res.status().is_server_error(), "{}", res.status());
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "FAIL");
    let alipay_body =
        common::alipay_notification(&paid[1], &[("trade_no", "2026113022001400000000000042")]);
    let (status, text) = within(Duration::from_secs(3), "Alipay callback", async {
        app.post_alipay_callback(&alipay_body).await
    })
    .await;
    assert!((500..600).contains(&status), "{status}");
    assert_eq!(text, "fail");
    // A forged callback fails on its signature, before any database work: fast, 401.
    let mut forged = genuine.headers.clone();
    for (k, v) in forged.iter_mut() {
        if k.eq_ignore_ascii_case("Wechatpay-Signature") {
            // Another first character, whatever it was.
            let other = if v.starts_with('A') { 'B' } else { 'A' };
            *v = format!("{other}{}", &v[1..]);
        }
    }
    let res = within(Duration::from_millis(500), "forged callback", async {
        app.post_wechat_callback(&forged, &genuine.body).await
    })
    .await;
    assert_eq!(res.status(), 401);
    // A job pass stops early instead of waiting out the outage per order (the paid orders are
    // due for the active query once 2 minutes old).
    app.clock.advance(chrono::Duration::minutes(3));
    let pass = within(Duration::from_secs(3), "active query pass", async {
        app.jobs.run_once(Job::ActiveQuery).await
    })
    .await;
    assert!(pass.is_err(), "the pass fails: {pass:?}");

    if let Some(rest) = OUTAGE.checked_sub(outage_began.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    // Every delivery the sandbox made during the outage was answered 5xx (a retry signal).
    let during: Vec<_> = app.sandbox.notifications();
    assert!(
        !during.is_empty() && during.iter().all(|d| !d.acknowledged),
        "{during:?}"
    );
    outage.end().await;

    // Afterwards: the retried callback settles; the sandbox's retries or the active query
    // settle the rest; exactly once each.
    let res = app
        .post_wechat_callback(&genuine.headers, &genuine.body)
        .await;
    assert_eq!(res.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut pending = 0;
        for order in &paid {
            let status = app.order(&no(order)).await["status"].clone();
            if status != "paid" {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} paid orders never converged"
        );
        let _ = app.jobs.run_once(Job::ActiveQuery).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for order in paid.iter().chain([&by_callback]) {
        app.assert_settled_once(&no(order)).await;
    }
    app.assert_unsettled(&no(&unpaid)).await;
    let res = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let metrics = gauges(&app).await;
    assert_eq!(metrics["paygate_database_up"], 1.0, "{metrics:?}");
    assert_eq!(metrics["paygate_database_gauges_ok"], 1.0, "{metrics:?}");
}

/// The unlabelled series of `/metrics` and their values.
async fn gauges(app: &TestApp) -> std::collections::HashMap<String, f64> {
    let text = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_write_lock_outage_answers_fast_and_converges() {
    outage_during_notifications(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_through_a_proxy_answers_fast_and_converges() {
    outage_during_notifications(Backend::Postgres).await;
}

/// The number in `/metrics` of an unlabelled counter (0 before its first increment).
async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The next long poll answered (status, order status), well before a wait's own 30 s.
async fn next_answer(
    answers: &mut tokio::sync::mpsc::UnboundedReceiver<(u16, String)>,
) -> (u16, String) {
    tokio::time::timeout(Duration::from_secs(25), answers.recv())
        .await
        .expect("an answer before the waits' own 30 s")
        .expect("every waiter answers")
}

/// Waiting checkout pages (issue 20): more open `?wait=` long polls than `max_in_flight`, and
/// more again past `max_waits`. Those past it are answered at once with the current state;
/// the open ones take no API slot, so health probes, a provider's callback and a new order all
/// succeed beside them; and a payment answers every open wait.
async fn a_flood_of_waits_starves_nothing(backend: Backend) {
    const MAX_WAITS: usize = 40;
    const FLOOD: usize = 60;
    let limits = LimitsConfig {
        max_in_flight: 32,
        max_waits: Some(MAX_WAITS),
        ..fast_limits()
    };
    let Some(app) = TestApp::spawn_with_limits(backend, limits).await else {
        return;
    };
    let waited = app
        .create_order("emp_wait_flood", "resume-download-50")
        .await;
    let no = waited["order_no"].as_str().unwrap().to_owned();
    let degraded_before = counter(&app, "paygate_waits_degraded_total").await;

    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..FLOOD {
        let (http, url, no, answered) = (
            app.http.clone(),
            app.url.clone(),
            no.clone(),
            answered.clone(),
        );
        tokio::spawn(async move {
            let res = http
                .get(format!("{url}/v1/orders/{no}?wait=30"))
                .bearer_auth(CHECKOUT_KEY)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            let _ = answered.send((status, body["status"].as_str().unwrap_or("").to_owned()));
        });
    }
    // The order is unpaid: only the waits past max_waits can come back now, at once, with
    // its current state.
    for _ in MAX_WAITS..FLOOD {
        assert_eq!(next_answer(&mut answers).await, (200, "pending".to_owned()));
    }

    // Beside the 40 open waits (more than max_in_flight):
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let res = app
            .http
            .get(format!("{}{probe}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{probe}");
    }
    let body = r#"{"employer_id":"emp_wait_flood_new","plan":"resume-download-50","provider":"wechatpay","channel":"native"}"#;
    let res = app
        .post_order(CHECKOUT_KEY, "wait-flood-create", body)
        .await;
    assert_eq!(res.status(), 201, "an order is created");
    let by_callback: Value = res.json().await.unwrap();
    let tx = transaction_json(&by_callback, "4200000000202612060000000777", 19900);
    let notification = app
        .sandbox
        .wechat_notification(&tx, app.clock.now().timestamp());
    let res = app
        .post_wechat_callback(&notification.headers, &notification.body)
        .await;
    assert_eq!(res.status(), 204, "the provider's callback is taken");
    app.assert_settled_once(by_callback["order_no"].as_str().unwrap())
        .await;
    assert!(
        counter(&app, "paygate_waits_degraded_total").await
            >= degraded_before + (FLOOD - MAX_WAITS) as u64,
        "each degraded wait is counted"
    );
    assert!(answers.try_recv().is_err(), "the open waits still wait");

    // The payment answers every open wait.
    app.pay(&no).await;
    for _ in 0..MAX_WAITS {
        assert_eq!(next_answer(&mut answers).await, (200, "paid".to_owned()));
    }
    app.assert_settled_once(&no).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_waits_on_sqlite_starves_nothing() {
    a_flood_of_waits_starves_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_waits_on_postgres_starves_nothing() {
    a_flood_of_waits_starves_nothing(Backend::Postgres).await;
}
