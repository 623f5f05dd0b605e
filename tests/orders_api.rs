//! `POST /v1/orders` and the rest of the API contract (DESIGN.md §4): idempotency, request
//! validation, authentication, provider outages, quota, catalog, health.

mod common;

use common::{CHECKOUT_KEY, ENTITLEMENTS_KEY, FINANCE_KEY, TestApp};
use serde_json::{Value, json};

const BODY: &str = r#"{"employer_id":"emp_42","plan":"resume-download-50","provider":"wechatpay","channel":"native"}"#;

async fn count_all(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.db.pool())
        .await
        .expect("count query")
}

async fn orders_in_db(app: &TestApp) -> i64 {
    count_all(app, "SELECT COUNT(*) FROM payment_order").await
}

async fn idempotency_rows(app: &TestApp) -> i64 {
    count_all(app, "SELECT COUNT(*) FROM idempotency").await
}

/// No order, no idempotency claim, and WeChat never asked.
async fn assert_nothing_written(app: &TestApp) {
    assert_eq!(orders_in_db(app).await, 0, "payment_order rows");
    assert_eq!(idempotency_rows(app).await, 0, "idempotency rows");
    assert_eq!(app.sandbox.wechat_requests(), vec![], "provider requests");
}

/// The answer has `status` and the error envelope with `code`.
async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.expect("JSON error envelope");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replay_the_first_answer_and_create_one_order() {
    let app = TestApp::spawn().await;
    let first = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first["status"], "pending");
    assert_eq!(orders_in_db(&app).await, 1);
    assert_eq!(
        app.sandbox.wechat_requests().len(),
        1,
        "the replay did not reach WeChat"
    );
    // Same body with the keys in another order: still the same request.
    let reordered = r#"{"channel":"native","provider":"wechatpay","plan":"resume-download-50","employer_id":"emp_42"}"#;
    let third = app.post_order(CHECKOUT_KEY, "key-1", reordered).await;
    assert_eq!(third.status(), 201);
    assert_eq!(third.json::<Value>().await.unwrap(), first);
    assert_eq!(orders_in_db(&app).await, 1);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_refused_as_reused() {
    let app = TestApp::spawn().await;
    let first = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_eq!(first.status(), 201);
    let other = BODY.replace("resume-download-50", "resume-download-200");
    let res = app.post_order(CHECKOUT_KEY, "key-1", &other).await;
    assert_error(res, 422, "idempotency_key_reused").await;
    assert_eq!(orders_in_db(&app).await, 1);
    assert_eq!(idempotency_rows(&app).await, 1);
}

