//! Configuration (DESIGN.md §8): a TOML file, every key overridable by
//! `PAYGATE_<SECTION>__<KEY>`, unknown keys rejected, key material read from named files.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{Catalog, Fen, Grant, Plan};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // The TOML error is the source, not part of this message: `{e:#}` (main's output) prints
    // the chain, and printed it twice when both held it.
    #[error("config is not valid TOML or has unknown or mistyped keys")]
    Parse(#[from] toml::de::Error),
    #[error("environment override {var}: {why}")]
    Env { var: String, why: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

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

/// `[limits]`: the edges (DESIGN.md §8). Every wait is bounded and every resource capped, so a
/// slow database, a slow client or a flood answers fast instead of piling up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest wait for a database connection (and SQLite's busy timeout) before a request
    /// answers 503 `database_unavailable` and a webhook 5xx.
    pub db_acquire_timeout_ms: u64,
    /// `/readyz`'s own bound on its database check.
    pub readiness_timeout_ms: u64,
    /// A whole request, body included (the `?wait=` long poll gets its wait on top).
    pub request_timeout_ms: u64,
    /// Reading a request's head; also how long an idle keep-alive connection is kept.
    pub header_read_timeout_ms: u64,
    /// Open client connections; past it, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests being handled (long polls and health probes aside); max(1, max_in_flight / 8)
    /// of them only webhooks may take. Past it, 503 `overloaded` with `Retry-After`.
    pub max_in_flight: usize,
    /// Open `?wait=` long polls; past it a wait is answered at once with the current state.
    /// Unset: 2048, or half of `max_connections` if that is less (waits hold connections).
    pub max_waits: Option<usize>,
    pub api_body_bytes: usize,
    pub webhook_body_bytes: usize,
    /// Requests per second per API key (burst of the same size); 429 past it.
    pub api_rate_per_key: u32,
    /// Webhook requests per second per source address (burst of the same size).
    pub webhook_rate_per_ip: u32,
    /// Outbound calls to the providers: connecting, and the whole call.
    pub provider_connect_timeout_ms: u64,
    pub provider_timeout_ms: u64,
}

/// `max_waits` when unset (and `max_connections` allows it).
const DEFAULT_MAX_WAITS: usize = 2_048;

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            db_acquire_timeout_ms: 2_000,
            readiness_timeout_ms: 1_000,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            max_connections: 10_000,
            max_in_flight: 2_048,
            max_waits: None,
            api_body_bytes: 64 * 1024,
            webhook_body_bytes: 64 * 1024,
            api_rate_per_key: 2_000,
            webhook_rate_per_ip: 200,
            provider_connect_timeout_ms: 5_000,
            provider_timeout_ms: 15_000,
        }
    }
}

impl LimitsConfig {
    pub fn ms(value: u64) -> std::time::Duration {
        std::time::Duration::from_millis(value)
    }

    /// The cap on open long polls: `max_waits`, or its default.
    pub fn max_waits(&self) -> usize {
        self.max_waits
            .unwrap_or_else(|| DEFAULT_MAX_WAITS.min(self.max_connections / 2))
    }

