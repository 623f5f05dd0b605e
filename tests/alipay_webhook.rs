//! `POST /webhooks/alipay` (DESIGN.md §4, alipay.md §6): a notification settles only when its
//! signature verifies under the V1 rule, it names our `app_id` and `seller_id`, our order, the
//! order's exact amount, and a paid `trade_status`. Everything else is answered `fail` and
//! changes nothing (a verified close of an unpaid trade is acknowledged and changes nothing;
//! refund notifications are in `tests/refunds.rs`). Each copy of a real one is answered `success` and settles once.

mod common;

use common::{TestApp, alipay_notification};
use serde_json::Value;

async fn pending_alipay_order(app: &TestApp) -> (Value, String) {
    let order = app
        .create_order_on("emp_alipay_hook", "alipay", "qr", serde_json::json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap().to_owned();
    (order, order_no)
}

/// Refused with `fail` (anything but `success` makes Alipay retry), and nothing changed.
async fn assert_refused(app: &TestApp, order_no: &str, body: &str) {
    let (status, text) = app.post_alipay_callback(body).await;
    assert_eq!(text, "fail", "HTTP {status}");
    assert_ne!(status, 200, "a refusal is not a 2xx");
    app.assert_unsettled(order_no).await;
}

async fn the_same_notification_twenty_times_at_once_settles_once(app: TestApp) {
    let (order, order_no) = pending_alipay_order(&app).await;
    let body = alipay_notification(&order, &[]);
    let url = format!("{}/webhooks/alipay", app.url);
    let sends = (0..20).map(|_| {
        let req = app
            .http
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.clone());
        async move {
            let res = req.send().await.expect("request");
            (res.status().as_u16(), res.text().await.expect("body"))
        }
    });
    for (status, text) in common::race_all(sends).await {
        assert_eq!((status, text.as_str()), (200, "success"), "every copy");
    }
    app.assert_settled_once(&order_no).await;
    let order = app.order(&order_no).await;
    assert_eq!(
        order["payment_record"]["provider_transaction_id"],
        "2026112922001400000000000001"
    );
    assert_eq!(order["payment_record"]["amount"], "199.00");
    assert_eq!(
        app.entitlements("emp_alipay_hook").await["entitlements"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
on_both_backends!(
    the_same_notification_twenty_times_at_once_settles_once_on_sqlite,
    the_same_notification_twenty_times_at_once_settles_once_on_postgres,
    the_same_notification_twenty_times_at_once_settles_once
);

#[tokio::test]
async fn a_tampered_sign_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    let body = alipay_notification(&order, &[]);
    let mut params = paygate_alipay::Params::from_form(body.as_bytes()).unwrap();
    let sign = params.get("sign").unwrap().to_owned();
    let flipped = match sign.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sign[1..]),
    };
    params.insert("sign", flipped);
    assert_refused(&app, &order_no, &params.to_form()).await;
}

#[tokio::test]
async fn a_field_changed_after_signing_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    let body = alipay_notification(&order, &[]);
    let mut params = paygate_alipay::Params::from_form(body.as_bytes()).unwrap();
    params.insert("trade_no", "2026112922001400000000000999");
    assert_refused(&app, &order_no, &params.to_form()).await;
}

#[tokio::test]
async fn a_wrong_total_amount_is_refused_even_when_signed() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    assert_eq!(order["amount"], "199.00");
    // One fen more, and a third decimal that fen cannot hold: never rounded to 199.00.
    for amount in ["199.01", "199.001", "0.01"] {
        let body = alipay_notification(&order, &[("total_amount", amount)]);
        assert_refused(&app, &order_no, &body).await;
    }
}

#[tokio::test]
async fn another_app_id_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    let body = alipay_notification(&order, &[("app_id", "2021000000009999")]);
    assert_refused(&app, &order_no, &body).await;
}

#[tokio::test]
async fn another_seller_id_or_none_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    for seller in ["2088000000009999", ""] {
        let body = alipay_notification(&order, &[("seller_id", seller)]);
        assert_refused(&app, &order_no, &body).await;
    }
}

#[tokio::test]
async fn unpaid_trade_states_settle_nothing() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    for state in ["WAIT_BUYER_PAY", "SOMETHING_NEW"] {
        let body = alipay_notification(&order, &[("trade_status", state), ("gmt_payment", "")]);
        assert_refused(&app, &order_no, &body).await;
    }
    // An unpaid trade closed (no refund fields): verified, nothing to settle, and answered
    // `success` so Alipay does not repeat it for a day.
    let body = alipay_notification(
        &order,
        &[("trade_status", "TRADE_CLOSED"), ("gmt_payment", "")],
    );
    assert_eq!(
        app.post_alipay_callback(&body).await,
        (200, "success".to_owned())
    );
    app.assert_unsettled(&order_no).await;
}

#[tokio::test]
async fn an_unknown_out_trade_no_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    for unknown in ["P20261129000000000000UNKNOWN", "not-one-of-ours"] {
        let body = alipay_notification(&order, &[("out_trade_no", unknown)]);
        assert_refused(&app, &order_no, &body).await;
        assert_eq!(
            app.count("SELECT COUNT(*) FROM payment WHERE order_no = $1", unknown)
                .await,
            0
        );
    }
}

#[tokio::test]
async fn a_gateway_type_message_is_not_a_trade_notification() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    let body = alipay_notification(&order, &[("notify_type", "open_app_auth_notify")]);
    assert_refused(&app, &order_no, &body).await;
}

#[tokio::test]
async fn trade_finished_settles_like_trade_success() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_alipay_order(&app).await;
    let body = alipay_notification(&order, &[("trade_status", "TRADE_FINISHED")]);
    assert_eq!(
        app.post_alipay_callback(&body).await,
        (200, "success".to_owned())
    );
    app.assert_settled_once(&order_no).await;
}
