//! What a Prometheus scrape of `GET /metrics` costs (issue 21): the process's counters plus the
//! gauges read from the database at each scrape (`src/api/metrics.rs`), on an empty database
//! and on one holding a year of history, on the real gateway (SQLite in a temp dir, or
//! `PAYGATE_BENCH_DATABASE_URL`, a fresh PostgreSQL database).
//!
//! ```sh
//! cargo bench --bench scrape
//! PAYGATE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/paygate_bench cargo bench --bench scrape
//! PAYGATE_BENCH_SCRAPE_DISCREPANCIES=100 PAYGATE_BENCH_SCRAPE_ERASURES=100000 cargo bench --bench scrape
//! ```
//!
//! The history: a lease row per job; `PAYGATE_BENCH_SCRAPE_ERASURES` completed erasure
//! requests (default 100,000) and 1,000 pending, half of them overdue; a completed
//! reconciliation run per provider and day for 365 days, each with
//! `PAYGATE_BENCH_SCRAPE_DISCREPANCIES` discrepancies (default 1,000, half unhealed: far more
//! than a sound day has), written run by run as a run writes them. A scrape reads the lease rows, counts the pending erasures, counts the
//! discrepancies of the last 8 bill dates and finds each provider's last reconciled day; it
//! also runs `/readyz`'s check. Prints the latency of sequential scrapes (median, p90, p99,
//! max), the body's size, and how long 64 scrapes at once took (they share database reads).
//! Figures: BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use paygate::app::{Application, Options, SandboxSetup};
use paygate::clock::SystemClock;
use paygate::config::Config;
use paygate::jobs::Job;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a count")))
        .unwrap_or(default)
}

async fn exec(pool: &sqlx::AnyPool, sql: String) {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .expect("seed statement");
}

/// A year of history (see the module doc), written with plain SQL both backends run.
async fn seed(pool: &sqlx::AnyPool, discrepancies: u64, completed_erasures: u64) {
    let now_ms = chrono::Utc::now().timestamp_millis();
    for job in Job::ALL.into_iter().filter(|j| j.is_scheduled()) {
        exec(
            pool,
            format!(
                "INSERT INTO job_lease (job, holder, expires_at, fence, last_slot, last_success_at)
                 VALUES ('{}', 'bench', 0, 1, 0, {now_ms})",
                job.name()
            ),
        )
        .await;
    }
    let numbers = |n: u64| {
        format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})")
    };
    if completed_erasures > 0 {
        exec(
            pool,
            format!(
                "{} INSERT INTO privacy_erasure (erasure_id, employer_id, pseudonym, status, requested_at, due_by, completed_at)
                 SELECT 'era_done_' || i, NULL, 'erased:' || i, 'completed', {now_ms}, {now_ms}, {now_ms} FROM n",
                numbers(completed_erasures)
            ),
        )
        .await;
    }
    exec(
        pool,
        format!(
            "{} INSERT INTO privacy_erasure (erasure_id, employer_id, pseudonym, status, requested_at, due_by)
             SELECT 'era_open_' || i, 'emp_' || i, 'erased:open' || i, 'pending', {now_ms},
                    CASE WHEN i % 2 = 0 THEN 0 ELSE {} END FROM n",
            numbers(1_000),
            now_ms + 86_400_000
        ),
    )
    .await;
    let today = chrono::Utc::now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive();
    for provider in ["wechatpay", "alipay"] {
        let rows: Vec<String> = (0..365)
            .map(|back| {
                let date = today - chrono::Duration::days(back);
                format!("('rec_{provider}_{back}', '{provider}', '{date}', 'completed', NULL, '{{}}', 0, 0)")
            })
            .collect();
        exec(
            pool,
            format!(
                "INSERT INTO reconciliation_run (reconciliation_id, provider, bill_date, status, failure,
                    summary_json, started_at, finished_at) VALUES {}",
                rows.join(", ")
            ),
        )
        .await;
    }
    if discrepancies > 0 {
        exec(
            pool,
            format!(
                "{} INSERT INTO reconciliation_discrepancy (reconciliation_id, seq, class, kind, order_no, healed)
                 SELECT r.reconciliation_id, n.i,
                        CASE WHEN n.i % 5 = 0 THEN 'amount_mismatch' ELSE 'missing_remote' END,
                        'payment', 'ORDER' || n.i, n.i % 2
                 FROM reconciliation_run r CROSS JOIN n ORDER BY r.reconciliation_id, n.i",
                numbers(discrepancies)
            ),
        )
        .await;
    }
}

async fn scrape(http: &reqwest::Client, url: &str) -> usize {
    let res = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    let body = res.text().await.expect("body");
    assert!(body.contains("paygate_database_gauges_ok 1"), "{body}");
    body.len()
}

async fn measure(http: &reqwest::Client, url: &str, what: &str) {
    for _ in 0..20 {
        scrape(http, url).await;
    }
    let mut took = Vec::new();
    let mut bytes = 0;
    for _ in 0..300 {
        let started = Instant::now();
        bytes = scrape(http, url).await;
        took.push(started.elapsed());
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(took[((took.len() - 1) as f64 * q) as usize]);
    let started = Instant::now();
    let together: Vec<_> = (0..64).map(|_| scrape(http, url)).collect();
    futures_util::future::join_all(together).await;
    println!(
        "{what:<10} median {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  body {bytes} B  64 at once {:.1} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        ms(*took.last().expect("scrapes")),
        ms(started.elapsed())
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let discrepancies = env_or("PAYGATE_BENCH_SCRAPE_DISCREPANCIES", 1_000);
    let completed_erasures = env_or("PAYGATE_BENCH_SCRAPE_ERASURES", 100_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config =
        Config::from_toml_with_env("", Vec::new(), dir.path().to_owned()).expect("default config");
    config.database.url = match std::env::var("PAYGATE_BENCH_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let backend = config
        .database
        .url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = Application::build(
        config,
        listener,
        Options {
            clock: Arc::new(SystemClock),
            sandbox: Some(SandboxSetup::generate(1000).expect("keys")),
            scheduler: false,
        },
    )
    .await
    .expect("build");
    let url = app.public_url().to_owned();
    let pool = app.state().db.pool().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();

    println!("paygate /metrics scrape bench on {backend}");
    measure(&http, &url, "empty").await;
    let started = Instant::now();
    seed(&pool, discrepancies, completed_erasures).await;
    println!(
        "seeded     {completed_erasures} completed + 1,000 pending erasures, 730 runs x {discrepancies} discrepancies in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    measure(&http, &url, "a year").await;
}