    /// The in-flight slots only webhooks may take (DESIGN.md §13): an eighth, at least one.
    pub fn webhook_reserve(&self) -> usize {
        (self.max_in_flight / 8).max(1)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        let positive = [
            ("db_acquire_timeout_ms", self.db_acquire_timeout_ms),
            ("readiness_timeout_ms", self.readiness_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("max_in_flight", self.max_in_flight as u64),
            ("max_waits", self.max_waits() as u64),
            ("api_body_bytes", self.api_body_bytes as u64),
            ("webhook_body_bytes", self.webhook_body_bytes as u64),
            ("api_rate_per_key", u64::from(self.api_rate_per_key)),
            ("webhook_rate_per_ip", u64::from(self.webhook_rate_per_ip)),
            (
                "provider_connect_timeout_ms",
                self.provider_connect_timeout_ms,
            ),
            ("provider_timeout_ms", self.provider_timeout_ms),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("limits.{key} must be positive"));
        }
        if self.max_in_flight < 2 {
            return invalid(
                "limits.max_in_flight must be at least 2: webhooks have a reserved share".into(),
            );
        }
        // Each open wait holds its connection: all of them must leave connections for health
        // probes, webhooks and the rest of the API.
        if self.max_waits() >= self.max_connections {
            return invalid(format!(
                "limits.max_waits ({}) must be below limits.max_connections ({}): every open \
                 wait holds a connection",
                self.max_waits(),
                self.max_connections
            ));
        }
        Ok(())
    }
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
    /// Reads `path` (or nothing: every default), applies environment overrides, validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (text, base_dir) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (text, dir)
            }
            None => (String::new(), PathBuf::from(".")),
        };
        Config::from_toml_with_env(&text, std::env::vars(), base_dir)
    }

    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
        base_dir: PathBuf,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse()?;
        apply_env_overrides(&mut table, env)?;
        let mut config: Config = toml::Value::Table(table).try_into()?;
        config.base_dir = base_dir;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return invalid(format!(
                "server.listen {:?} is not an address:port",
                self.server.listen
            ));
        }
        if let Some(url) = &self.server.public_url {
            match url::Url::parse(url) {
                Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.query().is_none() => {
                }
                _ => {
                    return invalid(
                        "server.public_url must be an http(s) URL without query".into(),
                    );
                }
            }
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres"))
        {
            return invalid("database.url must start with sqlite: or postgres://".into());
        }
        if !(1..=24 * 60).contains(&self.orders.ttl_minutes) {
            return invalid("orders.ttl_minutes must be between 1 and 1440".into());
        }
        let d = &self.orders.description;
        if d.is_empty() || d.chars().count() > 127 {
            return invalid("orders.description must be 1 to 127 characters".into());
        }
        if let Some(w) = &self.wechatpay {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(&w.mchid) || w.mchid.len() > 32 {
                return invalid("wechatpay.mchid must be digits".into());
            }
            if w.appid.is_empty() || w.appid.len() > 32 {
                return invalid("wechatpay.appid must be 1 to 32 characters".into());
            }
            let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex(&w.merchant_serial) {
                return invalid(
                    "wechatpay.merchant_serial must be the certificate serial in hex".into(),
                );
            }
            if w.platform_public_keys.is_empty() && !w.fetch_platform_certificates {
                return invalid(
                    "wechatpay needs platform_public_keys or fetch_platform_certificates = true"
                        .into(),
                );
            }
            for k in &w.platform_public_keys {
                if !k.id.starts_with("PUB_KEY_ID_") && !hex(&k.id) {
                    return invalid(format!(
                        "wechatpay platform key id {:?} is neither PUB_KEY_ID_… nor a certificate serial",
                        k.id
                    ));
                }
            }
        }
        if let Some(a) = &self.alipay
            && (a.app_id.is_empty() || !a.app_id.bytes().all(|b| b.is_ascii_digit()))
        {
            return invalid("alipay.app_id must be digits".into());
        }
        if let Some(events) = &self.events
            && let Some(url) = &events.url
        {
            let http = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !http {
                return invalid("events.url must be an http(s) URL".into());
            }
            if events.secret_file.is_none() {
                return invalid("events.url needs events.secret_file (the HMAC key)".into());
            }
        }
        let mut ids = HashSet::new();
        for key in &self.api_keys {
            if !ids.insert(&key.id) {
                return invalid(format!("api key id {:?} appears twice", key.id));
            }
            let lower_hex = key.secret_sha256.len() == 64
                && key
                    .secret_sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !lower_hex {
                return invalid(format!(
                    "api key {:?}: secret_sha256 must be 64 lower-case hex",
                    key.id
                ));
            }
            if key.scopes.is_empty() {
                return invalid(format!("api key {:?} has no scopes", key.id));
            }
            if let Some(s) = key.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return invalid(format!("api key {:?}: unknown scope {s:?}", key.id));
            }
        }
        self.limits.validate()?;
        if !MAX_BILL_BYTES_RANGE.contains(&self.reconciliation.max_bill_bytes) {
            return invalid(
                "reconciliation.max_bill_bytes must be between 1048576 (1 MiB) and 68719476736 (64 GiB)"
                    .into(),
            );
        }
        let p = &self.privacy;
        for (name, days) in [
            ("idempotency_days", p.idempotency_days),
            ("events_days", p.events_days),
            ("access_resume_days", p.access_resume_days),
        ] {
            if !(1..=3650).contains(&days) {
                return invalid(format!("privacy.{name} must be between 1 and 3650"));
            }
        }
        for host in &self.checkout.allowed_return_hosts {
            let ok = !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                });
            if !ok {
                return invalid(format!(
                    "checkout.allowed_return_hosts: {host:?} is not a host or host:port"
                ));
            }
        }
        self.catalog()?;
        Ok(())
    }

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

