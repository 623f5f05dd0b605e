//! The return URL of browser orders (a signed common parameter) and the synchronous return
//! query Alipay appends to it (V1 rule, verified before anything is read).

use paygate_alipay::simulator::{sign_notification, verify_gateway_request};
use paygate_alipay::{
    NotifyError, OrderChannel, Params, RequestError, order_request, verify_return_query,
};

use crate::fixtures::{ALIPAY_KEY, ALIPAY_PUBLIC_KEY, APP_ID, APP_KEY, APP_PUBLIC_KEY, now, order};

const RETURN_URL: &str = "https://www.example.cn/orders/P2026112900AB12/paid";

fn keys(params: &Params) -> Vec<&str> {
    params.iter().map(|(k, _)| k).collect()
}

#[test]
fn page_and_wap_pay_sign_the_return_url_as_the_one_extra_common_parameter() {
    for channel in [OrderChannel::PagePay, OrderChannel::WapPay] {
        let mut o = order("P2026112900AB12", 19900);
        o.return_url = Some(RETURN_URL.to_owned());
        let request = order_request(channel, APP_ID, &APP_KEY, &o, now()).unwrap();
        let params = request.params();
        // The privacy allowlist of common parameters (design §1) grows by exactly
        // `return_url`: the buyer's browser has to come back somewhere, and the URL carries the
        // order number only.
        assert_eq!(
            keys(params),
            [
                "app_id",
                "biz_content",
                "charset",
                "format",
                "method",
                "notify_url",
                "return_url",
                "sign",
                "sign_type",
                "timestamp",
                "version"
            ]
        );
        assert_eq!(params.get("return_url"), Some(RETURN_URL));
        // Signed with the rest: the gateway's check passes, and fails once it is altered.
        assert_eq!(verify_gateway_request(params, &APP_PUBLIC_KEY), Ok(()));
        let mut altered = params.clone();
        altered.insert("return_url", "https://evil.example/paid");
        assert!(verify_gateway_request(&altered, &APP_PUBLIC_KEY).is_err());
        // The business content is unchanged by it.
        assert!(!params.get("biz_content").unwrap().contains("return"));
    }
}

#[test]
fn without_a_return_url_no_return_url_parameter_is_sent() {
    let request = order_request(
        OrderChannel::PagePay,
        APP_ID,
        &APP_KEY,
        &order("P2026112900AB12", 19900),
        now(),
    )
    .unwrap();
    assert_eq!(request.params().get("return_url"), None);
}

#[test]
fn a_return_url_is_refused_for_channels_without_a_browser_and_when_malformed() {
    let with = |channel, url: &str| {
        let mut o = order("P2026112900AB12", 1);
        o.return_url = Some(url.to_owned());
        order_request(channel, APP_ID, &APP_KEY, &o, now()).map(|_| ())
    };
    assert_eq!(
        with(OrderChannel::Precreate, RETURN_URL),
        Err(RequestError::ReturnUrl)
    );
    assert_eq!(
        with(OrderChannel::AppPay, RETURN_URL),
        Err(RequestError::ReturnUrl)
    );
    assert_eq!(
        with(OrderChannel::PagePay, "javascript:alert(1)"),
        Err(RequestError::ReturnUrl)
    );
    let long = format!("https://www.example.cn/{}", "a".repeat(240));
    assert_eq!(
        with(OrderChannel::WapPay, &long),
        Err(RequestError::ReturnUrl)
    );
}

/// The query Alipay appends to return_url (alipay.md §4), a buyer id included as some
/// versions send it.
fn return_fields(method: &str) -> Params {
    [
        ("app_id", "2021000000000000"),
        ("auth_app_id", "2021000000000000"),
        ("charset", "utf-8"),
        ("method", method),
        ("out_trade_no", "P2026112900AB12"),
        ("seller_id", "2088000000000000"),
        ("timestamp", "2026-11-29 00:31:09"),
        ("total_amount", "199.00"),
        ("trade_no", "2026112922001411111111111111"),
        ("version", "1.0"),
        ("buyer_id", "2088102534368455"),
    ]
    .into_iter()
    .collect()
}

#[test]
fn a_signed_return_query_verifies_and_keeps_no_payer_field() {
    for (method, channel) in [
        ("alipay.trade.page.pay.return", OrderChannel::PagePay),
        ("alipay.trade.wap.pay.return", OrderChannel::WapPay),
    ] {
        let query = sign_notification(return_fields(method), &ALIPAY_KEY).unwrap();
        let r = verify_return_query(query.as_bytes(), &ALIPAY_PUBLIC_KEY).unwrap();
        assert_eq!(r.channel, channel);
        assert_eq!(r.out_trade_no, "P2026112900AB12");
        assert_eq!(r.trade_no, "2026112922001411111111111111");
        assert_eq!(r.total_fen, 19900);
        assert_eq!(r.app_id, "2021000000000000");
        assert_eq!(r.seller_id.as_deref(), Some("2088000000000000"));
        assert_eq!(r.timestamp.to_rfc3339(), "2026-11-28T16:31:09+00:00");
        assert!(!format!("{r:?}").contains("2088102534368455"));
    }
}

#[test]
fn an_altered_or_foreign_return_query_is_refused() {
    let signed =
        sign_notification(return_fields("alipay.trade.page.pay.return"), &ALIPAY_KEY).unwrap();
    let mut params = Params::from_form(signed.as_bytes()).unwrap();
    for (key, value) in [
        ("total_amount", "0.01"),
        ("out_trade_no", "P2026112900ZZ99"),
        ("trade_no", "2026112922001499999999999999"),
    ] {
        let mut altered = params.clone();
        altered.insert(key, value);
        assert_eq!(
            verify_return_query(altered.to_form().as_bytes(), &ALIPAY_PUBLIC_KEY),
            Err(NotifyError::BadSignature),
            "{key} altered"
        );
    }
    // Signed by someone else's key (our app key is not Alipay's).
    let forged =
        sign_notification(return_fields("alipay.trade.page.pay.return"), &APP_KEY).unwrap();
    assert_eq!(
        verify_return_query(forged.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::BadSignature)
    );
    // A trade notification is not a return query, and an unsigned one is nothing.
    let mut notification = return_fields("alipay.trade.page.pay.return");
    notification.remove("method");
    notification.insert("notify_type", "trade_status_sync");
    let notification = sign_notification(notification, &ALIPAY_KEY).unwrap();
    assert_eq!(
        verify_return_query(notification.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::UnexpectedType)
    );
    params.remove("sign");
    assert_eq!(
        verify_return_query(params.to_form().as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::Unsigned)
    );
}
