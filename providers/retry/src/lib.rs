//! The one retry policy of paygate's provider clients (WeChat Pay and Alipay).
//!
//! A call that changes nothing, or nothing twice (a query, a close, a bill request), is
//! repeated while the provider is unavailable: transport errors, 5xx, 429 and the providers'
//! "unknown error, try again" codes. Between attempts the client waits a delay drawn uniformly
//! from `[0, min(max_backoff, initial_backoff × 2^(n−1))]` after the n-th failure — exponential
//! back-off with *full jitter*, so many instances failing together do not retry in step.
//! When the provider says how long to wait (`Retry-After`), the client waits at least that
//! long; if that is longer than `max_backoff` it does not wait at all but gives the failure to
//! its caller, whose job runs again later. Attempts are capped by `max_attempts`.
//!
//! The random source is a parameter ([`RetryPolicy::delay_after`]), so the policy is tested
//! with a seeded generator.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how patiently a call is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    /// The upper bound of the first delay; doubled after each further failure.
    pub initial_backoff: Duration,
    /// No delay is longer, and a `Retry-After` longer than this ends the retries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// A failure that may go away if the same call is made again.
pub trait Transient {
    /// The provider is unavailable (transport, 5xx, 429, "try again"): repeating is safe and
    /// may help. Anything else (a rejection, a response that failed verification) is final.
    fn is_transient(&self) -> bool;

    /// How long the provider asked us to wait (`Retry-After`), if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl RetryPolicy {
    /// The wait before the next attempt after `failures` consecutive failures (1 after the
    /// first), or `None` when no further attempt is to be made: the attempts are used up, or the
    /// provider asked for a longer wait than `max_backoff`.
    pub fn delay_after<R: Rng + ?Sized>(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Option<Duration> {
        if failures == 0 || failures >= self.max_attempts {
            return None;
        }
        if retry_after.is_some_and(|wait| wait > self.max_backoff) {
            return None;
        }
        let doublings = (failures - 1).min(31);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(rng.random_range(0..=ceiling_nanos));
        Some(match retry_after {
            Some(wait) => jittered.max(wait),
            None => jittered,
        })
    }

    /// Runs `attempt` (given the attempt number, from 1) until it succeeds, fails for good, or
    /// the policy says stop; `on_retry` is told of each failure that is retried and the delay
    /// chosen (for a log line that names the call).
    pub async fn run<T, E, F, Fut>(
        &self,
        mut attempt: F,
        mut on_retry: impl FnMut(&E, u32, Duration),
    ) -> Result<T, E>
    where
        E: Transient,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut number = 1;
        loop {
            let error = match attempt(number).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            if !error.is_transient() {
                return Err(error);
            }
            // The thread's generator is used and dropped before the await: the future stays Send.
            let delay = self.delay_after(number, error.retry_after(), &mut rand::rng());
            let Some(delay) = delay else {
                return Err(error);
            };
            on_retry(&error, number, delay);
            tokio::time::sleep(delay).await;
            number += 1;
        }
    }
}

/// A `Retry-After` header value in delay-seconds (RFC 9110 §10.2.3). An HTTP-date is not
/// honoured (neither provider documents one) and reads as absent, as does anything malformed.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        }
    }

    #[test]
    fn delays_are_jittered_below_a_doubling_capped_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        let ceilings = [100, 200, 400, 500];
        for (failures, ceiling) in (1..=4).zip(ceilings) {
            let draws: Vec<Duration> = (0..2000)
                .map(|_| policy().delay_after(failures, None, &mut rng).unwrap())
                .collect();
            let ceiling = Duration::from_millis(ceiling);
            assert!(draws.iter().all(|d| *d <= ceiling), "failure {failures}");
            // Full jitter: the draws spread over the whole range, not bunched at the ceiling.
            assert!(draws.iter().any(|d| *d < ceiling / 4), "failure {failures}");
            assert!(
                draws.iter().any(|d| *d > ceiling * 3 / 4),
                "failure {failures}"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (1..5)
                .map(|n| policy().delay_after(n, None, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn attempts_are_capped() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(policy().delay_after(4, None, &mut rng).is_some());
        assert_eq!(policy().delay_after(5, None, &mut rng), None);
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy()
        };
        assert_eq!(once.delay_after(1, None, &mut rng), None);
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_a_wait_ends_the_retries() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let delay = policy()
                .delay_after(1, Some(Duration::from_millis(300)), &mut rng)
                .unwrap();
            assert!(delay >= Duration::from_millis(300));
            assert!(delay <= Duration::from_millis(500));
        }
        assert_eq!(
            policy().delay_after(1, Some(Duration::from_secs(1)), &mut rng),
            None
        );
    }

    #[test]
    fn retry_after_header_values() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1.5"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after(""), None);
    }

    #[derive(Debug)]
    struct Failure {
        transient: bool,
        retry_after: Option<Duration>,
    }

    impl Transient for Failure {
        fn is_transient(&self) -> bool {
            self.transient
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn run_retries_transient_failures_up_to_the_cap() {
        let calls = AtomicU32::new(0);
        let mut retried = Vec::new();
        let result: Result<(), Failure> = fast()
            .run(
                |_| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Failure {
                        transient: true,
                        retry_after: None,
                    })
                },
                |_, attempt, _| retried.push(attempt),
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(retried, vec![1, 2]);
    }

    #[tokio::test]
    async fn run_stops_at_a_final_failure_and_returns_a_later_success() {
        let calls = AtomicU32::new(0);
        let result: Result<u32, Failure> = fast()
            .run(
                |_| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Failure {
                        transient: false,
                        retry_after: None,
                    })
                },
                |_, _, _| {},
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let result: Result<u32, Failure> = fast()
            .run(
                |n| async move {
                    if n < 3 {
                        Err(Failure {
                            transient: true,
                            retry_after: None,
                        })
                    } else {
                        Ok(n)
                    }
                },
                |_, _, _| {},
            )
            .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn run_gives_up_when_told_to_wait_longer_than_the_cap() {
        let calls = AtomicU32::new(0);
        let result: Result<(), Failure> = fast()
            .run(
                |_| async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Failure {
                        transient: true,
                        retry_after: Some(Duration::from_secs(60)),
                    })
                },
                |_, _, _| {},
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
