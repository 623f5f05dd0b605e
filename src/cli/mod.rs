//! The command line (DESIGN.md §9). `main` parses and calls `run`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{Application, Options};
use crate::config::{ApiKeyConfig, Config};

mod console_user;

#[derive(Parser)]
#[command(
    name = "paygate",
    version,
    about = "Payments and order gateway of 职前通"
)]
pub struct Cli {
    /// The TOML config file (DESIGN.md §8); without one, every default applies.
    #[arg(long, global = true, env = "PAYGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Embed the provider simulator (generated keys) in place of [wechatpay]/[alipay].
        #[arg(long)]
        sandbox: bool,
        /// Sandbox only: divide the providers' callback retry delays by this.
        #[arg(long, default_value_t = 1)]
        sandbox_time_divisor: u32,
    },
    /// Run database migrations and exit.
    Migrate,
    /// Validate the config file and load every key it names, without starting anything.
    CheckConfig,
    /// One pass of the active query: pending orders older than 2 minutes are queried at their
    /// provider and settled if paid. Prints the pass as JSON.
    SyncPending,
    /// One pass of any lifecycle job, without the lease: active_query, expire, platform_keys,
    /// entitlement_expiry, refunds, events, erasure, retention. Prints the pass as JSON.
    RunJob { job: String },
    /// Reconcile one provider's bill of one Asia/Shanghai day (re-running a date replaces its
    /// result), as `POST /v1/reconciliations` does. Prints the run and its summary as JSON.
    Reconcile {
        #[arg(long)]
        provider: String,
        /// YYYY-MM-DD (Asia/Shanghai).
        #[arg(long)]
        date: String,
    },
    /// Refund AMOUNT (yuan, e.g. 50.00) of a paid order at its provider, as
    /// `POST /v1/orders/{order_no}/refunds` does. Prints the refund as JSON; a refund still
    /// `processing` is finished by the refund job of a running `serve`.
    Refund {
        order_no: String,
        amount: String,
        /// Shown to the buyer: a neutral text of at most 80 characters.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Key material for a new deployment (or the standalone sandbox).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// API keys for the platform's services.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Account deletions and retention (DESIGN.md §10).
    Privacy {
        #[command(subcommand)]
        command: PrivacyCommand,
    },
    /// A running gateway in sandbox mode (`serve --sandbox`, or `[sandbox] test_clock = true`),
    /// over HTTP (DESIGN.md §7).
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// The people who sign in to the console (`/console`).
    ConsoleUser {
        #[command(subcommand)]
        command: console_user::ConsoleUserCommand,
    },
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Show the test clock (`paygate sandbox clock`), or move it (`paygate sandbox clock
    /// advance 20m`). Prints the answer as JSON.
    Clock {
        /// The gateway's URL; by default `[server] public_url`, else `http://{listen}`.
        #[arg(long, global = true)]
        url: Option<String>,
        #[command(subcommand)]
        command: Option<ClockCommand>,
    },
}

#[derive(Subcommand)]
enum ClockCommand {
    /// Move the clock forward by BY (`20m`, `31d`, `1d12h`, `PT15M`) or to `--to` (RFC 3339),
    /// running every job that became due on the way, in time order.
    Advance {
        #[arg(required_unless_present = "to")]
        by: Option<String>,
        /// The time to move to, e.g. 2026-12-08T10:31:00+08:00.
        #[arg(long, conflicts_with = "by")]
        to: Option<String>,
    },
}

