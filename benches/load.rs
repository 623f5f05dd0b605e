//! Load tool (issue 9 §3–§4): the real gateway with the embedded sandbox, driven over real
//! HTTP at a fixed concurrency for a fixed time per scenario; every request's latency recorded.
//! Each figure is also given as a ratio to `GET /healthz` of the same server in the same run.
//!
//! ```sh
//! cargo bench --bench load                                   # every scenario, C=64, D=10 s
//! cargo bench --bench load -- --seconds 2 --connections 8    # a short smoke run
//! cargo bench --bench load -- --scenarios repeat_view,first_view
//! PAYGATE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/paygate_bench \
//!     cargo bench --bench load                               # on PostgreSQL
//! ```
//!
//! Options (after `--`; `--name value` or `--name=value`; each also as an environment variable;
//! unknown flags such as the `--bench` that cargo passes are ignored):
//!
//! | option | env | default | meaning |
//! |---|---|---|---|
//! | `--connections C` | `PAYGATE_LOAD_CONNECTIONS` | 64 | concurrent clients, each one keep-alive HTTP/1.1 connection with one request in flight (as `wrk -cC`); for `raw_settle`, C tasks |
//! | `--seconds D` | `PAYGATE_LOAD_SECONDS` | 10 | timed window of each scenario |
//! | `--scenarios a,b` | `PAYGATE_LOAD_SCENARIOS` | all | which scenarios to run; `healthz` always runs first |
//! | `--orders N` | `PAYGATE_LOAD_ORDERS` | 2000 × D | orders (and signed callbacks) prepared per fresh-callback scenario |
//! | `--raw-orders N` | `PAYGATE_LOAD_RAW_ORDERS` | 10000 × D | orders prepared for `raw_settle` |
//! | `--client-threads T` | `PAYGATE_LOAD_CLIENT_THREADS` | nproc | worker threads of the client runtime |
//! | `--server-threads T` | `PAYGATE_LOAD_SERVER_THREADS` | nproc | worker threads of the gateway's runtime |
//!
//! The database: SQLite in a fresh file in a temp dir, or, when `PAYGATE_BENCH_DATABASE_URL`
//! names a PostgreSQL server, a fresh database `paygate_load_<random>` created on that server
//! (through its `postgres` database) and dropped at the end. The gateway's own configuration
//! overrides (`PAYGATE_<SECTION>__<KEY>`, e.g. `PAYGATE_DATABASE__MAX_CONNECTIONS=16`) apply as
//! they do to `paygate serve`; the rate limits (`[limits] api_rate_per_key`,
//! `webhook_rate_per_ip`) are raised out of the way unless given, since one key and one address
//! drive everything.
//!
//! The gateway is `Application::build` with the embedded sandbox and the fixture keys of
//! `tests/fixtures`, scheduler off, on 127.0.0.1:0, on a multi-thread tokio runtime of its own;
//! the clients run on a second runtime in the same process (hyper HTTP/1.1 connections, opened
//! before the window). Data is prepared outside the timed window. Scenarios:
//!
//! - `healthz`: `GET /healthz` → 200. The denominator of every ratio.
//! - `repeat_view`: one employer with an unlimited `resume-view-30d` entitlement (ordered and
//!   paid through the sandbox) and 1024 résumés it has viewed once; `POST
//!   /v1/employers/{id}/resume-access {"resume_id", "action": "view"}` cycling over them → 200,
//!   consuming nothing.
//! - `first_view`: 16 such employers; every request a résumé never seen before, the employers
//!   taken in turn → 200 (one access row written each).
//! - `order_read`: `GET /v1/orders/{no}` over 256 paid orders (half WeChat Pay, half Alipay).
//! - `order_create`: `POST /v1/orders` (WeChat Pay native) with a distinct Idempotency-Key each
//!   → 201. Each order costs one RSA-2048 signature on the gateway's side and one more in the
//!   sandbox (same process), so the machine's single-thread sign rate
//!   (`paygate_wechatpay::Signer`, measured here for 2 s while the server is idle) and the
//!   ratio order_create / sign rate are reported with it.
//! - `order_create_stub`: the same requests to a second gateway on the same database whose
//!   `[wechatpay] api_base` is a stub in this process that does not sign: it answers every
//!   order with one `code_url` answer signed once, before the window, with the platform key the
//!   gateway trusts. So each order costs the gateway's one signature and nothing of the
//!   provider's; the ratio to the sign rate of one thread and of all threads (`nproc` signers
//!   at once, the machine's rate) is reported.
//! - `fresh_callback`: N pending WeChat Pay native orders, each with a TRANSACTION.SUCCESS
//!   callback (distinct transaction id) signed and encrypted beforehand with the sandbox's keys
//!   (`Sandbox::wechat_notification`), so the simulator's signing is not measured; each is
//!   POSTed once to `/webhooks/wechatpay` → 204. The window ends early when the prepared
//!   callbacks run out (the rate stays valid; the window is given in the table).
//! - `fresh_callback_alipay`: the same for Alipay QR orders, pre-signed `trade_status_sync`
//!   form bodies POSTed to `/webhooks/alipay` → 200 `success`.
//! - `duplicate_callback` / `duplicate_callback_alipay`: one order settled by its callback
//!   beforehand; that same signed callback POSTed again and again → 204 / `success`.
//! - `raw_settle`: the storage ceiling (§4): no HTTP, no crypto. N pending WeChat Pay orders;
//!   C tasks on the gateway's runtime call `paygate::settle::settle` directly on the gateway's
//!   database (settles/s in the table). The ratios fresh_callback / raw_settle are reported.
//!
//! Pending orders for the callback and raw-settle scenarios: one template order is created
//! through `POST /v1/orders`, and the others are copies of its row (a new order number and
//! employer each) inserted in one transaction, since creating tens of thousands through the
//! API costs two RSA signatures each; if that copy fails (e.g. the schema changed), they are
//! created through the API instead (at most 5000). After the copy the SQLite WAL is
//! checkpointed, or the table vacuumed and analysed on PostgreSQL, before the window opens.
//! Callback windows are capped at 240 s (a WeChat signature is accepted for 5 minutes).
//!
//! Checks after a window, printed as notes when they fail: `repeat_view` left the entitlement's
//! `used` unchanged, `first_view` recorded one access per 200, and each fresh-callback
//! scenario paid exactly as many orders as it got acknowledgements. Requests answered with
//! another status (or body, for Alipay's `success`) count as errors, listed by status.
//! A scenario whose preparation fails is reported as not measured, and the exit code is 1.
//!
//! Output: the machine facts and a Markdown table on stdout, progress on stderr. The RSS is
//! that of the whole process (gateway, sandbox and clients, prepared callbacks included).
//! Figures belong in BENCHMARKS.md with the command and the machine; nothing here asserts a
//! time. Request and response bodies and keys are never printed.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use paygate::app::{Application, Options, SandboxSetup};
use paygate::config::{ApiKeyConfig, Config};
use paygate::domain::{Currency, Fen, OrderNo, ProviderId};
use paygate::settle::{self, PaidTrade, Settled, Source};
use paygate::state::AppState;
use paygate_sandbox::Sandbox;
use serde_json::{Value, json};

const KEY: &str = "pgk_load";
const BEARER: &str = "Bearer pgk_load";
const MERCHANT_KEY: &str = include_str!("../tests/fixtures/merchant_key.pem");
const PLATFORM_KEY: &str = include_str!("../tests/fixtures/platform_key.pem");
const APIV3_KEY: &str = "paygateTestApiV3Key0123456789abc";

