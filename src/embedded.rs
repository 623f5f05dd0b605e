//! The embedded simulator of `serve --sandbox` (cargo feature `sandbox`, on by default): key
//! material, the simulator itself, and the provider sections and keys that point the gateway
//! at it. A build without the feature (`--no-default-features`) has no simulator linked in;
//! only the sandbox merchant's identities stay (keygen's defaults).

#[cfg(feature = "sandbox")]
pub use simulator::*;

/// The identities of the sandbox's merchant (also keygen's defaults).
pub const SANDBOX_MCHID: &str = "1900000001";
pub const SANDBOX_APPID: &str = "wx8888888888888888";
pub const SANDBOX_MERCHANT_SERIAL: &str = "5A3B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B";
pub const SANDBOX_ALIPAY_APP_ID: &str = "2021000000000001";
pub const SANDBOX_ALIPAY_SELLER_ID: &str = "2088000000000001";

#[cfg(feature = "sandbox")]
mod simulator {
    use std::sync::Arc;

    use paygate_sandbox::{AlipaySandboxConfig, Sandbox, SandboxConfig, WechatSandboxConfig};

    use super::{
        SANDBOX_ALIPAY_APP_ID, SANDBOX_ALIPAY_SELLER_ID, SANDBOX_APPID, SANDBOX_MCHID,
        SANDBOX_MERCHANT_SERIAL,
    };
    use crate::clock::SharedClock;
    use crate::config::{AlipayConfig, Config, WechatPayConfig};
    use crate::providers::Registry;
    use crate::providers::alipay::{Alipay, AlipayKeys};
    use crate::providers::wechatpay::{WechatKeys, WechatPay};

    /// Key material for the embedded sandbox: the merchant side the gateway signs with and the
    /// platform side the simulator signs with. Generated at start, or fixtures in tests.
    pub struct SandboxSetup {
        pub merchant_private_key_pem: String,
        pub merchant_public_key_pem: String,
        pub platform_private_key_pem: String,
        pub apiv3_key: String,
        /// The Alipay app key the gateway signs requests with (its public half goes to the sandbox).
        pub alipay_app_private_key_pem: String,
        /// The sandbox's Alipay key: signs its answers and notifications.
        pub alipay_private_key_pem: String,
        /// Callback retry delays are divided by this.
        pub time_divisor: u32,
        /// WeChat Pay platform certificate mode: the sandbox signs with certificates and the
        /// gateway fetches them from `/v3/certificates` (`fetch_platform_certificates = true`)
        /// instead of trusting the `PUB_KEY_ID` public key.
        pub wechat_certificate_mode: bool,
    }

    impl SandboxSetup {
        pub fn generate(time_divisor: u32) -> anyhow::Result<SandboxSetup> {
            let (merchant_private_key_pem, merchant_public_key_pem) =
                paygate_wechatpay::generate_key_pair()?;
            let (platform_private_key_pem, _) = paygate_wechatpay::generate_key_pair()?;
            use secrecy::ExposeSecret;
            let (alipay_app, _) = paygate_alipay::generate_key_pair()?;
            let (alipay_platform, _) = paygate_alipay::generate_key_pair()?;
            use rand::Rng;
            const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
            let mut rng = rand::rng();
            let apiv3_key = (0..32)
                .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
                .collect();
            Ok(SandboxSetup {
                merchant_private_key_pem,
                merchant_public_key_pem,
                platform_private_key_pem,
                apiv3_key,
                alipay_app_private_key_pem: alipay_app.expose_secret().to_owned(),
                alipay_private_key_pem: alipay_platform.expose_secret().to_owned(),
                time_divisor,
                wechat_certificate_mode: false,
            })
        }
    }

    /// Starts the simulator, registers both providers pointed at it and replaces the config's
    /// provider sections with theirs (so what the gateway reports is what it uses); a
    /// `[sandbox]` section, for a standalone simulator, goes.
    pub(crate) fn attach(
        setup: &SandboxSetup,
        config: &mut Config,
        providers: &mut Registry,
        public_url: &str,
        http: &reqwest::Client,
        clock: &SharedClock,
    ) -> anyhow::Result<Sandbox> {
        let embedded = embedded_sandbox(setup, public_url, clock)?;
        providers.register(Arc::new(WechatPay::new(
            &embedded.wechatpay,
            embedded.wechat_keys,
            public_url,
            http.clone(),
            clock.clone(),
        )));
        providers.register(Arc::new(Alipay::new(
            &embedded.alipay,
            embedded.alipay_keys,
            public_url,
            http.clone(),
            clock.clone(),
        )));
        config.wechatpay = Some(embedded.wechatpay);
        config.alipay = Some(embedded.alipay);
        if config.sandbox.test_clock {
            tracing::warn!(
                "[sandbox] test_clock is for a standalone simulator; --sandbox embeds one on the \
                 test clock already, and the section is ignored"
            );
        }
        config.sandbox = crate::config::SandboxConfig::default();
        Ok(embedded.sandbox)
    }

    /// The embedded simulator and the provider sections and keys that point the gateway at it.
    struct EmbeddedSandbox {
        sandbox: Sandbox,
        wechatpay: WechatPayConfig,
        wechat_keys: WechatKeys,
        alipay: AlipayConfig,
        alipay_keys: AlipayKeys,
    }

