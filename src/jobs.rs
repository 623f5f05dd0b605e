//! The order lifecycle jobs of DESIGN.md §10, run by tokio-cron-scheduler inside `serve`:
//!
//! | job | schedule | pass |
//! |---|---|---|
//! | `active_query` | every minute | [`active_query`] |
//! | `expire` | every minute | [`expire_orders`] |
//! | `platform_keys` | every 6 hours (and at start) | [`refresh_platform_keys`] |
//! | `entitlement_expiry` | hourly | [`expire_entitlements`] |
//! | `refunds` | every minute | [`crate::refunds::query_due`] |
//! | `reconciliation` | 10:30 Asia/Shanghai, then hourly until 18:30 while a bill is not ready | [`reconcile_yesterday`] |
//! | `events` | every second, when `[events] url` is set | [`crate::push::push_due`] |
//! | `erasure` | every 10 minutes | [`crate::privacy::run_due`] |
//! | `retention` | daily, 03:00 Asia/Shanghai | [`crate::privacy::retention::run`] |
//!
//! Each pass is a plain async function over [`AppState`], so the CLI (`paygate sync-pending`)
//! and tests call it directly with whatever clock the state holds. [`Runner`] adds the lease:
//! with several instances on one database, each scheduled slot of each job runs on one of them
//! ([`crate::store::jobs`]).
//!
//! Every pass converges rather than acts once: settlement is exactly-once however often a
//! payment is reported, and closing is a conditional update, so a pass that dies half-way is
//! simply finished by the next one.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use tokio_cron_scheduler::{Job as CronJob, JobScheduler};

use crate::clock::to_millis;
use crate::domain::{Actor, OrderNo, ProviderId};
use crate::lifecycle::{self, CloseReason, Closing};
use crate::providers::{PaymentProvider, ProviderError};
use crate::settlement::{self, Seen, SeenError};
use crate::state::AppState;
use crate::store::jobs::{self as lease, Taken};
use crate::store::orders::{self, Cursor, DueOrder};
use crate::telemetry;

/// A pending order is queried once it is this old without a notification.
pub const QUERY_AFTER: chrono::Duration = chrono::Duration::minutes(2);
/// Orders read from the database at a time.
const BATCH: i64 = 500;
/// Batches one pass goes through at most (10,000 orders); the next pass takes the rest.
const MAX_BATCHES: usize = 20;
/// Provider calls in flight at once within one pass.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    ActiveQuery,
    Expire,
    PlatformKeys,
    EntitlementExpiry,
    Refunds,
    Reconciliation,
    /// The event push: not on the cron schedule but a loop, every event claimed on its own.
    Events,
    /// Pending erasure requests carried out (issue 11).
    Erasure,
    /// What is past its `[privacy]` retention deleted.
    Retention,
}