const SCENARIOS: [&str; 11] = [
    "healthz",
    "repeat_view",
    "first_view",
    "order_read",
    "order_create",
    "order_create_stub",
    "fresh_callback",
    "fresh_callback_alipay",
    "duplicate_callback",
    "duplicate_callback_alipay",
    "raw_settle",
];
const REPEAT_RESUMES: usize = 1024;
const FIRST_VIEW_EMPLOYERS: usize = 16;
const READ_ORDERS: usize = 256;
/// Requests in flight while preparing data.
const PREP_IN_FLIGHT: usize = 16;
/// Orders created through the API when copying rows is not possible.
const API_FALLBACK_CAP: usize = 5000;
/// A signed WeChat callback is accepted for 5 minutes; keep every window inside that.
const CALLBACK_WINDOW_CAP_S: f64 = 240.0;

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    connections: usize,
    seconds: f64,
    scenarios: Vec<String>,
    orders: Option<usize>,
    raw_orders: Option<usize>,
    client_threads: usize,
    server_threads: usize,
}

fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn usage() -> String {
    let names = SCENARIOS.join(",");
    format!(
        "cargo bench --bench load -- [--connections C] [--seconds D] [--scenarios {names}] \
         [--orders N] [--raw-orders N] [--client-threads T] [--server-threads T]\n\
         env: PAYGATE_LOAD_CONNECTIONS, PAYGATE_LOAD_SECONDS, PAYGATE_LOAD_SCENARIOS, \
         PAYGATE_LOAD_ORDERS, PAYGATE_LOAD_RAW_ORDERS, PAYGATE_LOAD_CLIENT_THREADS, \
         PAYGATE_LOAD_SERVER_THREADS; PAYGATE_BENCH_DATABASE_URL=postgres://… for PostgreSQL"
    )
}

fn parse_opts() -> anyhow::Result<Opts> {
    const NAMES: [(&str, &str); 7] = [
        ("connections", "PAYGATE_LOAD_CONNECTIONS"),
        ("seconds", "PAYGATE_LOAD_SECONDS"),
        ("scenarios", "PAYGATE_LOAD_SCENARIOS"),
        ("orders", "PAYGATE_LOAD_ORDERS"),
        ("raw-orders", "PAYGATE_LOAD_RAW_ORDERS"),
        ("client-threads", "PAYGATE_LOAD_CLIENT_THREADS"),
        ("server-threads", "PAYGATE_LOAD_SERVER_THREADS"),
    ];
    let mut values: BTreeMap<&str, String> = BTreeMap::new();
    for (name, var) in NAMES {
        if let Ok(v) = std::env::var(var) {
            values.insert(name, v);
        }
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{}", usage());
            std::process::exit(0);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            continue; // a filter cargo passes on, or a stray word: not ours
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let Some((known, _)) = NAMES.iter().find(|(n, _)| *n == name) else {
            continue; // `--bench` and any other flag of cargo's
        };
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| anyhow!("--{name} needs a value"))?,
        };
        values.insert(known, value);
    }
    let number = |name: &str, default: usize| -> anyhow::Result<usize> {
        match values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| anyhow!("--{name} must be a positive integer, not {v:?}")),
        }
    };
    let seconds = match values.get("seconds") {
        None => 10.0,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| anyhow!("--seconds must be a positive number, not {v:?}"))?,
    };
    let mut scenarios = vec!["healthz".to_owned()];
    match values.get("scenarios") {
        None => scenarios.extend(SCENARIOS[1..].iter().map(|s| s.to_string())),
        Some(list) => {
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !SCENARIOS.contains(&name) {
                    bail!("unknown scenario {name:?}; known: {}", SCENARIOS.join(", "));
                }
                if !scenarios.iter().any(|s| s == name) {
                    scenarios.push(name.to_owned());
                }
            }
        }
    }
    let optional = |name: &str| -> anyhow::Result<Option<usize>> {
        values.get(name).map(|_| number(name, 1)).transpose()
    };
    Ok(Opts {
        connections: number("connections", 64)?,
        seconds,
        scenarios,
        orders: optional("orders")?,
        raw_orders: optional("raw-orders")?,
        client_threads: number("client-threads", nproc())?,
        server_threads: number("server-threads", nproc())?,
    })
}

// ---------------------------------------------------------------------------------------------
// The database: a temp SQLite file, or a fresh PostgreSQL database dropped at the end

/// A database created on the server of `PAYGATE_BENCH_DATABASE_URL`; dropped (its connections
/// included) when this is dropped, also on a panic.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
    version: String,
}

