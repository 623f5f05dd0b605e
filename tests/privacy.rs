//! design.md §1.1 and §1.2: only the order number and the amount leave for WeChat (plus merchant
//! ids, the neutral description, expiry and notify URL), and no payer data is ever stored.

mod common;

use std::collections::BTreeSet;

use common::{CHECKOUT_KEY, TestApp};
use serde_json::Value;

const EMPLOYER: &str = "emp_privacy_5309";

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Nothing in any request WeChat received names the employer or the plan.
fn assert_nothing_about_the_employer_left(app: &TestApp) {
    for r in app.sandbox.wechat_requests() {
        for secret in [EMPLOYER, "resume-", "简历"] {
            assert!(
                !r.body.contains(secret) && !r.path.contains(secret),
                "{secret:?} left for WeChat: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_order_sends_wechat_only_the_allowlisted_fields() {
    let app = TestApp::spawn().await;
    let order = app.create_order(EMPLOYER, "resume-download-200").await;
    let order_no = order["order_no"].as_str().unwrap();

    let requests = app.sandbox.wechat_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v3/pay/transactions/native")
    );
    let body: Value = serde_json::from_str(&r.body).expect("JSON body");
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "appid",
            "mchid",
            "description",
            "out_trade_no",
            "time_expire",
            "notify_url",
            "amount"
        ])
    );
    assert_eq!(keys(&body["amount"]), BTreeSet::from(["total", "currency"]));
    assert_eq!(body["description"], "职前通服务");
    assert_eq!(body["out_trade_no"], order_no);
    assert_eq!(body["amount"]["total"], 59900);
    assert_eq!(body["amount"]["currency"], "CNY");
    assert_eq!(body["appid"], paygate::app::SANDBOX_APPID);
    assert_eq!(body["mchid"], paygate::app::SANDBOX_MCHID);
    assert_eq!(
        body["notify_url"],
        format!("{}/webhooks/wechatpay", app.url)
    );
    assert_nothing_about_the_employer_left(&app);
}

#[tokio::test]
async fn a_cancel_sends_wechat_only_the_order_number_and_mchid() {
    let app = TestApp::spawn().await;
    let order = app.create_order(EMPLOYER, "resume-view-30d").await;
    let order_no = order["order_no"].as_str().unwrap();
    let res = app.cancel(&order_no).await;
    assert_eq!(res.status(), 200);

    let requests = app.sandbox.wechat_requests();
    let summary: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let query = format!(
        "/v3/pay/transactions/out-trade-no/{order_no}?mchid={}",
        paygate::app::SANDBOX_MCHID
    );
    let close = format!("/v3/pay/transactions/out-trade-no/{order_no}/close");
    assert_eq!(
        summary,
        vec![
            ("POST", "/v3/pay/transactions/native"),
            ("GET", query.as_str()),
            ("POST", close.as_str()),
        ]
    );
    assert_eq!(requests[1].body, "");
    let close_body: Value = serde_json::from_str(&requests[2].body).unwrap();
    assert_eq!(keys(&close_body), BTreeSet::from(["mchid"]));
    assert_nothing_about_the_employer_left(&app);
}

async fn the_payer_openid_is_never_stored(app: TestApp) {
    let order = app.create_order(EMPLOYER, "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap();
    let tx = app.pay(order_no).await;
    let openid = tx["payer"]["openid"]
        .as_str()
        .expect("payer.openid")
        .to_owned();
    assert!(openid.len() >= 20, "a realistic openid: {openid}");

    // The real, encrypted callback from the sandbox settles the order.
    let paid = app.wait_for_status(order_no, "paid").await;
    assert_eq!(
        paid["payment_record"]["provider_transaction_id"],
        tx["transaction_id"]
    );
    assert!(!paid.to_string().contains(&openid), "order JSON: {paid}");
    assert!(!app.events().await.to_string().contains(&openid));

    let dump = app.dump_database().await;
    assert!(
        dump.contains(order_no),
        "the dump really holds the order rows"
    );
    assert!(
        dump.contains(tx["transaction_id"].as_str().unwrap()),
        "the dump really holds the payment rows"
    );
    assert!(!dump.contains(&openid), "payer openid stored:\n{dump}");

    // Creating, paying, settling and reading the order sent WeChat one request only.
    let requests = app.sandbox.wechat_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_nothing_about_the_employer_left(&app);
}
on_both_backends!(
    the_payer_openid_is_never_stored_on_sqlite,
    the_payer_openid_is_never_stored_on_postgres,
    the_payer_openid_is_never_stored
);
