//! Account deletion and retention (DESIGN.md §10, issue 11), with the real gateway and the real
//! sandbox: an erased employer id is in no row of any table and, on SQLite, in no byte of the
//! database or its WAL; the accounting is the same before and after; erasing is idempotent by
//! pseudonym; a payment that arrives after the erasure settles once, grants nothing and goes
//! back in full; retention deletes what is past its age and nothing younger. Every test also
//! checks the DEBUG log capture of this test binary for the ids it used.

mod common;

use std::time::Duration as StdDuration;

use chrono::Duration;
use common::{TestApp, captured_logs, race_all};
use paygate::jobs::Job;
use paygate_sandbox::Faults;
use serde_json::{Value, json};

fn no(order: &Value) -> String {
    order["order_no"].as_str().expect("order_no").to_owned()
}

async fn run(app: &TestApp, job: Job) -> Value {
    app.jobs.run_once(job).await.expect("job pass")
}

/// None of `ids` in any log line so far; `order_no` is there, so the capture holds this flow.
fn assert_not_logged(order_no: &str, ids: &[&str]) {
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap_or_else(|e| e.into_inner()))
        .into_owned();
    assert!(
        logs.contains(order_no),
        "the capture holds this flow's logs"
    );
    assert!(
        logs.contains("/v1/orders/{order_no}"),
        "request spans name their route template"
    );
    for id in ids {
        assert!(!logs.contains(id), "{id:?} logged");
    }
}

/// Finance's view: payments and refunds per provider and Beijing day, and every order's
/// number, amount and refunded amount, and every provider transaction id.
async fn accounting(app: &TestApp) -> Vec<String> {
    let mut out = Vec::new();
    let day = "((x + 28800000) / 86400000)";
    for sql in [
        format!(
            "SELECT provider, CAST({} AS BIGINT), CAST(SUM(amount_fen) AS BIGINT), COUNT(*) FROM payment
             GROUP BY provider, {} ORDER BY 1, 2",
            day.replace('x', "paid_at"),
            day.replace('x', "paid_at")
        ),
        format!(
            "SELECT provider, CAST({} AS BIGINT), CAST(SUM(amount_fen) AS BIGINT), COUNT(*) FROM refund
             WHERE status = 'succeeded' GROUP BY provider, {} ORDER BY 1, 2",
            day.replace('x', "succeeded_at"),
            day.replace('x', "succeeded_at")
        ),
    ] {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(app.db.pool())
            .await
            .unwrap();
        out.extend(rows.iter().map(|r| format!("{r:?}")));
    }
    let orders: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT order_no, amount_fen, refunded_fen FROM payment_order ORDER BY order_no",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    out.extend(orders.iter().map(|r| format!("{r:?}")));
    let txns: Vec<(String, String)> =
        sqlx::query_as("SELECT order_no, provider_txn_id FROM payment ORDER BY order_no")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    out.extend(txns.iter().map(|r| format!("{r:?}")));
    out
}

/// How often `needle` occurs in the SQLite database file and its WAL, byte for byte.
fn occurrences_in_sqlite_files(app: &TestApp, needle: &str) -> usize {
    let path = app
        .database_url()
        .strip_prefix("sqlite://")
        .expect("a SQLite URL")
        .to_owned();
    let count = |bytes: &[u8]| {
        bytes
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    };
    let mut n = count(&std::fs::read(&path).expect("database file"));
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        n += count(&wal);
    }
    n
}

