//! A month on the test clock (issue 22): `POST /sandbox/clock/advance {"by": "31d"}` over N
//! pending orders and N live 30-day entitlements, on the real gateway with the embedded sandbox
//! (SQLite in a temp dir, or `PAYGATE_BENCH_DATABASE_URL`).
//!
//! ```sh
//! cargo bench --bench test_clock                      # N = 10,000
//! PAYGATE_BENCH_CLOCK_N=1000 cargo bench --bench test_clock
//! PAYGATE_BENCH_CLOCK_SPLIT=1 cargo bench --bench test_clock   # 20m, then the rest
//! ```
//!
//! The advance closes every pending order (here and at the simulator: a signed query and a
//! signed close each), expires every entitlement, and runs the 31 reconciliations, the
//! retention and the minute jobs on the way. Figures: BENCHMARKS.md.
//!
//! Setup: every order is created over HTTP, at the simulator too (the closes and the bills
//! need them there). The N paid ones are paid at the simulator with their notifications
//! dropped and settled through the one settlement path (`paygate::settle::settle`, what a
//! notification does), 16 at a time. Paying all 10,000 in a loop sent 10,000 signed
//! notifications at once: the gateway's edges (connection cap, webhook share and rate limit)
//! turned most of them back to the providers' retry schedules, and the bench's own status
//! polls could no longer connect (a run of the old setup: connect timed out after 100 s; the
//! first run stalled). Notifications stay dropped through the advance, so none competes with
//! it.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use paygate::app::{Application, Options, SandboxSetup};
use paygate::clock::TestClock;
use paygate::config::{ApiKeyConfig, Config};
use paygate::domain::{Currency, Fen, OrderNo, ProviderId};
use paygate::settle::{PaidTrade, Settled, Source};
use paygate::state::AppState;
use paygate_sandbox::{Faults, Sandbox};
use serde_json::{Value, json};

const KEY: &str = "pgk_bench";
const IN_FLIGHT: usize = 8;
/// Settlements in flight at once: the batching writer commits them together.
const SETTLING: usize = 16;

/// Pays `order_no` at the simulator (its notification is dropped) and settles what the
/// simulator reports through the one settlement path, as the notification would have.
async fn pay_and_settle(state: &AppState, sandbox: &Sandbox, order_no: &str) {
    let paid = sandbox.pay(order_no).expect("pay");
    // WeChat's transaction, or Alipay's trade: the id the bill will show.
    let (provider, txn_id, fen) = match paid.get("transaction_id") {
        Some(id) => (ProviderId::Wechatpay, id, paid["amount"]["total"].as_i64()),
        None => (
            ProviderId::Alipay,
            &paid["trade_no"],
            paid["total_amount"]
                .as_str()
                .and_then(|yuan| Fen::parse_yuan(yuan).ok())
                .map(Fen::get),
        ),
    };
    let trade = PaidTrade {
        order_no: OrderNo::parse(order_no).expect("order_no"),
        provider,
        provider_txn_id: txn_id.as_str().expect("transaction id").to_owned(),
        amount: Fen::new(fen.expect("amount")).expect("fen"),
        currency: Currency::Cny,
        trade_type: None,
        bank_type: None,
        paid_at: state.clock.now(),
    };
    let settled = paygate::settle::settle(&state.db, &trade, Source::Query, state.clock.now())
        .await
        .expect("settle");
    assert_eq!(settled, Settled::Now { late: false });
}

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
            // Real retry delays: the dropped notifications' next attempts come long after
            // the advance, so none runs during it.
            sandbox: Some(SandboxSetup::generate(1).expect("keys")),
            scheduler: false,
        },
    )
    .await
    .expect("build");
    let url = app.public_url().to_owned();
    let sandbox = app.sandbox().expect("sandbox").clone();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();
    sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..Faults::default()
    });

    println!("paygate test clock bench: {n} live entitlements, {n} pending orders, advance 31d");
    let started = Instant::now();
    let paid = create_many(&http, &url, n, "resume-view-30d").await;
    let created = started.elapsed();
    futures_util::stream::iter(&paid)
        .map(|no| pay_and_settle(&state, &sandbox, no))
        .buffer_unordered(SETTLING)
        .collect::<Vec<()>>()
        .await;
    let settled = started.elapsed() - created;
    let pending = create_many(&http, &url, n, "resume-download-50").await;
    println!(
        "setup         {:.1} s ({n} paid orders created {:.1} s, settled {:.1} s; {n} pending created {:.1} s)",
        started.elapsed().as_secs_f64(),
        created.as_secs_f64(),
        settled.as_secs_f64(),
        (started.elapsed() - created - settled).as_secs_f64(),
    );

    // PAYGATE_BENCH_CLOCK_SPLIT=1: the same month in two advances, 20 minutes (every pending
    // order expires and is closed, here and at the simulator) and the rest (entitlements
    // expire; the reconciliations and retentions), to see which costs what.
    let legs: &[&str] = if std::env::var_os("PAYGATE_BENCH_CLOCK_SPLIT").is_some() {
        &["20m", "30d23h40m"]
    } else {
        &["31d"]
    };
    let (mut closed, mut expired, mut runs) = (0, 0, 0);
    let started = Instant::now();
    for by in legs {
        let leg = Instant::now();
        let answer = advance(&http, &url, by).await;
        let (c, e) = (
            total(&answer, "expire", "closed"),
            total(&answer, "entitlement_expiry", "expired"),
        );
        let passes = answer["ran"].as_array().expect("ran").len();
        if legs.len() > 1 {
            println!(
                "  by {by:<10} {:.2} s: {passes} passes, {c} orders closed, {e} entitlements expired",
                leg.elapsed().as_secs_f64()
            );
        }
        (closed, expired, runs) = (closed + c, expired + e, runs + passes);
    }
    println!(
        "advance 31d   {:.2} s: {runs} passes, {closed} orders closed, {expired} entitlements expired",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(closed as usize, pending.len());
    assert_eq!(expired as usize, paid.len());
}

/// `POST /sandbox/clock/advance {"by": by}`: its answer.
async fn advance(http: &reqwest::Client, url: &str, by: &str) -> Value {
    let res = http
        .post(format!("{url}/sandbox/clock/advance"))
        .json(&json!({ "by": by }))
        .send()
        .await
        .expect("advance");
    assert_eq!(res.status(), 200);
    res.json().await.expect("json")
}
