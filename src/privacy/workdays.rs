//! When an erasure is due: "2个工作日内" (privacy policy §一), two working days in Asia/Shanghai,
//! Monday to Friday less the configured `[privacy] holidays`.
//!
//! The day of the request does not count (a request at 17:59 on a Monday must not be due that
//! evening); the request is due by the end (23:59:59 Beijing) of the second working day after
//! the day it was made. A request on a Friday or a Saturday is due by Tuesday's end.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};

use crate::clock::beijing;

pub fn is_working_day(day: NaiveDate, holidays: &[NaiveDate]) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && !holidays.contains(&day)
}

/// The end of the second working day after the (Beijing) day of `requested_at`.
pub fn due_by(requested_at: DateTime<Utc>, holidays: &[NaiveDate]) -> DateTime<Utc> {
    let mut day = requested_at.with_timezone(&beijing()).date_naive();
    let mut counted = 0;
    // Bounded: a year of configured holidays cannot hold more than 366 days in a row.
    for _ in 0..400 {
        day = day.succ_opt().unwrap_or(day);
        if is_working_day(day, holidays) {
            counted += 1;
            if counted == 2 {
                break;
            }
        }
    }
    let next_midnight = day
        .succ_opt()
        .unwrap_or(day)
        .and_time(chrono::NaiveTime::MIN);
    let end = beijing()
        .from_local_datetime(&next_midnight)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(requested_at);
    end - Duration::seconds(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339_beijing;

    fn beijing_time(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        beijing()
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_monday_request_is_due_by_wednesday_evening() {
        // 2026-11-30 is a Monday.
        let due = due_by(beijing_time(2026, 11, 30, 10), &[]);
        assert_eq!(rfc3339_beijing(due), "2026-12-02T23:59:59+08:00");
    }

    #[test]
    fn the_weekend_does_not_count() {
        // Thursday → Friday, Monday.
        let due = due_by(beijing_time(2026, 12, 3, 9), &[]);
        assert_eq!(rfc3339_beijing(due), "2026-12-07T23:59:59+08:00");
        // Friday and Saturday → Monday, Tuesday.
        for day in [4, 5] {
            let due = due_by(beijing_time(2026, 12, day, 15), &[]);
            assert_eq!(rfc3339_beijing(due), "2026-12-08T23:59:59+08:00");
        }
    }

    #[test]
    fn the_beijing_day_decides_not_the_utc_day() {
        // Friday 23:30 UTC is already Saturday 07:30 in Beijing: Monday, Tuesday.
        let friday_night_utc = Utc.with_ymd_and_hms(2026, 12, 4, 23, 30, 0).unwrap();
        let due = due_by(friday_night_utc, &[]);
        assert_eq!(rfc3339_beijing(due), "2026-12-08T23:59:59+08:00");
    }

    #[test]
    fn configured_holidays_do_not_count() {
        // National Day week 2026: Thursday 10-01 to Wednesday 10-07 configured as holidays.
        let golden_week: Vec<NaiveDate> = (1..=7).map(|d| date(&format!("2026-10-0{d}"))).collect();
        // Requested Wednesday 09-30 → Thursday 10-08, Friday 10-09.
        let due = due_by(beijing_time(2026, 9, 30, 11), &golden_week);
        assert_eq!(rfc3339_beijing(due), "2026-10-09T23:59:59+08:00");
        // One holiday on a Tuesday: Monday request → Wednesday, Thursday.
        let due = due_by(beijing_time(2026, 11, 30, 10), &[date("2026-12-01")]);
        assert_eq!(rfc3339_beijing(due), "2026-12-03T23:59:59+08:00");
        // A holiday on a weekend changes nothing.
        let due = due_by(beijing_time(2026, 12, 4, 10), &[date("2026-12-05")]);
        assert_eq!(rfc3339_beijing(due), "2026-12-08T23:59:59+08:00");
    }
}