async fn erase(app: &TestApp, employer: &str, key: &str) -> Value {
    let (status, requested) = app.request_erasure(employer, key).await;
    assert_eq!(status, 202, "{requested}");
    assert_eq!(requested["status"], "pending");
    assert!(requested.get("pseudonym").is_none(), "{requested}");
    let pass = run(app, Job::Erasure).await;
    assert_eq!(pass["failed"], 0, "{pass}");
    let done = app.erasure(requested["erasure_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    done
}

fn events_of_type(events: &Value, kind: &str) -> Vec<Value> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

/// An employer with a paid order in use, a fully refunded one and a pending one, and events in
/// the feed, is erased: the id is in no row of any table (nor, on SQLite, in any byte of the
/// files), finance's totals are unchanged, the pending order is closed at the sandbox, and the
/// id answers as an unknown employer.
async fn erasure_leaves_the_id_nowhere_and_the_accounting_as_it_was(app: TestApp) {
    captured_logs();
    const EMPLOYER: &str = "emp_erase_Q7x9k2";
    const RESUME: &str = "resume-erase-77aa";
    let paid = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let (status, _) = app.access(EMPLOYER, RESUME, "download").await;
    assert_eq!(status, 200);
    let refunded = app.paid_order(EMPLOYER, "alipay", "resume-view-30d").await;
    let refund = app.refund(&no(&refunded), "99.00").await;
    app.wait_for_refund(
        &no(&refunded),
        refund["refund_id"].as_str().unwrap(),
        "succeeded",
    )
    .await;
    app.wait_for_status(&no(&refunded), "refunded").await;
    let pending = app
        .create_order_on(EMPLOYER, "wechatpay", "native", json!({}))
        .await;
    let keeper = app
        .paid_order("emp_keep_1", "wechatpay", "resume-download-50")
        .await;
    assert!(app.dump_all_tables().await.contains(EMPLOYER));
    if app.database_url().starts_with("sqlite") {
        assert!(
            occurrences_in_sqlite_files(&app, EMPLOYER) > 0,
            "the byte search can find it"
        );
    }
    let before = accounting(&app).await;

    let done = erase(&app, EMPLOYER, "erase-all-1").await;
    let pseudonym = done["pseudonym"].as_str().unwrap();
    assert!(
        pseudonym.starts_with("erased:") && pseudonym.len() == 63,
        "{pseudonym}"
    );

    let dump = app.dump_all_tables().await;
    assert!(
        !dump.contains(EMPLOYER),
        "the id is left in:\n{}",
        dump.lines()
            .filter(|l| l.contains(EMPLOYER))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(dump.contains(pseudonym));
    assert!(dump.contains("emp_keep_1"), "other employers stay");
    if app.database_url().starts_with("sqlite") {
        assert_eq!(occurrences_in_sqlite_files(&app, EMPLOYER), 0);
    }
    assert_eq!(
        accounting(&app).await,
        before,
        "finance's totals are unchanged"
    );

    // The pending order: closed here and at the provider (the buyer can no longer pay).
    assert_eq!(app.order(&no(&pending)).await["status"], "closed");
    let res = app
        .http
        .post(format!("{}/sandbox/pay/{}", app.url, no(&pending)))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(app.order(&no(&paid)).await["status"], "paid");

    // As for an employer never seen.
    let unknown = "emp_never_seen_1";
    assert_eq!(
        app.entitlements(EMPLOYER).await["entitlements"],
        app.entitlements(unknown).await["entitlements"]
    );
    assert_eq!(
        app.access(EMPLOYER, RESUME, "download").await,
        app.access(unknown, RESUME, "download").await
    );
    let (status, _) = app.access(pseudonym, RESUME, "download").await;
    assert_eq!(status, 403, "nothing is usable under the pseudonym either");
    assert_eq!(
        app.access("emp_keep_1", "resume-keep-1", "download")
            .await
            .0,
        200
    );

    let events = app.events().await;
    let revoked: Vec<Value> = events_of_type(&events, "entitlement.revoked")
        .into_iter()
        .filter(|e| e["data"]["reason"] == "account_deleted")
        .collect();
    assert_eq!(
        revoked.len(),
        1,
        "the paid order's entitlement: {revoked:?}"
    );
    assert_eq!(revoked[0]["order_no"], no(&paid).as_str());
    assert_eq!(revoked[0]["data"]["employer_id"], pseudonym);
    let erased = events_of_type(&events, "employer.erased");
    assert_eq!(erased.len(), 1);
    assert_eq!(
        erased[0]["data"],
        json!({"pseudonym": pseudonym, "erasure_id": done["erasure_id"], "actor": "api_key:privacy"})
    );
    let closed = app.events_of(&no(&pending), "order.closed").await;
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["data"]["reason"], "account_deleted");
    assert_not_logged(
        &no(&keeper),
        &[EMPLOYER, RESUME, "emp_keep_1", "resume-keep-1"],
    );
}

on_both_backends!(
    erasure_leaves_the_id_nowhere_on_sqlite,
    erasure_leaves_the_id_nowhere_on_postgres,
    erasure_leaves_the_id_nowhere_and_the_accounting_as_it_was
);

/// Everything a client sent that can hold the id (issue 20): the `Idempotency-Key`s of the
/// order, the refund and the erasure request, the refund's reason, a résumé id, and a key stored
/// as text before keys were hashed. Before the erasure no key text is stored at all and replays
/// answer as ever; after it, the id is in no cell of any table and, on SQLite, in no byte of the
/// files.
async fn erasure_leaves_the_id_in_no_key_reason_or_resume_id(app: TestApp) {
    captured_logs();
    const EMPLOYER: &str = "emp_keyed_R4d8w";
    let order_key = format!("checkout-{EMPLOYER}-1");
    let body = json!({"employer_id": EMPLOYER, "plan": "resume-download-50",
        "provider": "wechatpay", "channel": "native"})
    .to_string();
    let res = app
        .post_order(common::CHECKOUT_KEY, &order_key, &body)
        .await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    // The same key and body: the same answer; another body: refused.
    let replay = app
        .post_order(common::CHECKOUT_KEY, &order_key, &body)
        .await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.json::<Value>().await.unwrap(), order);
    let other = body.replace("resume-download-50", "resume-view-30d");
    let reused = app
        .post_order(common::CHECKOUT_KEY, &order_key, &other)
        .await;
    assert_eq!(reused.status(), 422);
    assert_eq!(
        reused.json::<Value>().await.unwrap()["error"]["code"],
        "idempotency_key_reused"
    );
    app.pay(&no(&order)).await;
    app.wait_for_status(&no(&order), "paid").await;
    let resume = format!("cv-seen-by-{EMPLOYER}");
    assert_eq!(app.access(EMPLOYER, &resume, "download").await.0, 200);

    // A reason naming the employer never gets in; a neutral one does, and goes with the id.
    let refund_key = format!("refund-{EMPLOYER}-1");
    let (status, refused) = app
        .post_refund(
            common::FINANCE_KEY,
            &refund_key,
            &no(&order),
            json!({"amount": "1.00", "reason": format!("asked by {EMPLOYER}")}),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_reason");
    let refund_body = json!({"amount": "1.00", "reason": "duplicate purchase"});
    let (status, refund) = app
        .post_refund(
            common::FINANCE_KEY,
            &refund_key,
            &no(&order),
            refund_body.clone(),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    let (status, again) = app
        .post_refund(common::FINANCE_KEY, &refund_key, &no(&order), refund_body)
        .await;
    assert_eq!((status, &again), (201, &refund));
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();
    app.wait_for_refund(&no(&order), &refund_id, "succeeded")
        .await;

    // A row as an older paygate wrote it: the key as text, and a reason naming the employer.
    let legacy_key = format!("legacy-{EMPLOYER}-7");
    sqlx::query(
        "INSERT INTO idempotency (api_key_id, idempotency_key, request_hash, response_status,
             response_body, created_at)
         VALUES ('checkout', $1, 'h', 201, '{}', 0)",
    )
    .bind(&legacy_key)
    .execute(app.db.pool())
    .await
    .unwrap();

    let dump = app.dump_all_tables().await;
    for text in [&order_key, &refund_key] {
        assert!(
            !dump.contains(text.as_str()),
            "the key {text} is stored as text"
        );
    }
    assert!(dump.contains(&legacy_key) && dump.contains(&resume));

    let done = erase(&app, EMPLOYER, &format!("erase-{EMPLOYER}")).await;
    let dump = app.dump_all_tables().await;
    assert!(
        !dump.contains(EMPLOYER),
        "the id is left in:\n{}",
        dump.lines()
            .filter(|l| l.contains(EMPLOYER))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if app.database_url().starts_with("sqlite") {
        assert_eq!(occurrences_in_sqlite_files(&app, EMPLOYER), 0);
    }
    assert!(dump.contains(done["pseudonym"].as_str().unwrap()));
    let after = app.refund_of(&no(&order), &refund_id).await;
    assert_eq!(after["reason"], Value::Null, "{after}");
    assert_eq!(after["amount"], "1.00");
    assert_eq!(after["status"], "succeeded");
    // The refund's key, hashed all along, still finds its (rewritten) row: never a second refund.
    let (status, _) = app
        .post_refund(
            common::FINANCE_KEY,
            &refund_key,
            &no(&order),
            json!({"amount": "1.00", "reason": "duplicate purchase"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_not_logged(&no(&order), &[EMPLOYER, &order_key, &refund_key, &resume]);
}

on_both_backends!(
    erasure_leaves_no_key_reason_or_resume_id_on_sqlite,
    erasure_leaves_no_key_reason_or_resume_id_on_postgres,
    erasure_leaves_the_id_in_no_key_reason_or_resume_id
);

/// A key stored as text before keys were hashed (the migration leaves old rows so) still
/// answers its replay, and is then stored hashed: no second order for a retry across the
/// upgrade.
async fn a_key_stored_as_text_before_the_upgrade_still_replays(app: TestApp) {
    let body = json!({"employer_id": "emp_legacy_1", "plan": "resume-download-50",
        "provider": "wechatpay", "channel": "native"})
    .to_string();
    let res = app
        .post_order(common::CHECKOUT_KEY, "legacy-replay-1", &body)
        .await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    // Turn the row back into what an older paygate wrote; the instance then looks for such
    // rows again, as one started on that database does.
    sqlx::query(
        "UPDATE idempotency SET idempotency_key = 'legacy-replay-1', key_form = 'text'
         WHERE api_key_id = 'checkout'",
    )
    .execute(app.db.pool())
    .await
    .unwrap();
    app.state.idempotency_keys.refresh(&app.db).await.unwrap();
    let replay = app
        .post_order(common::CHECKOUT_KEY, "legacy-replay-1", &body)
        .await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.json::<Value>().await.unwrap(), order);
    let forms: Vec<(String, String)> =
        sqlx::query_as("SELECT idempotency_key, key_form FROM idempotency")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    assert_eq!(forms.len(), 1, "{forms:?}");
    assert_eq!(forms[0].1, "keyed", "{forms:?}");
    assert_eq!(forms[0].0.len(), 64);
    let orders = app
        .count(
            "SELECT COUNT(*) FROM payment_order WHERE employer_id = $1",
            "emp_legacy_1",
        )
        .await;
    assert_eq!(orders, 1);
}

on_both_backends!(
    a_key_stored_as_text_still_replays_on_sqlite,
    a_key_stored_as_text_still_replays_on_postgres,
    a_key_stored_as_text_before_the_upgrade_still_replays
);

/// Three requests carried out by three job passes at once, then a fourth later: one
/// pseudonym, one `employer.erased`, one revocation.
async fn erasing_twice_or_concurrently_agrees(app: TestApp) {
    captured_logs();
    const EMPLOYER: &str = "emp_erase_twice_3c";
    let paid = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let mut ids = Vec::new();
    for key in ["twice-1", "twice-2", "twice-3"] {
        let (status, body) = app.request_erasure(EMPLOYER, key).await;
        assert_eq!(status, 202);
        ids.push(body["erasure_id"].as_str().unwrap().to_owned());
    }
    // The same key again is a replay, not a new request.
    let (status, replay) = app.request_erasure(EMPLOYER, "twice-1").await;
    assert_eq!(status, 202);
    assert_eq!(replay["erasure_id"], ids[0].as_str());

    let passes = race_all((0..3).map(|_| {
        let jobs = app.jobs.clone();
        async move { jobs.run_once(Job::Erasure).await.expect("pass") }
    }))
    .await;
    assert!(passes.iter().all(|p| p["failed"] == 0), "{passes:?}");
    let mut pseudonyms = Vec::new();
    for id in &ids {
        let e = app.erasure(id).await;
        assert_eq!(e["status"], "completed", "{e}");
        pseudonyms.push(e["pseudonym"].clone());
    }
    let again = erase(&app, EMPLOYER, "twice-later").await;
    pseudonyms.push(again["pseudonym"].clone());
    assert!(
        pseudonyms.iter().all(|p| *p == pseudonyms[0]),
        "{pseudonyms:?}"
    );

    let events = app.events().await;
    assert_eq!(events_of_type(&events, "employer.erased").len(), 1);
    assert_eq!(
        app.events_of(&no(&paid), "entitlement.revoked").await.len(),
        1
    );
    assert!(!app.dump_all_tables().await.contains(EMPLOYER));
    assert_not_logged(&no(&paid), &[EMPLOYER]);
}

on_both_backends!(
    erasing_twice_or_concurrently_agrees_on_sqlite,
    erasing_twice_or_concurrently_agrees_on_postgres,
    erasing_twice_or_concurrently_agrees
);

/// The provider cannot be reached while the employer is erased, so its pending order is
/// closed here only; the buyer then pays it at the provider. The notification settles it once,
/// under the pseudonym, grants nothing, and the payment goes back in full (`account_deleted`).
async fn a_payment_after_the_erasure_settles_once_grants_nothing_and_goes_back(app: TestApp) {
    captured_logs();
    const EMPLOYER: &str = "emp_erase_late_9d";
    let order = app
        .create_order_on(EMPLOYER, "wechatpay", "native", json!({}))
        .await;
    let order_no = no(&order);
    app.sandbox.set_faults(Faults {
        api_error_rate: 1.0,
        ..Faults::default()
    });
    let done = erase(&app, EMPLOYER, "erase-late-1").await;
    let pseudonym = done["pseudonym"].as_str().unwrap().to_owned();
    assert_eq!(app.order(&order_no).await["status"], "closed");
    app.sandbox.set_faults(Faults::default());

    app.pay(&order_no).await;
    let refunded = app.wait_for_status(&order_no, "refunded").await;
    assert_eq!(refunded["late_payment"], true, "{refunded}");
    let refunds = refunded["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{refunded}");
    assert_eq!(refunds[0]["amount"], order["amount"]);
    assert_eq!(refunds[0]["reason"], "account_deleted");
    assert_eq!(refunds[0]["status"], "succeeded");

    for (sql, n) in [
        ("SELECT COUNT(*) FROM payment WHERE order_no = $1", 1),
        ("SELECT COUNT(*) FROM entitlement WHERE order_no = $1", 0),
        (
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'order.paid'",
            1,
        ),
        (
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'entitlement.granted'",
            0,
        ),
        ("SELECT COUNT(*) FROM refund WHERE order_no = $1", 1),
    ] {
        assert_eq!(app.count(sql, &order_no).await, n, "{sql}");
    }
    let paid = app.events_of(&order_no, "order.paid").await;
    assert_eq!(paid[0]["data"]["employer_id"], pseudonym.as_str());
    assert_eq!(
        app.entitlements(&pseudonym).await["entitlements"],
        json!([])
    );

    // The notification again, and the job's sweep: nothing more.
    let resent = app
        .http
        .post(format!("{}/sandbox/notifications/resend", app.url))
        .send()
        .await
        .unwrap();
    assert!(resent.status().is_success(), "{}", resent.status());
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    let pass = run(&app, Job::Erasure).await;
    assert_eq!(pass["refunds_started"], 0, "{pass}");
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment WHERE order_no = $1",
            &order_no
        )
        .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM refund WHERE order_no = $1", &order_no)
            .await,
        1
    );
    assert!(!app.dump_all_tables().await.contains(EMPLOYER));
    assert_not_logged(&order_no, &[EMPLOYER]);
}

on_both_backends!(
    a_late_payment_after_erasure_is_refunded_on_sqlite,
    a_late_payment_after_erasure_is_refunded_on_postgres,
    a_payment_after_the_erasure_settles_once_grants_nothing_and_goes_back
);

#[tokio::test]
async fn due_by_is_two_working_days_after_the_request_day() {
    let app = TestApp::spawn().await;
    let (status, body) = app.request_erasure("emp_due_1", "due-1").await;
    assert_eq!(status, 202);
    let requested = chrono::DateTime::parse_from_rfc3339(body["requested_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let expected = paygate::privacy::workdays::due_by(requested, &[]);
    assert_eq!(
        body["due_by"].as_str().unwrap(),
        paygate::clock::rfc3339_beijing(expected)
    );
    assert!(
        body["due_by"]
            .as_str()
            .unwrap()
            .ends_with("T23:59:59+08:00")
    );
    // Carried out late (nobody ran the job): done all the same, and nothing is left overdue.
    app.clock.advance(Duration::days(10));
    let pass = app.jobs.run_once(Job::Erasure).await.unwrap();
    assert_eq!(pass["completed"], 1, "carried out, late: {pass}");
    assert_eq!(pass["overdue"], 0);
}

/// A request nobody carried out in time shows on `/metrics` and in the pass.
#[tokio::test]
async fn an_overdue_request_is_reported() {
    let app = TestApp::spawn().await;
    let (status, _) = app.request_erasure("emp_overdue_1", "overdue-1").await;
    assert_eq!(status, 202);
    app.clock.advance(Duration::days(10));
    // The key is gone: the job can carry nothing out, and says how late it is.
    let broken = paygate::privacy::ErasureDeps {
        key: None,
        ..app.state.erasures()
    };
    let pass = paygate::privacy::run_due(&broken).await.unwrap();
    assert_eq!((pass.failed, pass.overdue), (1, 1), "{pass:?}");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "paygate_erasures_overdue 1"),
        "{metrics}"
    );
}

/// Retention: idempotency answers older than 7 days go (the key is free again), delivered
/// events older than 90 days go as a prefix of the feed (which says where it starts now), and
/// access audit rows older than 180 days lose the résumé id but stay.
async fn retention_deletes_what_is_past_its_age_and_nothing_younger(app: TestApp) {
    let body = |employer: &str| {
        json!({"employer_id": employer, "plan": "resume-download-50",
            "provider": "wechatpay", "channel": "native"})
        .to_string()
    };
    let res = app
        .post_order(common::CHECKOUT_KEY, "retention-old", &body("emp_ret_1"))
        .await;
    assert_eq!(res.status(), 201);
    let old = app
        .paid_order("emp_ret_2", "wechatpay", "resume-download-50")
        .await;
    assert_eq!(
        app.access("emp_ret_2", "resume-ret-1", "download").await.0,
        200
    );
    let old_events = app.events().await["events"].as_array().unwrap().len();
    assert!(old_events >= 2);

    app.clock.advance(Duration::days(8));
    let res = app
        .post_order(common::CHECKOUT_KEY, "retention-young", &body("emp_ret_1"))
        .await;
    assert_eq!(res.status(), 201);
    // Reused with another body while its answer is kept: refused.
    let res = app
        .post_order(common::CHECKOUT_KEY, "retention-old", &body("emp_ret_3"))
        .await;
    assert_eq!(res.status(), 422);

    let dry = paygate::privacy::retention::run(&app.state.retention(), true)
        .await
        .unwrap();
    // retention-old, and the key paid_order used.
    assert_eq!(dry.idempotency_deleted, 2, "{dry:?}");
    // Stored as its keyed hash, never as text.
    let idem = "SELECT COUNT(*) FROM idempotency WHERE idempotency_key = $1";
    let stored = app.state.idempotency_keys.digest("retention-old").value;
    assert_eq!(app.count(idem, "retention-old").await, 0);
    assert_eq!(
        app.count(idem, &stored).await,
        1,
        "a dry run changes nothing"
    );
    let pass = run(&app, Job::Retention).await;
    assert_eq!(pass["idempotency_deleted"], 2, "{pass}");
    assert_eq!(pass["events_deleted"], 0, "{pass}");
    assert_eq!(app.count(idem, &stored).await, 0);
    let young = app.state.idempotency_keys.digest("retention-young").value;
    assert_eq!(app.count(idem, &young).await, 1);
    let res = app
        .post_order(common::CHECKOUT_KEY, "retention-old", &body("emp_ret_3"))
        .await;
    assert_eq!(res.status(), 201, "the key is free again");

    app.clock.advance(Duration::days(83)); // 91 days after the first events
    let young = app
        .paid_order("emp_ret_4", "wechatpay", "resume-download-50")
        .await;
    let pass = run(&app, Job::Retention).await;
    assert_eq!(pass["events_deleted"], old_events, "{pass}");
    let starts_after = pass["events_starts_after"].as_i64().unwrap();
    let feed = app.events().await;
    assert_eq!(feed["starts_after"], starts_after);
    let ids: Vec<i64> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids.first(),
        Some(&(starts_after + 1)),
        "the feed starts right after"
    );
    assert!(app.events_of(&no(&old), "order.paid").await.is_empty());
    assert_eq!(app.events_of(&no(&young), "order.paid").await.len(), 1);

    let audit = "SELECT COUNT(*) FROM entitlement_audit WHERE resume_id = $1";
    assert_eq!(app.count(audit, "resume-ret-1").await, 1);
    app.clock.advance(Duration::days(90)); // 181 days after the access
    run(&app, Job::Retention).await;
    assert_eq!(app.count(audit, "resume-ret-1").await, 0);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM entitlement_audit WHERE kind = $1",
            "consumed"
        )
        .await,
        1,
        "the row (and so the count) stays"
    );
}

