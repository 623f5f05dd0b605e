//! Building signed requests: common parameters, the business-content allowlist, encodings.

use paygate_alipay::simulator::verify_gateway_request;
use paygate_alipay::{
    OrderChannel, Params, RefundRequest, RequestError, SignedRequest, TradeCall, order_request,
    refund_query_request, refund_request, trade_request,
};
use serde_json::{Value, json};

use crate::fixtures::{APP_ID, APP_KEY, APP_PUBLIC_KEY, SUBJECT, now, order};

const GATEWAY: &str = "https://openapi.alipay.com/gateway.do";

fn build(channel: OrderChannel, total_fen: i64) -> SignedRequest {
    order_request(
        channel,
        APP_ID,
        &APP_KEY,
        &order("P2026112900AB12", total_fen),
        now(),
    )
    .unwrap()
}

fn biz_content(params: &Params) -> Value {
    serde_json::from_str(params.get("biz_content").unwrap()).unwrap()
}

fn keys(params: &Params) -> Vec<&str> {
    params.iter().map(|(k, _)| k).collect()
}

#[test]
fn a_precreate_request_carries_the_common_parameters_in_beijing_time_and_verifies() {
    let request = build(OrderChannel::Precreate, 19900);
    let params = request.params();
    assert_eq!(
        keys(params),
        [
            "app_id",
            "biz_content",
            "charset",
            "format",
            "method",
            "notify_url",
            "sign",
            "sign_type",
            "timestamp",
            "version"
        ]
    );
    assert_eq!(params.get("app_id"), Some(APP_ID));
    assert_eq!(params.get("method"), Some("alipay.trade.precreate"));
    assert_eq!(params.get("format"), Some("JSON"));
    assert_eq!(params.get("charset"), Some("utf-8"));
    assert_eq!(params.get("sign_type"), Some("RSA2"));
    assert_eq!(params.get("version"), Some("1.0"));
    // 16:30 UTC on the 28th is half past midnight on the 29th in Beijing.
    assert_eq!(params.get("timestamp"), Some("2026-11-29 00:30:00"));
    assert_eq!(
        params.get("notify_url"),
        Some("https://pay.example.cn/webhooks/alipay")
    );
    assert_eq!(params.get("sign").unwrap().len(), 344);
    assert_eq!(verify_gateway_request(params, &APP_PUBLIC_KEY), Ok(()));
}

#[test]
fn order_business_content_holds_only_the_order_number_amount_subject_and_expiry() {
    let params = build(OrderChannel::Precreate, 19900).params().clone();
    assert_eq!(
        biz_content(&params),
        json!({
            "out_trade_no": "P2026112900AB12",
            "total_amount": "199.00",
            "subject": SUBJECT,
            "time_expire": "2026-11-29 00:45:00",
        })
    );
    // The subject goes out as raw UTF-8, exactly the text that was signed.
    assert!(params.get("biz_content").unwrap().contains(SUBJECT));
}

#[test]
fn page_wap_and_app_pay_add_their_product_code_and_nothing_else() {
    for (channel, method, product_code) in [
        (
            OrderChannel::PagePay,
            "alipay.trade.page.pay",
            "FAST_INSTANT_TRADE_PAY",
        ),
        (
            OrderChannel::WapPay,
            "alipay.trade.wap.pay",
            "QUICK_WAP_WAY",
        ),
        (
            OrderChannel::AppPay,
            "alipay.trade.app.pay",
            "QUICK_MSECURITY_PAY",
        ),
    ] {
        let request = build(channel, 1);
        assert_eq!(request.params().get("method"), Some(method));
        assert_eq!(
            biz_content(request.params()),
            json!({
                "out_trade_no": "P2026112900AB12",
                "total_amount": "0.01",
                "subject": SUBJECT,
                "product_code": product_code,
                "time_expire": "2026-11-29 00:45:00",
            })
        );
    }
}

