//! The operations page: each job's last run, last success and lease (which instance), whether
//! it failed or has not run when its schedule says it should have; the event push (delivered
//! up to, failing since); readiness as `/readyz` sees it; the limits in force. Everything
//! here is also in `/readyz` and `/metrics`, so any signed-in user may see it.

use axum::extract::State;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::context::Console;
use super::page::{Failure, Page, frame, time};
use super::session::Viewer;
use crate::config::LimitsConfig;
use crate::jobs::Job;
use crate::store::jobs::{self as store, Lease, RunRecord};

/// A run this long after its firing is still on time (a busy instance, a slow pass).
const GRACE: chrono::Duration = chrono::Duration::minutes(5);

/// How a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Ok,
    /// Its latest run ended in an error.
    Failed,
    /// Its schedule fired (more than [`GRACE`] ago) and no run of that slot or later exists.
    Overdue,
    /// No run recorded yet (a new database, or a job this deployment does not use).
    NeverRan,
}

pub struct JobHealth {
    pub job: Job,
    pub state: JobState,
    pub latest: Option<RunRecord>,
    pub lease: Option<Lease>,
}

/// Every scheduled job's standing at `now`.
pub async fn job_health(console: &Console, now: DateTime<Utc>) -> Result<Vec<JobHealth>, Failure> {
    let db = &console.app.db;
    let runs = store::latest_runs(db).await.map_err(Failure::internal)?;
    let leases = store::leases(db).await.map_err(Failure::internal)?;
    Ok(Job::ALL
        .into_iter()
        .filter(|j| *j != Job::Events)
        .map(|job| {
            let found = runs.iter().find(|r| r.job == job.name());
            let latest = found.map(|r| r.latest.clone());
            let state = match &latest {
                None => JobState::NeverRan,
                Some(run) if run.error().is_some() => JobState::Failed,
                Some(run) => {
                    // The last firing at least GRACE ago, within two days (the daily jobs').
                    let due = job.last_firing(now - chrono::Duration::days(2), now - GRACE);
                    match due {
                        Some(at) if run.slot < job.slot_of(at) => JobState::Overdue,
                        _ => JobState::Ok,
                    }
                }
            };
            JobHealth {
                job,
                state,
                latest,
                lease: leases.iter().find(|l| l.job == job.name()).cloned(),
            }
        })
        .collect())
}

pub fn state_label(state: JobState) -> Markup {
    match state {
        JobState::Ok => html! { span.ok { "正常" } },
        JobState::Failed => html! { span.bad { "失败" } },
        JobState::Overdue => html! { span.bad { "未按时运行" } },
        JobState::NeverRan => html! { span.warn { "尚未运行" } },
    }
}

pub async fn page(State(console): State<Console>, viewer: Viewer) -> Result<Page, Failure> {
    let now = console.app.clock.now();
    let jobs = job_health(&console, now).await?;
    let push = crate::store::events::push_status(&console.app.db)
        .await
        .map_err(Failure::internal)?;
    let limits = &console.app.config.limits;
    let ready = console
        .app
        .db
        .ready(LimitsConfig::ms(limits.readiness_timeout_ms))
        .await
        .is_ok();
    let pushing = console.app.pusher.is_some();
    Ok(frame(
        "运维",
        Some(viewer.nav()),
        html! {
            h2 { "就绪状态 " code { "/readyz" } }
            @if ready { p.ok { "数据库可达（ready）" } } @else { p.bad { "数据库不可达（database_unreachable）" } }
            h2 { "任务" }
            table {
                thead { tr { th { "任务" } th { "状态" } th { "最近运行" } th { "实例" } th { "最近成功" } th { "最近错误" } th { "租约到期" } } }
                tbody {
                    @for j in &jobs {
                        tr {
                            td { code { (j.job.name()) } }
                            td { (state_label(j.state)) }
                            td { @if let Some(r) = &j.latest { (time(r.started_at)) } }
                            td { @if let Some(r) = &j.latest { code { (r.holder) } } }
                            td { @if let Some(t) = j.lease.as_ref().and_then(|l| l.last_success_at) { (time(t)) } }
                            td { @if let Some(e) = j.latest.as_ref().and_then(RunRecord::error) { span.bad { (e) } } }
                            td { @if let Some(l) = &j.lease { (time(l.expires_at)) " " code { "fence " (l.fence) } } }
                        }
                    }
                }
            }
            h2 { "事件推送" }
            @if !pushing {
                p { "未配置推送（" code { "[events] url" } "）：事件只通过 " code { "GET /v1/events" } " 读取。" }
            }
            dl.facts {
                dt { "最新事件" } dd { (push.newest.map_or_else(|| "—".to_owned(), |n| n.to_string())) }
                dt { "未送达" } dd { (push.undelivered) }
                @if let Some(u) = &push.oldest_undelivered {
                    dt { "已送达至" } dd { (u.id - 1) }
                    dt { "最早未送达" } dd { "#" (u.id) "，产生于 " (time(u.created_at)) "，已尝试 " (u.attempts) " 次，下次 " (time(u.next_attempt_at)) }
                    @if pushing && u.attempts > 0 {
                        dt { "推送失败始于" } dd.bad { (time(u.created_at)) }
                    }
                }
            }
            h2 { "生效的限制 " code { "[limits]" } }
            table {
                tbody {
                    @for (key, value) in limit_rows(limits) {
                        tr { td { code { (key) } } td.num { (value) } }
                    }
                }
            }
        },
    ))
}

fn limit_rows(l: &LimitsConfig) -> Vec<(&'static str, String)> {
    vec![
        ("db_acquire_timeout_ms", l.db_acquire_timeout_ms.to_string()),
        ("readiness_timeout_ms", l.readiness_timeout_ms.to_string()),
        ("request_timeout_ms", l.request_timeout_ms.to_string()),
        (
            "header_read_timeout_ms",
            l.header_read_timeout_ms.to_string(),
        ),
        ("max_connections", l.max_connections.to_string()),
        ("max_in_flight", l.max_in_flight.to_string()),
        ("max_waits", l.max_waits().to_string()),
        ("api_body_bytes", l.api_body_bytes.to_string()),
        ("webhook_body_bytes", l.webhook_body_bytes.to_string()),
        ("api_rate_per_key", l.api_rate_per_key.to_string()),
        ("webhook_rate_per_ip", l.webhook_rate_per_ip.to_string()),
        (
            "provider_connect_timeout_ms",
            l.provider_connect_timeout_ms.to_string(),
        ),
        ("provider_timeout_ms", l.provider_timeout_ms.to_string()),
    ]
}
