//! The published Alipay vectors (tests/fixtures/vectors.json), checked as `verify.py` checks
//! them. A3 (legacy SHA1withRSA) is only recognised and refused: we never sign or verify RSA1.
//! F1-F3 (certificate-mode SN) are not covered: certificate mode is not implemented.

use paygate_alipay::simulator::{GatewayRequestError, verify_gateway_request};
use paygate_alipay::{
    NotifyError, Params, ResponseError, SignRule, Signer, TradeStatus, Verifier,
    extract_signed_content, verify_gateway_message, verify_params, verify_response,
    verify_trade_notification,
};

use crate::fixtures::{params_of, text, vector, vector_key_file};

fn vector_signer(id: &str) -> Signer {
    Signer::from_pem_or_base64(&vector_key_file(&vector(id)["inputs"]["private_key_file"])).unwrap()
}

fn vector_verifier(id: &str) -> Verifier {
    Verifier::from_pem_or_base64(&vector_key_file(
        &vector(id)["inputs"]["alipay_public_key_file"],
    ))
    .unwrap()
}

fn check_request_sign_vector(id: &str) {
    let v = vector(id);
    let params = params_of(&v["inputs"]["params"]);
    let content = params.sign_content(&["sign"]);
    assert_eq!(content, text(&v["expected"]["sign_content"]));

    let from_pem = vector_signer(id);
    let from_bare_base64 =
        Signer::from_pem_or_base64(text(&v["inputs"]["private_key_base64_pkcs8"])).unwrap();
    let expected = text(&v["expected"]["sign"]);
    assert_eq!(from_pem.sign(content.as_bytes()).unwrap(), expected);
    assert_eq!(from_bare_base64.sign(content.as_bytes()).unwrap(), expected);
    assert!(
        from_pem
            .verifier()
            .unwrap()
            .verify(content.as_bytes(), expected)
            .is_ok()
    );
}

#[test]
fn a1_request_sign_string_and_signature_match_the_java_sdk_byte_for_byte() {
    check_request_sign_vector("A1");
}

#[test]
fn a2_a_chinese_value_is_signed_raw_as_utf8_and_matches_the_java_sdk() {
    check_request_sign_vector("A2");
}

#[test]
fn a3_a_legacy_rsa_signed_request_is_refused_rather_than_verified() {
    let v = vector("A3");
    let mut params = params_of(&v["inputs"]["params"]);
    params.insert("timestamp", "2026-11-29 00:30:00");
    params.insert("version", "1.0");
    params.insert("sign", text(&v["expected"]["sign"]));
    let app_public_key = vector_signer("A3").verifier().unwrap();
    let refused = verify_gateway_request(&params, &app_public_key).unwrap_err();
    assert_eq!(refused, GatewayRequestError::SignType);
    assert_eq!(refused.code(), "40002");
}

#[test]
fn b1_the_real_trade_notification_verifies_under_the_v1_rule_and_keeps_no_payer_fields() {
    let v = vector("B1");
    let body = text(&v["inputs"]["form_urlencoded_body_constructed"]);
    // One decode of the body gives back the published fields exactly.
    assert_eq!(
        Params::from_form(body.as_bytes()).unwrap(),
        params_of(&v["inputs"]["form_fields"])
    );
    assert_eq!(
        params_of(&v["inputs"]["form_fields"]).sign_content(SignRule::V1.excluded()),
        text(&v["expected"]["sign_content_v1"])
    );

    let n = verify_trade_notification(body.as_bytes(), &vector_verifier("B1")).unwrap();
    assert_eq!(n.notify_id, "2019081500222155624068450559358070");
    assert_eq!(n.app_id, "2019073166072302");
    assert_eq!(n.seller_id.as_deref(), Some("2088531891668739"));
    assert_eq!(n.out_trade_no, "20190815155618536-564-57");
    assert_eq!(n.trade_no, "2019081522001468450512505578");
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(n.total_fen, 10);
    assert_eq!(n.notify_time.to_rfc3339(), "2019-08-15T07:56:25+00:00");
    assert_eq!(n.paid_at.unwrap().to_rfc3339(), "2019-08-15T07:56:24+00:00");
    let shown = format!("{n:?}");
    for payer_data in ["2088102534368455", "xud***@126.com", "z97-yuquerevenue"] {
        assert!(!shown.contains(payer_data), "{payer_data} leaked");
    }
}

#[test]
fn b1_fails_when_sign_type_is_kept_in_the_signed_content() {
    let v = vector("B1");
    let fields = params_of(&v["inputs"]["form_fields"]);
    assert_eq!(
        fields.sign_content(SignRule::V2.excluded()),
        text(&v["expected"]["sign_content_v2"])
    );
    assert_eq!(
        verify_params(&fields, SignRule::V2, &vector_verifier("B1")),
        Err(NotifyError::BadSignature)
    );
}