#[test]
fn the_page_pay_url_is_the_gateway_with_every_signed_parameter_url_encoded_in_the_query() {
    let request = build(OrderChannel::PagePay, 19900);
    let url = request.browser_url(GATEWAY);
    let query = url
        .strip_prefix(&format!("{GATEWAY}?"))
        .expect("gateway URL and a query");
    assert!(!query.contains(' ') && !query.contains('{') && !query.contains('"'));
    assert!(query.contains("timestamp=2026-11-29+00%3A30%3A00"));
    let params = Params::from_form(query.as_bytes()).unwrap();
    assert_eq!(&params, request.params());
    assert_eq!(verify_gateway_request(&params, &APP_PUBLIC_KEY), Ok(()));
    // A gateway URL with a query of its own keeps it.
    assert!(
        request
            .browser_url("https://gw.example/gateway.do?charset=utf-8")
            .starts_with("https://gw.example/gateway.do?charset=utf-8&app_id=")
    );
}

#[test]
fn the_app_order_string_is_sorted_url_encoded_pairs_ending_in_the_sign() {
    let request = build(OrderChannel::AppPay, 19900);
    let order_string = request.order_string();
    assert!(order_string.starts_with("app_id=2021000000000000&biz_content=%7B%22out_trade_no"));
    let (_, sign) = order_string.rsplit_once("&sign=").unwrap();
    assert!(!sign.contains('&') && !sign.contains('+') && !sign.contains('/'));
    let params = Params::from_form(order_string.as_bytes()).unwrap();
    assert_eq!(&params, request.params());
    assert_eq!(verify_gateway_request(&params, &APP_PUBLIC_KEY), Ok(()));
}

