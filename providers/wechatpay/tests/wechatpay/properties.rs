//! Property tests (issue 12) of what a WeChat callback meets first: the `Authorization` header
//! parser, the signature headers and their check, the notification envelope and its encrypted
//! resource. Arbitrary input never panics; whatever verifies is byte for byte what was signed.
//!
//! `PROPTEST_CASES` sets the cases per property (2,000 when unset).

use std::sync::OnceLock;

use paygate_wechatpay::model::{EVENT_TRANSACTION_SUCCESS, EncryptedResource};
use paygate_wechatpay::{
    ApiV3Key, Authorization, Notification, PlatformKeys, SignatureHeaders, Transaction,
    decrypt_resource, signed_headers, verify_notification, verify_signed,
};
use proptest::prelude::*;

use crate::fixtures::{PLATFORM_SERIAL, platform_signer, platform_verifier};

const NOW: i64 = 1_780_000_000;
const NONCE: &str = "d824f2e086d3c1df967785d13fcd22ef";
const APIV3_KEY: &[u8] = b"0123456789abcdefABCDEF0123456789";
const PAID: &str = r#"{"appid":"wx8888888888888888","mchid":"1900000001","out_trade_no":"P2026112912000000AB12CD34","transaction_id":"4200000000202611290000000001","trade_type":"NATIVE","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2026-11-29T12:01:07+08:00","amount":{"total":19900,"payer_total":19900,"currency":"CNY","payer_currency":"CNY"}}"#;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrunk failures are reported, not written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn keys() -> &'static PlatformKeys {
    static KEYS: OnceLock<PlatformKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = PlatformKeys::new();
        keys.insert(PLATFORM_SERIAL, platform_verifier());
        keys
    })
}

fn apiv3() -> &'static ApiV3Key {
    static KEY: OnceLock<ApiV3Key> = OnceLock::new();
    KEY.get_or_init(|| ApiV3Key::new(APIV3_KEY).expect("32 bytes"))
}

/// One genuine notification: the body, and its signature headers (timestamp, nonce, signature).
struct Signed {
    body: Vec<u8>,
    timestamp: String,
    signature: String,
}

fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let body = serde_json::to_vec(&Notification {
            id: "EV-2026112912010700000001".to_owned(),
            create_time: "2026-11-29T12:01:07+08:00".to_owned(),
            event_type: EVENT_TRANSACTION_SUCCESS.to_owned(),
            resource_type: "encrypt-resource".to_owned(),
            summary: Some("支付成功".to_owned()),
            resource: EncryptedResource {
                algorithm: "AEAD_AES_256_GCM".to_owned(),
                ciphertext: apiv3().encrypt("VBNu9IF6GGnX", "transaction", PAID.as_bytes()),
                associated_data: Some("transaction".to_owned()),
                nonce: "VBNu9IF6GGnX".to_owned(),
                original_type: Some("transaction".to_owned()),
            },
        })
        .expect("serialises");
        let headers = signed_headers(platform_signer(), PLATFORM_SERIAL, NOW, NONCE, &body);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .expect("signed header")
        };
        Signed {
            timestamp: get("Wechatpay-Timestamp"),
            signature: get("Wechatpay-Signature"),
            body,
        }
    })
}

