//! The order lifecycle converges whatever the providers do (DESIGN.md §10): notifications
//! dropped, delayed, reordered; the provider down or slow; payments racing the close; several
//! instances on one database. Time is moved on the injected clock, never slept through.

mod common;

use chrono::Duration;
use common::{Backend, CHECKOUT_KEY, TestApp};
use paygate::jobs::Job;
use paygate_sandbox::Faults;
use serde_json::{Value, json};

fn order_no(order: &Value) -> String {
    order["order_no"].as_str().expect("order_no").to_owned()
}

/// Orders on both providers, alternating WeChat native and Alipay QR.
async fn orders_on_both_providers(app: &TestApp, n: usize, employer: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let (provider, channel) = if i.is_multiple_of(2) {
            ("wechatpay", "native")
        } else {
            ("alipay", "qr")
        };
        let order = app
            .create_order_on(employer, provider, channel, json!({}))
            .await;
        out.push(order_no(&order));
    }
    out
}

/// Notifications are lost from now on (`with` adds further faults).
fn notifications_lost(app: &TestApp, with: Faults) {
    app.sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..with
    });
}

/// `n` orders on both providers, paid at the sandbox, whose notifications were all lost.
async fn paid_but_unreported(app: &TestApp, n: usize, employer: &str) -> Vec<String> {
    let orders = orders_on_both_providers(app, n, employer).await;
    notifications_lost(app, Faults::default());
    for no in &orders {
        app.pay(no).await;
    }
    orders
}

async fn run(app: &TestApp, job: Job) -> Value {
    app.jobs.run_once(job).await.expect("job pass")
}

async fn dropped_notifications_are_recovered_by_the_active_query(app: TestApp) {
    let orders = paid_but_unreported(&app, 50, "emp_dropped").await;
    // Every delivery attempt is lost; nothing is settled yet, and a pass before the 2-minute
    // mark leaves the orders to their notifications.
    let early = run(&app, Job::ActiveQuery).await;
    assert_eq!(early["checked"], 0, "{early}");
    for no in &orders {
        assert_eq!(app.order(no).await["status"], "pending");
    }

    app.clock.advance(Duration::minutes(3));
    let pass = run(&app, Job::ActiveQuery).await;
    assert_eq!(pass["settled"], 50, "{pass}");
    for no in &orders {
        let order = app.order(no).await;
        assert_eq!(order["status"], "paid");
        assert_eq!(order["payment_record"]["source"], "query");
        app.assert_settled_once(no).await;
    }
    let entitlements = app.entitlements("emp_dropped").await;
    assert_eq!(entitlements["entitlements"].as_array().unwrap().len(), 50);

    // The notifications get through at last: all acknowledged, nothing settled twice.
    app.sandbox.set_faults(Faults::default());
    app.sandbox.resend_pending().await;
    common::wait_until("every notification acknowledged", || {
        let acked: std::collections::HashSet<String> = app
            .sandbox
            .notifications()
            .into_iter()
            .filter(|d| d.acknowledged)
            .map(|d| d.out_trade_no)
            .collect();
        orders.iter().all(|no| acked.contains(no))
    })
    .await;
    for no in &orders {
        app.assert_settled_once(no).await;
    }
    assert_eq!(run(&app, Job::ActiveQuery).await["checked"], 0);
}
on_both_backends!(
    dropped_notifications_are_recovered_by_the_active_query_on_sqlite,
    dropped_notifications_are_recovered_by_the_active_query_on_postgres,
    dropped_notifications_are_recovered_by_the_active_query
);