impl PgDatabase {
    async fn create(server_url: &str) -> anyhow::Result<PgDatabase> {
        use sqlx::Connection;
        let mut admin = url::Url::parse(server_url).context("PAYGATE_BENCH_DATABASE_URL")?;
        admin.set_path("/postgres");
        let mut conn = sqlx::PgConnection::connect(admin.as_str())
            .await
            .context("connecting to the server of PAYGATE_BENCH_DATABASE_URL")?;
        let name = format!("paygate_load_{}", hex::encode(rand::random::<[u8; 6]>()));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .context("CREATE DATABASE")?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_default();
        let _ = conn.close().await;
        let mut url = url::Url::parse(server_url)?;
        url.set_path(&format!("/{name}"));
        Ok(PgDatabase {
            admin_url: admin.to_string(),
            name,
            url: url.to_string(),
            version,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop database {}: drop it by hand", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

enum Step {
    /// Answered as expected.
    Ok,
    /// Answered otherwise, or failed: what, for the error summary (never a body).
    Err(String),
    /// Nothing left to send: this client stops.
    Done,
}

/// One client's loop: `step(i)` sends request number `i` (numbers are shared by all clients).
trait Worker: Send + 'static {
    fn step(&mut self, i: u64) -> impl Future<Output = Step> + Send;
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    kinds: BTreeMap<String, u64>,
    last: Option<Instant>,
}

struct Measured {
    name: String,
    requests: u64,
    errors: u64,
    kinds: BTreeMap<String, u64>,
    secs: f64,
    rate: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    notes: Vec<String>,
}

async fn drive<W: Worker>(
    name: &str,
    runtime: &tokio::runtime::Handle,
    workers: Vec<W>,
    seconds: f64,
) -> Measured {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let next = next.clone();
            runtime.spawn(async move {
                let mut tally = Tally {
                    latencies_us: Vec::with_capacity(16 * 1024),
                    ..Tally::default()
                };
                loop {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let step = worker.step(i).await;
                    let done = Instant::now();
                    match step {
                        Step::Done => break,
                        Step::Ok => {}
                        Step::Err(kind) => {
                            tally.errors += 1;
                            *tally.kinds.entry(kind).or_default() += 1;
                        }
                    }
                    let us = done.duration_since(sent).as_micros();
                    tally
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                    tally.last = Some(done);
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for task in tasks {
        let Ok(tally) = task.await else {
            all.errors += 1;
            *all.kinds.entry("client task panicked".into()).or_default() += 1;
            continue;
        };
        all.latencies_us.extend_from_slice(&tally.latencies_us);
        all.errors += tally.errors;
        for (k, n) in tally.kinds {
            *all.kinds.entry(k).or_default() += n;
        }
        all.last = all.last.max(tally.last);
    }
    let mut lat = all.latencies_us;
    lat.sort_unstable();
    let secs = all
        .last
        .map_or(0.0, |t| t.duration_since(start).as_secs_f64());
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let rank = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
        f64::from(lat[rank - 1]) / 1000.0
    };
    let requests = lat.len() as u64;
    Measured {
        name: name.to_owned(),
        requests,
        errors: all.errors,
        kinds: all.kinds,
        secs,
        rate: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        p50: pct(0.50),
        p90: pct(0.90),
        p99: pct(0.99),
        max: pct(1.0),
        notes: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP clients: one hyper HTTP/1.1 connection each, one request in flight

type Req = Request<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// What a scenario sends as request `i` (None: nothing left), and what it expects back.
struct HttpScenario {
    build: Box<dyn Fn(u64) -> Option<Req> + Send + Sync>,
    status: StatusCode,
    body: Option<&'static [u8]>,
}

struct HttpWorker {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    scenario: Arc<HttpScenario>,
}

impl Worker for HttpWorker {
    async fn step(&mut self, i: u64) -> Step {
        let Some(req) = (self.scenario.build)(i) else {
            return Step::Done;
        };
        if self.sender.is_none() {
            match connect(self.addr).await {
                Ok(s) => self.sender = Some(s),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return Step::Err("connect failed".into());
                }
            }
        }
        let Some(sender) = self.sender.as_mut() else {
            return Step::Err("connect failed".into());
        };
        let answer = async {
            sender.ready().await?;
            let res = sender.send_request(req).await?;
            let status = res.status();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        match answer {
            Ok((status, body)) => {
                if status != self.scenario.status {
                    Step::Err(format!("HTTP {}", status.as_u16()))
                } else if self.scenario.body.is_some_and(|want| body != want) {
                    Step::Err(format!("HTTP {} with another body", status.as_u16()))
                } else {
                    Step::Ok
                }
            }
            Err(_) => {
                self.sender = None;
                Step::Err("connection error".into())
            }
        }
    }
}

/// `raw_settle`: the settlement transaction called directly, on the gateway's runtime.
struct SettleWorker {
    state: AppState,
    trades: Arc<Vec<PaidTrade>>,
}

impl Worker for SettleWorker {
    async fn step(&mut self, i: u64) -> Step {
        let Some(trade) = usize::try_from(i).ok().and_then(|i| self.trades.get(i)) else {
            return Step::Done;
        };
        let now = self.state.clock.now();
        match settle::settle(&self.state.db, trade, Source::Notification, now).await {
            Ok(Settled::Now { .. }) => Step::Ok,
            Ok(other) => Step::Err(format!("{other:?}")),
            Err(e) => Step::Err(e.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bench: the running gateway, and the preparation of each scenario's data

/// A pending order ready to be paid by a forged report.
#[derive(Clone)]
struct Pending {
    order_no: String,
    amount_yuan: String,
    fen: i64,
}

/// A prepared request: the headers besides Host, and the body.
struct Prepared {
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

struct Bench {
    opts: Opts,
    url: String,
    addr: SocketAddr,
    host: HeaderValue,
    http: reqwest::Client,
    sandbox: Sandbox,
    state: AppState,
    server: tokio::runtime::Handle,
    /// Our own connection to the gateway's database, for copying order rows.
    prep_db: Option<sqlx::AnyPool>,
    sqlite: bool,
    /// The gateway's database and temp dir, for the stub scenario's second gateway.
    db_url: String,
    dir: std::path::PathBuf,
}

impl Bench {
    fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Req {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        builder.body(Full::new(body)).expect("a valid request")
    }

    async fn http_workers(
        &self,
        addr: SocketAddr,
        scenario: HttpScenario,
    ) -> anyhow::Result<Vec<HttpWorker>> {
        let scenario = Arc::new(scenario);
        let mut workers = Vec::with_capacity(self.opts.connections);
        for _ in 0..self.opts.connections {
            workers.push(HttpWorker {
                addr,
                sender: Some(connect(addr).await.context("connecting a client")?),
                scenario: scenario.clone(),
            });
        }
        Ok(workers)
    }

    async fn run_http(
        &self,
        name: &str,
        seconds: f64,
        scenario: HttpScenario,
    ) -> anyhow::Result<Measured> {
        self.run_http_at(self.addr, name, seconds, scenario).await
    }

    async fn run_http_at(
        &self,
        addr: SocketAddr,
        name: &str,
        seconds: f64,
        scenario: HttpScenario,
    ) -> anyhow::Result<Measured> {
        let workers = self.http_workers(addr, scenario).await?;
        eprintln!("{name}: {} connections, {seconds} s", workers.len());
        Ok(drive(name, &tokio::runtime::Handle::current(), workers, seconds).await)
    }

    // --- preparation through the API (reqwest; not timed)

    async fn create_order(
        &self,
        employer: &str,
        plan: &str,
        provider: &str,
    ) -> anyhow::Result<Value> {
        let channel = if provider == "alipay" { "qr" } else { "native" };
        let body = json!({"employer_id": employer, "plan": plan, "provider": provider, "channel": channel});
        let res = self
            .http
            .post(format!("{}/v1/orders", self.url))
            .bearer_auth(KEY)
            .header(
                "Idempotency-Key",
                format!("prep-{}", hex::encode(rand::random::<[u8; 8]>())),
            )
            .json(&body)
            .send()
            .await?;
        if res.status() != 201 {
            bail!("creating an order answered {}", res.status());
        }
        Ok(res.json().await?)
    }

    async fn order_status(&self, order_no: &str) -> anyhow::Result<String> {
        let res = self
            .http
            .get(format!("{}/v1/orders/{order_no}", self.url))
            .bearer_auth(KEY)
            .send()
            .await?;
        if res.status() != 200 {
            bail!("reading an order answered {}", res.status());
        }
        let order: Value = res.json().await?;
        Ok(order["status"].as_str().unwrap_or_default().to_owned())
    }

    /// Orders created, paid by the sandbox's buyer, settled through the real notifications.
    async fn paid_orders(
        &self,
        specs: Vec<(String, &'static str, &'static str)>,
    ) -> anyhow::Result<Vec<String>> {
        let created: Vec<anyhow::Result<String>> = futures_util::stream::iter(specs)
            .map(|(employer, plan, provider)| async move {
                let order = self.create_order(&employer, plan, provider).await?;
                let no = order["order_no"].as_str().context("order_no")?.to_owned();
                let res = self
                    .http
                    .post(format!("{}/sandbox/pay/{no}", self.url))
                    .header("Accept", "application/json")
                    .send()
                    .await?;
                if !res.status().is_success() {
                    bail!("sandbox pay answered {}", res.status());
                }
                Ok(no)
            })
            .buffer_unordered(PREP_IN_FLIGHT)
            .collect()
            .await;
        let orders = created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        for no in &orders {
            while self.order_status(no).await? != "paid" {
                if Instant::now() > deadline {
                    bail!("order {no} was not settled by its notification within 60 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(orders)
    }

    async fn view(&self, employer: &str, resume: &str) -> anyhow::Result<()> {
        let res = self
            .http
            .post(format!(
                "{}/v1/employers/{employer}/resume-access",
                self.url
            ))
            .bearer_auth(KEY)
            .json(&json!({"resume_id": resume, "action": "view"}))
            .send()
            .await?;
        if res.status() != 200 {
            bail!("a first view answered {}", res.status());
        }
        Ok(())
    }

    /// The sum of `used` over the employer's entitlements (`GET …/entitlements`).
    async fn used(&self, employer: &str) -> Option<i64> {
        let res = self
            .http
            .get(format!("{}/v1/employers/{employer}/entitlements", self.url))
            .bearer_auth(KEY)
            .send()
            .await
            .ok()?;
        let list: Value = res.json().await.ok()?;
        list["entitlements"]
            .as_array()?
            .iter()
            .map(|e| e["used"].as_i64())
            .sum()
    }

    /// `n` pending orders on `provider` for distinct employers `emp_load_{tag}_{i}`: one created
    /// through the API, the others copies of its row (or, failing that, created through the API).
    async fn pending_orders(
        &self,
        tag: &str,
        provider: &'static str,
        n: usize,
    ) -> anyhow::Result<Vec<Pending>> {
        let template = self
            .create_order(&format!("emp_load_{tag}_0"), "resume-download-50", provider)
            .await?;
        let order_no = template["order_no"]
            .as_str()
            .context("order_no")?
            .to_owned();
        let amount_yuan = template["amount"].as_str().context("amount")?.to_owned();
        let fen = Fen::parse_yuan(&amount_yuan)
            .map_err(|e| anyhow!("amount: {e}"))?
            .get();
        let pending = |order_no: String| Pending {
            order_no,
            amount_yuan: amount_yuan.clone(),
            fen,
        };
        let mut orders = vec![pending(order_no.clone())];
        if n <= 1 {
            return Ok(orders);
        }
        let copies: Vec<(String, String)> = (1..n)
            .map(|i| {
                (
                    OrderNo::generate().as_str().to_owned(),
                    format!("emp_load_{tag}_{i}"),
                )
            })
            .collect();
        match self.copy_orders(&order_no, &copies).await {
            Ok(()) => orders.extend(copies.into_iter().map(|(no, _)| pending(no))),
            Err(e) => {
                let n = n.min(API_FALLBACK_CAP);
                eprintln!(
                    "  copying order rows failed ({e:#}); creating {n} through the API instead"
                );
                let created: Vec<anyhow::Result<Value>> = futures_util::stream::iter(1..n)
                    .map(|i| async move {
                        self.create_order(
                            &format!("emp_load_{tag}_{i}"),
                            "resume-download-50",
                            provider,
                        )
                        .await
                    })
                    .buffer_unordered(self.opts.connections.max(PREP_IN_FLIGHT))
                    .collect()
                    .await;
                for order in created {
                    let order = order?;
                    orders.push(pending(
                        order["order_no"].as_str().context("order_no")?.to_owned(),
                    ));
                }
            }
        }
        Ok(orders)
    }

    /// Inserts copies of the `template` order row, each with its own order number and employer,
    /// in one transaction. Reads the column list from the row, so it follows the schema.
    async fn copy_orders(&self, template: &str, copies: &[(String, String)]) -> anyhow::Result<()> {
        use sqlx::{Column, Row};
        let pool = self
            .prep_db
            .as_ref()
            .context("no database connection of our own")?;
        let row = sqlx::query("SELECT * FROM payment_order WHERE order_no = $1")
            .bind(template)
            .fetch_one(pool)
            .await?;
        let columns: Vec<String> = row.columns().iter().map(|c| c.name().to_owned()).collect();
        for needed in ["order_no", "employer_id"] {
            if !columns.iter().any(|c| c == needed) {
                bail!("payment_order has no column {needed}");
            }
        }
        let select: Vec<String> = columns
            .iter()
            .map(|c| match c.as_str() {
                "order_no" => "v.column1".to_owned(),
                "employer_id" => "v.column2".to_owned(),
                other => format!("t.\"{other}\""),
            })
            .collect();
        let insert = columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let select = select.join(", ");
        let mut tx = pool.begin().await?;
        for chunk in copies.chunks(500) {
            let values = (0..chunk.len())
                .map(|k| format!("(${}, ${})", 2 * k + 2, 2 * k + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO payment_order ({insert}) SELECT {select} \
                 FROM payment_order t, (VALUES {values}) AS v WHERE t.order_no = $1"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(template);
            for (no, employer) in chunk {
                query = query.bind(no.as_str()).bind(employer.as_str());
            }
            let done = query.execute(&mut *tx).await?;
            if done.rows_affected() != chunk.len() as u64 {
                bail!("copied {} rows of {}", done.rows_affected(), chunk.len());
            }
        }
        tx.commit().await?;
        // Not inside the window: fold the copies into the database file (SQLite) or vacuum and
        // analyse the table (PostgreSQL), so the first writes measured do not pay for them.
        let tidy = if self.sqlite {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        } else {
            "VACUUM (ANALYZE) payment_order"
        };
        if let Err(e) = sqlx::query(tidy).execute(pool).await {
            eprintln!("  {tidy}: {e}");
        }
        Ok(())
    }

    /// How many orders of employers `emp_load_{tag}_*` are paid (a check after a window).
    async fn paid_count(&self, tag: &str) -> Option<i64> {
        let pool = self.prep_db.as_ref()?;
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM payment_order WHERE status = 'paid' AND employer_id LIKE $1",
        )
        .bind(format!("emp_load_{tag}_%"))
        .fetch_one(pool)
        .await
        .ok()
    }

    // --- signed callbacks, built before the window

    fn wechat_callbacks(&self, orders: &[Pending], txn_prefix: &str) -> Vec<Prepared> {
        let now = self.state.clock.now().timestamp();
        let sandbox = self.sandbox.clone();
        parallel(orders, move |i, order| {
            let tx = wechat_transaction(order, &format!("{txn_prefix}{i:014}"));
            let signed = sandbox.wechat_notification(&tx, now);
            let mut headers = vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )];
            for (k, v) in &signed.headers {
                if let (Ok(k), Ok(v)) = (
                    HeaderName::try_from(k.as_str()),
                    HeaderValue::try_from(v.as_str()),
                ) {
                    headers.push((k, v));
                }
            }
            Prepared {
                headers,
                body: Bytes::from(signed.body),
            }
        })
    }

    fn alipay_callbacks(orders: &[Pending], trade_prefix: &str) -> Vec<Prepared> {
        parallel(orders, move |i, order| {
            thread_local! {
                static SIGNER: paygate_alipay::Signer =
                    paygate_alipay::Signer::from_pem_or_base64(PLATFORM_KEY).expect("fixture key");
            }
            let body = SIGNER
                .with(|key| alipay_notification(order, &format!("{trade_prefix}{i:012}"), i, key));
            Prepared {
                headers: vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
                )],
                body: Bytes::from(body),
            }
        })
    }

    fn callback_scenario(
        &self,
        path: &'static str,
        prepared: Vec<Prepared>,
        alipay: bool,
        cycle: bool,
    ) -> HttpScenario {
        let host = self.host.clone();
        let prepared = Arc::new(prepared);
        HttpScenario {
            build: Box::new(move |i| {
                let n = prepared.len() as u64;
                let i = if cycle { i % n } else { i };
                let p = prepared.get(usize::try_from(i).ok()?)?;
                let mut builder = Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header(header::HOST, host.clone());
                for (k, v) in &p.headers {
                    builder = builder.header(k, v);
                }
                builder.body(Full::new(p.body.clone())).ok()
            }),
            status: if alipay {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            },
            body: alipay.then_some(b"success".as_slice()),
        }
    }

    // --- the scenarios

    async fn healthz(&self) -> anyhow::Result<Measured> {
        let host = self.host.clone();
        let scenario = HttpScenario {
            build: Box::new(move |_| {
                Request::builder()
                    .uri("/healthz")
                    .header(header::HOST, host.clone())
                    .body(Full::new(Bytes::new()))
                    .ok()
            }),
            status: StatusCode::OK,
            body: None,
        };
        self.run_http("healthz", self.opts.seconds, scenario).await
    }

    fn access_request(&self, employer: &str, resume: &str) -> Req {
        let body = format!(r#"{{"resume_id":"{resume}","action":"view"}}"#);
        self.request(
            Method::POST,
            &format!("/v1/employers/{employer}/resume-access"),
            &[
                (header::AUTHORIZATION, HeaderValue::from_static(BEARER)),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
            ],
            Bytes::from(body),
        )
    }

    async fn repeat_view(&self) -> anyhow::Result<Measured> {
        let employer = "emp_load_rv";
        eprintln!(
            "repeat_view: preparing one view entitlement and {REPEAT_RESUMES} viewed résumés"
        );
        self.paid_orders(vec![(employer.to_owned(), "resume-view-30d", "wechatpay")])
            .await?;
        let resumes: Vec<String> = (0..REPEAT_RESUMES).map(|r| format!("rv-{r:05}")).collect();
        let firsts: Vec<anyhow::Result<()>> = futures_util::stream::iter(&resumes)
            .map(|r| self.view(employer, r))
            .buffer_unordered(PREP_IN_FLIGHT)
            .collect()
            .await;
        firsts.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let requests: Arc<Vec<Req>> = Arc::new(
            resumes
                .iter()
                .map(|r| self.access_request(employer, r))
                .collect(),
        );
        let scenario = HttpScenario {
            build: Box::new(move |i| {
                let template = &requests[(i % requests.len() as u64) as usize];
                clone_request(template)
            }),
            status: StatusCode::OK,
            body: None,
        };
        let used_before = self.used(employer).await;
        let mut m = self
            .run_http("repeat_view", self.opts.seconds, scenario)
            .await?;
        let used_after = self.used(employer).await;
        if used_before != used_after {
            m.notes.push(format!(
                "the entitlement's `used` went from {used_before:?} to {used_after:?}: repeats consumed"
            ));
        }
        Ok(m)
    }

    async fn first_view(&self) -> anyhow::Result<Measured> {
        eprintln!("first_view: preparing {FIRST_VIEW_EMPLOYERS} employers with a view entitlement");
        let employers: Vec<String> = (0..FIRST_VIEW_EMPLOYERS)
            .map(|k| format!("emp_load_fv_{k}"))
            .collect();
        self.paid_orders(
            employers
                .iter()
                .map(|e| (e.clone(), "resume-view-30d", "wechatpay"))
                .collect(),
        )
        .await?;
        let paths: Vec<String> = employers
            .iter()
            .map(|e| format!("/v1/employers/{e}/resume-access"))
            .collect();
        let host = self.host.clone();
        let scenario = HttpScenario {
            build: Box::new(move |i| {
                let path = &paths[(i % paths.len() as u64) as usize];
                Request::builder()
                    .method(Method::POST)
                    .uri(path.as_str())
                    .header(header::HOST, host.clone())
                    .header(header::AUTHORIZATION, HeaderValue::from_static(BEARER))
                    .header(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )
                    .body(Full::new(Bytes::from(format!(
                        r#"{{"resume_id":"fv-{i:09}","action":"view"}}"#
                    ))))
                    .ok()
            }),
            status: StatusCode::OK,
            body: None,
        };
        let mut used_before = 0;
        for e in &employers {
            used_before += self.used(e).await.unwrap_or_default();
        }
        let commits = || self.state.db.batch_writer().map(|w| w.commits());
        let commits_before = commits();
        let mut m = self
            .run_http("first_view", self.opts.seconds, scenario)
            .await?;
        if let (Some((c0, t0)), Some((c1, t1))) = (commits_before, commits()) {
            m.notes.push(format!(
                "SQLite's batching writer: {} transactions in {} commits ({:.1} a commit)",
                t1 - t0,
                c1 - c0,
                (t1 - t0) as f64 / (c1 - c0).max(1) as f64
            ));
        }
        let mut used_after = 0;
        for e in &employers {
            used_after += self.used(e).await.unwrap_or_default();
        }
        let granted = m.requests - m.errors;
        if u64::try_from(used_after - used_before).ok() != Some(granted) {
            m.notes.push(format!(
                "{} accesses recorded for {granted} answered 200",
                used_after - used_before
            ));
        }
        Ok(m)
    }

    async fn order_read(&self) -> anyhow::Result<Measured> {
        eprintln!("order_read: preparing {READ_ORDERS} paid orders");
        let specs = (0..READ_ORDERS)
            .map(|i| {
                let provider = if i % 2 == 0 { "wechatpay" } else { "alipay" };
                (format!("emp_load_or_{i}"), "resume-download-50", provider)
            })
            .collect();
        let orders = self.paid_orders(specs).await?;
        let requests: Arc<Vec<Req>> = Arc::new(
            orders
                .iter()
                .map(|no| {
                    self.request(
                        Method::GET,
                        &format!("/v1/orders/{no}"),
                        &[(header::AUTHORIZATION, HeaderValue::from_static(BEARER))],
                        Bytes::new(),
                    )
                })
                .collect(),
        );
        let scenario = HttpScenario {
            build: Box::new(move |i| {
                clone_request(&requests[(i % requests.len() as u64) as usize])
            }),
            status: StatusCode::OK,
            body: None,
        };
        self.run_http("order_read", self.opts.seconds, scenario)
            .await
    }

    /// `POST /v1/orders` (WeChat Pay native), a distinct Idempotency-Key each, to `host`.
    fn order_create_scenario(host: HeaderValue) -> HttpScenario {
        let run = hex::encode(rand::random::<[u8; 4]>());
        HttpScenario {
            build: Box::new(move |i| {
                let body = format!(
                    r#"{{"employer_id":"emp_load_oc_{}","plan":"resume-download-50","provider":"wechatpay","channel":"native"}}"#,
                    i % 256
                );
                Request::builder()
                    .method(Method::POST)
                    .uri("/v1/orders")
                    .header(header::HOST, host.clone())
                    .header(header::AUTHORIZATION, HeaderValue::from_static(BEARER))
                    .header(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )
                    .header("idempotency-key", format!("load-{run}-{i}"))
                    .body(Full::new(Bytes::from(body)))
                    .ok()
            }),
            status: StatusCode::CREATED,
            body: None,
        }
    }

    async fn order_create(&self) -> anyhow::Result<Measured> {
        eprintln!("order_create: measuring the RSA-2048 sign rate on one thread (2 s)");
        let sign_rate = tokio::task::spawn_blocking(|| sign_rate(Duration::from_secs(2))).await??;
        let scenario = Self::order_create_scenario(self.host.clone());
        let mut m = self
            .run_http("order_create", self.opts.seconds, scenario)
            .await?;
        m.notes.push(format!(
            "RSA-2048 sign rate (paygate_wechatpay::Signer, one thread, server idle): {sign_rate:.0}/s; \
             order_create / sign rate = {:.2} (each order costs one signature in the gateway and one in the sandbox, both in this process)",
            m.rate / sign_rate
        ));
        Ok(m)
    }

    async fn order_create_stub(&self) -> anyhow::Result<Measured> {
        eprintln!(
            "order_create_stub: measuring the RSA-2048 sign rate on one thread and on {} (2 s each)",
            nproc()
        );
        let (one, all) = tokio::task::spawn_blocking(|| {
            let one = sign_rate(Duration::from_secs(2))?;
            let all = std::thread::scope(|scope| {
                let signers: Vec<_> = (0..nproc())
                    .map(|_| scope.spawn(|| sign_rate(Duration::from_secs(2))))
                    .collect();
                signers
                    .into_iter()
                    .map(|t| t.join().map_err(|_| anyhow!("a signer panicked"))?)
                    .sum::<anyhow::Result<f64>>()
            })?;
            anyhow::Ok((one, all))
        })
        .await??;
        let (db_url, dir) = (self.db_url.clone(), self.dir.clone());
        let addr = self
            .server
            .spawn(async move {
                let stub = start_wechat_stub().await?;
                start_stub_gateway(&db_url, &dir, stub).await
            })
            .await??;
        let host = HeaderValue::from_str(&addr.to_string())?;
        let mut m = self
            .run_http_at(
                addr,
                "order_create_stub",
                self.opts.seconds,
                Self::order_create_scenario(host),
            )
            .await?;
        m.notes.push(format!(
            "RSA-2048 sign rate (paygate_wechatpay::Signer, server idle): {one:.0}/s on one thread, \
             {all:.0}/s on {} threads at once; order_create_stub / sign rate = {:.2} of one thread, {:.2} of the machine \
             (each order costs one signature, in the gateway; the stub provider signs nothing)",
            nproc(),
            m.rate / one,
            m.rate / all
        ));
        Ok(m)
    }

    fn fresh_count(&self) -> usize {
        self.opts
            .orders
            .unwrap_or((2000.0 * self.opts.seconds).ceil() as usize)
    }

    fn callback_seconds(&self) -> f64 {
        self.opts.seconds.min(CALLBACK_WINDOW_CAP_S)
    }

    async fn fresh_callback(&self, alipay: bool) -> anyhow::Result<Measured> {
        let name = if alipay {
            "fresh_callback_alipay"
        } else {
            "fresh_callback"
        };
        let (tag, provider) = if alipay {
            ("fca", "alipay")
        } else {
            ("fcw", "wechatpay")
        };
        let n = self.fresh_count();
        eprintln!("{name}: preparing {n} pending orders and their signed callbacks");
        let orders = self.pending_orders(tag, provider, n).await?;
        let prepared = tokio::task::block_in_place(|| {
            if alipay {
                Bench::alipay_callbacks(&orders, "20261129220014001")
            } else {
                self.wechat_callbacks(&orders, "42000000012026")
            }
        });
        let path = if alipay {
            "/webhooks/alipay"
        } else {
            "/webhooks/wechatpay"
        };
        let scenario = self.callback_scenario(path, prepared, alipay, false);
        let seconds = self.callback_seconds();
        let mut m = self.run_http(name, seconds, scenario).await?;
        if m.requests >= orders.len() as u64 && m.secs < seconds {
            m.notes.push(format!(
                "the {} prepared callbacks ran out after {:.1} s (raise --orders for a longer window)",
                orders.len(),
                m.secs
            ));
        }
        if let Some(paid) = self.paid_count(tag).await {
            let answered = m.requests - m.errors;
            if paid as u64 != answered {
                m.notes.push(format!(
                    "{paid} orders paid for {answered} acknowledged callbacks"
                ));
            }
        }
        Ok(m)
    }

    async fn duplicate_callback(&self, alipay: bool) -> anyhow::Result<Measured> {
        let name = if alipay {
            "duplicate_callback_alipay"
        } else {
            "duplicate_callback"
        };
        let (tag, provider) = if alipay {
            ("dca", "alipay")
        } else {
            ("dcw", "wechatpay")
        };
        eprintln!("{name}: preparing one order settled by its callback");
        let orders = self.pending_orders(tag, provider, 1).await?;
        let prepared = if alipay {
            Bench::alipay_callbacks(&orders, "20261129220014003")
        } else {
            self.wechat_callbacks(&orders, "42000000032026")
        };
        let first = &prepared[0];
        let mut req = self
            .http
            .post(format!(
                "{}{}",
                self.url,
                if alipay {
                    "/webhooks/alipay"
                } else {
                    "/webhooks/wechatpay"
                }
            ))
            .body(first.body.clone());
        for (k, v) in &first.headers {
            req = req.header(k.as_str(), v.as_bytes());
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let body = res.bytes().await?;
        let settled = if alipay {
            status == 200 && body.as_ref() == b"success"
        } else {
            status == 204
        };
        if !settled {
            bail!("the first delivery of the callback answered {status}");
        }
        if self.order_status(&orders[0].order_no).await? != "paid" {
            bail!("the callback did not settle the order");
        }
        let path = if alipay {
            "/webhooks/alipay"
        } else {
            "/webhooks/wechatpay"
        };
        let scenario = self.callback_scenario(path, prepared, alipay, true);
        self.run_http(name, self.callback_seconds(), scenario).await
    }

    async fn raw_settle(&self) -> anyhow::Result<Measured> {
        let n = self
            .opts
            .raw_orders
            .unwrap_or((10_000.0 * self.opts.seconds).ceil() as usize);
        eprintln!("raw_settle: preparing {n} pending orders");
        let orders = self.pending_orders("rs", "wechatpay", n).await?;
        let paid_at = self.state.clock.now();
        let trades: Vec<PaidTrade> = orders
            .iter()
            .enumerate()
            .map(|(i, o)| {
                Ok(PaidTrade {
                    order_no: OrderNo::parse(&o.order_no).context("order number")?,
                    provider: ProviderId::Wechatpay,
                    provider_txn_id: format!("42000000022026{i:014}"),
                    amount: Fen::new(o.fen).map_err(|e| anyhow!("amount: {e}"))?,
                    currency: Currency::Cny,
                    trade_type: Some("NATIVE".to_owned()),
                    bank_type: Some("OTHERS".to_owned()),
                    paid_at,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let trades = Arc::new(trades);
        let workers: Vec<SettleWorker> = (0..self.opts.connections)
            .map(|_| SettleWorker {
                state: self.state.clone(),
                trades: trades.clone(),
            })
            .collect();
        eprintln!(
            "raw_settle: {} tasks, {} s",
            workers.len(),
            self.opts.seconds
        );
        let mut m = drive("raw_settle", &self.server, workers, self.opts.seconds).await;
        if m.requests >= trades.len() as u64 && m.secs < self.opts.seconds {
            m.notes.push(format!(
                "the {} prepared orders ran out after {:.1} s (raise --raw-orders for a longer window)",
                trades.len(),
                m.secs
            ));
        }
        Ok(m)
    }
}

fn clone_request(template: &Req) -> Option<Req> {
    let mut builder = Request::builder()
        .method(template.method().clone())
        .uri(template.uri().clone());
    if let Some(headers) = builder.headers_mut() {
        *headers = template.headers().clone();
    }
    builder.body(template.body().clone()).ok()
}

/// `f` over `items` on every core (the signing of prepared callbacks), in order.
fn parallel<T: Sync, U: Send>(items: &[T], f: impl Fn(usize, &T) -> U + Sync) -> Vec<U> {
    let threads = nproc().max(1);
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let f = &f;
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(k, item)| f(c * chunk + k, item))
                        .collect::<Vec<U>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    })
}

/// A paid transaction as the sandbox would encrypt it (as tests/common::transaction_json).
fn wechat_transaction(order: &Pending, transaction_id: &str) -> Value {
    json!({
        "appid": paygate::app::SANDBOX_APPID,
        "mchid": paygate::app::SANDBOX_MCHID,
        "out_trade_no": order.order_no,
        "transaction_id": transaction_id,
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2026-11-29T12:01:07+08:00",
        "payer": {"openid": "oLoadToolPayerOpenid00000000"},
        "amount": {"total": order.fen, "payer_total": order.fen, "currency": "CNY", "payer_currency": "CNY"}
    })
}

/// A paid `trade_status_sync` form body for `order`, signed with the sandbox's Alipay key (as
/// tests/common::alipay_notification).
fn alipay_notification(
    order: &Pending,
    trade_no: &str,
    i: usize,
    key: &paygate_alipay::Signer,
) -> String {
    let notify_id = format!("20261129002221201070{i:014}");
    let mut params = paygate_alipay::Params::new();
    for (k, v) in [
        ("notify_id", notify_id.as_str()),
        ("notify_time", "2026-11-29 12:01:08"),
        ("notify_type", "trade_status_sync"),
        ("app_id", paygate::app::SANDBOX_ALIPAY_APP_ID),
        ("auth_app_id", paygate::app::SANDBOX_ALIPAY_APP_ID),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("seller_id", paygate::app::SANDBOX_ALIPAY_SELLER_ID),
        ("out_trade_no", order.order_no.as_str()),
        ("trade_no", trade_no),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", order.amount_yuan.as_str()),
        ("receipt_amount", order.amount_yuan.as_str()),
        ("subject", "职前通服务"),
        ("gmt_create", "2026-11-29 12:00:30"),
        ("gmt_payment", "2026-11-29 12:01:07"),
        ("buyer_id", "2088102177846880"),
    ] {
        params.insert(k, v);
    }
    paygate_alipay::simulator::sign_notification(params, key).expect("sign")
}

/// RSA-2048 signatures per second on one thread, with the gateway's own signer.
fn sign_rate(for_at_least: Duration) -> anyhow::Result<f64> {
    let signer = paygate_wechatpay::Signer::from_pem(MERCHANT_KEY)
        .map_err(|e| anyhow!("fixture key: {e}"))?;
    let message = b"POST\n/v3/pay/transactions/native\n1732852867\n5K8264ILTKCH16CQ2502SI8ZNMTM67VS\n{\"appid\":\"wx8888888888888888\",\"mchid\":\"1900000001\",\"description\":\"load\",\"out_trade_no\":\"0123456789ABCDEFGHIJKLMNOP\",\"amount\":{\"total\":19900,\"currency\":\"CNY\"}}\n";
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < for_at_least {
        std::hint::black_box(signer.sign_base64(std::hint::black_box(message)));
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Machine facts and the report

/// (VmRSS, VmHWM) of this process in MB.
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn rustc() -> String {
    std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "rustc unknown".to_owned())
}

fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        None => "unknown".to_owned(),
        Some(head) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(changes) if !changes.is_empty() => format!("{head} (with uncommitted changes)"),
            _ => head,
        },
    }
}

fn print_report(
    opts: &Opts,
    backend: &str,
    rss: [(f64, f64); 2],
    rows: &[Measured],
    failed: &[(String, String)],
) {
    let healthz = rows
        .iter()
        .find(|m| m.name == "healthz")
        .map_or(0.0, |m| m.rate);
    println!("## paygate load (`benches/load.rs`)\n");
    println!(
        "- machine: {} × {}, {}, release profile (`cargo bench`)",
        nproc(),
        cpu_model(),
        rustc()
    );
    println!("- backend: {backend}");
    println!(
        "- C = {} connections, D = {} s per scenario; runtimes: gateway {} threads, clients {} threads (one process)",
        opts.connections, opts.seconds, opts.server_threads, opts.client_threads
    );
    println!("- commit: {}", commit());
    println!(
        "- process RSS (gateway + sandbox + clients): {:.1} MB after start, {:.1} MB at the end (peak {:.1} MB)",
        rss[0].0, rss[1].0, rss[1].1
    );
    println!();
    println!(
        "| scenario | requests | errors | window s | req/s | p50 ms | p90 ms | p99 ms | max ms | ÷ healthz |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in rows {
        let ratio = if healthz > 0.0 { m.rate / healthz } else { 0.0 };
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} % |",
            m.name,
            m.requests,
            m.errors,
            m.secs,
            m.rate,
            m.p50,
            m.p90,
            m.p99,
            m.max,
            ratio * 100.0
        );
    }
    println!();
    let rate = |name: &str| rows.iter().find(|m| m.name == name).map(|m| m.rate);
    if let Some(raw) = rate("raw_settle").filter(|r| *r > 0.0) {
        for name in ["fresh_callback", "fresh_callback_alipay"] {
            if let Some(fresh) = rate(name) {
                println!("- {name} / raw_settle = {:.1} %", fresh / raw * 100.0);
            }
        }
    }
    for m in rows {
        for note in &m.notes {
            println!("- {}: {note}", m.name);
        }
        if !m.kinds.is_empty() {
            let kinds: Vec<String> = m.kinds.iter().map(|(k, n)| format!("{n} × {k}")).collect();
            println!("- {} errors: {}", m.name, kinds.join(", "));
        }
    }
    for (name, why) in failed {
        println!("- {name}: not measured: {why}");
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e:#}\nusage: {}", usage());
            std::process::exit(2);
        }
    };
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.server_threads)
        .thread_name("paygate-server")
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .thread_name("load-client")
        .enable_all()
        .build()
        .expect("client runtime");

    let dir = tempfile::tempdir().expect("temp dir");
    let pg = match std::env::var("PAYGATE_BENCH_DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(
            client_rt
                .block_on(PgDatabase::create(&url))
                .expect("a fresh PostgreSQL database"),
        ),
        _ => None,
    };
    let (db_url, backend) = match &pg {
        Some(pg) => (
            pg.url.clone(),
            format!("PostgreSQL {} (fresh database, local server)", pg.version),
        ),
        None => (
            format!("sqlite://{}", dir.path().join("load.db").display()),
            "SQLite (fresh file in a temp dir)".to_owned(),
        ),
    };

    let (url, addr, sandbox, state) = server_rt
        .block_on(start_gateway(&db_url, dir.path()))
        .expect("start the gateway");
    let rss_start = rss_mb();
    eprintln!("gateway on {url}");

    let prep_db = client_rt.block_on(async {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .connect(&db_url)
            .await
            .map_err(|e| eprintln!("no database connection of our own ({e}); orders will be created through the API"))
            .ok()
    });
    let bench = Bench {
        host: HeaderValue::from_str(&addr.to_string()).expect("host"),
        opts: opts.clone(),
        url,
        addr,
        http: reqwest::Client::new(),
        sandbox,
        state,
        server: server_rt.handle().clone(),
        prep_db,
        sqlite: pg.is_none(),
        db_url: db_url.clone(),
        dir: dir.path().to_owned(),
    };

    let mut rows = Vec::new();
    let mut failed = Vec::new();
    client_rt.block_on(async {
        for name in &opts.scenarios {
            let result = match name.as_str() {
                "healthz" => bench.healthz().await,
                "repeat_view" => bench.repeat_view().await,
                "first_view" => bench.first_view().await,
                "order_read" => bench.order_read().await,
                "order_create" => bench.order_create().await,
                "order_create_stub" => bench.order_create_stub().await,
                "fresh_callback" => bench.fresh_callback(false).await,
                "fresh_callback_alipay" => bench.fresh_callback(true).await,
                "duplicate_callback" => bench.duplicate_callback(false).await,
                "duplicate_callback_alipay" => bench.duplicate_callback(true).await,
                "raw_settle" => bench.raw_settle().await,
                other => Err(anyhow!("unknown scenario {other}")),
            };
            match result {
                Ok(m) => {
                    eprintln!(
                        "{name}: {} requests, {:.0}/s, {} errors",
                        m.requests, m.rate, m.errors
                    );
                    rows.push(m);
                }
                Err(e) => {
                    eprintln!("{name}: not measured: {e:#}");
                    failed.push((name.clone(), format!("{e:#}")));
                }
            }
        }
        if let Some(pool) = &bench.prep_db {
            pool.close().await;
        }
    });
    let rss_end = rss_mb();
    print_report(&opts, &backend, [rss_start, rss_end], &rows, &failed);

    drop(bench);
    client_rt.shutdown_timeout(Duration::from_secs(2));
    server_rt.shutdown_timeout(Duration::from_secs(2));
    drop(pg);
    drop(dir);
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

/// The gateway's configuration for the load: `toml`, then the environment's overrides, on
/// `db_url`, with the load's API key and the rate limits out of the way unless given.
fn load_config(toml: &str, db_url: &str, dir: &std::path::Path) -> anyhow::Result<Config> {
    // The gateway's own overrides (PAYGATE_<SECTION>__<KEY>) apply, as to `paygate serve`.
    let env = std::env::vars().filter(|(k, _)| k.starts_with("PAYGATE_") && k.contains("__"));
    let mut config = Config::from_toml_with_env(toml, env, dir.to_owned())?;
    config.database.url = db_url.to_owned();
    // One API key and one source address drive every scenario: the per-key and per-address
    // rate limits (their cost is still paid on every request) and the in-flight cap are set
    // out of the way unless given, so what is measured is the path behind them.
    let given = |key: &str| std::env::var(format!("PAYGATE_LIMITS__{key}")).is_ok();
    if !given("API_RATE_PER_KEY") {
        config.limits.api_rate_per_key = 10_000_000;
    }
    if !given("WEBHOOK_RATE_PER_IP") {
        config.limits.webhook_rate_per_ip = 10_000_000;
    }
    config.api_keys = vec![ApiKeyConfig {
        id: "load".into(),
        secret_sha256: paygate::keygen::hash_secret(KEY),
        scopes: vec!["checkout".into(), "entitlements".into()],
    }];
    Ok(config)
}

async fn start_gateway(
    db_url: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(String, SocketAddr, Sandbox, AppState)> {
    let config = load_config("", db_url, dir)?;
    let merchant = paygate_wechatpay::Signer::from_pem(MERCHANT_KEY)
        .map_err(|e| anyhow!("fixture key: {e}"))?;
    let setup = SandboxSetup {
        merchant_private_key_pem: MERCHANT_KEY.into(),
        merchant_public_key_pem: merchant.public_key_pem(),
        platform_private_key_pem: PLATFORM_KEY.into(),
        apiv3_key: APIV3_KEY.into(),
        alipay_app_private_key_pem: MERCHANT_KEY.into(),
        alipay_private_key_pem: PLATFORM_KEY.into(),
        time_divisor: 1000,
        wechat_certificate_mode: false,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = Application::build(
        config,
        listener,
        Options {
            sandbox: Some(setup),
            scheduler: false,
            ..Options::default()
        },
    )
    .await?;
    let url = app.public_url().to_owned();
    let addr = app.local_addr();
    let sandbox = app.sandbox().context("the embedded sandbox")?.clone();
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Ok((url, addr, sandbox, state))
}

/// The platform key id the stub signs under and the stub gateway trusts.
const STUB_PLATFORM_KEY_ID: &str = "PUB_KEY_ID_0100000000000000000000000000000001";

/// A WeChat Pay that does not sign: every request is answered 200 with one native-order answer
/// signed once, here, with the platform key (valid for the 5 minutes the gateway allows).
async fn start_wechat_stub() -> anyhow::Result<SocketAddr> {
    use paygate_wechatpay::verify::{
        HEADER_NONCE, HEADER_SERIAL, HEADER_SIGNATURE, HEADER_SIGNATURE_TYPE, HEADER_TIMESTAMP,
        SIGNATURE_TYPE,
    };
    let platform = paygate_wechatpay::Signer::from_pem(PLATFORM_KEY)
        .map_err(|e| anyhow!("fixture key: {e}"))?;
    let body = Bytes::from_static(br#"{"code_url":"weixin://wxpay/bizpayurl?pr=loadstub"}"#);
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(&body);
    message.push(b'\n');
    let signature = platform.sign_base64(&message);
    let headers: Arc<Vec<(&'static str, HeaderValue)>> = Arc::new(vec![
        (
            HEADER_SERIAL,
            HeaderValue::from_static(STUB_PLATFORM_KEY_ID),
        ),
        (HEADER_TIMESTAMP, HeaderValue::from_str(&timestamp)?),
        (HEADER_NONCE, HeaderValue::from_str(&nonce)?),
        (HEADER_SIGNATURE, HeaderValue::from_str(&signature)?),
        (
            HEADER_SIGNATURE_TYPE,
            HeaderValue::from_static(SIGNATURE_TYPE),
        ),
        ("content-type", HeaderValue::from_static("application/json")),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (headers, body) = (headers.clone(), body.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (headers, body) = (headers.clone(), body.clone());
                        async move {
                            // The request is read whole (as a provider would) and not looked at.
                            req.into_body().collect().await?;
                            let mut res = hyper::Response::new(Full::new(body));
                            for (name, value) in headers.iter() {
                                res.headers_mut().insert(*name, value.clone());
                            }
                            Ok::<_, hyper::Error>(res)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A second gateway on the same database, no sandbox: its WeChat Pay is the stub at `stub`.
async fn start_stub_gateway(
    db_url: &str,
    dir: &std::path::Path,
    stub: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    let keys = dir.join("stub");
    std::fs::create_dir_all(&keys)?;
    let platform = paygate_wechatpay::Signer::from_pem(PLATFORM_KEY)
        .map_err(|e| anyhow!("fixture key: {e}"))?;
    std::fs::write(keys.join("apiclient_key.pem"), MERCHANT_KEY)?;
    std::fs::write(keys.join("apiv3_key.txt"), APIV3_KEY)?;
    std::fs::write(keys.join("platform_pub.pem"), platform.public_key_pem())?;
    let file = |name: &str| keys.join(name).display().to_string();
    let toml = format!(
        r#"
[wechatpay]
api_base = "http://{stub}"
mchid = "1900000001"
appid = "wx8888888888888888"
merchant_serial = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
merchant_private_key_file = "{merchant}"
apiv3_key_file = "{apiv3}"
platform_public_keys = [{{ id = "{STUB_PLATFORM_KEY_ID}", file = "{platform}" }}]
"#,
        merchant = file("apiclient_key.pem"),
        apiv3 = file("apiv3_key.txt"),
        platform = file("platform_pub.pem"),
    );
    let config = load_config(&toml, db_url, dir)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = Application::build(
        config,
        listener,
        Options {
            scheduler: false,
            ..Options::default()
        },
    )
    .await?;
    let addr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    Ok(addr)
}
