//! `paygate-sandbox`: the WeChat Pay and Alipay simulator on its own port.
//!
//! ```text
//! paygate keys generate keys          # the merchant side, once
//! paygate-sandbox --keys-dir keys     # http://127.0.0.1:9090/sandbox/…
//! paygate-sandbox --keys-dir keys --data sandbox.db   # the ledger survives a restart
//! paygate-sandbox --keys-dir keys --test-clock        # a gateway with [sandbox] test_clock
//!                                                     # = true moves its clock
//! ```
//!
//! The Alipay half is served when the keys dir has `alipay/app_public_key.pem` (every dir
//! `paygate keys generate` makes now); an older dir gets WeChat Pay only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use paygate_sandbox::alipay::GATEWAY_PATH;
use paygate_sandbox::keys_dir::{ALIPAY_APP_PUBLIC_KEY_FILE, ALIPAY_PUBLIC_KEY_FILE};
use paygate_sandbox::test_clock::{self, TestClock};
use paygate_sandbox::{
    Sandbox, SandboxConfig, alipay_config_from_keys_dir, system_clock, wechat_config_from_keys_dir,
};

#[derive(Debug, Parser)]
#[command(
    name = "paygate-sandbox",
    about = "Local WeChat Pay APIv3 and Alipay gateway simulator for paygate"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// The key directory written by `paygate keys generate DIR`.
    #[arg(long, default_value = "keys")]
    keys_dir: PathBuf,
    /// Divide every callback retry delay by this (1 = WeChat's real schedule).
    #[arg(long, default_value_t = 1)]
    time_divisor: u32,
    /// Keep the ledger (orders, payments, refunds, notifications still due) in this SQLite
    /// file, created when missing, so a restart remembers it; without it, memory only.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Run on a test clock a gateway moves (`[sandbox] test_clock = true` in its config):
    /// `GET`/`PUT /sandbox/clock`. Without it the clock is the system's and nothing moves it.
    #[arg(long)]
    test_clock: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let configs = wechat_config_from_keys_dir(&args.keys_dir)
        .and_then(|wechat| Ok((wechat, alipay_config_from_keys_dir(&args.keys_dir)?)));
    let (wechatpay, alipay) = match configs {
        Ok(configs) => configs,
        Err(error) => {
            eprintln!("paygate-sandbox: {error:#}");
            std::process::exit(2);
        }
    };
    let test_clock = args.test_clock.then(|| Arc::new(TestClock::default()));
    let mut sandbox = Sandbox::new(SandboxConfig {
        wechatpay,
        time_divisor: args.time_divisor,
        clock: match &test_clock {
            Some(clock) => clock.reader(),
            None => system_clock(),
        },
    })?;
    let seller_id = alipay.as_ref().map(|config| config.seller_id.clone());
    if let Some(config) = alipay {
        sandbox = sandbox.with_alipay(config)?;
    }
    if let Some(path) = &args.data {
        sandbox = match sandbox.with_data(path) {
            Ok(sandbox) => sandbox,
            Err(error) => {
                eprintln!("paygate-sandbox: {error:#}");
                std::process::exit(2);
            }
        };
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("paygate-sandbox listening on {base}");
    println!("  WeChat Pay api_base: {base}/sandbox/wechatpay");
    println!(
        "  platform key: {} ({})",
        sandbox.wechat_platform_key_id(),
        args.keys_dir
            .join(paygate_sandbox::keys_dir::PLATFORM_PUBLIC_KEY_FILE)
            .display()
    );
    match seller_id {
        Some(seller_id) => {
            println!("  Alipay gateway_url: {base}{GATEWAY_PATH}");
            println!("  Alipay seller_id: {seller_id}");
            println!(
                "  Alipay public key: {}",
                args.keys_dir.join(ALIPAY_PUBLIC_KEY_FILE).display()
            );
        }
        None => println!(
            "  Alipay: not served ({} not found; `paygate keys generate` into a new DIR writes it)",
            args.keys_dir.join(ALIPAY_APP_PUBLIC_KEY_FILE).display()
        ),
    }
    match &args.data {
        Some(path) => println!("  ledger: {} (kept across restarts)", path.display()),
        None => println!("  ledger: in memory (--data FILE keeps it across restarts)"),
    }
    println!("  public keys: {base}/sandbox/keys");
    let mut router = sandbox.router();
    if let Some(clock) = test_clock {
        println!(
            "  test clock: {base}/sandbox/clock (moved by a gateway with [sandbox] test_clock = true)"
        );
        router = router.merge(test_clock::routes(clock));
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// ctrl-c, or SIGTERM from a service manager: stop accepting, finish in-flight requests.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