#[tokio::test]
async fn unpaid_orders_past_expiry_are_closed_here_and_at_the_provider() {
    let app = TestApp::spawn().await;
    let wechat = order_no(
        &app.create_order_on("emp_expiry", "wechatpay", "native", json!({}))
            .await,
    );
    let alipay = order_no(
        &app.create_order_on("emp_expiry", "alipay", "qr", json!({}))
            .await,
    );
    // A page order nobody opened: Alipay has no trade, so it is closed here only.
    let unopened = order_no(
        &app.create_order_on("emp_expiry", "alipay", "page", json!({}))
            .await,
    );

    let pass = run(&app, Job::Expire).await;
    assert_eq!(pass["checked"], 0, "nothing has expired yet: {pass}");
    app.clock.advance(Duration::minutes(16));
    let pass = run(&app, Job::Expire).await;
    assert_eq!(pass["closed"], 3, "{pass}");
    for no in [&wechat, &alipay, &unopened] {
        let order = app.order(no).await;
        assert_eq!(order["status"], "closed", "{order}");
        assert_eq!(
            app.count(
                "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'order.closed'",
                no
            )
            .await,
            1
        );
    }
    // Closed at the sandbox too: the buyer can no longer pay there.
    for no in [&wechat, &alipay] {
        let res = app
            .http
            .post(format!("{}/sandbox/pay/{no}", app.url))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{no}: {}", res.status());
    }
    assert_eq!(run(&app, Job::Expire).await["checked"], 0, "nothing left");
}

