//! Builds the whole gateway from a config and a listener: what `serve` runs and what the
//! integration tests start on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api_keys::ApiKeys;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, LimitsConfig};
use crate::jobs::Runner;
use crate::providers::Registry;
use crate::providers::alipay::{Alipay, AlipayKeys};
use crate::providers::wechatpay::{WechatKeys, WechatPay};
use crate::store::Db;

use crate::state::AppState;

#[cfg(feature = "sandbox")]
pub use crate::embedded::SandboxSetup;
pub use crate::embedded::{
    SANDBOX_ALIPAY_APP_ID, SANDBOX_ALIPAY_SELLER_ID, SANDBOX_APPID, SANDBOX_MCHID,
    SANDBOX_MERCHANT_SERIAL,
};

pub struct Options {
    pub clock: SharedClock,
    /// `serve --sandbox`: the embedded simulator replaces the provider sections.
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<SandboxSetup>,
    /// Run the lifecycle jobs on their schedule (`serve`); tests run passes themselves.
    pub scheduler: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: Arc::new(SystemClock),
            #[cfg(feature = "sandbox")]
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
    #[cfg(feature = "sandbox")]
    sandbox: Option<paygate_sandbox::Sandbox>,
    scheduler: bool,
}

impl Application {
    pub async fn build(
        #[cfg_attr(not(feature = "sandbox"), allow(unused_mut))] mut config: Config,
        listener: TcpListener,
        options: Options,
    ) -> anyhow::Result<Application> {
        let addr = listener.local_addr()?;
        crate::telemetry::install();
        let public_url = config.public_url(addr);
        let db = connect(&config).await?;
        let http = provider_http(&config.limits)?;
        let catalog = config.catalog()?;
        let mut providers = Registry::default();
        #[cfg(feature = "sandbox")]
        let sandbox_setup = options.sandbox;
        #[cfg(feature = "sandbox")]
        let sandbox_mode = sandbox_setup.is_some();
        #[cfg(not(feature = "sandbox"))]
        let sandbox_mode = false;
        let (pseudonym_key, idempotency_keys) = privacy_keys(&config, sandbox_mode, &db).await?;
        #[cfg(feature = "sandbox")]
        let sandbox = match sandbox_setup {
            // --sandbox replaces the provider sections with the embedded simulator.
            Some(setup) => Some(crate::embedded::attach(
                &setup,
                &mut config,
                &mut providers,
                &public_url,
                &http,
                &options.clock,
            )?),
            None => None,
        };
        test_clock_mode(&config, &options.clock, sandbox_mode).await?;
        if !sandbox_mode {
            register_configured(&config, &mut providers, &public_url, &http, &options.clock)?;
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
            #[cfg(feature = "sandbox")]
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

    #[cfg(feature = "sandbox")]
    pub fn sandbox(&self) -> Option<&paygate_sandbox::Sandbox> {
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
        if let Some(console) = crate::console::router(&self.state, &self.public_url) {
            router = router.merge(console);
        }
        #[cfg(feature = "sandbox")]
        {
            if let Some(sim) = &self.sandbox {
                router = router.merge(sim.router());
            }
            // Only on a test clock, which `build` allows in sandbox mode only.
            if let Some(clock) = crate::test_clock::routes(&self.state)? {
                router = router.merge(clock);
            }
        }
        #[cfg(feature = "sandbox")]
        let router = crate::test_clock::stamped(router, &self.state.clock);
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
        let reread = tokio::spawn(crate::store::reread::reread_loop(self.state.db.clone()));
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

/// Sandbox mode's test clock (DESIGN.md §7) is allowed in two modes only: `serve --sandbox`
/// (the embedded simulator reads it) and `[sandbox] test_clock = true` beside a standalone
/// simulator, whose clock it joins here. A test clock anywhere else, or that config without a
/// test clock, is refused: outside these modes the clock is the system's and nothing moves it.
async fn test_clock_mode(
    config: &Config,
    clock: &SharedClock,
    embedded_sandbox: bool,
) -> anyhow::Result<()> {
    let beside_simulator = config.sandbox.test_clock && !embedded_sandbox;
    if clock.as_test_clock().is_some() && !embedded_sandbox && !beside_simulator {
        anyhow::bail!(
            "a test clock is for sandbox mode only (`serve --sandbox`, or [sandbox] test_clock \
             = true beside a standalone simulator)"
        );
    }
    if !beside_simulator {
        return Ok(());
    }
    #[cfg(feature = "sandbox")]
    {
        crate::test_clock::join_simulator(config, clock).await
    }
    #[cfg(not(feature = "sandbox"))]
    {
        anyhow::bail!(
            "[sandbox] test_clock = true: this paygate was built without the sandbox (cargo \
             feature `sandbox`), so it has no test clock; build it with the default features"
        )
    }
}

/// The database of `[database]`, migrated.
async fn connect(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(
        &config.database.url,
        config.database.max_connections,
        LimitsConfig::ms(config.limits.db_acquire_timeout_ms),
    )
    .await
    .with_context(|| "connecting to the database (database.url)")?;
    db.migrate().await.context("running migrations")?;
    Ok(db)
}

/// The HTTP client of every provider call, with `[limits]`' connect and call timeouts.
fn provider_http(limits: &LimitsConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(LimitsConfig::ms(limits.provider_connect_timeout_ms))
        .timeout(LimitsConfig::ms(limits.provider_timeout_ms))
        .build()?)
}

/// The erasure pseudonym key (`[privacy]`; generated in sandbox mode when unset) and how
/// `Idempotency-Key`s are stored, the latter with the stored forms read from `db`.
async fn privacy_keys(
    config: &Config,
    sandbox_mode: bool,
    db: &Db,
) -> anyhow::Result<(
    Option<Arc<crate::privacy::PseudonymKey>>,
    crate::privacy::idempotency_keys::IdempotencyKeys,
)> {
    let pseudonym_key = crate::privacy::PseudonymKey::load(config, sandbox_mode)?.map(Arc::new);
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
        .refresh(db)
        .await
        .context("reading the idempotency table")?;
    Ok((pseudonym_key, idempotency_keys))
}

/// Registers the providers whose sections are configured, their keys read from their files.
fn register_configured(
    config: &Config,
    providers: &mut Registry,
    public_url: &str,
    http: &reqwest::Client,
    clock: &SharedClock,
) -> anyhow::Result<()> {
    if let Some(w) = &config.wechatpay {
        let keys = WechatKeys::load(config, w)?;
        providers.register(Arc::new(WechatPay::new(
            w,
            keys,
            public_url,
            http.clone(),
            clock.clone(),
        )));
    }
    if let Some(a) = &config.alipay {
        let keys = AlipayKeys::load(config, a)?;
        providers.register(Arc::new(Alipay::new(
            a,
            keys,
            public_url,
            http.clone(),
            clock.clone(),
        )));
    }
    Ok(())
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
