//! Sandbox mode's test clock (issue 22, DESIGN.md §7): `GET /sandbox/clock`,
//! `POST /sandbox/clock/advance` and the `Paygate-Test-Clock` header of every answer.
//!
//! The clock itself is [`crate::clock::TestClock`], the one clock of the gateway and the embedded
//! simulator. Moving it runs the jobs that became due on the way, in time order, before the
//! answer: each step sets the clock to the job's firing and runs that job's pass there
//! ([`plan`]). Jobs that fire more often than daily (the minute, ten-minute and hourly ones)
//! run at their last firing before each daily job (reconciliation at 10:30 Beijing, retention
//! at 03:00 Beijing) and before the target: every pass takes all that is due by its time, so
//! nothing is missed, and a month's advance is a few hundred passes, not tens of thousands.
//! The reconciliation runs once a day, at 10:30 (the sandbox's bills are always ready; its
//! hourly retries until 18:30 are for a bill that is not).
//!
//! Beside a standalone simulator (`[sandbox] test_clock = true`), the simulator's clock is
//! moved to each step before the gateway's ([`simulator`]); the embedded simulator of
//! `serve --sandbox` reads this clock itself.

mod simulator;

pub use simulator::{Simulator, SimulatorClockError};

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::{Clock, SharedClock, TestClock, rfc3339_beijing};
use crate::error::ApiError;
use crate::jobs::{Job, Runner};
use crate::state::AppState;

/// The header every answer of a gateway on a test clock carries: its now, RFC 3339 +08:00.
pub const HEADER: &str = "paygate-test-clock";

/// The longest single advance; a longer one is refused (split it).
pub const MAX_ADVANCE: Duration = Duration::days(366);

#[derive(Clone)]
struct Routes {
    clock: SharedClock,
    runner: Runner,
    /// The standalone simulator whose clock moves with this one (`[sandbox] test_clock`).
    simulator: Option<Simulator>,
    /// One advance at a time: two would interleave their steps.
    advancing: Arc<tokio::sync::Mutex<()>>,
}

/// The `/sandbox/clock` routes when `state`'s clock is a test clock; None otherwise (the
/// routes are then not served: 404 like any unknown path).
pub fn routes(state: &AppState) -> anyhow::Result<Option<Router>> {
    if state.clock.as_test_clock().is_none() {
        return Ok(None);
    }
    let routes = Routes {
        clock: state.clock.clone(),
        runner: Runner::new(state.clone()),
        simulator: Simulator::of(&state.config)?,
        advancing: Arc::default(),
    };
    Ok(Some(
        Router::new()
            .route("/sandbox/clock", get(show))
            .route("/sandbox/clock/advance", post(advance))
            .with_state(routes),
    ))
}

/// At start, beside a standalone simulator (`[sandbox] test_clock = true`): `clock`, which
/// must be a test clock, joins the simulator's, which is read once. Nothing otherwise.
pub async fn join_simulator(
    config: &crate::config::Config,
    clock: &SharedClock,
) -> anyhow::Result<()> {
    let Some(simulator) = Simulator::of(config)? else {
        return Ok(());
    };
    let Some(test_clock) = clock.as_test_clock() else {
        anyhow::bail!("[sandbox] test_clock = true: the gateway must be built on a test clock");
    };
    let now = simulator.join(test_clock).await.map_err(|e| {
        anyhow::Error::new(e).context("[sandbox] test_clock = true: reading the simulator's clock")
    })?;
    tracing::info!(now = %rfc3339_beijing(now), "test clock shared with the standalone simulator");
    Ok(())
}

/// `router` with the [`HEADER`] (and `Date` by the same clock) on every answer when `clock` is
/// a test clock; unchanged otherwise.
pub fn stamped(router: Router, clock: &SharedClock) -> Router {
    if clock.as_test_clock().is_none() {
        return router;
    }
    router.layer(axum::middleware::map_response_with_state(
        clock.clone(),
        stamp,
    ))
}

/// The [`HEADER`], and the HTTP `Date` at the test clock's now too (hyper writes its own only
/// when an answer has none), so no part of an answer shows the real time.
async fn stamp(State(clock): State<SharedClock>, mut response: Response) -> Response {
    let now = clock.now();
    // RFC 9110's IMF-fixdate: always GMT.
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    for (name, value) in [(HEADER, rfc3339_beijing(now)), ("date", date)] {
        match HeaderValue::try_from(value) {
            Ok(value) => {
                response.headers_mut().insert(name, value);
            }
            Err(e) => tracing::error!(error = %e, "the test clock's time is not a header value"),
        }
    }
    response
}

