//! kill -9 in the middle of a payment storm (issue 12): the `paygate` binary and the standalone
//! `paygate-sandbox` binary as two processes on one database. 200 orders across both
//! providers; the buyer pays 150 of them; after a third of the payments the gateway is killed
//! with SIGKILL while the sandbox (its own process: its ledger and its retries live on) goes on
//! taking payments; the gateway is started again on the same port. Every paid order ends `paid`
//! exactly once with exactly its entitlement, every unpaid one `pending`; SQLite's
//! `PRAGMA integrity_check` says ok. On SQLite and PostgreSQL. Also: kill -9 among résumé first
//! accesses, and kill -9 of both processes with the simulator's ledger kept (`--data`), after
//! which the active query alone converges every payment the simulator took (issue 19).
//!
//! The sandbox binary belongs to another package, so Cargo gives no `CARGO_BIN_EXE_` for it:
//! it is the `paygate-sandbox` next to `paygate` in the same target folder, which
//! `cargo test --workspace` (CI) builds; a narrower `cargo test -p paygate` builds it first with
//! the same Cargo (`cargo build -p paygate-sandbox`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SECRET: &str = "pgk_kill_nine_checkout";
const ORDERS: usize = 200;
const PAID: usize = 150;

fn sandbox_binary() -> PathBuf {
    let gateway = Path::new(env!("CARGO_BIN_EXE_paygate"));
    let sandbox =
        gateway.with_file_name(format!("paygate-sandbox{}", std::env::consts::EXE_SUFFIX));
    if !sandbox.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "paygate-sandbox", "--bin", "paygate-sandbox"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building paygate-sandbox");
    }
    assert!(sandbox.exists(), "{} after the build", sandbox.display());
    sandbox
}

/// A free port on 127.0.0.1 (bound, then released for the child to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_sandbox(keys: &Path) -> (Child, String) {
    start_sandbox_with(keys, &["--listen", "127.0.0.1:0"]).await
}