#[derive(Subcommand)]
enum PrivacyCommand {
    /// Record an erasure request for employer ID and carry it out at once, as the `erasure`
    /// job would. Prints the request as JSON (its pseudonym, never the id).
    EraseEmployer { employer_id: String },
    /// Delete what is past its [privacy] retention. Prints the counts as JSON.
    Retention {
        /// Only count what would go; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write merchant key pairs and an APIv3 key into DIR.
    Generate {
        dir: PathBuf,
        #[arg(long, default_value = crate::embedded::SANDBOX_MCHID)]
        mchid: String,
        #[arg(long, default_value = crate::embedded::SANDBOX_APPID)]
        appid: String,
        #[arg(long, default_value = "2021000000000000")]
        alipay_app_id: String,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Print a new secret once, and its [[api_keys]] entry.
    Create {
        /// Comma-separated: checkout, entitlements, finance, privacy.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long, default_value = "checkout-service")]
        id: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            sandbox,
            sandbox_time_divisor,
        } => serve(cli.config, sandbox, sandbox_time_divisor).await,
        Command::Migrate => migrate(cli.config).await,
        Command::SyncPending => run_job(cli.config, crate::jobs::Job::ActiveQuery).await,
        Command::RunJob { job } => {
            let job = crate::jobs::Job::ALL
                .into_iter()
                .find(|j| j.name() == job)
                .with_context(|| format!("no job {job:?}"))?;
            run_job(cli.config, job).await
        }
        Command::Refund {
            order_no,
            amount,
            reason,
        } => refund(cli.config, &order_no, &amount, reason).await,
        Command::Reconcile { provider, date } => reconcile(cli.config, &provider, &date).await,
        Command::CheckConfig => check_config(cli.config),
        Command::Keys {
            command:
                KeysCommand::Generate {
                    dir,
                    mchid,
                    appid,
                    alipay_app_id,
                },
        } => generate_keys(&dir, &mchid, &appid, &alipay_app_id),
        Command::Privacy {
            command: PrivacyCommand::EraseEmployer { employer_id },
        } => erase_employer(cli.config, &employer_id).await,
        Command::Privacy {
            command: PrivacyCommand::Retention { dry_run },
        } => {
            let app = one_shot(cli.config).await?;
            let deps = app.state().retention();
            let report = crate::privacy::retention::run(&deps, dry_run).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::ApiKey {
            command: ApiKeyCommand::Create { scopes, id },
        } => create_api_key(&id, &scopes),
        Command::Sandbox {
            command: SandboxCommand::Clock { url, command },
        } => sandbox_clock(cli.config, url, command).await,
        Command::ConsoleUser { command } => {
            console_user::run(one_shot(cli.config).await?, command).await
        }
    }
}

/// `paygate sandbox clock [advance BY | advance --to TIME]`: the running gateway's test clock.
async fn sandbox_clock(
    config_path: Option<PathBuf>,
    url: Option<String>,
    command: Option<ClockCommand>,
) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let config = Config::load(config_path.as_deref())?;
            let listen: std::net::SocketAddr = config.server.listen.parse().with_context(|| {
                format!(
                    "[server] listen {:?} is not an address; give --url",
                    config.server.listen
                )
            })?;
            config.public_url(listen)
        }
    };
    let http = reqwest::Client::new();
    let request = match command {
        None => http.get(format!("{base}/sandbox/clock")),
        Some(ClockCommand::Advance { by, to }) => {
            let body = match (by, to) {
                (Some(by), None) => serde_json::json!({ "by": by }),
                (None, Some(to)) => serde_json::json!({ "to": to }),
                _ => anyhow::bail!("give BY or --to"),
            };
            http.post(format!("{base}/sandbox/clock/advance"))
                .json(&body)
        }
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("reaching the gateway at {base}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("reading the gateway's answer")?;
    if status == reqwest::StatusCode::NOT_FOUND {
        anyhow::bail!(
            "{base} has no test clock: is it `paygate serve --sandbox`, or a gateway with \
             [sandbox] test_clock = true? ({status})"
        );
    }
    if !status.is_success() {
        anyhow::bail!("the gateway answered {status}: {text}");
    }
    println!("{text}");
    Ok(())
}

/// `paygate migrate`: one connection, the migrations, nothing else.
async fn migrate(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path.as_deref())?;
    let db = crate::store::Db::connect(
        &config.database.url,
        1,
        crate::config::LimitsConfig::ms(config.limits.db_acquire_timeout_ms),
    )
    .await?;
    db.migrate().await?;
    println!("migrations applied");
    Ok(())
}

/// `paygate check-config`: the config validates and every key file it names loads.
fn check_config(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Config::load(config_path.as_deref())?;
    if let Some(w) = &config.wechatpay {
        crate::providers::wechatpay::WechatKeys::load(&config, w)?;
    }
    if let Some(a) = &config.alipay {
        crate::providers::alipay::AlipayKeys::load(&config, a)?;
    }
    crate::push::Pusher::load(&config)?;
    crate::privacy::PseudonymKey::load(&config, false)?;
    #[cfg(not(feature = "sandbox"))]
    if config.sandbox.test_clock {
        anyhow::bail!(
            "[sandbox] test_clock = true: this paygate was built without the sandbox (cargo \
             feature `sandbox`), so it has no test clock"
        );
    }
    let test_clock = match config.sandbox.simulator_base() {
        Some(url) if config.sandbox.test_clock => format!(", test clock shared with {url}"),
        _ => String::new(),
    };
    println!(
        "config ok: {} api key(s), {} plan(s), wechatpay {}, alipay {}{test_clock}",
        config.api_keys.len(),
        config.catalog()?.plans().len(),
        if config.wechatpay.is_some() {
            "on"
        } else {
            "off"
        },
        if config.alipay.is_some() { "on" } else { "off" },
    );
    Ok(())
}

