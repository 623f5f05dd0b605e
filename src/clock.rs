//! Time is injected, so tests move it instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
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
    fn times_are_shown_in_beijing_time_whatever_the_host_zone() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 16, 30, 0).unwrap();
        assert_eq!(rfc3339_beijing(t), "2026-11-29T00:30:00+08:00");
    }
}