/// A change to a byte string: flip bits of one byte, insert one, or delete one.
#[derive(Debug, Clone)]
enum Mutation {
    Xor(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Xor(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
    ]
}

fn mutate(bytes: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match *m {
        Mutation::Xor(i, x) if !out.is_empty() => {
            let i = i % out.len();
            out[i] ^= x;
        }
        Mutation::Insert(i, b) => out.insert(i % (out.len() + 1), b),
        Mutation::Delete(i) if !out.is_empty() => {
            out.remove(i % out.len());
        }
        _ => {}
    }
    out
}

/// Which part of a signed notification a mutation hits.
#[derive(Debug, Clone, Copy)]
enum Part {
    Body,
    Timestamp,
    Nonce,
    Signature,
}

fn verify_parts(body: &[u8], timestamp: &str, nonce: &str, signature: &str) -> bool {
    let headers = SignatureHeaders {
        serial: PLATFORM_SERIAL,
        timestamp,
        nonce,
        signature,
    };
    verify_notification(keys(), &headers, body, NOW, apiv3()).is_ok()
}

proptest! {
    #![proptest_config(config())]

    /// The merchant-request `Authorization` parser (the sandbox's side) takes any text.
    #[test]
    fn the_authorization_parser_never_panics(text in ".{0,300}") {
        let _ = Authorization::parse(&text);
        let _ = Authorization::parse(&format!("WECHATPAY2-SHA256-RSA2048 {text}"));
    }

    /// Whatever it accepts, it writes back as a header that parses to the same attributes.
    #[test]
    fn an_authorization_that_parses_round_trips(
        mchid in "[0-9]{1,12}", nonce in "[0-9A-Za-z]{1,32}", timestamp in 0i64..=9_999_999_999,
        serial in "[0-9A-F]{1,40}", signature in "[0-9A-Za-z+/=]{1,344}",
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
    ) {
        let mut attributes = [
            format!("mchid=\"{mchid}\""),
            format!("nonce_str=\"{nonce}\""),
            format!("timestamp=\"{timestamp}\""),
            format!("serial_no=\"{serial}\""),
            format!("signature=\"{signature}\""),
        ];
        attributes.rotate_left((order % 5) as usize);
        let header = format!("WECHATPAY2-SHA256-RSA2048 {}", attributes.join(","));
        let parsed = Authorization::parse(&header).expect("well-formed");
        prop_assert_eq!(&parsed.mchid, &mchid);
        prop_assert_eq!(parsed.timestamp, timestamp);
        prop_assert_eq!(Authorization::parse(&parsed.to_header()), Ok(parsed));
    }

    /// Arbitrary signature headers and body: no panic, and never verified.
    #[test]
    fn arbitrary_signature_headers_never_verify(
        serial in prop_oneof![Just(PLATFORM_SERIAL.to_owned()), ".{0,64}"],
        timestamp in prop_oneof![Just(NOW.to_string()), ".{0,24}"],
        nonce in ".{0,40}", signature in prop_oneof!["[A-Za-z0-9+/=]{0,400}", ".{0,400}"],
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let headers = SignatureHeaders { serial: &serial, timestamp: &timestamp, nonce: &nonce, signature: &signature };
        prop_assert!(verify_signed(keys(), &headers, &body, NOW).is_err());
        prop_assert!(verify_notification(keys(), &headers, &body, NOW, apiv3()).is_err());
    }

    /// A genuine notification with one part changed verifies only if the change left it
    /// byte for byte the same.
    #[test]
    fn a_mutated_notification_verifies_only_when_unchanged(
        part in prop_oneof![Just(Part::Body), Just(Part::Timestamp), Just(Part::Nonce), Just(Part::Signature)],
        m in mutation(),
    ) {
        let s = signed();
        let (mut body, mut timestamp, mut nonce, mut signature) =
            (s.body.clone(), s.timestamp.clone().into_bytes(), NONCE.as_bytes().to_vec(), s.signature.clone().into_bytes());
        let target = match part {
            Part::Body => &mut body,
            Part::Timestamp => &mut timestamp,
            Part::Nonce => &mut nonce,
            Part::Signature => &mut signature,
        };
        let before = target.clone();
        *target = mutate(&before, &m);
        let unchanged = *target == before;
        // Header values are text; a mutation that breaks UTF-8 cannot even be sent as one.
        let (Ok(timestamp), Ok(nonce), Ok(signature)) =
            (String::from_utf8(timestamp), String::from_utf8(nonce), String::from_utf8(signature))
        else {
            return Ok(());
        };
        prop_assert_eq!(verify_parts(&body, &timestamp, &nonce, &signature), unchanged);
    }

    /// Any body signed with the platform key (so the signature passes): the envelope and
    /// resource parsing that follows never panics, and only an authentic resource decrypts.
    #[test]
    fn a_signed_arbitrary_envelope_never_panics(
        envelope in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            (".{0,12}", ".{0,24}", "[A-Za-z0-9+/=]{0,120}", proptest::option::of(".{0,16}"))
                .prop_map(|(algorithm, nonce, ciphertext, aad)| serde_json::to_vec(&serde_json::json!({
                    "id": "EV-1", "create_time": "2026-11-29T12:01:07+08:00",
                    "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
                    "resource": {"algorithm": algorithm, "ciphertext": ciphertext,
                                 "associated_data": aad, "nonce": nonce}})).unwrap()),
        ],
    ) {
        let timestamp = NOW.to_string();
        let headers = signed_headers(platform_signer(), PLATFORM_SERIAL, NOW, NONCE, &envelope);
        let signature = &headers.iter().find(|(n, _)| *n == "Wechatpay-Signature").unwrap().1;
        let h = SignatureHeaders { serial: PLATFORM_SERIAL, timestamp: &timestamp, nonce: NONCE, signature };
        prop_assert!(verify_signed(keys(), &h, &envelope, NOW).is_ok());
        // Random ciphertext cannot authenticate under the APIv3 key.
        prop_assert!(verify_notification(keys(), &h, &envelope, NOW, apiv3()).is_err());
    }

    /// The encrypted resource: a changed nonce, associated data or ciphertext never decrypts.
    #[test]
    fn a_mutated_resource_decrypts_only_when_unchanged(
        part in 0..3usize, m in mutation(),
    ) {
        let nonce = "VBNu9IF6GGnX";
        let original = EncryptedResource {
            algorithm: "AEAD_AES_256_GCM".to_owned(),
            ciphertext: apiv3().encrypt(nonce, "transaction", PAID.as_bytes()),
            associated_data: Some("transaction".to_owned()),
            nonce: nonce.to_owned(),
            original_type: None,
        };
        let mut changed = original.clone();
        let field = match part {
            0 => &mut changed.nonce,
            1 => changed.associated_data.as_mut().unwrap(),
            _ => &mut changed.ciphertext,
        };
        let Ok(text) = String::from_utf8(mutate(field.as_bytes(), &m)) else {
            return Ok(());
        };
        *field = text;
        let unchanged = changed.nonce == original.nonce
            && changed.associated_data == original.associated_data
            && changed.ciphertext == original.ciphertext;
        match decrypt_resource(apiv3(), &changed) {
            Ok(plain) => {
                prop_assert!(unchanged, "a changed resource decrypted");
                prop_assert_eq!(plain, PAID.as_bytes());
            }
            Err(_) => prop_assert!(!unchanged),
        }
    }

    /// The resource parser (what a decrypted transaction is read as) takes any bytes.
    #[test]
    fn the_transaction_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<Transaction>(&bytes);
        let _ = serde_json::from_slice::<Notification>(&bytes);
    }
}
