//! Alipay's times are `yyyy-MM-dd HH:mm:ss` in Beijing time, whatever zone the server runs in.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;

const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// The same, with an optional fraction of a second after the seconds (chrono's `%.f` parses a
/// `.` and 1-9 digits when they are there).
const FORMAT_WITH_FRACTION: &str = "%Y-%m-%d %H:%M:%S%.f";

/// `timestamp`, `time_expire`: "2026-11-29 00:30:00" for 2026-11-28T16:30:00Z.
pub fn beijing_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Shanghai).format(FORMAT).to_string()
}

/// A time Alipay sends (`notify_time`, `gmt_payment`, `send_pay_date`), read as Beijing time.
pub fn parse_beijing_time(text: &str) -> Option<DateTime<Utc>> {
    parse_with(text, FORMAT)
}

/// A refund notification's `gmt_refund` / `gmt_close`: `yyyy-MM-dd HH:mm:ss`, or with
/// milliseconds (`2020-01-08 17:17:05.296`) as real refund notifications carry them. The
/// fraction is kept, not rounded.
pub fn parse_beijing_time_with_fraction(text: &str) -> Option<DateTime<Utc>> {
    parse_with(text, FORMAT_WITH_FRACTION)
}

fn parse_with(text: &str, format: &str) -> Option<DateTime<Utc>> {
    let local = NaiveDateTime::parse_from_str(text, format).ok()?;
    // Asia/Shanghai has had no DST since 1991, so every local time maps to one instant.
    Shanghai
        .from_local_datetime(&local)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utc_instant_just_before_midnight_utc_is_the_next_morning_in_beijing() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 16, 30, 0).unwrap();
        assert_eq!(beijing_time(t), "2026-11-29 00:30:00");
    }

    #[test]
    fn a_utc_instant_just_after_4pm_utc_crosses_the_beijing_date_line() {
        let before = Utc.with_ymd_and_hms(2026, 12, 31, 15, 59, 59).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 12, 31, 16, 0, 0).unwrap();
        assert_eq!(beijing_time(before), "2026-12-31 23:59:59");
        assert_eq!(beijing_time(after), "2027-01-01 00:00:00");
    }

    #[test]
    fn beijing_times_read_back_to_the_same_instant() {
        let t = Utc.with_ymd_and_hms(2019, 8, 15, 7, 56, 24).unwrap();
        assert_eq!(parse_beijing_time("2019-08-15 15:56:24"), Some(t));
        assert_eq!(parse_beijing_time(&beijing_time(t)), Some(t));
        assert_eq!(parse_beijing_time("2019-08-15T15:56:24"), None);
        assert_eq!(parse_beijing_time("2019-08-15 15:56:24.321"), None);
    }

    #[test]
    fn refund_times_may_carry_milliseconds_which_are_kept() {
        let t = Utc.with_ymd_and_hms(2020, 1, 8, 9, 17, 5).unwrap();
        assert_eq!(
            parse_beijing_time_with_fraction("2020-01-08 17:17:05"),
            Some(t)
        );
        assert_eq!(
            parse_beijing_time_with_fraction("2020-01-08 17:17:05.296"),
            Some(t + chrono::Duration::milliseconds(296))
        );
        for bad in [
            "2020-01-08 17:17:05.",
            "2020-01-08 17:17:05.29x",
            "2020-01-08 17:17",
            "2020-01-08T17:17:05.296",
            "2020-01-08 17:17:05 ",
            "",
        ] {
            assert_eq!(parse_beijing_time_with_fraction(bad), None, "{bad:?}");
        }
    }
}