#[test]
fn b2_a_notification_signed_for_another_app_fails_under_both_rules() {
    let v = vector("B2");
    let fields = params_of(&v["inputs"]["form_fields"]);
    let key = vector_verifier("B2");
    assert_eq!(
        verify_trade_notification(fields.to_form().as_bytes(), &key),
        Err(NotifyError::BadSignature)
    );
    assert_eq!(
        verify_params(&fields, SignRule::V2, &key),
        Err(NotifyError::BadSignature)
    );
}

#[test]
fn c1_a_gateway_type_message_verifies_only_under_the_v2_rule_when_asked_for_by_type() {
    let v = vector("C1");
    let fields = params_of(&v["inputs"]["form_fields"]);
    let body = fields.to_form();
    let key = vector_verifier("C1");
    let method = "alipay.open.servicemarket.order.notify";

    let params = verify_gateway_message(body.as_bytes(), method, &key).unwrap();
    assert_eq!(
        params.get("commodity_order_id"),
        Some("2019030800000018079639")
    );
    assert_eq!(
        fields.sign_content(SignRule::V2.excluded()),
        text(&v["expected"]["sign_content_v2"])
    );
    // The V1 rule does not hold for it, and it is not a trade notification.
    assert_eq!(
        verify_params(&fields, SignRule::V1, &key),
        Err(NotifyError::BadSignature)
    );
    assert_eq!(
        verify_trade_notification(body.as_bytes(), &key),
        Err(NotifyError::UnexpectedType)
    );
    // Asked for as another message type, it is refused before any signature check.
    assert_eq!(
        verify_gateway_message(body.as_bytes(), "alipay.other.notify", &key),
        Err(NotifyError::UnexpectedType)
    );
}

#[test]
fn c2_a_tampered_gateway_type_message_fails() {
    let v = vector("C2");
    let body = params_of(&v["inputs"]["form_fields"]).to_form();
    assert_eq!(
        verify_gateway_message(
            body.as_bytes(),
            "alipay.open.servicemarket.order.notify",
            &vector_verifier("C2")
        ),
        Err(NotifyError::BadSignature)
    );
}

#[test]
fn d1_a_real_sync_response_verifies_over_its_raw_node_with_a_one_line_pem_key() {
    let v = vector("D1");
    let raw = text(&v["inputs"]["raw_response"]);
    let key = vector_verifier("D1");
    let content = extract_signed_content(raw, text(&v["inputs"]["response_key"])).unwrap();
    assert_eq!(content.node, text(&v["expected"]["signed_content"]));
    assert_eq!(content.sign.as_deref(), Some(text(&v["expected"]["sign"])));
    let node = verify_response(raw, text(&v["inputs"]["method"]), &key).unwrap();
    assert_eq!(node, text(&v["expected"]["signed_content"]));
}

#[test]
fn d1_with_one_character_of_the_node_changed_is_rejected() {
    let v = vector("D1");
    let raw = text(&v["inputs"]["raw_response"]).replace("CAxAToWB1Js", "CAxAToWB1Jt");
    assert_eq!(
        verify_response(&raw, text(&v["inputs"]["method"]), &vector_verifier("D1")),
        Err(ResponseError::BadSignature)
    );
}

#[test]
fn e1_a_real_trade_response_verifies_with_a_key_given_as_bare_base64() {
    let v = vector("E1");
    let raw = text(&v["inputs"]["raw_response_constructed"]);
    let key = Verifier::from_pem_or_base64(text(&v["inputs"]["alipay_public_key_base64"])).unwrap();
    let content = extract_signed_content(raw, text(&v["inputs"]["response_key"])).unwrap();
    assert_eq!(content.node, text(&v["expected"]["signed_content"]));
    assert!(verify_response(raw, "alipay.trade.pay", &key).is_ok());
    assert!(verify_response(raw, "alipay.trade.pay", &vector_verifier("E1")).is_ok());
    // The same answer read as another method's has no node to verify.
    assert!(matches!(
        verify_response(raw, "alipay.trade.query", &key),
        Err(ResponseError::MissingNode(_))
    ));
}

fn check_extraction_vector(id: &str) {
    let v = vector(id);
    let content = extract_signed_content(
        text(&v["inputs"]["raw_response"]),
        text(&v["inputs"]["response_key"]),
    )
    .unwrap();
    assert_eq!(content.node, text(&v["expected"]["signed_content"]));
}

#[test]
fn g1_extraction_keeps_backslash_slash_escapes_as_signed() {
    check_extraction_vector("G1");
    assert!(text(&vector("G1")["expected"]["signed_content"]).contains("http:\\/\\/"));
}

#[test]
fn g2_extraction_is_not_confused_by_newlines_and_spaces_around_the_colon() {
    check_extraction_vector("G2");
}

#[test]
fn g3_extraction_is_not_confused_by_a_sign_key_inside_the_node() {
    check_extraction_vector("G3");
    let v = vector("G3");
    let content = extract_signed_content(
        text(&v["inputs"]["raw_response"]),
        text(&v["inputs"]["response_key"]),
    )
    .unwrap();
    // The top-level sign is the one taken, not the node's own "sign":"xxx".
    assert!(content.sign.unwrap().starts_with("P8xrBWqZ"));
}
