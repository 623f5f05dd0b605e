//! Every way an employer can pay (DESIGN.md §4): for each provider × channel, create → the
//! buyer pays in the sandbox → the provider's notification → `paid` → one entitlement. Plus
//! what each channel hands the buyer's client, and cancel for Alipay orders.

mod common;

use common::TestApp;
use serde_json::{Value, json};

const MERCHANT_KEY: &str = include_str!("fixtures/merchant_key.pem");
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

/// The whole flow for one channel; answers the created order.
/// The gateway has `[checkout] return_url` set ([`common::RETURN_URL`]), so the browser
/// channels carry it.
async fn pays_through(provider: &str, channel: &str, extra: Value, payment_keys: &[&str]) -> Value {
    let app = TestApp::spawn_with_checkout(common::Backend::Sqlite)
        .await
        .expect("sqlite always runs");
    let employer = format!("emp_{provider}_{channel}");
    let order = app
        .create_order_on(&employer, provider, channel, extra)
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["channel"], channel);
    let mut keys: Vec<&str> = order["payment"]
        .as_object()
        .expect("payment object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, payment_keys, "payment instructions for {channel}");

    app.open_alipay_payment(&order).await;
    app.pay(order_no).await;
    let paid = app.wait_for_status(order_no, "paid").await;
    app.assert_settled_once(order_no).await;
    assert_eq!(paid["payment_record"]["source"], "notification");
    assert_eq!(paid["payment_record"]["amount"], "199.00");
    let entitlements = app.entitlements(&employer).await;
    let list = entitlements["entitlements"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{entitlements}");
    assert_eq!(list[0]["order_no"], order_no);
    assert_eq!(list[0]["remaining"], 50);
    order
}

/// `params[sign]` is the merchant key's signature over the `fields`, one line each, as the
/// WeChat client checks it (JSAPI `paySign`, App `sign`).
fn assert_merchant_signed(params: &Value, fields: &[&str], sign: &str) {
    let message: String = fields
        .iter()
        .map(|f| {
            format!(
                "{}\n",
                params[*f].as_str().unwrap_or_else(|| panic!("no {f}"))
            )
        })
        .collect();
    let verifier = paygate_wechatpay::Signer::from_pem(MERCHANT_KEY)
        .unwrap()
        .verifier()
        .unwrap();
    assert!(
        verifier.verify_base64(message.as_bytes(), params[sign].as_str().unwrap()),
        "{sign} verifies with the merchant public key"
    );
}

#[tokio::test]
async fn wechat_native() {
    let order = pays_through("wechatpay", "native", json!({}), &["code_url"]).await;
    assert!(
        order["payment"]["code_url"]
            .as_str()
            .unwrap()
            .starts_with("weixin://wxpay/bizpayurl?pr=")
    );
}

#[tokio::test]
async fn wechat_jsapi_with_signed_js_params() {
    let order = pays_through(
        "wechatpay",
        "jsapi",
        json!({"payer_openid": OPENID}),
        &["js_params", "prepay_id"],
    )
    .await;
    let p = &order["payment"];
    let js = &p["js_params"];
    assert_eq!(js["appId"], paygate::app::SANDBOX_APPID);
    assert_eq!(js["signType"], "RSA");
    assert_eq!(
        js["package"],
        format!("prepay_id={}", p["prepay_id"].as_str().unwrap())
    );
    assert_merchant_signed(
        js,
        &["appId", "timeStamp", "nonceStr", "package"],
        "paySign",
    );
}

#[tokio::test]
async fn wechat_h5() {
    let order = pays_through(
        "wechatpay",
        "h5",
        json!({"client_ip": "203.0.113.7"}),
        &["h5_url"],
    )
    .await;
    let h5_url = order["payment"]["h5_url"].as_str().unwrap();
    assert!(h5_url.starts_with("http"));
    // What WeChat's h5_url gains (DESIGN.md §1's allowlist grows by exactly this, issue 13):
    // `&redirect_url=` and the URL-encoded return URL, whose only variable is the order number.
    let back = common::RETURN_URL.replace("{order_no}", order["order_no"].as_str().unwrap());
    let (_, appended) = h5_url.split_once("&redirect_url=").expect("a redirect_url");
    assert_eq!(appended, paygate_wechatpay::url_encode_component(&back));
}

#[tokio::test]
async fn wechat_app_with_signed_app_params() {
    let order = pays_through("wechatpay", "app", json!({}), &["app_params", "prepay_id"]).await;
    let p = &order["payment"];
    let a = &p["app_params"];
    assert_eq!(a["appid"], paygate::app::SANDBOX_APPID);
    assert_eq!(a["partnerid"], paygate::app::SANDBOX_MCHID);
    assert_eq!(a["prepayid"], p["prepay_id"]);
    assert_eq!(a["package"], "Sign=WXPay");
    assert_merchant_signed(a, &["appid", "timestamp", "noncestr", "prepayid"], "sign");
}

#[tokio::test]
async fn alipay_qr() {
    let order = pays_through("alipay", "qr", json!({}), &["qr_code"]).await;
    assert!(
        order["payment"]["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
}

/// Alipay's page, wap and app channels: a signed request for the buyer's device to open, with
/// the method in it.
async fn alipay_signed_for_the_device(channel: &str, key: &str, method: &str) {
    let order = pays_through("alipay", channel, json!({}), &[key]).await;
    let signed = order["payment"][key].as_str().unwrap();
    assert!(signed.contains(&format!("method={method}")), "{signed}");
    assert!(signed.contains("sign="), "{signed}");
    // Browser orders (page, wap) carry the configured return URL as the signed `return_url`
    // common parameter — the one parameter issue 13 adds to DESIGN.md §1's allowlist; the
    // app order string has no browser to send back.
    let query = signed.split_once('?').map_or(signed, |(_, q)| q);
    let params = paygate_alipay::Params::from_form(query.as_bytes()).unwrap();
    let back = common::RETURN_URL.replace("{order_no}", order["order_no"].as_str().unwrap());
    let expected = (channel != "app").then_some(back.as_str());
    assert_eq!(params.get("return_url"), expected);
}

#[tokio::test]
async fn alipay_page() {
    alipay_signed_for_the_device("page", "pay_url", "alipay.trade.page.pay").await;
}

#[tokio::test]
async fn alipay_wap() {
    alipay_signed_for_the_device("wap", "pay_url", "alipay.trade.wap.pay").await;
}

#[tokio::test]
async fn alipay_app() {
    alipay_signed_for_the_device("app", "order_string", "alipay.trade.app.pay").await;
}

#[tokio::test]
async fn a_channel_the_provider_does_not_offer_is_refused() {
    let app = TestApp::spawn().await;
    for (provider, channel) in [
        ("alipay", "native"),
        ("wechatpay", "qr"),
        ("alipay", "jsapi"),
    ] {
        let body = json!({"employer_id": "emp_1", "plan": "resume-download-50",
            "provider": provider, "channel": channel});
        let res = app
            .post_order(
                common::CHECKOUT_KEY,
                &format!("k-{provider}-{channel}"),
                &body.to_string(),
            )
            .await;
        assert_eq!(res.status(), 422, "{provider}/{channel}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_channel");
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment_order WHERE order_no <> $1",
            ""
        )
        .await,
        0
    );
}

#[tokio::test]
async fn payer_fields_are_required_by_their_channel_and_refused_elsewhere() {
    let app = TestApp::spawn().await;
    let cases = [
        ("jsapi", json!({}), "missing_payer_openid"),
        (
            "jsapi",
            json!({"payer_openid": "o bad openid"}),
            "invalid_payer_openid",
        ),
        ("h5", json!({}), "missing_client_ip"),
        ("h5", json!({"client_ip": "999.1.1.1"}), "invalid_client_ip"),
        (
            "native",
            json!({"payer_openid": OPENID}),
            "unexpected_payer_openid",
        ),
        (
            "app",
            json!({"client_ip": "203.0.113.7"}),
            "unexpected_client_ip",
        ),
    ];
    for (i, (channel, extra, code)) in cases.into_iter().enumerate() {
        let mut body = json!({"employer_id": "emp_1", "plan": "resume-download-50",
            "provider": "wechatpay", "channel": channel});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let res = app
            .post_order(
                common::CHECKOUT_KEY,
                &format!("payer-{i}"),
                &body.to_string(),
            )
            .await;
        assert_eq!(res.status(), 400, "{channel} {code}");
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["error"]["code"], code);
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment_order WHERE order_no <> $1",
            ""
        )
        .await,
        0
    );
    assert!(
        app.sandbox.wechat_requests().is_empty(),
        "nothing reached WeChat"
    );
}