on_both_backends!(
    retention_on_sqlite,
    retention_on_postgres,
    retention_deletes_what_is_past_its_age_and_nothing_younger
);

/// With a push target, an event is deleted only once it was delivered: old but undelivered
/// events stay, and so the feed's start does not move past them.
#[tokio::test]
async fn retention_keeps_undelivered_events_when_they_are_pushed() {
    // Nothing listens there and no push pass runs: every event stays undelivered.
    let app = TestApp::spawn_with_events("http://127.0.0.1:9/hooks").await;
    let order = app
        .paid_order("emp_ret_push", "wechatpay", "resume-download-50")
        .await;
    let events = app.events().await["events"].as_array().unwrap().len();
    assert!(events >= 2);
    app.clock.advance(Duration::days(91));
    let pass = run(&app, Job::Retention).await;
    assert_eq!(pass["events_deleted"], 0, "{pass}");
    assert_eq!(pass["events_starts_after"], 0, "{pass}");
    assert_eq!(app.events_of(&no(&order), "order.paid").await.len(), 1);
}

/// A stored erasure request whose time does not decode (beyond any calendar) is a fault, never
/// shown as another time (it was `1970-01-01`). (An unknown status the schema's CHECK refuses.)
async fn a_stored_request_that_does_not_decode_is_an_error(app: TestApp) {
    for (i, corrupt) in [
        "UPDATE privacy_erasure SET requested_at = 9223372036854775807 WHERE erasure_id = $1",
        "UPDATE privacy_erasure SET due_by = -9223372036854775807 WHERE erasure_id = $1",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = app
            .request_erasure(&format!("emp_undecodable_{i}"), &format!("undecodable-{i}"))
            .await;
        assert_eq!(status, 202, "{body}");
        let id = body["erasure_id"].as_str().unwrap();
        assert_eq!(app.erasure(id).await["status"], "pending");
        sqlx::query(corrupt)
            .bind(id)
            .execute(app.db.pool())
            .await
            .unwrap();
        let res = app
            .http
            .get(format!("{}/v1/privacy/erasures/{id}", app.url))
            .bearer_auth(common::PRIVACY_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 500, "{corrupt}");
    }
}
on_both_backends!(
    a_stored_request_that_does_not_decode_is_an_error_on_sqlite,
    a_stored_request_that_does_not_decode_is_an_error_on_postgres,
    a_stored_request_that_does_not_decode_is_an_error
);