#[test]
fn query_and_close_carry_the_order_number_only_and_no_notify_url() {
    for (call, method) in [
        (TradeCall::Query, "alipay.trade.query"),
        (TradeCall::Close, "alipay.trade.close"),
    ] {
        let request = trade_request(call, APP_ID, &APP_KEY, "P2026112900AB12", now()).unwrap();
        let params = request.params();
        assert_eq!(params.get("method"), Some(method));
        assert_eq!(
            params.get("biz_content"),
            Some(r#"{"out_trade_no":"P2026112900AB12"}"#)
        );
        assert_eq!(params.get("notify_url"), None);
        assert_eq!(verify_gateway_request(params, &APP_PUBLIC_KEY), Ok(()));
        let body = Params::from_form(request.form_body().as_bytes()).unwrap();
        assert_eq!(&body, params);
    }
}

#[test]
fn amounts_outside_one_fen_to_one_hundred_million_yuan_are_not_sent() {
    for total_fen in [0, -1, 10_000_000_001] {
        let result = order_request(
            OrderChannel::Precreate,
            APP_ID,
            &APP_KEY,
            &order("P1", total_fen),
            now(),
        );
        assert_eq!(result.unwrap_err(), RequestError::Amount, "{total_fen}");
    }
    let largest = build(OrderChannel::Precreate, 10_000_000_000);
    assert_eq!(
        biz_content(largest.params())["total_amount"],
        "100000000.00"
    );
}

#[test]
fn inputs_alipay_would_refuse_are_caught_before_signing() {
    let reject = |edit: fn(&mut paygate_alipay::OrderRequest)| {
        let mut o = order("P2026112900AB12", 100);
        edit(&mut o);
        order_request(OrderChannel::PagePay, APP_ID, &APP_KEY, &o, now()).unwrap_err()
    };
    assert_eq!(
        reject(|o| o.out_trade_no = "P-1".into()),
        RequestError::OutTradeNo
    );
    assert_eq!(
        reject(|o| o.out_trade_no = String::new()),
        RequestError::OutTradeNo
    );
    assert_eq!(
        reject(|o| o.out_trade_no = "P".repeat(65)),
        RequestError::OutTradeNo
    );
    assert_eq!(reject(|o| o.subject = "a&b".into()), RequestError::Subject);
    assert_eq!(reject(|o| o.subject = "a/b".into()), RequestError::Subject);
    assert_eq!(reject(|o| o.subject = " ".into()), RequestError::Subject);
    assert_eq!(
        reject(|o| o.notify_url = "https://pay.example.cn/webhooks/alipay?x=1".into()),
        RequestError::NotifyUrl
    );
    assert_eq!(
        reject(|o| o.notify_url = "ftp://x/y".into()),
        RequestError::NotifyUrl
    );
    assert_eq!(
        trade_request(TradeCall::Query, "", &APP_KEY, "P1", now()).unwrap_err(),
        RequestError::AppId
    );
}

fn refund(refund_fen: i64, refund_reason: Option<&str>) -> RefundRequest {
    RefundRequest {
        out_trade_no: "P2026112900AB12".into(),
        out_request_no: "R2026112900AB12_1".into(),
        refund_fen,
        refund_reason: refund_reason.map(str::to_owned),
    }
}

#[test]
fn a_refund_carries_exactly_the_order_number_amount_refund_number_and_neutral_reason() {
    let request = refund_request(APP_ID, &APP_KEY, &refund(5050, Some("订单退款")), now()).unwrap();
    let params = request.params();
    assert_eq!(request.method(), "alipay.trade.refund");
    assert_eq!(
        keys(params),
        [
            "app_id",
            "biz_content",
            "charset",
            "format",
            "method",
            "sign",
            "sign_type",
            "timestamp",
            "version"
        ]
    );
    assert_eq!(params.get("method"), Some("alipay.trade.refund"));
    assert_eq!(params.get("timestamp"), Some("2026-11-29 00:30:00"));
    // The exact text that was signed and goes out, field order included.
    assert_eq!(
        params.get("biz_content"),
        Some(
            r#"{"out_trade_no":"P2026112900AB12","refund_amount":"50.50","out_request_no":"R2026112900AB12_1","refund_reason":"订单退款"}"#
        )
    );
    assert_eq!(params.get("sign").unwrap().len(), 344);
    assert_eq!(verify_gateway_request(params, &APP_PUBLIC_KEY), Ok(()));
    let body = Params::from_form(request.form_body().as_bytes()).unwrap();
    assert_eq!(&body, params);

    let without_reason = refund_request(APP_ID, &APP_KEY, &refund(1, None), now()).unwrap();
    assert_eq!(
        without_reason.params().get("biz_content"),
        Some(
            r#"{"out_trade_no":"P2026112900AB12","refund_amount":"0.01","out_request_no":"R2026112900AB12_1"}"#
        )
    );
}

#[test]
fn a_refund_query_carries_the_order_number_and_the_refund_number_only() {
    let request = refund_query_request(
        APP_ID,
        &APP_KEY,
        "P2026112900AB12",
        "R2026112900AB12_1",
        now(),
    )
    .unwrap();
    let params = request.params();
    assert_eq!(
        params.get("method"),
        Some("alipay.trade.fastpay.refund.query")
    );
    assert_eq!(
        params.get("biz_content"),
        Some(r#"{"out_trade_no":"P2026112900AB12","out_request_no":"R2026112900AB12_1"}"#)
    );
    assert_eq!(params.get("notify_url"), None);
    assert_eq!(verify_gateway_request(params, &APP_PUBLIC_KEY), Ok(()));
}

#[test]
fn refunds_alipay_would_refuse_are_caught_before_signing() {
    let reject = |edit: fn(&mut RefundRequest)| {
        let mut r = refund(100, None);
        edit(&mut r);
        refund_request(APP_ID, &APP_KEY, &r, now()).unwrap_err()
    };
    assert_eq!(reject(|r| r.refund_fen = 0), RequestError::Amount);
    assert_eq!(reject(|r| r.refund_fen = -1), RequestError::Amount);
    assert_eq!(
        reject(|r| r.refund_fen = 10_000_000_001),
        RequestError::Amount
    );
    assert_eq!(
        reject(|r| r.out_request_no = String::new()),
        RequestError::OutRequestNo
    );
    assert_eq!(
        reject(|r| r.out_request_no = "R-1".into()),
        RequestError::OutRequestNo
    );
    assert_eq!(
        reject(|r| r.out_request_no = "R".repeat(65)),
        RequestError::OutRequestNo
    );
    assert_eq!(
        reject(|r| r.out_trade_no = "P 1".into()),
        RequestError::OutTradeNo
    );
    assert_eq!(
        reject(|r| r.refund_reason = Some(" ".into())),
        RequestError::RefundReason
    );
    assert_eq!(
        reject(|r| r.refund_reason = Some("退".repeat(257))),
        RequestError::RefundReason
    );
    assert_eq!(
        reject(|r| r.refund_reason = Some("a\nb".into())),
        RequestError::RefundReason
    );
    assert_eq!(
        refund_query_request(APP_ID, &APP_KEY, "P1", "", now()).unwrap_err(),
        RequestError::OutRequestNo
    );
}