/// `paygate keys generate DIR`: the files, then the config snippet that uses them.
fn generate_keys(dir: &Path, mchid: &str, appid: &str, alipay_app_id: &str) -> anyhow::Result<()> {
    let generated = crate::keygen::generate_keys(dir, mchid, appid, alipay_app_id)?;
    println!(
        "keys written to {}\n\n{}",
        dir.display(),
        generated.config_snippet
    );
    Ok(())
}

/// `paygate api-key create`: the secret, shown once, and its `[[api_keys]]` entry.
fn create_api_key(id: &str, scopes: &[String]) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let key = crate::keygen::create_api_key(id, scopes)?;
    println!(
        "secret (shown once): {}\n\n{}",
        key.secret.expose_secret(),
        key.entry_toml
    );
    Ok(())
}

/// Builds the gateway without serving (an unused loopback port) and runs one pass of `job`.
async fn run_job(config_path: Option<PathBuf>, job: crate::jobs::Job) -> anyhow::Result<()> {
    let app = one_shot(config_path).await?;
    let report = app.jobs().run_once(job).await?;
    println!("{report}");
    Ok(())
}

/// Builds the gateway without serving or scheduling (an unused loopback port), for the
/// one-shot commands.
async fn one_shot(config_path: Option<PathBuf>) -> anyhow::Result<Application> {
    let config = Config::load(config_path.as_deref())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // Without the `sandbox` feature these are all of Options' fields.
    #[cfg_attr(not(feature = "sandbox"), allow(clippy::needless_update))]
    let options = Options {
        clock: clock_of(&config, false),
        scheduler: false,
        ..Options::default()
    };
    Application::build(config, listener, options).await
}

/// The clock a command runs on: sandbox mode's test clock with `--sandbox` (shared with the
/// embedded simulator) or with `[sandbox] test_clock = true` (where a standalone simulator's
/// clock is; a one-shot command then runs at the simulated time too), else the system's,
/// which nothing moves.
fn clock_of(config: &Config, sandbox: bool) -> crate::clock::SharedClock {
    if sandbox || config.sandbox.test_clock {
        std::sync::Arc::new(crate::clock::TestClock::default())
    } else {
        std::sync::Arc::new(crate::clock::SystemClock)
    }
}

async fn reconcile(config_path: Option<PathBuf>, provider: &str, date: &str) -> anyhow::Result<()> {
    let provider = crate::domain::ProviderId::parse(provider)
        .with_context(|| format!("{provider:?} is not wechatpay or alipay"))?;
    let date = crate::domain::parse_date(date)
        .with_context(|| format!("{date:?} is not a date YYYY-MM-DD"))?;
    let app = one_shot(config_path).await?;
    let run = crate::reconcile::run(
        app.state().reconcile(&crate::domain::Actor::Cli),
        provider,
        date,
    )
    .await
    .context("reconciliation failed")?;
    println!("{}", crate::api::reconciliations::run_json(&run));
    Ok(())
}

/// `paygate refund`: the finance staff's way without an HTTP client. The same use case as the
/// API, without an idempotency key: each run is a new refund, so the command says what it did.
async fn refund(
    config_path: Option<PathBuf>,
    order_no: &str,
    amount: &str,
    reason: Option<String>,
) -> anyhow::Result<()> {
    let no = crate::domain::OrderNo::parse(order_no)
        .with_context(|| format!("{order_no:?} is not an order number"))?;
    let amount = crate::domain::Fen::parse_yuan(amount)
        .with_context(|| format!("{amount:?} is not an amount in yuan such as 50.00"))?;
    if let Some(r) = &reason
        && (r.chars().count() > 80 || r.chars().any(char::is_control) || r.trim().is_empty())
    {
        anyhow::bail!("--reason must be 1 to 80 printable characters");
    }
    let app = one_shot(config_path).await?;
    let refund = crate::refunds::start(
        &app.state().refunds(),
        &no,
        amount,
        reason,
        &crate::domain::Actor::Cli,
        None,
        |_| String::new(),
    )
    .await
    .context("refund refused")?;
    println!("{}", crate::api::refunds::refund_json(&refund));
    Ok(())
}

