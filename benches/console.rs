//! The console's pages at size (issue 21): server time per page with 100,000 orders (90 % of
//! them paid, with their payments, entitlements and events) and 10,000 refunds, spread over
//! the last 30 days, plus 60 reconciliation runs with discrepancies and a week of job runs.
//!
//! ```sh
//! cargo bench --bench console
//! PAYGATE_BENCH_ORDERS=100000 PAYGATE_BENCH_REFUNDS=10000 cargo bench --bench console
//! # PostgreSQL: PAYGATE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/<fresh database>
//! ```
//!
//! Each page is asked for sequentially by one signed-in client on loopback, 5 times to warm
//! up, then 40 times; the table gives the median and the 95th percentile of the whole request
//! as the client sees it (the server's time plus a loopback round trip) and the page's size.
//! Last, the overview's month sums on their own: what its first view in a minute adds.
//! Figures and the machine: BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use paygate::app::{Application, Options};
use paygate::clock::{OffsetClock, to_millis};
use paygate::config::Config;
use paygate::console_users::{self, SecondFactor};
use paygate::domain::{ConsoleUserName, OrderNo, Scope};

const BATCH: usize = 400;
const DAY_MS: i64 = 86_400_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(…), (…)` placeholders for `rows` rows of `per_row` values.
fn placeholders(rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=per_row)
                .map(|c| format!("${}", r * per_row + c))
                .collect();
            format!("({})", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

enum V {
    T(String),
    I(i64),
}

async fn insert(db: &paygate::store::Db, head: &str, per_row: usize, rows: Vec<Vec<V>>) {
    for chunk in rows.chunks(BATCH) {
        let sql = format!("{head} VALUES {}", placeholders(chunk.len(), per_row));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = match v {
                    V::T(s) => q.bind(s.clone()),
                    V::I(i) => q.bind(*i),
                };
            }
        }
        let mut tx = db.begin_write().await.expect("tx");
        q.execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
    }
}

/// The seeded data; answers one refunded order's number (for its page).
async fn seed(db: &paygate::store::Db, orders: usize, refunds: usize, now_ms: i64) -> String {
    let grants = r#"[{"action":"download","quota":50,"days":90}]"#;
    let (mut o, mut p, mut e, mut ev, mut r) = (vec![], vec![], vec![], vec![], vec![]);
    let mut refunded_no = String::new();
    let mut event_id = 0i64;
    for i in 0..orders {
        let no = OrderNo::generate().to_string();
        let created = now_ms - (i as i64 * 30 * DAY_MS / orders as i64) - 60_000;
        let (provider, channel) = if i % 2 == 0 {
            ("wechatpay", "native")
        } else {
            ("alipay", "qr")
        };
        let paid = i % 10 != 9;
        let refund = paid && i % 9 == 0 && r.len() < refunds;
        let status = match (paid, refund) {
            (false, _) => "closed",
            (true, true) => "partially_refunded",
            (true, false) => "paid",
        };
        let employer = format!("emp_{}", i % 5000);
        o.push(vec![
            V::T(no.clone()),
            V::T(employer.clone()),
            V::T("resume-download-50".into()),
            V::T(grants.into()),
            V::I(19_900),
            V::T("CNY".into()),
            V::T(provider.into()),
            V::T(channel.into()),
            V::T(status.into()),
            V::I(if refund { 5_000 } else { 0 }),
            V::I(created + 900_000),
            V::I(created),
            V::I(created),
        ]);
        if paid {
            let at = created + 30_000;
            p.push(vec![
                V::T(format!("pay_{i}")),
                V::T(no.clone()),
                V::T(provider.into()),
                V::T(format!("42{i:026}")),
                V::I(19_900),
                V::T("CNY".into()),
                V::T("notification".into()),
                V::I(at),
                V::I(at),
            ]);
            e.push(vec![
                V::T(format!("ent_{i}")),
                V::T(employer.clone()),
                V::T(no.clone()),
                V::T("resume-download-50".into()),
                V::T("download".into()),
                V::I(if refund { 38 } else { 50 }),
                V::I((i % 7) as i64),
                V::T("active".into()),
                V::I(at),
                V::I(at + 90 * DAY_MS),
                V::I(at),
                V::I(at),
            ]);
            for kind in ["order.paid", "entitlement.granted"] {
                event_id += 1;
                ev.push(vec![
                    V::I(event_id),
                    V::T(kind.into()),
                    V::T(no.clone()),
                    V::T(format!(r#"{{"order_no":"{no}","amount":"199.00"}}"#)),
                    V::I(at),
                    V::I(at),
                    V::I(at),
                ]);
            }
        }
        if refund {
            let at = created + 3_600_000;
            let id = format!("RF{:026}", i);
            r.push(vec![
                V::T(id.clone()),
                V::T(no.clone()),
                V::T(provider.into()),
                V::T(id),
                V::I(5_000),
                V::T("CNY".into()),
                V::T("succeeded".into()),
                V::T("paygate".into()),
                V::I(at),
                V::I(at),
                V::I(at),
                V::T("console:bench".into()),
            ]);
            event_id += 1;
            ev.push(vec![
                V::I(event_id),
                V::T("refund.succeeded".into()),
                V::T(no.clone()),
                V::T(format!(
                    r#"{{"order_no":"{no}","amount":"50.00","actor":"console:bench"}}"#
                )),
                V::I(at),
                V::I(at),
                V::I(at),
            ]);
            refunded_no = no.clone();
        }
    }
    insert(db, "INSERT INTO payment_order (order_no, employer_id, plan_id, grants_json, amount_fen, currency, provider, channel, status, refunded_fen, expires_at, created_at, updated_at)", 13, o).await;
    insert(db, "INSERT INTO payment (payment_id, order_no, provider, provider_txn_id, amount_fen, currency, source, paid_at, created_at)", 9, p).await;
    insert(db, "INSERT INTO entitlement (entitlement_id, employer_id, order_no, plan_id, action, quota, used, status, valid_from, valid_until, created_at, updated_at)", 12, e).await;
    insert(db, "INSERT INTO refund (refund_id, order_no, provider, out_refund_no, amount_fen, currency, status, origin, created_at, updated_at, succeeded_at, actor)", 12, r).await;
    insert(db, "INSERT INTO outbox_event (event_id, event_type, order_no, payload_json, created_at, delivered_at, next_attempt_at)", 7, ev).await;
    let mut tx = db.begin_write().await.expect("tx");
    sqlx::query("UPDATE event_counter SET value = $1 WHERE name = 'outbox'")
        .bind(event_id)
        .execute(&mut *tx)
        .await
        .expect("counter");
    tx.commit().await.expect("commit");
    // 30 days × 2 providers of runs, each with 20 discrepancies; a week of job runs.
    let (mut runs, mut disc, mut jobs) = (vec![], vec![], vec![]);
    for d in 0..30i64 {
        let date = chrono::DateTime::from_timestamp_millis(now_ms - (d + 1) * DAY_MS)
            .expect("time")
            .with_timezone(&paygate::clock::beijing())
            .date_naive()
            .to_string();
        for provider in ["wechatpay", "alipay"] {
            let id = format!("rec_{provider}_{d}");
            let summary = r#"{"bill_rows":3000,"payments":{"matched":{"count":2980,"amount_fen":59302000},"missing_remote":{"count":20,"amount_fen":398000}},"refunds":{},"healed":0}"#;
            runs.push(vec![
                V::T(id.clone()),
                V::T(provider.into()),
                V::T(date.clone()),
                V::T("completed".into()),
                V::T(summary.into()),
                V::I(now_ms - d * DAY_MS),
                V::I(now_ms - d * DAY_MS),
                V::T("job:reconciliation".into()),
            ]);
            for s in 0..20 {
                disc.push(vec![
                    V::T(id.clone()),
                    V::I(s),
                    V::T("missing_remote".into()),
                    V::T("payment".into()),
                    V::T(OrderNo::generate().to_string()),
                    V::I(19_900),
                    V::I(0),
                ]);
            }
        }
    }
    for (j, job) in ["active_query", "expire", "refunds"].iter().enumerate() {
        for m in 0..(7 * 24 * 60) {
            let at = now_ms - m * 60_000;
            jobs.push(vec![
                V::T((*job).into()),
                V::I(at / 60_000 + j as i64),
                V::T("bench-host".into()),
                V::I(1),
                V::I(at),
                V::I(at + 50),
                V::T(r#"{"queried":0}"#.into()),
            ]);
        }
    }
    insert(db, "INSERT INTO reconciliation_run (reconciliation_id, provider, bill_date, status, summary_json, started_at, finished_at, actor)", 8, runs).await;
    insert(db, "INSERT INTO reconciliation_discrepancy (reconciliation_id, seq, class, kind, order_no, local_amount_fen, healed)", 7, disc).await;
    insert(
        db,
        "INSERT INTO job_run (job, slot, holder, fence, started_at, finished_at, outcome)",
        7,
        jobs,
    )
    .await;
    // Each job's lease, its last slot the latest run above (as taking a slot writes both).
    let leases = ["active_query", "expire", "refunds"]
        .iter()
        .enumerate()
        .map(|(j, job)| {
            vec![
                V::T((*job).into()),
                V::T("bench-host".into()),
                V::I(now_ms),
                V::I(1),
                V::I(now_ms / 60_000 + j as i64),
                V::I(now_ms),
            ]
        })
        .collect();
    insert(
        db,
        "INSERT INTO job_lease (job, holder, expires_at, fence, last_slot, last_success_at)",
        6,
        leases,
    )
    .await;
    refunded_no
}

/// A client signed in as an all-scope user (no second factor: `SecondFactor::NotInSandbox`).
async fn signed_in(state: &paygate::state::AppState, url: &str) -> (reqwest::Client, String) {
    let deps = console_users::Deps {
        db: &state.db,
        clock: state.clock.as_ref(),
    };
    let name = ConsoleUserName::parse("bench").expect("name");
    let token = console_users::create(&deps, &name, &Scope::ALL, SecondFactor::NotInSandbox)
        .await
        .expect("user");
    console_users::set_password(&deps, &token.0, "bench password 1")
        .await
        .expect("password");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = http
        .get(format!("{url}/console/sign-in"))
        .send()
        .await
        .expect("form");
    let cookie = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let form_cookie = cookie(&form).join("; ");
    let body = form.text().await.expect("body");
    let marker = "name=\"form_token\" value=\"";
    let at = body.find(marker).expect("token") + marker.len();
    let token = &body[at..at + body[at..].find('"').expect("end")];
    let signed = http
        .post(format!("{url}/console/sign-in"))
        .header("cookie", form_cookie)
        .form(&[
            ("form_token", token),
            ("name", "bench"),
            ("password", "bench password 1"),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed.status(), 303);
    let session = cookie(&signed)
        .into_iter()
        .find(|c| c.starts_with("paygate_console="))
        .expect("session cookie");
    (http, session)
}

async fn measure(http: &reqwest::Client, cookie: &str, url: &str) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for i in 0..45 {
        let started = Instant::now();
        let res = http
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .expect("page");
        assert_eq!(res.status(), 200, "{url}");
        size = res.bytes().await.expect("body").len();
        if i >= 5 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    (times[times.len() / 2], times[times.len() * 95 / 100], size)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let orders = env("PAYGATE_BENCH_ORDERS", 100_000);
    let refunds = env("PAYGATE_BENCH_REFUNDS", 10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config =
        Config::from_toml_with_env("", Vec::new(), dir.path().to_owned()).expect("default config");
    config.database.url = std::env::var("PAYGATE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let backend = if config.database.url.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let clock = Arc::new(OffsetClock::default());
    let app = Application::build(
        config,
        listener,
        Options {
            clock: clock.clone(),
            scheduler: false,
            ..Options::default()
        },
    )
    .await
    .expect("build");
    let url = app.public_url().to_owned();
    let now_ms = to_millis(app.state().clock.now());
    let seeding = Instant::now();
    let refunded = seed(&app.state().db, orders, refunds, now_ms).await;
    if backend == "PostgreSQL" {
        // What autovacuum does within a minute of a bulk load: without statistics the planner
        // walked the whole feed for the oldest undelivered event (49 ms) and hashed all job runs.
        sqlx::query("ANALYZE")
            .execute(app.state().db.pool())
            .await
            .expect("analyze");
    }
    println!(
        "paygate console bench: {orders} orders, {refunds} refunds, {backend} (seeded in {:.1} s)",
        seeding.elapsed().as_secs_f64()
    );
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let (http, cookie) = signed_in(&state, &url).await;
    let pages = [
        ("overview", "/console".to_owned()),
        ("orders", "/console/orders".to_owned()),
        (
            "orders, one employer",
            "/console/orders?employer=emp_42".to_owned(),
        ),
        (
            "orders, refunded, Alipay",
            "/console/orders?status=partially_refunded&provider=alipay".to_owned(),
        ),
        (
            "one order (refunded)",
            format!("/console/orders/{refunded}"),
        ),
        ("reconciliation runs", "/console/reconciliations".to_owned()),
        (
            "one run",
            "/console/reconciliations/rec_wechatpay_0".to_owned(),
        ),
        ("erasures", "/console/erasures".to_owned()),
        ("operations", "/console/operations".to_owned()),
    ];
    println!("| page | median | p95 | size |");
    println!("|---|---|---|---|");
    // Nothing is kept yet: this one view also reads the month's sums, as the first view in
    // each minute does (one sample a run).
    let started = Instant::now();
    let first = http
        .get(format!("{url}/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(first.status(), 200);
    let size = first.bytes().await.expect("body").len();
    println!(
        "| overview, the first view (1 sample) | {:.1} ms | | {:.1} KB |",
        started.elapsed().as_secs_f64() * 1000.0,
        size as f64 / 1024.0
    );
    for (name, path) in pages {
        let (median, p95, size) = measure(&http, &cookie, &format!("{url}{path}")).await;
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} KB |",
            median.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0,
            size as f64 / 1024.0
        );
    }
    // The overview keeps the days before today a minute per instance: the first view in each
    // minute also reads the month's sums, timed here on their own (the same two store calls).
    let today = (now_ms + 8 * 3_600_000) / DAY_MS;
    let mut sums = Vec::new();
    for i in 0..45 {
        let started = Instant::now();
        let db = &state.db;
        let paid = paygate::store::overview::daily_payments(db, today - 29..today)
            .await
            .expect("payments");
        let refunded = paygate::store::overview::daily_refunds(db, today - 29..today)
            .await
            .expect("refunds");
        assert!(
            !paid.is_empty() && !refunded.is_empty(),
            "the seed is in the month"
        );
        if i >= 5 {
            sums.push(started.elapsed());
        }
    }
    sums.sort();
    println!(
        "| overview's month sums (added to the first view in a minute) | {:.1} ms | {:.1} ms | |",
        sums[sums.len() / 2].as_secs_f64() * 1000.0,
        sums[sums.len() * 95 / 100].as_secs_f64() * 1000.0,
    );
    let _ = stop.send(());
    let _ = server.await;
}
