//! A month on the test clock (issue 22): `POST /sandbox/clock/advance {"by": "31d"}` over N
//! pending orders and N live 30-day entitlements, on the real gateway with the embedded sandbox
//! (SQLite in a temp dir, or `PAYGATE_BENCH_DATABASE_URL`).
//!
//! ```sh
//! cargo bench --bench test_clock                      # N = 10,000
//! PAYGATE_BENCH_CLOCK_N=1000 cargo bench --bench test_clock
//! ```
//!
//! The advance closes every pending order (here and at the simulator: a signed query and a
//! signed close each), expires every entitlement, and runs the 31 reconciliations, the
//! retention and the minute jobs on the way. Figures: BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use paygate::app::{Application, Options, SandboxSetup};
use paygate::clock::TestClock;
use paygate::config::{ApiKeyConfig, Config};
use serde_json::{Value, json};

const KEY: &str = "pgk_bench";
const IN_FLIGHT: usize = 8;

async fn create(http: &reqwest::Client, url: &str, i: usize, plan: &str) -> String {
    let (provider, channel) = if i.is_multiple_of(2) {
        ("wechatpay", "native")
    } else {
        ("alipay", "qr")
    };
    let body = json!({"employer_id": format!("emp_clock_{}", i % 500), "plan": plan,
        "provider": provider, "channel": channel});
    let res = http
        .post(format!("{url}/v1/orders"))
        .bearer_auth(KEY)
        .header("Idempotency-Key", format!("clock-{plan}-{i}"))
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.expect("json");
    order["order_no"].as_str().expect("order_no").to_owned()
}

async fn create_many(http: &reqwest::Client, url: &str, n: usize, plan: &str) -> Vec<String> {
    futures_util::stream::iter(0..n)
        .map(|i| create(http, url, i, plan))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

async fn status(http: &reqwest::Client, url: &str, order_no: &str) -> String {
    let order: Value = http
        .get(format!("{url}/v1/orders/{order_no}"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    order["status"].as_str().expect("status").to_owned()
}

fn total(answer: &Value, job: &str, field: &str) -> u64 {
    answer["ran"]
        .as_array()
        .expect("ran")
        .iter()
        .filter(|r| r["job"] == job)
        .filter_map(|r| r[field].as_u64())
        .sum()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = match std::env::var("PAYGATE_BENCH_CLOCK_N") {
        Ok(v) => v.parse().expect("PAYGATE_BENCH_CLOCK_N is a count"),
        Err(_) => 10_000,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config =
        Config::from_toml_with_env("", Vec::new(), dir.path().to_owned()).expect("default config");
    config.database.url = match std::env::var("PAYGATE_BENCH_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    config.api_keys = vec![ApiKeyConfig {
        id: "bench".into(),
        secret_sha256: paygate::keygen::hash_secret(KEY),
        scopes: vec!["checkout".into(), "entitlements".into()],
    }];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = Application::build(
        config,
        listener,
        Options {
            clock: Arc::new(TestClock::default()),
            sandbox: Some(SandboxSetup::generate(1000).expect("keys")),
            scheduler: false,
        },
    )
    .await
    .expect("build");
    let url = app.public_url().to_owned();
    let sandbox = app.sandbox().expect("sandbox").clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();

    println!("paygate test clock bench: {n} live entitlements, {n} pending orders, advance 31d");
    let started = Instant::now();
    let paid = create_many(&http, &url, n, "resume-view-30d").await;
    for no in &paid {
        sandbox.pay(no).expect("pay");
    }
    for no in &paid {
        while status(&http, &url, no).await != "paid" {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let pending = create_many(&http, &url, n, "resume-download-50").await;
    println!("setup         {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let res = http
        .post(format!("{url}/sandbox/clock/advance"))
        .json(&json!({"by": "31d"}))
        .send()
        .await
        .expect("advance");
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.expect("json");
    let took = started.elapsed();
    let closed = total(&answer, "expire", "closed");
    let expired = total(&answer, "entitlement_expiry", "expired");
    let runs = answer["ran"].as_array().expect("ran").len();
    println!(
        "advance 31d   {:.2} s: {runs} passes, {closed} orders closed, {expired} entitlements expired",
        took.as_secs_f64()
    );
    assert_eq!(closed as usize, pending.len(), "{answer}");
    assert_eq!(expired as usize, paid.len());
}
