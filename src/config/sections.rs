//! The config's sections as read from TOML, their defaults, and what is derived from them
//! (the plan catalog, key-file paths, the public URL, `serve`'s warnings).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ConfigError;
use super::limits::LimitsConfig;
use crate::domain::{Catalog, Fen, Grant, Plan};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub orders: OrdersConfig,
    pub wechatpay: Option<WechatPayConfig>,
    pub alipay: Option<AlipayConfig>,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    pub events: Option<EventsConfig>,
    pub plans: Option<Vec<PlanConfig>>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub checkout: CheckoutConfig,
    #[serde(default)]
    pub reconciliation: ReconciliationConfig,
    #[serde(default)]
    pub console: ConsoleConfig,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// The folder relative key-file paths are resolved against (the config file's folder).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Notify URLs are `{public_url}/webhooks/{provider}`. Defaults to `http://{listen}`.
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            public_url: None,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "default_database_url")]
    pub url: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: default_database_url(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_database_url() -> String {
    "sqlite://paygate.db".to_owned()
}

fn default_max_connections() -> u32 {
    10
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    #[serde(default = "default_ttl")]
    pub ttl_minutes: i64,
    /// The neutral text sent as WeChat `description` / Alipay `subject`.
    #[serde(default = "default_description")]
    pub description: String,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            ttl_minutes: default_ttl(),
            description: default_description(),
        }
    }
}

fn default_ttl() -> i64 {
    15
}

fn default_description() -> String {
    "职前通服务".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatPayConfig {
    #[serde(default = "default_wechat_api_base")]
    pub api_base: String,
    pub mchid: String,
    pub appid: String,
    pub merchant_serial: String,
    pub merchant_private_key_file: PathBuf,
    pub apiv3_key_file: PathBuf,
    #[serde(default)]
    pub platform_public_keys: Vec<PlatformKeyConfig>,
    #[serde(default)]
    pub fetch_platform_certificates: bool,
}

fn default_wechat_api_base() -> String {
    "https://api.mch.weixin.qq.com".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformKeyConfig {
    pub id: String,
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlipayConfig {
    #[serde(default = "default_alipay_gateway")]
    pub gateway_url: String,
    pub app_id: String,
    pub app_private_key_file: PathBuf,
    pub alipay_public_key_file: PathBuf,
    pub seller_id: Option<String>,
}

fn default_alipay_gateway() -> String {
    "https://openapi.alipay.com/gateway.do".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    pub id: String,
    pub secret_sha256: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub url: Option<String>,
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    pub id: String,
    pub name: String,
    pub price: String,
    pub grants: Vec<Grant>,
}

pub const SCOPES: [&str; 4] = ["checkout", "entitlements", "finance", "privacy"];

/// `[privacy]` (DESIGN.md §8, §10): the erasure pseudonym key, the non-working days that
/// `due_by` skips besides weekends, and how long each kind of stored data is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The HMAC-SHA256 key of erased employer ids (at least 32 characters). Without it,
    /// erasures are refused; `serve --sandbox` generates one per start when it is unset.
    pub pseudonym_key_file: Option<PathBuf>,
    /// Extra non-working days (Asia/Shanghai), `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "crate::domain::date::deserialize_dates")]
    pub holidays: Vec<chrono::NaiveDate>,
    /// Stored idempotency answers are deleted after this many days (the key may then be reused).
    #[serde(default = "default_idempotency_days")]
    pub idempotency_days: i64,
    /// Delivered outbox events are deleted after this many days.
    #[serde(default = "default_events_days")]
    pub events_days: i64,
    /// Access-check audit rows keep the résumé id this many days, then lose it.
    #[serde(default = "default_access_resume_days")]
    pub access_resume_days: i64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            pseudonym_key_file: None,
            holidays: Vec::new(),
            idempotency_days: default_idempotency_days(),
            events_days: default_events_days(),
            access_resume_days: default_access_resume_days(),
        }
    }
}

fn default_idempotency_days() -> i64 {
    7
}

fn default_events_days() -> i64 {
    90
}

fn default_access_resume_days() -> i64 {
    180
}

/// `[reconciliation]` (DESIGN.md §10): what a day's bill may cost before it is refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconciliationConfig {
    /// A bill download larger than this is cut off and refused (422 `bill_invalid`); each
    /// reading pass refuses more than this many decompressed bytes, or more than a 64th of it
    /// in lines. The default, 4 GiB, holds some 10 million rows of either provider.
    pub max_bill_bytes: u64,
}

