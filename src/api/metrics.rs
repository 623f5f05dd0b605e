//! `GET /metrics` (DESIGN.md §4): the process's counters and summaries (`telemetry::render`)
//! and, read from the database at each scrape, the gauges the alerts need to be right with
//! several instances on one database (`ops/prometheus/paygate.rules.yml`): whether the database
//! answers, when each scheduled job last succeeded on any instance, erasures overdue,
//! discrepancies left unhealed, the last reconciled bill day.
//!
//! Read at the scrape rather than by a task of every instance: nothing to schedule or stop, the
//! values are as fresh as the scrape, and each instance serves its own `AppState`'s database.
//! The read is bounded: a few statements over a row per job, the pending erasures, the runs of
//! the last [`UNHEALED_DAYS`] bill dates and their discrepancies, and one row per provider and
//! reconciled day, all within `[limits] readiness_timeout_ms` (`BENCHMARKS.md` has its cost).
//! Unauthenticated like the health checks and never shed, so scrapes that arrive while a read
//! is in flight share the next one ([`Scrapes`]): however many ask, one read per instance is in
//! flight, and each scrape is answered from a read that started after it arrived.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::State;
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDate, Utc};

use crate::config::LimitsConfig;
use crate::domain::ProviderId;
use crate::domain::reconciliation::{DiscrepancyClass, day_bounds};
use crate::jobs::Job;
use crate::state::AppState;
use crate::store::{erasures, jobs as leases, reconciliations};
use crate::telemetry::{self, DatabaseGauges};

/// Unhealed discrepancies are counted in the runs of this many bill dates before today
/// (yesterday and the six before it; and today, which only the sandbox can reconcile).
pub const UNHEALED_DAYS: i64 = 7;

/// One per router: the latest database read of `/metrics`, and when it started.
#[derive(Default)]
pub struct Scrapes {
    last: tokio::sync::Mutex<Option<(Instant, Arc<str>)>>,
}

impl Scrapes {
    /// The database gauges' text from a read that started after this call: the one a scrape
    /// that came first is doing (waited for), or a new one.
    async fn database(&self, state: &AppState) -> Arc<str> {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((started, text)) = last.as_ref()
            && *started >= arrived
        {
            return text.clone();
        }
        let started = Instant::now();
        let text: Arc<str> = read(state).await.into();
        *last = Some((started, text.clone()));
        text
    }
}

pub async fn serve(
    State(state): State<AppState>,
    Extension(scrapes): Extension<Arc<Scrapes>>,
) -> impl IntoResponse {
    let database = scrapes.database(&state).await;
    let mut body = telemetry::render();
    if !body.is_empty() && !body.ends_with('\n') {
        body.push('\n');
    }
    body.push_str(&database);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// The readiness check and the gauges' read side by side, each within the readiness bound.
async fn read(state: &AppState) -> String {
    let within = LimitsConfig::ms(state.config.limits.readiness_timeout_ms);
    let (up, gauges) = tokio::join!(
        state.db.ready(within),
        tokio::time::timeout(within, gauges(state))
    );
    let up = match up {
        Ok(()) => true,
        Err(Some(e)) => {
            tracing::warn!(error = %crate::error::chain(&e), "metrics: database unreachable");
            false
        }
        Err(None) => {
            tracing::warn!(?within, "metrics: database did not answer in time");
            false
        }
    };
    let read = match gauges {
        Ok(Ok(gauges)) => Some(gauges),
        Ok(Err(e)) => {
            tracing::error!(error = %crate::error::chain(&e), "metrics: reading the database gauges failed");
            None
        }
        Err(_) => {
            tracing::warn!(
                ?within,
                "metrics: reading the database gauges failed: no answer in time"
            );
            None
        }
    };
    telemetry::render_database(up, read.as_ref())
}

const PROVIDERS: [ProviderId; 2] = [ProviderId::Wechatpay, ProviderId::Alipay];

async fn gauges(state: &AppState) -> Result<DatabaseGauges, sqlx::Error> {
    let pool = state.db.reader();
    let now = state.clock.now();
    let configured: Vec<ProviderId> = PROVIDERS
        .into_iter()
        .filter(|id| state.providers.get(*id).is_some())
        .collect();
    let today = now.with_timezone(&crate::clock::beijing()).date_naive();
    Ok(DatabaseGauges {
        job_last_success: job_last_success(pool).await?,
        erasures_overdue: erasures::overdue(pool, now).await?,
        unhealed_discrepancies: unhealed(pool, &configured, today).await?,
        last_completed_day: last_completed_day(pool, &configured).await?,
    })
}

/// Every scheduled job, `None` (0: never) when its lease row has no success: a job that never
/// ran must not be a missing series an alert cannot see. A lease row of a job this build does
/// not run (renamed, removed) is not one of ours to report.
async fn job_last_success(
    pool: &sqlx::AnyPool,
) -> Result<Vec<(&'static str, Option<DateTime<Utc>>)>, sqlx::Error> {
    let leases = leases::last_successes(pool).await?;
    Ok(Job::ALL
        .into_iter()
        .filter(|job| job.is_scheduled())
        .map(|job| {
            let at = leases
                .iter()
                .find(|(name, _)| name == job.name())
                .and_then(|(_, at)| *at);
            (job.name(), at)
        })
        .collect())
}

/// The unhealed discrepancies of the window, by provider and class: every class of every
/// configured provider (0 when none), and any other provider that has some.
async fn unhealed(
    pool: &sqlx::AnyPool,
    configured: &[ProviderId],
    today: NaiveDate,
) -> Result<Vec<(&'static str, &'static str, u64)>, sqlx::Error> {
    let classes = || {
        DiscrepancyClass::ALL
            .into_iter()
            .filter(|c| *c != DiscrepancyClass::Matched)
    };
    let mut counts: BTreeMap<(&'static str, &'static str), u64> = configured
        .iter()
        .flat_map(|p| classes().map(move |c| ((p.as_str(), c.as_str()), 0)))
        .collect();
    let since = today - chrono::Duration::days(UNHEALED_DAYS);
    for (provider, class, n) in reconciliations::unhealed(pool, since).await? {
        counts.insert((provider.as_str(), class.as_str()), n);
    }
    Ok(counts
        .into_iter()
        .map(|((provider, class), n)| (provider, class, n))
        .collect())
}

/// Per configured provider, the start of its latest reconciled bill date (`None`: never).
async fn last_completed_day(
    pool: &sqlx::AnyPool,
    configured: &[ProviderId],
) -> Result<Vec<(&'static str, Option<DateTime<Utc>>)>, sqlx::Error> {
    let days = reconciliations::last_completed_days(pool).await?;
    configured
        .iter()
        .map(|p| {
            let day = days.iter().find(|(q, _)| q == p).map(|(_, day)| *day);
            let start = day
                .map(|day| crate::store::time_of("bill_date", day_bounds(day).0))
                .transpose()?;
            Ok((p.as_str(), start))
        })
        .collect()
}