#[tokio::test]
async fn cancelling_an_alipay_qr_order_closes_it_at_alipay_and_here() {
    let app = TestApp::spawn().await;
    let order = app
        .create_order_on("emp_cancel", "alipay", "qr", json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    let res = app.cancel(order_no).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "closed");
    let closes: Vec<_> = app
        .sandbox
        .alipay_requests()
        .into_iter()
        .filter(|params| {
            params
                .iter()
                .any(|(k, v)| k == "method" && v == "alipay.trade.close")
        })
        .collect();
    assert_eq!(closes.len(), 1, "closed at Alipay");
    // The buyer can no longer pay it there.
    let res = app
        .http
        .post(format!("{}/sandbox/pay/{order_no}", app.url))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'order.closed'",
            order_no
        )
        .await,
        1
    );
}

#[tokio::test]
async fn cancelling_an_alipay_page_order_nobody_opened_closes_it_here() {
    let app = TestApp::spawn().await;
    let order = app
        .create_order_on("emp_cancel", "alipay", "page", json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    // Alipay has no trade yet: the query and the close both answer ACQ.TRADE_NOT_EXIST.
    let res = app.cancel(order_no).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "closed");
}

#[tokio::test]
async fn cancelling_a_paid_alipay_order_answers_409_and_settles_it() {
    let app = TestApp::spawn().await;
    let order = app
        .create_order_on("emp_cancel", "alipay", "qr", json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    // Whether the notification or the cancel's query reports the payment first, it is
    // honoured once and the cancel is refused.
    app.pay(order_no).await;
    let res = app.cancel(order_no).await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "order_paid");
    assert_eq!(body["order"]["status"], "paid");
    app.wait_for_status(order_no, "paid").await;
    app.assert_settled_once(order_no).await;
}

#[tokio::test]
async fn an_alipay_answer_whose_signature_fails_leaves_no_order() {
    let app = TestApp::spawn().await;
    app.sandbox.set_faults(paygate_sandbox::Faults {
        corrupt_response_signature: true,
        ..Default::default()
    });
    let body = json!({"employer_id": "emp_1", "plan": "resume-download-50",
        "provider": "alipay", "channel": "qr"});
    let res = app
        .post_order(common::CHECKOUT_KEY, "corrupt-1", &body.to_string())
        .await;
    assert_eq!(res.status(), 502);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "provider_rejected");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment_order WHERE order_no <> $1",
            ""
        )
        .await,
        0
    );
    // Once answers verify again, the same key creates the order.
    app.sandbox.set_faults(paygate_sandbox::Faults::default());
    let res = app
        .post_order(common::CHECKOUT_KEY, "corrupt-1", &body.to_string())
        .await;
    assert_eq!(res.status(), 201);
}