/// 4 GiB: 10 million bill rows of 300-400 bytes, with room.
pub const DEFAULT_MAX_BILL_BYTES: u64 = 4 << 30;
/// The range `max_bill_bytes` must fall in: 1 MiB to 64 GiB.
pub const MAX_BILL_BYTES_RANGE: std::ops::RangeInclusive<u64> = (1 << 20)..=(64 << 30);

impl Default for ReconciliationConfig {
    fn default() -> Self {
        ReconciliationConfig {
            max_bill_bytes: DEFAULT_MAX_BILL_BYTES,
        }
    }
}

/// `[console]` (DESIGN.md §7 console): the finance and operations console at `/console`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub enabled: bool,
    /// A session unused this long is over (8 hours by default; 5 to 1440).
    pub session_idle_minutes: i64,
}

/// The range `session_idle_minutes` must fall in: 5 minutes to a day.
pub const SESSION_IDLE_MINUTES_RANGE: std::ops::RangeInclusive<i64> = 5..=1440;

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_idle_minutes: 480,
        }
    }
}

/// `[sandbox]` (DESIGN.md §7, §8): a gateway beside a standalone simulator (`paygate-sandbox
/// --test-clock`) sharing its test clock. `serve --sandbox` needs none of it: its embedded
/// simulator reads the gateway's clock.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Run on a test clock shared with the simulator at `simulator_url`: `/sandbox/clock` is
    /// served and its advance moves the simulator's clock too. Every provider section must
    /// point at that simulator.
    #[serde(default)]
    pub test_clock: bool,
    /// The standalone simulator's base URL (`http://127.0.0.1:9090`), the part before its
    /// `/sandbox/…` routes.
    pub simulator_url: Option<String>,
}

impl SandboxConfig {
    /// `simulator_url` without a trailing slash.
    pub fn simulator_base(&self) -> Option<&str> {
        self.simulator_url
            .as_deref()
            .map(|url| url.trim_end_matches('/'))
    }
}

/// `[checkout]`: where the buyer's browser returns after paying (issue 13).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutConfig {
    /// Alipay page/wap `return_url` and WeChat H5 `redirect_url`, `{order_no}` its only
    /// placeholder; validated when the config loads (see [`crate::return_url`]).
    pub return_url: Option<crate::return_url::ReturnUrl>,
    /// Hosts (`host` or `host:port`) a per-order `"return_url"` may use.
    #[serde(default)]
    pub allowed_return_hosts: Vec<String>,
}
impl Config {
    /// What `serve` should warn of: a gateway that starts but refuses every order (no
    /// provider) or every `/v1` call (no API key).
    pub fn serve_warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if self.wechatpay.is_none() && self.alipay.is_none() {
            warnings.push(
                "no [wechatpay] or [alipay] section: every order will be refused (422 provider_disabled)",
            );
        }
        if self.api_keys.is_empty() {
            warnings.push("no [[api_keys]]: every /v1 call will be refused (401 unauthorized)");
        }
        warnings
    }

    /// The configured catalog, or the built-in one.
    pub fn catalog(&self) -> Result<Catalog, ConfigError> {
        let Some(plans) = &self.plans else {
            return Ok(Catalog::builtin());
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for p in plans {
            let bad = |m: &str| ConfigError::Invalid(format!("plan {:?}: {m}", p.id));
            if !seen.insert(&p.id) {
                return Err(bad("appears twice"));
            }
            let price = Fen::parse_yuan(&p.price).map_err(|e| bad(&e.to_string()))?;
            if price.get() == 0 {
                return Err(bad("price must be positive"));
            }
            if p.grants.is_empty() {
                return Err(bad("grants nothing"));
            }
            let mut actions = HashSet::new();
            for g in &p.grants {
                if !actions.insert(g.action) {
                    return Err(bad("grants one action twice"));
                }
                if g.days <= 0 || g.quota.is_some_and(|q| q <= 0) {
                    return Err(bad("days and quota must be positive"));
                }
            }
            out.push(Plan {
                id: p.id.clone(),
                name: p.name.clone(),
                price,
                grants: p.grants.clone(),
            });
        }
        Ok(Catalog::new(out))
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base_dir.join(path)
        }
    }

    /// `public_url` without a trailing slash; `http://{listen}` when unset.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.server.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}
