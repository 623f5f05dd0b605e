//! `GET /metrics`: Prometheus counters where money moves, and no identifiers in them. One test
//! per binary, so the process-wide counters hold exactly this flow.

mod common;

use common::TestApp;
use paygate::jobs::Job;
use paygate_sandbox::Faults;
use serde_json::json;

fn line<'a>(metrics: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
}

fn value(metrics: &str, name: &str, labels: &[&str]) -> u64 {
    line(metrics, name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{metrics}"))
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_orders_callbacks_settlements_and_job_runs() {
    let app = TestApp::spawn().await;
    // One order settled by its notification, a duplicate of that notification, one refused
    // callback, and one order settled by the active query.
    let order = app
        .create_order_on("emp_metrics", "wechatpay", "native", json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap().to_owned();
    let tx = app.pay(&order_no).await;
    app.wait_for_status(&order_no, "paid").await;
    let refused = app.post_alipay_callback("not=a&signed=notification").await;
    assert_eq!(refused.1, "fail");

    app.sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..Faults::default()
    });
    let queried = app
        .create_order_on("emp_metrics", "alipay", "qr", json!({}))
        .await;
    let queried_no = queried["order_no"].as_str().unwrap().to_owned();
    app.pay(&queried_no).await;
    app.clock.advance(chrono::Duration::minutes(3));
    let slot = Job::ActiveQuery.slot_of(paygate::clock::Clock::now(app.clock.as_ref()));
    assert!(
        app.jobs
            .run_slot(Job::ActiveQuery, slot)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        app.jobs
            .run_slot(Job::ActiveQuery, slot)
            .await
            .unwrap()
            .is_none()
    );

    let res = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = res.text().await.unwrap();

    let created = "paygate_orders_created_total";
    assert_eq!(
        value(
            &m,
            created,
            &[r#"provider="wechatpay""#, r#"channel="native""#]
        ),
        1
    );
    assert_eq!(
        value(&m, created, &[r#"provider="alipay""#, r#"channel="qr""#]),
        1
    );
    let callbacks = "paygate_callbacks_total";
    assert_eq!(
        value(
            &m,
            callbacks,
            &[r#"provider="wechatpay""#, r#"outcome="settled""#]
        ),
        1
    );
    assert_eq!(
        value(
            &m,
            callbacks,
            &[r#"provider="alipay""#, r#"outcome="unverified""#]
        ),
        1
    );
    let settlements = "paygate_settlements_total";
    assert_eq!(
        value(
            &m,
            settlements,
            &[
                r#"provider="wechatpay""#,
                r#"source="notification""#,
                r#"late="false""#
            ]
        ),
        1
    );
    assert_eq!(
        value(
            &m,
            settlements,
            &[r#"provider="alipay""#, r#"source="query""#]
        ),
        1
    );
    let runs = "paygate_job_runs_total";
    assert_eq!(
        value(&m, runs, &[r#"job_name="active_query""#, r#"outcome="ok""#]),
        1
    );
    assert_eq!(
        value(
            &m,
            runs,
            &[r#"job_name="active_query""#, r#"outcome="skipped""#]
        ),
        1
    );
    assert_eq!(
        value(
            &m,
            "paygate_job_orders_total",
            &[r#"job_name="active_query""#, r#"result="settled""#]
        ),
        1
    );
    // Every provider call is timed by outcome: one native create, one precreate, the queries of
    // the active-query pass.
    let calls = "paygate_provider_call_seconds_count";
    assert_eq!(
        value(
            &m,
            calls,
            &[
                r#"provider="wechatpay""#,
                r#"call="create""#,
                r#"outcome="ok""#
            ]
        ),
        1
    );
    assert_eq!(
        value(
            &m,
            calls,
            &[
                r#"provider="alipay""#,
                r#"call="create""#,
                r#"outcome="ok""#
            ]
        ),
        1
    );
    assert_eq!(
        value(
            &m,
            calls,
            &[r#"provider="alipay""#, r#"call="query""#, r#"outcome="ok""#]
        ),
        1
    );
    // SQLite's batching writer committed the orders' writes, a transaction or more a commit.
    let commits = value(&m, "paygate_sqlite_batch_commits_total", &[]);
    let batched = value(&m, "paygate_sqlite_batched_transactions_total", &[]);
    assert!(
        commits > 0 && batched >= commits,
        "{commits} commits, {batched} transactions"
    );
    for secret in [
        order_no.as_str(),
        queried_no.as_str(),
        "emp_metrics",
        tx["payer"]["openid"].as_str().unwrap(),
    ] {
        assert!(!m.contains(secret), "{secret} in /metrics");
    }
}
