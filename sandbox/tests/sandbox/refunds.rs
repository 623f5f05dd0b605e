//! WeChat refunds: create and query with the crate's Client, the ledger rules, the
//! `REFUND.SUCCESS` notification, and the `CLOSED` / `ABNORMAL` outcomes of the
//! `wechat_refund_outcome` fault.

use paygate_sandbox::{Faults, WechatRefundOutcome};
use paygate_wechatpay::model::EVENT_REFUND_SUCCESS;
use paygate_wechatpay::{
    ApiV3Key, ClientError, RefundAmount, RefundNotification, RefundRequest, RefundStatus,
    SignatureHeaders, TradeState, VerifiedNotification, verify_notification,
};
use serde_json::{Value, json};

use crate::harness::{
    APIV3_KEY, Harness, MCHID, Receiver, eventually, now, order, order_no, platform_keys,
    signed_post, start, start_with_divisor,
};

const NOTIFY: &str = "http://127.0.0.1:9/webhooks/wechatpay";

pub fn assert_api_error(
    result: Result<impl std::fmt::Debug, ClientError>,
    status: u16,
    code: &str,
) {
    match result {
        Err(ClientError::Api {
            status: s, code: c, ..
        }) => assert_eq!((s, c.as_str()), (status, code)),
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

/// A paid order of `total` fen whose payment notification goes to `notify_url`.
pub async fn paid_order(h: &Harness, prefix: &str, total: i64, notify_url: &str) -> String {
    let out_trade_no = order_no(prefix);
    h.client
        .native_order(&order(&out_trade_no, total, notify_url))
        .await
        .unwrap();
    h.sandbox.pay(&out_trade_no).unwrap();
    out_trade_no
}

pub fn refund_of(
    out_trade_no: &str,
    out_refund_no: &str,
    refund: i64,
    total: i64,
) -> RefundRequest {
    RefundRequest {
        out_trade_no: out_trade_no.to_owned(),
        out_refund_no: out_refund_no.to_owned(),
        reason: None,
        notify_url: None,
        amount: RefundAmount {
            refund,
            total,
            currency: "CNY".to_owned(),
        },
    }
}

#[tokio::test]
async fn a_full_refund_is_processing_then_success_and_its_notification_verifies() {
    // Real-time settling (60 s): the refund stays PROCESSING until the test completes it.
    let h = start_with_divisor(1).await;
    let receiver = Receiver::start(&[]).await;
    let out_trade_no = paid_order(&h, "RFF", 19900, &receiver.url).await;
    let out_refund_no = order_no("RF@");
    let mut request = refund_of(&out_trade_no, &out_refund_no, 19900, 19900);
    request.notify_url = Some(receiver.url.clone());
    request.reason = Some("订单退款".to_owned());

    let accepted = h.client.refund(&request).await.unwrap();
    assert_eq!(accepted.status, RefundStatus::Processing);
    assert_eq!(accepted.out_refund_no, out_refund_no);
    assert_eq!(accepted.out_trade_no, out_trade_no);
    assert_eq!(
        (accepted.amount.total, accepted.amount.refund),
        (19900, 19900)
    );
    assert_eq!(accepted.success_time, None);
    assert_eq!(accepted.channel.as_deref(), Some("ORIGINAL"));
    let paid = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(Some(&accepted.transaction_id), paid.transaction_id.as_ref());
    // Refunds accepted for the whole total: 转入退款.
    assert_eq!(paid.trade_state, TradeState::Refund);

    let queried = h
        .client
        .refund_by_out_refund_no(&out_refund_no)
        .await
        .unwrap();
    assert_eq!(queried, accepted);

    assert_eq!(h.sandbox.complete_wechat_refunds(), 1);
    assert_eq!(h.sandbox.complete_wechat_refunds(), 0);
    let done = h
        .client
        .refund_by_out_refund_no(&out_refund_no)
        .await
        .unwrap();
    assert_eq!(done.status, RefundStatus::Success);
    assert!(done.success_time.as_deref().unwrap().ends_with("+08:00"));
    assert_eq!(done.refund_id, accepted.refund_id);

    let received = eventually("the refund notification", || {
        receiver
            .received()
            .into_iter()
            .find(|r| String::from_utf8_lossy(&r.body).contains(EVENT_REFUND_SUCCESS))
    })
    .await;
    assert_eq!(received.status, 204, "the receiver verified it");
    let headers = SignatureHeaders::from_header_map(&received.headers).unwrap();
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let verified =
        verify_notification(&platform_keys(), &headers, &received.body, now(), &key).unwrap();
    let envelope = &verified.notification;
    assert_eq!(envelope.event_type, "REFUND.SUCCESS");
    assert_eq!(envelope.summary.as_deref(), Some("退款成功"));
    assert_eq!(envelope.resource.original_type.as_deref(), Some("refund"));
    assert_eq!(envelope.resource.associated_data.as_deref(), Some("refund"));
    let refund = verified.refund().unwrap();
    assert_eq!(refund.refund_status, RefundStatus::Success);
    assert_eq!(refund.mchid, MCHID);
    assert_eq!(refund.refund_id, accepted.refund_id);
    assert_eq!(refund.out_trade_no, out_trade_no);
    assert_eq!(refund.success_time, done.success_time);
    assert_eq!((refund.amount.total, refund.amount.refund), (19900, 19900));
    // WeChat's plaintext names where the money went; the typed resource does not.
    let plaintext: Value = serde_json::from_slice(verified.resource_bytes()).unwrap();
    assert!(plaintext["user_received_account"].is_string());
    assert!(
        !serde_json::to_string(&refund)
            .unwrap()
            .contains("user_received_account")
    );

    let records = h.sandbox.notifications();
    assert!(records.iter().any(|d| d.notification_id == envelope.id
        && d.out_trade_no == out_trade_no
        && d.acknowledged));
}

#[tokio::test]
async fn refunds_succeed_by_themselves_after_the_scaled_delay() {
    let h = start().await; // time_divisor 1000: 60 s → 60 ms
    let receiver = Receiver::start(&[]).await;
    let out_trade_no = paid_order(&h, "RFS", 500, &receiver.url).await;
    eventually("the payment notification acknowledged", || {
        (h.sandbox.pending_notifications() == 0 && receiver.received().len() == 1).then_some(())
    })
    .await;
    let out_refund_no = order_no("RFS");
    let accepted = h
        .client
        .refund(&refund_of(&out_trade_no, &out_refund_no, 200, 500))
        .await
        .unwrap();
    assert_eq!(accepted.status, RefundStatus::Processing);
    let mut done = None;
    for _ in 0..500 {
        let refund = h
            .client
            .refund_by_out_refund_no(&out_refund_no)
            .await
            .unwrap();
        if refund.status == RefundStatus::Success {
            done = Some(refund);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(done.is_some(), "the refund succeeded within 10 s");
    // The request named no notify_url: nothing was queued for it.
    assert_eq!(h.sandbox.pending_notifications(), 0);
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(
        h.sandbox.wechat_refunds(&out_trade_no)[0]["status"],
        "SUCCESS"
    );
}

#[tokio::test]
async fn partial_refunds_add_up_to_the_total_and_no_further() {
    let h = start_with_divisor(1).await;
    let out_trade_no = paid_order(&h, "RFP", 19900, NOTIFY).await;
    for (n, refund) in [(1, 5000), (2, 9900)] {
        let accepted = h
            .client
            .refund(&refund_of(
                &out_trade_no,
                &format!("{out_trade_no}-{n}"),
                refund,
                19900,
            ))
            .await
            .unwrap();
        assert_eq!(accepted.amount.refund, refund);
    }
    let partly = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(
        partly.trade_state,
        TradeState::Success,
        "5000 fen still refundable"
    );

    // More than is left (but not more than the total): NOT_ENOUGH.
    assert_api_error(
        h.client
            .refund(&refund_of(
                &out_trade_no,
                &format!("{out_trade_no}-3"),
                5001,
                19900,
            ))
            .await,
        403,
        "NOT_ENOUGH",
    );
    h.client
        .refund(&refund_of(
            &out_trade_no,
            &format!("{out_trade_no}-4"),
            5000,
            19900,
        ))
        .await
        .unwrap();
    let refunded = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(refunded.trade_state, TradeState::Refund);
    assert_api_error(
        h.client
            .refund(&refund_of(
                &out_trade_no,
                &format!("{out_trade_no}-5"),
                1,
                19900,
            ))
            .await,
        403,
        "NOT_ENOUGH",
    );
    let ledger = h.sandbox.wechat_refunds(&out_trade_no);
    let amounts: Vec<_> = ledger
        .iter()
        .map(|r| r["amount"]["refund"].clone())
        .collect();
    assert_eq!(amounts, [json!(5000), json!(9900), json!(5000)]);
}

#[tokio::test]
async fn over_refunds_and_wrong_totals_are_parameter_errors() {
    let h = start().await;
    let out_trade_no = paid_order(&h, "RFO", 19900, NOTIFY).await;
    for (refund, total) in [(19901, 19900), (100, 19901), (100, 100)] {
        assert_api_error(
            h.client
                .refund(&refund_of(&out_trade_no, &order_no("RFO"), refund, total))
                .await,
            400,
            "PARAM_ERROR",
        );
    }
    assert!(h.sandbox.wechat_refunds(&out_trade_no).is_empty());
}

#[tokio::test]
async fn unpaid_closed_and_unknown_orders_cannot_be_refunded() {
    let h = start().await;
    let unpaid = order_no("RFU");
    h.client
        .native_order(&order(&unpaid, 19900, NOTIFY))
        .await
        .unwrap();
    let closed = order_no("RFC");
    h.client
        .native_order(&order(&closed, 19900, NOTIFY))
        .await
        .unwrap();
    h.client.close(&closed).await.unwrap();
    for out_trade_no in [unpaid.as_str(), closed.as_str(), "NOSUCHORDER1"] {
        assert_api_error(
            h.client
                .refund(&refund_of(out_trade_no, &order_no("RFU"), 100, 19900))
                .await,
            404,
            "RESOURCE_NOT_EXISTS",
        );
    }
    assert_api_error(
        h.client.refund_by_out_refund_no("NOSUCHREFUND").await,
        404,
        "RESOURCE_NOT_EXISTS",
    );
}

#[tokio::test]
async fn reposting_a_refund_answers_the_same_refund_and_other_parameters_are_refused() {
    let h = start_with_divisor(1).await;
    let out_trade_no = paid_order(&h, "RFI", 19900, NOTIFY).await;
    let out_refund_no = order_no("RFI");
    let request = refund_of(&out_trade_no, &out_refund_no, 19900, 19900);
    let first = h.client.refund(&request).await.unwrap();
    // Fully refunded now, yet the identical re-post is the same refund, not NOT_ENOUGH.
    let again = h.client.refund(&request).await.unwrap();
    assert_eq!(again, first);
    h.sandbox.complete_wechat_refunds();
    let after = h.client.refund(&request).await.unwrap();
    assert_eq!(
        (after.refund_id.as_str(), after.status),
        (first.refund_id.as_str(), RefundStatus::Success)
    );

    let mut other = request.clone();
    other.amount.refund = 100;
    assert_api_error(h.client.refund(&other).await, 400, "INVALID_REQUEST");
    let mut other = request.clone();
    other.reason = Some("另一个原因".to_owned());
    assert_api_error(h.client.refund(&other).await, 400, "INVALID_REQUEST");
    assert_eq!(h.sandbox.wechat_refunds(&out_trade_no).len(), 1);
}

#[tokio::test]
async fn fields_outside_the_allowlist_are_refused() {
    let h = start().await;
    let out_trade_no = paid_order(&h, "RFA", 19900, NOTIFY).await;
    let path = "/v3/refund/domestic/refunds";
    let base =
        serde_json::to_value(refund_of(&out_trade_no, &order_no("RFA"), 100, 19900)).unwrap();
    for (field, value) in [
        ("funds_account", json!("AVAILABLE")),
        (
            "goods_detail",
            json!([{"merchant_goods_id": "1", "refund_amount": 100, "refund_quantity": 1, "unit_price": 100}]),
        ),
        ("transaction_id", json!("4200000000202611290000000001")),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let (status, json) = signed_post(&h, path, &body.to_string()).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (400, Some("INVALID_REQUEST")),
            "{field}"
        );
    }
    let mut body = base.clone();
    body["amount"]["from"] = json!([{"account": "AVAILABLE", "amount": 100}]);
    let (status, json) = signed_post(&h, path, &body.to_string()).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
    assert!(h.sandbox.wechat_refunds(&out_trade_no).is_empty());

    // The allowlisted body itself goes through, signed like every call.
    let (status, json) = signed_post(&h, path, &base.to_string()).await;
    assert_eq!((status, json["status"].as_str()), (200, Some("PROCESSING")));
}

#[tokio::test]
async fn at_most_fifty_refunds_per_order() {
    let h = start().await;
    let out_trade_no = paid_order(&h, "RFL", 100, NOTIFY).await;
    for n in 0..50 {
        h.client
            .refund(&refund_of(
                &out_trade_no,
                &format!("{out_trade_no}-{n}"),
                1,
                100,
            ))
            .await
            .unwrap();
    }
    assert_api_error(
        h.client
            .refund(&refund_of(
                &out_trade_no,
                &format!("{out_trade_no}-50"),
                1,
                100,
            ))
            .await,
        403,
        "RULE_LIMIT",
    );
}

/// The first notification `receiver` got whose event is `event_type`, verified and decrypted
/// as the gateway would.
pub async fn refund_notification(
    receiver: &Receiver,
    event_type: &str,
) -> (VerifiedNotification, RefundNotification) {
    let received = eventually(event_type, || {
        receiver.received().into_iter().find(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .is_ok_and(|body| body["event_type"] == event_type)
        })
    })
    .await;
    assert_eq!(received.status, 204, "the receiver verified it");
    let headers = SignatureHeaders::from_header_map(&received.headers).unwrap();
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let verified =
        verify_notification(&platform_keys(), &headers, &received.body, now(), &key).unwrap();
    let refund = verified.refund().unwrap();
    (verified, refund)
}

#[tokio::test]
async fn closed_and_abnormal_refunds_notify_their_status_and_free_the_amount() {
    for (outcome, status, event, summary) in [
        (
            WechatRefundOutcome::Closed,
            RefundStatus::Closed,
            "REFUND.CLOSED",
            "退款关闭",
        ),
        (
            WechatRefundOutcome::Abnormal,
            RefundStatus::Abnormal,
            "REFUND.ABNORMAL",
            "退款异常",
        ),
    ] {
        let h = start_with_divisor(1).await;
        let receiver = Receiver::start(&[]).await;
        let out_trade_no = paid_order(&h, "RFX", 19900, &receiver.url).await;
        let out_refund_no = order_no("RFX");
        let mut request = refund_of(&out_trade_no, &out_refund_no, 19900, 19900);
        request.notify_url = Some(receiver.url.clone());
        let accepted = h.client.refund(&request).await.unwrap();
        assert_eq!(accepted.status, RefundStatus::Processing);
        assert_eq!(
            h.client
                .query_by_out_trade_no(&out_trade_no)
                .await
                .unwrap()
                .trade_state,
            TradeState::Refund,
            "a processing refund of the total is 转入退款"
        );

        // The outcome is read when the refund completes, not when it was accepted.
        h.sandbox.set_faults(Faults {
            wechat_refund_outcome: outcome,
            ..Faults::default()
        });
        assert_eq!(h.sandbox.complete_wechat_refunds(), 1);
        let done = h
            .client
            .refund_by_out_refund_no(&out_refund_no)
            .await
            .unwrap();
        assert_eq!(done.status, status);
        assert_eq!(done.success_time, None);
        assert_eq!(done.refund_id, accepted.refund_id);

        let (verified, refund) = refund_notification(&receiver, event).await;
        let envelope = &verified.notification;
        assert_eq!(envelope.summary.as_deref(), Some(summary));
        assert_eq!(envelope.resource.original_type.as_deref(), Some("refund"));
        assert_eq!(envelope.resource.associated_data.as_deref(), Some("refund"));
        assert_eq!(refund.refund_status, status);
        assert_eq!(refund.out_refund_no, out_refund_no);
        assert_eq!(refund.success_time, None);
        assert_eq!((refund.amount.total, refund.amount.refund), (19900, 19900));
        assert!(
            !receiver
                .received()
                .iter()
                .any(|r| { String::from_utf8_lossy(&r.body).contains(EVENT_REFUND_SUCCESS) })
        );

        // No money moved: the trade is paid again, and the whole amount can be refunded anew.
        let paid = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
        assert_eq!(paid.trade_state, TradeState::Success, "{outcome:?}");
        h.sandbox.set_faults(Faults::default());
        let again = h
            .client
            .refund(&refund_of(&out_trade_no, &order_no("RFX"), 19900, 19900))
            .await
            .unwrap();
        assert_eq!(again.status, RefundStatus::Processing);
        assert_eq!(h.sandbox.complete_wechat_refunds(), 1);
        assert_eq!(
            h.client
                .query_by_out_trade_no(&out_trade_no)
                .await
                .unwrap()
                .trade_state,
            TradeState::Refund
        );
        let statuses: Vec<_> = h
            .sandbox
            .wechat_refunds(&out_trade_no)
            .iter()
            .map(|r| r["status"].clone())
            .collect();
        assert_eq!(statuses, [json!(status), json!("SUCCESS")]);
    }
}

#[tokio::test]
async fn refunds_that_complete_by_themselves_take_the_outcome_set_by_put_faults() {
    let h = start().await; // 60 s → 60 ms
    let response = h
        .http
        .put(format!("{}/sandbox/faults", h.base))
        .json(&json!({"wechat_refund_outcome": "closed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        h.sandbox.faults().wechat_refund_outcome,
        WechatRefundOutcome::Closed
    );
    let out_trade_no = paid_order(&h, "RFT", 500, NOTIFY).await;
    let out_refund_no = order_no("RFT");
    h.client
        .refund(&refund_of(&out_trade_no, &out_refund_no, 500, 500))
        .await
        .unwrap();
    let mut status = RefundStatus::Processing;
    for _ in 0..500 {
        status = h
            .client
            .refund_by_out_refund_no(&out_refund_no)
            .await
            .unwrap()
            .status;
        if status != RefundStatus::Processing {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, RefundStatus::Closed);

    for bad in [
        json!({"wechat_refund_outcome": "CLOSED"}),
        json!({"wechat_refund_outcome": 1}),
    ] {
        let response = h
            .http
            .put(format!("{}/sandbox/faults", h.base))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
    assert_eq!(
        h.sandbox.faults().wechat_refund_outcome,
        WechatRefundOutcome::Closed,
        "a refused body changes nothing"
    );
}
