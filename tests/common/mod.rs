//! `TestApp`: the real gateway with the real embedded sandbox on port 0, a fresh database per
//! test (SQLite in a temp dir, or a new PostgreSQL database when PAYGATE_TEST_POSTGRES_URL
//! is set), and one helper per endpoint.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use paygate::app::{Application, Options, SandboxSetup};
use paygate::clock::{OffsetClock, TestClock};
use paygate::config::{ApiKeyConfig, Config};
use paygate_sandbox::Sandbox;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CHECKOUT_KEY: &str = "pgk_test_checkout";
pub const ENTITLEMENTS_KEY: &str = "pgk_test_entitlements";
pub const FINANCE_KEY: &str = "pgk_test_finance";
pub const PRIVACY_KEY: &str = "pgk_test_privacy";

const MERCHANT_KEY: &str = include_str!("../fixtures/merchant_key.pem");
const PLATFORM_KEY: &str = include_str!("../fixtures/platform_key.pem");
pub const APIV3_KEY: &str = "paygateTestApiV3Key0123456789abc";

/// The events HMAC key of [`TestApp::spawn_with_events`].
pub const PSEUDONYM_KEY: &str = "pseudonym-key-of-the-tests-0123456789";
pub const EVENTS_SECRET: &str = "whsec_paygate_test_0123456789";

/// What differs between the test apps.
#[derive(Debug, Default)]
struct Variant {
    certificate_mode: bool,
    events_url: Option<String>,
    sibling: bool,
    limits: Option<paygate::config::LimitsConfig>,
    checkout: Option<paygate::config::CheckoutConfig>,
    reconciliation: Option<paygate::config::ReconciliationConfig>,
    /// Sandbox mode's test clock (issue 22) in place of the tests' offset clock.
    test_clock: bool,
    /// `[privacy] holidays`.
    holidays: Vec<chrono::NaiveDate>,
}

/// The `[checkout] return_url` of [`TestApp::spawn_with_checkout`].
pub const RETURN_URL: &str = "https://www.example.cn/orders/{order_no}/paid";
/// Its `[checkout] allowed_return_hosts`.
pub const ALLOWED_RETURN_HOST: &str = "m.example.cn";

impl Variant {
    fn with_checkout() -> Variant {
        Variant {
            checkout: Some(paygate::config::CheckoutConfig {
                return_url: Some(
                    paygate::return_url::ReturnUrl::parse(RETURN_URL).expect("a valid template"),
                ),
                allowed_return_hosts: vec![ALLOWED_RETURN_HOST.to_owned()],
            }),
            ..Variant::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub sandbox: Sandbox,
    /// The clock tests move directly; unused by a gateway on a test clock (`test_clock`).
    pub clock: Arc<OffsetClock>,
    /// The sandbox's test clock, when the app runs on one ([`TestApp::spawn_with_test_clock`]).
    pub test_clock: Option<Arc<TestClock>>,
    pub db: paygate::store::Db,
    pub jobs: paygate::jobs::Runner,
    /// The gateway's state, for use cases a test calls directly.
    pub state: paygate::state::AppState,
    db_url: String,
    /// False for a sibling: the first instance drops the database.
    owns_database: bool,
    /// Stops the server gracefully: see [`TestApp::shut_down`].
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

fn api_key(id: &str, secret: &str, scopes: &[&str]) -> ApiKeyConfig {
    ApiKeyConfig {
        id: id.into(),
        secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

/// A fresh PostgreSQL database for one test, or None (with a note) when none is configured.
pub async fn fresh_postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("PAYGATE_TEST_POSTGRES_URL") else {
        eprintln!("PAYGATE_TEST_POSTGRES_URL is unset: skipping the PostgreSQL half of this test");
        return None;
    };
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to PAYGATE_TEST_POSTGRES_URL");
    let name = format!("paygate_t_{}", hex::encode(rand::random::<[u8; 8]>()));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&base).expect("PAYGATE_TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    Some(url.to_string())
}

/// Drops a database made by [`fresh_postgres_url`] (its connections included), from a thread of
/// its own: this runs in `Drop`, inside the test's runtime.
pub fn drop_postgres_database(db_url: &str) {
    let Ok(base) = std::env::var("PAYGATE_TEST_POSTGRES_URL") else {
        return;
    };
    let Some(name) = db_url.rsplit('/').next().map(str::to_owned) else {
        return;
    };
    if !name.starts_with("paygate_t_") {
        return;
    }
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            }
        });
    })
    .join();
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.owns_database && self.db_url.starts_with("postgres") {
            drop_postgres_database(&self.db_url);
        }
    }
}