/// The sandbox binary with `args` (`--listen` among them) besides its keys dir.
async fn start_sandbox_with(keys: &Path, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(sandbox_binary())
        .args(["--keys-dir", keys.to_str().unwrap()])
        .args(args)
        .args(["--time-divisor", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start paygate-sandbox");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("sandbox starts")
            .unwrap()
            .expect("a line");
        if let Some(url) = line.strip_prefix("paygate-sandbox listening on ") {
            break url.to_owned();
        }
    };
    // Keep reading so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

fn gateway_config(
    dir: &Path,
    keys: &Path,
    sandbox: &str,
    db_url: &str,
    addr: SocketAddr,
) -> PathBuf {
    let read = |p: &str| {
        std::fs::read_to_string(keys.join(p))
            .unwrap()
            .trim()
            .to_owned()
    };
    let file = |p: &str| keys.join(p).display().to_string();
    let config = format!(
        r#"
[server]
listen = "{addr}"

[database]
url = "{db_url}"

[wechatpay]
api_base = "{sandbox}/sandbox/wechatpay"
mchid = "{mchid}"
appid = "{appid}"
merchant_serial = "{serial}"
merchant_private_key_file = "{merchant_key}"
apiv3_key_file = "{apiv3}"
platform_public_keys = [{{ id = "{pub_id}", file = "{pub_key}" }}]

[alipay]
gateway_url = "{sandbox}/sandbox/alipay/gateway.do"
app_id = "{app_id}"
app_private_key_file = "{app_key}"
alipay_public_key_file = "{alipay_pub}"
seller_id = "{seller}"

[[api_keys]]
id = "storm"
secret_sha256 = "{hash}"
scopes = ["checkout", "entitlements"]

[limits]
provider_timeout_ms = 5000
"#,
        mchid = read("wechatpay/mchid.txt"),
        appid = read("wechatpay/appid.txt"),
        serial = read("wechatpay/merchant_serial.txt"),
        merchant_key = file("wechatpay/apiclient_key.pem"),
        apiv3 = file("wechatpay/apiv3.key"),
        pub_id = read(paygate_sandbox::keys_dir::PLATFORM_KEY_ID_FILE),
        pub_key = file(paygate_sandbox::keys_dir::PLATFORM_PUBLIC_KEY_FILE),
        app_id = read("alipay/app_id.txt"),
        app_key = file("alipay/app_private_key.pem"),
        alipay_pub = file(paygate_sandbox::keys_dir::ALIPAY_PUBLIC_KEY_FILE),
        seller = paygate_sandbox::keys_dir::SANDBOX_SELLER_ID,
        hash = hex::encode(Sha256::digest(SECRET.as_bytes())),
    );
    let path = dir.join("paygate.toml");
    std::fs::write(&path, config).unwrap();
    path
}

async fn start_gateway(config: &Path, url: &str, http: &reqwest::Client) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start paygate");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = http.get(format!("{url}/readyz")).send().await
            && res.status() == 200
        {
            return child;
        }
        assert!(Instant::now() < deadline, "the gateway never got ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sandbox binary and the gateway binary on `db_url`, both running.
struct Rig {
    _sandbox: Child,
    sandbox_url: String,
    url: String,
    config: PathBuf,
    http: reqwest::Client,
    gateway: Child,
}

async fn rig(db_url: &str, dir: &Path) -> Rig {
    let keys = dir.join("keys");
    let status = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["keys", "generate", keys.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "keys generate");
    let (sandbox, sandbox_url) = start_sandbox(&keys).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let url = format!("http://{addr}");
    let config = gateway_config(dir, &keys, &sandbox_url, db_url, addr);
    let http = reqwest::Client::new();
    let gateway = start_gateway(&config, &url, &http).await;
    Rig {
        _sandbox: sandbox,
        sandbox_url,
        url,
        config,
        http,
        gateway,
    }
}

async fn storm(db_url: String, dir: tempfile::TempDir) {
    let Rig {
        _sandbox,
        sandbox_url,
        url,
        config,
        http,
        mut gateway,
    } = rig(&db_url, dir.path()).await;

    // 200 orders, half on each provider.
    let created = create_orders(&http, &url, ORDERS, "storm").await;
    let no = |o: &Value| o["order_no"].as_str().unwrap().to_owned();
    let (to_pay, unpaid) = created.split_at(PAID);

    // The buyers pay, 8 at a time; the gateway dies after a third of them, then comes back.
    let pay = |order: &Value| {
        let (http, sandbox_url, order_no) = (http.clone(), sandbox_url.clone(), no(order));
        async move {
            let res = http
                .post(format!("{sandbox_url}/sandbox/pay/{order_no}"))
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap();
            assert!(
                res.status().is_success(),
                "sandbox pay {order_no}: {}",
                res.status()
            );
        }
    };
    let third = PAID / 3;
    futures_util::stream::iter(&to_pay[..third])
        .for_each_concurrent(8, pay)
        .await;
    gateway.start_kill().expect("SIGKILL"); // tokio's kill is SIGKILL on Unix
    gateway.wait().await.unwrap();
    futures_util::stream::iter(&to_pay[third..])
        .for_each_concurrent(8, pay)
        .await;
    // The storm really hit a dead gateway: deliveries that found no one listening.
    let deliveries: Vec<Value> = http
        .get(format!("{sandbox_url}/sandbox/notifications"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unanswered = deliveries.iter().filter(|d| d["status"].is_null()).count();
    assert!(unanswered > 0, "no delivery met the killed gateway");
    let _gateway = start_gateway(&config, &url, &http).await;

    // Converge: the sandbox's retries (and one extra attempt of whatever is still pending,
    // as the provider's own schedule would make later) settle every paid order.
    let paid_nos: Vec<String> = to_pay.iter().map(no).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut resent = Instant::now();
    loop {
        let mut pending = 0;
        for order_no in &paid_nos {
            let order: Value = http
                .get(format!("{url}/v1/orders/{order_no}"))
                .bearer_auth(SECRET)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if order["status"] != "paid" {
                pending += 1;
            }
        }
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} paid orders never settled"
        );
        if resent.elapsed() > Duration::from_secs(5) {
            let _ = http
                .post(format!("{sandbox_url}/sandbox/notifications/resend"))
                .send()
                .await;
            resent = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Exactly once, from the database itself.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&db_url).await.unwrap();
    let count = |sql: &'static str, order_no: String| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(order_no)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    for order_no in &paid_nos {
        for sql in [
            "SELECT COUNT(*) FROM payment WHERE order_no = $1",
            "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'order.paid'",
            "SELECT COUNT(*) FROM payment_order WHERE order_no = $1 AND status = 'paid'",
        ] {
            assert_eq!(count(sql, order_no.clone()).await, 1, "{order_no}: {sql}");
        }
    }
    for order in unpaid {
        let order_no = no(order);
        for sql in [
            "SELECT COUNT(*) FROM payment WHERE order_no = $1",
            "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
        ] {
            assert_eq!(count(sql, order_no.clone()).await, 0, "{order_no}: {sql}");
        }
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM payment_order WHERE order_no = $1 AND status IN ('pending', 'closed')",
                order_no.clone()
            )
            .await,
            1
        );
    }
    if db_url.starts_with("sqlite:") {
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(check, "ok");
    }
    db.close().await;
}

/// `$body(db_url, dir)` as two tests: on a fresh SQLite file and on a fresh PostgreSQL
/// database (when one is configured).
macro_rules! on_sqlite_and_postgres {
    ($sqlite:ident, $postgres:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            let db_url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("paygate.db").display()
            );
            $body(db_url, dir).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(db_url) = common::fresh_postgres_url().await else {
                return;
            };
            $body(db_url.clone(), tempfile::tempdir().unwrap()).await;
            common::drop_postgres_database(&db_url);
        }
    };
}

