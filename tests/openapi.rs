//! `GET /openapi.json`: every route is documented, and real answers fit the documented schemas
//! (no undocumented field, every required one present), so the document cannot drift from the
//! handlers unnoticed.

mod common;

use std::collections::BTreeSet;

use common::{CHECKOUT_KEY, TestApp};
use serde_json::{Value, json};

fn fits(doc: &Value, schema: &str, value: &Value) {
    let s = &doc["components"]["schemas"][schema];
    let properties: BTreeSet<&str> = s["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {schema}"))
        .keys()
        .map(String::as_str)
        .collect();
    let present: BTreeSet<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("{schema}: not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    let undocumented: Vec<_> = present.difference(&properties).collect();
    assert!(
        undocumented.is_empty(),
        "{schema}: undocumented {undocumented:?} in {value}"
    );
    for required in s["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap();
        assert!(
            present.contains(name),
            "{schema}: {name} missing from {value}"
        );
    }
}

#[tokio::test]
async fn the_document_lists_every_route_and_real_answers_fit_it() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let routes = BTreeSet::from([
        "/v1/plans",
        "/v1/orders",
        "/v1/orders/{order_no}",
        "/v1/orders/{order_no}/cancel",
        "/v1/orders/{order_no}/return-check",
        "/v1/orders/{order_no}/refunds",
        "/v1/orders/{order_no}/refunds/{refund_id}",
        "/v1/reconciliations",
        "/v1/reconciliations/{id}",
        "/v1/reconciliations/{id}/discrepancies.csv",
        "/v1/employers/{employer_id}/entitlements",
        "/v1/employers/{employer_id}/resume-access",
        "/v1/events",
        "/v1/privacy/erasures",
        "/v1/privacy/erasures/{erasure_id}",
        "/webhooks/wechatpay",
        "/webhooks/alipay",
        "/healthz",
        "/readyz",
        "/metrics",
    ]);
    assert_eq!(paths, routes);
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );

    // Real answers against their schemas.
    let order = app
        .create_order_on("emp_doc", "wechatpay", "native", json!({}))
        .await;
    fits(&doc, "Order", &order);
    let order_no = order["order_no"].as_str().unwrap();
    app.pay(order_no).await;
    let paid = app.wait_for_status(order_no, "paid").await;
    fits(&doc, "Order", &paid);
    // The wait answer and the WeChat return-check answer are orders too.
    for answer in [
        app.http
            .get(format!("{}/v1/orders/{order_no}?wait=1", app.url))
            .bearer_auth(common::CHECKOUT_KEY)
            .send()
            .await
            .unwrap(),
        app.http
            .post(format!("{}/v1/orders/{order_no}/return-check", app.url))
            .bearer_auth(common::CHECKOUT_KEY)
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(answer.status(), 200);
        fits(&doc, "Order", &answer.json().await.unwrap());
    }
    fits(&doc, "PaymentRecord", &paid["payment_record"]);
    let cancel: Value = app.cancel(order_no).await.json().await.unwrap();
    fits(&doc, "OrderPaid", &cancel);
    let refund = app.refund(order_no, "10.00").await;
    fits(&doc, "Refund", &refund);
    fits(
        &doc,
        "Refund",
        &app.refund_of(order_no, refund["refund_id"].as_str().unwrap())
            .await,
    );
    let refunded = app.wait_for_status(order_no, "partially_refunded").await;
    fits(&doc, "Order", &refunded);
    for refund in refunded["refunds"].as_array().unwrap() {
        fits(&doc, "Refund", refund);
    }

    let date = paygate::clock::Clock::now(app.clock.as_ref())
        .with_timezone(&paygate::clock::beijing())
        .date_naive()
        .to_string();
    let run: Value = app
        .http
        .post(format!("{}/v1/reconciliations", app.url))
        .bearer_auth(common::FINANCE_KEY)
        .json(&json!({"provider": "wechatpay", "date": date}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fits(&doc, "Reconciliation", &run);
    let list: Value = app
        .http
        .get(format!("{}/v1/reconciliations", app.url))
        .bearer_auth(common::FINANCE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fits(&doc, "Reconciliations", &list);
    fits(&doc, "Reconciliation", &list["reconciliations"][0]);

    let entitlements = app.entitlements("emp_doc").await;
    fits(&doc, "Entitlements", &entitlements);
    fits(&doc, "EntitlementEntry", &entitlements["entitlements"][0]);
    let (status, granted) = app.access("emp_doc", "r1", "download").await;
    assert_eq!(status, 200);
    fits(&doc, "AccessGranted", &granted);
    let (status, refused) = app.access("emp_nobody", "r1", "download").await;
    assert_eq!(status, 403);
    fits(&doc, "ErrorEnvelope", &refused);
    fits(&doc, "ErrorBody", &refused["error"]);

    let events = app.events().await;
    fits(&doc, "Events", &events);
    for event in events["events"].as_array().unwrap() {
        fits(&doc, "EventEntry", event);
    }
    let (status, erasure) = app.request_erasure("emp_doc", "erase-doc").await;
    assert_eq!(status, 202);
    fits(&doc, "Erasure", &erasure);
    app.jobs
        .run_once(paygate::jobs::Job::Erasure)
        .await
        .unwrap();
    let done = app.erasure(erasure["erasure_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    fits(&doc, "Erasure", &done);

    let plans: Value = app
        .http
        .get(format!("{}/v1/plans", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fits(&doc, "Plans", &plans);
    for plan in plans["plans"].as_array().unwrap() {
        fits(&doc, "PlanEntry", plan);
        for grant in plan["grants"].as_array().unwrap() {
            fits(&doc, "GrantEntry", grant);
        }
    }
    let health: Value = app
        .http
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    fits(&doc, "Status", &health);
}
