//! Callbacks that must not change anything (DESIGN.md §1.5, §4 "Webhook answers"): each gets a
//! non-2xx answer with `{"code":"FAIL"}` and leaves the order `pending` with no payment,
//! entitlement or event. And the one callback that must be honoured although the order is
//! closed: the buyer paid just before the close.

mod common;

use common::{TestApp, transaction_json};
use paygate::clock::Clock;
use paygate_wechatpay::Signer;
use serde_json::{Value, json};

const PLATFORM_KEY: &str = include_str!("fixtures/platform_key.pem");
const TXN_ID: &str = "4200000000202611290000000042";

fn now(app: &TestApp) -> i64 {
    app.clock.now().timestamp()
}

/// Headers as WeChat signs them, over any body, with the fixture platform key (the one the
/// embedded sandbox signs with) named as `serial`.
fn sign(serial: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
    let signer = Signer::from_pem(PLATFORM_KEY).expect("fixture platform key");
    let nonce = paygate_wechatpay::new_nonce();
    let mut headers: Vec<(String, String)> =
        paygate_wechatpay::signed_headers(&signer, serial, timestamp, &nonce, body.as_bytes())
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    headers.push(("Content-Type".into(), "application/json".into()));
    headers
}

fn set_header(headers: &mut [(String, String)], name: &str, value: String) {
    let slot = headers
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no {name} header"));
    slot.1 = value;
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Another Base64 character in place of the one at `index`: changes the decoded bytes.
fn flip_base64_char(text: &str, index: usize) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

async fn pending_order(app: &TestApp) -> (Value, String) {
    let order = app.create_order("emp_webhook", "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap().to_owned();
    (order, order_no)
}

/// The callback was refused as WeChat expects, and nothing about the order changed.
async fn assert_refused(app: &TestApp, order_no: &str, res: reqwest::Response) {
    let status = res.status();
    let text = res.text().await.expect("body");
    assert!(
        status.is_client_error() || status.is_server_error(),
        "callback must be refused, got {status}: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("a JSON answer");
    assert_eq!(body["code"], "FAIL", "{text}");
    assert!(body["message"].is_string(), "{text}");
    app.assert_unsettled(order_no).await;
}

#[tokio::test]
async fn a_callback_with_a_tampered_signature_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let mut signed = app.sandbox.wechat_notification(&tx, now(&app));
    let flipped = flip_base64_char(header(&signed.headers, "Wechatpay-Signature"), 0);
    set_header(&mut signed.headers, "Wechatpay-Signature", flipped);
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 401);
    assert_refused(&app, &order_no, res).await;
}

#[tokio::test]
async fn a_callback_whose_body_changed_after_signing_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    // One byte of the envelope id: still a well-formed envelope, no longer the signed bytes.
    let at = signed.body.find("\"id\":\"").expect("envelope id") + 6;
    let mut bytes = signed.body.clone().into_bytes();
    bytes[at] = if bytes[at] == b'X' { b'Y' } else { b'X' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_ne!(tampered, signed.body);
    let res = app.post_wechat_callback(&signed.headers, &tampered).await;
    assert_eq!(res.status(), 401);
    assert_refused(&app, &order_no, res).await;
}

#[tokio::test]
async fn a_callback_signed_more_than_five_minutes_ago_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app) - 301);
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 401);
    assert_refused(&app, &order_no, res).await;
}

#[tokio::test]
async fn a_callback_signed_more_than_five_minutes_ahead_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app) + 301);
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 401);
    assert_refused(&app, &order_no, res).await;
}

async fn a_callback_for_one_fen_more_than_the_order_is_refused(app: TestApp) {
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19901);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 400);
    assert_refused(&app, &order_no, res).await;
    // The transaction id was not burnt: the genuine report still settles the order.
    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.order(&order_no).await["status"], "paid");
}
on_both_backends!(
    a_callback_for_one_fen_more_than_the_order_is_refused_on_sqlite,
    a_callback_for_one_fen_more_than_the_order_is_refused_on_postgres,
    a_callback_for_one_fen_more_than_the_order_is_refused
);

/// A correctly signed callback whose transaction has `field` set to `value` gets 400 and
/// changes nothing.
async fn assert_forged_field_refused(field: &str, value: &str) {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let mut tx = transaction_json(&order, TXN_ID, 19900);
    tx[field] = json!(value);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 400);
    assert_refused(&app, &order_no, res).await;
}

#[tokio::test]
async fn a_callback_for_another_merchant_is_refused() {
    assert_forged_field_refused("mchid", "1900000002").await;
}

#[tokio::test]
async fn a_callback_for_another_appid_is_refused() {
    assert_forged_field_refused("appid", "wx0000000000000000").await;
}