fn test_clock(routes: &Routes) -> Result<&TestClock, ApiError> {
    routes
        .clock
        .as_test_clock()
        .ok_or_else(|| ApiError::NotFound("not_found", "no such route".into()))
}

fn clock_json(clock: &TestClock) -> Value {
    json!({
        "now": rfc3339_beijing(clock.now()),
        "offset_seconds": clock.offset().num_seconds(),
    })
}

/// `GET /sandbox/clock`.
async fn show(State(routes): State<Routes>) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(clock_json(test_clock(&routes)?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceBody {
    by: Option<String>,
    to: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable("invalid_advance", message.into())
}

/// `POST /sandbox/clock/advance {"by": "20m"}` or `{"to": "2026-12-08T10:31:00+08:00"}`.
async fn advance(State(routes): State<Routes>, body: Bytes) -> Result<axum::Json<Value>, ApiError> {
    let clock = test_clock(&routes)?;
    let body: AdvanceBody = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            invalid(format!("request body: {e}"))
        } else {
            ApiError::bad_request("invalid_json", format!("request body: {e}"))
        }
    })?;
    let _one_at_a_time = routes.advancing.lock().await;
    let from = clock.now();
    let to = target(&body, from)?;
    // A simulator restarted meanwhile is back at the real time: it catches up first.
    let mut ran = Vec::new();
    move_to(&routes, clock, from, &ran).await?;
    for step in plan(from, to) {
        move_to(&routes, clock, step.at, &ran).await?;
        ran.push(run_step(&routes.runner, step).await);
    }
    move_to(&routes, clock, to, &ran).await?;
    let mut answer = clock_json(clock);
    answer["ran"] = Value::Array(ran);
    Ok(axum::Json(answer))
}

/// Moves the simulator's clock (beside a standalone one) to `at`, then this one: to `at`, or to
/// the simulator's now if that is later, so the two agree. A simulator that cannot be moved
/// stops the advance there (502), saying how far it got: both clocks stay at the last step
/// that ran, so nothing runs on clocks that disagree.
async fn move_to(
    routes: &Routes,
    clock: &TestClock,
    at: DateTime<Utc>,
    ran: &[Value],
) -> Result<(), ApiError> {
    let at = match &routes.simulator {
        None => at,
        Some(simulator) => match simulator.reach(at).await {
            Ok(simulator_now) => at.max(simulator_now),
            Err(e) => {
                let message = format!(
                    "the simulator's clock could not be moved to {}: the test clock stopped at \
                     {} after {} passes; advance again once the simulator answers",
                    rfc3339_beijing(at),
                    rfc3339_beijing(clock.now()),
                    ran.len()
                );
                return Err(ApiError::SimulatorUnavailable(
                    message,
                    anyhow::Error::new(e),
                ));
            }
        },
    };
    clock.reach(at);
    Ok(())
}

/// Where an advance goes: `by` after `from`, or `to`; after `from`, at most [`MAX_ADVANCE`].
fn target(body: &AdvanceBody, from: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let to = match (&body.by, &body.to) {
        (Some(by), None) => {
            let by = parse_by(by).ok_or_else(|| {
                invalid(format!(
                    "by: {by:?} is not a duration such as \"20m\", \"31d\", \"1d12h\" or \"PT15M\""
                ))
            })?;
            if by <= Duration::zero() {
                return Err(invalid("by: the clock moves forward by more than nothing"));
            }
            from.checked_add_signed(by)
                .ok_or_else(|| invalid("by: too far"))?
        }
        (None, Some(to)) => DateTime::parse_from_rfc3339(to)
            .map_err(|_| {
                invalid(format!(
                    "to: {to:?} is not an RFC 3339 time such as \"2026-12-08T10:31:00+08:00\""
                ))
            })?
            .with_timezone(&Utc),
        _ => return Err(invalid("give exactly one of \"by\" and \"to\"")),
    };
    if to < from {
        return Err(ApiError::Unprocessable(
            "clock_backwards",
            format!(
                "the test clock only moves forward: it is {}",
                rfc3339_beijing(from)
            ),
        ));
    }
    if to - from > MAX_ADVANCE {
        return Err(invalid("one advance goes at most 366 days; split it"));
    }
    Ok(to)
}

