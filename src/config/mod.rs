//! Configuration (DESIGN.md §8): a TOML file, every key overridable by
//! `PAYGATE_<SECTION>__<KEY>`, unknown keys rejected, key material read from named files.
//!
//! A facade: `sections.rs` (the sections and what is derived from them), `limits.rs`
//! (`[limits]`), `load.rs` (file, overrides), `validate.rs` (one validator per section),
//! `error.rs` (`ConfigError`).

mod error;
mod limits;
mod load;
mod sections;
mod validate;

pub use error::ConfigError;
pub use limits::LimitsConfig;
pub use sections::{
    AlipayConfig, ApiKeyConfig, CheckoutConfig, Config, ConsoleConfig, DEFAULT_MAX_BILL_BYTES,
    DatabaseConfig, EventsConfig, MAX_BILL_BYTES_RANGE, OrdersConfig, PlanConfig,
    PlatformKeyConfig, PrivacyConfig, ReconciliationConfig, SCOPES, SESSION_IDLE_MINUTES_RANGE,
    SandboxConfig, ServerConfig, WechatPayConfig,
};

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

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
    fn a_test_clock_beside_a_simulator_needs_its_url_and_providers_pointed_at_it() {
        let c = load("", &[]).unwrap();
        assert!(!c.sandbox.test_clock, "off unless asked for");
        let wechat = |base: &str| {
            format!(
                "[wechatpay]\napi_base = \"{base}\"\nmchid = \"1900000001\"\nappid = \"wx1\"\n\
                 merchant_serial = \"AB\"\nmerchant_private_key_file = \"k\"\n\
                 apiv3_key_file = \"v\"\nfetch_platform_certificates = true\n"
            )
        };
        let beside = "[sandbox]\ntest_clock = true\nsimulator_url = \"http://127.0.0.1:9090/\"\n";
        let c = load(
            &format!(
                "{beside}{}",
                wechat("http://127.0.0.1:9090/sandbox/wechatpay")
            ),
            &[],
        )
        .unwrap();
        assert!(c.sandbox.test_clock);
        assert_eq!(c.sandbox.simulator_base(), Some("http://127.0.0.1:9090"));
        // The environment turns it on, as any key.
        let c = load(
            "[sandbox]\nsimulator_url = \"http://127.0.0.1:9090\"",
            &[("PAYGATE_SANDBOX__TEST_CLOCK", "true")],
        )
        .unwrap();
        assert!(c.sandbox.test_clock);
        for bad in [
            // No simulator to share the clock with.
            "[sandbox]\ntest_clock = true".to_owned(),
            // A test clock against the real WeChat Pay: never.
            format!("{beside}{}", wechat("https://api.mch.weixin.qq.com")),
            format!(
                "{beside}{}",
                wechat("http://127.0.0.1:9091/sandbox/wechatpay")
            ),
            "[sandbox]\ntest_clock = true\nsimulator_url = \"ftp://127.0.0.1:9090\"".to_owned(),
            "[sandbox]\ntest_clock = true\nsimulator_url = \"http://127.0.0.1:9090/?x=1\""
                .to_owned(),
        ] {
            assert!(
                matches!(load(&bad, &[]), Err(ConfigError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            load("[sandbox]\ntest_clok = true", &[]),
            Err(ConfigError::Parse(_))
        ));
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
