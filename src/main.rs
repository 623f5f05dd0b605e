use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// paygate's own INFO lines; libraries' INFO chatter (the scheduler's "Job creator created" on
/// every start) only from WARN. `RUST_LOG` replaces the whole filter.
const DEFAULT_LOG_FILTER: &str = "info,tokio_cron_scheduler=warn";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Logs go to stderr: stdout carries what a command prints (a job pass as JSON, a key).
    if std::env::var("PAYGATE_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        // Colours only for a person at a terminal: a file, a pipe or journald gets plain text
        // (and NO_COLOR is honoured), so logs stay greppable.
        let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .init();
    }
    match paygate::cli::run(paygate::cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
