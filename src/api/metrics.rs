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

    // Every scheduled job, 0 (never) when its lease row has no success: a job that never ran
    // must not be a missing series an alert cannot see. A lease row of a job this build does
    // not run (renamed, removed) is not one of ours to report.
    let leases = leases::last_successes(pool).await?;
    let job_last_success = Job::ALL
        .into_iter()
        .filter(|job| job.is_scheduled())
        .map(|job| {
            let at = leases
                .iter()
                .find(|(name, _)| name == job.name())
                .and_then(|(_, at)| *at);
            (job.name(), at)
        })
        .collect();

    let erasures_overdue = erasures::overdue(pool, now).await?;

    let today = now.with_timezone(&crate::clock::beijing()).date_naive();
    let since = today - chrono::Duration::days(UNHEALED_DAYS);
    let mut unhealed: BTreeMap<(&'static str, &'static str), u64> = configured
        .iter()
        .flat_map(|p| {
            DiscrepancyClass::ALL
                .into_iter()
                .filter(|c| *c != DiscrepancyClass::Matched)
                .map(move |c| ((p.as_str(), c.as_str()), 0))
        })
        .collect();
    for (provider, class, n) in reconciliations::unhealed(pool, since).await? {
        unhealed.insert((provider.as_str(), class.as_str()), n);
    }

    let days = reconciliations::last_completed_days(pool).await?;
    let last_completed_day = configured
        .iter()
        .map(|p| {
            let day = days.iter().find(|(q, _)| q == p).map(|(_, day)| *day);
            let start = day
                .map(|day| {
                    let (start_ms, _) = day_bounds(day);
                    crate::store::time_of("bill_date", start_ms)
                })
                .transpose()?;
            Ok((p.as_str(), start))
        })
        .collect::<Result<_, sqlx::Error>>()?;

    Ok(DatabaseGauges {
        job_last_success,
        erasures_overdue,
        unhealed_discrepancies: unhealed
            .into_iter()
            .map(|((provider, class), n)| (provider, class, n))
            .collect(),
        last_completed_day,
    })
}
