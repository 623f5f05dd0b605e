//! Alipay's times are `yyyy-MM-dd HH:mm:ss` in Beijing time, whatever zone the server runs in.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;

const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// `timestamp`, `time_expire`: "2026-11-29 00:30:00" for 2026-11-28T16:30:00Z.
pub fn beijing_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Shanghai).format(FORMAT).to_string()
}

/// A time Alipay sends (`notify_time`, `gmt_payment`, `send_pay_date`), read as Beijing time.
pub fn parse_beijing_time(text: &str) -> Option<DateTime<Utc>> {
    let local = NaiveDateTime::parse_from_str(text, FORMAT).ok()?;
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
    }
}
