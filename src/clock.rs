//! Time is injected, so tests move it instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// The sandbox's simulated clock, when this is one: what `/sandbox/clock` moves.
    fn as_test_clock(&self) -> Option<&TestClock> {
        None
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The real clock shifted by an adjustable offset: tests jump forward in time while HTTP
/// timeouts and the sandbox keep running on real time.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Sandbox mode's simulated clock (issue 22), shared by the gateway and the embedded
/// simulator: the real time plus an offset that only grows. It starts at the real time and
/// moves only forward; nothing but the sandbox's `/sandbox/clock/advance` moves it, and a
/// gateway outside sandbox mode refuses to be built with one.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

/// A test clock asked to go back in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the test clock only moves forward: it is {now}, and {to} is before that")]
pub struct Backwards {
    pub now: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl TestClock {
    /// How far ahead of the real time it is.
    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock to `to`, refused when `to` is before now.
    pub fn advance_to(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, Backwards> {
        let now = self.now();
        if to < now {
            return Err(Backwards { now, to });
        }
        self.reach(to);
        Ok(self.now())
    }

    /// Moves the clock to `at` unless it is already past it (real time moves it on too): one
    /// step of an advance, never backwards.
    pub fn reach(&self, at: DateTime<Utc>) {
        let ahead = at - Utc::now();
        // Rounded up: never short of `at` by a fraction of a millisecond.
        let mut offset = ahead.num_milliseconds();
        if ahead > chrono::Duration::milliseconds(offset) {
            offset += 1;
        }
        self.offset_ms.fetch_max(offset, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }

    fn as_test_clock(&self) -> Option<&TestClock> {
        Some(self)
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// Beijing time (UTC+8, no daylight saving): every time paygate shows or sends.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A count of milliseconds since 1970 that no [`DateTime`] can hold (beyond ±262 000 years):
/// never read as some other time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} ms since 1970 is outside the representable times")]
pub struct OutOfRange(pub i64);

/// The time `ms` milliseconds after 1970-01-01T00:00:00Z. A stored time is decoded with
/// `store::time_of`, which names the column when this fails.
pub fn from_millis(ms: i64) -> Result<DateTime<Utc>, OutOfRange> {
    Utc.timestamp_millis_opt(ms).single().ok_or(OutOfRange(ms))
}

/// RFC 3339 with the +08:00 offset, seconds precision: "2026-11-29T12:00:00+08:00".
pub fn rfc3339_beijing(t: DateTime<Utc>) -> String {
    t.with_timezone(&beijing())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// [`rfc3339_beijing`] of a time held as milliseconds. For a time this process computed or one
/// its store decoder has checked (`store::time_of`, a decode error naming the column):
/// those are always in range. Should an unchecked one not be, it is logged and shown as the
/// number it is, never as another time.
pub fn rfc3339_beijing_millis(ms: i64) -> String {
    match from_millis(ms) {
        Ok(t) => rfc3339_beijing(t),
        Err(e) => {
            tracing::error!(error = %e, "a time out of range reached the output unchecked");
            ms.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_out_of_range_is_an_error_not_1970() {
        assert_eq!(from_millis(i64::MAX), Err(OutOfRange(i64::MAX)));
        assert_eq!(
            to_millis(from_millis(1_764_400_000_000).unwrap()),
            1_764_400_000_000
        );
        assert_eq!(rfc3339_beijing_millis(i64::MIN), i64::MIN.to_string());
    }

    #[test]
    fn a_test_clock_starts_now_and_moves_only_forward() {
        let clock = TestClock::default();
        let start = clock.now();
        assert!(
            (start - Utc::now()).num_seconds().abs() < 5,
            "starts at the real time"
        );
        let later = start + chrono::Duration::days(31);
        let moved = clock.advance_to(later).unwrap();
        assert!(moved >= later && moved - later < chrono::Duration::seconds(5));
        assert!(clock.offset() >= chrono::Duration::days(31) - chrono::Duration::seconds(5));
        let back = clock.advance_to(start).unwrap_err();
        assert_eq!(back.to, start);
        assert!(clock.now() >= later, "a refused move changes nothing");
        // A step to a time already passed is a no-op, never a step back.
        clock.reach(start);
        assert!(clock.now() >= later);
        assert!(clock.as_test_clock().is_some());
        assert!(SystemClock.as_test_clock().is_none());
    }

    #[test]
    fn times_are_shown_in_beijing_time_whatever_the_host_zone() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 16, 30, 0).unwrap();
        assert_eq!(rfc3339_beijing(t), "2026-11-29T00:30:00+08:00");
    }
}
