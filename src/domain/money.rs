//! Money is an integer number of fen inside paygate; decimals exist only at the edges.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of Chinese yuan in fen (1/100 yuan). Never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fen(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is not written as digits with at most two decimals, like 50 or 50.00")]
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

    /// Parses an amount in yuan written exactly as `^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$`
    /// (DESIGN.md §1.3): "199.00", "199.5" or "199". Nothing else is an amount: no sign, no
    /// space, no exponent, no leading zero, no bare point (".5", "1."); "199.001" is refused,
    /// never rounded. The one parser of every amount a client or an operator writes.
    pub fn parse_yuan(text: &str) -> Result<Fen, AmountError> {
        if let Some(rest) = text.strip_prefix('-') {
            // Said plainly: a negative amount, not a malformed one.
            return Err(match Fen::parse_yuan(rest) {
                Ok(_) => AmountError::Negative,
                Err(e) => e,
            });
        }
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (whole.len() > 1 && whole.starts_with('0')) {
            return Err(AmountError::NotANumber);
        }
        let fen_part = match fraction {
            None => 0,
            Some(f) if !digits(f) => return Err(AmountError::NotANumber),
            Some(f) if f.len() > 2 => return Err(AmountError::TooPrecise),
            // "5" is 50 fen, "05" is 5: the digits are tenths and hundredths.
            Some(f) => f
                .bytes()
                .zip([10, 1])
                .map(|(b, w)| i64::from(b - b'0') * w)
                .sum(),
        };
        let yuan: i64 = whole.parse().map_err(|_| AmountError::TooLarge)?;
        let fen = yuan
            .checked_mul(100)
            .and_then(|f| f.checked_add(fen_part))
            .ok_or(AmountError::TooLarge)?;
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

        /// The grammar is exactly `^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$`: whatever text the regex
        /// refuses is refused, and what it accepts (short enough for i64) is that many fen.
        #[test]
        fn an_amount_is_accepted_exactly_when_it_matches_the_grammar(
            text in prop_oneof![
                "[ +\\-0-9.eE]{0,8}",
                "(0|[1-9][0-9]{0,12})(\\.[0-9]{1,2})?",
                "[ ]?0?[0-9]{0,4}\\.?[0-9]{0,3}[ ]?",
                ".{0,12}",
            ],
        ) {
            let grammar = regex_lite_amount(&text);
            match Fen::parse_yuan(&text) {
                Ok(fen) => {
                    prop_assert!(grammar, "accepted {:?}", text);
                    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
                    let expected = whole.parse::<i64>().unwrap() * 100
                        + format!("{frac:0<2}").parse::<i64>().unwrap();
                    prop_assert_eq!(fen.get(), expected);
                }
                Err(_) => prop_assert!(!grammar, "refused {:?}", text),
            }
        }
    }

    /// The grammar written out independently of the parser (no regex crate in the build).
    fn regex_lite_amount(text: &str) -> bool {
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (text, None),
        };
        let whole_ok = whole == "0"
            || (whole.len() <= 13
                && whole.starts_with(|c: char| ('1'..='9').contains(&c))
                && whole.chars().all(|c| c.is_ascii_digit()));
        let frac_ok = frac
            .is_none_or(|f| (1..=2).contains(&f.len()) && f.chars().all(|c| c.is_ascii_digit()));
        whole_ok && frac_ok
    }

    #[test]
    fn lenient_spellings_of_an_amount_are_refused() {
        for text in [
            ".5", "1.", " 1.00", "1.00 ", "+1", "1e2", "01.00", "00", "1.0.0", "1,00", "１.00", "",
            ".", "-0", "1_000",
        ] {
            assert!(Fen::parse_yuan(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(Fen::parse_yuan("0").unwrap().get(), 0);
        assert_eq!(Fen::parse_yuan("0.5").unwrap().get(), 50);
        assert_eq!(Fen::parse_yuan("10.05").unwrap().get(), 1005);
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
