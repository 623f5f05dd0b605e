//! Refund wire types: the exact request JSON, answers and notifications without payer data.

use paygate_wechatpay::model::{EVENT_REFUND_SUCCESS, EncryptedResource};
use paygate_wechatpay::{
    ApiV3Key, Notification, NotifyError, PlatformKeys, Refund, RefundAmount, RefundRequest,
    RefundStatus, SignatureHeaders, signed_headers, verify_notification,
};
use serde_json::json;

use crate::fixtures::{PLATFORM_SERIAL, platform_signer, platform_verifier};

const NOW: i64 = 1_780_000_000;
const APIV3_KEY: &[u8] = b"0123456789abcdefABCDEF0123456789";
const ACCOUNT: &str = "招商银行信用卡0403";

/// A create/query answer as WeChat documents it, every optional field filled in.
const REFUND_ANSWER: &str = r#"{"refund_id":"50000000382019052709732678859","out_refund_no":"R2026112912000000AB12CD34","transaction_id":"4200000000202611290000000001","out_trade_no":"P2026112912000000AB12CD34","channel":"ORIGINAL","user_received_account":"招商银行信用卡0403","success_time":"2026-11-29T13:00:00+08:00","create_time":"2026-11-29T12:59:00+08:00","status":"SUCCESS","funds_account":"AVAILABLE","amount":{"total":19900,"refund":5000,"from":[],"payer_total":19900,"payer_refund":5000,"settlement_refund":5000,"settlement_total":19900,"discount_refund":0,"currency":"CNY"},"promotion_detail":[]}"#;

/// The decrypted `REFUND.SUCCESS` resource as WeChat documents it.
const REFUND_RESOURCE: &str = r#"{"mchid":"1900000001","transaction_id":"4200000000202611290000000001","out_trade_no":"P2026112912000000AB12CD34","refund_id":"50000000382019052709732678859","out_refund_no":"R2026112912000000AB12CD34","refund_status":"SUCCESS","success_time":"2026-11-29T13:00:00+08:00","user_received_account":"招商银行信用卡0403","amount":{"total":19900,"refund":5000,"payer_total":19900,"payer_refund":5000}}"#;

fn request() -> RefundRequest {
    RefundRequest {
        out_trade_no: "P2026112912000000AB12CD34".to_owned(),
        out_refund_no: "R2026112912000000AB12CD34".to_owned(),
        reason: None,
        notify_url: None,
        amount: RefundAmount {
            refund: 5000,
            total: 19900,
            currency: "CNY".to_owned(),
        },
    }
}

#[test]
fn refund_request_is_exactly_the_order_numbers_and_amounts() {
    assert_eq!(
        serde_json::to_string(&request()).unwrap(),
        r#"{"out_trade_no":"P2026112912000000AB12CD34","out_refund_no":"R2026112912000000AB12CD34","amount":{"refund":5000,"total":19900,"currency":"CNY"}}"#
    );
    let mut full = request();
    full.reason = Some("订单退款".to_owned());
    full.notify_url = Some("https://pay.example.cn/webhooks/wechatpay".to_owned());
    assert_eq!(
        serde_json::to_value(&full).unwrap(),
        json!({
            "out_trade_no": "P2026112912000000AB12CD34",
            "out_refund_no": "R2026112912000000AB12CD34",
            "reason": "订单退款",
            "notify_url": "https://pay.example.cn/webhooks/wechatpay",
            "amount": {"refund": 5000, "total": 19900, "currency": "CNY"},
        })
    );
}

#[test]
fn refund_answer_parses_and_drops_the_account_the_buyer_was_paid_to() {
    let refund: Refund = serde_json::from_str(REFUND_ANSWER).unwrap();
    assert_eq!(refund.status, RefundStatus::Success);
    assert_eq!(refund.refund_id, "50000000382019052709732678859");
    assert_eq!(refund.channel.as_deref(), Some("ORIGINAL"));
    assert_eq!((refund.amount.total, refund.amount.refund), (19900, 5000));
    assert_eq!(refund.amount.payer_refund, Some(5000));
    assert_eq!(refund.amount.currency.as_deref(), Some("CNY"));
    let kept = serde_json::to_string(&refund).unwrap();
    assert!(!kept.contains("user_received_account"));
    assert!(!kept.contains(ACCOUNT));
    assert!(!kept.contains("funds_account"));
    assert!(!format!("{refund:?}").contains(ACCOUNT));
}