#[tokio::test]
async fn a_payment_racing_the_close_is_honoured_and_flagged_late() {
    let app = TestApp::spawn().await;
    let mut orders = Vec::new();
    for (provider, channel) in [("wechatpay", "native"), ("alipay", "qr")] {
        orders.push(order_no(
            &app.create_order_on("emp_race", provider, channel, json!({}))
                .await,
        ));
    }
    // The buyer pays one second before the close request reaches the provider, and the
    // notification is lost: the close is refused and the expiry job must notice the payment.
    app.sandbox.set_faults(Faults {
        pay_before_close: true,
        drop_notifications: 1.0,
        ..Faults::default()
    });
    app.clock.advance(Duration::minutes(16));
    let pass = run(&app, Job::Expire).await;
    assert_eq!(pass["settled"], 2, "{pass}");
    for no in &orders {
        let order = app.order(no).await;
        assert_eq!(order["status"], "paid", "{order}");
        assert_eq!(order["late_payment"], true, "{order}");
        app.assert_settled_once(no).await;
        assert_eq!(
            app.count(
                "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'payment.late'",
                no
            )
            .await,
            1
        );
    }
    assert_eq!(
        app.entitlements("emp_race").await["entitlements"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn an_outage_is_retried_with_back_off_and_the_orders_converge() {
    let app = TestApp::spawn().await;
    let orders = paid_but_unreported(&app, 4, "emp_outage").await;
    notifications_lost(
        &app,
        Faults {
            api_error_rate: 1.0,
            ..Faults::default()
        },
    );
    app.clock.advance(Duration::minutes(3));
    let queries_before = query_count(&app);
    let pass = run(&app, Job::ActiveQuery).await;
    assert_eq!(pass["failed"], 4, "{pass}");
    for no in &orders {
        assert_eq!(app.order(no).await["status"], "pending");
    }
    // Each order was asked more than once (bounded retries), never endlessly.
    let asked = query_count(&app) - queries_before;
    assert!((8..=4 * 5).contains(&asked), "{asked} queries for 4 orders");

    // Creating an order during the outage: 502, nothing left behind, and the same
    // Idempotency-Key works once the provider is back.
    let body = json!({"employer_id": "emp_outage", "plan": "resume-download-50",
        "provider": "wechatpay", "channel": "native"})
    .to_string();
    let res = app.post_order(CHECKOUT_KEY, "outage-create", &body).await;
    assert_eq!(res.status(), 502);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "provider_unavailable");

    notifications_lost(&app, Faults::default());
    let pass = run(&app, Job::ActiveQuery).await;
    assert_eq!(pass["settled"], 4, "{pass}");
    for no in &orders {
        app.assert_settled_once(no).await;
    }
    let res = app.post_order(CHECKOUT_KEY, "outage-create", &body).await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_provider_too_slow_to_answer_is_a_timeout_and_the_order_converges_later() {
    let app = TestApp::spawn().await;
    paid_but_unreported(&app, 2, "emp_slow").await;
    // Slower than the gateway's provider timeout (2 s in tests).
    notifications_lost(
        &app,
        Faults {
            api_latency_ms: 2_500,
            ..Faults::default()
        },
    );
    app.clock.advance(Duration::minutes(3));
    let pass = run(&app, Job::ActiveQuery).await;
    assert_eq!(pass["failed"], 2, "{pass}");
    notifications_lost(&app, Faults::default());
    let pass = run(&app, Job::ActiveQuery).await;
    assert_eq!(pass["settled"], 2, "{pass}");
}

/// WeChat queries and Alipay query calls the sandbox has received.
fn query_count(app: &TestApp) -> usize {
    let wechat = app
        .sandbox
        .wechat_requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/out-trade-no/"))
        .count();
    let alipay = app
        .sandbox
        .alipay_requests()
        .into_iter()
        .filter(|p| {
            p.iter()
                .any(|(k, v)| k == "method" && v == "alipay.trade.query")
        })
        .count();
    wechat + alipay
}

/// A 30-day plan 31 days on: refused with `entitlement_expired` before the hourly job has
/// marked it and after, the job's marking audited and announced once.
async fn expired_entitlements_are_marked_and_never_used(app: TestApp) {
    // resume-view-30d: unlimited views for 30 days.
    let order = app.create_order("emp_ent_expiry", "resume-view-30d").await;
    let no = order_no(&order);
    app.pay(&no).await;
    app.wait_for_status(&no, "paid").await;
    let (status, _) = app.access("emp_ent_expiry", "r1", "view").await;
    assert_eq!(status, 200);

    app.clock.advance(Duration::days(31));
    // Before the job runs, the expired entitlement already grants nothing, and says so.
    let (status, body) = app.access("emp_ent_expiry", "r2", "view").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "entitlement_expired", "{body}");
    let pass = run(&app, Job::EntitlementExpiry).await;
    assert_eq!(pass["expired"], 1, "{pass}");
    let list = app.entitlements("emp_ent_expiry").await;
    assert_eq!(list["entitlements"][0]["status"], "expired");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'entitlement.expired'",
            &no
        )
        .await,
        1
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM entitlement_audit WHERE kind = $1",
            "expired"
        )
        .await,
        1
    );
    assert_eq!(run(&app, Job::EntitlementExpiry).await["expired"], 0);
    let (status, body) = app.access("emp_ent_expiry", "r1", "view").await;
    assert_eq!(status, 403, "not even a résumé seen before");
    assert_eq!(body["error"]["code"], "entitlement_expired", "{body}");
    // Another action was never bought: nothing ran out for it.
    let (status, body) = app.access("emp_ent_expiry", "r1", "download").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("no_entitlement"))
    );
}

on_both_backends!(
    expired_entitlements_are_marked_and_never_used_on_sqlite,
    expired_entitlements_are_marked_and_never_used_on_postgres,
    expired_entitlements_are_marked_and_never_used
);

