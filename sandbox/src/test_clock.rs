//! The standalone simulator's test clock (`paygate-sandbox --test-clock`, DESIGN.md §7): a
//! gateway configured with `[sandbox] test_clock = true` shares its simulated time with this
//! simulator, so the signatures each side makes and the windows each side checks agree.
//!
//! The clock is the real time plus an offset that only grows. The gateway reads it when it
//! starts (`GET /sandbox/clock`) and sets its own clock to it, and moves it to each step of an
//! advance before running that step's jobs (`PUT /sandbox/clock`). Neither route exists without
//! `--test-clock`; the embedded simulator of `serve --sandbox` needs neither, since it reads the
//! gateway's clock itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::SandboxClock;

/// The real time plus an offset that only grows: starts now, moves only forward.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    /// How far ahead of the real time it is.
    pub fn offset(&self) -> Duration {
        Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock to `at` unless it is already past it (never backwards); its now after.
    pub fn reach(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let ahead = at - Utc::now();
        // Rounded up: never short of `at` by a fraction of a millisecond.
        let mut offset = ahead.num_milliseconds();
        if ahead > Duration::milliseconds(offset) {
            offset += 1;
        }
        self.offset_ms.fetch_max(offset, Ordering::SeqCst);
        self.now()
    }

    /// The clock as [`crate::SandboxConfig::clock`] takes it.
    pub fn reader(self: &Arc<Self>) -> SandboxClock {
        let clock = self.clone();
        Arc::new(move || clock.now())
    }
}

/// `GET /sandbox/clock` and `PUT /sandbox/clock`, over `clock`: merged into the simulator's
/// router by `paygate-sandbox --test-clock` only.
pub fn routes(clock: Arc<TestClock>) -> Router {
    Router::new()
        .route("/sandbox/clock", get(show).put(set))
        .with_state(clock)
}

/// `{"now": "…+08:00" (milliseconds), "offset_seconds": N}`.
fn clock_json(now: DateTime<Utc>, offset: Duration) -> serde_json::Value {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
    json!({
        "now": now.with_timezone(&beijing).to_rfc3339_opts(SecondsFormat::Millis, false),
        "offset_seconds": offset.num_seconds(),
    })
}

async fn show(State(clock): State<Arc<TestClock>>) -> Response {
    axum::Json(clock_json(clock.now(), clock.offset())).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    now: String,
}

/// `PUT /sandbox/clock {"now": "<RFC 3339>"}`: moves the clock forward to that time; a time
/// already passed leaves it where it is (it never goes back). Answers where it is.
async fn set(State(clock): State<Arc<TestClock>>, body: Bytes) -> Response {
    let at = serde_json::from_slice::<SetBody>(&body)
        .map_err(|e| e.to_string())
        .and_then(|body| {
            DateTime::parse_from_rfc3339(&body.now)
                .map_err(|_| format!("now: {:?} is not an RFC 3339 time", body.now))
        });
    match at {
        Ok(at) => {
            let now = clock.reach(at.with_timezone(&Utc));
            tracing::info!(%now, "sandbox: test clock moved");
            axum::Json(clock_json(now, clock.offset())).into_response()
        }
        Err(message) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": "INVALID_REQUEST", "message": message})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_starts_now_and_moves_only_forward() {
        let clock = Arc::new(TestClock::default());
        let start = clock.now();
        assert!((start - Utc::now()).num_seconds().abs() < 5);
        let later = start + Duration::days(31);
        assert!(clock.reach(later) >= later);
        assert!(clock.reach(start) >= later, "never backwards");
        let read = clock.reader();
        assert!(read() >= later, "the simulator reads the moved clock");
    }
}
