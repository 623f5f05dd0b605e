//! The sandbox's own wire code (`paygate_sandbox::wire`) against the providers' published test
//! vectors and the wechatpay-php trade bill (`tests/fixtures/published/`, see its SOURCE.md).
//! The gateway's provider crates pass the same vectors in their own tests; passing them here too
//! means the two readings agree with the outside, not merely with each other.

use std::path::PathBuf;

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};
use paygate_sandbox::wire::alipay::{Params, RequestError, response_body, verify_request};
use paygate_sandbox::wire::rsa::{PrivateKey, PublicKey};
use paygate_sandbox::wire::wechat::{
    ApiV3Key, Authorization, KeyLength, request_message, response_message,
};
use paygate_sandbox::wire::wechat_bill::{TradeBillRow, sha1_hex, write_trade_bill};
use serde_json::Value;

fn published(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/published")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(published(path)).unwrap()
}

/// One vector of `<provider>/vectors.json` by id.
fn vector(provider: &str, id: &str) -> Value {
    let all: Value = serde_json::from_str(&read(&format!("{provider}/vectors.json"))).unwrap();
    all["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no vector {id}"))
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` missing"))
}

/// The public half of a private key, read back through the verifier's own parser.
fn public_of(key: &PrivateKey) -> PublicKey {
    PublicKey::from_pem(&key.public_key_pem()).unwrap()
}

// ---- WeChat Pay -------------------------------------------------------------------------------

/// V1-V1e: the 5-line message, the signature, and the signature verified as the sandbox checks
/// a merchant's request.
fn check_request_vector(id: &str) {
    let v = vector("wechatpay", id);
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let key = PrivateKey::from_pem(&read("wechatpay/doc_merchant_test_key.pem")).unwrap();
    let message = request_message(
        text(inputs, "method"),
        text(inputs, "canonical_url"),
        text(inputs, "timestamp"),
        text(inputs, "nonce_str"),
        text(inputs, "body").as_bytes(),
    );
    assert_eq!(message, text(expected, "sign_message").as_bytes(), "{id}");
    assert_eq!(
        key.sign_base64(&message),
        text(expected, "signature"),
        "{id}"
    );
    assert!(public_of(&key).verify_base64(&message, text(expected, "signature")));
}

#[test]
fn v1_request_signatures_match_the_published_ones() {
    for id in ["V1", "V1b", "V1c", "V1d", "V1e"] {
        check_request_vector(id);
    }
}

#[test]
fn v1_authorization_parses_in_the_go_order_and_the_doc_order_alike() {
    let v = vector("wechatpay", "V1");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let go = Authorization::parse(text(expected, "authorization_go_order")).unwrap();
    let doc = Authorization::parse(text(expected, "authorization_doc_order")).unwrap();
    assert_eq!(go, doc);
    assert_eq!(go.mchid, text(inputs, "mchid"));
    assert_eq!(go.serial_no, text(inputs, "merchant_serial_no"));
    assert_eq!(go.signature, text(expected, "signature"));
    let key = PrivateKey::from_pem(&read("wechatpay/doc_merchant_test_key.pem")).unwrap();
    let message = go.message(
        text(inputs, "method"),
        text(inputs, "canonical_url"),
        text(inputs, "body").as_bytes(),
    );
    assert!(public_of(&key).verify_base64(&message, &go.signature));
}

#[test]
fn v1c_the_url_without_its_query_does_not_verify() {
    let v = vector("wechatpay", "V1c");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let key = PrivateKey::from_pem(&read("wechatpay/doc_merchant_test_key.pem")).unwrap();
    let url = text(inputs, "canonical_url");
    let (path, _) = url.split_once('?').unwrap();
    let message = request_message(
        "GET",
        path,
        text(inputs, "timestamp"),
        text(inputs, "nonce_str"),
        b"",
    );
    assert!(!public_of(&key).verify_base64(&message, text(expected, "signature")));
}

#[test]
fn v2_v3_v5_sha256_with_rsa_signatures_match() {
    for (id, key_file) in [
        ("V2", "wechatpay/doc_merchant_test_key.pem"),
        ("V3", "wechatpay/doc_merchant_test_key.pem"),
        ("V5", "wechatpay/go_sdk_test_key.pem"),
    ] {
        let v = vector("wechatpay", id);
        let key = PrivateKey::from_pem(&read(key_file)).unwrap();
        let message = text(&v["expected"], "sign_message");
        assert_eq!(
            key.sign_base64(message.as_bytes()),
            text(&v["expected"], "signature"),
            "{id}"
        );
    }
}

#[test]
fn v4_an_answer_signed_over_its_3_line_message_verifies_and_a_reserialised_body_does_not() {
    let key = PublicKey::from_pem(&read("wechatpay/doc_wechatpay_public_key.pem")).unwrap();
    for (id, valid) in [("V4", true), ("V4n", false)] {
        let v = vector("wechatpay", id);
        let headers = &v["inputs"]["headers"];
        let message = response_message(
            text(headers, "Wechatpay-Timestamp"),
            text(headers, "Wechatpay-Nonce"),
            text(&v["inputs"], "body").as_bytes(),
        );
        assert_eq!(
            message,
            text(&v["expected"], "verify_message").as_bytes(),
            "{id}"
        );
        assert_eq!(
            key.verify_base64(&message, text(headers, "Wechatpay-Signature")),
            valid,
            "{id}"
        );
    }
}

#[test]
fn v6_aes_256_gcm_encrypts_and_decrypts_as_published() {
    let v = vector("wechatpay", "V6");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let key = ApiV3Key::new(text(inputs, "key").as_bytes()).unwrap();
    let (nonce, aad) = (text(inputs, "nonce"), text(inputs, "associated_data"));
    assert_eq!(
        key.encrypt(nonce, aad, text(expected, "plaintext").as_bytes()),
        text(expected, "ciphertext")
    );
    assert_eq!(
        key.decrypt(nonce, aad, text(expected, "ciphertext"))
            .unwrap(),
        text(expected, "plaintext").as_bytes()
    );
    assert!(
        key.decrypt(nonce, "other", text(expected, "ciphertext"))
            .is_err()
    );
}

#[test]
fn v6b_a_certificate_listing_decrypts_to_the_published_pem_and_encrypts_back() {
    let v = vector("wechatpay", "V6b");
    let key = ApiV3Key::new(text(&v["inputs"], "apiv3_key").as_bytes()).unwrap();
    let body: Value = serde_json::from_str(text(&v["inputs"], "response_body")).unwrap();
    let entry = &body["data"][0];
    let resource = &entry["encrypt_certificate"];
    assert_eq!(text(resource, "associated_data"), "certificate");
    let pem = key
        .decrypt(
            text(resource, "nonce"),
            "certificate",
            text(resource, "ciphertext"),
        )
        .unwrap();
    assert_eq!(pem, text(&v["expected"], "plaintext_pem").as_bytes());
    assert_eq!(
        key.encrypt(text(resource, "nonce"), "certificate", &pem),
        text(resource, "ciphertext")
    );
    assert_eq!(text(entry, "serial_no"), text(&v["expected"], "serial_no"));
}

#[test]
fn v7_v8_a_16_byte_apiv3_key_is_refused() {
    for (id, field) in [("V7", "key"), ("V8", "apiv3_key")] {
        let key = text(&vector("wechatpay", id)["inputs"], field).to_owned();
        assert_eq!(
            ApiV3Key::new(key.as_bytes()).err(),
            Some(KeyLength(16)),
            "{id}"
        );
    }
}

#[test]
fn v8_a_callback_signature_verifies_over_the_raw_body_and_not_a_second_later() {
    // The test certificate is a wrapper around the public half of go_sdk_test_key.pem.
    let key = public_of(&PrivateKey::from_pem(&read("wechatpay/go_sdk_test_key.pem")).unwrap());
    for (id, valid) in [("V8", true), ("V8n", false)] {
        let v = vector("wechatpay", id);
        let headers = &v["inputs"]["headers"];
        let message = response_message(
            text(headers, "Wechatpay-Timestamp"),
            text(headers, "Wechatpay-Nonce"),
            text(&v["inputs"], "body").as_bytes(),
        );
        assert_eq!(
            message,
            text(&v["expected"], "verify_message").as_bytes(),
            "{id}"
        );
        assert_eq!(
            key.verify_base64(&message, text(headers, "Wechatpay-Signature")),
            valid,
            "{id}"
        );
    }
}

// ---- The WeChat Pay trade bill ----------------------------------------------------------------

/// `` `0.03 `` → 3 fen (two decimals), `` `0.01000 `` → 1000 (five).
fn units(value: &str, decimals: usize) -> i64 {
    let (whole, fraction) = value.split_once('.').unwrap();
    assert_eq!(fraction.len(), decimals, "{value}");
    format!("{whole}{fraction}").parse().unwrap()
}

fn beijing(value: &str) -> DateTime<Utc> {
    let local = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").unwrap();
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .from_local_datetime(&local)
        .unwrap()
        .with_timezone(&Utc)
}

/// The published bill's rows, column by column.
fn published_rows(file: &str) -> Vec<TradeBillRow> {
    let lines: Vec<&str> = file.trim_start_matches('\u{feff}').split("\r\n").collect();
    lines[1..]
        .iter()
        .take_while(|line| !line.starts_with("总交易单数"))
        .map(|line| {
            let v: Vec<String> = line
                .strip_prefix('`')
                .unwrap()
                .split(",`")
                .map(str::to_owned)
                .collect();
            assert_eq!(v.len(), 27, "{line}");
            TradeBillRow {
                trade_time: beijing(&v[0]),
                appid: v[1].clone(),
                mchid: v[2].clone(),
                sub_mchid: v[3].clone(),
                device_info: v[4].clone(),
                transaction_id: v[5].clone(),
                out_trade_no: v[6].clone(),
                openid: v[7].clone(),
                trade_type: v[8].clone(),
                trade_state: v[9].clone(),
                bank_type: v[10].clone(),
                currency: v[11].clone(),
                settlement_fen: units(&v[12], 2),
                voucher_fen: units(&v[13], 2),
                refund_id: v[14].clone(),
                out_refund_no: v[15].clone(),
                refund_fen: units(&v[16], 2),
                recharge_refund_fen: units(&v[17], 2),
                refund_type: v[18].clone(),
                refund_status: v[19].clone(),
                description: v[20].clone(),
                attach: v[21].clone(),
                fee_hundred_thousandths: units(&v[22], 5),
                fee_rate: v[23].clone(),
                order_fen: units(&v[24], 2),
                requested_refund_fen: units(&v[25], 2),
                fee_note: v[26].clone(),
            }
        })
        .collect()
}