/// DESIGN.md §5: only a plan that ran out makes a refusal `entitlement_expired`. Never held,
/// revoked by a refund, or a plan within its term with its quota used up (even beside an
/// older expired one): `no_entitlement`.
async fn a_refusal_says_expired_only_for_a_plan_that_ran_out(app: TestApp) {
    let code = |(status, body): (u16, Value)| {
        assert_eq!(status, 403, "{body}");
        body["error"]["code"].as_str().expect("code").to_owned()
    };
    assert_eq!(
        code(app.access("emp_never", "r1", "download").await),
        "no_entitlement"
    );

    // Refunded in full: revoked, and still no_entitlement once its term is over too.
    let refunded = app
        .paid_order("emp_refunded", "alipay", "resume-download-50")
        .await;
    let refund = app.refund(&order_no(&refunded), "199.00").await;
    app.wait_for_refund(
        &order_no(&refunded),
        refund["refund_id"].as_str().unwrap(),
        "succeeded",
    )
    .await;
    let list = app.entitlements("emp_refunded").await;
    assert_eq!(list["entitlements"][0]["status"], "revoked", "{list}");
    assert_eq!(
        code(app.access("emp_refunded", "r1", "download").await),
        "no_entitlement"
    );

    // A 90-day download plan, 91 days on: expired.
    app.paid_order("emp_renews", "wechatpay", "resume-download-50")
        .await;
    app.clock.advance(Duration::days(91));
    assert_eq!(
        code(app.access("emp_renews", "r1", "download").await),
        "entitlement_expired"
    );
    assert_eq!(
        code(app.access("emp_refunded", "r1", "download").await),
        "no_entitlement",
        "a revoked plan past its term was revoked, not expired"
    );
    // Renewed and used up within its term: its quota is what refuses, not the old plan.
    app.paid_order("emp_renews", "wechatpay", "resume-download-50")
        .await;
    for i in 0..50 {
        let (status, body) = app.access("emp_renews", &format!("r{i}"), "download").await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        code(app.access("emp_renews", "r50", "download").await),
        "no_entitlement"
    );
    // Its term over too: the latest plan ran out.
    app.clock.advance(Duration::days(91));
    assert_eq!(
        code(app.access("emp_renews", "r51", "download").await),
        "entitlement_expired"
    );
}

on_both_backends!(
    a_refusal_says_expired_only_for_a_plan_that_ran_out_on_sqlite,
    a_refusal_says_expired_only_for_a_plan_that_ran_out_on_postgres,
    a_refusal_says_expired_only_for_a_plan_that_ran_out
);

/// Two gateways on one PostgreSQL fire every job at the same slots: each slot runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_run_each_scheduled_slot_once() {
    let Some(a) = TestApp::spawn_on(Backend::Postgres).await else {
        return;
    };
    let b = a.spawn_sibling().await;
    assert_ne!(a.jobs.holder(), b.jobs.holder());

    a.clock.advance(Duration::minutes(3));
    b.clock.advance(Duration::minutes(3));

    let base = Job::ActiveQuery.slot_of(paygate::clock::Clock::now(a.clock.as_ref()));
    let mut runs = 0;
    for job in Job::ALL {
        for k in 0..3 {
            let slot = base + k * job.period().num_milliseconds();
            let (ra, rb) = tokio::join!(a.jobs.run_slot(job, slot), b.jobs.run_slot(job, slot));
            let (ra, rb) = (ra.expect("run on A"), rb.expect("run on B"));
            assert!(
                ra.is_some() != rb.is_some(),
                "{} slot {k}: exactly one instance runs it (A {ra:?}, B {rb:?})",
                job.name()
            );
            runs += 1;
            // The same slot again, on either: already ran.
            assert!(a.jobs.run_slot(job, slot).await.unwrap().is_none());
            assert!(b.jobs.run_slot(job, slot).await.unwrap().is_none());
        }
    }
    assert_eq!(
        a.count(
            "SELECT COUNT(*) FROM job_run WHERE finished_at IS NOT NULL AND holder <> $1",
            ""
        )
        .await,
        runs
    );
}

