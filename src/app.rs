//! Builds the whole gateway from a config and a listener: what `serve` runs and what the
//! integration tests start on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use paygate_sandbox::{Sandbox, SandboxConfig, WechatSandboxConfig};
use tokio::net::TcpListener;

use crate::api::auth::ApiKeys;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, WechatPayConfig};
use crate::domain::Catalog;
use crate::providers::Registry;
use crate::providers::wechatpay::{WechatKeys, WechatPay};
use crate::store::Db;

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub providers: Arc<Registry>,
    pub api_keys: Arc<ApiKeys>,
    pub clock: SharedClock,
}

/// Key material for the embedded sandbox: the merchant side the gateway signs with and the
/// platform side the simulator signs with. Generated at start, or fixtures in tests.
pub struct SandboxSetup {
    pub merchant_private_key_pem: String,
    pub merchant_public_key_pem: String,
    pub platform_private_key_pem: String,
    pub apiv3_key: String,
    /// Callback retry delays are divided by this.
    pub time_divisor: u32,
}

pub const SANDBOX_MCHID: &str = "1900000001";
pub const SANDBOX_APPID: &str = "wx8888888888888888";
pub const SANDBOX_MERCHANT_SERIAL: &str = "5A3B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B";

impl SandboxSetup {
    pub fn generate(time_divisor: u32) -> anyhow::Result<SandboxSetup> {
        let (merchant_private_key_pem, merchant_public_key_pem) =
            paygate_wechatpay::generate_key_pair()?;
        let (platform_private_key_pem, _) = paygate_wechatpay::generate_key_pair()?;
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
            time_divisor,
        })
    }
}

pub struct Options {
    pub clock: SharedClock,
    pub sandbox: Option<SandboxSetup>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            sandbox: None,
        }
    }
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    public_url: String,
    state: AppState,
    sandbox: Option<Sandbox>,
}

impl Application {
    pub async fn build(
        mut config: Config,
        listener: TcpListener,
        options: Options,
    ) -> anyhow::Result<Application> {
        let addr = listener.local_addr()?;
        let public_url = config.public_url(addr);
        let db = Db::connect(&config.database.url, config.database.max_connections)
            .await
            .with_context(|| "connecting to the database (database.url)")?;
        db.migrate().await.context("running migrations")?;

        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()?;
        let catalog = config.catalog()?;
        let mut providers = Registry::default();
        let mut sandbox = None;
        if let Some(setup) = options.sandbox {
            // --sandbox replaces the provider sections with the embedded simulator.
            let sim = Sandbox::new(SandboxConfig {
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
            })?;
            let wechat = WechatPayConfig {
                api_base: format!("{public_url}/sandbox/wechatpay"),
                mchid: SANDBOX_MCHID.into(),
                appid: SANDBOX_APPID.into(),
                merchant_serial: SANDBOX_MERCHANT_SERIAL.into(),
                merchant_private_key_file: "(generated)".into(),
                apiv3_key_file: "(generated)".into(),
                platform_public_keys: vec![],
                fetch_platform_certificates: false,
            };
            let mut platform = paygate_wechatpay::PlatformKeys::new();
            platform.insert(
                sim.wechat_platform_key_id(),
                paygate_wechatpay::Verifier::from_pem(&sim.wechat_platform_public_key_pem())?,
            );
            let keys = WechatKeys {
                signer: paygate_wechatpay::Signer::from_pem(&setup.merchant_private_key_pem)?,
                apiv3_key: paygate_wechatpay::ApiV3Key::new(setup.apiv3_key.as_bytes())
                    .map_err(|_| anyhow::anyhow!("sandbox APIv3 key must be 32 bytes"))?,
                platform,
            };
            providers.register(Arc::new(WechatPay::new(
                &wechat,
                keys,
                &public_url,
                http.clone(),
                options.clock.clone(),
            )));
            config.wechatpay = Some(wechat);
            config.alipay = None;
            sandbox = Some(sim);
        } else if let Some(w) = &config.wechatpay {
            let keys = WechatKeys::load(&config, w)?;
            providers.register(Arc::new(WechatPay::new(
                w,
                keys,
                &public_url,
                http.clone(),
                options.clock.clone(),
            )));
        }
        if config.alipay.is_some() && sandbox.is_none() {
            tracing::warn!("[alipay] is configured but this build does not take Alipay orders yet");
        }

        let state = AppState {
            api_keys: Arc::new(ApiKeys::new(&config.api_keys)),
            config: Arc::new(config),
            db,
            catalog: Arc::new(catalog),
            providers: Arc::new(providers),
            clock: options.clock,
        };
        Ok(Application {
            listener,
            addr,
            public_url,
            state,
            sandbox,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let mut router = crate::api::router(self.state.clone());
        if let Some(sim) = &self.sandbox {
            router = router.merge(sim.router());
        }
        let router = router.layer(tower_http::trace::TraceLayer::new_for_http());
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}