async fn serve(
    config_path: Option<PathBuf>,
    sandbox: bool,
    time_divisor: u32,
) -> anyhow::Result<()> {
    #[cfg(not(feature = "sandbox"))]
    if sandbox {
        anyhow::bail!(
            "this paygate was built without the embedded sandbox (cargo feature `sandbox`): \
             build it with the default features (`cargo build --release`), or run the standalone \
             simulator (`paygate-sandbox`) and point [wechatpay] and [alipay] at it"
        );
    }
    let mut config = Config::load(config_path.as_deref())?;
    let printed_key = if sandbox && config.api_keys.is_empty() {
        Some(sandbox_api_key(&mut config)?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    if sandbox && config.checkout.return_url.is_none() {
        sandbox_return_url(&mut config, listener.local_addr()?);
    }
    if !sandbox {
        // --sandbox brings its own providers and key; otherwise a gateway that would refuse
        // everything must not start silently.
        for warning in config.serve_warnings() {
            tracing::warn!("{warning}");
        }
    }
    let options = serve_options(sandbox, time_divisor, clock_of(&config, sandbox))?;
    let app = Application::build(config, listener, options).await?;
    let url = app.public_url().to_owned();
    tracing::info!(listen = %app.local_addr(), sandbox, "paygate listening");
    if let Some(key) = printed_key {
        print_sandbox_welcome(&url, &key);
    }
    if sandbox && app.state().config.console.enabled {
        let password = console_user::sandbox_demo(&app).await?;
        println!("Console: {url}/console — user demo, one-time password (shown once): {password}");
    }
    app.run_until(shutdown_signal()).await
}

/// `serve --sandbox` without `[[api_keys]]`: a first look needs a key, so one with every
/// scope is added to the config (its secret to be shown once).
fn sandbox_api_key(config: &mut Config) -> anyhow::Result<crate::keygen::NewApiKey> {
    let scopes: Vec<String> = crate::config::SCOPES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let key = crate::keygen::create_api_key("sandbox", &scopes)?;
    config.api_keys.push(ApiKeyConfig {
        id: "sandbox".into(),
        secret_sha256: key.secret_sha256.clone(),
        scopes,
    });
    Ok(key)
}

/// The sandbox's stand-in merchant page, so a person paying on a page/wap/h5 order is brought
/// back somewhere. Only when it is a valid return URL (http needs a loopback address: a
/// sandbox listening on 0.0.0.0 gets none).
fn sandbox_return_url(config: &mut Config, bound: std::net::SocketAddr) {
    let public_url = config.public_url(bound);
    config.checkout.return_url = crate::return_url::ReturnUrl::parse(&format!(
        "{public_url}/sandbox/return/{}",
        crate::return_url::PLACEHOLDER
    ))
    .ok();
}

/// The build options of `serve`: the embedded sandbox's generated keys with `--sandbox`, and
/// `clock` ([`clock_of`]).
fn serve_options(
    sandbox: bool,
    time_divisor: u32,
    clock: crate::clock::SharedClock,
) -> anyhow::Result<Options> {
    #[cfg(feature = "sandbox")]
    let options = Options {
        sandbox: if sandbox {
            Some(crate::app::SandboxSetup::generate(time_divisor)?)
        } else {
            None
        },
        clock,
        ..Options::default()
    };
    #[cfg(not(feature = "sandbox"))]
    let options = {
        let _ = (sandbox, time_divisor);
        Options {
            clock,
            ..Options::default()
        }
    };
    Ok(options)
}

/// What `serve --sandbox` prints once listening: the generated key and a first order.
fn print_sandbox_welcome(url: &str, key: &crate::keygen::NewApiKey) {
    use secrecy::ExposeSecret;
    println!("paygate with the embedded sandbox at {url}");
    println!(
        "API key (all scopes, shown once): {}",
        key.secret.expose_secret()
    );
    println!("Create an order:");
    println!(
        "  curl -s -X POST {url}/v1/orders -H 'Authorization: Bearer {}' -H 'Idempotency-Key: demo-1' \\\n    -H 'Content-Type: application/json' \\\n    -d '{{\"employer_id\":\"emp_42\",\"plan\":\"resume-download-50\",\"provider\":\"wechatpay\",\"channel\":\"native\"}}'",
        key.secret.expose_secret()
    );
    println!("Then open {url}/sandbox/cashier/<order_no> and press Pay.");
    println!(
        "Alipay page/wap and WeChat h5 orders send the browser back to [checkout] return_url after Pay \
         (by default {url}/sandbox/return/<order_no>)."
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `paygate privacy erase-employer ID`: the request is recorded (due in two working days, like
/// one made through the API) and carried out now.
async fn erase_employer(config_path: Option<PathBuf>, employer_id: &str) -> anyhow::Result<()> {
    let employer = crate::domain::EmployerId::parse(employer_id)
        .context("the employer id must be 1 to 64 characters of letters, digits and _-.:")?;
    let app = one_shot(config_path).await?;
    let state = app.state();
    let deps = state.erasures();
    let row = crate::privacy::request(&deps, &employer, &crate::domain::Actor::Cli, None, |_| {
        String::new()
    })
    .await?;
    let row = crate::privacy::carry_out(&deps, &row.erasure_id).await?;
    println!("{}", row.to_json());
    Ok(())
}