#[test]
fn the_wechat_bill_writer_reproduces_the_published_bill_byte_for_byte() {
    let published = std::fs::read(published("wechatpay/bill.ALL.csv")).unwrap();
    assert_eq!(
        sha1_hex(&published),
        "9bb6cd819be348f17a9cbcedddc8eb62fefbd790"
    );
    let rows = published_rows(std::str::from_utf8(&published).unwrap());
    assert_eq!(rows.len(), 45);
    let mut written = Vec::new();
    write_trade_bill(rows, &mut written).unwrap();
    // BOM, headers, backticks, CRLF after every line and the summary's `45.0,…,0.0,…` alike.
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&published)
    );
    assert_eq!(written, published);
}

// ---- Alipay -----------------------------------------------------------------------------------

fn params_of(fields: &Value) -> Params {
    let mut params = Params::default();
    for (key, value) in fields.as_object().unwrap() {
        params.insert(key, value.as_str().unwrap());
    }
    params
}

#[test]
fn a1_a2_the_sorted_parameter_string_and_its_signature_match_the_java_sdk() {
    for id in ["A1", "A2"] {
        let v = vector("alipay", id);
        let params = params_of(&v["inputs"]["params"]);
        let content = params.sign_content(&["sign"]);
        assert_eq!(content, text(&v["expected"], "sign_content"), "{id}");
        // The same key as PEM and as the bare Base64 Alipay hands out.
        for pem in [
            read("alipay/java_sdk_prodcert_app_private_key.pem"),
            text(&v["inputs"], "private_key_base64_pkcs8").to_owned(),
        ] {
            let key = PrivateKey::from_pem(&pem).unwrap();
            assert_eq!(
                key.sign_base64(content.as_bytes()),
                text(&v["expected"], "sign"),
                "{id}"
            );
        }
    }
}

