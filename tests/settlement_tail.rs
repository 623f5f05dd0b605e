//! The settlement tail (issue 18 item 4, DESIGN.md §10): every path that learns of a payment —
//! a WeChat or Alipay notification, the browser's return-check, the active query job, the
//! expiry job, a refund notification that settles the payment first, and the reconciliation
//! heal — runs the same after step. A payment that reached an erased account goes back at
//! once through the full `account_deleted` refund (it reaches the provider now; the erasure
//! job's sweep is never run here), and a `?wait=` page opened before is answered.
//!
//! Each test fails if its path skips the tail: nothing else refunds the payment, since no
//! erasure pass runs after the payment. The `?wait=` check proves the page is answered with the
//! order no longer pending once the path learned of the payment; which signal woke it (the
//! settlement's own announce, the tail's, or the shared 500 ms re-read) it cannot tell apart.

mod common;

use std::time::Duration;

use common::{CHECKOUT_KEY, FINANCE_KEY, TestApp};
use paygate::clock::Clock;
use paygate::jobs::Job;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

fn no(order: &Value) -> String {
    order["order_no"].as_str().expect("order_no").to_owned()
}

/// `"199.00"` → 19900.
fn fen(amount: &Value) -> i64 {
    let text = amount.as_str().expect("an amount");
    let (yuan, cents) = text.split_once('.').expect("yuan.fen");
    yuan.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

/// An order of an employer who is then erased, left pending. The erasure closes the pending
/// orders it finds (here the provider cannot be reached, so the order is closed here only and
/// stays payable at the provider); the order is then put back to `pending`, the state in which
/// the active query and the expiry job meet it, so every path starts from the same state and a
/// `?wait=` page has something to wait for. The employer id is the pseudonym by then.
async fn pending_order_of_an_erased_employer(
    app: &TestApp,
    provider: &str,
    channel: &str,
    tag: &str,
) -> Value {
    let employer = format!("emp_tail_{tag}");
    let order = app
        .create_order_on(&employer, provider, channel, json!({}))
        .await;
    let order_no = no(&order);
    app.set_faults(json!({"api_error_rate": 1.0})).await;
    let (status, requested) = app
        .request_erasure(&employer, &format!("erase-{tag}"))
        .await;
    assert_eq!(status, 202, "{requested}");
    let pass = app.jobs.run_once(Job::Erasure).await.expect("erasure pass");
    assert_eq!(pass["completed"], 1, "{pass}");
    app.set_faults(json!({})).await;
    let erased = app.erasure(requested["erasure_id"].as_str().unwrap()).await;
    assert_eq!(erased["status"], "completed", "{erased}");
    assert_eq!(app.order(&order_no).await["status"], "closed");

    sqlx::query(
        "UPDATE payment_order SET status = 'pending', closed_at = NULL WHERE order_no = $1",
    )
    .bind(&order_no)
    .execute(app.db.pool())
    .await
    .expect("reopen the order");
    let reopened = app.order(&order_no).await;
    assert_eq!(reopened["status"], "pending");
    assert_eq!(reopened["employer_id"], erased["pseudonym"], "{reopened}");
    order
}

/// `GET …?wait=20` in a task of its own, begun (subscribed) before this returns.
async fn open_wait(app: &TestApp, order_no: &str) -> JoinHandle<Value> {
    let before = app.db.order_watch().waiters();
    let (url, http, no) = (app.url.clone(), app.http.clone(), order_no.to_owned());
    let wait = tokio::spawn(async move {
        let res = http
            .get(format!("{url}/v1/orders/{no}?wait=20"))
            .bearer_auth(CHECKOUT_KEY)
            .send()
            .await
            .expect("get");
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.expect("json")
    });
    let watch = app.db.order_watch().clone();
    common::wait_until("the wait has begun", || watch.waiters() > before).await;
    wait
}

/// The waiting page was answered with the order no longer pending, well before its 20 s.
async fn assert_wait_answered(wait: JoinHandle<Value>) {
    let answer = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("the waiting page is answered when the payment is learned")
        .expect("wait task");
    assert_ne!(answer["status"], "pending", "{answer}");
}

/// The `account_deleted` refunds of `order_no`: (amount in fen, origin).
async fn account_deleted_refunds(app: &TestApp, order_no: &str) -> Vec<(i64, String)> {
    sqlx::query_as(
        "SELECT amount_fen, origin FROM refund WHERE order_no = $1 AND reason = 'account_deleted'",
    )
    .bind(order_no)
    .fetch_all(app.db.pool())
    .await
    .expect("refunds")
}

/// One `account_deleted` refund of `amount` fen, paygate's, sent to the provider once, and
/// the payment settled once with nothing granted.
async fn assert_refunded_at_once(app: &TestApp, order_no: &str, amount: i64) {
    assert_eq!(
        account_deleted_refunds(app, order_no).await,
        vec![(amount, "paygate".to_owned())]
    );
    assert_eq!(
        app.refund_requests(order_no),
        1,
        "the refund reached the provider"
    );
    for (sql, n) in [
        ("SELECT COUNT(*) FROM payment WHERE order_no = $1", 1),
        (
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'order.paid'",
            1,
        ),
        // An erased account is granted nothing.
        ("SELECT COUNT(*) FROM entitlement WHERE order_no = $1", 0),
    ] {
        assert_eq!(app.count(sql, order_no).await, n, "{sql}");
    }
}

/// The same, once the refund exists: a notification's after step runs after the provider has
/// its answer (bounded: 10 s; no erasure pass runs meanwhile).
async fn assert_refunded_soon(app: &TestApp, order_no: &str, amount: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    // The refund is written before the provider is asked: wait for both.
    while account_deleted_refunds(app, order_no).await.is_empty()
        || app.refund_requests(order_no) == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no account_deleted refund of {order_no}: the notification's tail did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_refunded_at_once(app, order_no, amount).await;
}

/// The buyer pays while every notification is lost: only the path under test learns of it.
async fn paid_unreported(app: &TestApp, order_no: &str) {
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    app.pay(order_no).await;
}

async fn a_notification(app: TestApp, provider: &str, channel: &str) {
    let order = pending_order_of_an_erased_employer(&app, provider, channel, provider).await;
    let order_no = no(&order);
    let wait = open_wait(&app, &order_no).await;
    app.pay(&order_no).await;
    assert_wait_answered(wait).await;
    assert_refunded_soon(&app, &order_no, fen(&order["amount"])).await;
}

async fn a_wechat_notification(app: TestApp) {
    a_notification(app, "wechatpay", "native").await;
}
on_both_backends!(
    a_wechat_notification_of_an_erased_account_refunds_at_once_on_sqlite,
    a_wechat_notification_of_an_erased_account_refunds_at_once_on_postgres,
    a_wechat_notification
);

async fn an_alipay_notification(app: TestApp) {
    a_notification(app, "alipay", "qr").await;
}
on_both_backends!(
    an_alipay_notification_of_an_erased_account_refunds_at_once_on_sqlite,
    an_alipay_notification_of_an_erased_account_refunds_at_once_on_postgres,
    an_alipay_notification
);

/// The browser comes back (WeChat: an empty body): the query finds the payment.
async fn a_return_check(app: TestApp) {
    let order = pending_order_of_an_erased_employer(&app, "wechatpay", "native", "return").await;
    let order_no = no(&order);
    let wait = open_wait(&app, &order_no).await;
    paid_unreported(&app, &order_no).await;
    let res = app
        .http
        .post(format!("{}/v1/orders/{order_no}/return-check", app.url))
        .bearer_auth(CHECKOUT_KEY)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .expect("return-check");
    assert_eq!(res.status(), 200);
    assert_refunded_at_once(&app, &order_no, fen(&order["amount"])).await;
    assert_wait_answered(wait).await;
}
on_both_backends!(
    a_return_check_of_an_erased_account_refunds_at_once_on_sqlite,
    a_return_check_of_an_erased_account_refunds_at_once_on_postgres,
    a_return_check
);

async fn the_active_query(app: TestApp) {
    let order = pending_order_of_an_erased_employer(&app, "alipay", "qr", "query").await;
    let order_no = no(&order);
    let wait = open_wait(&app, &order_no).await;
    paid_unreported(&app, &order_no).await;
    app.clock.advance(chrono::Duration::minutes(3));
    let pass = app.jobs.run_once(Job::ActiveQuery).await.expect("pass");
    assert_eq!(pass["settled"], 1, "{pass}");
    assert_refunded_at_once(&app, &order_no, fen(&order["amount"])).await;
    assert_wait_answered(wait).await;
}
on_both_backends!(
    the_active_query_of_an_erased_account_refunds_at_once_on_sqlite,
    the_active_query_of_an_erased_account_refunds_at_once_on_postgres,
    the_active_query
);

/// The order runs out of time: the expiry's query-then-close finds it paid.
async fn the_expiry(app: TestApp) {
    let order = pending_order_of_an_erased_employer(&app, "wechatpay", "native", "expiry").await;
    let order_no = no(&order);
    let wait = open_wait(&app, &order_no).await;
    paid_unreported(&app, &order_no).await;
    app.clock.advance(chrono::Duration::hours(1));
    let pass = app.jobs.run_once(Job::Expire).await.expect("pass");
    assert_eq!(pass["settled"], 1, "{pass}");
    assert_eq!(pass["closed"], 0, "{pass}");
    assert_refunded_at_once(&app, &order_no, fen(&order["amount"])).await;
    assert_wait_answered(wait).await;
}
on_both_backends!(
    the_expiry_of_an_erased_account_refunds_at_once_on_sqlite,
    the_expiry_of_an_erased_account_refunds_at_once_on_postgres,
    the_expiry
);

/// Paid unreported, then partly refunded at the merchant portal: the refund notification is
/// the first paygate hears. The payment is settled first, the portal refund recorded, and what
/// is left goes back to the buyer at once.
async fn a_refund_notification(app: TestApp) {
    let order =
        pending_order_of_an_erased_employer(&app, "wechatpay", "native", "settle_first").await;
    let order_no = no(&order);
    let total = fen(&order["amount"]);
    let wait = open_wait(&app, &order_no).await;
    paid_unreported(&app, &order_no).await;
    let portal = app
        .sandbox
        .portal_refund(&order_no, 5000)
        .expect("portal refund");
    app.sandbox.complete_wechat_refunds();
    let resource = json!({
        "mchid": paygate::app::SANDBOX_MCHID,
        "out_trade_no": order_no,
        "transaction_id": "4200000000202611300000000001",
        "out_refund_no": portal.refund_no,
        "refund_id": "50000000000000000000000000001",
        "refund_status": "SUCCESS",
        "success_time": "2026-11-30T10:00:00+08:00",
        "user_received_account": "招商银行信用卡0403",
        "amount": {"total": total, "refund": 5000, "payer_total": total, "payer_refund": 5000}
    });
    let signed = app
        .sandbox
        .wechat_notification(&resource, app.clock.now().timestamp());
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 204);

    let portal_refunds: i64 = app
        .count(
            "SELECT COUNT(*) FROM refund WHERE order_no = $1 AND origin = 'provider'",
            &order_no,
        )
        .await;
    assert_eq!(portal_refunds, 1, "the portal refund is recorded");
    assert_refunded_at_once(&app, &order_no, total - 5000).await;
    assert_wait_answered(wait).await;
}
on_both_backends!(
    a_refund_notification_of_an_erased_account_refunds_the_rest_at_once_on_sqlite,
    a_refund_notification_of_an_erased_account_refunds_the_rest_at_once_on_postgres,
    a_refund_notification
);

/// The day's bill has the payment paygate never heard of: reconciliation heals it.
async fn the_reconciliation_heal(app: TestApp) {
    let order = pending_order_of_an_erased_employer(&app, "wechatpay", "native", "heal").await;
    let order_no = no(&order);
    let wait = open_wait(&app, &order_no).await;
    paid_unreported(&app, &order_no).await;
    let today = app
        .clock
        .now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive()
        .to_string();
    let res = app
        .http
        .post(format!("{}/v1/reconciliations", app.url))
        .bearer_auth(FINANCE_KEY)
        .json(&json!({"provider": "wechatpay", "date": today}))
        .send()
        .await
        .expect("reconcile");
    assert_eq!(res.status(), 201);
    let run: Value = res.json().await.expect("json");
    assert_eq!(run["summary"]["healed"], 1, "{run}");
    assert_refunded_at_once(&app, &order_no, fen(&order["amount"])).await;
    assert_wait_answered(wait).await;
}
on_both_backends!(
    the_reconciliation_heal_of_an_erased_account_refunds_at_once_on_sqlite,
    the_reconciliation_heal_of_an_erased_account_refunds_at_once_on_postgres,
    the_reconciliation_heal
);
