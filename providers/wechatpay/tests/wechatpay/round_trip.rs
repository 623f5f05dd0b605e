//! Round trips and tamper cases with the fixture keys.

use paygate_wechatpay::model::{EVENT_TRANSACTION_SUCCESS, EncryptedResource};
use paygate_wechatpay::{
    ApiV3Key, Authorization, AuthorizationError, DecryptError, MerchantCredentials,
    NativeOrderRequest, Notification, NotifyError, OrderAmount, PlatformKeys, SignatureHeaders,
    Signer, TradeState, Transaction, Verifier, VerifyError, new_nonce, sign_message,
    signed_headers, verify_notification, verify_signed,
};

use crate::fixtures::{
    MERCHANT_KEY, MERCHANT_KEY_PKCS1, MERCHANT_PUB, MERCHANT_PUB_PKCS1, PLATFORM_SERIAL,
    platform_signer, platform_verifier,
};

const NOW: i64 = 1_780_000_000;
const APIV3_KEY: &[u8] = b"0123456789abcdefABCDEF0123456789";

fn platform_keys() -> PlatformKeys {
    let mut keys = PlatformKeys::new();
    keys.insert(PLATFORM_SERIAL, platform_verifier());
    keys
}

/// Headers as the sandbox would send them for `body` at `timestamp`.
fn signed(body: &[u8], timestamp: i64) -> Vec<(&'static str, String)> {
    signed_headers(
        platform_signer(),
        PLATFORM_SERIAL,
        timestamp,
        "d824f2e086d3c1df967785d13fcd22ef",
        body,
    )
    .to_vec()
}

fn lookup<'a>(headers: &'a [(&'static str, String)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |name| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn verify_at(headers: &[(&'static str, String)], body: &[u8], now: i64) -> Result<(), VerifyError> {
    let h = SignatureHeaders::from_lookup(lookup(headers))?;
    verify_signed(&platform_keys(), &h, body, now)
}

