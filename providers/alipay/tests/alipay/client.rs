//! The thin client against a scripted local gateway (no network beyond 127.0.0.1).

use paygate_alipay::simulator::{error_response, sign_response, verify_gateway_request};
use paygate_alipay::{Error, Params, RefundStatus, TradeStatus};
use tokio::net::TcpListener;

use crate::fixtures::{ALIPAY_KEY, APP_PUBLIC_KEY, order};
use crate::gateway::{FakeGateway, client_for};

const ORDER: &str = "P2026112900AB12";

fn ok(method: &str, node: &str) -> (u16, String) {
    (200, sign_response(method, node, &ALIPAY_KEY).unwrap())
}

fn query_ok() -> (u16, String) {
    ok(
        "alipay.trade.query",
        &format!(
            r#"{{"code":"10000","msg":"Success","buyer_user_id":"2088101117955611","out_trade_no":"{ORDER}","total_amount":"199.00","trade_no":"2026112922001411111111111111","trade_status":"TRADE_SUCCESS"}}"#
        ),
    )
}

fn unavailable() -> (u16, String) {
    (
        200,
        sign_response(
            "alipay.trade.close",
            r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#,
            &ALIPAY_KEY,
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn precreate_posts_a_signed_utf8_form_and_returns_the_verified_qr_code() {
    let gateway = FakeGateway::start(vec![ok(
        "alipay.trade.precreate",
        &format!(
            r#"{{"code":"10000","msg":"Success","out_trade_no":"{ORDER}","qr_code":"https:\/\/qr.alipay.com\/bax1"}}"#
        ),
    )])
    .await;
    let answer = gateway
        .client()
        .precreate(&order(ORDER, 19900))
        .await
        .unwrap();
    assert_eq!(answer.qr_code, "https://qr.alipay.com/bax1");

    let requests = gateway.requests.lock().unwrap();
    assert_eq!(
        requests[0].content_type,
        "application/x-www-form-urlencoded;charset=utf-8"
    );
    let params = Params::from_form(&requests[0].body).unwrap();
    assert_eq!(params.get("method"), Some("alipay.trade.precreate"));
    assert_eq!(params.get("timestamp"), Some("2026-11-29 00:30:00"));
    assert_eq!(verify_gateway_request(&params, &APP_PUBLIC_KEY), Ok(()));
}

#[tokio::test]
async fn a_create_is_sent_once_even_when_alipay_is_unavailable() {
    let gateway = FakeGateway::start(vec![(503, String::new()), query_ok()]).await;
    let error = gateway
        .client()
        .precreate(&order(ORDER, 19900))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Http(503)));
    assert!(error.is_unavailable());
    assert_eq!(gateway.count(), 1);
}

#[tokio::test]
async fn a_query_is_retried_after_a_5xx_and_then_reads_the_paid_trade() {
    let gateway = FakeGateway::start(vec![(502, String::new()), query_ok()]).await;
    let answer = gateway.client().query(ORDER).await.unwrap();
    assert_eq!(answer.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(answer.total_fen, 19900);
    assert_eq!(gateway.count(), 2);
}

#[tokio::test]
async fn a_close_answered_with_code_20000_is_retried_a_bounded_number_of_times() {
    let gateway = FakeGateway::start(vec![
        unavailable(),
        unavailable(),
        unavailable(),
        unavailable(),
    ])
    .await;
    let error = gateway.client().close(ORDER).await.unwrap_err();
    assert!(error.is_unavailable());
    assert_eq!(error.api().map(|a| a.code.as_str()), Some("20000"));
    assert_eq!(gateway.count(), 3);
}

#[tokio::test]
async fn a_business_rejection_is_returned_at_once_with_its_codes() {
    let gateway = FakeGateway::start(vec![
        ok(
            "alipay.trade.close",
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}"#,
        ),
        query_ok(),
    ])
    .await;
    let error = gateway.client().close(ORDER).await.unwrap_err();
    assert!(!error.is_unavailable());
    assert!(error.api().unwrap().is_trade_not_exist());
    assert_eq!(gateway.count(), 1);
}

#[tokio::test]
async fn an_answer_whose_signature_does_not_verify_is_an_error_and_not_retried() {
    let (_, forged) = query_ok();
    let forged = forged.replace("199.00", "1.00");
    let gateway = FakeGateway::start(vec![(200, forged), query_ok()]).await;
    let error = gateway.client().query(ORDER).await.unwrap_err();
    assert!(matches!(error, Error::Response(_)), "{error:?}");
    assert!(!error.is_unavailable());
    assert_eq!(gateway.count(), 1);
}

#[tokio::test]
async fn an_unsigned_gateway_error_is_reported_as_rejected() {
    let gateway = FakeGateway::start(vec![(
        200,
        error_response(
            r#"{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}"#,
        ),
    )])
    .await;
    let error = gateway.client().query(ORDER).await.unwrap_err();
    let api = error.api().unwrap();
    assert_eq!(api.sub_code.as_deref(), Some("isv.invalid-app-id"));
    assert!(!api.signed);
    assert!(!error.is_unavailable());
}

#[tokio::test]
async fn an_unreachable_gateway_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gateway.do", listener.local_addr().unwrap());
    drop(listener);
    let error = client_for(&url).query(ORDER).await.unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");
    assert!(error.is_unavailable());
}

