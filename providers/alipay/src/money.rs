//! Alipay writes amounts in yuan ("199.00"); paygate counts integer fen. Conversions are exact:
//! an amount that is not a whole number of fen is rejected, never rounded.

use rust_decimal::Decimal;

/// Alipay's `total_amount` range is [0.01, 100000000] yuan.
pub const MAX_ORDER_FEN: i64 = 10_000_000_000;

/// An amount that cannot be taken as fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is not a plain decimal number")]
    NotANumber,
    #[error("amount is not a whole number of fen")]
    TooPrecise,
    #[error("amount is negative")]
    Negative,
    #[error("amount is out of range")]
    OutOfRange,
}

/// 19900 → "199.00". Integer arithmetic only; negative amounts do not exist on the wire.
pub fn fen_to_yuan(fen: i64) -> Result<String, AmountError> {
    if fen < 0 {
        return Err(AmountError::Negative);
    }
    Ok(format!("{}.{:02}", fen / 100, fen % 100))
}

/// "199.00", "199.5" or "199" → fen. "199.001", "-1", "1e3", " 1", "+1", "" are rejected.
pub fn yuan_to_fen(text: &str) -> Result<i64, AmountError> {
    if text.starts_with('-') {
        return Err(AmountError::Negative);
    }
    // Only `digits[.digits]`: Decimal would also take forms ("1e3", "+1", "_") Alipay never sends.
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let plain = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !plain(whole) || !plain(fraction) {
        return Err(AmountError::NotANumber);
    }
    let yuan: Decimal = text.parse().map_err(|_| AmountError::NotANumber)?;
    let fen = yuan
        .checked_mul(Decimal::ONE_HUNDRED)
        .ok_or(AmountError::OutOfRange)?;
    if !fen.fract().is_zero() {
        return Err(AmountError::TooPrecise);
    }
    i64::try_from(fen).map_err(|_| AmountError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fen_are_written_as_yuan_with_two_decimals() {
        assert_eq!(fen_to_yuan(19900).unwrap(), "199.00");
        assert_eq!(fen_to_yuan(1).unwrap(), "0.01");
        assert_eq!(fen_to_yuan(10).unwrap(), "0.10");
        assert_eq!(fen_to_yuan(0).unwrap(), "0.00");
        assert_eq!(fen_to_yuan(MAX_ORDER_FEN).unwrap(), "100000000.00");
        assert_eq!(fen_to_yuan(-1), Err(AmountError::Negative));
    }

    #[test]
    fn yuan_with_two_decimals_one_decimal_or_none_parse_to_exact_fen() {
        assert_eq!(yuan_to_fen("199.00"), Ok(19900));
        assert_eq!(yuan_to_fen("199"), Ok(19900));
        assert_eq!(yuan_to_fen("199.5"), Ok(19950));
        assert_eq!(yuan_to_fen("0.01"), Ok(1));
        assert_eq!(yuan_to_fen("0.10"), Ok(10));
        // Trailing zeros past the fen are still a whole number of fen.
        assert_eq!(yuan_to_fen("199.000"), Ok(19900));
    }

    #[test]
    fn an_amount_finer_than_a_fen_is_rejected_not_rounded() {
        assert_eq!(yuan_to_fen("199.001"), Err(AmountError::TooPrecise));
        assert_eq!(yuan_to_fen("0.005"), Err(AmountError::TooPrecise));
    }

    #[test]
    fn negative_and_non_plain_amounts_are_rejected() {
        assert_eq!(yuan_to_fen("-1"), Err(AmountError::Negative));
        assert_eq!(yuan_to_fen("-0.00"), Err(AmountError::Negative));
        for text in [
            "", "1e3", "+1", " 1", "1 ", "1.", ".5", "1,00", "1.0.0", "NaN", "１",
        ] {
            assert_eq!(yuan_to_fen(text), Err(AmountError::NotANumber), "{text:?}");
        }
    }

    #[test]
    fn an_amount_beyond_i64_fen_is_out_of_range() {
        assert_eq!(
            yuan_to_fen("99999999999999999999999"),
            Err(AmountError::OutOfRange)
        );
    }
}
