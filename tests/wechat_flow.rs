//! The WeChat Pay Native flow end to end: real gateway, real sandbox, real crypto, over HTTP.

mod common;

use common::{CHECKOUT_KEY, ENTITLEMENTS_KEY, TestApp};
use serde_json::json;

async fn paid_order_grants_quota_and_same_resume_is_free(app: TestApp) {
    let order = app.create_order("emp_42", "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["amount"], "199.00");
    assert!(
        order["payment"]["code_url"]
            .as_str()
            .unwrap()
            .starts_with("weixin://wxpay/bizpayurl?pr=")
    );

    let tx = app.pay(order_no).await;
    let paid = app.wait_for_status(order_no, "paid").await;
    assert_eq!(
        paid["payment_record"]["provider_transaction_id"],
        tx["transaction_id"]
    );
    assert_eq!(paid["payment_record"]["amount"], "199.00");

    let ents = app.entitlements("emp_42").await;
    let list = ents["entitlements"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["quota"], 50);
    assert_eq!(list[0]["remaining"], 50);
    assert_eq!(list[0]["order_no"], order_no);

    let (status, first) = app.access("emp_42", "resume_1", "download").await;
    assert_eq!(status, 200);
    assert_eq!(first["granted"], true);
    assert_eq!(first["remaining"], 49);
    let (status, again) = app.access("emp_42", "resume_1", "download").await;
    assert_eq!(status, 200);
    assert_eq!(
        again["remaining"], 49,
        "the same résumé again consumes nothing"
    );
    assert_eq!(again["entitlement_id"], first["entitlement_id"]);
    let (_, other) = app.access("emp_42", "resume_2", "download").await;
    assert_eq!(other["remaining"], 48);

    // A download plan grants no viewing, and another employer holds nothing.
    let (status, body) = app.access("emp_42", "resume_1", "view").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "no_entitlement");
    let (status, _) = app.access("emp_7", "resume_1", "download").await;
    assert_eq!(status, 403);

    let events = app.events().await;
    let types: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(
        types,
        vec![json!("order.paid"), json!("entitlement.granted")]
    );
}
on_both_backends!(
    paid_order_grants_quota_and_same_resume_is_free_on_sqlite,
    paid_order_grants_quota_and_same_resume_is_free_on_postgres,
    paid_order_grants_quota_and_same_resume_is_free
);

async fn the_same_notification_twenty_times_at_once_settles_once(app: TestApp) {
    let order = app.create_order("emp_9", "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap();
    let tx = common::transaction_json(&order, "4200000000202611290000000001", 19900);
    let signed = app.sandbox.wechat_notification(&tx, app.clock_now());
    let sends = (0..20).map(|_| {
        let req = app.wechat_callback_request(&signed.headers, &signed.body);
        async move { req.send().await.expect("request") }
    });
    let answers = common::race_all(sends).await;
    for a in &answers {
        assert_eq!(a.status(), 204, "every copy is acknowledged");
    }
    app.assert_settled_once(order_no).await;
}
on_both_backends!(
    the_same_notification_twenty_times_at_once_settles_once_on_sqlite,
    the_same_notification_twenty_times_at_once_settles_once_on_postgres,
    the_same_notification_twenty_times_at_once_settles_once
);

trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for TestApp {
    fn clock_now(&self) -> i64 {
        use paygate::clock::Clock;
        self.clock.now().timestamp()
    }
}

#[tokio::test]
async fn sandbox_duplicates_and_signature_probes_settle_once() {
    let app = TestApp::spawn().await;
    app.sandbox.set_faults(paygate_sandbox::Faults {
        duplicate_notifications: 5,
        signature_probe: true,
        ..Default::default()
    });
    let order = app.create_order("emp_1", "resume-view-30d").await;
    let order_no = order["order_no"].as_str().unwrap();
    app.pay(order_no).await;
    app.wait_for_status(order_no, "paid").await;
    // Wait until all five copies and the probe were answered.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let records = app.sandbox.notifications();
        if records.len() >= 6 {
            let probes: Vec<_> = records.iter().filter(|r| r.probe).collect();
            assert_eq!(probes.len(), 1);
            assert!(
                probes
                    .iter()
                    .all(|r| r.status.is_some_and(|s| !(200..300).contains(&s))),
                "probe refused"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries: {records:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
            order_no
        )
        .await,
        1
    );
    let ents = app.entitlements("emp_1").await;
    assert_eq!(
        ents["entitlements"][0]["quota"],
        serde_json::Value::Null,
        "view plan is unlimited"
    );
    let (status, body) = app.access("emp_1", "r9", "view").await;
    assert_eq!(status, 200);
    assert_eq!(body["remaining"], serde_json::Value::Null);
}

#[tokio::test]
async fn cancel_closes_an_unpaid_order_at_the_provider_and_here() {
    let app = TestApp::spawn().await;
    let order = app.create_order("emp_3", "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap();
    let res = app.cancel(order_no).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "closed");
    // The sandbox closed it too: the buyer can no longer pay.
    let pay = app
        .http
        .post(format!("{}/sandbox/pay/{order_no}", app.url))
        .send()
        .await
        .unwrap();
    assert!(pay.status().is_client_error());
    let events = app.events().await;
    assert_eq!(events["events"][0]["type"], "order.closed");
}

#[tokio::test]
async fn cancel_of_an_order_the_buyer_already_paid_answers_409_and_settles() {
    let app = TestApp::spawn().await;
    app.sandbox.set_faults(paygate_sandbox::Faults {
        duplicate_notifications: 0,
        ..Default::default()
    });
    let order = app.create_order("emp_4", "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap();
    app.pay(order_no).await;
    let res = app.cancel(order_no).await;
    assert_eq!(res.status(), 409);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "order_paid");
    assert_eq!(body["order"]["status"], "paid");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
            order_no
        )
        .await,
        1
    );
}

#[tokio::test]
async fn entitlements_need_the_entitlements_scope() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(format!("{}/v1/employers/emp_1/entitlements", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .post(format!("{}/v1/employers/emp_1/resume-access", app.url))
        .bearer_auth(ENTITLEMENTS_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
}
