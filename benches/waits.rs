//! What 1,000 waiting checkout pages cost the gateway (`GET /v1/orders/{no}?wait=N`, issue 13).
//!
//! ```sh
//! cargo bench --bench waits
//! PAYGATE_BENCH_WAITS=1000 PAYGATE_BENCH_WAIT_ORDERS=10 PAYGATE_BENCH_HOLD_SECS=10 cargo bench --bench waits
//! ```
//!
//! Runs the real `paygate serve --sandbox` binary as a child process on SQLite (so the
//! measurements are the gateway's alone, not this client's), opens N waits spread over M
//! orders, holds them for H seconds, then pays every order in the sandbox. Reports, from
//! `/proc/{pid}`: the gateway's RSS before and while the waits are open, the CPU it used while
//! they were held (the whole cost of waiting: parked tasks plus one re-read every 500 ms), and
//! how long after the payments every wait had answered `paid`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// User + system CPU time of `pid` so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').expect("stat format").1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // Linux reports them in USER_HZ, 100 on every platform Rust targets.
    Duration::from_millis(ticks * 10)
}

fn main() {
    let waits = env_or("PAYGATE_BENCH_WAITS", 1000) as usize;
    let orders_n = env_or("PAYGATE_BENCH_WAIT_ORDERS", 10) as usize;
    let hold = Duration::from_secs(env_or("PAYGATE_BENCH_HOLD_SECS", 10));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["serve", "--sandbox"])
        .env(
            "PAYGATE_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("waits.db").display()),
        )
        .env("PAYGATE_SERVER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env_remove("PAYGATE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run paygate (cargo bench builds it)");
    let pid = child.id();
    // Read stdout to its end on a thread of its own: closing it early would make the gateway's
    // next println! fail on a broken pipe.
    let stdout = child.stdout.take().expect("stdout");
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut url = None;
    let mut key = None;
    while url.is_none() || key.is_none() {
        let line = printed
            .recv_timeout(Duration::from_secs(60))
            .expect("paygate prints its URL and key");
        if let Some(u) = line.strip_prefix("paygate with the embedded sandbox at ") {
            url = Some(u.trim().to_owned());
        }
        if let Some(k) = line.strip_prefix("API key (all scopes, shown once): ") {
            key = Some(k.trim().to_owned());
        }
    }
    let (url, key) = (url.expect("served URL"), key.expect("API key"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let http = reqwest::Client::new();
        let mut orders = Vec::new();
        for i in 0..orders_n {
            let body = serde_json::json!({"employer_id": format!("emp_bench_{i}"),
                "plan": "resume-download-50", "provider": "wechatpay", "channel": "native"});
            let order: serde_json::Value = http
                .post(format!("{url}/v1/orders"))
                .bearer_auth(&key)
                .header("Idempotency-Key", format!("bench-wait-{i}"))
                .json(&body)
                .send()
                .await
                .expect("create")
                .json()
                .await
                .expect("order");
            orders.push(order["order_no"].as_str().expect("order_no").to_owned());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_before = rss_kib(pid);

        let wait_secs = hold.as_secs() + 20;
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..waits {
            let (http, url, key, no) = (http.clone(), url.clone(), key.clone(), orders[k % orders_n].clone());
            tasks.spawn(async move {
                let body: serde_json::Value = http
                    .get(format!("{url}/v1/orders/{no}?wait={wait_secs}"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .expect("wait")
                    .json()
                    .await
                    .expect("json");
                (Instant::now(), body["status"].as_str().map(str::to_owned))
            });
        }
        // Let every wait arrive and park, then measure the held state.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_waiting = rss_kib(pid);
        let cpu_start = cpu(pid);
        tokio::time::sleep(hold).await;
        let cpu_held = cpu(pid) - cpu_start;
        let rss_held = rss_kib(pid);

        let paid_at = Instant::now();
        for no in &orders {
            let res = http
                .post(format!("{url}/sandbox/pay/{no}"))
                .header("Accept", "application/json")
                .send()
                .await
                .expect("pay");
            assert!(res.status().is_success());
        }
        let mut last = paid_at;
        let mut paid = 0;
        while let Some(done) = tasks.join_next().await {
            let (at, status) = done.expect("wait task");
            assert_eq!(status.as_deref(), Some("paid"));
            last = last.max(at);
            paid += 1;
        }
        println!("waits: {waits} over {orders_n} orders, held {hold:?}");
        println!("gateway RSS before: {rss_before} KiB");
        println!(
            "gateway RSS with the waits open: {rss_waiting} KiB (+{} KiB, {:.1} KiB a wait); after {hold:?}: {rss_held} KiB",
            rss_waiting.saturating_sub(rss_before),
            rss_waiting.saturating_sub(rss_before) as f64 / waits as f64
        );
        println!(
            "gateway CPU while {waits} waits were held for {hold:?}: {:?} ({:.2}% of one core)",
            cpu_held,
            cpu_held.as_secs_f64() / hold.as_secs_f64() * 100.0
        );
        println!(
            "all {paid} waits answered `paid` {:?} after the first payment was sent",
            last - paid_at
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}
