//! Whole-gateway throughput on one machine: the real gateway and the embedded sandbox over
//! real HTTP and real crypto, SQLite in a temp dir (or `PAYGATE_BENCH_DATABASE_URL`).
//!
//! ```sh
//! cargo bench --bench lifecycle                       # 200 orders per phase
//! PAYGATE_BENCH_ORDERS=1000 cargo bench --bench lifecycle
//! ```
//!
//! Phases, each over N orders split evenly between WeChat Pay native and Alipay QR:
//! 1. **create**: `POST /v1/orders`, 8 in flight (signed request to the sandbox, verified answer);
//! 2. **notify**: the sandbox's buyer pays every order; time until all are `paid` through the
//!    real notifications (WeChat: RSA verify + AES-GCM; Alipay: RSA2 verify), then settled;
//! 3. **active query**: N more orders paid with every notification dropped; one
//!    `active_query` pass (signed query, verified answer, settlement) is timed.
//!
//! Figures and the machine they ran on: BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use paygate::app::{Application, Options, SandboxSetup};
use paygate::clock::OffsetClock;
use paygate::config::{ApiKeyConfig, Config};
use paygate::jobs::Job;
use paygate_sandbox::Faults;
use serde_json::{Value, json};

const KEY: &str = "pgk_bench";
const IN_FLIGHT: usize = 8;

struct Bench {
    url: String,
    http: reqwest::Client,
    app_sandbox: paygate_sandbox::Sandbox,
}

impl Bench {
    async fn create(&self, i: usize) -> String {
        let (provider, channel) = if i.is_multiple_of(2) {
            ("wechatpay", "native")
        } else {
            ("alipay", "qr")
        };
        let body = json!({"employer_id": format!("emp_bench_{i}"), "plan": "resume-download-50",
            "provider": provider, "channel": channel});
        let res = self
            .http
            .post(format!("{}/v1/orders", self.url))
            .bearer_auth(KEY)
            .header(
                "Idempotency-Key",
                format!("bench-{i}-{}", rand::random::<u64>()),
            )
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(res.status(), 201);
        let order: Value = res.json().await.expect("json");
        order["order_no"].as_str().expect("order_no").to_owned()
    }

    async fn create_many(&self, n: usize) -> Vec<String> {
        use futures_util::StreamExt;
        futures_util::stream::iter(0..n)
            .map(|i| self.create(i))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await
    }

    async fn status(&self, order_no: &str) -> String {
        let order: Value = self
            .http
            .get(format!("{}/v1/orders/{order_no}", self.url))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        order["status"].as_str().unwrap_or_default().to_owned()
    }
}

fn rate(n: usize, took: Duration) -> String {
    format!(
        "{n} in {:.2} s = {:.0}/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("PAYGATE_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config =
        Config::from_toml_with_env("", Vec::new(), dir.path().to_owned()).expect("default config");
    config.database.url = std::env::var("PAYGATE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    config.api_keys = vec![ApiKeyConfig {
        id: "bench".into(),
        secret_sha256: paygate::keygen::hash_secret(KEY),
        scopes: vec!["checkout".into(), "entitlements".into()],
    }];
    let clock = Arc::new(OffsetClock::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = Application::build(
        config,
        listener,
        Options {
            clock: clock.clone(),
            sandbox: Some(SandboxSetup::generate(1000).expect("keys")),
            scheduler: false,
        },
    )
    .await
    .expect("build");
    let bench = Bench {
        url: app.public_url().to_owned(),
        http: reqwest::Client::new(),
        app_sandbox: app.sandbox().expect("sandbox").clone(),
    };
    let jobs = app.jobs();
    tokio::spawn(app.run_until(std::future::pending()));

    println!("paygate lifecycle bench: {n} orders per phase, half WeChat Pay, half Alipay");

    let started = Instant::now();
    let orders = bench.create_many(n).await;
    println!("create        {}", rate(n, started.elapsed()));

    let started = Instant::now();
    for no in &orders {
        bench.app_sandbox.pay(no).expect("pay");
    }
    for no in &orders {
        while bench.status(no).await != "paid" {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!("notify        {}", rate(n, started.elapsed()));

    bench.app_sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..Faults::default()
    });
    let orders = bench.create_many(n).await;
    for no in &orders {
        bench.app_sandbox.pay(no).expect("pay");
    }
    clock.advance(chrono::Duration::minutes(3));
    let started = Instant::now();
    // One pass takes at most 10,000 orders; the scheduler's next minute takes the rest.
    let mut settled = 0;
    while settled < n {
        let pass = jobs.run_once(Job::ActiveQuery).await.expect("pass");
        let now = pass["settled"].as_u64().unwrap_or(0) as usize;
        assert!(now > 0, "a pass settled nothing: {pass}");
        settled += now;
    }
    println!("active query  {}", rate(n, started.elapsed()));
}
