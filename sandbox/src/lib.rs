//! paygate's sandbox: a local simulator of WeChat Pay APIv3 and Alipay's OpenAPI gateway that
//! speaks both wire protocols with real crypto, so the gateway runs and is tested on one machine with no merchant account.
//!
//! - [`wechat`]: `/sandbox/wechatpay/v3/…` (native, JSAPI, H5 and App orders, query, close,
//!   refund, refund query, `/v3/certificates`): every request's `Authorization` verified with
//!   the merchant public key, every answer signed with the simulator's platform key, errors as
//!   WeChat answers them;
//!   an in-memory ledger of orders. [`wechat_order`] holds the per-channel privacy allowlists,
//!   [`wechat_refund`] refunds and refund queries, [`wechat_platform`] the platform key, its
//!   certificates and their rotation.
//! - [`cashier`]: `/sandbox/cashier/{out_trade_no}` (amount, QR code, Pay button) and
//!   `/sandbox/pay/{out_trade_no}` (the buyer pays).
//! - [`portal`]: `/sandbox/refund/{out_trade_no}` ([`Sandbox::portal_refund`]), a refund made at
//!   the merchant portal, outside paygate, of an order of either provider.
//! - [`delivery`]: the signed, encrypted `TRANSACTION.SUCCESS` and `REFUND.SUCCESS` /
//!   `REFUND.CLOSED` / `REFUND.ABNORMAL` callbacks, retried on WeChat's schedule (scaled by
//!   `time_divisor`), each attempt recorded (`/sandbox/notifications`).
//! - [`outbox`]: every notification not yet acknowledged (both providers), its retry loop, the
//!   notification faults (dropped, delayed, reordered) and `resend` (deliver now).
//! - [`alipay`]: `/sandbox/alipay/gateway.do` (precreate, page/wap pay, query, close, refund,
//!   refund query), enabled with [`Sandbox::with_alipay`]: app signatures verified, answers
//!   signed with the simulator's Alipay key, `trade_status_sync` notifications of payments and
//!   of each refund until answered `success`.
//! - [`wechat_bill`], `alipay::bill` and [`bill`]: trade bills made from the ledger of one
//!   Beijing day by [`wire`]'s writers, behind download URLs that expire by the
//!   sandbox clock ([`Sandbox::wechat_bill`], [`Sandbox::alipay_bill`] give the bytes).
//! - [`faults`]: switches a test flips (`/sandbox/faults`), among them `api_latency_ms` (the
//!   answer held after the request was acted on) and `wechat_refund_outcome` (WeChat refunds
//!   ending `CLOSED` or `ABNORMAL`).
//! - [`keys_dir`]: the key files the standalone binary and `paygate serve --sandbox` read.
//! - [`wire`]: the sandbox's own reading of both wire protocols (signatures, encryption, forms,
//!   amounts, bill files), written from the providers' published documentation and never shared
//!   with the gateway's provider crates.
//! - [`test_clock`]: `paygate-sandbox --test-clock`'s clock, moved by a gateway configured
//!   with `[sandbox] test_clock = true` (`GET`/`PUT /sandbox/clock`, merged only with the flag).
//! - [`ledger_file`]: with [`Sandbox::with_data`] (`paygate-sandbox --data FILE`) the ledger is
//!   also kept, write-through, in an SQLite file, so a restarted simulator remembers it;
//!   without it the ledger lives in memory only.
//!
//! Time: every "now" the sandbox uses (signature timestamps and windows, `success_time`,
//! `create_time`, Alipay's `gmt_*` (`gmt_refund` included) and `notify_time`, delivery records)
//! comes from [`SandboxConfig::clock`], so a gateway test that moves a fake clock and the
//! embedded sandbox agree. Waits (callback retry delays, injected delays and latency) are real time.
//!
//! [`Sandbox::router`] is a plain `Router<()>` with every route already under `/sandbox`, so the
//! gateway can `.merge()` it.

pub mod alipay;
pub mod bill;
pub mod cashier;
pub mod delivery;
pub mod faults;
pub mod keys_dir;
pub mod ledger_file;
pub mod outbox;
pub mod portal;
pub mod test_clock;
pub mod wechat;
pub mod wechat_bill;
pub mod wechat_order;
pub mod wechat_platform;
pub mod wechat_refund;
pub mod wire;

