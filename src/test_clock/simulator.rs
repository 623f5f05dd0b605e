//! A standalone simulator's clock, shared (DESIGN.md §7): with `[sandbox] test_clock = true`
//! the gateway runs beside `paygate-sandbox --test-clock` at `[sandbox] simulator_url`, whose
//! providers' sections point at it. The gateway's test clock starts where the simulator's is
//! (read once at start, so a restarted gateway picks up the simulated time), and an advance
//! moves the simulator's clock to each step before that step's jobs run, so the signatures
//! and windows of both sides agree (WeChat's 5-minute window is checked on every answer).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use crate::clock::{Clock, TestClock, beijing};
use crate::config::{Config, LimitsConfig};

/// The simulator whose clock this gateway's test clock is shared with.
#[derive(Clone)]
pub struct Simulator {
    /// `{simulator_url}/sandbox/clock`.
    clock_url: String,
    http: reqwest::Client,
}

/// The simulator's clock could not be read or moved.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorClockError {
    #[error("the simulator's clock at {url} could not be reached")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "the simulator at {url} answered {status}: is it `paygate-sandbox --test-clock`, and is \
         [sandbox] simulator_url its address?"
    )]
    Refused {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("the simulator at {url} answered a clock that does not read as one")]
    Unreadable {
        url: String,
        #[source]
        source: anyhow::Error,
    },
}

/// What the simulator's `GET`/`PUT /sandbox/clock` answer (its `offset_seconds` is not read).
#[derive(Deserialize)]
struct ClockAnswer {
    now: String,
}

impl Simulator {
    /// The simulator of `[sandbox]` when this gateway shares its clock (`test_clock = true`
    /// with a `simulator_url`, which validation requires); None otherwise.
    pub fn of(config: &Config) -> anyhow::Result<Option<Simulator>> {
        let sandbox = &config.sandbox;
        let Some(base) = sandbox.simulator_base().filter(|_| sandbox.test_clock) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .connect_timeout(LimitsConfig::ms(config.limits.provider_connect_timeout_ms))
            .timeout(LimitsConfig::ms(config.limits.provider_timeout_ms))
            .build()?;
        Ok(Some(Simulator {
            clock_url: format!("{base}/sandbox/clock"),
            http,
        }))
    }

    /// The simulator's now.
    pub async fn now(&self) -> Result<DateTime<Utc>, SimulatorClockError> {
        self.answer(self.http.get(&self.clock_url)).await
    }

    /// Moves the simulator's clock to `at` (it never goes back: already past it, it stays);
    /// answers its now after.
    pub async fn reach(&self, at: DateTime<Utc>) -> Result<DateTime<Utc>, SimulatorClockError> {
        let now = at
            .with_timezone(&beijing())
            .to_rfc3339_opts(SecondsFormat::Millis, false);
        let request = self
            .http
            .put(&self.clock_url)
            .json(&serde_json::json!({ "now": now }));
        self.answer(request).await
    }

    async fn answer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<DateTime<Utc>, SimulatorClockError> {
        let url = || self.clock_url.clone();
        let response = request
            .send()
            .await
            .map_err(|source| SimulatorClockError::Unreachable { url: url(), source })?;
        let status = response.status();
        if !status.is_success() {
            return Err(SimulatorClockError::Refused { url: url(), status });
        }
        let unreadable =
            |source: anyhow::Error| SimulatorClockError::Unreadable { url: url(), source };
        let answer: ClockAnswer = response
            .json()
            .await
            .map_err(|e| unreadable(anyhow::Error::new(e)))?;
        DateTime::parse_from_rfc3339(&answer.now)
            .map(|now| now.with_timezone(&Utc))
            .map_err(|e| unreadable(anyhow::Error::new(e).context(answer.now)))
    }

    /// At start: `clock` moves to the simulator's now, so both sides begin at one time (the
    /// simulator's clock outlives a gateway restart).
    pub async fn join(&self, clock: &TestClock) -> Result<DateTime<Utc>, SimulatorClockError> {
        clock.reach(self.now().await?);
        Ok(clock.now())
    }
}
