//! JSAPI, H5 and App orders: each channel's allowlist, idempotent re-orders, the trade_type the
//! payment reports, and the cashier for every channel.

use paygate_wechatpay::{
    ApiV3Key, AppOrderRequest, ClientError, H5Info, H5OrderRequest, H5SceneInfo, JsapiOrderRequest,
    Payer, SignatureHeaders, TradeState, verify_notification,
};
use serde_json::{Value, json};

use crate::harness::{
    APIV3_KEY, Harness, Receiver, eventually, now, order, order_no, platform_keys, signed_post,
    start,
};

const NOTIFY: &str = "http://127.0.0.1:9/webhooks/wechatpay";
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

fn jsapi(out_trade_no: &str, openid: &str, notify_url: &str) -> JsapiOrderRequest {
    let native = order(out_trade_no, 19900, notify_url);
    JsapiOrderRequest {
        appid: native.appid,
        mchid: native.mchid,
        description: native.description,
        out_trade_no: native.out_trade_no,
        time_expire: None,
        notify_url: native.notify_url,
        amount: native.amount,
        payer: Payer {
            openid: openid.to_owned(),
        },
    }
}

fn h5(out_trade_no: &str, ip: &str) -> H5OrderRequest {
    let native = order(out_trade_no, 990, NOTIFY);
    H5OrderRequest {
        appid: native.appid,
        mchid: native.mchid,
        description: native.description,
        out_trade_no: native.out_trade_no,
        time_expire: None,
        notify_url: native.notify_url,
        amount: native.amount,
        scene_info: H5SceneInfo {
            payer_client_ip: ip.to_owned(),
            h5_info: H5Info {
                kind: "iOS".to_owned(),
            },
        },
    }
}

fn app(out_trade_no: &str) -> AppOrderRequest {
    let native = order(out_trade_no, 100, NOTIFY);
    AppOrderRequest {
        appid: native.appid,
        mchid: native.mchid,
        description: native.description,
        out_trade_no: native.out_trade_no,
        time_expire: None,
        notify_url: native.notify_url,
        amount: native.amount,
    }
}