/// `PAYGATE_DATABASE__URL=…` sets `[database] url`. Values are read as TOML when they parse
/// (numbers, booleans, arrays), else as plain strings.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, value) in env {
        let Some(rest) = var.strip_prefix("PAYGATE_") else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let err = |why: &str| ConfigError::Env {
            var: var.clone(),
            why: why.to_owned(),
        };
        if section.is_empty() || key.is_empty() || key.contains("__") {
            return Err(err("expected PAYGATE_<SECTION>__<KEY>"));
        }
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value.clone()));
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, parsed);
            }
            _ => return Err(err("that section is not a table")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::from_toml_with_env(text, env, PathBuf::from("."))
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.database.url, "sqlite://paygate.db");
        assert_eq!(c.orders.ttl_minutes, 15);
        assert_eq!(c.catalog().unwrap().plans().len(), 3);
        assert_eq!(c.limits.db_acquire_timeout_ms, 2_000);
        assert_eq!(c.limits.api_body_bytes, 65_536);
    }

    #[test]
    fn limits_are_read_overridden_and_must_be_positive() {
        let c = load(
            "[limits]\nmax_in_flight = 16",
            &[("PAYGATE_LIMITS__DB_ACQUIRE_TIMEOUT_MS", "500")],
        )
        .unwrap();
        assert_eq!(c.limits.max_in_flight, 16);
        assert_eq!(c.limits.db_acquire_timeout_ms, 500);
        assert_eq!(
            c.limits.request_timeout_ms, 10_000,
            "the rest keep their defaults"
        );
        assert!(load("[limits]\nrequest_timeout_ms = 0", &[]).is_err());
        assert!(load("[limits]\nrequest_timeout = 5", &[]).is_err());
    }

    #[test]
    fn max_bill_bytes_defaults_to_4_gib_and_must_be_sane() {
        assert_eq!(
            load("", &[]).unwrap().reconciliation.max_bill_bytes,
            4_294_967_296
        );
        let c = load("", &[("PAYGATE_RECONCILIATION__MAX_BILL_BYTES", "1048576")]).unwrap();
        assert_eq!(c.reconciliation.max_bill_bytes, 1 << 20);
        for bad in ["0", "1048575", "68719476737", "-1", "\"4G\""] {
            assert!(
                load(&format!("[reconciliation]\nmax_bill_bytes = {bad}"), &[]).is_err(),
                "{bad}"
            );
        }
        assert!(load("[reconciliation]\nmax_bill_byte = 1048576", &[]).is_err());
    }

    #[test]
    fn max_waits_defaults_below_max_connections_and_must_stay_below_it() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.limits.max_waits(), 2_048);
        assert_eq!(c.limits.webhook_reserve(), 256);
        // An operator who lowered max_connections keeps a working default.
        let c = load("[limits]\nmax_connections = 1000", &[]).unwrap();
        assert_eq!(c.limits.max_waits(), 500);
        let c = load(
            "[limits]\nmax_waits = 10",
            &[("PAYGATE_LIMITS__MAX_WAITS", "20")],
        )
        .unwrap();
        assert_eq!(c.limits.max_waits(), 20);
        for bad in [
            "[limits]\nmax_connections = 100\nmax_waits = 100",
            "[limits]\nmax_waits = 0",
            "[limits]\nmax_in_flight = 1",
        ] {
            assert!(
                matches!(load(bad, &[]), Err(ConfigError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unknown_key_is_named_once_in_the_error_chain() {
        let e = load("[server]\nlisen = \"x\"", &[]).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chain.matches("unknown field `lisen`").count(), 1, "{chain}");
    }

    #[test]
    fn serving_with_no_provider_and_no_api_key_is_warned_of() {
        let warnings = load("", &[]).unwrap().serve_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("every order")));
        assert!(warnings.iter().any(|w| w.contains("every /v1 call")));
    }

    #[test]
    fn unknown_keys_are_an_error() {
        assert!(matches!(
            load("[server]\nlisen = \"x\"", &[]),
            Err(ConfigError::Parse(_))
        ));
        assert!(matches!(
            load("[nonsense]\na = 1", &[]),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn environment_overrides_win_over_the_file() {
        let c = load(
            "[database]\nurl = \"sqlite://a.db\"",
            &[
                ("PAYGATE_DATABASE__URL", "postgres://u@h/db"),
                ("PAYGATE_ORDERS__TTL_MINUTES", "30"),
            ],
        )
        .unwrap();
        assert_eq!(c.database.url, "postgres://u@h/db");
        assert_eq!(c.orders.ttl_minutes, 30);
    }

    #[test]
    fn an_events_url_must_be_http_and_come_with_a_secret() {
        let with = |events: &str| load(&format!("[events]\n{events}"), &[]);
        assert!(with("url = \"https://platform.internal/hooks\"\nsecret_file = \"k\"").is_ok());
        assert!(with("url = \"ftp://platform.internal/hooks\"\nsecret_file = \"k\"").is_err());
        assert!(with("url = \"https://platform.internal/hooks\"").is_err());
        assert!(
            with("secret_file = \"k\"").is_ok(),
            "no url: the feed alone"
        );
    }

    #[test]
    fn privacy_has_the_documented_defaults_and_reads_holidays_as_dates() {
        let c = load("", &[]).unwrap();
        assert_eq!(
            (
                c.privacy.idempotency_days,
                c.privacy.events_days,
                c.privacy.access_resume_days
            ),
            (7, 90, 180)
        );
        assert!(c.privacy.pseudonym_key_file.is_none());
        let c = load(
            "[privacy]\npseudonym_key_file = \"k\"\nholidays = [\"2026-10-01\"]\nevents_days = 30",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.privacy.holidays,
            [chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap()]
        );
        assert_eq!(c.privacy.events_days, 30);
        assert!(load("[privacy]\nholidays = [\"2026-13-01\"]", &[]).is_err());
        assert!(load("[privacy]\nidempotency_days = 0", &[]).is_err());
    }

    #[test]
    fn a_checkout_return_url_is_validated_when_the_config_loads() {
        let with = |body: &str| load(&format!("[checkout]\n{body}"), &[]);
        let c = with("return_url = \"https://www.example.cn/orders/{order_no}/paid\"\nallowed_return_hosts = [\"www.example.cn\"]").unwrap();
        assert_eq!(
            c.checkout.return_url.unwrap().as_template(),
            "https://www.example.cn/orders/{order_no}/paid"
        );
        assert!(with("return_url = \"http://www.example.cn/paid\"").is_err());
        assert!(with("return_url = \"https://www.example.cn/{employer_id}\"").is_err());
        assert!(with("allowed_return_hosts = [\"https://www.example.cn/\"]").is_err());
        assert!(load("", &[]).unwrap().checkout.return_url.is_none());
    }

    #[test]
    fn an_override_of_an_unknown_key_is_rejected() {
        assert!(load("", &[("PAYGATE_DATABASE__URLL", "x")]).is_err());
    }

    #[test]
    fn api_keys_need_a_hex_hash_and_known_scopes() {
        let key = |hash: &str, scope: &str| {
            format!("[[api_keys]]\nid = \"a\"\nsecret_sha256 = \"{hash}\"\nscopes = [\"{scope}\"]")
        };
        assert!(load(&key(&"ab".repeat(32), "checkout"), &[]).is_ok());
        assert!(load(&key("abc", "checkout"), &[]).is_err());
        assert!(load(&key(&"ab".repeat(32), "admin"), &[]).is_err());
    }

    #[test]
    fn configured_plans_replace_the_catalog_and_prices_are_exact() {
        let plan = |price: &str| {
            format!(
                "[[plans]]\nid = \"p\"\nname = \"P\"\nprice = \"{price}\"\ngrants = [{{ action = \"download\", quota = 5, days = 10 }}]"
            )
        };
        let c = load(&plan("9.90"), &[]).unwrap();
        let catalog = c.catalog().unwrap();
        assert_eq!(catalog.plans().len(), 1);
        assert_eq!(catalog.get("p").unwrap().price.get(), 990);
        assert!(load(&plan("9.999"), &[]).is_err());
    }
}