/// Certificate mode across a rotation: a notification signed with the old certificate that
/// arrives after WeChat rotated, and one signed with the new certificate (a serial the gateway
/// has never seen, so it fetches the certificates once), both settle.
#[tokio::test]
async fn certificate_rotation_mid_stream_settles_old_and_new_signatures() {
    use paygate::clock::Clock;
    let app = TestApp::spawn_certificate_mode().await;
    let first = app.sandbox.wechat_signing_serial();
    assert!(
        !first.starts_with("PUB_KEY_ID_"),
        "certificate mode signs with a serial"
    );
    let fetched = run(&app, Job::PlatformKeys).await;
    assert_eq!(fetched["keys"], 1, "{fetched}");

    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(
            app.create_order_on("emp_rotation", "wechatpay", "native", json!({}))
                .await,
        );
    }
    // Paid and notified before the rotation.
    app.pay(&order_no(&orders[0])).await;
    app.wait_for_status(&order_no(&orders[0]), "paid").await;

    // In flight across the rotation: signed with the old certificate, delivered after it.
    let tx = common::transaction_json(&orders[1], "4200000000202611290000000501", 19900);
    let old = app
        .sandbox
        .wechat_notification(&tx, app.clock.now().timestamp());

    let second = app
        .sandbox
        .rotate_wechat_platform_key()
        .expect("rotate the sandbox's platform key");
    assert_ne!(first, second);
    assert_eq!(
        app.sandbox.wechat_platform_serials(),
        vec![first, second.clone()]
    );
    // Past the refresh rate limit, still inside the old notification's 5-minute window.
    app.clock.advance(Duration::seconds(10));

    // Signed with the new certificate: unknown serial → one fetch → verified.
    let newest = order_no(&orders[2]);
    app.pay(&newest).await;
    let paid = app.wait_for_status(&newest, "paid").await;
    assert_eq!(paid["payment_record"]["source"], "notification");

    let res = app.post_wechat_callback(&old.headers, &old.body).await;
    assert_eq!(res.status(), 204, "the old certificate still verifies");
    for order in &orders {
        app.assert_settled_once(&order_no(order)).await;
    }
    assert_eq!(run(&app, Job::PlatformKeys).await["keys"], 2);
}

/// An unknown serial that no fetch explains is refused, and it cannot make the gateway fetch
/// again and again.
#[tokio::test]
async fn an_unknown_serial_in_certificate_mode_is_refused_after_one_fetch() {
    use paygate::clock::Clock;
    let app = TestApp::spawn_certificate_mode().await;
    let order = app
        .create_order_on("emp_rotation", "wechatpay", "native", json!({}))
        .await;
    let tx = common::transaction_json(&order, "4200000000202611290000000502", 19900);
    let fetches = || {
        app.sandbox
            .wechat_requests()
            .iter()
            .filter(|r| r.path == "/v3/certificates")
            .count()
    };
    // The order's creation fetched the certificates (no key was known yet); past the rate
    // limit, the first unknown serial fetches again, the next four do not.
    let before = fetches();
    assert_eq!(before, 1);
    app.clock.advance(Duration::seconds(10));
    for _ in 0..5 {
        let mut signed = app
            .sandbox
            .wechat_notification(&tx, app.clock.now().timestamp());
        for (name, value) in signed.headers.iter_mut() {
            if name.eq_ignore_ascii_case("Wechatpay-Serial") {
                *value = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into();
            }
        }
        let res = app
            .post_wechat_callback(&signed.headers, &signed.body)
            .await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        fetches() - before,
        1,
        "one fetch within the rate limit, not one per callback"
    );
    app.assert_unsettled(&order_no(&order)).await;
}

/// `serve` starts every job on its cron schedule (the schedules parse) and stops cleanly.
#[tokio::test]
async fn the_scheduler_starts_every_job_and_shuts_down() {
    let app = TestApp::spawn().await;
    let scheduled = app.jobs.clone().start().await.expect("scheduler starts");
    scheduled.shutdown().await.expect("scheduler stops");
}