on_sqlite_and_postgres!(
    kill_nine_mid_storm_on_sqlite,
    kill_nine_mid_storm_on_postgres,
    storm
);

const ACCESSES: usize = 600;

/// kill -9 among résumé first accesses (SQLite: the batching writer's commits): every access
/// answered 200 before the kill is there after it, and the entitlement's count of used units
/// is exactly the accesses recorded — no unit taken without its row, no row without its unit,
/// whatever the kill cut in half.
async fn first_accesses(db_url: String, dir: tempfile::TempDir) {
    let Rig {
        _sandbox,
        sandbox_url,
        url,
        config,
        http,
        mut gateway,
    } = rig(&db_url, dir.path()).await;
    let employer = "emp_kill_access";
    let order: Value = http
        .post(format!("{url}/v1/orders"))
        .bearer_auth(SECRET)
        .header("Idempotency-Key", "kill-access")
        .json(
            &json!({"employer_id": employer, "plan": "resume-download-200",
                      "provider": "alipay", "channel": "qr"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order_no = order["order_no"].as_str().unwrap().to_owned();
    let paid = http
        .post(format!("{sandbox_url}/sandbox/pay/{order_no}"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(paid.status().is_success());
    let settled: Value = http
        .get(format!("{url}/v1/orders/{order_no}?wait=10"))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settled["status"], "paid", "{settled}");

    // 32 at a time; the gateway dies once 120 have been answered.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let storm = {
        let (http, url, answered) = (http.clone(), url.clone(), answered.clone());
        tokio::spawn(async move {
            futures_util::stream::iter(0..ACCESSES)
                .for_each_concurrent(32, |i| {
                    let (http, url, answered) = (http.clone(), url.clone(), answered.clone());
                    async move {
                        let resume = format!("r-{i:04}");
                        let res = http
                            .post(format!("{url}/v1/employers/{employer}/resume-access"))
                            .bearer_auth(SECRET)
                            .json(&json!({"resume_id": resume, "action": "download"}))
                            .send()
                            .await;
                        if let Ok(res) = res
                            && res.status() == 200
                        {
                            answered.lock().unwrap().push(resume);
                        }
                    }
                })
                .await;
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < 120 {
        assert!(Instant::now() < deadline, "the accesses never got going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    gateway.start_kill().expect("SIGKILL");
    gateway.wait().await.unwrap();
    storm.await.unwrap();
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() < 200,
        "the kill came before the quota ran out: {}",
        answered.len()
    );

    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&db_url).await.unwrap();
    let recorded: Vec<String> = sqlx::query_scalar(
        "SELECT a.resume_id FROM resume_access a JOIN entitlement e ON e.entitlement_id = a.entitlement_id
         WHERE e.employer_id = $1",
    )
    .bind(employer)
    .fetch_all(&db)
    .await
    .unwrap();
    let recorded: std::collections::BTreeSet<String> = recorded.into_iter().collect();
    for resume in &answered {
        assert!(
            recorded.contains(resume),
            "{resume} was answered 200 but not kept"
        );
    }
    let (used, consumed): (i64, i64) = sqlx::query_as(
        "SELECT e.used, (SELECT COUNT(*) FROM entitlement_audit u
                         WHERE u.entitlement_id = e.entitlement_id AND u.kind = 'consumed')
         FROM entitlement e WHERE e.employer_id = $1",
    )
    .bind(employer)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        used as usize,
        recorded.len(),
        "units used = accesses recorded"
    );
    assert_eq!(
        consumed as usize,
        recorded.len(),
        "one audit line per access"
    );
    if db_url.starts_with("sqlite:") {
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(check, "ok");
    }
    db.close().await;

    // Back up: every answered résumé is a repeat, free; the count does not move.
    let _gateway = start_gateway(&config, &url, &http).await;
    for resume in answered.iter().take(20) {
        let res: Value = http
            .post(format!("{url}/v1/employers/{employer}/resume-access"))
            .bearer_auth(SECRET)
            .json(&json!({"resume_id": resume, "action": "download"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(res["granted"], true, "{res}");
        assert_eq!(res["remaining"], 200 - recorded.len() as i64, "{res}");
    }
}

on_sqlite_and_postgres!(
    kill_nine_among_first_accesses_on_sqlite,
    kill_nine_among_first_accesses_on_postgres,
    first_accesses
);

const LEDGER_ORDERS: usize = 60;
const LEDGER_PAID: usize = 40;

/// kill -9 of both processes while buyers pay (issue 19): the simulator runs with `--data`, and
/// the gateway's notify URL leads nowhere, so no callback ever tells the gateway anything. 60
/// orders across both providers; buyers pay 40 of them at the simulator; after a third of the
/// payments were answered the simulator is killed with SIGKILL mid-storm, then the gateway.
/// Both start again, the simulator on the same ledger file and port. The gateway's active
/// query (`paygate sync-pending`, once the orders are old enough for it) then settles every
/// payment the simulator answered, and agrees with the simulator on every other order: paid
/// exactly once where the simulator took the money (a payment in flight at the kill may have
/// been kept), pending where it did not.
async fn both_killed_ledger_kept(db_url: String, dir: tempfile::TempDir) {
    let keys = dir.path().join("keys");
    let status = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["keys", "generate", keys.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "keys generate");
    let ledger = dir.path().join("sandbox.db");
    let sandbox_addr = format!("127.0.0.1:{}", free_port());
    let sandbox_args = [
        "--listen",
        sandbox_addr.as_str(),
        "--data",
        ledger.to_str().unwrap(),
    ];
    let (mut sandbox, sandbox_url) = start_sandbox_with(&keys, &sandbox_args).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let url = format!("http://{addr}");
    let config = gateway_config(dir.path(), &keys, &sandbox_url, &db_url, addr);
    // Callbacks go to a port nobody listens on: only a query can tell the gateway.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("listen = \"{addr}\""),
        &format!("listen = \"{addr}\"\npublic_url = \"http://127.0.0.1:9\""),
    );
    std::fs::write(&config, text).unwrap();
    let http = reqwest::Client::new();
    let mut gateway = start_gateway(&config, &url, &http).await;

    let created: Vec<String> = create_orders(&http, &url, LEDGER_ORDERS, "ledger")
        .await
        .iter()
        .map(|order| order["order_no"].as_str().unwrap().to_owned())
        .collect();
    let (to_pay, unpaid) = created.split_at(LEDGER_PAID);

    // The buyers pay, 8 at a time; a payment counts once the simulator answered it.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let storm = {
        let (http, sandbox_url, answered) = (http.clone(), sandbox_url.clone(), answered.clone());
        let to_pay = to_pay.to_vec();
        tokio::spawn(async move {
            futures_util::stream::iter(to_pay)
                .for_each_concurrent(8, |order_no| {
                    let (http, sandbox_url, answered) =
                        (http.clone(), sandbox_url.clone(), answered.clone());
                    async move {
                        let res = http
                            .post(format!("{sandbox_url}/sandbox/pay/{order_no}"))
                            .header("Accept", "application/json")
                            .send()
                            .await;
                        if let Ok(res) = res
                            && res.status().is_success()
                        {
                            answered.lock().unwrap().push(order_no);
                        }
                    }
                })
                .await;
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < LEDGER_PAID / 3 {
        assert!(Instant::now() < deadline, "the payments never got going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // No delivery reached anyone: whatever the gateway learns, it learns by asking.
    let deliveries: Vec<Value> = http
        .get(format!("{sandbox_url}/sandbox/notifications"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(deliveries.iter().all(|d| d["acknowledged"] == false));
    sandbox.start_kill().expect("SIGKILL");
    sandbox.wait().await.unwrap();
    gateway.start_kill().expect("SIGKILL");
    gateway.wait().await.unwrap();
    storm.await.unwrap();
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() < LEDGER_PAID,
        "the kill came before every payment was answered"
    );

    // Back up: the simulator on its ledger and port, then the gateway. The active query takes
    // orders older than 2 minutes; these were made seconds ago, so they are aged in the
    // database rather than waited for.
    let (_sandbox, restarted_url) = start_sandbox_with(&keys, &sandbox_args).await;
    assert_eq!(restarted_url, sandbox_url);
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&db_url).await.unwrap();
    sqlx::query("UPDATE payment_order SET created_at = created_at - 180000")
        .execute(&db)
        .await
        .unwrap();
    let _gateway = start_gateway(&config, &url, &http).await;
    let out = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["--config", config.to_str().unwrap(), "sync-pending"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "sync-pending");
    let pass: Value = serde_json::from_slice(&out.stdout).expect("the pass as JSON");
    assert_eq!(pass["failed"], 0, "{pass}");

    // What the simulator says now (its cashier page), against the gateway's database.
    let count = |sql: &'static str, order_no: String| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(order_no)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let mut kept_in_flight = 0;
    for order_no in to_pay {
        let cashier = http
            .get(format!("{sandbox_url}/sandbox/cashier/{order_no}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let paid_at_simulator = cashier.contains("<p class=\"state\">Paid.</p>");
        if answered.contains(order_no) {
            assert!(
                paid_at_simulator,
                "{order_no}: the simulator forgot a payment it answered"
            );
        } else if paid_at_simulator {
            kept_in_flight += 1;
        }
        let expected = i64::from(paid_at_simulator);
        for sql in [
            "SELECT COUNT(*) FROM payment WHERE order_no = $1",
            "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'order.paid'",
            "SELECT COUNT(*) FROM payment_order WHERE order_no = $1 AND status = 'paid'",
        ] {
            assert_eq!(
                count(sql, order_no.clone()).await,
                expected,
                "{order_no}: {sql}"
            );
        }
    }
    eprintln!(
        "{} payments answered before the kill, {kept_in_flight} more kept from flight",
        answered.len()
    );
    for order_no in unpaid {
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM payment_order WHERE order_no = $1 AND status = 'pending'",
                order_no.clone()
            )
            .await,
            1
        );
    }
    db.close().await;
}

on_sqlite_and_postgres!(
    kill_nine_of_both_with_a_kept_ledger_converges_by_query_on_sqlite,
    kill_nine_of_both_with_a_kept_ledger_converges_by_query_on_postgres,
    both_killed_ledger_kept
);

/// `n` orders created 16 at a time, alternately WeChat Native and Alipay QR, for employers
/// `emp_{label}_{i}` with Idempotency-Keys `{label}-{i}`.
async fn create_orders(http: &reqwest::Client, url: &str, n: usize, label: &str) -> Vec<Value> {
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            let (provider, channel) = if i % 2 == 0 {
                ("wechatpay", "native")
            } else {
                ("alipay", "qr")
            };
            let res = http
                .post(format!("{url}/v1/orders"))
                .bearer_auth(SECRET)
                .header("Idempotency-Key", format!("{label}-{i}"))
                .json(
                    &json!({"employer_id": format!("emp_{label}_{i}"), "plan": "resume-download-50",
                              "provider": provider, "channel": channel}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()
        })
        .buffer_unordered(16)
        .collect()
        .await
}
