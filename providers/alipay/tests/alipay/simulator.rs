//! The simulator's side of the protocol, checked against the client's side.

use paygate_alipay::simulator::{
    GatewayRequestError, parse_gateway_request, sign_response, verify_gateway_request,
};
use paygate_alipay::{
    FormError, OrderChannel, Params, TradeCall, order_request, trade_request, verify_response,
};

use crate::fixtures::{ALIPAY_KEY, ALIPAY_PUBLIC_KEY, APP_ID, APP_KEY, APP_PUBLIC_KEY, now, order};

#[test]
fn a_request_split_between_query_string_and_body_is_merged_and_verifies() {
    let request =
        trade_request(TradeCall::Query, APP_ID, &APP_KEY, "P2026112900AB12", now()).unwrap();
    // As the Java SDK splits it: system parameters in the URL, biz_content in the body.
    let mut query = request.params().clone();
    let biz_content = query.remove("biz_content").unwrap();
    let body: Params = [("biz_content", biz_content)].into_iter().collect();
    let merged = parse_gateway_request(&query.to_form(), body.to_form().as_bytes()).unwrap();
    assert_eq!(&merged, request.params());
    assert_eq!(verify_gateway_request(&merged, &APP_PUBLIC_KEY), Ok(()));
}

#[test]
fn a_key_sent_in_both_places_with_the_same_value_is_accepted_and_with_another_is_refused() {
    let request =
        trade_request(TradeCall::Close, APP_ID, &APP_KEY, "P2026112900AB12", now()).unwrap();
    let body = request.form_body();
    let same = parse_gateway_request("charset=utf-8", body.as_bytes()).unwrap();
    assert_eq!(verify_gateway_request(&same, &APP_PUBLIC_KEY), Ok(()));
    assert_eq!(
        parse_gateway_request("charset=gbk", body.as_bytes()),
        Err(FormError::Conflicting("charset".into()))
    );
}

#[test]
fn a_request_signed_with_another_key_gets_isv_invalid_signature() {
    let request = order_request(
        OrderChannel::Precreate,
        APP_ID,
        &ALIPAY_KEY,
        &order("P2026112900AB12", 19900),
        now(),
    )
    .unwrap();
    let refused = verify_gateway_request(request.params(), &APP_PUBLIC_KEY).unwrap_err();
    assert_eq!(refused, GatewayRequestError::Signature);
    assert_eq!(
        (refused.code(), refused.sub_code()),
        ("40002", "isv.invalid-signature")
    );
}

#[test]
fn a_request_with_a_changed_amount_gets_isv_invalid_signature() {
    let request = order_request(
        OrderChannel::PagePay,
        APP_ID,
        &APP_KEY,
        &order("P2026112900AB12", 19900),
        now(),
    )
    .unwrap();
    let mut params = request.params().clone();
    let tampered = params.get("biz_content").unwrap().replace("199.00", "0.01");
    params.insert("biz_content", tampered);
    assert_eq!(
        verify_gateway_request(&params, &APP_PUBLIC_KEY),
        Err(GatewayRequestError::Signature)
    );
}

#[test]
fn missing_or_invalid_common_parameters_get_alipays_codes() {
    let request = trade_request(TradeCall::Query, APP_ID, &APP_KEY, "P1", now()).unwrap();
    let refused = |key: &str, value: Option<&str>| {
        let mut params = request.params().clone();
        match value {
            Some(v) => params.insert(key, v),
            None => {
                params.remove(key);
            }
        }
        let e = verify_gateway_request(&params, &APP_PUBLIC_KEY).unwrap_err();
        (e.code(), e.sub_code())
    };
    assert_eq!(refused("sign", None), ("40001", "isv.missing-signature"));
    assert_eq!(refused("app_id", None), ("40001", "isv.missing-app-id"));
    assert_eq!(refused("method", Some("")), ("40001", "isv.missing-method"));
    assert_eq!(
        refused("sign_type", None),
        ("40001", "isv.missing-signature-type")
    );
    assert_eq!(
        refused("charset", Some("gbk")),
        ("40002", "isv.invalid-charset")
    );
    assert_eq!(
        refused("timestamp", Some("2026-11-29T00:30:00")),
        ("40002", "isv.invalid-timestamp")
    );
}

#[test]
fn a_signed_response_node_round_trips_through_the_clients_verification() {
    let node = r#"{"code":"10000","msg":"Success","out_trade_no":"P1","qr_code":"https:\/\/qr.alipay.com\/bax1"}"#;
    let raw = sign_response("alipay.trade.precreate", node, &ALIPAY_KEY).unwrap();
    assert!(raw.starts_with(r#"{"alipay_trade_precreate_response":{"code":"10000""#));
    assert_eq!(
        verify_response(&raw, "alipay.trade.precreate", &ALIPAY_PUBLIC_KEY),
        Ok(node)
    );
}