use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use alipay::AlipaySandboxConfig;
pub use delivery::{DeliveryRecord, SignedNotification};
pub use faults::{Faults, REORDER_WINDOW_MS, WechatRefundOutcome};
pub use keys_dir::{
    PlatformKeyFiles, alipay_config_from_keys_dir, load_or_create_platform_key,
    wechat_config_from_keys_dir,
};
pub use portal::{PortalProvider, PortalRefund, PortalRefundError, PortalRefundStatus};
pub use wechat::{CapturedRequest, PayError, PayTiming, WechatSandboxConfig};
pub use wechat_platform::{PlatformCertificateKey, PlatformMode};

/// "Now", as the sandbox reads it. The gateway hands the embedded sandbox its own clock, so a
/// test that moves a fake clock moves both sides; see [`system_clock`].
pub type SandboxClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The real clock: what the standalone binary uses. The one place the sandbox calls
/// `Utc::now()`.
pub fn system_clock() -> SandboxClock {
    Arc::new(Utc::now)
}

/// Everything the sandbox needs: the WeChat Pay side, how fast its retries run, and its clock.
#[derive(Clone)]
pub struct SandboxConfig {
    pub wechatpay: WechatSandboxConfig,
    /// Every callback retry delay is divided by this (1 = real time; tests use e.g. 1000).
    pub time_divisor: u32,
    /// Where every timestamp the sandbox writes or checks comes from ([`system_clock`] unless
    /// a test injects its own). Retry delays are not read from it: they stay real sleeps.
    pub clock: SandboxClock,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("wechatpay", &self.wechatpay)
            .field("time_divisor", &self.time_divisor)
            .finish_non_exhaustive()
    }
}

/// The simulator. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    wechat: wechat::WechatSim,
    /// Set once by [`Sandbox::with_alipay`].
    alipay: OnceLock<alipay::AlipaySim>,
    time_divisor: u32,
    clock: SandboxClock,
    faults: RwLock<Faults>,
    deliveries: Mutex<Vec<DeliveryRecord>>,
    outbox: outbox::Outbox,
    /// Bills made and waiting to be downloaded, both providers.
    bill_tokens: bill::BillTokens,
    /// For callbacks; WeChat waits 5 s for an answer.
    http: reqwest::Client,
    /// Set once by [`Sandbox::with_data`]: the file the ledger is kept in.
    data: OnceLock<ledger_file::LedgerFile>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        anyhow::ensure!(config.time_divisor >= 1, "time_divisor must be at least 1");
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .user_agent("Mozilla/4.0 (paygate-sandbox WeChat Pay notifier)")
            .build()?;
        let now = (config.clock)();
        Ok(Sandbox {
            inner: Arc::new(Inner {
                wechat: wechat::WechatSim::new(config.wechatpay, now)?,
                alipay: OnceLock::new(),
                time_divisor: config.time_divisor,
                clock: config.clock,
                faults: RwLock::new(Faults::default()),
                deliveries: Mutex::new(Vec::new()),
                outbox: outbox::Outbox::default(),
                bill_tokens: bill::BillTokens::default(),
                http,
                data: OnceLock::new(),
            }),
        })
    }

    /// Adds the Alipay half (`/sandbox/alipay/gateway.do`). Call once, before serving; without
    /// it the gateway route answers 404.
    pub fn with_alipay(self, config: AlipaySandboxConfig) -> anyhow::Result<Sandbox> {
        let sim = alipay::AlipaySim::new(config)?;
        if self.inner.alipay.set(sim).is_err() {
            anyhow::bail!("the Alipay half is already configured");
        }
        Ok(self)
    }

    /// All routes, under `/sandbox`.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(wechat::routes())
            .merge(alipay::routes())
            .merge(cashier::routes())
            .merge(portal::routes())
            .route("/sandbox/notifications", get(get_notifications))
            .route("/sandbox/notifications/resend", post(resend_notifications))
            .route("/sandbox/faults", get(get_faults).put(put_faults))
            .route("/sandbox/keys", get(get_keys))
            .with_state(self.clone())
    }

    /// Every callback delivery attempt so far, in the order they were answered.
    pub fn notifications(&self) -> Vec<DeliveryRecord> {
        lock(&self.inner.deliveries).clone()
    }

    pub fn faults(&self) -> Faults {
        self.inner
            .faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the faults. Unlike `PUT /sandbox/faults` this does not refuse a share outside
    /// 0..=1 (a Rust caller sees the type's docs); such a share acts as 0 or 1, see [`Faults`].
    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Whether this API request is answered with the provider's system error: one of the
    /// counted `api_errors` if any is left (used up), else a draw against `api_error_rate`.
    fn take_api_error(&self) -> bool {
        let mut faults = self.inner.faults.write().unwrap_or_else(|e| e.into_inner());
        if faults.api_errors > 0 {
            faults.api_errors -= 1;
            true
        } else {
            faults::draw(faults.api_error_rate)
        }
    }

    /// Waits `api_latency_ms` (real time) before an API answer goes out.
    async fn api_latency(&self) {
        let latency = self.faults().api_latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Now, by the configured clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.inner.clock)()
    }

    /// The WeChat Pay platform key id (`PUB_KEY_ID_…`) the sandbox signs with.
    pub fn wechat_platform_key_id(&self) -> &str {
        self.inner.wechat.platform.key_id()
    }

    /// The WeChat Pay platform public key (SPKI PEM), for the gateway's `platform_public_keys`.
    /// It stays the key of [`Sandbox::wechat_platform_key_id`] through certificate rotations.
    pub fn wechat_platform_public_key_pem(&self) -> String {
        self.inner.wechat.platform.public_key_pem()
    }

    /// The public keys and ids, as `GET /sandbox/keys` shows them.
    pub fn keys(&self) -> SandboxKeys {
        SandboxKeys {
            wechatpay: WechatKeys {
                platform_key_id: self.wechat_platform_key_id().to_owned(),
                public_key_pem: self.wechat_platform_public_key_pem(),
                signing_serial: self.wechat_signing_serial(),
                certificates: self.wechat_platform_certificates(),
            },
            alipay: self
                .alipay_public_key_pem()
                .map(|public_key_pem| AlipayKeys { public_key_pem }),
        }
    }

    fn time_divisor(&self) -> u32 {
        self.inner.time_divisor
    }
}