#[test]
fn a_request_is_verified_over_every_parameter_but_sign_and_only_sorted() {
    let key = PrivateKey::from_pem(&read("alipay/java_sdk_prodcert_app_private_key.pem")).unwrap();
    let app_key = public_of(&key);
    let mut params = params_of(&vector("alipay", "A2")["inputs"]["params"]);
    params.insert("timestamp", "2019-09-16 10:55:16");
    params.insert("version", "1.0");
    params.insert(
        "sign",
        key.sign_base64(params.sign_content(&["sign"]).as_bytes()),
    );
    assert_eq!(verify_request(&params, &app_key), Ok(()));

    // The same pairs signed in the order they were given (not sorted) are refused.
    let unsorted: Vec<String> = [
        "method",
        "app_id",
        "extra",
        "sign_type",
        "timestamp",
        "version",
    ]
    .iter()
    .map(|k| format!("{k}={}", params.get(k).unwrap()))
    .collect();
    params.insert("sign", key.sign_base64(unsorted.join("&").as_bytes()));
    assert_eq!(
        verify_request(&params, &app_key),
        Err(RequestError::Signature)
    );
}

#[test]
fn a3_a_legacy_sha1_signature_does_not_pass_as_rsa2() {
    let v = vector("alipay", "A3");
    let key = PrivateKey::from_pem(&read("alipay/java_sdk_prodcert_app_private_key.pem")).unwrap();
    let content = text(&v["expected"], "sign_content");
    assert!(!public_of(&key).verify_base64(content.as_bytes(), text(&v["expected"], "sign")));
}

