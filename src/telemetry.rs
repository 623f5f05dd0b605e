//! Prometheus metrics (`GET /metrics`), through the `metrics` facade: counters at the points
//! where money moves or could be lost, labelled only with low-cardinality values (provider,
//! channel, outcome, job name) — never an order number, an employer or anything about a payer.
//! The job label is `job_name`, not `job`: Prometheus sets `job` on every scraped series itself
//! (the scrape job), and would rename ours to `exported_job`.
//!
//! Counters and summaries are per instance: alert on their sum. The gauges marked *database*
//! are read from the database at each scrape ([`DatabaseGauges`], [`render_database`]), so
//! every instance of one database reports the same value whichever instance ran the job:
//! alert on their `max`. `ops/prometheus/paygate.rules.yml` and `ops/grafana/paygate.json`
//! use only the names below (`tests/ops.rs` checks it).
//!
//! | metric | labels |
//! |---|---|
//! | `paygate_orders_created_total` | provider, channel |
//! | `paygate_order_create_failures_total` | provider, reason (`provider_unavailable`, `provider_rejected`) |
//! | `paygate_callbacks_total` | provider, outcome (`settled`, `duplicate`, `refund_settled`, `refund_duplicate`, `ignored`, `unverified`, `mismatch`, `temporary`: answered 5xx, the provider retries) |
//! | `paygate_settlements_total` | provider, source (`notification`, `query`, `reconciliation`), late (`true`/`false`) |
//! | `paygate_refunds_total` | provider, outcome (`succeeded`, `failed_closed`, `failed_abnormal`: needs finance, `failed_refused`), origin (`paygate`, `provider`: made at the portal) |
//! | `paygate_job_runs_total` | job_name, outcome (`ok`, `error`, `skipped`: another instance had the slot) |
//! | `paygate_job_orders_total` | job_name, result (`settled`, `closed`, `still_pending`, `still_processing`, `resent`, `failed`, `bill_missing`) |
//! | `paygate_events_pushed_total` | outcome (`delivered`, `failed`) |
//! | `paygate_requests_refused_total` | reason (`overloaded`, `api_rate`, `webhook_rate`, `body_too_large`) |
//! | `paygate_waits_degraded_total` | — : `?wait=` long polls past `[limits] max_waits`, answered at once |
//! | `paygate_provider_call_seconds` (summary) | provider, call (`create`, `query`, `close`, …), outcome (`ok`, `unavailable`, `rejected`, …) |
//! | `paygate_sqlite_batch_commits_total`, `paygate_sqlite_batched_transactions_total` | — : SQLite's batching writer, its commits and the transactions they held (their ratio is the batch size) |
//! | `paygate_sqlite_inline_busy_total` | — : inline SQLite lookups that found the file busy and were asked of the pooled reader |
//! | `paygate_database_up` (gauge) | — : 1 when `/readyz`'s check passed at this scrape (a read and, on SQLite, the write lock, within `[limits] readiness_timeout_ms`), else 0 |
//! | `paygate_database_gauges_ok` (gauge) | — : 1 when this scrape read the *database* gauges below, 0 when that read failed or ran out of time (they are then missing from the scrape) |
//! | `paygate_job_last_success_timestamp_seconds` (gauge, *database*) | job_name: when a run of each scheduled job last succeeded, on any instance (its lease row); 0 = never on this database |
//! | `paygate_erasures_overdue` (gauge, *database*) | — : erasure requests still pending past their `due_by` |
//! | `paygate_reconciliation_unhealed_discrepancies` (gauge, *database*) | provider, class: discrepancies not healed in the completed runs of the last 7 bill dates (0 for each configured provider and class without any) |
//! | `paygate_reconciliation_last_completed_day_timestamp_seconds` (gauge, *database*) | provider: the start (00:00 Asia/Shanghai) of the latest bill date whose run completed, per configured provider; 0 = never |

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
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
    metrics::counter!("paygate_job_runs_total", "job_name" => job, "outcome" => outcome)
        .increment(1);
}

