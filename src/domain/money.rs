//! Money is an integer number of fen inside paygate; decimals exist only at the edges.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of Chinese yuan in fen (1/100 yuan). Never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fen(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is not a decimal number")]
    NotANumber,
    #[error("amount has more than two decimal places")]
    TooPrecise,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount is too large")]
    TooLarge,
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub fn new(fen: i64) -> Result<Fen, AmountError> {
        if fen < 0 {
            return Err(AmountError::Negative);
        }
        Ok(Fen(fen))
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// Parses "199.00", "199.5" or "199": exact, so "199.001" is rejected, never rounded.
    pub fn parse_yuan(text: &str) -> Result<Fen, AmountError> {
        let text = text.trim();
        // Decimal accepts forms like "1e3"; amounts on the wire are plain digits.
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return Err(AmountError::NotANumber);
        }
        let value: Decimal = text.parse().map_err(|_| AmountError::NotANumber)?;
        // Checked: a 29-digit amount would overflow Decimal and panic.
        let fen = value
            .checked_mul(Decimal::ONE_HUNDRED)
            .ok_or(AmountError::TooLarge)?;
        if fen.fract() != Decimal::ZERO {
            return Err(AmountError::TooPrecise);
        }
        if fen.is_sign_negative() && fen != Decimal::ZERO {
            return Err(AmountError::Negative);
        }
        let fen: i64 = fen.trunc().try_into().map_err(|_| AmountError::TooLarge)?;
        Fen::new(fen)
    }

    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).filter(|v| *v >= 0).map(Fen)
    }
}

/// The currency of an amount. paygate sells in yuan only; a provider report in anything else
/// does not fit any order (there is no default: a missing currency is an error, not CNY).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Currency {
    #[serde(rename = "CNY")]
    Cny,
}

impl Currency {
    pub fn as_str(self) -> &'static str {
        match self {
            Currency::Cny => "CNY",
        }
    }

    pub fn parse(text: &str) -> Option<Currency> {
        (text == "CNY").then_some(Currency::Cny)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Two decimals, as every edge (API, Alipay, bills) writes yuan: 19900 → "199.00".
impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl Serialize for Fen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Fen::parse_yuan(&text).map_err(serde::de::Error::custom)
    }
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

        /// Any text is an amount or an error, never a panic; an amount is written back as the
        /// same number of fen.
        #[test]
        fn parsing_yuan_never_panics_and_round_trips(
            text in prop_oneof![".{0,40}", "-?[0-9]{0,32}(\\.[0-9]{0,32})?"],
        ) {
            if let Ok(fen) = Fen::parse_yuan(&text) {
                prop_assert!(fen.get() >= 0);
                prop_assert_eq!(Fen::parse_yuan(&fen.to_string()), Ok(fen));
            }
        }
    }

    #[test]
    fn an_amount_too_large_for_a_decimal_is_refused_not_a_panic() {
        assert!(Fen::parse_yuan("79228162514264337593543950335").is_err());
    }

    #[test]
    fn yuan_strings_parse_to_exact_fen() {
        assert_eq!(Fen::parse_yuan("199.00").unwrap().get(), 19900);
        assert_eq!(Fen::parse_yuan("199").unwrap().get(), 19900);
        assert_eq!(Fen::parse_yuan("0.01").unwrap().get(), 1);
        assert_eq!(Fen::parse_yuan("50.5").unwrap().get(), 5050);
    }

    #[test]
    fn sub_fen_precision_is_rejected_not_rounded() {
        assert_eq!(Fen::parse_yuan("199.001"), Err(AmountError::TooPrecise));
        assert_eq!(Fen::parse_yuan("0.005"), Err(AmountError::TooPrecise));
    }

    #[test]
    fn malformed_and_negative_amounts_are_rejected() {
        assert_eq!(Fen::parse_yuan("-1.00"), Err(AmountError::Negative));
        assert_eq!(Fen::parse_yuan("1e3"), Err(AmountError::NotANumber));
        assert_eq!(Fen::parse_yuan(""), Err(AmountError::NotANumber));
        assert_eq!(Fen::parse_yuan("abc"), Err(AmountError::NotANumber));
        assert_eq!(
            Fen::parse_yuan("99999999999999999999999"),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn fen_formats_with_two_decimals() {
        assert_eq!(Fen::new(19900).unwrap().to_string(), "199.00");
        assert_eq!(Fen::new(5).unwrap().to_string(), "0.05");
        assert_eq!(Fen::new(0).unwrap().to_string(), "0.00");
    }
}
