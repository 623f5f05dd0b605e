//! Times are stored as milliseconds since 1970 (`BIGINT`). Decoded here, with the column's
//! name when a stored value is no time at all: never read as 1970 or as "now".

use chrono::{DateTime, Utc};

use super::orders::corrupt;
use crate::clock::{from_millis, to_millis};

/// The stored `ms` of `column` as a time; out of range is a decode error naming the column.
pub fn time_of(column: &'static str, ms: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    from_millis(ms).map_err(|e| corrupt(column, e))
}

/// [`time_of`] for a nullable column.
pub fn opt_time_of(
    column: &'static str,
    ms: Option<i64>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    ms.map(|ms| time_of(column, ms)).transpose()
}

/// A time as stored.
pub fn millis(t: DateTime<Utc>) -> i64 {
    to_millis(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_out_of_range_is_a_decode_error_naming_the_column() {
        let t = time_of("created_at", 1_764_400_000_000).unwrap();
        assert_eq!(millis(t), 1_764_400_000_000);
        let err = time_of("created_at", i64::MAX).unwrap_err();
        assert!(err.to_string().contains("created_at"), "{err}");
        assert_eq!(opt_time_of("failed_at", None).unwrap(), None);
        assert!(opt_time_of("failed_at", Some(i64::MIN)).is_err());
    }
}