/// `paygate sync-pending` and `paygate run-job` run one pass and print it as JSON.
#[test]
fn the_cli_runs_one_pass_of_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
            .args(args)
            .env("PAYGATE_DATABASE__URL", &db)
            .env_remove("PAYGATE_CONFIG")
            .output()
            .expect("run paygate")
    };
    let out = run(&["sync-pending"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pass: Value = serde_json::from_slice(&out.stdout).expect("JSON pass");
    assert_eq!(pass["checked"], 0);
    let out = run(&["run-job", "entitlement_expiry"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pass: Value = serde_json::from_slice(&out.stdout).expect("JSON pass");
    assert_eq!(pass["expired"], 0);
    let out = run(&["run-job", "no_such_job"]);
    assert!(!out.status.success());
}

/// The lease row itself: a live holder blocks the next slot, a dead one (expired lease) does
/// not, a superseded holder cannot free the lease it lost, and a slot never runs twice.
async fn the_lease_blocks_live_holders_and_fences_dead_ones(app: TestApp) {
    use paygate::store::jobs::{Outcome, finish, take};
    let db = &app.db;
    let a = take(db, "t", "A", 1, 0, 1_000)
        .await
        .unwrap()
        .expect("A takes slot 1");
    assert_eq!(a.fence, 1);
    assert_eq!(
        take(db, "t", "B", 2, 500, 1_000).await.unwrap(),
        None,
        "A still holds it"
    );
    // A died without finishing: once its lease has expired, B takes the next slot.
    let b = take(db, "t", "B", 2, 1_500, 1_000)
        .await
        .unwrap()
        .expect("B takes slot 2");
    assert_eq!(b.fence, 2);
    // A wakes up and finishes: its fence is stale, so B's lease stays.
    finish(db, "t", a, Outcome::Succeeded("{}"), 1_600)
        .await
        .unwrap();
    assert_eq!(
        take(db, "t", "C", 3, 1_700, 1_000).await.unwrap(),
        None,
        "B still holds it"
    );
    // Slot 2 ran; nobody runs it again, not even after B is done.
    finish(db, "t", b, Outcome::Succeeded("{}"), 1_800)
        .await
        .unwrap();
    assert_eq!(take(db, "t", "C", 2, 1_900, 1_000).await.unwrap(), None);
    let c = take(db, "t", "C", 3, 1_900, 1_000)
        .await
        .unwrap()
        .expect("C takes slot 3");
    assert_eq!(c.fence, 3);
}
on_both_backends!(
    the_lease_blocks_live_holders_and_fences_dead_ones_on_sqlite,
    the_lease_blocks_live_holders_and_fences_dead_ones_on_postgres,
    the_lease_blocks_live_holders_and_fences_dead_ones
);

/// A pass pages through its orders by (time, order_no): every due order once, none twice,
/// whatever the page size.
async fn passes_page_through_every_due_order_once(app: TestApp) {
    use paygate::store::orders::{Cursor, pending_created_before, pending_expired};
    let created = orders_on_both_providers(&app, 5, "emp_paging").await;
    app.clock.advance(Duration::minutes(16));
    let now = paygate::clock::to_millis(paygate::clock::Clock::now(app.clock.as_ref()));
    for page in [1, 2, 5, 10] {
        let mut seen = Vec::new();
        let mut cursor = Cursor::start();
        loop {
            let due = pending_expired(app.db.pool(), now, &cursor, page)
                .await
                .unwrap();
            let Some(last) = due.last() else { break };
            cursor = Cursor::after(last.key, last.order_no.as_str());
            seen.extend(due.into_iter().map(|d| d.order_no.to_string()));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "page {page}: an order twice");
        let mut expected = created.clone();
        expected.sort();
        assert_eq!(sorted, expected, "page {page}");
    }
    // Not due for the active query: they have expired.
    let due = pending_created_before(app.db.pool(), now, now, &Cursor::start(), 100)
        .await
        .unwrap();
    assert!(due.is_empty());
}
on_both_backends!(
    passes_page_through_every_due_order_once_on_sqlite,
    passes_page_through_every_due_order_once_on_postgres,
    passes_page_through_every_due_order_once
);
