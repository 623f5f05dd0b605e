//! The JSAPI, H5 and App order types: their exact JSON, and `Debug` that never shows a payer.

use paygate_wechatpay::{
    AppOrderRequest, H5Info, H5OrderRequest, H5OrderResponse, H5SceneInfo, JsapiOrderRequest,
    OrderAmount, Payer, PrepayResponse,
};
use serde_json::{Value, json};

const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
const IP: &str = "203.0.113.7";

fn amount() -> OrderAmount {
    OrderAmount {
        total: 19900,
        currency: "CNY".to_owned(),
    }
}

fn jsapi() -> JsapiOrderRequest {
    JsapiOrderRequest {
        appid: "wxd678efh567hg6787".to_owned(),
        mchid: "1230000109".to_owned(),
        description: "职前通服务".to_owned(),
        out_trade_no: "PG1217752501201407".to_owned(),
        time_expire: None,
        notify_url: "https://pay.example.com/webhooks/wechatpay".to_owned(),
        amount: amount(),
        payer: Payer {
            openid: OPENID.to_owned(),
        },
    }
}

fn h5() -> H5OrderRequest {
    H5OrderRequest {
        appid: "wxd678efh567hg6787".to_owned(),
        mchid: "1230000109".to_owned(),
        description: "职前通服务".to_owned(),
        out_trade_no: "PG1217752501201408".to_owned(),
        time_expire: Some("2026-11-29T12:00:00+08:00".to_owned()),
        notify_url: "https://pay.example.com/webhooks/wechatpay".to_owned(),
        amount: amount(),
        scene_info: H5SceneInfo {
            payer_client_ip: IP.to_owned(),
            h5_info: H5Info {
                kind: "Wap".to_owned(),
            },
        },
    }
}

#[test]
fn jsapi_order_serialises_to_the_native_fields_and_payer_openid_only() {
    let value = serde_json::to_value(jsapi()).unwrap();
    assert_eq!(
        value,
        json!({
            "appid": "wxd678efh567hg6787",
            "mchid": "1230000109",
            "description": "职前通服务",
            "out_trade_no": "PG1217752501201407",
            "notify_url": "https://pay.example.com/webhooks/wechatpay",
            "amount": {"total": 19900, "currency": "CNY"},
            "payer": {"openid": OPENID},
        })
    );
}

#[test]
fn h5_order_puts_the_type_under_scene_info_h5_info_type() {
    let value = serde_json::to_value(h5()).unwrap();
    assert_eq!(
        value["scene_info"],
        json!({"payer_client_ip": IP, "h5_info": {"type": "Wap"}})
    );
    assert_eq!(value["time_expire"], "2026-11-29T12:00:00+08:00");
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys.len(),
        8,
        "the native fields, time_expire and scene_info: {keys:?}"
    );
    // And back: `type` on the wire is `kind` in Rust.
    let parsed: H5OrderRequest = serde_json::from_value(value).unwrap();
    assert_eq!(parsed, h5());
}

#[test]
fn app_order_is_exactly_the_native_shape() {
    let app = AppOrderRequest {
        appid: "wxd678efh567hg6787".to_owned(),
        mchid: "1230000109".to_owned(),
        description: "职前通服务".to_owned(),
        out_trade_no: "PG1217752501201409".to_owned(),
        time_expire: None,
        notify_url: "https://pay.example.com/webhooks/wechatpay".to_owned(),
        amount: amount(),
    };
    let native = paygate_wechatpay::NativeOrderRequest {
        appid: app.appid.clone(),
        mchid: app.mchid.clone(),
        description: app.description.clone(),
        out_trade_no: app.out_trade_no.clone(),
        time_expire: None,
        notify_url: app.notify_url.clone(),
        amount: amount(),
    };
    assert_eq!(
        serde_json::to_string(&app).unwrap(),
        serde_json::to_string(&native).unwrap()
    );
}

#[test]
fn prepay_and_h5_answers_parse_and_ignore_unknown_fields() {
    let prepay: PrepayResponse =
        serde_json::from_str(r#"{"prepay_id":"wx201410272009395522657a690389285100","x":1}"#)
            .unwrap();
    assert_eq!(prepay.prepay_id, "wx201410272009395522657a690389285100");
    let h5: H5OrderResponse = serde_json::from_str(
        r#"{"h5_url":"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016121516420242444321ca0631331346&package=1405458241"}"#,
    )
    .unwrap();
    assert!(h5.h5_url.starts_with("https://wx.tenpay.com/"));
    assert!(serde_json::from_str::<PrepayResponse>("{}").is_err());
}

#[test]
fn debug_never_shows_the_openid_or_the_payer_ip() {
    let jsapi = format!("{:?}", jsapi());
    assert!(!jsapi.contains(OPENID), "{jsapi}");
    assert!(jsapi.contains("[redacted]"));
    assert!(
        jsapi.contains("PG1217752501201407"),
        "the rest stays readable"
    );

    let h5 = format!("{:?} {:#?}", h5(), h5());
    assert!(!h5.contains(IP), "{h5}");
    assert!(h5.contains("Wap"), "the type is not personal: {h5}");
}

#[test]
fn a_jsapi_order_without_payer_does_not_parse() {
    let mut value: Value = serde_json::to_value(jsapi()).unwrap();
    value.as_object_mut().unwrap().remove("payer");
    assert!(serde_json::from_value::<JsapiOrderRequest>(value).is_err());
}

#[test]
fn an_h5_url_gets_the_url_encoded_redirect_url_appended_and_nothing_else() {
    let answer = paygate_wechatpay::H5OrderResponse {
        h5_url: "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016121516420242444321ca0631331346&package=1405458241".to_owned(),
    };
    let url = answer.url_with_redirect("https://www.example.cn/orders/P2026ABC/paid?from=wx&x=1");
    // The privacy allowlist of what reaches WeChat grows by exactly this: the return address,
    // whose only variable is the order number (design §1). Encoded whole, so its own `&` and
    // `=` cannot become parameters of WeChat's URL.
    assert_eq!(
        url,
        "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016121516420242444321ca0631331346&package=1405458241\
         &redirect_url=https%3A%2F%2Fwww.example.cn%2Forders%2FP2026ABC%2Fpaid%3Ffrom%3Dwx%26x%3D1"
    );
    assert_eq!(
        paygate_wechatpay::url_encode_component("a-b_c.d~e 中"),
        "a-b_c.d~e%20%E4%B8%AD"
    );
}
