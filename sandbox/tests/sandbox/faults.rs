//! Notification and API faults, `resend`, and the injected clock.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use paygate_sandbox::Faults;
use paygate_wechatpay::{
    ApiV3Key, ClientError, RetryPolicy, SignatureHeaders, verify_notification,
};
use serde_json::{Value, json};

use crate::harness::{
    APIV3_KEY, Receiver, eventually, now, order, order_no, platform_keys, start, start_with,
    start_with_divisor,
};

const NOTIFY: &str = "http://127.0.0.1:9/webhooks/wechatpay";

#[tokio::test]
async fn dropped_notifications_stay_pending_until_resent_with_the_fault_lowered() {
    // Real retry delays (15 s first), so only the resend can deliver within the test.
    let h = start_with_divisor(1).await;
    let receiver = Receiver::start(&[]).await;
    h.sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..Faults::default()
    });
    let out_trade_no = order_no("DR");
    h.client
        .native_order(&order(&out_trade_no, 100, &receiver.url))
        .await
        .unwrap();
    h.sandbox.pay(&out_trade_no).unwrap();
    let first = eventually("the first attempt", || {
        h.sandbox.notifications().first().cloned()
    })
    .await;
    assert!(first.dropped && !first.acknowledged && first.status.is_none());
    assert_eq!(first.attempt, 1);
    assert_eq!(h.sandbox.pending_notifications(), 1);

    // Still dropping: a resend is one more lost attempt.
    assert_eq!(h.sandbox.resend_pending().await, 1);
    assert!(receiver.received().is_empty());
    assert_eq!(h.sandbox.pending_notifications(), 1);

    h.sandbox.set_faults(Faults::default());
    let resent: Value = h
        .http
        .post(format!("{}/sandbox/notifications/resend", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resent, json!({"attempted": 1}));
    let records = h.sandbox.notifications();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.attempt, r.dropped, r.acknowledged))
        .collect();
    assert_eq!(seen, [(1, true, false), (2, true, false), (3, false, true)]);
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(h.sandbox.pending_notifications(), 0);
    assert_eq!(h.sandbox.resend_pending().await, 0, "nothing left to send");
}

