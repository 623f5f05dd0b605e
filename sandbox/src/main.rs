//! `paygate-sandbox`: the WeChat Pay simulator on its own port.
//!
//! ```text
//! paygate keys generate keys          # the merchant side, once
//! paygate-sandbox --keys-dir keys     # http://127.0.0.1:9090/sandbox/…
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use paygate_sandbox::{Sandbox, SandboxConfig, system_clock, wechat_config_from_keys_dir};

#[derive(Debug, Parser)]
#[command(
    name = "paygate-sandbox",
    about = "Local WeChat Pay APIv3 simulator for paygate"
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wechatpay = match wechat_config_from_keys_dir(&args.keys_dir) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("paygate-sandbox: {error:#}");
            std::process::exit(2);
        }
    };
    let sandbox = Sandbox::new(SandboxConfig {
        wechatpay,
        time_divisor: args.time_divisor,
        clock: system_clock(),
    })?;
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
    println!("  public keys: {base}/sandbox/keys");
    axum::serve(listener, sandbox.router())
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
