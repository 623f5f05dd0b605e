//! Identifiers parsed once at the edge, so a signature says what it takes.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

const ORDER_NO_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The merchant order number sent to providers as `out_trade_no`.
///
/// 26 random characters from `[0-9A-Z]` (about 134 bits): it fits WeChat's 6–32 and Alipay's
/// 64-character rules and says nothing about the employer, the plan or the time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderNo(String);

impl OrderNo {
    pub const LEN: usize = 26;
    /// The longest order number [`OrderNo::parse`] accepts.
    pub const MAX_LEN: usize = 32;

    pub fn generate() -> OrderNo {
        OrderNo(random_alnum(Self::LEN))
    }

    /// Accepts what paygate issues: 26–32 characters of `[0-9A-Z]`.
    pub fn parse(text: &str) -> Option<OrderNo> {
        let ok = (26..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
        ok.then(|| OrderNo(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn random_alnum(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ORDER_NO_ALPHABET[rng.random_range(0..ORDER_NO_ALPHABET.len())] as char)
        .collect()
}

/// paygate's refund number: `RF` and 26 random `[0-9A-Z]` (28 characters). It is also the
/// provider's `out_refund_no` (WeChat, ≤ 64 of `[0-9A-Za-z_-|*@]`) and `out_request_no`
/// (Alipay, ≤ 64) for refunds paygate starts, and says nothing about anyone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RefundId(String);

impl RefundId {
    const PREFIX: &'static str = "RF";
    pub const LEN: usize = 28;

    pub fn generate() -> RefundId {
        RefundId(format!("{}{}", Self::PREFIX, random_alnum(Self::LEN - 2)))
    }

    pub fn parse(text: &str) -> Option<RefundId> {
        let ok = text.len() == Self::LEN
            && text.starts_with(Self::PREFIX)
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
        ok.then(|| RefundId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RefundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The number the provider knows a refund by (`out_refund_no` / `out_request_no`, column
/// `refund.out_refund_no`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutRefundNo {
    /// The number the refund was issued or reported under: our [`RefundId`] for refunds paygate
    /// started, the provider's for the others.
    Issued(String),
    /// A full refund inferred from a query answer that said the trade is refunded without
    /// saying by which refund (WeChat `REFUND`, Alipay `TRADE_CLOSED`); the notification that
    /// names it later gives it its number. Stored as `INFERRED-` + the order number.
    Inferred(OrderNo),
}

impl OutRefundNo {
    const INFERRED: &'static str = "INFERRED-";

    /// The stored text: `INFERRED-` + an order number is an inferred refund (anything else
    /// after that prefix is no number paygate wrote: None), any other non-empty text issued.
    pub fn parse(stored: &str) -> Option<OutRefundNo> {
        match stored.strip_prefix(Self::INFERRED) {
            Some(order_no) => OrderNo::parse(order_no).map(OutRefundNo::Inferred),
            None => (!stored.is_empty()).then(|| OutRefundNo::Issued(stored.to_owned())),
        }
    }

    pub fn is_inferred(&self) -> bool {
        matches!(self, OutRefundNo::Inferred(_))
    }
}

/// The stored text, which is also what the provider is asked with.
impl fmt::Display for OutRefundNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutRefundNo::Issued(no) => f.write_str(no),
            OutRefundNo::Inferred(order_no) => write!(f, "{}{order_no}", Self::INFERRED),
        }
    }
}

/// The platform's employer id: opaque to paygate, never sent to a provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmployerId(String);

impl EmployerId {
    pub fn parse(text: &str) -> Option<EmployerId> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        ok.then(|| EmployerId(text.to_owned()))
    }

    /// An id as a caller gives it for a new order: not one of the pseudonyms erasure writes
    /// (`erased:` + hex), so no order can be created under an erased account's name.
    pub fn of_caller(text: &str) -> Option<EmployerId> {
        Self::parse(text).filter(|id| !id.is_pseudonym())
    }

    /// Whether this is an erased employer's pseudonym.
    pub fn is_pseudonym(&self) -> bool {
        self.0.starts_with(PSEUDONYM_PREFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an erased employer's pseudonym starts with (see `privacy`).
pub const PSEUDONYM_PREFIX: &str = "erased:";

impl fmt::Display for EmployerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which payment provider an order goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    Wechatpay,
    Alipay,
}

impl ProviderId {
    pub const ALL: [ProviderId; 2] = [ProviderId::Wechatpay, ProviderId::Alipay];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Wechatpay => "wechatpay",
            ProviderId::Alipay => "alipay",
        }
    }

    pub fn parse(text: &str) -> Option<ProviderId> {
        match text {
            "wechatpay" => Some(ProviderId::Wechatpay),
            "alipay" => Some(ProviderId::Alipay),
            _ => None,
        }
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the buyer pays: WeChat `native`/`jsapi`/`h5`/`app`, Alipay `qr`/`page`/`wap`/`app`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Native,
    Jsapi,
    H5,
    App,
    Qr,
    Page,
    Wap,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Native => "native",
            Channel::Jsapi => "jsapi",
            Channel::H5 => "h5",
            Channel::App => "app",
            Channel::Qr => "qr",
            Channel::Page => "page",
            Channel::Wap => "wap",
        }
    }

    pub fn parse(text: &str) -> Option<Channel> {
        [
            Channel::Native,
            Channel::Jsapi,
            Channel::H5,
            Channel::App,
            Channel::Qr,
            Channel::Page,
            Channel::Wap,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }
}

/// A prefixed random id for rows other systems refer to (`ent_…`, `pay_…`).
pub fn prefixed_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_order_numbers_fit_both_providers_and_parse_back() {
        for _ in 0..100 {
            let no = OrderNo::generate();
            assert_eq!(no.as_str().len(), OrderNo::LEN);
            assert_eq!(OrderNo::parse(no.as_str()), Some(no));
        }
        assert_ne!(OrderNo::generate(), OrderNo::generate());
    }

    #[test]
    fn order_numbers_outside_the_alphabet_are_refused() {
        assert!(OrderNo::parse("p2026112912000000ab12cd34xx").is_none());
        assert!(OrderNo::parse("SHORT").is_none());
        assert!(OrderNo::parse("../../etc/passwd0000000000000").is_none());
    }

    #[test]
    fn refund_ids_are_random_and_parse_back() {
        let id = RefundId::generate();
        assert_eq!(id.as_str().len(), RefundId::LEN);
        assert_eq!(RefundId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(RefundId::generate(), id);
        assert!(RefundId::parse("RFabc").is_none());
        assert!(RefundId::parse(&OrderNo::generate().to_string()).is_none());
    }

    #[test]
    fn inferred_refund_numbers_are_stored_as_before_and_decoded_once() {
        let no = OrderNo::generate();
        let inferred = OutRefundNo::Inferred(no.clone());
        assert_eq!(inferred.to_string(), format!("INFERRED-{no}"));
        assert_eq!(OutRefundNo::parse(&inferred.to_string()), Some(inferred));
        let issued = RefundId::generate().to_string();
        assert_eq!(
            OutRefundNo::parse(&issued),
            Some(OutRefundNo::Issued(issued.clone()))
        );
        assert!(!OutRefundNo::parse(&issued).unwrap().is_inferred());
        assert!(OutRefundNo::parse("INFERRED-not an order").is_none());
        assert!(OutRefundNo::parse("").is_none());
    }

    #[test]
    fn employer_ids_are_bounded_and_plain() {
        assert!(EmployerId::parse("emp_42").is_some());
        assert!(EmployerId::parse("").is_none());
        assert!(EmployerId::parse("emp 42").is_none());
        assert!(EmployerId::parse(&"x".repeat(65)).is_none());
        assert!(EmployerId::parse("erased:0a1b").is_some());
        assert!(EmployerId::of_caller("erased:0a1b").is_none());
        assert!(EmployerId::of_caller("emp_erased:1").is_some());
    }
}