/// `GET /sandbox/keys`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SandboxKeys {
    pub wechatpay: WechatKeys,
    /// Present when the Alipay half is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alipay: Option<AlipayKeys>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AlipayKeys {
    /// The simulator's Alipay public key (SPKI PEM): the gateway's `alipay_public_key`.
    pub public_key_pem: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct WechatKeys {
    /// The `PUB_KEY_ID_…` of the public-key mode, and its key (SPKI PEM).
    pub platform_key_id: String,
    pub public_key_pem: String,
    /// The `Wechatpay-Serial` answers and notifications carry now: the key id in public-key
    /// mode, the newest certificate's serial in certificate mode.
    pub signing_serial: String,
    /// The platform certificates `/v3/certificates` lists, oldest first.
    pub certificates: Vec<PlatformCertificateKey>,
}

async fn get_notifications(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.notifications()).into_response()
}

/// Delivers every notification not yet acknowledged now, and answers when those attempts are
/// done: `{"attempted": N}`.
async fn resend_notifications(State(sandbox): State<Sandbox>) -> Response {
    let attempted = sandbox.resend_pending().await;
    axum::Json(serde_json::json!({ "attempted": attempted })).into_response()
}

async fn get_faults(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.faults()).into_response()
}

/// Parsed by hand so that an unknown field is a 400 with a message, not axum's 422.
async fn put_faults(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body)
        .map_err(|e| e.to_string())
        .and_then(|faults| faults.validate().map(|()| faults))
    {
        Ok(faults) => {
            sandbox.set_faults(faults.clone());
            axum::Json(faults).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "code": "INVALID_FAULTS",
                "message": error,
            })),
        )
            .into_response(),
    }
}

async fn get_keys(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.keys()).into_response()
}

/// A poisoned lock only means another request panicked; the data itself is still consistent
/// (every critical section is a single insert or update).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
