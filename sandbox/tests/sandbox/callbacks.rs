//! The TRANSACTION.SUCCESS callback: delivery, verification, retries, faults.

use paygate_sandbox::Faults;
use paygate_wechatpay::{ApiV3Key, SignatureHeaders, TradeState, verify_notification};
use serde_json::{Value, json};

use crate::harness::{
    APIV3_KEY, Harness, Receiver, eventually, now, order, order_no, platform_keys, start,
};

async fn order_and_pay(h: &Harness, receiver: &Receiver, prefix: &str) -> (String, Value) {
    let out_trade_no = order_no(prefix);
    h.client
        .native_order(&order(&out_trade_no, 19900, &receiver.url))
        .await
        .unwrap();
    let paid: Value = h
        .http
        .post(format!("{}/sandbox/pay/{out_trade_no}", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (out_trade_no, paid)
}

#[tokio::test]
async fn paying_sends_a_signed_encrypted_notification_that_verifies_and_decrypts() {
    let h = start().await;
    let receiver = Receiver::start(&[]).await;
    let (out_trade_no, paid) = order_and_pay(&h, &receiver, "CB").await;

    let received = eventually("the callback", || receiver.received().into_iter().next()).await;
    assert_eq!(received.status, 204, "the receiver verified it");
    let headers = SignatureHeaders::from_header_map(&received.headers).unwrap();
    assert_eq!(headers.serial, crate::harness::PLATFORM_KEY_ID);
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let verified =
        verify_notification(&platform_keys(), &headers, &received.body, now(), &key).unwrap();

    let envelope = &verified.notification;
    assert_eq!(envelope.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(envelope.resource_type, "encrypt-resource");
    assert_eq!(envelope.summary.as_deref(), Some("支付成功"));
    assert_eq!(envelope.id.len(), 36);
    assert!(envelope.create_time.ends_with("+08:00"));
    assert_eq!(
        envelope.resource.original_type.as_deref(),
        Some("transaction")
    );
    assert_eq!(
        envelope.resource.associated_data.as_deref(),
        Some("transaction")
    );
    assert_eq!(envelope.resource.nonce.len(), 12);

    let transaction = verified.transaction().unwrap();
    assert_eq!(transaction.out_trade_no, out_trade_no);
    assert_eq!(transaction.trade_state, TradeState::Success);
    assert_eq!(
        transaction.transaction_id.as_deref(),
        paid["transaction_id"].as_str()
    );
    assert_eq!(transaction.amount.unwrap().total, Some(19900));
    // The plaintext carries the payer (as WeChat's does); the typed Transaction does not.
    let plaintext: Value = serde_json::from_slice(verified.resource_bytes()).unwrap();
    assert_eq!(plaintext["payer"]["openid"], paid["payer"]["openid"]);

    let records = eventually("the delivery record", || {
        let r = h.sandbox.notifications();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].notification_id, envelope.id);
    assert_eq!(records[0].out_trade_no, out_trade_no);
    assert_eq!(
        (records[0].attempt, records[0].status, records[0].probe),
        (1, Some(204), false)
    );
    assert!(records[0].acknowledged);
}

#[tokio::test]
async fn unacknowledged_callbacks_are_retried_until_acknowledged() {
    let h = start().await; // time_divisor 1000: 15 s → 15 ms
    let receiver = Receiver::start(&[500, 404]).await;
    let (out_trade_no, _) = order_and_pay(&h, &receiver, "RT").await;

    let records = eventually("an acknowledged delivery", || {
        let r = h.sandbox.notifications();
        r.iter().any(|d| d.acknowledged).then_some(r)
    })
    .await;
    let seen: Vec<_> = records.iter().map(|d| (d.attempt, d.status)).collect();
    assert_eq!(seen, [(1, Some(500)), (2, Some(404)), (3, Some(204))]);
    assert!(records.iter().all(|d| d.out_trade_no == out_trade_no));
    assert!(
        records
            .windows(2)
            .all(|w| w[0].notification_id == w[1].notification_id)
    );
    assert!(receiver.script_is_empty());

    // The same list over HTTP.
    let listed: Value = h
        .http
        .get(format!("{}/sandbox/notifications", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[2]["status"], 204);
    assert_eq!(listed[2]["acknowledged"], true);
}

#[tokio::test]
async fn an_unreachable_notify_url_is_recorded_without_a_status_and_retried() {
    let h = start().await;
    // Nothing listens on the discard port.
    let out_trade_no = order_no("UR");
    h.client
        .native_order(&order(
            &out_trade_no,
            100,
            "http://127.0.0.1:9/webhooks/wechatpay",
        ))
        .await
        .unwrap();
    h.sandbox.pay(&out_trade_no).unwrap();
    let records = eventually("two failed attempts", || {
        let r = h.sandbox.notifications();
        (r.len() >= 2).then_some(r)
    })
    .await;
    assert_eq!((records[0].attempt, records[0].status), (1, None));
    assert_eq!(records[1].attempt, 2);
    assert!(!records[0].acknowledged);
}

#[tokio::test]
async fn duplicate_notifications_fault_delivers_each_notification_n_times() {
    let h = start().await;
    h.sandbox.set_faults(Faults {
        duplicate_notifications: 3,
        ..Faults::default()
    });
    let receiver = Receiver::start(&[]).await;
    order_and_pay(&h, &receiver, "DUP").await;

    let records = eventually("three deliveries", || {
        let r = h.sandbox.notifications();
        (r.len() >= 3).then_some(r)
    })
    .await;
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|d| d.attempt == 1 && !d.probe && d.status == Some(204))
    );
    assert!(
        records
            .iter()
            .all(|d| d.notification_id == records[0].notification_id)
    );
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn signature_probe_fault_sends_a_probe_that_a_verifying_merchant_refuses() {
    let h = start().await;
    let put = h
        .http
        .put(format!("{}/sandbox/faults", h.base))
        .json(&json!({"signature_probe": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let receiver = Receiver::start(&[]).await;
    order_and_pay(&h, &receiver, "PRB").await;

    let records = eventually("the probe and the real delivery", || {
        let r = h.sandbox.notifications();
        (r.len() >= 2).then_some(r)
    })
    .await;
    assert!(records[0].probe);
    assert_eq!(records[0].status, Some(401));
    assert!(!records[0].acknowledged);
    assert!(!records[1].probe);
    assert_eq!(records[1].status, Some(204));
    let probe = &receiver.received()[0];
    let signature = probe.headers["Wechatpay-Signature"].to_str().unwrap();
    assert!(signature.starts_with("WECHATPAY/SIGNTEST/"));
}

#[tokio::test]
async fn forged_notifications_are_built_exactly_as_the_sandbox_sends_them() {
    let h = start().await;
    let transaction = json!({
        "appid": "wx8888888888888888", "mchid": "1900000001", "out_trade_no": "FORGED0001",
        "transaction_id": "4200000000202611290000000001", "trade_type": "NATIVE",
        "trade_state": "SUCCESS", "success_time": "2026-11-29T12:01:07+08:00",
        "payer": {"openid": "oForgedForgedForgedForged012"},
        "amount": {"total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"}
    });
    let ts = now();
    let signed = h.sandbox.wechat_notification(&transaction, ts);
    let lookup = |name: &str| {
        signed
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(lookup("Wechatpay-Timestamp"), Some(ts.to_string().as_str()));
    let headers = SignatureHeaders::from_lookup(lookup).unwrap();
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let verified =
        verify_notification(&platform_keys(), &headers, signed.body.as_bytes(), ts, &key).unwrap();
    assert_eq!(verified.transaction().unwrap().out_trade_no, "FORGED0001");
    // A test can tamper with it: one changed byte and it no longer verifies.
    let tampered = signed
        .body
        .replacen("TRANSACTION.SUCCESS", "TRANSACTION.SUCCESs", 1);
    assert!(
        verify_notification(&platform_keys(), &headers, tampered.as_bytes(), ts, &key).is_err()
    );
    // And an old one is stale.
    let old = h.sandbox.wechat_notification(&transaction, ts - 600);
    let old_lookup = |name: &str| {
        old.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let old_headers = SignatureHeaders::from_lookup(old_lookup).unwrap();
    assert!(
        verify_notification(
            &platform_keys(),
            &old_headers,
            old.body.as_bytes(),
            ts,
            &key
        )
        .is_err()
    );
}