impl Job {
    pub const ALL: [Job; 9] = [
        Job::ActiveQuery,
        Job::Expire,
        Job::PlatformKeys,
        Job::EntitlementExpiry,
        Job::Refunds,
        Job::Reconciliation,
        Job::Events,
        Job::Erasure,
        Job::Retention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::ActiveQuery => "active_query",
            Job::Expire => "expire",
            Job::PlatformKeys => "platform_keys",
            Job::EntitlementExpiry => "entitlement_expiry",
            Job::Refunds => "refunds",
            Job::Reconciliation => "reconciliation",
            Job::Events => "events",
            Job::Erasure => "erasure",
            Job::Retention => "retention",
        }
    }

    /// Run on the cron schedule under the lease, so its lease row records its last success
    /// (`/metrics`); the push loop is not.
    pub fn is_scheduled(self) -> bool {
        self.schedule().is_some()
    }

    /// The cron schedule (seconds first), in [`Job::timezone`]; `None` for the push loop.
    fn schedule(self) -> Option<&'static str> {
        match self {
            Job::ActiveQuery => Some("0 * * * * *"),
            Job::Expire => Some("30 * * * * *"),
            Job::PlatformKeys => Some("0 0 */6 * * *"),
            Job::EntitlementExpiry => Some("0 5 * * * *"),
            Job::Refunds => Some("15 * * * * *"),
            // Bills are ready after about 10:00 the next day (wechatpay-v3.md §6); a run that
            // finds yesterday reconciled does nothing, one that finds no bill yet tries again
            // the next hour, and the 18:30 run reports a bill still missing.
            Job::Reconciliation => Some("0 30 10-18 * * *"),
            Job::Events => None,
            Job::Erasure => Some("0 */10 * * * *"),
            Job::Retention => Some("0 0 3 * * *"),
        }
    }

    /// The time between two runs: slots are numbered in these.
    pub fn period(self) -> chrono::Duration {
        match self {
            Job::ActiveQuery | Job::Expire | Job::Refunds | Job::Events => {
                chrono::Duration::minutes(1)
            }
            Job::PlatformKeys => chrono::Duration::hours(6),
            Job::EntitlementExpiry | Job::Reconciliation => chrono::Duration::hours(1),
            Job::Erasure => chrono::Duration::minutes(10),
            Job::Retention => chrono::Duration::days(1),
        }
    }

    /// Where the schedule is read: the reconciliation's hours are Beijing hours whatever the
    /// server's clock says; the rest are minute or hour grids, the same everywhere.
    fn timezone(self) -> chrono_tz::Tz {
        match self {
            Job::Reconciliation | Job::Retention => chrono_tz::Asia::Shanghai,
            _ => chrono_tz::UTC,
        }
    }

    /// Every time [`Job::schedule`] fires in (`after`, `until`], in order: the same expression
    /// and time zone the scheduler runs, read by the same cron reader (the test clock's
    /// advance walks these). Nothing for the push loop.
    pub fn firings(self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let Some(schedule) = self.schedule() else {
            return Vec::new();
        };
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(schedule)
            .expect("every schedule of Job::schedule parses");
        // Firings fall on whole seconds; the reader keeps a start's fraction, so drop it.
        let after = chrono::SubsecRound::trunc_subsecs(after, 0);
        cron.iter_after(after.with_timezone(&self.timezone()))
            .map(|at| at.with_timezone(&Utc))
            .take_while(|at| *at <= until)
            .collect()
    }

    /// The latest firing in (`after`, `until`]: found within the last period before `until`.
    pub fn last_firing(self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.firings(after.max(until - self.period()), until).pop()
    }

    /// The slot a run fired at `at` belongs to: the nearest period boundary, so instances whose
    /// clocks differ by less than half a period agree on it.
    pub fn slot_of(self, at: DateTime<Utc>) -> i64 {
        let period = self.period().num_milliseconds();
        (to_millis(at) + period / 2).div_euclid(period) * period
    }

    /// How long a taker holds the lease: long enough for a pass, short enough that an instance
    /// that dies mid-run delays the next runs by at most this. A run that takes longer may
    /// overlap the next one, which is harmless (every pass converges) but not expected.
    fn lease(self) -> chrono::Duration {
        self.period().min(chrono::Duration::minutes(5))
    }
}

/// One active-query pass.
#[derive(Debug, Default, Clone, Serialize)]
pub struct QueryPass {
    pub checked: u64,
    pub settled: u64,
    pub still_pending: u64,
    pub failed: u64,
}

/// One expiry pass.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ExpirePass {
    pub checked: u64,
    pub closed: u64,
    /// Paid after all: found by the last query, or reported when the close was refused.
    pub settled: u64,
    pub failed: u64,
}

fn provider_for(state: &AppState, order: &DueOrder) -> Option<Arc<dyn PaymentProvider>> {
    let provider = state.providers.get(order.provider);
    if provider.is_none() {
        tracing::warn!(order_no = %order.order_no, provider = %order.provider,
            "order of a provider that is not configured; left alone");
    }
    provider.cloned()
}

/// Queries one order and settles what the provider reports; a failure is logged here, once.
async fn query_and_settle(
    state: &AppState,
    provider: &dyn PaymentProvider,
    no: &OrderNo,
) -> Result<Option<Seen>, DatabaseDown> {
    match settlement::query_and_settle(&state.tail(), provider, no).await {
        Ok(seen) => Ok(Some(seen)),
        Err(SeenError::Db(e)) if crate::store::is_unavailable(&e) => Err(DatabaseDown(e)),
        Err(e) => {
            log_seen_error(no, provider, &e);
            Ok(None)
        }
    }
}