pub fn job_orders(job: &'static str, result: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("paygate_job_orders_total", "job_name" => job, "result" => result)
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

/// A commit of SQLite's batching writer, and how many callers' transactions it held.
pub fn sqlite_batch_committed(transactions: u64) {
    metrics::counter!("paygate_sqlite_batch_commits_total").increment(1);
    metrics::counter!("paygate_sqlite_batched_transactions_total").increment(transactions);
}

/// An inline SQLite lookup found the file busy: the pooled reader was asked instead.
pub fn sqlite_inline_busy() {
    metrics::counter!("paygate_sqlite_inline_busy_total").increment(1);
}

/// What `/metrics` reads from the database at a scrape: shared by every instance of one
/// database, whichever of them ran a job. Label values are `&'static str`, names from closed
/// lists (jobs, providers, discrepancy classes): nothing a request or a row could put there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatabaseGauges {
    /// Each scheduled job and when a run of it last succeeded (`None`: never).
    pub job_last_success: Vec<(&'static str, Option<DateTime<Utc>>)>,
    /// Erasure requests pending past their `due_by`.
    pub erasures_overdue: u64,
    /// (provider, class, count) of the discrepancies left unhealed.
    pub unhealed_discrepancies: Vec<(&'static str, &'static str, u64)>,
    /// Per provider, the start of the latest bill date reconciled (`None`: never).
    pub last_completed_day: Vec<(&'static str, Option<DateTime<Utc>>)>,
}

/// The Prometheus text of the database gauges: `up` is `/readyz`'s check, `read` what the
/// scrape read (`None` when the read failed or ran out of time: those gauges are left out
/// rather than shown stale or as zero, and `paygate_database_gauges_ok` says 0).
pub fn render_database(up: bool, read: Option<&DatabaseGauges>) -> String {
    let mut out = String::new();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let seconds =
        |at: &Option<DateTime<Utc>>| at.map_or(0.0, |t| t.timestamp_millis() as f64 / 1e3);
    family(
        &mut out,
        "paygate_database_up",
        "1 when the readiness check (a read and, on SQLite, the write lock) passed at this scrape.",
        [(Vec::new(), flag(up))],
    );
    family(
        &mut out,
        "paygate_database_gauges_ok",
        "1 when this scrape read the database gauges (jobs, reconciliation, erasures).",
        [(Vec::new(), flag(read.is_some()))],
    );
    let Some(g) = read else {
        return out;
    };
    family(
        &mut out,
        "paygate_job_last_success_timestamp_seconds",
        "When a run of the job last succeeded on any instance (its lease row); 0 = never.",
        g.job_last_success
            .iter()
            .map(|(job, at)| (vec![("job_name", *job)], seconds(at))),
    );
    family(
        &mut out,
        "paygate_erasures_overdue",
        "Erasure requests still pending past their due_by (two working days).",
        [(Vec::new(), g.erasures_overdue as f64)],
    );
    family(
        &mut out,
        "paygate_reconciliation_unhealed_discrepancies",
        "Discrepancies not healed in the completed reconciliation runs of the last 7 bill dates.",
        g.unhealed_discrepancies.iter().map(|(provider, class, n)| {
            (vec![("provider", *provider), ("class", *class)], *n as f64)
        }),
    );
    family(
        &mut out,
        "paygate_reconciliation_last_completed_day_timestamp_seconds",
        "Start (00:00 Asia/Shanghai) of the latest bill date reconciled; 0 = never.",
        g.last_completed_day
            .iter()
            .map(|(provider, at)| (vec![("provider", *provider)], seconds(at))),
    );
    out
}

/// One gauge family in the text exposition format: `# HELP`, `# TYPE`, a line per series.
/// Label values come from closed lists of plain names, so nothing needs escaping.
fn family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, f64)>,
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in series {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn database_gauges_render_as_prometheus_text() {
        let at = Utc.with_ymd_and_hms(2026, 12, 8, 2, 30, 0).unwrap();
        let read = DatabaseGauges {
            job_last_success: vec![("active_query", Some(at)), ("retention", None)],
            erasures_overdue: 2,
            unhealed_discrepancies: vec![("alipay", "missing_remote", 3)],
            last_completed_day: vec![("wechatpay", None)],
        };
        let text = render_database(true, Some(&read));
        for line in [
            "# TYPE paygate_database_up gauge",
            "paygate_database_up 1",
            "paygate_database_gauges_ok 1",
            "paygate_job_last_success_timestamp_seconds{job_name=\"active_query\"} 1796697000",
            "paygate_job_last_success_timestamp_seconds{job_name=\"retention\"} 0",
            "paygate_erasures_overdue 2",
            "paygate_reconciliation_unhealed_discrepancies{provider=\"alipay\",class=\"missing_remote\"} 3",
            "paygate_reconciliation_last_completed_day_timestamp_seconds{provider=\"wechatpay\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }

    #[test]
    fn gauges_not_read_are_left_out_not_shown_as_zero() {
        let text = render_database(false, None);
        assert_eq!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>(),
            ["paygate_database_up 0", "paygate_database_gauges_ok 0"]
        );
    }
}