#[test]
fn signed_response_verifies_and_any_changed_byte_fails() {
    let body = br#"{"code_url":"weixin://wxpay/bizpayurl?pr=abc"}"#;
    let headers = signed(body, NOW);
    assert_eq!(verify_at(&headers, body, NOW), Ok(()));
    assert_eq!(
        verify_at(
            &headers,
            br#"{"code_url": "weixin://wxpay/bizpayurl?pr=abc"}"#,
            NOW
        ),
        Err(VerifyError::BadSignature)
    );
    let mut other_nonce = headers.clone();
    other_nonce[1].1 = "another-nonce".to_owned();
    assert_eq!(
        verify_at(&other_nonce, body, NOW),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn empty_204_body_is_signed_over_a_trailing_blank_line() {
    let headers = signed(b"", NOW);
    assert_eq!(verify_at(&headers, b"", NOW), Ok(()));
    let signature = sign_message(platform_signer(), &NOW.to_string(), "n", b"");
    assert!(platform_verifier().verify_base64(format!("{NOW}\nn\n\n").as_bytes(), &signature));
}

#[test]
fn timestamps_five_minutes_away_are_stale_in_both_directions() {
    let body = b"{}";
    let headers = signed(body, NOW);
    assert_eq!(verify_at(&headers, body, NOW + 299), Ok(()));
    assert_eq!(verify_at(&headers, body, NOW - 299), Ok(()));
    assert_eq!(
        verify_at(&headers, body, NOW + 300),
        Err(VerifyError::StaleTimestamp)
    );
    assert_eq!(
        verify_at(&headers, body, NOW - 300),
        Err(VerifyError::StaleTimestamp)
    );
}

#[test]
fn malformed_timestamp_is_refused() {
    let body = b"{}";
    let mut headers = signed(body, NOW);
    headers[0].1 = "17800000x0".to_owned();
    assert_eq!(
        verify_at(&headers, body, NOW),
        Err(VerifyError::MalformedTimestamp)
    );
    headers[0].1 = "-1780000000".to_owned();
    assert_eq!(
        verify_at(&headers, body, NOW),
        Err(VerifyError::MalformedTimestamp)
    );
}

#[test]
fn unknown_serial_is_refused() {
    let body = b"{}";
    let mut headers = signed(body, NOW);
    headers[3].1 = "PUB_KEY_ID_0000000000000000000000000001".to_owned();
    assert_eq!(
        verify_at(&headers, body, NOW),
        Err(VerifyError::UnknownSerial(
            "PUB_KEY_ID_0000000000000000000000000001".to_owned()
        ))
    );
}

#[test]
fn signature_probe_is_recognised_before_anything_else() {
    let body = b"{}";
    let mut headers = signed(body, NOW);
    headers[2].1 = "WECHATPAY/SIGNTEST/dGhpcyBpcyBhIHByb2Jl".to_owned();
    assert_eq!(
        verify_at(&headers, body, NOW),
        Err(VerifyError::SignatureProbe)
    );
}

#[test]
fn missing_headers_and_foreign_signature_types_are_refused() {
    let headers = signed(b"{}", NOW);
    let without_nonce: Vec<_> = headers
        .iter()
        .filter(|(n, _)| *n != "Wechatpay-Nonce")
        .cloned()
        .collect();
    assert_eq!(
        SignatureHeaders::from_lookup(lookup(&without_nonce)).unwrap_err(),
        VerifyError::MissingHeader("Wechatpay-Nonce")
    );
    let mut other_type = headers.clone();
    other_type[4].1 = "WECHATPAY2-SM2-WITH-SM3".to_owned();
    assert_eq!(
        SignatureHeaders::from_lookup(lookup(&other_type)).unwrap_err(),
        VerifyError::UnsupportedSignatureType
    );
}

#[test]
fn header_map_reading_is_case_insensitive() {
    let body = b"{}";
    let mut map = http::HeaderMap::new();
    for (name, value) in signed(body, NOW) {
        map.insert(
            http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    let h = SignatureHeaders::from_header_map(&map).unwrap();
    assert_eq!(verify_signed(&platform_keys(), &h, body, NOW), Ok(()));
}

#[test]
fn pkcs8_and_pkcs1_forms_of_one_key_are_the_same_key() {
    let pkcs8 = Signer::from_pem(MERCHANT_KEY).unwrap();
    let pkcs1 = Signer::from_pem(MERCHANT_KEY_PKCS1).unwrap();
    let message = b"POST\n/v3/pay/transactions/native\n1\nn\n{}\n";
    let signature = pkcs8.sign_base64(message);
    assert_eq!(pkcs1.sign_base64(message), signature);
    assert_eq!(pkcs8.public_key_pem(), MERCHANT_PUB);
    for public in [MERCHANT_PUB, MERCHANT_PUB_PKCS1] {
        let verifier = Verifier::from_pem(public).unwrap();
        assert!(verifier.verify_base64(message, &signature));
        assert!(!verifier.verify_base64(b"other", &signature));
        assert!(!verifier.verify_base64(message, "not base64!"));
    }
}

#[test]
fn non_keys_are_refused_with_an_error_not_a_panic() {
    assert!(Signer::from_pem("").is_err());
    assert!(Signer::from_pem(MERCHANT_PUB).is_err());
    assert!(Verifier::from_pem(MERCHANT_KEY).is_err());
    assert!(
        Verifier::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .is_err()
    );
}

#[test]
fn debug_output_of_secrets_is_redacted() {
    let signer = Signer::from_pem(MERCHANT_KEY).unwrap();
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let creds = MerchantCredentials {
        mchid: "1900000001".to_owned(),
        serial_no: "SERIAL".to_owned(),
        signer,
    };
    let printed = format!("{creds:?} {key:?}");
    assert!(printed.contains("[redacted]"));
    assert!(!printed.contains("0123456789abcdef"));
    assert!(!printed.contains("MII"));
}

#[test]
fn generated_key_pair_signs_and_verifies() {
    let (private_pem, public_pem) = paygate_wechatpay::generate_key_pair().unwrap();
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let signer = Signer::from_pem(&private_pem).unwrap();
    let signature = signer.sign_base64(b"message");
    assert!(
        Verifier::from_pem(&public_pem)
            .unwrap()
            .verify_base64(b"message", &signature)
    );
}

#[test]
fn authorization_round_trip_and_malformed_headers() {
    let creds = MerchantCredentials {
        mchid: "1900000001".to_owned(),
        serial_no: "5157F09EFDC096DE15EBE81A47057A72".to_owned(),
        signer: Signer::from_pem(MERCHANT_KEY).unwrap(),
    };
    let body = br#"{"mchid":"1900000001"}"#;
    let url = "/v3/pay/transactions/out-trade-no/P1/close";
    let header = creds.authorization("POST", url, NOW, "abc", body);
    let parsed = Authorization::parse(&header).unwrap();
    assert_eq!(parsed.to_header(), header);
    let verifier = Verifier::from_pem(MERCHANT_PUB).unwrap();
    assert!(verifier.verify_base64(&parsed.message("POST", url, body), &parsed.signature));
    assert!(!verifier.verify_base64(&parsed.message("GET", url, body), &parsed.signature));

    let ok = r#"mchid="1",nonce_str="n",timestamp="1",serial_no="s",signature="x""#;
    assert!(Authorization::parse(&format!("WECHATPAY2-SHA256-RSA2048 {ok}")).is_ok());
    assert_eq!(
        Authorization::parse(&format!("Bearer {ok}")),
        Err(AuthorizationError::Scheme)
    );
    assert_eq!(
        Authorization::parse(&format!("WECHATPAY2-SHA256-RSA2048 {ok},mchid=\"2\"")),
        Err(AuthorizationError::Duplicate("mchid".to_owned()))
    );
    assert_eq!(
        Authorization::parse(
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="1",signature="x""#
        ),
        Err(AuthorizationError::Missing("serial_no"))
    );
    assert_eq!(
        Authorization::parse(
            &ok.replace("timestamp=\"1\"", "timestamp=\"1x\"")
                .replace("mchid", "WECHATPAY2-SHA256-RSA2048 mchid")
        ),
        Err(AuthorizationError::Timestamp)
    );
    assert_eq!(
        Authorization::parse("WECHATPAY2-SHA256-RSA2048 mchid=1"),
        Err(AuthorizationError::Malformed)
    );
}

#[test]
fn nonces_are_32_alphanumerics_and_differ() {
    let (a, b) = (new_nonce(), new_nonce());
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

#[test]
fn apiv3_tampering_fails_authentication() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let ciphertext = key.encrypt("0123456789ab", "transaction", b"{\"a\":1}");
    assert_eq!(
        key.decrypt("0123456789ab", "transaction", &ciphertext)
            .unwrap(),
        b"{\"a\":1}"
    );
    assert_eq!(
        key.decrypt("0123456789ab", "certificate", &ciphertext),
        Err(DecryptError::Authentication)
    );
    assert_eq!(
        key.decrypt("0123456789ac", "transaction", &ciphertext),
        Err(DecryptError::Authentication)
    );
    let mut bytes = base64_decode(&ciphertext);
    bytes[0] ^= 1;
    assert_eq!(
        key.decrypt("0123456789ab", "transaction", &base64_encode(&bytes)),
        Err(DecryptError::Authentication)
    );
    assert_eq!(
        key.decrypt("short", "transaction", &ciphertext),
        Err(DecryptError::Nonce)
    );
    assert_eq!(
        key.decrypt("0123456789ab", "transaction", "%%%"),
        Err(DecryptError::Base64)
    );
    let other = ApiV3Key::new(b"ffffffffffffffffffffffffffffffff").unwrap();
    assert_eq!(
        other.decrypt("0123456789ab", "transaction", &ciphertext),
        Err(DecryptError::Authentication)
    );
    assert!(ApiV3Key::new(&APIV3_KEY[..31]).is_err());
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const PAID_TRANSACTION: &str = r#"{"appid":"wx8888888888888888","mchid":"1900000001","out_trade_no":"P2026112912000000AB12CD34","transaction_id":"4200000000202611290000000001","trade_type":"NATIVE","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2026-11-29T12:01:07+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":19900,"payer_total":19900,"currency":"CNY","payer_currency":"CNY"}}"#;

fn notification_body(key: &ApiV3Key, aad: &str) -> Vec<u8> {
    serde_json::to_vec(&Notification {
        id: "EV-2026112912010700000001".to_owned(),
        create_time: "2026-11-29T12:01:07+08:00".to_owned(),
        event_type: EVENT_TRANSACTION_SUCCESS.to_owned(),
        resource_type: "encrypt-resource".to_owned(),
        summary: Some("支付成功".to_owned()),
        resource: EncryptedResource {
            algorithm: "AEAD_AES_256_GCM".to_owned(),
            ciphertext: key.encrypt("VBNu9IF6GGnX", aad, PAID_TRANSACTION.as_bytes()),
            associated_data: Some(aad.to_owned()),
            nonce: "VBNu9IF6GGnX".to_owned(),
            original_type: Some("transaction".to_owned()),
        },
    })
    .unwrap()
}

#[test]
fn notification_verifies_decrypts_and_drops_payer_data() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let body = notification_body(&key, "transaction");
    let headers = signed(&body, NOW);
    let h = SignatureHeaders::from_lookup(lookup(&headers)).unwrap();
    let verified = verify_notification(&platform_keys(), &h, &body, NOW, &key).unwrap();
    assert_eq!(verified.notification.event_type, "TRANSACTION.SUCCESS");
    let transaction = verified.transaction().unwrap();
    assert_eq!(transaction.trade_state, TradeState::Success);
    assert_eq!(transaction.amount.as_ref().unwrap().total, Some(19900));
    let reserialised = serde_json::to_string(&transaction).unwrap();
    assert!(!reserialised.contains("openid"));
    assert!(!reserialised.contains("oUpF8uMu"));
    assert!(!reserialised.contains("attach"));
    assert!(!format!("{verified:?}").contains("oUpF8uMu"));
}

#[test]
fn notification_with_a_bad_signature_is_not_even_decrypted() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let body = notification_body(&key, "transaction");
    let headers = signed(&body, NOW);
    let mut tampered = body.clone();
    let at = tampered.len() - 3;
    tampered[at] ^= 1;
    let h = SignatureHeaders::from_lookup(lookup(&headers)).unwrap();
    assert!(matches!(
        verify_notification(&platform_keys(), &h, &tampered, NOW, &key),
        Err(NotifyError::Verify(VerifyError::BadSignature))
    ));
}

#[test]
fn notification_under_another_apiv3_key_fails_to_decrypt() {
    let other = ApiV3Key::new(b"ffffffffffffffffffffffffffffffff").unwrap();
    let body = notification_body(&other, "transaction");
    let headers = signed(&body, NOW);
    let h = SignatureHeaders::from_lookup(lookup(&headers)).unwrap();
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    assert!(matches!(
        verify_notification(&platform_keys(), &h, &body, NOW, &key),
        Err(NotifyError::Decrypt(DecryptError::Authentication))
    ));
}

#[test]
fn transaction_states_parse_and_unknown_states_are_caught() {
    let mut t: Transaction = serde_json::from_str(PAID_TRANSACTION).unwrap();
    assert_eq!(
        t.transaction_id.as_deref(),
        Some("4200000000202611290000000001")
    );
    for (wire, state) in [
        ("NOTPAY", TradeState::NotPay),
        ("CLOSED", TradeState::Closed),
        ("REFUND", TradeState::Refund),
        ("USERPAYING", TradeState::UserPaying),
        ("PAYERROR", TradeState::PayError),
        ("REVOKED", TradeState::Revoked),
        ("SOMETHING_NEW", TradeState::Unknown),
    ] {
        let json = PAID_TRANSACTION.replace("\"SUCCESS\"", &format!("\"{wire}\""));
        t = serde_json::from_str(&json).unwrap();
        assert_eq!(t.trade_state, state);
    }
    let unpaid: Transaction = serde_json::from_str(
        r#"{"appid":"wx1","mchid":"1","out_trade_no":"P1","trade_state":"NOTPAY","trade_state_desc":"订单未支付","amount":{"total":100,"currency":"CNY"}}"#,
    )
    .unwrap();
    assert_eq!(unpaid.transaction_id, None);
    assert_eq!(unpaid.amount.unwrap().payer_total, None);
}

#[test]
fn native_order_request_carries_only_the_allowlisted_fields() {
    let mut request = NativeOrderRequest {
        appid: "wx8888888888888888".to_owned(),
        mchid: "1900000001".to_owned(),
        description: "职前通服务".to_owned(),
        out_trade_no: "P2026112912000000AB12CD34".to_owned(),
        time_expire: None,
        notify_url: "https://pay.example.cn/webhooks/wechatpay".to_owned(),
        amount: OrderAmount {
            total: 19900,
            currency: "CNY".to_owned(),
        },
    };
    let json: serde_json::Value = serde_json::to_value(&request).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "amount",
            "appid",
            "description",
            "mchid",
            "notify_url",
            "out_trade_no"
        ]
    );
    assert!(!serde_json::to_string(&request).unwrap().contains("null"));
    request.time_expire = Some("2026-11-29T12:15:00+08:00".to_owned());
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(json["time_expire"], "2026-11-29T12:15:00+08:00");
    assert_eq!(json["amount"]["total"], 19900);
}

#[test]
fn platform_keys_hold_public_key_ids_and_certificate_serials_side_by_side() {
    let mut keys = PlatformKeys::new();
    assert!(keys.is_empty());
    keys.insert(
        "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC",
        platform_verifier(),
    );
    keys.insert(PLATFORM_SERIAL, platform_verifier());
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.current_serial(), Some(PLATFORM_SERIAL));
    assert!(
        keys.get("5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC")
            .is_some()
    );
    assert!(keys.set_current("5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC"));
    assert!(!keys.set_current("nope"));
    assert!(keys.remove("5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC"));
    assert_eq!(keys.current_serial(), Some(PLATFORM_SERIAL));
}