fn with_altered_ciphertext(body: &str) -> String {
    let mut envelope: Value = serde_json::from_str(body).expect("envelope");
    let ciphertext = envelope["resource"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    envelope["resource"]["ciphertext"] = json!(flip_base64_char(&ciphertext, 0));
    envelope.to_string()
}

#[tokio::test]
async fn a_callback_with_an_altered_ciphertext_under_the_original_signature_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let altered = with_altered_ciphertext(&signed.body);
    let res = app.post_wechat_callback(&signed.headers, &altered).await;
    assert_eq!(res.status(), 401);
    assert_refused(&app, &order_no, res).await;
}

#[tokio::test]
async fn a_validly_signed_callback_whose_resource_does_not_decrypt_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let altered = with_altered_ciphertext(&signed.body);
    let headers = sign(app.sandbox.wechat_platform_key_id(), now(&app), &altered);
    let res = app.post_wechat_callback(&headers, &altered).await;
    assert!(!res.status().is_success());
    assert_refused(&app, &order_no, res).await;
    // Control: the same signing path over the untouched body is accepted.
    let headers = sign(
        app.sandbox.wechat_platform_key_id(),
        now(&app),
        &signed.body,
    );
    let res = app.post_wechat_callback(&headers, &signed.body).await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn a_callback_signed_under_an_unknown_platform_key_id_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let headers = sign(
        "PUB_KEY_ID_0000000000000000000000000000",
        now(&app),
        &signed.body,
    );
    let res = app.post_wechat_callback(&headers, &signed.body).await;
    assert_eq!(res.status(), 401);
    assert_refused(&app, &order_no, res).await;
}

#[tokio::test]
async fn a_signature_probe_is_refused() {
    let app = TestApp::spawn().await;
    let (order, order_no) = pending_order(&app).await;
    let tx = transaction_json(&order, TXN_ID, 19900);
    let mut signed = app.sandbox.wechat_notification(&tx, now(&app));
    set_header(
        &mut signed.headers,
        "Wechatpay-Signature",
        "WECHATPAY/SIGNTEST/dGhpcyBpcyBub3QgYSBzaWduYXR1cmUgYXQgYWxs".into(),
    );
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert!(res.status().is_client_error(), "a probe gets a 4xx");
    assert_refused(&app, &order_no, res).await;
}

#[tokio::test]
async fn a_callback_for_an_order_number_never_issued_is_refused() {
    let app = TestApp::spawn().await;
    let (_, order_no) = pending_order(&app).await;
    let unknown = "0123456789ABCDEFGHIJKLMNOP";
    assert_eq!(unknown.len(), 26);
    let tx = transaction_json(&json!({"order_no": unknown}), TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 400);
    assert_refused(&app, &order_no, res).await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment_order WHERE order_no = $1",
            unknown
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment WHERE provider_txn_id = $1",
            TXN_ID
        )
        .await,
        0
    );
}

async fn a_payment_for_a_closed_order_is_honoured_once_and_flagged_late(app: TestApp) {
    let (order, order_no) = pending_order(&app).await;
    let res = app.cancel(&order_no).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.order(&order_no).await["status"], "closed");

    let tx = transaction_json(&order, TXN_ID, 19900);
    let signed = app.sandbox.wechat_notification(&tx, now(&app));
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 204);
    // WeChat sends it again: acknowledged, nothing more granted.
    let again = app.sandbox.wechat_notification(&tx, now(&app));
    let res = app.post_wechat_callback(&again.headers, &again.body).await;
    assert_eq!(res.status(), 204);

    let paid = app.order(&order_no).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["late_payment"], true);
    assert_eq!(paid["payment_record"]["provider_transaction_id"], TXN_ID);
    for sql in [
        "SELECT COUNT(*) FROM payment WHERE order_no = $1",
        "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
    ] {
        assert_eq!(app.count(sql, &order_no).await, 1, "{sql}");
    }
    // A fresh database per test: every event is about this order.
    let events = app.events().await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "order.closed",
            "order.paid",
            "entitlement.granted",
            "payment.late"
        ],
        "{events}"
    );
    // Gap-free ids: the settlement's three events are appended together, one id each.
    let ids: Vec<i64> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let ents = app.entitlements("emp_webhook").await;
    assert_eq!(ents["entitlements"].as_array().unwrap().len(), 1);
    assert_eq!(ents["entitlements"][0]["remaining"], 50);
}
on_both_backends!(
    a_payment_for_a_closed_order_is_honoured_once_and_flagged_late_on_sqlite,
    a_payment_for_a_closed_order_is_honoured_once_and_flagged_late_on_postgres,
    a_payment_for_a_closed_order_is_honoured_once_and_flagged_late
);
