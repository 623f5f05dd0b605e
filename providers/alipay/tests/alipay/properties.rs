//! Property tests (issue 12) of what an Alipay notification meets first: the form parser, the
//! sign-string builder, the notification check and amount parsing. Arbitrary input never
//! panics; whatever verifies carries exactly the signed parameters.
//!
//! Alipay signs parameters, not bytes (alipay.md §6: decoded, sorted, joined): `%41` and `A`,
//! `+` and `%20`, the order of the pairs, an empty pair, an empty value and `sign_type` are
//! outside what is signed. So the property checked of a mutated body is that if it verifies,
//! every signed parameter is the same and so is everything the gateway reads from it.
//!
//! `PROPTEST_CASES` sets the cases per property (2,000 when unset).

use std::sync::LazyLock;

use paygate_alipay::money::MAX_ORDER_FEN;
use paygate_alipay::simulator::sign_notification;
use paygate_alipay::{
    Params, SignRule, fen_to_yuan, verify_gateway_message, verify_trade_notification, yuan_to_fen,
};
use proptest::prelude::*;

use crate::fixtures::{ALIPAY_KEY, ALIPAY_PUBLIC_KEY};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2_000),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

static SIGNED: LazyLock<String> = LazyLock::new(|| {
    let params: Params = [
        ("notify_time", "2026-11-29 00:31:08"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "2026112900222003108000000000000001"),
        ("app_id", "2021000000000000"),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("trade_no", "2026112922001411111111111111"),
        ("out_trade_no", "P2026112900AB12"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "199.00"),
        ("seller_id", "2088000000000000"),
        ("subject", "职前通服务"),
        ("gmt_create", "2026-11-29 00:30:30"),
        ("gmt_payment", "2026-11-29 00:31:07"),
    ]
    .into_iter()
    .collect();
    sign_notification(params, &ALIPAY_KEY).expect("sign")
});

fn signed_content(form: &[u8]) -> Option<String> {
    Params::from_form(form)
        .ok()
        .map(|p| p.sign_content(SignRule::V1.excluded()))
}

#[derive(Debug, Clone)]
enum Mutation {
    Xor(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Append(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Xor(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        "&[a-z_]{1,12}=[A-Za-z0-9.%+]{0,12}".prop_map(Mutation::Append),
    ]
}

fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match m {
        Mutation::Xor(i, x) => {
            let i = i % out.len();
            out[i] ^= x;
        }
        Mutation::Insert(i, b) => out.insert(i % (out.len() + 1), *b),
        Mutation::Delete(i) => {
            out.remove(i % out.len());
        }
        Mutation::Append(pair) => out.extend_from_slice(pair.as_bytes()),
    }
    out
}

proptest! {
    #![proptest_config(config())]

    /// The form parser and the sign-string builder take any bytes.
    #[test]
    fn the_form_parser_and_sign_string_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(params) = Params::from_form(&bytes) {
            let _ = params.sign_content(SignRule::V1.excluded());
            let _ = params.sign_content(SignRule::V2.excluded());
        }
    }

    /// What `to_form` writes, `from_form` reads back unchanged (any keys and values).
    #[test]
    fn a_form_round_trips(pairs in proptest::collection::btree_map(".{1,12}", ".{0,24}", 0..12)) {
        let params: Params = pairs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        prop_assert_eq!(Params::from_form(params.to_form().as_bytes()), Ok(params));
    }

    /// The sign string is the sorted, non-empty, non-excluded `k=v` pairs, whatever the input
    /// order: two parameter sets sign the same string only if they agree on those pairs.
    #[test]
    fn the_sign_string_is_the_sorted_signed_pairs(
        pairs in proptest::collection::btree_map("[a-z_]{1,8}", "[A-Za-z0-9 ]{0,8}", 0..10),
    ) {
        let params: Params = pairs.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
        let expected: Vec<String> = pairs
            .iter()
            .filter(|(k, v)| !v.is_empty() && k.as_str() != "sign" && k.as_str() != "sign_type")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        prop_assert_eq!(params.sign_content(SignRule::V1.excluded()), expected.join("&"));
    }

    /// Arbitrary bodies never panic and never verify.
    #[test]
    fn arbitrary_notifications_never_verify(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            "notify_type=trade_status_sync&sign_type=RSA2&sign=[A-Za-z0-9+/=%]{0,400}(&[a-z_]{1,10}=[^&]{0,20}){0,10}"
                .prop_map(String::into_bytes),
        ],
    ) {
        prop_assert!(verify_trade_notification(&body, &ALIPAY_PUBLIC_KEY).is_err());
        prop_assert!(verify_gateway_message(&body, "alipay.open.servicemarket.order.notify", &ALIPAY_PUBLIC_KEY).is_err());
    }

    /// A signed notification with one change verifies only if every signed parameter is the
    /// same, and then reads exactly as the original.
    #[test]
    fn a_mutated_notification_verifies_only_with_the_signed_parameters(m in mutation()) {
        let original = SIGNED.as_bytes();
        let expected = verify_trade_notification(original, &ALIPAY_PUBLIC_KEY).expect("genuine");
        let body = mutate(original, &m);
        if let Ok(read) = verify_trade_notification(&body, &ALIPAY_PUBLIC_KEY) {
            prop_assert_eq!(signed_content(&body), signed_content(original));
            prop_assert_eq!(read, expected);
        }
    }

    /// Amounts: any text is taken or refused without panic; what is taken is `digits[.digits]`
    /// and written back as the same number of fen.
    #[test]
    fn amount_parsing_is_exact(text in prop_oneof![".{0,24}", "[0-9]{1,14}(\\.[0-9]{1,4})?"]) {
        if let Ok(fen) = yuan_to_fen(&text) {
            prop_assert!(fen >= 0);
            prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
            prop_assert_eq!(yuan_to_fen(&fen_to_yuan(fen).unwrap()), Ok(fen));
        }
    }

    #[test]
    fn fen_round_trip_through_yuan(fen in 0..=MAX_ORDER_FEN * 10) {
        let text = fen_to_yuan(fen).unwrap();
        prop_assert_eq!(yuan_to_fen(&text), Ok(fen));
    }
}