fn assert_api_error<T: std::fmt::Debug>(result: Result<T, ClientError>, status: u16, code: &str) {
    match result {
        Err(ClientError::Api {
            status: s, code: c, ..
        }) => assert_eq!((s, c.as_str()), (status, code)),
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

/// `wx` + 14 digits of Beijing time + more, at most 64 characters.
fn assert_prepay_id(prepay_id: &str) {
    assert!(prepay_id.starts_with("wx"), "{prepay_id}");
    assert!(prepay_id.len() <= 64 && prepay_id.len() > 16, "{prepay_id}");
    assert!(
        prepay_id[2..16].bytes().all(|b| b.is_ascii_digit()),
        "{prepay_id}"
    );
    assert!(prepay_id[2..6] >= *"2026", "a year: {prepay_id}");
}

async fn pay(h: &Harness, out_trade_no: &str) -> Value {
    let response = h
        .http
        .post(format!("{}/sandbox/pay/{out_trade_no}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn jsapi_order_is_paid_by_the_openid_the_merchant_sent_and_reports_jsapi() {
    let h = start().await;
    let receiver = Receiver::start(&[]).await;
    let out_trade_no = order_no("JS");
    let created = h
        .client
        .jsapi_order(&jsapi(&out_trade_no, OPENID, &receiver.url))
        .await
        .unwrap();
    assert_prepay_id(&created.prepay_id);
    let unpaid = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(unpaid.trade_state, TradeState::NotPay);

    let paid = pay(&h, &out_trade_no).await;
    assert_eq!(paid["payer"]["openid"], OPENID);
    assert_eq!(paid["trade_type"], "JSAPI");
    let settled = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(settled.trade_state, TradeState::Success);
    assert_eq!(settled.trade_type.as_deref(), Some("JSAPI"));
    assert_eq!(h.sandbox.wechat_trade_type(&out_trade_no), Some("JSAPI"));

    // The notification says JSAPI too, and names the same payer.
    let received = eventually("the callback", || receiver.received().into_iter().next()).await;
    assert_eq!(received.status, 204);
    let headers = SignatureHeaders::from_header_map(&received.headers).unwrap();
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let verified =
        verify_notification(&platform_keys(), &headers, &received.body, now(), &key).unwrap();
    assert_eq!(
        verified.transaction().unwrap().trade_type.as_deref(),
        Some("JSAPI")
    );
    let resource: Value = serde_json::from_slice(verified.resource_bytes()).unwrap();
    assert_eq!(resource["payer"]["openid"], OPENID);
}

#[tokio::test]
async fn jsapi_without_an_openid_is_refused_as_wechat_does() {
    let h = start().await;
    let path = "/v3/pay/transactions/jsapi";
    let mut body = serde_json::to_value(jsapi(&order_no("JSM"), OPENID, NOTIFY)).unwrap();
    body.as_object_mut().unwrap().remove("payer");
    let (status, json) = signed_post(&h, path, &body.to_string()).await;
    assert_eq!((status, json["code"].as_str()), (400, Some("PARAM_ERROR")));
    assert_eq!(json["message"], "JSAPI支付必须传openid");

    body["payer"] = json!({"openid": ""});
    let (status, json) = signed_post(&h, path, &body.to_string()).await;
    assert_eq!(
        (status, json["message"].as_str()),
        (400, Some("JSAPI支付必须传openid"))
    );
    assert_eq!(
        h.sandbox
            .wechat_trade_type(body["out_trade_no"].as_str().unwrap()),
        None
    );
}

#[tokio::test]
async fn jsapi_refuses_anything_beyond_payer_openid() {
    let h = start().await;
    let path = "/v3/pay/transactions/jsapi";
    let base = serde_json::to_value(jsapi(&order_no("JSX"), OPENID, NOTIFY)).unwrap();
    for (field, value) in [
        ("payer", json!({"openid": OPENID, "sub_openid": "oOther"})),
        ("scene_info", json!({"payer_client_ip": "1.2.3.4"})),
        ("attach", json!("employer 42")),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let (status, json) = signed_post(&h, path, &body.to_string()).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (400, Some("INVALID_REQUEST")),
            "{field}: {json}"
        );
    }
}

#[tokio::test]
async fn jsapi_reorder_returns_the_same_prepay_id_and_another_payer_is_403() {
    let h = start().await;
    let out_trade_no = order_no("JSR");
    let first = h
        .client
        .jsapi_order(&jsapi(&out_trade_no, OPENID, NOTIFY))
        .await
        .unwrap();
    let again = h
        .client
        .jsapi_order(&jsapi(&out_trade_no, OPENID, NOTIFY))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_api_error(
        h.client
            .jsapi_order(&jsapi(&out_trade_no, "oAnotherBuyer00000000000000", NOTIFY))
            .await,
        403,
        "OUT_TRADE_NO_USED",
    );
    // The same number on another channel is "other parameters" too.
    assert_api_error(
        h.client.app_order(&app(&out_trade_no)).await,
        403,
        "OUT_TRADE_NO_USED",
    );

    h.sandbox.pay(&out_trade_no).unwrap();
    assert_api_error(
        h.client
            .jsapi_order(&jsapi(&out_trade_no, OPENID, NOTIFY))
            .await,
        400,
        "ORDER_PAID",
    );
}

#[tokio::test]
async fn h5_order_answers_a_url_that_opens_the_sandbox_cashier_and_reports_mweb() {
    let h = start().await;
    let out_trade_no = order_no("HF");
    let created = h
        .client
        .h5_order(&h5(&out_trade_no, "203.0.113.7"))
        .await
        .unwrap();
    // The Host the client used: 127.0.0.1:PORT, the sandbox's own address; a query of its
    // own (`prepay_id=…`), as WeChat's, for the merchant's `&redirect_url=` to follow.
    assert!(
        created.h5_url.starts_with(&format!(
            "{}/sandbox/cashier/{out_trade_no}?prepay_id=wx",
            h.base
        )),
        "{}",
        created.h5_url
    );
    let page = h.http.get(&created.h5_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("¥9.90"), "{html}");
    assert!(html.contains(&format!("/sandbox/pay/{out_trade_no}")));

    let again = h
        .client
        .h5_order(&h5(&out_trade_no, "203.0.113.7"))
        .await
        .unwrap();
    assert_eq!(again, created);
    assert_api_error(
        h.client.h5_order(&h5(&out_trade_no, "2001:db8::7")).await,
        403,
        "OUT_TRADE_NO_USED",
    );

    let paid = pay(&h, &out_trade_no).await;
    assert_eq!(paid["trade_type"], "MWEB");
    let openid = paid["payer"]["openid"].as_str().unwrap();
    assert!(
        openid.starts_with('o') && openid.len() == 28,
        "a generated openid"
    );
    let settled = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(settled.trade_type.as_deref(), Some("MWEB"));
}

#[tokio::test]
async fn h5_needs_scene_info_with_a_valid_ip_and_nothing_more() {
    let h = start().await;
    let path = "/v3/pay/transactions/h5";
    let base = serde_json::to_value(h5(&order_no("HFM"), "2001:db8::1")).unwrap();
    assert_eq!(base["scene_info"]["h5_info"]["type"], "iOS");

    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("scene_info");
    let (status, json) = signed_post(&h, path, &missing.to_string()).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("PARAM_ERROR")),
        "{json}"
    );

    for (scene, code) in [
        (
            json!({"payer_client_ip": "999.1.1.1", "h5_info": {"type": "iOS"}}),
            "PARAM_ERROR",
        ),
        (
            json!({"payer_client_ip": "1.2.3.4", "h5_info": {"type": "ios"}}),
            "PARAM_ERROR",
        ),
        (json!({"h5_info": {"type": "Wap"}}), "PARAM_ERROR"),
        (
            json!({"payer_client_ip": "1.2.3.4", "h5_info": {"type": "Wap", "wap_url": "https://x"}}),
            "INVALID_REQUEST",
        ),
        (
            json!({"payer_client_ip": "1.2.3.4", "device_id": "013467007045764", "h5_info": {"type": "Wap"}}),
            "INVALID_REQUEST",
        ),
    ] {
        let mut body = base.clone();
        body["scene_info"] = scene.clone();
        let (status, json) = signed_post(&h, path, &body.to_string()).await;
        assert_eq!(
            (status, json["code"].as_str()),
            (400, Some(code)),
            "{scene}: {json}"
        );
    }
    let mut with_payer = base.clone();
    with_payer["payer"] = json!({"openid": OPENID});
    let (status, json) = signed_post(&h, path, &with_payer.to_string()).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
}

#[tokio::test]
async fn app_order_keeps_the_native_allowlist_and_reports_app() {
    let h = start().await;
    let out_trade_no = order_no("AP");
    let created = h.client.app_order(&app(&out_trade_no)).await.unwrap();
    assert_prepay_id(&created.prepay_id);
    assert_eq!(
        h.client.app_order(&app(&out_trade_no)).await.unwrap(),
        created
    );
    let mut other = app(&out_trade_no);
    other.amount.total = 101;
    assert_api_error(h.client.app_order(&other).await, 403, "OUT_TRADE_NO_USED");

    let path = "/v3/pay/transactions/app";
    let mut with_payer = serde_json::to_value(app(&order_no("APX"))).unwrap();
    with_payer["payer"] = json!({"openid": OPENID});
    let (status, json) = signed_post(&h, path, &with_payer.to_string()).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );

    // The cashier pays App and JSAPI orders as well.
    let page = h
        .http
        .get(format!("{}/sandbox/cashier/{out_trade_no}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(&created.prepay_id));
    let paid = pay(&h, &out_trade_no).await;
    assert_eq!(paid["trade_type"], "APP");
    let settled = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(settled.trade_type.as_deref(), Some("APP"));
    assert_eq!(settled.trade_state, TradeState::Success);
}

#[tokio::test]
async fn native_orders_still_report_native() {
    let h = start().await;
    let out_trade_no = order_no("NA");
    h.client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap();
    assert_eq!(pay(&h, &out_trade_no).await["trade_type"], "NATIVE");
}

#[tokio::test]
async fn the_h5_cashier_sends_the_browser_to_the_appended_redirect_url_after_paying() {
    let h = start().await;
    let out_trade_no = order_no("HR");
    let created = h
        .client
        .h5_order(&h5(&out_trade_no, "203.0.113.7"))
        .await
        .unwrap();
    let back = "https://www.example.cn/orders/paid?o=1";
    let url = created.url_with_redirect(back);
    let html = h.http.get(&url).send().await.unwrap().text().await.unwrap();
    let action = format!(
        "/sandbox/pay/{out_trade_no}?redirect_url={}",
        paygate_wechatpay::url_encode_component(back)
    );
    assert!(html.contains(&action), "{html}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paid = no_redirects
        .post(format!("{}{action}", h.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(paid.headers()["location"], back);
}
