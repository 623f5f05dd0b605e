//! Refunds through paygate and at the providers' side (DESIGN.md §4–§6, issue 8): the order,
//! the refund and the entitlement follow the money exactly once, whoever started the refund and
//! however often, late or concurrently it is reported. Real gateway, real sandbox, over HTTP.

mod common;

use common::{FINANCE_KEY, TestApp, race_all};
use paygate::clock::Clock;
use serde_json::{Value, json};

const EMPLOYER: &str = "emp_refunds";

fn no(order: &Value) -> String {
    order["order_no"].as_str().expect("order_no").to_owned()
}

/// The order's one entitlement (the plans used here grant one).
async fn entitlement(app: &TestApp, employer: &str, order_no: &str) -> Value {
    let list = app.entitlements(employer).await;
    list["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["order_no"] == order_no)
        .cloned()
        .unwrap_or_else(|| panic!("no entitlement of {order_no}: {list}"))
}

/// A partial refund reduces the quota in proportion (never below what was used), a second one
/// for the rest revokes, and the résumé service is refused at once.
async fn partial_then_full_refund(app: TestApp, provider: &str) {
    let employer = format!("{EMPLOYER}_{provider}");
    let order = app
        .paid_order(&employer, provider, "resume-download-50")
        .await;
    let order_no = no(&order);
    let (status, _) = app.access(&employer, "r-1", "download").await;
    assert_eq!(status, 200);

    // 50.00 of 199.00 back: ceil(50 × 149/199) = 38 downloads left of 50.
    let refund = app.refund(&order_no, "50.00").await;
    assert_eq!(refund["origin"], "paygate");
    assert_eq!(refund["amount"], "50.00");
    let refund_id = refund["refund_id"].as_str().unwrap();
    assert!(
        refund_id.starts_with("RF") && refund_id.len() == 28,
        "{refund_id}"
    );
    let refund = app.wait_for_refund(&order_no, refund_id, "succeeded").await;
    assert!(refund["succeeded_at"].is_string(), "{refund}");
    let order = app.wait_for_status(&order_no, "partially_refunded").await;
    assert_eq!(order["refunded_amount"], "50.00");
    assert_eq!(order["refunds"].as_array().unwrap().len(), 1);
    let ent = entitlement(&app, &employer, &order_no).await;
    assert_eq!(ent["quota"], 38, "{ent}");
    assert_eq!(ent["used"], 1);
    assert_eq!(ent["remaining"], 37);
    assert_eq!(ent["status"], "active");
    assert_eq!(app.events_of(&order_no, "refund.succeeded").await.len(), 1);
    assert_eq!(
        app.events_of(&order_no, "entitlement.reduced").await.len(),
        1
    );

    // The rest: refunded, revoked, refused.
    let rest = app.refund(&order_no, "149.00").await;
    app.wait_for_refund(&order_no, rest["refund_id"].as_str().unwrap(), "succeeded")
        .await;
    let order = app.wait_for_status(&order_no, "refunded").await;
    assert_eq!(order["refunded_amount"], "199.00");
    let ent = entitlement(&app, &employer, &order_no).await;
    assert_eq!(ent["status"], "revoked", "{ent}");
    let (status, body) = app.access(&employer, "r-2", "download").await;
    assert_eq!(status, 403, "{body}");
    // Not even the résumé it had already opened.
    let (status, _) = app.access(&employer, "r-1", "download").await;
    assert_eq!(status, 403);
    let revoked = app.events_of(&order_no, "entitlement.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["data"]["reason"], "refunded");
    assert_eq!(app.events_of(&order_no, "refund.succeeded").await.len(), 2);
    // Once at the provider each, whatever the notifications added.
    assert_eq!(app.refund_requests(&order_no), 2);
    // Nothing is left to refund.
    let (status, body) = app
        .post_refund(
            FINANCE_KEY,
            "one-more",
            &order_no,
            json!({"amount": "0.01"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "order_not_refundable");
}

async fn wechat_refunds_reduce_then_revoke(app: TestApp) {
    partial_then_full_refund(app, "wechatpay").await;
}
on_both_backends!(
    wechat_refunds_reduce_then_revoke_on_sqlite,
    wechat_refunds_reduce_then_revoke_on_postgres,
    wechat_refunds_reduce_then_revoke
);

async fn alipay_refunds_reduce_then_revoke(app: TestApp) {
    partial_then_full_refund(app, "alipay").await;
}
on_both_backends!(
    alipay_refunds_reduce_then_revoke_on_sqlite,
    alipay_refunds_reduce_then_revoke_on_postgres,
    alipay_refunds_reduce_then_revoke
);

/// An unlimited grant keeps its term shortened by the refunded share.
#[tokio::test]
async fn a_partial_refund_shortens_an_unlimited_grant() {
    let app = TestApp::spawn().await;
    let order = app.paid_order(EMPLOYER, "alipay", "resume-view-30d").await;
    let order_no = no(&order);
    let before = entitlement(&app, EMPLOYER, &order_no).await;
    // Half of 99.00 back: 15 of the 30 days are left.
    let refund = app.refund(&order_no, "49.50").await;
    assert_eq!(
        refund["status"], "succeeded",
        "Alipay answers fund_change=Y: {refund}"
    );
    let after = entitlement(&app, EMPLOYER, &order_no).await;
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    let from = parse(&before["valid_from"]);
    assert_eq!(
        parse(&before["valid_until"]) - from,
        chrono::Duration::days(30)
    );
    assert_eq!(
        parse(&after["valid_until"]) - from,
        chrono::Duration::days(15)
    );
    assert_eq!(after["quota"], Value::Null);
    assert_eq!(after["status"], "active");
}

/// The same request 20 times at once with one key: one refund at the provider; and 20
/// different 20.00 refunds of a 199.00 order at once: the nine that fit, never more.
async fn concurrent_refunds_never_exceed_the_payment(app: TestApp) {
    let order = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let order_no = no(&order);
    let answers = race_all((0..20).map(|_| {
        let (http, url, order_no) = (app.http.clone(), app.url.clone(), order_no.clone());
        async move {
            let res = http
                .post(format!("{url}/v1/orders/{order_no}/refunds"))
                .bearer_auth(FINANCE_KEY)
                .header("Idempotency-Key", "same-refund")
                .json(&json!({"amount": "10.00"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert!(!created.is_empty(), "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 201
                || (*status == 409 && body["error"]["code"] == "idempotency_key_in_flight"),
            "{status} {body}"
        );
    }
    let ids: std::collections::HashSet<_> =
        created.iter().map(|b| b["refund_id"].clone()).collect();
    assert_eq!(ids.len(), 1, "one refund for one key: {ids:?}");
    assert_eq!(app.refund_requests(&order_no), 1);

    // 189.00 left: nine refunds of 20.00 fit.
    let answers = race_all((0..20).map(|i| {
        let (http, url, order_no) = (app.http.clone(), app.url.clone(), order_no.clone());
        async move {
            let res = http
                .post(format!("{url}/v1/orders/{order_no}/refunds"))
                .bearer_auth(FINANCE_KEY)
                .header("Idempotency-Key", format!("refund-{i}"))
                .json(&json!({"amount": "20.00"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    }))
    .await;
    let ok = answers.iter().filter(|(s, _)| *s == 201).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == 422 && b["error"]["code"] == "refund_amount_invalid")
        .count();
    assert_eq!((ok, refused), (9, 11), "{answers:?}");
    assert_eq!(app.refund_requests(&order_no), 10);
    let sum: i64 = app
        .count(
            "SELECT CAST(SUM(amount_fen) AS BIGINT) FROM refund WHERE order_no = $1",
            &order_no,
        )
        .await;
    assert_eq!(sum, 19_000);
    // Once they have all gone back: 190.00 of 199.00.
    app.sandbox.complete_wechat_refunds();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.order(&order_no).await["refunded_amount"] != "190.00" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            app.order(&order_no).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.order(&order_no).await["status"], "partially_refunded");
}
on_both_backends!(
    concurrent_refunds_never_exceed_the_payment_on_sqlite,
    concurrent_refunds_never_exceed_the_payment_on_postgres,
    concurrent_refunds_never_exceed_the_payment
);

/// The decrypted `REFUND.SUCCESS` resource of a refund, as WeChat would send it.
fn refund_resource(order: &Value, out_refund_no: &str, refund: i64, status: &str) -> Value {
    json!({
        "mchid": paygate::app::SANDBOX_MCHID,
        "out_trade_no": order["order_no"],
        "transaction_id": "4200000000202611300000000001",
        "out_refund_no": out_refund_no,
        "refund_id": "50000000000000000000000000001",
        "refund_status": status,
        "success_time": "2026-11-30T10:00:00+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": 19900, "refund": refund, "payer_total": 19900, "payer_refund": refund}
    })
}

/// The same refund notification 20 times at once: one state change, one `refund.succeeded`,
/// one revocation.
async fn a_refund_notification_twenty_times_at_once_settles_once(app: TestApp) {
    // The refund stays processing at the sandbox until the notification below.
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    let order = app.create_order(EMPLOYER, "resume-download-50").await;
    let order_no = no(&order);
    app.pay(&order_no).await;
    app.clock.advance(chrono::Duration::minutes(3));
    app.jobs
        .run_once(paygate::jobs::Job::ActiveQuery)
        .await
        .unwrap();
    app.assert_settled_once(&order_no).await;
    let refund = app.refund(&order_no, "199.00").await;
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();
    assert_eq!(refund["status"], "processing");

    let resource = refund_resource(&order, &refund_id, 19900, "SUCCESS");
    let signed = app
        .sandbox
        .wechat_notification(&resource, app.clock.now().timestamp());
    let answers = race_all((0..20).map(|_| {
        app.wechat_callback_request(&signed.headers, &signed.body)
            .send()
    }))
    .await;
    for res in answers {
        assert_eq!(res.unwrap().status(), 204);
    }
    assert_eq!(
        app.refund_of(&order_no, &refund_id).await["status"],
        "succeeded"
    );
    assert_eq!(app.order(&order_no).await["status"], "refunded");
    assert_eq!(app.events_of(&order_no, "refund.succeeded").await.len(), 1);
    assert_eq!(
        app.events_of(&order_no, "entitlement.revoked").await.len(),
        1
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM entitlement_audit a JOIN entitlement e ON a.entitlement_id = e.entitlement_id
             WHERE e.order_no = $1 AND a.kind = 'revoked'",
            &order_no
        )
        .await,
        1
    );
}
on_both_backends!(
    a_refund_notification_twenty_times_at_once_settles_once_on_sqlite,
    a_refund_notification_twenty_times_at_once_settles_once_on_postgres,
    a_refund_notification_twenty_times_at_once_settles_once
);

/// A refund made at the merchant portal of a paid order: learned from its notification,
/// recorded with origin `provider`, and the entitlement follows.
async fn a_portal_refund_of_a_paid_order_is_recorded_and_followed(app: TestApp, provider: &str) {
    let order = app
        .paid_order(EMPLOYER, provider, "resume-download-50")
        .await;
    let order_no = no(&order);
    app.sandbox
        .portal_refund(&order_no, 19900)
        .expect("portal refund");
    app.sandbox.complete_wechat_refunds();
    let order = app.wait_for_status(&order_no, "refunded").await;
    let refunds = order["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{order}");
    assert_eq!(refunds[0]["origin"], "provider");
    assert_eq!(refunds[0]["status"], "succeeded");
    assert_eq!(refunds[0]["amount"], "199.00");
    assert_eq!(
        entitlement(&app, EMPLOYER, &order_no).await["status"],
        "revoked"
    );
    assert_eq!(app.access(EMPLOYER, "r-9", "download").await.0, 403);
    assert_eq!(
        app.refund_requests(&order_no),
        0,
        "paygate asked for nothing"
    );
}

async fn a_wechat_portal_refund_is_followed(app: TestApp) {
    a_portal_refund_of_a_paid_order_is_recorded_and_followed(app, "wechatpay").await;
}
on_both_backends!(
    a_wechat_portal_refund_is_followed_on_sqlite,
    a_wechat_portal_refund_is_followed_on_postgres,
    a_wechat_portal_refund_is_followed
);

async fn an_alipay_portal_refund_is_followed(app: TestApp) {
    a_portal_refund_of_a_paid_order_is_recorded_and_followed(app, "alipay").await;
}
on_both_backends!(
    an_alipay_portal_refund_is_followed_on_sqlite,
    an_alipay_portal_refund_is_followed_on_postgres,
    an_alipay_portal_refund_is_followed
);

/// An order paid and then refunded (`fen`) at the merchant portal while every notification
/// was lost: paygate still has it pending. Notifications stay dropped until the test lifts it.
async fn paid_and_refunded_unreported(app: &TestApp, provider: &str, fen: i64) -> String {
    let channel = if provider == "alipay" { "qr" } else { "native" };
    let order = app
        .create_order_on(EMPLOYER, provider, channel, json!({}))
        .await;
    let order_no = no(&order);
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    app.pay(&order_no).await;
    app.sandbox
        .portal_refund(&order_no, fen)
        .expect("portal refund");
    app.sandbox.complete_wechat_refunds();
    order_no
}

/// Paid, every report of it lost, then partly refunded at the portal: the refund
/// notification is the first paygate hears. The payment is real: settled first, then refunded.
async fn a_portal_refund_of_an_order_still_pending_here_settles_it_first(
    app: TestApp,
    provider: &str,
) {
    let order_no = paid_and_refunded_unreported(&app, provider, 5000).await;
    assert_eq!(app.order(&order_no).await["status"], "pending");
    app.set_faults(json!({})).await;
    let resend = app
        .http
        .post(format!("{}/sandbox/notifications/resend", app.url))
        .send()
        .await
        .unwrap();
    assert!(resend.status().is_success());
    let order = app.wait_for_status(&order_no, "partially_refunded").await;
    assert_eq!(order["refunds"][0]["origin"], "provider");
    assert_eq!(order["refunds"][0]["amount"], "50.00");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment WHERE order_no = $1",
            &order_no
        )
        .await,
        1
    );
    assert_eq!(entitlement(&app, EMPLOYER, &order_no).await["quota"], 38);
}

async fn a_wechat_portal_refund_of_a_pending_order_settles_it_first(app: TestApp) {
    a_portal_refund_of_an_order_still_pending_here_settles_it_first(app, "wechatpay").await;
}
on_both_backends!(
    a_wechat_portal_refund_of_a_pending_order_settles_it_first_on_sqlite,
    a_wechat_portal_refund_of_a_pending_order_settles_it_first_on_postgres,
    a_wechat_portal_refund_of_a_pending_order_settles_it_first
);

async fn an_alipay_portal_refund_of_a_pending_order_settles_it_first(app: TestApp) {
    a_portal_refund_of_an_order_still_pending_here_settles_it_first(app, "alipay").await;
}
on_both_backends!(
    an_alipay_portal_refund_of_a_pending_order_settles_it_first_on_sqlite,
    an_alipay_portal_refund_of_a_pending_order_settles_it_first_on_postgres,
    an_alipay_portal_refund_of_a_pending_order_settles_it_first
);

/// Every report lost, and the trade refunded in full at the portal: the active query finds
/// `REFUND` / `TRADE_CLOSED` with a payment date. Settled as paid, then refunded: never closed.
async fn a_query_that_finds_a_fully_refunded_trade_settles_then_refunds(
    app: TestApp,
    provider: &str,
) {
    let order_no = paid_and_refunded_unreported(&app, provider, 19900).await;
    app.clock.advance(chrono::Duration::minutes(3));
    app.jobs
        .run_once(paygate::jobs::Job::ActiveQuery)
        .await
        .unwrap();
    let order = app.order(&order_no).await;
    assert_eq!(order["status"], "refunded", "{order}");
    assert_eq!(order["refunds"][0]["origin"], "provider");
    assert_eq!(
        entitlement(&app, EMPLOYER, &order_no).await["status"],
        "revoked"
    );
    // The query did not say the refund's number: the row is marked inferred, as it always was
    // stored.
    let inferred = "SELECT COUNT(*) FROM refund WHERE order_no = $1 AND out_refund_no = 'INFERRED-' || order_no";
    assert_eq!(app.count(inferred, &order_no).await, 1);
    // The lost notifications arrive at last: nothing is counted twice.
    app.set_faults(json!({})).await;
    app.http
        .post(format!("{}/sandbox/notifications/resend", app.url))
        .send()
        .await
        .unwrap();
    common::wait_until("every notification acknowledged", || {
        app.sandbox.notifications().iter().any(|n| n.acknowledged)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let order = app.order(&order_no).await;
    assert_eq!(order["refunded_amount"], "199.00");
    assert_eq!(order["refunds"].as_array().unwrap().len(), 1, "{order}");
    assert_eq!(app.events_of(&order_no, "refund.succeeded").await.len(), 1);
    // A notification that names the refund and its amount gives the inferred one its number.
    assert_eq!(app.count(inferred, &order_no).await, 0);
}

async fn a_wechat_query_finding_refund_settles_then_refunds(app: TestApp) {
    a_query_that_finds_a_fully_refunded_trade_settles_then_refunds(app, "wechatpay").await;
}
on_both_backends!(
    a_wechat_query_finding_refund_settles_then_refunds_on_sqlite,
    a_wechat_query_finding_refund_settles_then_refunds_on_postgres,
    a_wechat_query_finding_refund_settles_then_refunds
);

async fn an_alipay_query_finding_refund_settles_then_refunds(app: TestApp) {
    a_query_that_finds_a_fully_refunded_trade_settles_then_refunds(app, "alipay").await;
}
on_both_backends!(
    an_alipay_query_finding_refund_settles_then_refunds_on_sqlite,
    an_alipay_query_finding_refund_settles_then_refunds_on_postgres,
    an_alipay_query_finding_refund_settles_then_refunds
);

/// The provider takes the refund but its answer never comes back in time: paygate sends no
/// second refund; the refund job's query settles it.
async fn a_refund_whose_answer_timed_out_is_settled_by_the_job_not_resent(
    app: TestApp,
    provider: &str,
) {
    let order = app
        .paid_order(EMPLOYER, provider, "resume-download-50")
        .await;
    let order_no = no(&order);
    // The sandbox acts, then holds its answer past the gateway's 2 s timeout; its refund
    // notifications are lost, so only a query can tell.
    app.set_faults(json!({"api_latency_ms": 2500, "drop_notifications": 1.0}))
        .await;
    let refund = app.refund(&order_no, "199.00").await;
    assert_eq!(refund["status"], "processing", "{refund}");
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    app.sandbox.complete_wechat_refunds();
    // Not before 10 s.
    let early = app
        .jobs
        .run_once(paygate::jobs::Job::Refunds)
        .await
        .unwrap();
    assert_eq!(early["checked"], 0, "{early}");
    app.clock.advance(chrono::Duration::seconds(11));
    let pass = app
        .jobs
        .run_once(paygate::jobs::Job::Refunds)
        .await
        .unwrap();
    assert_eq!(pass["settled"], 1, "{pass}");
    assert_eq!(
        app.refund_of(&order_no, &refund_id).await["status"],
        "succeeded"
    );
    assert_eq!(app.order(&order_no).await["status"], "refunded");
    assert_eq!(app.refund_requests(&order_no), 1, "sent once");
    assert_eq!(
        entitlement(&app, EMPLOYER, &order_no).await["status"],
        "revoked"
    );
}

async fn a_timed_out_wechat_refund_is_settled_by_the_job(app: TestApp) {
    a_refund_whose_answer_timed_out_is_settled_by_the_job_not_resent(app, "wechatpay").await;
}
on_both_backends!(
    a_timed_out_wechat_refund_is_settled_by_the_job_on_sqlite,
    a_timed_out_wechat_refund_is_settled_by_the_job_on_postgres,
    a_timed_out_wechat_refund_is_settled_by_the_job
);

#[tokio::test]
async fn a_timed_out_alipay_refund_is_settled_by_the_job() {
    a_refund_whose_answer_timed_out_is_settled_by_the_job_not_resent(
        TestApp::spawn().await,
        "alipay",
    )
    .await;
}

/// `REFUND.ABNORMAL` / `REFUND.CLOSED`: the refund failed, the entitlement is untouched, the
/// amount may be refunded again, and finance hears of it.
async fn a_failed_wechat_refund_leaves_the_entitlement(app: TestApp, outcome: &str) {
    let order = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let order_no = no(&order);
    app.set_faults(json!({"wechat_refund_outcome": outcome}))
        .await;
    let refund = app.refund(&order_no, "199.00").await;
    let refund_id = refund["refund_id"].as_str().unwrap();
    app.sandbox.complete_wechat_refunds();
    let refund = app.wait_for_refund(&order_no, refund_id, "failed").await;
    assert_eq!(refund["failure"], outcome);
    assert_eq!(app.order(&order_no).await["status"], "paid");
    let ent = entitlement(&app, EMPLOYER, &order_no).await;
    assert_eq!(
        (ent["status"].clone(), ent["quota"].clone()),
        (json!("active"), json!(50))
    );
    let failed = app.events_of(&order_no, "refund.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["reason"], outcome);
    assert!(
        app.events_of(&order_no, "refund.succeeded")
            .await
            .is_empty()
    );
    // Operators see it on /metrics, by kind.
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let kind = format!("outcome=\"failed_{outcome}\"");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("paygate_refunds_total") && l.contains(&kind)),
        "{metrics}"
    );
    // The whole amount is refundable again.
    app.set_faults(json!({})).await;
    let again = app.refund(&order_no, "199.00").await;
    app.sandbox.complete_wechat_refunds();
    app.wait_for_refund(&order_no, again["refund_id"].as_str().unwrap(), "succeeded")
        .await;
}

async fn an_abnormal_wechat_refund_fails_and_is_reported(app: TestApp) {
    a_failed_wechat_refund_leaves_the_entitlement(app, "abnormal").await;
}
on_both_backends!(
    an_abnormal_wechat_refund_fails_and_is_reported_on_sqlite,
    an_abnormal_wechat_refund_fails_and_is_reported_on_postgres,
    an_abnormal_wechat_refund_fails_and_is_reported
);

#[tokio::test]
async fn a_closed_wechat_refund_fails_and_is_reported() {
    a_failed_wechat_refund_leaves_the_entitlement(TestApp::spawn().await, "closed").await;
}

/// The refund rows and the order as they are, to compare before and after a refused report.
async fn refund_state(app: &TestApp, order_no: &str) -> (Value, i64) {
    let order = app.order(order_no).await;
    let events = app
        .count(
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1",
            order_no,
        )
        .await;
    (order, events)
}

#[tokio::test]
async fn tampered_refund_notifications_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    let order = app.create_order(EMPLOYER, "resume-download-50").await;
    let order_no = no(&order);
    app.pay(&order_no).await;
    app.clock.advance(chrono::Duration::minutes(3));
    app.jobs
        .run_once(paygate::jobs::Job::ActiveQuery)
        .await
        .unwrap();
    let refund = app.refund(&order_no, "50.00").await;
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();
    let other = app.create_order(EMPLOYER, "resume-download-50").await;
    let before = refund_state(&app, &order_no).await;
    let now = app.clock.now().timestamp();

    // A tampered signature.
    let signed = app
        .sandbox
        .wechat_notification(&refund_resource(&order, &refund_id, 5000, "SUCCESS"), now);
    let headers: Vec<(String, String)> = signed
        .headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("Wechatpay-Signature") {
                // Another first character, whatever it was ("A" for "A…" would change nothing:
                // one run in 64 had a valid signature here).
                let other = if v.starts_with('A') { 'B' } else { 'A' };
                (k.clone(), format!("{other}{}", &v[1..]))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    assert_eq!(
        app.post_wechat_callback(&headers, &signed.body)
            .await
            .status(),
        401
    );
    // Another amount than the refund's, validly signed.
    let signed = app
        .sandbox
        .wechat_notification(&refund_resource(&order, &refund_id, 19900, "SUCCESS"), now);
    assert_eq!(
        app.post_wechat_callback(&signed.headers, &signed.body)
            .await
            .status(),
        400
    );
    // Our refund number, reported for another order.
    let signed = app
        .sandbox
        .wechat_notification(&refund_resource(&other, &refund_id, 5000, "SUCCESS"), now);
    assert_eq!(
        app.post_wechat_callback(&signed.headers, &signed.body)
            .await
            .status(),
        400
    );
    // Another merchant.
    let mut foreign = refund_resource(&order, &refund_id, 5000, "SUCCESS");
    foreign["mchid"] = json!("1900000002");
    let signed = app.sandbox.wechat_notification(&foreign, now);
    assert_eq!(
        app.post_wechat_callback(&signed.headers, &signed.body)
            .await
            .status(),
        400
    );

    assert_eq!(refund_state(&app, &order_no).await, before);
    assert_eq!(
        app.refund_of(&order_no, &refund_id).await["status"],
        "processing"
    );
    assert_eq!(app.order(&no(&other)).await["status"], "pending");
    // The genuine report still settles it.
    let signed = app
        .sandbox
        .wechat_notification(&refund_resource(&order, &refund_id, 5000, "SUCCESS"), now);
    assert_eq!(
        app.post_wechat_callback(&signed.headers, &signed.body)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.refund_of(&order_no, &refund_id).await["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn a_tampered_alipay_refund_notification_is_refused() {
    let app = TestApp::spawn().await;
    let order = app
        .paid_order(EMPLOYER, "alipay", "resume-download-50")
        .await;
    let order_no = no(&order);
    let before = refund_state(&app, &order_no).await;
    let body = common::alipay_notification(
        &order,
        &[
            ("refund_fee", "50.00"),
            ("out_biz_no", "PORTAL0000000001"),
            ("gmt_refund", "2026-11-30 10:00:00"),
        ],
    );
    let tampered = body.replace("refund_fee=50.00", "refund_fee=60.00");
    assert_ne!(tampered, body);
    let (status, answer) = app.post_alipay_callback(&tampered).await;
    assert_eq!((status, answer.as_str()), (400, "fail"));
    assert_eq!(refund_state(&app, &order_no).await, before);
}

#[tokio::test]
async fn refusals_use_the_error_envelope_and_write_nothing() {
    let app = TestApp::spawn().await;
    let pending = app.create_order(EMPLOYER, "resume-download-50").await;
    let (status, body) = app
        .post_refund(FINANCE_KEY, "k1", &no(&pending), json!({"amount": "1.00"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("order_not_refundable"))
    );

    let paid = app
        .paid_order(EMPLOYER, "alipay", "resume-download-50")
        .await;
    let order_no = no(&paid);
    for amount in ["0", "0.00", "-1.00", "0.001", "199.01", "abc", "1e2"] {
        let (status, body) = app
            .post_refund(
                FINANCE_KEY,
                &format!("amount-{amount}"),
                &order_no,
                json!({"amount": amount}),
            )
            .await;
        assert_eq!(status, 422, "{amount}: {body}");
        assert_eq!(body["error"]["code"], "refund_amount_invalid", "{amount}");
    }
    for (reason, code) in [
        ("x".repeat(81), "invalid_reason"),
        ("line\nbreak".to_owned(), "invalid_reason"),
        (format!("退款给 {EMPLOYER}"), "invalid_reason"),
    ] {
        let (status, body) = app
            .post_refund(
                FINANCE_KEY,
                "reason",
                &order_no,
                json!({"amount": "1.00", "reason": reason}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (400, json!(code)),
            "{reason}"
        );
    }
    let (status, body) = app
        .post_refund(
            common::CHECKOUT_KEY,
            "scope",
            &order_no,
            json!({"amount": "1.00"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .post_refund(
            FINANCE_KEY,
            "unknown",
            "P0000000000000000000000000",
            json!({"amount": "1.00"}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refund WHERE order_no = $1", &order_no)
            .await,
        0
    );
    assert_eq!(app.refund_requests(&order_no), 0);

    // The same key with another body.
    let first = app
        .post_refund(FINANCE_KEY, "reused", &order_no, json!({"amount": "1.00"}))
        .await;
    assert_eq!(first.0, 201);
    let replay = app
        .post_refund(FINANCE_KEY, "reused", &order_no, json!({"amount": "1.00"}))
        .await;
    assert_eq!(replay, first, "a replay answers the same");
    let (status, body) = app
        .post_refund(FINANCE_KEY, "reused", &order_no, json!({"amount": "2.00"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (422, json!("idempotency_key_reused"))
    );
    assert_eq!(app.refund_requests(&order_no), 1);
    // A refund read: unknown ids and another order's refund are 404.
    let res = app
        .http
        .get(format!(
            "{}/v1/orders/{}/refunds/{}",
            app.url,
            no(&pending),
            first.1["refund_id"].as_str().unwrap()
        ))
        .bearer_auth(FINANCE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// `paygate refund ORDER_NO AMOUNT --reason …`: finance's way without an HTTP client. A
/// separate process on the same database, configured for the same (sandbox) WeChat Pay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refunds_an_order() {
    let app = TestApp::spawn().await;
    let order = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let order_no = no(&order);
    let dir = tempfile::tempdir().unwrap();
    let merchant_pem = include_str!("fixtures/merchant_key.pem");
    let platform = paygate_wechatpay::Signer::from_pem(include_str!("fixtures/platform_key.pem"))
        .unwrap()
        .public_key_pem();
    std::fs::write(dir.path().join("merchant.pem"), merchant_pem).unwrap();
    std::fs::write(dir.path().join("platform.pem"), platform).unwrap();
    std::fs::write(dir.path().join("apiv3.key"), common::APIV3_KEY).unwrap();
    let config = format!(
        r#"[server]
public_url = "{url}"

[database]
url = "{db}"

[wechatpay]
api_base = "{url}/sandbox/wechatpay"
mchid = "{mchid}"
appid = "{appid}"
merchant_serial = "{serial}"
merchant_private_key_file = "merchant.pem"
apiv3_key_file = "apiv3.key"
platform_public_keys = [{{ id = "{key_id}", file = "platform.pem" }}]
"#,
        url = app.url,
        db = app.database_url(),
        mchid = paygate::app::SANDBOX_MCHID,
        appid = paygate::app::SANDBOX_APPID,
        serial = paygate::app::SANDBOX_MERCHANT_SERIAL,
        key_id = app.sandbox.wechat_platform_key_id(),
    );
    std::fs::write(dir.path().join("paygate.toml"), config).unwrap();
    let run = |args: Vec<String>| {
        let config = dir.path().join("paygate.toml");
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
                    .args(&args)
                    .env("PAYGATE_CONFIG", config)
                    .output()
                    .expect("run paygate")
            })
            .await
            .unwrap()
        }
    };
    let out = run(vec![
        "refund".into(),
        order_no.clone(),
        "50.00".into(),
        "--reason".into(),
        "服务退款".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refund: Value = serde_json::from_slice(&out.stdout).expect("the refund as JSON");
    assert_eq!(refund["order_no"], order_no.as_str());
    assert_eq!(refund["amount"], "50.00");
    assert_eq!(refund["origin"], "paygate");
    assert_eq!(refund["reason"], "服务退款");
    // WeChat's notification reaches the running gateway, which settles it.
    app.sandbox.complete_wechat_refunds();
    app.wait_for_refund(
        &order_no,
        refund["refund_id"].as_str().unwrap(),
        "succeeded",
    )
    .await;
    assert_eq!(entitlement(&app, EMPLOYER, &order_no).await["quota"], 38);
    // More than is left is refused, and says why.
    let out = run(vec!["refund".into(), order_no.clone(), "150.00".into()]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("149.00 still refundable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(app.refund_requests(&order_no), 1);
}