impl TestApp {
    /// How many refund requests for `order_no` reached the sandbox (WeChat or Alipay).
    pub fn refund_requests(&self, order_no: &str) -> usize {
        let wechat = self
            .sandbox
            .wechat_requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.starts_with("/v3/refund/domestic/refunds"))
            .filter(|r| r.body.contains(order_no))
            .count();
        let alipay = self
            .sandbox
            .alipay_requests()
            .into_iter()
            .filter(|params| {
                params
                    .iter()
                    .any(|(k, v)| k == "method" && v == "alipay.trade.refund")
                    && params
                        .iter()
                        .any(|(k, v)| k == "biz_content" && v.contains(order_no))
            })
            .count();
        wechat + alipay
    }

    pub async fn spawn() -> TestApp {
        TestApp::spawn_on(Backend::Sqlite)
            .await
            .expect("sqlite always runs")
    }

    /// None when the backend is PostgreSQL and no server is configured.
    pub async fn spawn_on(backend: Backend) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("paygate.db").display()),
            Backend::Postgres => fresh_postgres_url().await?,
        };
        Some(TestApp::spawn_at(&db_url, dir, Variant::default()).await)
    }

    /// WeChat Pay in platform certificate mode: the gateway trusts no platform key until it
    /// has fetched `/v3/certificates` from the sandbox.
    pub async fn spawn_certificate_mode() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = format!("sqlite://{}", dir.path().join("paygate.db").display());
        TestApp::spawn_at(
            &db_url,
            dir,
            Variant {
                certificate_mode: true,
                ..Variant::default()
            },
        )
        .await
    }

    /// Events pushed to `url`, signed with [`EVENTS_SECRET`].
    pub async fn spawn_with_events(url: &str) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = format!("sqlite://{}", dir.path().join("paygate.db").display());
        TestApp::spawn_at(
            &db_url,
            dir,
            Variant {
                events_url: Some(url.to_owned()),
                ..Variant::default()
            },
        )
        .await
    }

    /// The gateway with `limits` instead of the defaults, on `backend`.
    pub async fn spawn_with_limits(
        backend: Backend,
        limits: paygate::config::LimitsConfig,
    ) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("paygate.db").display()),
            Backend::Postgres => fresh_postgres_url().await?,
        };
        Some(TestApp::spawn_on_url(&db_url, dir, limits).await)
    }

    /// With `[reconciliation] max_bill_bytes` set.
    pub async fn spawn_with_max_bill_bytes(
        backend: Backend,
        max_bill_bytes: u64,
    ) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("paygate.db").display()),
            Backend::Postgres => fresh_postgres_url().await?,
        };
        let variant = Variant {
            reconciliation: Some(paygate::config::ReconciliationConfig { max_bill_bytes }),
            ..Variant::default()
        };
        Some(TestApp::spawn_at(&db_url, dir, variant).await)
    }

    /// With `[checkout]` set: [`RETURN_URL`] as the return URL template, and
    /// [`ALLOWED_RETURN_HOST`] the host a per-order return URL may use.
    pub async fn spawn_with_checkout(backend: Backend) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("paygate.db").display()),
            Backend::Postgres => fresh_postgres_url().await?,
        };
        Some(TestApp::spawn_at(&db_url, dir, Variant::with_checkout()).await)
    }

    /// On sandbox mode's test clock, moved through `/sandbox/clock/advance`, with
    /// `[privacy] holidays`.
    pub async fn spawn_with_test_clock(
        backend: Backend,
        holidays: Vec<chrono::NaiveDate>,
    ) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db_url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("paygate.db").display()),
            Backend::Postgres => fresh_postgres_url().await?,
        };
        let variant = Variant {
            test_clock: true,
            holidays,
            ..Variant::default()
        };
        Some(TestApp::spawn_at(&db_url, dir, variant).await)
    }

    /// The gateway on `db_url` (a database made by the caller, e.g. reached through a proxy)
    /// with `limits`; the database is dropped with the app when it is a test PostgreSQL one.
    pub async fn spawn_on_url(
        db_url: &str,
        dir: tempfile::TempDir,
        limits: paygate::config::LimitsConfig,
    ) -> TestApp {
        TestApp::spawn_at(
            db_url,
            dir,
            Variant {
                limits: Some(limits),
                ..Variant::default()
            },
        )
        .await
    }

    /// Another instance (its own port, sandbox and clock) on the same database as `self`.
    pub async fn spawn_sibling(&self) -> TestApp {
        TestApp::spawn_at(
            &self.db_url,
            tempfile::tempdir().expect("temp dir"),
            Variant {
                sibling: true,
                ..Variant::default()
            },
        )
        .await
    }

    async fn spawn_at(db_url: &str, dir: tempfile::TempDir, variant: Variant) -> TestApp {
        let mut config = Config::from_toml_with_env("", Vec::new(), dir.path().to_owned())
            .expect("default config");
        config.database.url = db_url.to_owned();
        config.limits.provider_timeout_ms = 2_000;
        if let Some(limits) = variant.limits {
            config.limits = limits;
        }
        if let Some(checkout) = variant.checkout {
            config.checkout = checkout;
        }
        if let Some(reconciliation) = variant.reconciliation {
            config.reconciliation = reconciliation;
        }
        config.privacy.holidays = variant.holidays;
        if let Some(url) = variant.events_url {
            let secret = dir.path().join("events.key");
            std::fs::write(&secret, format!("{EVENTS_SECRET}\n")).expect("events secret");
            config.events = Some(paygate::config::EventsConfig {
                url: Some(url),
                secret_file: Some(secret),
            });
        }
        // Stored Idempotency-Keys are keyed by it, as in production (issue 20).
        let pseudonym_key = dir.path().join("pseudonym.key");
        std::fs::write(&pseudonym_key, format!("{PSEUDONYM_KEY}\n")).expect("pseudonym key");
        config.privacy.pseudonym_key_file = Some(pseudonym_key);
        config.api_keys = vec![
            api_key("checkout", CHECKOUT_KEY, &["checkout"]),
            api_key("entitlements", ENTITLEMENTS_KEY, &["entitlements"]),
            api_key("finance", FINANCE_KEY, &["finance"]),
            api_key("privacy", PRIVACY_KEY, &["privacy"]),
        ];
        let merchant = paygate_wechatpay::Signer::from_pem(MERCHANT_KEY).expect("fixture key");
        let setup = SandboxSetup {
            merchant_private_key_pem: MERCHANT_KEY.into(),
            merchant_public_key_pem: merchant.public_key_pem(),
            platform_private_key_pem: PLATFORM_KEY.into(),
            apiv3_key: APIV3_KEY.into(),
            // The same fixture keys serve as the Alipay app key and the sandbox's Alipay key:
            // no RSA key generation per test.
            alipay_app_private_key_pem: MERCHANT_KEY.into(),
            alipay_private_key_pem: PLATFORM_KEY.into(),
            time_divisor: 1000,
            wechat_certificate_mode: variant.certificate_mode,
        };
        let clock = Arc::new(OffsetClock::default());
        let test_clock = variant.test_clock.then(|| Arc::new(TestClock::default()));
        let app_clock: paygate::clock::SharedClock = match &test_clock {
            Some(test_clock) => test_clock.clone(),
            None => clock.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = Application::build(
            config,
            listener,
            Options {
                clock: app_clock,
                sandbox: Some(setup),
                scheduler: false,
            },
        )
        .await
        .expect("build app");
        let url = app.public_url().to_owned();
        let sandbox = app.sandbox().expect("sandbox").clone();
        let db = app.state().db.clone();
        let jobs = app.jobs();
        let state = app.state().clone();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stop.await;
        }));
        TestApp {
            url,
            http: reqwest::Client::new(),
            sandbox,
            clock,
            test_clock,
            db,
            db_url: db_url.to_owned(),
            owns_database: !variant.sibling,
            shutdown: Some(shutdown),
            server: Some(server),
            jobs,
            state,
            _dir: dir,
        }
    }

    pub async fn post_order(
        &self,
        key: &str,
        idempotency_key: &str,
        body: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/orders", self.url))
            .bearer_auth(key)
            .header("Idempotency-Key", idempotency_key)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    /// Creates a WeChat Native order for `employer` and returns its JSON.
    pub async fn create_order(&self, employer: &str, plan: &str) -> Value {
        let body = json!({"employer_id": employer, "plan": plan, "provider": "wechatpay", "channel": "native"});
        let key = hex::encode(rand::random::<[u8; 8]>());
        let res = self.post_order(CHECKOUT_KEY, &key, &body.to_string()).await;
        assert_eq!(res.status(), 201, "create order");
        res.json().await.expect("order json")
    }

    /// Creates an order for `employer` on any provider and channel; `extra` adds fields such as
    /// `payer_openid`. Returns the 201 JSON.
    pub async fn create_order_on(
        &self,
        employer: &str,
        provider: &str,
        channel: &str,
        extra: Value,
    ) -> Value {
        let mut body = json!({"employer_id": employer, "plan": "resume-download-50",
            "provider": provider, "channel": channel});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let key = hex::encode(rand::random::<[u8; 8]>());
        let res = self.post_order(CHECKOUT_KEY, &key, &body.to_string()).await;
        let status = res.status();
        let text = res.text().await.expect("body");
        assert_eq!(status, 201, "create {provider}/{channel} order: {text}");
        serde_json::from_str(&text).expect("order json")
    }

    /// What the buyer's device does with an Alipay page/wap URL or app order string: opens it
    /// at the sandbox gateway, which records the trade and sends it on to the cashier.
    pub async fn open_alipay_payment(&self, order: &Value) {
        let payment = &order["payment"];
        let url = if let Some(url) = payment["pay_url"].as_str() {
            url.to_owned()
        } else if let Some(order_string) = payment["order_string"].as_str() {
            format!("{}/sandbox/alipay/gateway.do?{order_string}", self.url)
        } else {
            return;
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let res = http.get(&url).send().await.expect("open pay url");
        assert_eq!(
            res.status(),
            302,
            "the sandbox gateway accepts the signed order"
        );
        let location = res.headers()["location"].to_str().expect("location");
        assert!(
            location.ends_with(&format!(
                "/sandbox/cashier/{}",
                order["order_no"].as_str().unwrap()
            )),
            "sent to the cashier: {location}"
        );
    }

    /// POSTs an Alipay notification form body to the gateway; the status and the body.
    pub async fn post_alipay_callback(&self, body: &str) -> (u16, String) {
        let res = self
            .http
            .post(format!("{}/webhooks/alipay", self.url))
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        (res.status().as_u16(), res.text().await.expect("body"))
    }

    pub async fn order(&self, order_no: &str) -> Value {
        let res = self
            .http
            .get(format!("{}/v1/orders/{order_no}", self.url))
            .bearer_auth(CHECKOUT_KEY)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    /// `POST /v1/orders/{no}/cancel` with the checkout key.
    pub async fn cancel(&self, order_no: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/orders/{order_no}/cancel", self.url))
            .bearer_auth(CHECKOUT_KEY)
            .send()
            .await
            .expect("request")
    }

    /// The buyer pays in the sandbox; answers the provider-side transaction.
    pub async fn pay(&self, order_no: &str) -> Value {
        let res = self
            .http
            .post(format!("{}/sandbox/pay/{order_no}", self.url))
            .header("Accept", "application/json")
            .send()
            .await
            .expect("request");
        assert!(res.status().is_success(), "sandbox pay: {}", res.status());
        res.json().await.expect("json")
    }

    /// Polls until the order has `status` (bounded: 10 s).
    pub async fn wait_for_status(&self, order_no: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let order = self.order(order_no).await;
            if order["status"] == status {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_no} never became {status}: {order}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn entitlements(&self, employer: &str) -> Value {
        let res = self
            .http
            .get(format!("{}/v1/employers/{employer}/entitlements", self.url))
            .bearer_auth(ENTITLEMENTS_KEY)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    pub async fn access(&self, employer: &str, resume_id: &str, action: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!(
                "{}/v1/employers/{employer}/resume-access",
                self.url
            ))
            .bearer_auth(ENTITLEMENTS_KEY)
            .json(&json!({"resume_id": resume_id, "action": action}))
            .send()
            .await
            .expect("request");
        (res.status().as_u16(), res.json().await.expect("json"))
    }

    pub async fn events(&self) -> Value {
        let res = self
            .http
            .get(format!("{}/v1/events?limit=1000", self.url))
            .bearer_auth(ENTITLEMENTS_KEY)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    /// POSTs a callback to the gateway as WeChat would.
    pub async fn post_wechat_callback(
        &self,
        headers: &[(String, String)],
        body: &str,
    ) -> reqwest::Response {
        self.wechat_callback_request(headers, body)
            .send()
            .await
            .expect("request")
    }

    /// The callback request, owned, for sending from spawned tasks.
    pub fn wechat_callback_request(
        &self,
        headers: &[(String, String)],
        body: &str,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(format!("{}/webhooks/wechatpay", self.url))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req
    }

    /// Graceful shutdown as on SIGTERM: stop accepting, finish the requests in flight (and the
    /// writes they queued), close the database. Returns when the server has stopped.
    pub async fn shut_down(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// The database this instance runs on, for a CLI process to share.
    pub fn database_url(&self) -> &str {
        &self.db_url
    }

    /// A paid order of `plan` for `employer` on `provider` (WeChat `native`, Alipay `qr`):
    /// created, paid in the sandbox, settled by its notification. Answers the order JSON.
    pub async fn paid_order(&self, employer: &str, provider: &str, plan: &str) -> Value {
        let channel = if provider == "alipay" { "qr" } else { "native" };
        let order = self
            .create_order_on(employer, provider, channel, json!({"plan": plan}))
            .await;
        let order_no = order["order_no"].as_str().expect("order_no");
        self.pay(order_no).await;
        self.wait_for_status(order_no, "paid").await
    }

    /// `POST /v1/orders/{no}/refunds` with `key` and an Idempotency-Key; status and JSON.
    pub async fn post_refund(
        &self,
        key: &str,
        idempotency_key: &str,
        order_no: &str,
        body: Value,
    ) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/v1/orders/{order_no}/refunds", self.url))
            .bearer_auth(key)
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .send()
            .await
            .expect("request");
        (res.status().as_u16(), res.json().await.expect("json"))
    }

    /// Refunds `amount` of the order with the finance key and a fresh Idempotency-Key; the 201
    /// JSON.
    pub async fn refund(&self, order_no: &str, amount: &str) -> Value {
        let key = hex::encode(rand::random::<[u8; 8]>());
        let (status, body) = self
            .post_refund(
                FINANCE_KEY,
                &key,
                order_no,
                json!({"amount": amount, "reason": "服务退款"}),
            )
            .await;
        assert_eq!(status, 201, "refund {amount} of {order_no}: {body}");
        body
    }

    /// `GET /v1/orders/{no}/refunds/{id}` with the finance key.
    pub async fn refund_of(&self, order_no: &str, refund_id: &str) -> Value {
        let res = self
            .http
            .get(format!(
                "{}/v1/orders/{order_no}/refunds/{refund_id}",
                self.url
            ))
            .bearer_auth(FINANCE_KEY)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        res.json().await.expect("json")
    }

    /// Polls until the refund has `status` (bounded: 10 s).
    pub async fn wait_for_refund(&self, order_no: &str, refund_id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let refund = self.refund_of(order_no, refund_id).await;
            if refund["status"] == status {
                return refund;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "refund {refund_id} never became {status}: {refund}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `PUT /sandbox/faults`: every fault not named goes back to its default.
    pub async fn set_faults(&self, faults: Value) {
        let res = self
            .http
            .put(format!("{}/sandbox/faults", self.url))
            .json(&faults)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "faults {faults}");
    }

    /// The events of `event_type` about `order_no`.
    pub async fn events_of(&self, order_no: &str, event_type: &str) -> Vec<Value> {
        self.events().await["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["order_no"] == order_no && e["type"] == event_type)
            .cloned()
            .collect()
    }

    /// The order is still `pending` with no payment, entitlement or event.
    pub async fn assert_unsettled(&self, order_no: &str) {
        assert_eq!(self.order(order_no).await["status"], "pending");
        for sql in [
            "SELECT COUNT(*) FROM payment WHERE order_no = $1",
            "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1",
        ] {
            assert_eq!(self.count(sql, order_no).await, 0, "{sql}");
        }
    }

    /// The order is `paid` with exactly one payment, one entitlement and one `order.paid`.
    pub async fn assert_settled_once(&self, order_no: &str) {
        assert_eq!(self.order(order_no).await["status"], "paid");
        for sql in [
            "SELECT COUNT(*) FROM payment WHERE order_no = $1",
            "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'order.paid'",
        ] {
            assert_eq!(self.count(sql, order_no).await, 1, "{sql}");
        }
    }

    /// One number from the database, e.g. a row count.
    pub async fn count(&self, sql: &'static str, bind: &str) -> i64 {
        sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_one(self.db.pool())
            .await
            .expect("count query")
    }

    /// Every text cell of every table, for "this value appears nowhere" assertions.
    pub async fn dump_database(&self) -> String {
        let mut out = String::new();
        for table in [
            "payment_order",
            "payment",
            "entitlement",
            "resume_access",
            "entitlement_audit",
            "outbox_event",
            "idempotency",
            "refund",
            "reconciliation_run",
            "reconciliation_discrepancy",
            "reconciliation_bill_row",
        ] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
                .fetch_all(self.db.pool())
                .await
                .expect("dump");
            for row in rows {
                use sqlx::{Column, Row};
                for col in row.columns() {
                    if let Ok(Some(text)) = row.try_get::<Option<String>, _>(col.ordinal()) {
                        out.push_str(&text);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

impl TestApp {
    /// `POST /v1/privacy/erasures` for `employer` under `idempotency_key`: status and body.
    pub async fn request_erasure(&self, employer: &str, idempotency_key: &str) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/v1/privacy/erasures", self.url))
            .bearer_auth(PRIVACY_KEY)
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({"employer_id": employer}))
            .send()
            .await
            .expect("erasure request");
        (
            res.status().as_u16(),
            res.json().await.expect("erasure json"),
        )
    }

    /// `GET /v1/privacy/erasures/{id}`.
    pub async fn erasure(&self, erasure_id: &str) -> Value {
        let res = self
            .http
            .get(format!("{}/v1/privacy/erasures/{erasure_id}", self.url))
            .bearer_auth(PRIVACY_KEY)
            .send()
            .await
            .expect("erasure read");
        assert_eq!(res.status(), 200);
        res.json().await.expect("erasure json")
    }

    /// Every cell of every table of the database as text, whichever tables and columns there
    /// are (listed from `sqlite_master`/`pragma_table_info` or `information_schema`), each line
    /// `table.column: value`.
    pub async fn dump_all_tables(&self) -> String {
        let sqlite = self.db_url.starts_with("sqlite");
        let tables: Vec<String> = if sqlite {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(self.db.pool())
                .await
                .expect("tables")
        } else {
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(self.db.pool())
            .await
            .expect("tables")
        };
        assert!(tables.len() > 10, "{tables:?}");
        let mut out = String::new();
        for table in tables {
            let columns: Vec<String> = if sqlite {
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                    .bind(&table)
                    .fetch_all(self.db.pool())
                    .await
                    .expect("columns")
            } else {
                sqlx::query_scalar(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = 'public' AND table_name = $1",
                )
                .bind(&table)
                .fetch_all(self.db.pool())
                .await
                .expect("columns")
            };
            assert!(!columns.is_empty(), "{table}");
            for column in columns {
                // SQLite: as bytes, so a BLOB (a migration checksum) reads too.
                let cells: Vec<Option<Vec<u8>>> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(if sqlite {
                        format!("SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\"")
                    } else {
                        format!(
                            "SELECT convert_to(CAST(\"{column}\" AS TEXT), 'UTF8') FROM \"{table}\""
                        )
                    }))
                    .fetch_all(self.db.pool())
                    .await
                    .expect("dump");
                for bytes in cells.into_iter().flatten() {
                    let text = String::from_utf8_lossy(&bytes);
                    out.push_str(&format!("{table}.{column}: {text}\n"));
                }
            }
        }
        out
    }
}

/// Polls `condition` until it holds (bounded: 10 s).
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the futures as spawned tasks, so they really race each other on both worker threads.
pub async fn race_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

/// A paid-transaction resource as the sandbox would encrypt it, for forged callbacks.
pub fn transaction_json(order: &Value, transaction_id: &str, total: i64) -> Value {
    json!({
        "appid": paygate::app::SANDBOX_APPID,
        "mchid": paygate::app::SANDBOX_MCHID,
        "out_trade_no": order["order_no"],
        "transaction_id": transaction_id,
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2026-11-29T12:01:07+08:00",
        "payer": {"openid": "oForgedPayerOpenid0000000000"},
        "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"}
    })
}

/// A paid `trade_status_sync` notification for `order`, as the sandbox's Alipay would send it
/// (payer fields included, for the gateway to drop), with `overrides` applied and signed with
/// the sandbox's Alipay key: forged notifications that verify.
pub fn alipay_notification(order: &Value, overrides: &[(&str, &str)]) -> String {
    let amount = order["amount"].as_str().expect("amount");
    let mut params = paygate_alipay::Params::new();
    for (key, value) in [
        ("notify_id", "2026112900222120107000000000000001"),
        ("notify_time", "2026-11-29 12:01:08"),
        ("notify_type", "trade_status_sync"),
        ("app_id", paygate::app::SANDBOX_ALIPAY_APP_ID),
        ("auth_app_id", paygate::app::SANDBOX_ALIPAY_APP_ID),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("seller_id", paygate::app::SANDBOX_ALIPAY_SELLER_ID),
        ("seller_email", "seller.forged@example.com"),
        (
            "out_trade_no",
            order["order_no"].as_str().expect("order_no"),
        ),
        ("trade_no", "2026112922001400000000000001"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", amount),
        ("receipt_amount", amount),
        ("subject", "职前通服务"),
        ("gmt_create", "2026-11-29 12:00:30"),
        ("gmt_payment", "2026-11-29 12:01:07"),
        ("buyer_id", "2088102177846880"),
        ("buyer_logon_id", "forged***@example.com"),
        (
            "buyer_open_id",
            "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5",
        ),
    ] {
        params.insert(key, value);
    }
    for (key, value) in overrides {
        params.insert(*key, *value);
    }
    let alipay_key = paygate_alipay::Signer::from_pem_or_base64(PLATFORM_KEY).expect("fixture key");
    paygate_alipay::simulator::sign_notification(params, &alipay_key).expect("sign")
}

/// Runs one async test body on SQLite and, when configured, on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $body:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            $body(
                $crate::common::TestApp::spawn_on($crate::common::Backend::Sqlite)
                    .await
                    .unwrap(),
            )
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            if let Some(app) =
                $crate::common::TestApp::spawn_on($crate::common::Backend::Postgres).await
            {
                $body(app).await;
            }
        }
    };
}

/// Everything any component logs in this test binary, at DEBUG and above (the gateway, the
/// embedded sandbox, sqlx, the HTTP stack), captured from the first test that asks for it:
/// "never logged" is checked against this.
pub fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let writer = move || LogWriter(buffer);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(writer)
            .try_init()
            .expect("the only subscriber of this test binary");
        buffer
    })
}

pub struct LogWriter(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