#[test]
fn b1_a_trade_notification_is_signed_without_sign_and_sign_type() {
    let v = vector("alipay", "B1");
    let key = PublicKey::from_pem(&read("alipay/nodejs_notify_v1_alipay_public_key.pem")).unwrap();
    // The form as posted, decoded once.
    let params = Params::from_request(
        b"",
        text(&v["inputs"], "form_urlencoded_body_constructed").as_bytes(),
    )
    .unwrap();
    assert_eq!(params, params_of(&v["inputs"]["form_fields"]));
    let v1 = params.sign_content(&["sign", "sign_type"]);
    assert_eq!(v1, text(&v["expected"], "sign_content_v1"));
    let sign = params.get("sign").unwrap();
    assert!(key.verify_base64(v1.as_bytes(), sign));
    let v2 = params.sign_content(&["sign"]);
    assert_eq!(v2, text(&v["expected"], "sign_content_v2"));
    assert!(!key.verify_base64(v2.as_bytes(), sign));
}

#[test]
fn b2_c2_notifications_that_do_not_verify_fail_under_both_rules() {
    for (id, key_file) in [
        ("B2", "alipay/nodejs_notify_v1_alipay_public_key.pem"),
        ("C2", "alipay/nodejs_alipay-notify-sign-public-key-v2.pem"),
    ] {
        let v = vector("alipay", id);
        let key = PublicKey::from_pem(&read(key_file)).unwrap();
        let params = params_of(&v["inputs"]["form_fields"]);
        let sign = params.get("sign").unwrap();
        for rule in [&["sign", "sign_type"][..], &["sign"]] {
            assert!(
                !key.verify_base64(params.sign_content(rule).as_bytes(), sign),
                "{id}"
            );
        }
    }
}

#[test]
fn c1_a_message_that_keeps_sign_type_in_its_content_verifies_under_the_request_rule() {
    let v = vector("alipay", "C1");
    let key =
        PublicKey::from_pem(&read("alipay/nodejs_alipay-notify-sign-public-key-v2.pem")).unwrap();
    let params = params_of(&v["inputs"]["form_fields"]);
    let sign = params.get("sign").unwrap();
    let request_rule = params.sign_content(&["sign"]);
    assert_eq!(request_rule, text(&v["expected"], "sign_content_v2"));
    assert!(key.verify_base64(request_rule.as_bytes(), sign));
    assert!(!key.verify_base64(params.sign_content(&["sign", "sign_type"]).as_bytes(), sign));
}

#[test]
fn d1_e1_an_answer_carries_its_node_bytes_exactly_as_signed() {
    let d1 = vector("alipay", "D1");
    let node = text(&d1["expected"], "signed_content");
    let sign = text(&d1["expected"], "sign");
    // The sandbox's answer around the published node and sign is the published answer.
    assert_eq!(
        response_body(text(&d1["inputs"], "method"), node, sign),
        text(&d1["inputs"], "raw_response")
    );
    let key = PublicKey::from_pem(&read("alipay/nodejs_alipay-public-key.pem")).unwrap();
    assert!(key.verify_base64(node.as_bytes(), sign));
    assert!(!key.verify_base64(node.replace("10000", "10001").as_bytes(), sign));

    let e1 = vector("alipay", "E1");
    let node = text(&e1["expected"], "signed_content");
    for pem in [
        read("alipay/gopay_sync_alipay_public_key.pem"),
        text(&e1["inputs"], "alipay_public_key_base64").to_owned(),
    ] {
        let key = PublicKey::from_pem(&pem).unwrap();
        assert!(key.verify_base64(node.as_bytes(), text(&e1["expected"], "sign")));
    }
}