#[tokio::test]
async fn shares_outside_zero_to_one_are_refused_with_400() {
    let h = start().await;
    for body in [
        json!({"drop_notifications": 1.5}),
        json!({"drop_notifications": -0.1}),
        json!({"api_error_rate": 2}),
    ] {
        let response = h
            .http
            .put(format!("{}/sandbox/faults", h.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
    assert_eq!(h.sandbox.faults(), Faults::default(), "nothing was applied");
    let response = h
        .http
        .put(format!("{}/sandbox/faults", h.base))
        .json(&json!({"drop_notifications": 0.5, "reorder": true, "api_latency_ms": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let faults = h.sandbox.faults();
    assert_eq!(faults.drop_notifications, 0.5);
    assert!(faults.reorder);
    assert_eq!(faults.api_latency_ms, 5);
}

#[tokio::test]
async fn an_api_error_rate_of_one_fails_every_call_with_a_signed_system_error() {
    let h = start().await;
    h.sandbox.set_faults(Faults {
        api_error_rate: 1.0,
        ..Faults::default()
    });
    let client = h.client.clone().with_retry(RetryPolicy {
        max_attempts: 2,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(1),
    });
    let out_trade_no = order_no("ER");
    for _ in 0..3 {
        match client
            .native_order(&order(&out_trade_no, 100, NOTIFY))
            .await
        {
            Err(ClientError::Api { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (500, "SYSTEM_ERROR"));
            }
            other => panic!("expected a signed SYSTEM_ERROR, got {other:?}"),
        }
    }
    let error = client
        .query_by_out_trade_no(&out_trade_no)
        .await
        .unwrap_err();
    assert!(error.is_unavailable());
    assert_eq!(error.api_code(), Some("SYSTEM_ERROR"));
    // 3 orders and 2 query attempts, each answered the error: no order was created.
    assert_eq!(h.sandbox.wechat_requests().len(), 5);

    h.sandbox.set_faults(Faults::default());
    let error = client
        .query_by_out_trade_no(&out_trade_no)
        .await
        .unwrap_err();
    assert_eq!(error.api_code(), Some("ORDER_NOT_EXIST"));
    client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap();
}

#[tokio::test]
async fn reorder_delivers_the_newer_notification_before_the_older() {
    let h = start_with_divisor(1).await;
    let receiver = Receiver::start(&[]).await;
    h.sandbox.set_faults(Faults {
        reorder: true,
        ..Faults::default()
    });
    let (older, newer) = (order_no("RO"), order_no("RN"));
    for out_trade_no in [&older, &newer] {
        h.client
            .native_order(&order(out_trade_no, 100, &receiver.url))
            .await
            .unwrap();
    }
    h.sandbox.pay(&older).unwrap();
    h.sandbox.pay(&newer).unwrap();
    let records = eventually("both deliveries", || {
        let r = h.sandbox.notifications();
        (r.len() == 2).then_some(r)
    })
    .await;
    let order: Vec<&str> = records.iter().map(|r| r.out_trade_no.as_str()).collect();
    assert_eq!(order, [newer.as_str(), older.as_str()]);
    assert!(records.iter().all(|r| r.acknowledged));

    // What the merchant saw, in arrival order.
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let arrived: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| {
            let headers = SignatureHeaders::from_header_map(&r.headers).unwrap();
            verify_notification(&platform_keys(), &headers, &r.body, now(), &key)
                .unwrap()
                .transaction()
                .unwrap()
                .out_trade_no
        })
        .collect();
    assert_eq!(arrived, [newer, older]);
}

/// 2031-03-04T05:06:07Z, years away from the machine's clock.
fn fake_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap()
}

#[tokio::test]
async fn the_injected_clock_is_the_sandboxs_now_everywhere() {
    let fake_secs = fake_now().timestamp();
    let h = start_with(1000, Arc::new(fake_now), Arc::new(move || fake_secs)).await;
    let receiver = Receiver::start(&[204]).await;
    let out_trade_no = order_no("CK");
    // The request is signed at the fake time; the sandbox checks its window against it.
    h.client
        .native_order(&order(&out_trade_no, 100, &receiver.url))
        .await
        .unwrap();
    // A client on the real clock is now five minutes (years) off.
    let real = crate::harness::client_with_clock(&h.base, Arc::new(now));
    match real.query_by_out_trade_no(&out_trade_no).await {
        Err(ClientError::Verify(_)) | Err(ClientError::Api { status: 401, .. }) => {}
        other => panic!("expected the real clock to be refused, got {other:?}"),
    }

    let paid = h.sandbox.pay(&out_trade_no).unwrap();
    assert_eq!(paid["success_time"], "2031-03-04T13:06:07+08:00");
    assert!(
        paid["transaction_id"]
            .as_str()
            .unwrap()
            .contains("20310304")
    );

    let received = eventually("the callback", || receiver.received().into_iter().next()).await;
    let headers = SignatureHeaders::from_header_map(&received.headers).unwrap();
    assert_eq!(headers.timestamp, fake_secs.to_string());
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let verified =
        verify_notification(&platform_keys(), &headers, &received.body, fake_secs, &key).unwrap();
    assert_eq!(
        verified.notification.create_time,
        "2031-03-04T13:06:07+08:00"
    );
    let record = h.sandbox.notifications().remove(0);
    assert!(
        record.at.starts_with("2031-03-04T05:06:07"),
        "{}",
        record.at
    );
}

#[tokio::test]
async fn pay_before_close_pays_the_order_and_refuses_the_close() {
    let h = start().await;
    let receiver = Receiver::start(&[]).await;
    let out_trade_no = order_no("PC");
    h.client
        .native_order(&order(&out_trade_no, 100, &receiver.url))
        .await
        .unwrap();
    h.sandbox.set_faults(Faults {
        pay_before_close: true,
        ..Faults::default()
    });
    match h.client.close(&out_trade_no).await {
        Err(ClientError::Api { code, .. }) => assert_eq!(code, "ORDER_PAID"),
        other => panic!("the close must be refused as for a paid order, got {other:?}"),
    }
    let tx = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(tx.trade_state, paygate_wechatpay::TradeState::Success);
    eventually("the payment's notification", || {
        receiver.received().first().cloned()
    })
    .await;
}

#[tokio::test]
async fn api_latency_holds_the_answer_of_a_refund_already_made() {
    let h = start().await;
    let out_trade_no = order_no("LT");
    h.client
        .native_order(&order(&out_trade_no, 19900, NOTIFY))
        .await
        .unwrap();
    h.sandbox.pay(&out_trade_no).unwrap();
    h.sandbox.set_faults(Faults {
        api_latency_ms: 3_000,
        ..Faults::default()
    });
    // A gateway that gives up after 300 ms, as on a provider that acted and then timed out.
    let impatient = paygate_wechatpay::Client::new(
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(300))
            .build()
            .unwrap(),
        &format!("{}/sandbox/wechatpay", h.base),
        crate::harness::credentials(),
        Arc::new(std::sync::RwLock::new(platform_keys())),
        Arc::new(now),
    );
    let request = paygate_wechatpay::RefundRequest {
        out_trade_no: out_trade_no.clone(),
        out_refund_no: order_no("LTR"),
        reason: None,
        notify_url: None,
        amount: paygate_wechatpay::RefundAmount {
            refund: 19900,
            total: 19900,
            currency: "CNY".to_owned(),
        },
    };
    match impatient.refund(&request).await {
        Err(ClientError::Transport(error)) => assert!(error.is_timeout(), "{error:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The refund was made before the wait began.
    let made = h.sandbox.wechat_refunds(&out_trade_no);
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["out_refund_no"], request.out_refund_no.as_str());

    h.sandbox.set_faults(Faults::default());
    let again = h.client.refund(&request).await.unwrap();
    assert_eq!(again.refund_id, made[0]["refund_id"].as_str().unwrap());
    assert_eq!(h.sandbox.wechat_refunds(&out_trade_no).len(), 1);
}
