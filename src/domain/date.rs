//! Calendar dates as clients and operators write them: `YYYY-MM-DD`, exactly.

use chrono::NaiveDate;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("a date is written YYYY-MM-DD (four, two and two digits)")]
    Malformed,
    #[error("no such day in the calendar")]
    NoSuchDay,
}

/// Parses `YYYY-MM-DD` and nothing else: chrono's `%Y-%m-%d` also takes "2026-12-1", "+2026-12-01"
/// or " 2026-12-01", which are refused here. The one parser of every date paygate is given (the
/// API's reconciliation dates, the CLI, `[privacy] holidays`).
pub fn parse_date(text: &str) -> Result<NaiveDate, DateError> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return Err(DateError::Malformed);
    }
    let number = |range: std::ops::Range<usize>| -> u32 {
        b[range].iter().fold(0, |n, c| n * 10 + u32::from(c - b'0'))
    };
    let year = i32::try_from(number(0..4)).map_err(|_| DateError::Malformed)?;
    NaiveDate::from_ymd_opt(year, number(5..7), number(8..10)).ok_or(DateError::NoSuchDay)
}

/// `#[serde(deserialize_with)]` for a list of dates in the configuration.
pub fn deserialize_dates<'de, D>(d: D) -> Result<Vec<NaiveDate>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let texts = <Vec<String> as serde::Deserialize>::deserialize(d)?;
    texts
        .iter()
        .map(|t| parse_date(t).map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any text is a date or an error, never a panic; a date is exactly its own
        /// `YYYY-MM-DD` spelling, so whatever parses is written back byte for byte.
        #[test]
        fn a_date_is_accepted_only_in_its_one_spelling(
            text in prop_oneof![
                ".{0,14}",
                "[0-9]{1,5}-[0-9]{1,3}-[0-9]{1,3}",
                "[ +]?[0-9]{4}-[01][0-9]-[0-3][0-9][ ]?",
            ],
        ) {
            if let Ok(date) = parse_date(&text) {
                prop_assert_eq!(date.format("%Y-%m-%d").to_string(), text);
            }
        }

        /// Every day of the calendar is read from its spelling.
        #[test]
        fn every_real_day_parses(days in 0i64..3_000_000) {
            let date = NaiveDate::from_ymd_opt(1000, 1, 1).unwrap() + chrono::Duration::days(days % 3_287_000);
            let text = date.format("%Y-%m-%d").to_string();
            prop_assume!(text.len() == 10);
            prop_assert_eq!(parse_date(&text), Ok(date));
        }
    }

    #[test]
    fn lenient_spellings_of_a_date_are_refused() {
        for text in [
            "2026-12-1",
            "2026-1-01",
            "26-12-01",
            "+2026-12-01",
            " 2026-12-01",
            "2026-12-01 ",
            "2026/12/01",
            "20261201",
            "2026-12-01T00:00",
            "２026-12-01",
        ] {
            assert_eq!(parse_date(text), Err(DateError::Malformed), "{text:?}");
        }
        assert_eq!(parse_date("2026-02-30"), Err(DateError::NoSuchDay));
        assert_eq!(parse_date("2026-13-01"), Err(DateError::NoSuchDay));
        assert_eq!(
            parse_date("2026-12-01"),
            Ok(NaiveDate::from_ymd_opt(2026, 12, 1).unwrap())
        );
    }
}