#[tokio::test]
async fn browser_urls_and_the_app_order_string_are_built_without_a_server_call() {
    let gateway = FakeGateway::start(vec![]).await;
    let client = gateway.client();
    let page = client.page_pay_url(&order(ORDER, 19900)).unwrap();
    let wap = client.wap_pay_url(&order(ORDER, 19900)).unwrap();
    let app = client.app_order_string(&order(ORDER, 19900)).unwrap();
    for (text, method) in [
        (page.split_once('?').unwrap().1, "alipay.trade.page.pay"),
        (wap.split_once('?').unwrap().1, "alipay.trade.wap.pay"),
        (app.as_str(), "alipay.trade.app.pay"),
    ] {
        let params = Params::from_form(text.as_bytes()).unwrap();
        assert_eq!(params.get("method"), Some(method));
        assert_eq!(verify_gateway_request(&params, &APP_PUBLIC_KEY), Ok(()));
    }
    assert!(page.starts_with(&gateway.url));
    assert_eq!(gateway.count(), 0);
}

#[tokio::test]
async fn a_refund_posts_the_signed_refund_once_and_reads_the_cumulative_fee() {
    let gateway = FakeGateway::start(vec![ok(
        "alipay.trade.refund",
        &format!(
            r#"{{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","fund_change":"Y","gmt_refund_pay":"2026-11-29 00:30:05","out_trade_no":"{ORDER}","refund_fee":"50.00","send_back_fee":"50.00","trade_no":"2026112922001411111111111111"}}"#
        ),
    )])
    .await;
    let answer = gateway
        .client()
        .refund(ORDER, "R1", 5000, Some("订单退款"))
        .await
        .unwrap();
    assert!(answer.fund_change);
    assert_eq!(answer.refund_fee_fen, 5000);

    let requests = gateway.requests.lock().unwrap();
    let params = Params::from_form(&requests[0].body).unwrap();
    assert_eq!(params.get("method"), Some("alipay.trade.refund"));
    assert_eq!(
        params.get("biz_content"),
        Some(
            r#"{"out_trade_no":"P2026112900AB12","refund_amount":"50.00","out_request_no":"R1","refund_reason":"订单退款"}"#
        )
    );
    assert_eq!(verify_gateway_request(&params, &APP_PUBLIC_KEY), Ok(()));
}

#[tokio::test]
async fn a_refund_is_sent_once_even_when_alipay_is_unavailable() {
    let gateway = FakeGateway::start(vec![
        ok(
            "alipay.trade.refund",
            r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#,
        ),
        query_ok(),
    ])
    .await;
    let error = gateway
        .client()
        .refund(ORDER, "R1", 5000, None)
        .await
        .unwrap_err();
    assert!(error.is_unavailable());
    assert_eq!(gateway.count(), 1);
}

#[tokio::test]
async fn a_refund_query_is_retried_after_a_5xx_and_then_reads_the_refund() {
    let gateway = FakeGateway::start(vec![
        (503, String::new()),
        ok(
            "alipay.trade.fastpay.refund.query",
            &format!(
                r#"{{"code":"10000","msg":"Success","out_request_no":"R1","out_trade_no":"{ORDER}","refund_amount":"50.00","refund_status":"REFUND_SUCCESS","total_amount":"199.00"}}"#
            ),
        ),
    ])
    .await;
    let answer = gateway.client().refund_query(ORDER, "R1").await.unwrap();
    assert_eq!(answer.refund_status, RefundStatus::Success);
    assert_eq!(answer.refund_fen, Some(5000));
    assert_eq!(gateway.count(), 2);
    let requests = gateway.requests.lock().unwrap();
    let params = Params::from_form(&requests[1].body).unwrap();
    assert_eq!(
        params.get("biz_content"),
        Some(r#"{"out_trade_no":"P2026112900AB12","out_request_no":"R1"}"#)
    );
}