#[tokio::test]
async fn an_order_without_an_idempotency_key_is_refused() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(format!("{}/v1/orders", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .header("Content-Type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "missing_idempotency_key").await;
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_order_without_an_api_key_is_unauthorized() {
    let app = TestApp::spawn().await;
    let res = app
        .http
        .post(format!("{}/v1/orders", app.url))
        .header("Idempotency-Key", "key-1")
        .header("Content-Type", "application/json")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthorized").await;
    let res = app.post_order("pgk_not_a_key", "key-1", BODY).await;
    assert_error(res, 401, "unauthorized").await;
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_order_with_a_key_without_the_checkout_scope_is_forbidden() {
    let app = TestApp::spawn().await;
    for key in [ENTITLEMENTS_KEY, FINANCE_KEY] {
        let res = app.post_order(key, "key-1", BODY).await;
        assert_error(res, 403, "forbidden").await;
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_order_with_malformed_json_is_refused() {
    let app = TestApp::spawn().await;
    let res = app
        .post_order(CHECKOUT_KEY, "key-1", r#"{"employer_id": "emp_42","#)
        .await;
    assert_error(res, 400, "invalid_json").await;
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_order_for_an_unknown_plan_is_unprocessable() {
    let app = TestApp::spawn().await;
    let body = BODY.replace("resume-download-50", "resume-download-9999");
    let res = app.post_order(CHECKOUT_KEY, "key-1", &body).await;
    assert_error(res, 422, "unknown_plan").await;
    assert_nothing_written(&app).await;
}

/// An erased account's pseudonym is never the employer of a new order: its payment would be
/// taken for a late payment of the erased account and refunded.
#[tokio::test]
async fn an_order_for_an_erased_accounts_pseudonym_is_refused() {
    let app = TestApp::spawn().await;
    let body = BODY.replace("emp_42", "erased:0123456789abcdef");
    assert_ne!(body, BODY);
    let res = app.post_order(CHECKOUT_KEY, "key-1", &body).await;
    assert_error(res, 400, "invalid_employer_id").await;
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn an_order_with_an_unknown_field_is_refused() {
    let app = TestApp::spawn().await;
    // A caller trying to set the price, or to pass something on to the provider.
    for extra in [json!({"amount": "0.01"}), json!({"attach": "emp_42"})] {
        let mut body: Value = serde_json::from_str(BODY).unwrap();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let res = app
            .post_order(CHECKOUT_KEY, "key-1", &body.to_string())
            .await;
        assert_error(res, 400, "invalid_request").await;
    }
    assert_nothing_written(&app).await;
}

#[tokio::test]
async fn a_provider_outage_leaves_nothing_behind_and_the_same_key_works_afterwards() {
    let app = TestApp::spawn().await;
    app.sandbox.set_faults(paygate_sandbox::Faults {
        api_errors: 1,
        ..Default::default()
    });
    let res = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_error(res, 502, "provider_unavailable").await;
    assert_eq!(orders_in_db(&app).await, 0);
    assert_eq!(idempotency_rows(&app).await, 0);

    let res = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    assert_eq!(order["status"], "pending");
    assert_eq!(orders_in_db(&app).await, 1);
    assert_eq!(idempotency_rows(&app).await, 1);
    // ...and from now on that key replays this order.
    let res = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_eq!(res.json::<Value>().await.unwrap(), order);
}

#[tokio::test]
async fn a_provider_answer_with_a_bad_signature_is_not_trusted() {
    let app = TestApp::spawn().await;
    app.sandbox.set_faults(paygate_sandbox::Faults {
        corrupt_response_signature: true,
        ..Default::default()
    });
    let res = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_eq!(res.status(), 502);
    let body: Value = res.json().await.unwrap();
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(
        code == "provider_rejected" || code == "provider_unavailable",
        "{body}"
    );
    assert!(
        !body.to_string().contains("weixin://"),
        "no code_url from an unverified answer: {body}"
    );
    assert_eq!(orders_in_db(&app).await, 0, "no pending order left");
    assert_eq!(idempotency_rows(&app).await, 0);

    app.sandbox.set_faults(paygate_sandbox::Faults::default());
    let res = app.post_order(CHECKOUT_KEY, "key-1", BODY).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_download_plan_stops_at_its_quota_but_still_serves_resumes_already_downloaded() {
    let app = TestApp::spawn().await;
    let order = app.create_order("emp_quota", "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap();
    app.pay(order_no).await;
    app.wait_for_status(order_no, "paid").await;

    for i in 1..=50 {
        let (status, body) = app
            .access("emp_quota", &format!("resume_{i}"), "download")
            .await;
        assert_eq!(status, 200, "download {i}: {body}");
        assert_eq!(body["granted"], true);
        assert_eq!(body["remaining"], 50 - i);
    }
    let (status, body) = app.access("emp_quota", "resume_51", "download").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "no_entitlement");
    let (status, body) = app.access("emp_quota", "resume_7", "download").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["remaining"], 0);

    let ents = app.entitlements("emp_quota").await;
    assert_eq!(ents["entitlements"][0]["used"], 50);
    assert_eq!(ents["entitlements"][0]["remaining"], 0);
}

#[tokio::test]
async fn the_catalog_lists_the_three_built_in_plans_with_their_prices() {
    let app = TestApp::spawn().await;
    for key in [CHECKOUT_KEY, ENTITLEMENTS_KEY, FINANCE_KEY] {
        let res = app
            .http
            .get(format!("{}/v1/plans", app.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let prices: Vec<(&str, &str)> = body["plans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["plan"].as_str().unwrap(), p["price"].as_str().unwrap()))
            .collect();
        assert_eq!(
            prices,
            vec![
                ("resume-view-30d", "99.00"),
                ("resume-download-50", "199.00"),
                ("resume-download-200", "599.00"),
            ]
        );
    }
    let res = app
        .http
        .get(format!("{}/v1/plans", app.url))
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn liveness_and_readiness_answer_ok() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let res = app
            .http
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
}

/// Stored JSON that does not parse is a fault that names its column, never a silent `null`:
/// the order's `payment_json` and an event's payload, on both backends.
async fn stored_json_that_does_not_parse_is_an_error_not_null(app: TestApp) {
    let order = app
        .paid_order("emp_corrupt", "wechatpay", "resume-download-50")
        .await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    assert!(order["payment"].is_object(), "{order}");
    assert!(!app.events_of(&no, "order.paid").await.is_empty());

    // Each corruption in turn, and the route that reads it: a 500 without Retry-After.
    for (corrupt, path, key) in [
        (
            "UPDATE payment_order SET payment_json = '{\"code_url\":' WHERE order_no = $1",
            format!("/v1/orders/{no}"),
            CHECKOUT_KEY,
        ),
        (
            "UPDATE outbox_event SET payload_json = 'not json' WHERE order_no = $1",
            "/v1/events?after=0".to_owned(),
            ENTITLEMENTS_KEY,
        ),
    ] {
        sqlx::query(corrupt)
            .bind(&no)
            .execute(app.db.pool())
            .await
            .unwrap();
        let res = app
            .http
            .get(format!("{}{path}", app.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert!(res.headers().get("retry-after").is_none(), "{path}");
        assert_error(res, 500, "internal_error").await;
    }
}

on_both_backends!(
    stored_json_that_does_not_parse_is_an_error_not_null_on_sqlite,
    stored_json_that_does_not_parse_is_an_error_not_null_on_postgres,
    stored_json_that_does_not_parse_is_an_error_not_null
);

/// A stored time no calendar holds is a fault naming its column, never shown as 1970 or as a
/// bare number: an order's `created_at` and its payment's `paid_at`, each on its own order.
async fn a_stored_time_out_of_range_is_an_error(app: TestApp) {
    for (n, corrupt) in [
        "UPDATE payment_order SET created_at = 9223372036854775807 WHERE order_no = $1",
        "UPDATE payment SET paid_at = -9223372036854775807 WHERE order_no = $1",
    ]
    .into_iter()
    .enumerate()
    {
        let order = app
            .paid_order(&format!("emp_time_{n}"), "wechatpay", "resume-download-50")
            .await;
        let no = order["order_no"].as_str().unwrap().to_owned();
        let path = format!("{}/v1/orders/{no}", app.url);
        let res = app
            .http
            .get(&path)
            .bearer_auth(CHECKOUT_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "before: {corrupt}");
        sqlx::query(corrupt)
            .bind(&no)
            .execute(app.db.pool())
            .await
            .unwrap();
        let res = app
            .http
            .get(&path)
            .bearer_auth(CHECKOUT_KEY)
            .send()
            .await
            .unwrap();
        assert_error(res, 500, "internal_error").await;
    }
}

on_both_backends!(
    a_stored_time_out_of_range_is_an_error_on_sqlite,
    a_stored_time_out_of_range_is_an_error_on_postgres,
    a_stored_time_out_of_range_is_an_error
);
