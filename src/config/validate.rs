//! The checks a loaded config must pass, one validator per section; each failure names the
//! key (the messages are part of the CLI's output: `check-config`).

use std::collections::HashSet;
use std::net::SocketAddr;

use super::error::ConfigError;
use super::sections::{
    AlipayConfig, ApiKeyConfig, CheckoutConfig, Config, DatabaseConfig, EventsConfig,
    MAX_BILL_BYTES_RANGE, OrdersConfig, PrivacyConfig, ReconciliationConfig, SCOPES,
    SESSION_IDLE_MINUTES_RANGE, ServerConfig, WechatPayConfig,
};

type Checked = Result<(), ConfigError>;

fn invalid(why: String) -> Checked {
    Err(ConfigError::Invalid(why))
}

/// Every section, in the order a reader meets them in the file; the first failure is returned.
pub(super) fn validate(config: &Config) -> Checked {
    server(&config.server)?;
    database(&config.database)?;
    orders(&config.orders)?;
    if let Some(w) = &config.wechatpay {
        wechatpay(w)?;
    }
    if let Some(a) = &config.alipay {
        alipay(a)?;
    }
    if let Some(e) = &config.events {
        events(e)?;
    }
    api_keys(&config.api_keys)?;
    config.limits.validate()?;
    reconciliation(&config.reconciliation)?;
    if !SESSION_IDLE_MINUTES_RANGE.contains(&config.console.session_idle_minutes) {
        return invalid("console.session_idle_minutes must be between 5 and 1440".into());
    }
    privacy(&config.privacy)?;
    checkout(&config.checkout)?;
    sandbox(config)?;
    config.catalog()?;
    Ok(())
}

fn server(server: &ServerConfig) -> Checked {
    if server.listen.parse::<SocketAddr>().is_err() {
        return invalid(format!(
            "server.listen {:?} is not an address:port",
            server.listen
        ));
    }
    if let Some(url) = &server.public_url {
        match url::Url::parse(url) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.query().is_none() => {}
            _ => {
                return invalid("server.public_url must be an http(s) URL without query".into());
            }
        }
    }
    Ok(())
}

fn database(database: &DatabaseConfig) -> Checked {
    if !(database.url.starts_with("sqlite:") || database.url.starts_with("postgres")) {
        return invalid("database.url must start with sqlite: or postgres://".into());
    }
    Ok(())
}

fn orders(orders: &OrdersConfig) -> Checked {
    if !(1..=24 * 60).contains(&orders.ttl_minutes) {
        return invalid("orders.ttl_minutes must be between 1 and 1440".into());
    }
    let d = &orders.description;
    if d.is_empty() || d.chars().count() > 127 {
        return invalid("orders.description must be 1 to 127 characters".into());
    }
    Ok(())
}

fn wechatpay(w: &WechatPayConfig) -> Checked {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&w.mchid) || w.mchid.len() > 32 {
        return invalid("wechatpay.mchid must be digits".into());
    }
    if w.appid.is_empty() || w.appid.len() > 32 {
        return invalid("wechatpay.appid must be 1 to 32 characters".into());
    }
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(&w.merchant_serial) {
        return invalid("wechatpay.merchant_serial must be the certificate serial in hex".into());
    }
    if w.platform_public_keys.is_empty() && !w.fetch_platform_certificates {
        return invalid(
            "wechatpay needs platform_public_keys or fetch_platform_certificates = true".into(),
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
    Ok(())
}

fn alipay(a: &AlipayConfig) -> Checked {
    if a.app_id.is_empty() || !a.app_id.bytes().all(|b| b.is_ascii_digit()) {
        return invalid("alipay.app_id must be digits".into());
    }
    Ok(())
}

fn events(events: &EventsConfig) -> Checked {
    let Some(url) = &events.url else {
        return Ok(());
    };
    let http = url::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !http {
        return invalid("events.url must be an http(s) URL".into());
    }
    if events.secret_file.is_none() {
        return invalid("events.url needs events.secret_file (the HMAC key)".into());
    }
    Ok(())
}

fn api_keys(keys: &[ApiKeyConfig]) -> Checked {
    let mut ids = HashSet::new();
    for key in keys {
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
    Ok(())
}

fn reconciliation(reconciliation: &ReconciliationConfig) -> Checked {
    if !MAX_BILL_BYTES_RANGE.contains(&reconciliation.max_bill_bytes) {
        return invalid(
            "reconciliation.max_bill_bytes must be between 1048576 (1 MiB) and 68719476736 (64 GiB)"
                .into(),
        );
    }
    Ok(())
}

fn privacy(p: &PrivacyConfig) -> Checked {
    for (name, days) in [
        ("idempotency_days", p.idempotency_days),
        ("events_days", p.events_days),
        ("access_resume_days", p.access_resume_days),
    ] {
        if !(1..=3650).contains(&days) {
            return invalid(format!("privacy.{name} must be between 1 and 3650"));
        }
    }
    Ok(())
}

fn checkout(checkout: &CheckoutConfig) -> Checked {
    for host in &checkout.allowed_return_hosts {
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
    Ok(())
}

/// `[sandbox]`: a test clock is shared with a simulator at `simulator_url`, and every provider
/// section must point at that simulator, so a test clock never runs against a real provider.
fn sandbox(config: &Config) -> Checked {
    let sandbox = &config.sandbox;
    if let Some(url) = &sandbox.simulator_url {
        match url::Url::parse(url) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none() => {}
            _ => {
                return invalid(format!(
                    "sandbox.simulator_url {url:?} must be an http(s) URL without query"
                ));
            }
        }
    }
    if !sandbox.test_clock {
        return Ok(());
    }
    let Some(base) = sandbox.simulator_base() else {
        return invalid(
            "sandbox.test_clock = true needs sandbox.simulator_url, the paygate-sandbox \
             (--test-clock) whose clock the gateway shares"
                .into(),
        );
    };
    let simulator = format!("{base}/sandbox/");
    let providers = [
        config
            .wechatpay
            .as_ref()
            .map(|w| ("wechatpay.api_base", &w.api_base)),
        config
            .alipay
            .as_ref()
            .map(|a| ("alipay.gateway_url", &a.gateway_url)),
    ];
    for (key, url) in providers.into_iter().flatten() {
        if !url.starts_with(&simulator) {
            return invalid(format!(
                "sandbox.test_clock = true: {key} {url:?} is not the simulator's ({simulator}…); \
                 a test clock never runs against a real provider"
            ));
        }
    }
    Ok(())
}
