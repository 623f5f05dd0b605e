//! Builds the whole gateway from a config and a listener: what `serve` runs and what the
//! integration tests start on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use paygate_sandbox::{AlipaySandboxConfig, Sandbox, SandboxConfig, WechatSandboxConfig};
use tokio::net::TcpListener;

use crate::api::auth::ApiKeys;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{AlipayConfig, Config, LimitsConfig, WechatPayConfig};
use crate::domain::Catalog;
use crate::jobs::Runner;
use crate::providers::Registry;
use crate::providers::alipay::{Alipay, AlipayKeys};
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
    /// The event push, when `[events] url` is set.
    pub pusher: Option<Arc<crate::push::Pusher>>,
    /// Requests per API key and per webhook source address (`[limits]`).
    pub rate_limits: Arc<crate::edge::RateLimits>,
    /// The key of erased employers' pseudonyms (`[privacy]`); None: erasures are refused.
    pub pseudonym_key: Option<Arc<crate::privacy::PseudonymKey>>,
    /// How `Idempotency-Key`s are stored: keyed hashes (`[privacy]`), never text.
    pub idempotency_keys: Arc<crate::privacy::idempotency_keys::IdempotencyKeys>,
}

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

pub const SANDBOX_MCHID: &str = "1900000001";
pub const SANDBOX_APPID: &str = "wx8888888888888888";
pub const SANDBOX_MERCHANT_SERIAL: &str = "5A3B1C0D9E8F7A6B5C4D3E2F1A0B9C8D7E6F5A4B";
pub const SANDBOX_ALIPAY_APP_ID: &str = "2021000000000001";
pub const SANDBOX_ALIPAY_SELLER_ID: &str = "2088000000000001";

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

pub struct Options {
    pub clock: SharedClock,
    pub sandbox: Option<SandboxSetup>,
    /// Run the lifecycle jobs on their schedule (`serve`); tests run passes themselves.
    pub scheduler: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            sandbox: None,
            scheduler: true,
        }
    }
}

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    public_url: String,
    state: AppState,
    sandbox: Option<Sandbox>,
    scheduler: bool,
}

impl Application {
    pub async fn build(
        mut config: Config,
        listener: TcpListener,
        options: Options,
    ) -> anyhow::Result<Application> {
        let addr = listener.local_addr()?;
        crate::telemetry::install();
        let public_url = config.public_url(addr);
        let limits = &config.limits;
        let db = Db::connect(
            &config.database.url,
            config.database.max_connections,
            LimitsConfig::ms(limits.db_acquire_timeout_ms),
        )
        .await
        .with_context(|| "connecting to the database (database.url)")?;
        db.migrate().await.context("running migrations")?;

        let http = reqwest::Client::builder()
            .connect_timeout(LimitsConfig::ms(limits.provider_connect_timeout_ms))
            .timeout(LimitsConfig::ms(limits.provider_timeout_ms))
            .build()?;
        let catalog = config.catalog()?;
        let mut providers = Registry::default();
        let mut sandbox = None;
        let pseudonym_key =
            crate::privacy::PseudonymKey::load(&config, options.sandbox.is_some())?.map(Arc::new);
        // Only a key from the file keys the stored Idempotency-Keys: a sandbox's generated one
        // changes at every start, and stored keys must match across restarts and instances.
        let idempotency_keys = crate::privacy::idempotency_keys::IdempotencyKeys::new(
            pseudonym_key
                .as_deref()
                .filter(|_| config.privacy.pseudonym_key_file.is_some()),
        );
        if config.privacy.pseudonym_key_file.is_none() {
            tracing::warn!(
                "no [privacy] pseudonym_key_file: Idempotency-Keys are stored as unkeyed hashes \
                 (no text, but a guessed key can be confirmed by hashing it)"
            );
        }
        idempotency_keys
            .refresh(&db)
            .await
            .context("reading the idempotency table")?;
        if let Some(setup) = options.sandbox {
            // --sandbox replaces the provider sections with the embedded simulator.
            let embedded = embedded_sandbox(&setup, &public_url, &options.clock)?;
            providers.register(Arc::new(WechatPay::new(
                &embedded.wechatpay,
                embedded.wechat_keys,
                &public_url,
                http.clone(),
                options.clock.clone(),
            )));
            providers.register(Arc::new(Alipay::new(
                &embedded.alipay,
                embedded.alipay_keys,
                &public_url,
                http.clone(),
                options.clock.clone(),
            )));
            config.wechatpay = Some(embedded.wechatpay);
            config.alipay = Some(embedded.alipay);
            sandbox = Some(embedded.sandbox);
        } else {
            if let Some(w) = &config.wechatpay {
                let keys = WechatKeys::load(&config, w)?;
                providers.register(Arc::new(WechatPay::new(
                    w,
                    keys,
                    &public_url,
                    http.clone(),
                    options.clock.clone(),
                )));
            }
            if let Some(a) = &config.alipay {
                let keys = AlipayKeys::load(&config, a)?;
                providers.register(Arc::new(Alipay::new(
                    a,
                    keys,
                    &public_url,
                    http.clone(),
                    options.clock.clone(),
                )));
            }
        }

        let pusher = crate::push::Pusher::load(&config)?.map(Arc::new);
        let state = AppState {
            pusher,
            rate_limits: Arc::new(crate::edge::RateLimits::new(&config.limits)),
            pseudonym_key,
            idempotency_keys: Arc::new(idempotency_keys),
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
            scheduler: options.scheduler,
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

    /// A job runner over this instance's state (its own lease holder name).
    pub fn jobs(&self) -> Runner {
        Runner::new(self.state.clone())
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
        let router = router
            .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span));
        let scheduled = if self.scheduler {
            Some(Runner::new(self.state.clone()).start().await?)
        } else {
            None
        };
        let limits = self.state.config.limits.clone();
        // Rate-limit state of keys and addresses idle for a second is forgotten every minute.
        let rate_limits = self.state.rate_limits.clone();
        let shrink = tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                rate_limits.shrink();
            }
        });
        // `wait=` learns of changes made by other instances from this one re-read.
        let reread = tokio::spawn(crate::order_watch::reread_loop(self.state.db.clone()));
        let served = crate::edge::serve(self.listener, router, &limits, shutdown).await;
        shrink.abort();
        reread.abort();
        if let Some(scheduled) = scheduled {
            scheduled.shutdown().await?;
        }
        // Every write queued for the writer finishes and commits before the connections close.
        self.state.db.close().await;
        Ok(served?)
    }
}

/// The span of one request: its method and route template (`/v1/employers/{employer_id}/…`),
/// never the raw URI, whose path may name an employer and whose query anything (issue 11:
/// no employer id, résumé id, openid or IP in request-path spans at any level).
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)
        .unwrap_or("(unmatched)");
    tracing::debug_span!("request", method = %request.method(), route)
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
    // The simulator reads the gateway's clock: tests that move time move both sides.
    let sandbox_clock = {
        let clock = clock.clone();
        Arc::new(move || clock.now())
    };
    let alipay_app = paygate_alipay::Signer::from_pem_or_base64(&setup.alipay_app_private_key_pem)?;
    let sandbox = Sandbox::new(SandboxConfig {
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
    })?;

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
    Ok(EmbeddedSandbox {
        sandbox,
        wechatpay,
        wechat_keys,
        alipay,
        alipay_keys,
    })
}