/// The database could not be reached while a pass worked through its orders: the pass stops
/// there (the orders in flight are dropped, their transactions rolled back) and fails, and the
/// next slot starts over. Going on would wait out the acquire timeout once per order.
#[derive(Debug, thiserror::Error)]
#[error("the database is unavailable; the pass stopped early and the next slot retries")]
pub struct DatabaseDown(#[source] pub sqlx::Error);

fn log_seen_error(no: &OrderNo, provider: &dyn PaymentProvider, e: &SeenError) {
    match e {
        SeenError::Provider(p) => {
            let kind = match p {
                ProviderError::Unavailable(_) => "unavailable",
                ProviderError::Rejected(_) => "rejected",
            };
            tracing::warn!(order_no = %no, provider = %provider.id(), kind, error = %crate::error::chain(e), "query failed; the next pass asks again");
        }
        // A verified answer that does not fit the order: for finance, not for retries.
        other => {
            tracing::error!(order_no = %no, error = %crate::error::chain(other), "settling a queried order failed")
        }
    }
}

/// Runs `work` over every order `fetch` pages through (keyset order, [`BATCH`] at a time, at
/// most [`MAX_BATCHES`] per pass), [`CONCURRENCY`] provider calls in flight.
async fn over_due<T, Page, Work>(
    state: &AppState,
    fetch: impl Fn(Cursor) -> Page,
    work: impl Fn(Arc<dyn PaymentProvider>, OrderNo) -> Work,
) -> anyhow::Result<Vec<T>>
where
    Page: std::future::Future<Output = Result<Vec<DueOrder>, sqlx::Error>>,
    Work: std::future::Future<Output = Result<T, DatabaseDown>>,
{
    let mut cursor = Cursor::start();
    let mut out = Vec::new();
    for _ in 0..MAX_BATCHES {
        let due = fetch(cursor.clone()).await?;
        let Some(last) = due.last() else { break };
        cursor = Cursor::after(last.key, last.order_no.as_str());
        let full = due.len() as i64 >= BATCH;
        let work = &work;
        let mut done = futures_util::stream::iter(due)
            .map(|order| async move {
                let Some(provider) = provider_for(state, &order) else {
                    return Ok(None);
                };
                work(provider, order.order_no).await.map(Some)
            })
            .buffer_unordered(CONCURRENCY);
        while let Some(one) = done.next().await {
            if let Some(t) = one? {
                out.push(t);
            }
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Active query: pending orders older than [`QUERY_AFTER`] (and not yet expired) are queried;
/// paid ones settle through the same exactly-once path as a notification.
pub async fn active_query(state: &AppState) -> anyhow::Result<QueryPass> {
    let now = state.clock.now();
    let (created_before, now_ms) = (to_millis(now - QUERY_AFTER), to_millis(now));
    let pool = state.db.pool();
    let outcomes = over_due(
        state,
        |cursor| async move {
            orders::pending_created_before(pool, created_before, now_ms, &cursor, BATCH).await
        },
        |provider, no| async move { query_and_settle(state, provider.as_ref(), &no).await },
    )
    .await?;
    let mut pass = QueryPass::default();
    for seen in outcomes {
        pass.checked += 1;
        match seen {
            Some(Seen::Settled) => pass.settled += 1,
            Some(Seen::NotPaid) => pass.still_pending += 1,
            None => pass.failed += 1,
        }
    }
    let job = Job::ActiveQuery.name();
    telemetry::job_orders(job, "settled", pass.settled);
    telemetry::job_orders(job, "still_pending", pass.still_pending);
    telemetry::job_orders(job, "failed", pass.failed);
    Ok(pass)
}

/// Expiry: a pending order past its expiry is queried once more; unless paid, it is closed
/// here first (so the checkout never shows it as payable again) and then at the provider. A
/// payment that slipped in between (the provider refuses the close) is settled and, the order
/// being closed by then, flagged `payment.late`.
pub async fn expire_orders(state: &AppState) -> anyhow::Result<ExpirePass> {
    let now_ms = to_millis(state.clock.now());
    let pool = state.db.pool();
    let outcomes = over_due(
        state,
        |cursor| async move { orders::pending_expired(pool, now_ms, &cursor, BATCH).await },
        |provider, no| async move { expire_one(state, provider.as_ref(), &no).await },
    )
    .await?;
    let mut pass = ExpirePass::default();
    for outcome in outcomes {
        pass.checked += 1;
        match outcome {
            ExpireOutcome::Closed => pass.closed += 1,
            ExpireOutcome::Settled => pass.settled += 1,
            ExpireOutcome::Failed => pass.failed += 1,
        }
    }
    let job = Job::Expire.name();
    telemetry::job_orders(job, "closed", pass.closed);
    telemetry::job_orders(job, "settled", pass.settled);
    telemetry::job_orders(job, "failed", pass.failed);
    Ok(pass)
}

enum ExpireOutcome {
    Closed,
    Settled,
    Failed,
}

async fn expire_one(
    state: &AppState,
    provider: &dyn PaymentProvider,
    no: &OrderNo,
) -> Result<ExpireOutcome, DatabaseDown> {
    match lifecycle::query_then_close(&state.tail(), provider, no, CloseReason::Expired).await {
        Ok(Closing::Closed) => {
            tracing::info!(order_no = %no, "expired order closed");
            Ok(ExpireOutcome::Closed)
        }
        Ok(Closing::Paid) => Ok(ExpireOutcome::Settled),
        Err(SeenError::Db(e)) if crate::store::is_unavailable(&e) => Err(DatabaseDown(e)),
        // Unknown at the provider right now: left pending, the next pass asks again.
        Err(e) => {
            log_seen_error(no, provider, &e);
            Ok(ExpireOutcome::Failed)
        }
    }
}

/// The reconciliation job's pass over every configured provider, for yesterday (Beijing).
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReconcilePass {
    pub date: String,
    /// Providers reconciled by this pass.
    pub completed: Vec<String>,
    /// Providers whose bill for the date was already reconciled.
    pub already: Vec<String>,
    /// Providers without a bill yet (tried again next hour).
    pub not_ready: Vec<String>,
    /// Providers whose run failed, with the reason.
    pub failed: Vec<(String, String)>,
}

/// The last hour (Beijing) at which a missing bill is tried; after it, it is reported.
const LAST_BILL_HOUR: u32 = 18;

/// Reconciles yesterday (Asia/Shanghai) for every configured provider not yet reconciled for
/// that date. A bill not ready is left for the next hour until 18:00, then reported as an
/// error (log, `/metrics`) so finance knows the day is open.
pub async fn reconcile_yesterday(state: &AppState) -> anyhow::Result<ReconcilePass> {
    use chrono::Timelike;
    let now = state.clock.now().with_timezone(&crate::clock::beijing());
    let date = now.date_naive() - chrono::Duration::days(1);
    let mut pass = ReconcilePass {
        date: date.to_string(),
        ..ReconcilePass::default()
    };
    let actor = Actor::Job(Job::Reconciliation.name());
    for id in ProviderId::ALL {
        if state.providers.get(id).is_none() {
            continue;
        }
        let done = crate::store::reconciliations::of_date(state.db.reader(), id, date)
            .await?
            .is_some_and(|r| r.status == crate::store::reconciliations::RunStatus::Completed);
        if done {
            pass.already.push(id.as_str().into());
            continue;
        }
        match crate::reconcile::run(state.reconcile(&actor), id, date).await {
            Ok(_) => pass.completed.push(id.as_str().into()),
            Err(crate::reconcile::ReconcileError::Bill(crate::providers::BillError::NotReady)) => {
                if now.hour() >= LAST_BILL_HOUR {
                    tracing::error!(provider = %id, %date, "no bill from the provider by 18:00; the day stays unreconciled");
                    telemetry::job_orders(Job::Reconciliation.name(), "bill_missing", 1);
                } else {
                    tracing::info!(provider = %id, %date, "bill not ready yet; trying again next hour");
                }
                pass.not_ready.push(id.as_str().into());
            }
            Err(e) => {
                let reason = crate::error::chain(&e);
                tracing::error!(provider = %id, %date, error = %reason, "reconciliation failed");
                telemetry::job_orders(Job::Reconciliation.name(), "failed", 1);
                pass.failed.push((id.as_str().into(), reason));
            }
        }
    }
    Ok(pass)
}

/// Certificate mode: fetch the platform certificates of every provider that uses them.
pub async fn refresh_platform_keys(state: &AppState) -> anyhow::Result<u64> {
    let mut keys = 0;
    for id in [ProviderId::Wechatpay, ProviderId::Alipay] {
        if let Some(provider) = state.providers.get(id) {
            keys += provider.refresh_keys().await? as u64;
        }
    }
    Ok(keys)
}

/// Entitlement expiry: marks entitlements past `valid_until` expired.
pub async fn expire_entitlements(state: &AppState) -> anyhow::Result<u64> {
    Ok(crate::entitlements::expire_due(&state.db, state.clock.now(), BATCH).await?)
}

/// How often the push loop looks for due events.
const PUSH_EVERY: Duration = Duration::from_secs(1);

/// The running schedule: stop it with [`Scheduled::shutdown`].
pub struct Scheduled {
    scheduler: JobScheduler,
    push_loop: Option<tokio::task::JoinHandle<()>>,
}

impl Scheduled {
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(push) = self.push_loop.take() {
            push.abort();
        }
        self.scheduler.shutdown().await?;
        Ok(())
    }
}

/// Runs jobs under the lease, on a schedule or on demand.
#[derive(Clone)]
pub struct Runner {
    state: AppState,
    holder: Arc<str>,
}

impl Runner {
    /// `holder` names this instance in the lease rows (host, process and a random suffix).
    pub fn new(state: AppState) -> Runner {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "paygate".to_owned());
        let holder = format!(
            "{host}-{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 4]>())
        );
        Runner {
            state,
            holder: holder.into(),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// One pass of `job`, without the lease: the CLI and tests.
    pub async fn run_once(&self, job: Job) -> anyhow::Result<serde_json::Value> {
        let state = &self.state;
        Ok(match job {
            Job::ActiveQuery => serde_json::to_value(active_query(state).await?)?,
            Job::Expire => serde_json::to_value(expire_orders(state).await?)?,
            Job::PlatformKeys => serde_json::json!({"keys": refresh_platform_keys(state).await?}),
            Job::EntitlementExpiry => {
                serde_json::json!({"expired": expire_entitlements(state).await?})
            }
            Job::Refunds => {
                serde_json::to_value(crate::refunds::query_due(&state.refunds()).await?)?
            }
            Job::Reconciliation => serde_json::to_value(reconcile_yesterday(state).await?)?,
            Job::Events => serde_json::to_value(
                crate::push::push_due(&state.db, state.pusher.as_deref(), state.clock.as_ref())
                    .await?,
            )?,
            Job::Erasure => {
                let deps = state.erasures();
                serde_json::to_value(crate::privacy::run_due(&deps).await?)?
            }
            Job::Retention => {
                let deps = state.retention();
                serde_json::to_value(crate::privacy::retention::run(&deps, false).await?)?
            }
        })
    }

    /// Runs `slot` of `job` if this instance takes it; `None` when another instance has it or
    /// it already ran.
    pub async fn run_slot(&self, job: Job, slot: i64) -> anyhow::Result<Option<serde_json::Value>> {
        let now = to_millis(self.state.clock.now());
        let Some(taken) = lease::take(
            &self.state.db,
            job.name(),
            &self.holder,
            slot,
            now,
            job.lease().num_milliseconds(),
        )
        .await?
        else {
            telemetry::job_run(job.name(), "skipped");
            return Ok(None);
        };
        let result = self.run_once(job).await;
        telemetry::job_run(job.name(), if result.is_ok() { "ok" } else { "error" });
        let text = match &result {
            Ok(report) => report.to_string(),
            Err(e) => serde_json::json!({"error": format!("{e:#}")}).to_string(),
        };
        let outcome = match &result {
            Ok(_) => lease::Outcome::Succeeded(&text),
            Err(_) => lease::Outcome::Failed(&text),
        };
        self.finish(job, taken, outcome).await;
        result.map(Some)
    }

    async fn finish(&self, job: Job, taken: Taken, outcome: lease::Outcome<'_>) {
        let now = to_millis(self.state.clock.now());
        if let Err(e) = lease::finish(&self.state.db, job.name(), taken, outcome, now).await {
            tracing::error!(job = job.name(), error = %e, "recording a job run failed");
        }
    }

    /// The slot containing now.
    pub async fn run_scheduled(&self, job: Job) -> anyhow::Result<Option<serde_json::Value>> {
        self.run_slot(job, job.slot_of(self.state.clock.now()))
            .await
    }

    /// Starts the scheduler with every job, and the push loop when `[events] url` is set; the
    /// platform keys are also fetched once at once.
    pub async fn start(self) -> anyhow::Result<Scheduled> {
        let scheduler = JobScheduler::new().await?;
        for job in Job::ALL {
            let Some(schedule) = job.schedule() else {
                continue;
            };
            let runner = self.clone();
            scheduler
                .add(CronJob::new_async_tz(
                    schedule,
                    job.timezone(),
                    move |_, _| {
                        let runner = runner.clone();
                        Box::pin(async move { runner.log_run(job).await })
                    },
                )?)
                .await?;
        }
        scheduler.start().await?;
        let push_loop = self.state.pusher.is_some().then(|| {
            let runner = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PUSH_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = crate::push::push_due(
                        &runner.state.db,
                        runner.state.pusher.as_deref(),
                        runner.state.clock.as_ref(),
                    )
                    .await
                    {
                        tracing::error!(error = format!("{e:#}"), "event push pass failed");
                    }
                }
            })
        });
        let runner = self.clone();
        tokio::spawn(async move {
            // Give the listener a moment, so an embedded sandbox already answers.
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Err(e) = runner.run_once(Job::PlatformKeys).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "fetching platform keys at start failed"
                );
            }
        });
        Ok(Scheduled {
            scheduler,
            push_loop,
        })
    }

    async fn log_run(&self, job: Job) {
        match self.run_scheduled(job).await {
            Ok(Some(report)) => tracing::info!(job = job.name(), %report, "job ran"),
            Ok(None) => tracing::debug!(job = job.name(), "job slot taken by another instance"),
            Err(e) => tracing::error!(job = job.name(), error = format!("{e:#}"), "job failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn firings_are_the_schedules_own_in_their_time_zone() {
        let at = |h, m, sec| {
            chrono::TimeZone::with_ymd_and_hms(&crate::clock::beijing(), 2026, 12, 8, h, m, sec)
                .unwrap()
                .with_timezone(&Utc)
        };
        let day = Job::Reconciliation.firings(at(0, 0, 0), at(23, 59, 59));
        assert_eq!(day.len(), 9, "10:30 to 18:30 Beijing: {day:?}");
        assert_eq!((day[0], day[8]), (at(10, 30, 0), at(18, 30, 0)));
        assert_eq!(
            Job::Expire.firings(at(9, 0, 0), at(9, 2, 0)),
            [at(9, 0, 30), at(9, 1, 30)]
        );
        // The last firing lies within a period of the end; none when it is not after `after`.
        assert_eq!(
            Job::EntitlementExpiry.last_firing(at(0, 0, 0), at(9, 4, 59)),
            Some(at(8, 5, 0))
        );
        assert_eq!(Job::Erasure.last_firing(at(9, 0, 0), at(9, 9, 59)), None);
        assert!(Job::Events.firings(at(0, 0, 0), at(23, 0, 0)).is_empty());
    }

    #[test]
    fn instances_whose_clocks_differ_by_under_half_a_period_agree_on_the_slot() {
        let boundary = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let early = boundary - chrono::Duration::seconds(20);
        let late = boundary + chrono::Duration::seconds(20);
        assert_eq!(
            Job::ActiveQuery.slot_of(early),
            Job::ActiveQuery.slot_of(late)
        );
        assert_eq!(Job::ActiveQuery.slot_of(late), to_millis(boundary));
        // The next firing a minute later is the next slot.
        assert_eq!(
            Job::ActiveQuery.slot_of(late + chrono::Duration::minutes(1)),
            to_millis(boundary) + 60_000
        );
        let hourly = Job::EntitlementExpiry;
        assert_eq!(
            hourly.slot_of(boundary + chrono::Duration::minutes(5)),
            to_millis(boundary)
        );
    }

    #[test]
    fn every_job_has_a_distinct_name_and_a_lease_no_longer_than_its_period() {
        let names: std::collections::HashSet<_> = Job::ALL.iter().map(|j| j.name()).collect();
        assert_eq!(names.len(), Job::ALL.len());
        for job in Job::ALL {
            assert!(job.lease() <= job.period(), "{}", job.name());
            assert!(
                job.lease() >= chrono::Duration::minutes(1),
                "{}",
                job.name()
            );
        }
    }
}
