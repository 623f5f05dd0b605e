//! Reconciliation at scale (issue 10 §5): a generated WeChat Pay bill and a generated Alipay
//! bill of N payments each, against a database holding the N matching orders and payments of
//! each provider, reconciled from the downloaded file on (the download itself is the
//! provider's network, not paygate's work).
//!
//! ```sh
//! PAYGATE_BENCH_ROWS=100000 cargo bench --bench reconcile
//! PAYGATE_BENCH_ROWS=1000000 cargo bench --bench reconcile
//! # a day with one payment missing from the bill (the exact check):
//! PAYGATE_BENCH_MISSING=1 PAYGATE_BENCH_ROWS=1000000 cargo bench --bench reconcile
//! # PostgreSQL: PAYGATE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/<fresh database>
//! ```
//!
//! Reports, per provider: rows, wall time, rows/s, and the process's peak RSS during the run
//! (VmHWM, reset before each run through /proc/self/clear_refs), so memory can be seen to stay
//! flat from 100 k to 1 M rows. Figures and the machine: BENCHMARKS.md.

use std::io::{Seek, Write};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use paygate::app::{Application, Options, SANDBOX_APPID, SANDBOX_MCHID, SandboxSetup};
use paygate::clock::OffsetClock;
use paygate::config::Config;
use paygate::domain::{OrderNo, ProviderId};

const BATCH: usize = 50;