/// A duration: `20m`, `31d`, `1d12h` (units s, m, h, d, w) or ISO 8601 (`PT15M`, `P1DT2H`,
/// `P2W`); whole numbers only.
pub fn parse_by(text: &str) -> Option<Duration> {
    let seconds = match text.strip_prefix('P') {
        Some(iso) => iso_seconds(iso)?,
        None => groups(text, |unit| match unit {
            's' => Some(1),
            'm' => Some(60),
            'h' => Some(3_600),
            'd' => Some(86_400),
            'w' => Some(604_800),
            _ => None,
        })?,
    };
    Duration::try_seconds(seconds)
}

/// `P[nW][nD][T[nH][nM][nS]]` after its `P`.
fn iso_seconds(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut total: i64 = 0;
    if !date.is_empty() {
        total = groups(date, |unit| match unit {
            'W' => Some(604_800),
            'D' => Some(86_400),
            _ => None,
        })?;
    } else if time.is_none() {
        return None;
    }
    if let Some(time) = time {
        let seconds = groups(time, |unit| match unit {
            'H' => Some(3_600),
            'M' => Some(60),
            'S' => Some(1),
            _ => None,
        })?;
        total = total.checked_add(seconds)?;
    }
    Some(total)
}

/// The sum of one or more `<digits><unit>` groups, in seconds.
fn groups(text: &str, unit: impl Fn(char) -> Option<i64>) -> Option<i64> {
    let (mut total, mut count, mut digits) = (0_i64, 0, String::new());
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit(c)?)?)?;
        digits.clear();
        count += 1;
    }
    (digits.is_empty() && count > 0).then_some(total)
}

/// The jobs that fire more often than daily: before each daily firing and at the target, each
/// runs once, at its last firing since the previous step (a pass takes everything due by then).
/// Every scheduled job is here or in [`DAILY`] (`every_scheduled_job_is_in_the_plan`); the event
/// push is a loop on real time, not a schedule.
const FREQUENT: [Job; 6] = [
    Job::ActiveQuery,
    Job::Refunds,
    Job::Expire,
    Job::Erasure,
    Job::EntitlementExpiry,
    Job::PlatformKeys,
];

/// The daily jobs, each at its first firing of the Beijing day (retention at 03:00, the day's
/// reconciliation at 10:30; its hourly retries find the day reconciled, as the sandbox's bills
/// are always ready, and are not run).
const DAILY: [Job; 2] = [Job::Retention, Job::Reconciliation];

/// The first firing of each Beijing day of `job`, those in (`from`, `to`]: a day's first firing
/// before `from` leaves that day's later ones (retries) out too.
fn daily_firings(job: Job, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Step> {
    let day_of = |at: DateTime<Utc>| at.with_timezone(&crate::clock::beijing()).date_naive();
    let day_start = day_of(from)
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(crate::clock::beijing()).single())
        .map_or(from, |t| t.with_timezone(&Utc));
    let mut firsts: Vec<DateTime<Utc>> = Vec::new();
    for at in job.firings(day_start - Duration::milliseconds(1), to) {
        if firsts.last().is_none_or(|&last| day_of(last) != day_of(at)) {
            firsts.push(at);
        }
    }
    firsts
        .into_iter()
        .filter(|&at| at > from)
        .map(|at| Step { at, job })
        .collect()
}

/// One pass the advance runs: `job` with the clock at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub at: DateTime<Utc>,
    pub job: Job,
}