    fn embedded_sandbox(
        setup: &SandboxSetup,
        public_url: &str,
        clock: &SharedClock,
    ) -> anyhow::Result<EmbeddedSandbox> {
        let alipay_app =
            paygate_alipay::Signer::from_pem_or_base64(&setup.alipay_app_private_key_pem)?;
        let sandbox = new_simulator(setup, clock, &alipay_app)?;
        let (wechatpay, wechat_keys) = wechat_half(setup, public_url, &sandbox)?;
        let (alipay, alipay_keys) = alipay_half(public_url, &sandbox, alipay_app)?;
        Ok(EmbeddedSandbox {
            sandbox,
            wechatpay,
            wechat_keys,
            alipay,
            alipay_keys,
        })
    }

    /// The simulator of both providers, as the sandbox merchant's counterpart.
    fn new_simulator(
        setup: &SandboxSetup,
        clock: &SharedClock,
        alipay_app: &paygate_alipay::Signer,
    ) -> anyhow::Result<Sandbox> {
        // The simulator reads the gateway's clock: tests that move time move both sides.
        let sandbox_clock = {
            let clock = clock.clone();
            Arc::new(move || clock.now())
        };
        Sandbox::new(SandboxConfig {
            wechatpay: WechatSandboxConfig {
                mchid: SANDBOX_MCHID.into(),
                appid: SANDBOX_APPID.into(),
                merchant_serial: SANDBOX_MERCHANT_SERIAL.into(),
                merchant_public_key_pem: setup.merchant_public_key_pem.clone(),
                apiv3_key: setup.apiv3_key.clone(),
                platform_private_key_pem: setup.platform_private_key_pem.clone(),
                platform_key_id: paygate_sandbox::keys_dir::new_platform_key_id(),
            },
            time_divisor: setup.time_divisor,
            clock: sandbox_clock,
        })?
        .with_alipay(AlipaySandboxConfig {
            app_id: SANDBOX_ALIPAY_APP_ID.into(),
            app_public_key_pem: alipay_app.public_key_pem(),
            alipay_private_key_pem: setup.alipay_private_key_pem.clone(),
            seller_id: SANDBOX_ALIPAY_SELLER_ID.into(),
        })
    }

    /// `[wechatpay]` pointed at the simulator, and the merchant's keys and trusted platform key
    /// (none up front in certificate mode: they come from /v3/certificates once serving).
    fn wechat_half(
        setup: &SandboxSetup,
        public_url: &str,
        sandbox: &Sandbox,
    ) -> anyhow::Result<(WechatPayConfig, WechatKeys)> {
        let wechatpay = WechatPayConfig {
            api_base: format!("{public_url}/sandbox/wechatpay"),
            mchid: SANDBOX_MCHID.into(),
            appid: SANDBOX_APPID.into(),
            merchant_serial: SANDBOX_MERCHANT_SERIAL.into(),
            merchant_private_key_file: "(generated)".into(),
            apiv3_key_file: "(generated)".into(),
            platform_public_keys: vec![],
            fetch_platform_certificates: setup.wechat_certificate_mode,
        };
        let mut platform = paygate_wechatpay::PlatformKeys::new();
        if setup.wechat_certificate_mode {
            // Nothing trusted up front: the keys come from /v3/certificates once serving.
            sandbox.use_wechat_platform_certificates();
        } else {
            platform.insert(
                sandbox.wechat_platform_key_id(),
                paygate_wechatpay::Verifier::from_pem(&sandbox.wechat_platform_public_key_pem())?,
            );
        }
        let wechat_keys = WechatKeys {
            signer: paygate_wechatpay::Signer::from_pem(&setup.merchant_private_key_pem)?,
            apiv3_key: paygate_wechatpay::ApiV3Key::new(setup.apiv3_key.as_bytes())
                .map_err(|_| anyhow::anyhow!("sandbox APIv3 key must be 32 bytes"))?,
            platform,
        };
        Ok((wechatpay, wechat_keys))
    }

    /// `[alipay]` pointed at the simulator, with the app's key and the simulator's public key.
    fn alipay_half(
        public_url: &str,
        sandbox: &Sandbox,
        alipay_app: paygate_alipay::Signer,
    ) -> anyhow::Result<(AlipayConfig, AlipayKeys)> {
        let alipay = AlipayConfig {
            gateway_url: format!("{public_url}/sandbox/alipay/gateway.do"),
            app_id: SANDBOX_ALIPAY_APP_ID.into(),
            app_private_key_file: "(generated)".into(),
            alipay_public_key_file: "(generated)".into(),
            seller_id: Some(SANDBOX_ALIPAY_SELLER_ID.into()),
        };
        let alipay_public_key = sandbox
            .alipay_public_key_pem()
            .ok_or_else(|| anyhow::anyhow!("the sandbox's Alipay half is configured above"))?;
        let alipay_keys = AlipayKeys {
            signer: alipay_app,
            alipay_public_key: paygate_alipay::Verifier::from_pem_or_base64(&alipay_public_key)?,
        };
        Ok((alipay, alipay_keys))
    }
}