fn rss_peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_now_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_rss_peak() {
    // "5" resets the peak RSS (VmHWM) to the current RSS (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One paid order of the bench: number, transaction id, paid time.
struct Paid {
    order_no: String,
    txn: String,
    at: chrono::DateTime<Utc>,
}

fn paid_orders(n: usize, provider: ProviderId, date: NaiveDate) -> Vec<Paid> {
    let start = paygate::clock::beijing()
        .from_local_datetime(&date.and_hms_opt(0, 0, 1).expect("time"))
        .single()
        .expect("a Beijing time")
        .with_timezone(&Utc);
    let step = 86_000_000 / n.max(1) as i64;
    (0..n)
        .map(|i| Paid {
            order_no: OrderNo::generate().to_string(),
            txn: match provider {
                ProviderId::Wechatpay => format!("42{:026}", i),
                ProviderId::Alipay => format!("2026{:024}", i),
            },
            at: start + Duration::milliseconds(step * i as i64),
        })
        .collect()
}

async fn insert(db: &paygate::store::Db, provider: ProviderId, paid: &[Paid]) {
    let grants = r#"[{"action":"download","quota":50,"days":90}]"#;
    let channel = if provider == ProviderId::Wechatpay {
        "native"
    } else {
        "qr"
    };
    for chunk in paid.chunks(BATCH) {
        let mut tx = db.begin_write().await.expect("tx");
        for (table, per_row) in [("payment_order", 13usize), ("payment", 9)] {
            let mut sql = if table == "payment_order" {
                String::from(
                    "INSERT INTO payment_order (order_no, employer_id, plan_id, grants_json, amount_fen, currency, provider, channel, status, expires_at, paid_at, created_at, updated_at) VALUES ",
                )
            } else {
                String::from(
                    "INSERT INTO payment (payment_id, order_no, provider, provider_txn_id, amount_fen, currency, source, paid_at, created_at) VALUES ",
                )
            };
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                let params: Vec<String> = (1..=per_row)
                    .map(|p| format!("${}", i * per_row + p))
                    .collect();
                sql.push_str(&format!("({})", params.join(", ")));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                let at = paygate::clock::to_millis(p.at);
                q = if table == "payment_order" {
                    q.bind(p.order_no.clone())
                        .bind("emp_bench")
                        .bind("resume-download-50")
                        .bind(grants)
                        .bind(19_900i64)
                        .bind("CNY")
                        .bind(provider.as_str())
                        .bind(channel)
                        .bind("paid")
                        .bind(at + 900_000)
                        .bind(at)
                        .bind(at - 60_000)
                        .bind(at)
                } else {
                    q.bind(format!("pay_{}", p.txn))
                        .bind(p.order_no.clone())
                        .bind(provider.as_str())
                        .bind(p.txn.clone())
                        .bind(19_900i64)
                        .bind("CNY")
                        .bind("notification")
                        .bind(at)
                        .bind(at)
                };
            }
            q.execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }
}

fn wechat_bill(paid: &[Paid]) -> std::fs::File {
    let file = tempfile::tempfile().expect("temp file");
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let rows = paid.iter().map(|p| paygate_wechatpay::BillRowSpec {
        trade_time: p.at,
        appid: SANDBOX_APPID.into(),
        mchid: SANDBOX_MCHID.into(),
        transaction_id: p.txn.clone(),
        out_trade_no: p.order_no.clone(),
        payer_openid: "oBenchPayer0000000000000000".into(),
        trade_type: "NATIVE".into(),
        trade_state: "SUCCESS".into(),
        description: "职前通服务".into(),
        attach: String::new(),
        amount_fen: 19_900,
        refund: None,
    });
    paygate_wechatpay::write_trade_bill(rows, &mut gz).expect("write bill");
    let mut file = gz.finish().expect("gzip");
    file.flush().expect("flush");
    file.rewind().expect("rewind");
    file
}

fn alipay_bill(paid: &[Paid], date: NaiveDate) -> std::fs::File {
    let mut file = tempfile::tempfile().expect("temp file");
    let rows = paid.iter().map(|p| paygate_alipay::simulator::BillRowSpec {
        trade_no: p.txn.clone(),
        out_trade_no: p.order_no.clone(),
        kind: paygate_alipay::bill::BillRowKind::Payment,
        subject: "职前通服务".into(),
        created_at: p.at - Duration::seconds(30),
        finished_at: p.at,
        payer_account: "*三(138****0000)".into(),
        amount_fen: 19_900,
        out_request_no: None,
    });
    paygate_alipay::simulator::write_trade_bill_zip("20880000000000010156", date, rows, &mut file)
        .expect("write bill");
    file.rewind().expect("rewind");
    file
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("PAYGATE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let missing = std::env::var("PAYGATE_BENCH_MISSING").is_ok_and(|v| v == "1");
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
    let app = Application::build(
        config,
        listener,
        Options {
            clock: Arc::new(OffsetClock::default()),
            sandbox: Some(SandboxSetup::generate(1000).expect("keys")),
            scheduler: false,
        },
    )
    .await
    .expect("build");
    let state = app.state().clone();
    let date = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    println!("paygate reconciliation bench: {n} payments per provider, {backend}");
    println!(
        "| provider | rows | wall | rows/s | read + match | classify | exact check | RSS before | peak RSS during the run |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for provider in [ProviderId::Wechatpay, ProviderId::Alipay] {
        let paid = paid_orders(n, provider, date);
        insert(&state.db, provider, &paid).await;
        // With PAYGATE_BENCH_MISSING=1 the bill leaves one payment out, so the run must take
        // the exact missing-remote check (staging every bill payment) to name it.
        let billed = &paid[..n - usize::from(missing)];
        let file = match provider {
            ProviderId::Wechatpay => wechat_bill(billed),
            ProviderId::Alipay => alipay_bill(billed, date),
        };
        drop(paid);
        reset_rss_peak();
        let before = rss_now_kib();
        let started = Instant::now();
        let run = paygate::reconcile::run_downloaded(
            state.reconcile(&paygate::domain::Actor::Cli),
            provider,
            date,
            file,
            Utc::now(),
        )
        .await
        .expect("reconciliation");
        let took = started.elapsed();
        let summary: serde_json::Value = run.summary.clone();
        assert_eq!(
            summary["payments"]["matched"]["count"],
            (n - usize::from(missing)) as u64,
            "{summary}"
        );
        assert_eq!(
            summary["payments"]["missing_remote"]["count"]
                .as_u64()
                .unwrap_or(0),
            u64::from(missing),
            "{summary}"
        );
        let timings = &summary["timings_ms"];
        println!(
            "| {provider} | {n} | {:.1} s | {:.0} | {:.1} s | {:.1} s | {} | {} MiB | {} MiB |",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            timings["read_and_match"].as_f64().unwrap_or(0.0) / 1000.0,
            timings["classify_and_heal"].as_f64().unwrap_or(0.0) / 1000.0,
            if timings["exact_missing_remote_check"] == true {
                "yes"
            } else {
                "no"
            },
            before / 1024,
            rss_peak_kib() / 1024
        );
    }
}
