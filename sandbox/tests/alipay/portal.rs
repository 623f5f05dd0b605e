//! Refunds made "at the merchant portal" of Alipay trades: `POST /sandbox/refund/{no}` and
//! `Sandbox::portal_refund`, refunds paygate did not start.

use paygate_alipay::{RefundStatus, TradeStatus};
use paygate_sandbox::{PortalProvider, PortalRefundError, PortalRefundStatus};
use serde_json::{Value, json};

use crate::refund_notifications::{notifications, paid_trade_notifying};
use crate::{Harness, NOWHERE, Receiver, api_error, order, order_no, paid_trade, start};

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
async fn a_portal_refund_is_done_at_once_queryable_and_notified() {
    let h = start().await;
    let receiver = Receiver::start(&[]).await;
    let no = paid_trade_notifying(&h, "PTA", 19900, &receiver.url).await;

    let (status, answer) = portal(&h, &no, json!({"amount": "50.00"})).await;
    assert_eq!(status, 200, "{answer}");
    let refund_no = answer["refund_no"].as_str().unwrap().to_owned();
    assert_eq!(
        answer,
        json!({
            "provider": "alipay",
            "out_trade_no": no,
            "refund_no": refund_no,
            "amount": "50.00",
            "status": "SUCCESS",
        })
    );
    assert!(refund_no.starts_with("PORTAL") && refund_no.len() <= 64);
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(5000));

    let found = h.client.refund_query(&no, &refund_no).await.unwrap();
    assert_eq!(found.refund_status, RefundStatus::Success);
    assert_eq!(found.refund_fen, Some(5000));
    assert_eq!(
        h.client.query(&no).await.unwrap().trade_status,
        TradeStatus::TradeSuccess
    );

    let (_, n) = notifications(&receiver, 2).await.remove(1);
    assert_eq!(n.out_biz_no.as_deref(), Some(refund_no.as_str()));
    assert_eq!(n.refund_fee_fen, Some(5000));
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
}

#[tokio::test]
async fn portal_refunds_count_against_what_api_refunds_may_take() {
    let h = start().await;
    let no = paid_trade(&h, "PTC", 19900).await;
    let refund = h.sandbox.portal_refund(&no, 15000).unwrap();
    assert_eq!(refund.provider, PortalProvider::Alipay);
    assert_eq!(refund.status, PortalRefundStatus::Success);
    assert_eq!(refund.amount, "150.00");

    let error = h.client.refund(&no, "R1", 4901, None).await.unwrap_err();
    assert_eq!(
        api_error(error).1.as_deref(),
        Some("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    );
    let last = h.client.refund(&no, "R1", 4900, None).await.unwrap();
    assert_eq!((last.fund_change, last.refund_fee_fen), (true, 19900));
    assert_eq!(
        h.sandbox.portal_refund(&no, 1),
        Err(PortalRefundError::NotEnough { left_fen: 0 })
    );
    let (status, answer) = portal(&h, &no, json!({"amount": "0.01"})).await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("NOT_ENOUGH")));
}

#[tokio::test]
async fn paid_then_fully_refunded_at_the_portal_queries_closed_with_its_payment_facts() {
    let h = start().await;
    // NOWHERE: the payment notification is never processed by anyone.
    let no = paid_trade(&h, "PTQ", 19900).await;
    let paid = h.client.query(&no).await.unwrap();
    h.sandbox.portal_refund(&no, 9900).unwrap();
    assert_eq!(
        h.client.query(&no).await.unwrap().trade_status,
        TradeStatus::TradeSuccess
    );
    h.sandbox.portal_refund(&no, 10000).unwrap();

    let refunded = h.client.query(&no).await.unwrap();
    assert_eq!(refunded.trade_status, TradeStatus::TradeClosed);
    assert_eq!(refunded.trade_no, paid.trade_no);
    assert_eq!(refunded.total_fen, 19900);
    assert!(refunded.paid_at.is_some(), "send_pay_date: it was paid");
    assert_eq!(refunded.paid_at, paid.paid_at);

    // What a closed unpaid trade looks like, by contrast: no send_pay_date.
    let unpaid = order_no("PTU");
    h.client
        .precreate(&order(&unpaid, 19900, NOWHERE))
        .await
        .unwrap();
    h.client.close(&unpaid).await.unwrap();
    let closed = h.client.query(&unpaid).await.unwrap();
    assert_eq!(closed.trade_status, TradeStatus::TradeClosed);
    assert_eq!(closed.paid_at, None);
}

#[tokio::test]
async fn unknown_and_unpaid_trades_are_404_and_bad_amounts_400() {
    let h = start().await;
    let unpaid = order_no("PTW");
    h.client
        .precreate(&order(&unpaid, 19900, NOWHERE))
        .await
        .unwrap();
    for (no, code) in [
        ("NO_SUCH_TRADE_1", "ORDER_NOT_FOUND"),
        (unpaid.as_str(), "ORDER_NOT_PAID"),
    ] {
        let (status, answer) = portal(&h, no, json!({"amount": "1.00"})).await;
        assert_eq!((status, answer["code"].as_str()), (404, Some(code)), "{no}");
    }
    let paid = paid_trade(&h, "PTB", 100).await;
    for (body, code) in [
        (json!({"amount": "0.001"}), "INVALID_AMOUNT"),
        (json!({"amount": "0"}), "INVALID_AMOUNT"),
        (json!({"amount": "1.01"}), "NOT_ENOUGH"),
        (json!({"amount": 1}), "INVALID_REQUEST"),
    ] {
        let (status, answer) = portal(&h, &paid, body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
    }
    assert_eq!(h.sandbox.alipay_refunded_fen(&paid), Some(0));
    assert_eq!(
        h.sandbox.portal_refund(&unpaid, 100),
        Err(PortalRefundError::NotPaid)
    );
}
