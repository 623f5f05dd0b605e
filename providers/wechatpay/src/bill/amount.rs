//! The bill's numbers: yuan with at most 2 decimals to exact fen, and the summary's count,
//! which WeChat has been seen writing both as `12` and as `45.0`.

use std::fmt;

/// `"0.47"` → 47, `"12"` → 1200, `"0.0"` → 0. Anything else is refused, never rounded: more than
/// 2 decimals, a sign, spaces, an empty integer or fraction part, or more than `i64` fen.
pub(crate) fn parse_yuan(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let mut fen = digits(whole)?.checked_mul(100)?;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || fraction.len() > 2 {
            return None;
        }
        let cents = digits(fraction)?;
        fen = fen.checked_add(if fraction.len() == 1 {
            cents * 10
        } else {
            cents
        })?;
    }
    Some(fen)
}

/// The summary's 总交易单数: `12`, or `45.0` (any number of zeros after the point). `45.5` is
/// not a count and is refused.
pub(crate) fn parse_count(text: &str) -> Option<i64> {
    let whole = match text.split_once('.') {
        Some((whole, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => whole,
        Some(_) => return None,
        None => text,
    };
    digits(whole)
}

/// Non-empty ASCII digits, at most 18 of them (so they fit in `i64` with room to scale).
fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Non-negative fen as the bill writes yuan: `47` → `0.47`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Yuan(pub i64);

impl fmt::Display for Yuan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A non-negative fee in units of 0.00001 yuan (0.001 fen), as the bill's 手续费 column writes
/// it with 5 decimals: `6000` → `0.06000`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fee(pub i64);

impl fmt::Display for Fee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:05}", self.0 / 100_000, self.0 % 100_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parse_exactly_to_fen() {
        assert_eq!(parse_yuan("0.47"), Some(47));
        assert_eq!(parse_yuan("0.0"), Some(0));
        assert_eq!(parse_yuan("0.5"), Some(50));
        assert_eq!(parse_yuan("199"), Some(19900));
        assert_eq!(parse_yuan("00.01"), Some(1));
        assert_eq!(parse_yuan("92233720368547758.07"), Some(i64::MAX));
    }

    #[test]
    fn yuan_that_would_need_rounding_or_guessing_are_refused() {
        for bad in [
            "",
            ".",
            "1.",
            ".5",
            "0.001",
            "0.00000",
            "-1.00",
            "+1.00",
            " 1.00",
            "1.00 ",
            "1,00",
            "1.0a",
            "1e2",
            "0x10",
            "１.00",
            "92233720368547758.08",
            "9999999999999999999",
        ] {
            assert_eq!(parse_yuan(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn counts_are_whole_numbers_written_either_way() {
        assert_eq!(parse_count("12"), Some(12));
        assert_eq!(parse_count("45.0"), Some(45));
        assert_eq!(parse_count("45.00"), Some(45));
        for bad in ["45.5", "45.", "45.01", "", "-1", "4 5", ".0"] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn amounts_format_as_the_bill_writes_them() {
        assert_eq!(Yuan(0).to_string(), "0.00");
        assert_eq!(Yuan(47).to_string(), "0.47");
        assert_eq!(Yuan(19900).to_string(), "199.00");
        assert_eq!(Fee(0).to_string(), "0.00000");
        assert_eq!(Fee(6 * 19900).to_string(), "1.19400");
    }
}
