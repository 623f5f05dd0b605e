//! paygate's sandbox: a local simulator of WeChat Pay APIv3 that speaks the wire protocol with
//! real crypto, so the gateway runs and is tested on one machine with no merchant account.
//!
//! - [`wechat`]: `/sandbox/wechatpay/v3/…` (native order, query, close): every request's
//!   `Authorization` verified with the merchant public key, every answer signed with the
//!   simulator's platform key, errors as WeChat answers them; an in-memory ledger of orders.
//! - [`cashier`]: `/sandbox/cashier/{out_trade_no}` (amount, QR code, Pay button) and
//!   `/sandbox/pay/{out_trade_no}` (the buyer pays).
//! - [`delivery`]: the signed, encrypted `TRANSACTION.SUCCESS` callback, retried on WeChat's
//!   schedule (scaled by `time_divisor`), each attempt recorded (`/sandbox/notifications`).
//! - [`alipay`]: `/sandbox/alipay/gateway.do` (precreate, page/wap pay, query, close), enabled
//!   with [`Sandbox::with_alipay`]: app signatures verified, answers signed with the simulator's
//!   Alipay key, `trade_status_sync` notifications until answered `success`.
//! - [`faults`]: switches a test flips (`/sandbox/faults`).
//! - [`keys_dir`]: the key files the standalone binary and `paygate serve --sandbox` read.
//!
//! [`Sandbox::router`] is a plain `Router<()>` with every route already under `/sandbox`, so the
//! gateway can `.merge()` it.

pub mod alipay;
pub mod cashier;
pub mod delivery;
pub mod faults;
pub mod keys_dir;
pub mod wechat;

use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

pub use alipay::AlipaySandboxConfig;
pub use delivery::{DeliveryRecord, SignedNotification};
pub use faults::Faults;
pub use keys_dir::{PlatformKeyFiles, load_or_create_platform_key, wechat_config_from_keys_dir};
pub use wechat::{CapturedRequest, PayError, WechatSandboxConfig};

/// Everything the sandbox needs: the WeChat Pay side and how fast its clocks run.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub wechatpay: WechatSandboxConfig,
    /// Every callback retry delay is divided by this (1 = real time; tests use e.g. 1000).
    pub time_divisor: u32,
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
    faults: RwLock<Faults>,
    deliveries: Mutex<Vec<DeliveryRecord>>,
    /// For callbacks; WeChat waits 5 s for an answer.
    http: reqwest::Client,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        anyhow::ensure!(config.time_divisor >= 1, "time_divisor must be at least 1");
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .user_agent("Mozilla/4.0 (paygate-sandbox WeChat Pay notifier)")
            .build()?;
        Ok(Sandbox {
            inner: Arc::new(Inner {
                wechat: wechat::WechatSim::new(config.wechatpay)?,
                alipay: OnceLock::new(),
                time_divisor: config.time_divisor,
                faults: RwLock::new(Faults::default()),
                deliveries: Mutex::new(Vec::new()),
                http,
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
            .route("/sandbox/notifications", get(get_notifications))
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

    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.write().unwrap_or_else(|e| e.into_inner()) = faults;
    }

    /// Uses up one `api_errors` fault, if any is left.
    fn take_api_error(&self) -> bool {
        let mut faults = self.inner.faults.write().unwrap_or_else(|e| e.into_inner());
        if faults.api_errors > 0 {
            faults.api_errors -= 1;
            true
        } else {
            false
        }
    }

    /// The WeChat Pay platform key id (`PUB_KEY_ID_…`) the sandbox signs with.
    pub fn wechat_platform_key_id(&self) -> &str {
        &self.inner.wechat.platform_key_id
    }

    /// The WeChat Pay platform public key (SPKI PEM), for the gateway's `platform_public_keys`.
    pub fn wechat_platform_public_key_pem(&self) -> String {
        self.inner.wechat.platform_signer.public_key_pem()
    }

    /// The public keys and ids, as `GET /sandbox/keys` shows them.
    pub fn keys(&self) -> SandboxKeys {
        SandboxKeys {
            wechatpay: WechatKeys {
                platform_key_id: self.wechat_platform_key_id().to_owned(),
                public_key_pem: self.wechat_platform_public_key_pem(),
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
    pub platform_key_id: String,
    pub public_key_pem: String,
}

async fn get_notifications(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.notifications()).into_response()
}

async fn get_faults(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.faults()).into_response()
}

/// Parsed by hand so that an unknown field is a 400 with a message, not axum's 422.
async fn put_faults(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            sandbox.set_faults(faults.clone());
            axum::Json(faults).into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "code": "INVALID_FAULTS",
                "message": error.to_string(),
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
