//! Prometheus metrics (`GET /metrics`), through the `metrics` facade: counters at the points
//! where money moves or could be lost, labelled only with low-cardinality values (provider,
//! channel, outcome, job) — never an order number, an employer or anything about a payer.
//!
//! | metric | labels |
//! |---|---|
//! | `paygate_orders_created_total` | provider, channel |
//! | `paygate_order_create_failures_total` | provider, reason (`provider_unavailable`, `provider_rejected`) |
//! | `paygate_callbacks_total` | provider, outcome (`settled`, `duplicate`, `ignored`, `unverified`, `mismatch`, `temporary`) |
//! | `paygate_settlements_total` | provider, source (`notification`, `query`), late (`true`/`false`) |
//! | `paygate_job_runs_total` | job, outcome (`ok`, `error`, `skipped`: another instance had the slot) |
//! | `paygate_job_orders_total` | job, result (`settled`, `closed`, `still_pending`, `failed`) |
//! | `paygate_events_pushed_total` | outcome (`delivered`, `failed`) |
//! | `paygate_requests_refused_total` | reason (`overloaded`, `api_rate`, `webhook_rate`, `body_too_large`) |
//! | `paygate_waits_degraded_total` | — : `?wait=` long polls past `[limits] max_waits`, answered at once |
//! | `paygate_erasures_overdue` (gauge) | — : erasure requests still pending past their `due_by` |
//! | `paygate_provider_call_seconds` (summary) | provider, call (`create`, `query`, `close`), outcome (`ok`, `unavailable`, `rejected`) |
//! | `paygate_sqlite_batch_commits_total`, `paygate_sqlite_batched_transactions_total` | — : SQLite's batching writer, its commits and the transactions they held (their ratio is the batch size) |
//! | `paygate_sqlite_inline_busy_total` | — : inline SQLite lookups that found the file busy and were asked of the pooled reader |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (every `Application` in a process shares it).
/// `None` when another recorder was installed first: `/metrics` then says so.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                None
            }
        })
        .as_ref()
}

/// The Prometheus text exposition of every metric so far.
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

pub fn order_created(provider: &str, channel: &str) {
    metrics::counter!("paygate_orders_created_total", "provider" => provider.to_owned(), "channel" => channel.to_owned())
        .increment(1);
}

pub fn order_create_failed(provider: &str, reason: &'static str) {
    metrics::counter!("paygate_order_create_failures_total", "provider" => provider.to_owned(), "reason" => reason)
        .increment(1);
}

pub fn callback(provider: &str, outcome: &'static str) {
    metrics::counter!("paygate_callbacks_total", "provider" => provider.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub fn settled(provider: &str, source: &'static str, late: bool) {
    metrics::counter!("paygate_settlements_total", "provider" => provider.to_owned(), "source" => source, "late" => if late { "true" } else { "false" })
        .increment(1);
}

/// A refund reached a final state (`succeeded`, or `failed` with its kind: `closed`,
/// `abnormal` — which needs finance — or `refused`), by who started it.
pub fn refund_settled(provider: &str, outcome: &'static str, origin: &'static str) {
    metrics::counter!("paygate_refunds_total", "provider" => provider.to_owned(), "outcome" => outcome, "origin" => origin)
        .increment(1);
}

pub fn job_run(job: &'static str, outcome: &'static str) {
    metrics::counter!("paygate_job_runs_total", "job" => job, "outcome" => outcome).increment(1);
}

pub fn job_orders(job: &'static str, result: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("paygate_job_orders_total", "job" => job, "result" => result)
            .increment(n);
    }
}

pub fn events_pushed(delivered: u64, failed: u64) {
    for (outcome, n) in [("delivered", delivered), ("failed", failed)] {
        if n > 0 {
            metrics::counter!("paygate_events_pushed_total", "outcome" => outcome).increment(n);
        }
    }
}

pub fn provider_call(
    provider: &str,
    call: &'static str,
    outcome: &'static str,
    took: std::time::Duration,
) {
    metrics::histogram!("paygate_provider_call_seconds", "provider" => provider.to_owned(), "call" => call, "outcome" => outcome)
        .record(took.as_secs_f64());
}

/// A request refused at the edge (`overloaded`, `api_rate`, `webhook_rate`, `body_too_large`).
pub fn refused(reason: &'static str) {
    metrics::counter!("paygate_requests_refused_total", "reason" => reason).increment(1);
}

/// A `?wait=` long poll past `[limits] max_waits`, answered at once instead.
pub fn wait_degraded() {
    metrics::counter!("paygate_waits_degraded_total").increment(1);
}

/// Erasure requests still pending past their `due_by` (two working days): anything above zero
/// breaks the privacy policy's promise and should page someone.
pub fn erasures_overdue(n: u64) {
    metrics::gauge!("paygate_erasures_overdue").set(n as f64);
}

/// A commit of SQLite's batching writer, and how many callers' transactions it held.
pub fn sqlite_batch_committed(transactions: u64) {
    metrics::counter!("paygate_sqlite_batch_commits_total").increment(1);
    metrics::counter!("paygate_sqlite_batched_transactions_total").increment(transactions);
}

/// An inline SQLite lookup found the file busy: the pooled reader was asked instead.
pub fn sqlite_inline_busy() {
    metrics::counter!("paygate_sqlite_inline_busy_total").increment(1);
}