/// The passes of an advance from `from` to `to`, in time order: each daily firing on the way,
/// each preceded by the last firing of every frequent job since the previous one, and the last
/// firing of every frequent job before `to`.
pub fn plan(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Step> {
    let mut daily: Vec<Step> = DAILY
        .iter()
        .flat_map(|&job| daily_firings(job, from, to))
        .collect();
    daily.sort_by_key(|s| s.at);
    let mut steps = Vec::new();
    let mut since = from;
    let milestones = daily.into_iter().map(Some).chain([None]);
    for milestone in milestones {
        let until = milestone.map_or(to, |s| s.at);
        let mut frequent: Vec<Step> = FREQUENT
            .iter()
            .filter_map(|&job| job.last_firing(since, until).map(|at| Step { at, job }))
            .collect();
        frequent.sort_by_key(|s| s.at);
        steps.extend(frequent);
        steps.extend(milestone);
        since = until;
    }
    steps
}

/// Runs one step's pass, the clock already moved to it: what the pass did, or its error.
async fn run_step(runner: &Runner, step: Step) -> Value {
    let mut entry = json!({"job": step.job.name(), "at": rfc3339_beijing(step.at)});
    match runner.run_once(step.job).await {
        Ok(Value::Object(report)) => {
            for (key, value) in report {
                entry[key] = value;
            }
        }
        Ok(report) => entry["report"] = report,
        Err(e) => {
            tracing::error!(
                job = step.job.name(),
                error = format!("{e:#}"),
                "a job of a test clock advance failed"
            );
            entry["error"] = json!(format!("{e:#}"));
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn beijing(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        crate::clock::beijing()
            .with_ymd_and_hms(y, m, d, h, min, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn durations_are_read_in_both_forms_and_nothing_else() {
        assert_eq!(parse_by("20m"), Some(Duration::minutes(20)));
        assert_eq!(parse_by("31d"), Some(Duration::days(31)));
        assert_eq!(parse_by("1d12h"), Some(Duration::hours(36)));
        assert_eq!(parse_by("PT15M"), Some(Duration::minutes(15)));
        assert_eq!(parse_by("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_by("P2W"), Some(Duration::weeks(2)));
        for bad in [
            "",
            "20",
            "m",
            "20x",
            "-5m",
            "1.5h",
            "P",
            "PT",
            "P1H",
            "PT1D",
            "20 m",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_by(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_advance_of_twenty_minutes_runs_each_minute_job_once_at_its_last_firing() {
        let from = beijing(2026, 12, 7, 12, 0, 10);
        let steps = plan(from, from + Duration::minutes(20));
        let at = |job| steps.iter().find(|s| s.job == job).map(|s| s.at);
        assert_eq!(at(Job::ActiveQuery), Some(beijing(2026, 12, 7, 12, 20, 0)));
        assert_eq!(at(Job::Expire), Some(beijing(2026, 12, 7, 12, 19, 30)));
        assert_eq!(at(Job::Erasure), Some(beijing(2026, 12, 7, 12, 20, 0)));
        assert_eq!(
            at(Job::EntitlementExpiry),
            Some(beijing(2026, 12, 7, 12, 5, 0))
        );
        assert_eq!(at(Job::Reconciliation), None);
        assert!(
            steps.windows(2).all(|w| w[0].at <= w[1].at),
            "in time order"
        );
    }

    #[test]
    fn each_day_passed_gets_its_retention_and_its_reconciliation_at_beijing_times() {
        let from = beijing(2026, 12, 7, 12, 0, 0);
        let to = beijing(2026, 12, 9, 10, 31, 0);
        let steps = plan(from, to);
        let daily: Vec<_> = steps
            .iter()
            .filter(|s| matches!(s.job, Job::Reconciliation | Job::Retention))
            .map(|s| (s.job, s.at))
            .collect();
        assert_eq!(
            daily,
            vec![
                (Job::Retention, beijing(2026, 12, 8, 3, 0, 0)),
                (Job::Reconciliation, beijing(2026, 12, 8, 10, 30, 0)),
                (Job::Retention, beijing(2026, 12, 9, 3, 0, 0)),
                (Job::Reconciliation, beijing(2026, 12, 9, 10, 30, 0)),
            ]
        );
        assert!(
            steps.windows(2).all(|w| w[0].at <= w[1].at),
            "in time order"
        );
        // The expiry runs before each daily job and once more at the end.
        let expires = steps.iter().filter(|s| s.job == Job::Expire).count();
        assert_eq!(expires, 5);
        assert!(steps.iter().all(|s| s.at > from && s.at <= to));
    }

    #[test]
    fn every_scheduled_job_is_in_the_plan() {
        let from = beijing(2026, 12, 7, 12, 0, 0);
        let steps = plan(from, from + Duration::days(2));
        for job in Job::ALL {
            let scheduled = !job.firings(from, from + Duration::days(2)).is_empty();
            let planned = steps.iter().any(|s| s.job == job);
            assert_eq!(planned, scheduled, "{}", job.name());
        }
        assert_eq!(
            FREQUENT.len() + DAILY.len(),
            Job::ALL.len() - 1,
            "all but the push loop"
        );
    }

    #[test]
    fn a_month_is_a_few_hundred_passes() {
        let from = beijing(2026, 12, 7, 12, 0, 0);
        let steps = plan(from, from + Duration::days(31));
        assert!(steps.len() < 500, "{}", steps.len());
        assert_eq!(
            steps
                .iter()
                .filter(|s| s.job == Job::Reconciliation)
                .count(),
            31
        );
    }
}