#[test]
fn refund_statuses_parse_and_unknown_ones_are_caught() {
    for (wire, status) in [
        ("PROCESSING", RefundStatus::Processing),
        ("CLOSED", RefundStatus::Closed),
        ("ABNORMAL", RefundStatus::Abnormal),
        ("SOMETHING_NEW", RefundStatus::Unknown),
    ] {
        let json = REFUND_ANSWER.replace("\"SUCCESS\"", &format!("\"{wire}\""));
        let refund: Refund = serde_json::from_str(&json).unwrap();
        assert_eq!(refund.status, status);
        if status != RefundStatus::Unknown {
            assert_eq!(status.as_str(), wire);
        }
    }
    // A fresh refund: no success_time, no channel yet.
    let processing: Refund = serde_json::from_str(
        r#"{"refund_id":"5","out_refund_no":"R1","transaction_id":"42","out_trade_no":"P1","status":"PROCESSING","amount":{"total":100,"refund":100}}"#,
    )
    .unwrap();
    assert_eq!(processing.success_time, None);
    assert_eq!(processing.channel, None);
}

fn refund_notification(key: &ApiV3Key, aad: &str) -> Vec<u8> {
    serde_json::to_vec(&Notification {
        id: "EV-2026112913000000000001".to_owned(),
        create_time: "2026-11-29T13:00:00+08:00".to_owned(),
        event_type: EVENT_REFUND_SUCCESS.to_owned(),
        resource_type: "encrypt-resource".to_owned(),
        summary: Some("退款成功".to_owned()),
        resource: EncryptedResource {
            algorithm: "AEAD_AES_256_GCM".to_owned(),
            ciphertext: key.encrypt("Kj7QIyUiYx1q", aad, REFUND_RESOURCE.as_bytes()),
            associated_data: Some(aad.to_owned()),
            nonce: "Kj7QIyUiYx1q".to_owned(),
            original_type: Some("refund".to_owned()),
        },
    })
    .unwrap()
}

fn verify(
    body: &[u8],
    key: &ApiV3Key,
) -> Result<paygate_wechatpay::VerifiedNotification, NotifyError> {
    let headers = signed_headers(platform_signer(), PLATFORM_SERIAL, NOW, "n0nce", body);
    let h = SignatureHeaders::from_lookup(|name| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    })
    .unwrap();
    let mut keys = PlatformKeys::new();
    keys.insert(PLATFORM_SERIAL, platform_verifier());
    verify_notification(&keys, &h, body, NOW, key)
}

#[test]
fn refund_notification_decrypts_parses_and_shows_no_payer_data() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let verified = verify(&refund_notification(&key, "refund"), &key).unwrap();
    assert_eq!(verified.notification.event_type, "REFUND.SUCCESS");
    let refund = verified.refund().unwrap();
    assert_eq!(refund.refund_status, RefundStatus::Success);
    assert_eq!(refund.out_refund_no, "R2026112912000000AB12CD34");
    assert_eq!(refund.mchid, "1900000001");
    assert_eq!(refund.amount.refund, 5000);
    assert_eq!(refund.amount.payer_refund, Some(5000));
    assert_eq!(refund.amount.currency, None);
    assert!(!format!("{refund:?}").contains(ACCOUNT));
    assert!(!format!("{verified:?}").contains(ACCOUNT));
    let kept = serde_json::to_string(&refund).unwrap();
    assert!(!kept.contains("user_received_account"));
    // A refund resource is not a transaction.
    assert!(matches!(
        verified.transaction(),
        Err(NotifyError::Resource(_))
    ));
}

#[test]
fn refund_resource_is_read_under_whatever_aad_the_envelope_authenticates() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    // The docs show "" for the AAD; the envelope's own label is what counts.
    let verified = verify(&refund_notification(&key, ""), &key).unwrap();
    assert_eq!(
        verified.refund().unwrap().refund_id,
        "50000000382019052709732678859"
    );
    // Changing the label after encryption breaks authentication.
    let mut envelope: Notification =
        serde_json::from_slice(&refund_notification(&key, "refund")).unwrap();
    envelope.resource.associated_data = Some("transaction".to_owned());
    let body = serde_json::to_vec(&envelope).unwrap();
    assert!(matches!(verify(&body, &key), Err(NotifyError::Decrypt(_))));
}
