//! Refunds made "at the merchant portal" of WeChat orders: `POST /sandbox/refund/{no}` and
//! `Sandbox::portal_refund`, refunds paygate did not start.

use paygate_sandbox::{
    Faults, PortalProvider, PortalRefundError, PortalRefundStatus, WechatRefundOutcome,
};
use paygate_wechatpay::{RefundStatus, TradeState};
use serde_json::{Value, json};

use crate::harness::{Harness, Receiver, order, order_no, start_with_divisor};
use crate::refunds::{assert_api_error, paid_order, refund_notification, refund_of};

/// Nobody listens there: the payment notification is never processed.
const NOWHERE: &str = "http://127.0.0.1:9/webhooks/wechatpay";

async fn portal(h: &Harness, out_trade_no: &str, body: Value) -> (u16, Value) {
    let response = h
        .http
        .post(format!("{}/sandbox/refund/{out_trade_no}", h.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_portal_refund_processes_completes_and_notifies_the_orders_notify_url() {
    // Real-time settling: the refund stays PROCESSING until the test completes it.
    let h = start_with_divisor(1).await;
    let receiver = Receiver::start(&[]).await;
    let out_trade_no = paid_order(&h, "PTW", 19900, &receiver.url).await;

    let (status, answer) = portal(&h, &out_trade_no, json!({"amount": "50.00"})).await;
    assert_eq!(status, 200, "{answer}");
    let refund_no = answer["refund_no"].as_str().unwrap().to_owned();
    assert_eq!(
        answer,
        json!({
            "provider": "wechatpay",
            "out_trade_no": out_trade_no,
            "refund_no": refund_no,
            "amount": "50.00",
            "status": "PROCESSING",
        })
    );
    assert!(refund_no.starts_with("PORTAL") && refund_no.len() <= 64);

    // The provider knows it as any refund.
    let processing = h.client.refund_by_out_refund_no(&refund_no).await.unwrap();
    assert_eq!(processing.status, RefundStatus::Processing);
    assert_eq!(processing.out_trade_no, out_trade_no);
    assert_eq!(
        (processing.amount.refund, processing.amount.total),
        (5000, 19900)
    );
    assert_eq!(processing.refund_id.len(), 29);
    assert_eq!(
        h.client
            .query_by_out_trade_no(&out_trade_no)
            .await
            .unwrap()
            .trade_state,
        TradeState::Success,
        "14900 fen still refundable"
    );

    assert_eq!(h.sandbox.complete_wechat_refunds(), 1);
    let done = h.client.refund_by_out_refund_no(&refund_no).await.unwrap();
    assert_eq!(done.status, RefundStatus::Success);
    assert!(done.success_time.is_some());
    // No notify_url was named: WeChat's platform setting, here the order's notify_url.
    let (_, notified) = refund_notification(&receiver, "REFUND.SUCCESS").await;
    assert_eq!(notified.out_refund_no, refund_no);
    assert_eq!(notified.out_trade_no, out_trade_no);
    assert_eq!(notified.refund_id, done.refund_id);
    assert_eq!(notified.amount.refund, 5000);
    assert_eq!(notified.success_time, done.success_time);
}

#[tokio::test]
async fn portal_refunds_count_against_what_api_refunds_may_take() {
    let h = start_with_divisor(1).await;
    let out_trade_no = paid_order(&h, "PTC", 19900, NOWHERE).await;
    let portal_refund = h.sandbox.portal_refund(&out_trade_no, 15000).unwrap();
    assert_eq!(portal_refund.provider, PortalProvider::Wechatpay);
    assert_eq!(portal_refund.status, PortalRefundStatus::Processing);
    assert_eq!(portal_refund.amount, "150.00");

    assert_api_error(
        h.client
            .refund(&refund_of(&out_trade_no, &order_no("PTC"), 4901, 19900))
            .await,
        403,
        "NOT_ENOUGH",
    );
    h.client
        .refund(&refund_of(&out_trade_no, &order_no("PTC"), 4900, 19900))
        .await
        .unwrap();
    assert_eq!(
        h.sandbox.portal_refund(&out_trade_no, 1),
        Err(PortalRefundError::NotEnough { left_fen: 0 })
    );
    let (status, answer) = portal(&h, &out_trade_no, json!({"amount": "0.01"})).await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("NOT_ENOUGH")));
    assert_eq!(h.sandbox.wechat_refunds(&out_trade_no).len(), 2);
}

#[tokio::test]
async fn an_order_paid_but_never_reported_then_refunded_at_the_portal_queries_as_refund() {
    let h = start_with_divisor(1).await;
    // The payment notification goes nowhere: the gateway never learnt the order was paid.
    let out_trade_no = paid_order(&h, "PTQ", 19900, NOWHERE).await;
    let paid = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();

    h.sandbox.portal_refund(&out_trade_no, 9900).unwrap();
    let partly = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(partly.trade_state, TradeState::Success);
    h.sandbox.portal_refund(&out_trade_no, 10000).unwrap();
    let refunded = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(refunded.trade_state, TradeState::Refund);
    // Still what proves the payment: who paid what, when.
    for queried in [&partly, &refunded] {
        assert!(queried.transaction_id.is_some());
        assert_eq!(queried.transaction_id, paid.transaction_id);
        assert_eq!(queried.amount.as_ref().unwrap().total, Some(19900));
        assert!(queried.success_time.is_some());
        assert_eq!(queried.success_time, paid.success_time);
    }
    // Completed or not, the refunds keep the trade at REFUND.
    assert_eq!(h.sandbox.complete_wechat_refunds(), 2);
    assert_eq!(
        h.client
            .query_by_out_trade_no(&out_trade_no)
            .await
            .unwrap()
            .trade_state,
        TradeState::Refund
    );
}

#[tokio::test]
async fn a_closed_portal_refund_notifies_refund_closed_and_gives_its_amount_back() {
    let h = start_with_divisor(1).await;
    let receiver = Receiver::start(&[]).await;
    let out_trade_no = paid_order(&h, "PTX", 19900, &receiver.url).await;
    h.sandbox.set_faults(Faults {
        wechat_refund_outcome: WechatRefundOutcome::Closed,
        ..Faults::default()
    });
    let refund = h.sandbox.portal_refund(&out_trade_no, 19900).unwrap();
    assert_eq!(h.sandbox.complete_wechat_refunds(), 1);
    let (_, notified) = refund_notification(&receiver, "REFUND.CLOSED").await;
    assert_eq!(notified.out_refund_no, refund.refund_no);
    assert_eq!(notified.refund_status, RefundStatus::Closed);
    assert_eq!(
        h.client
            .query_by_out_trade_no(&out_trade_no)
            .await
            .unwrap()
            .trade_state,
        TradeState::Success
    );
    // The whole amount is refundable again.
    h.sandbox.set_faults(Faults::default());
    assert!(h.sandbox.portal_refund(&out_trade_no, 19900).is_ok());
}

#[tokio::test]
async fn unknown_unpaid_and_closed_orders_are_404_and_bad_amounts_400() {
    let h = start_with_divisor(1).await;
    let unpaid = order_no("PTU");
    h.client
        .native_order(&order(&unpaid, 19900, NOWHERE))
        .await
        .unwrap();
    let closed = order_no("PTC");
    h.client
        .native_order(&order(&closed, 19900, NOWHERE))
        .await
        .unwrap();
    h.client.close(&closed).await.unwrap();
    for (no, code) in [
        ("NOSUCHORDER1", "ORDER_NOT_FOUND"),
        (unpaid.as_str(), "ORDER_NOT_PAID"),
        (closed.as_str(), "ORDER_NOT_PAID"),
    ] {
        let (status, answer) = portal(&h, no, json!({"amount": "1.00"})).await;
        assert_eq!((status, answer["code"].as_str()), (404, Some(code)), "{no}");
        assert!(answer["message"].is_string());
    }

    let paid = paid_order(&h, "PTA", 19900, NOWHERE).await;
    for (body, code) in [
        (json!({"amount": "1.001"}), "INVALID_AMOUNT"),
        (json!({"amount": "0.00"}), "INVALID_AMOUNT"),
        (json!({"amount": "-1.00"}), "INVALID_AMOUNT"),
        (json!({"amount": "1e2"}), "INVALID_AMOUNT"),
        (json!({"amount": "199.01"}), "NOT_ENOUGH"),
        (json!({"amount": 50}), "INVALID_REQUEST"),
        (json!({}), "INVALID_REQUEST"),
        (json!({"amount": "1.00", "reason": "x"}), "INVALID_REQUEST"),
    ] {
        let (status, answer) = portal(&h, &paid, body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    assert!(
        h.sandbox.wechat_refunds(&paid).is_empty(),
        "nothing refunded"
    );
    assert_eq!(
        h.sandbox.portal_refund(&paid, 0),
        Err(PortalRefundError::InvalidAmount)
    );
    assert_eq!(
        h.sandbox.portal_refund("NOSUCHORDER1", 100),
        Err(PortalRefundError::NotFound)
    );
    // Not a WeChat API request: nothing was recorded as one.
    assert!(
        !h.sandbox
            .wechat_requests()
            .iter()
            .any(|r| r.path.contains("refund"))
    );
}
