//! Daily reconciliation against the sandbox's bills (DESIGN.md §10, issue 10): every
//! discrepancy found once in its class, missed payments healed through the one settlement
//! path, bad bills refused whole, Beijing days, re-runs that replace.

mod common;

use common::{FINANCE_KEY, TestApp};
use paygate::clock::Clock;
use serde_json::{Value, json};

fn no(order: &Value) -> String {
    order["order_no"].as_str().unwrap().to_owned()
}

/// The Beijing date of the app's clock now.
fn today(app: &TestApp) -> String {
    app.clock
        .now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive()
        .to_string()
}

async fn reconcile(app: &TestApp, provider: &str, date: &str) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}/v1/reconciliations", app.url))
        .bearer_auth(FINANCE_KEY)
        .json(&json!({"provider": provider, "date": date}))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn csv(app: &TestApp, id: &str) -> String {
    let res = app
        .http
        .get(format!(
            "{}/v1/reconciliations/{id}/discrepancies.csv",
            app.url
        ))
        .bearer_auth(FINANCE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "a BOM for Excel");
    String::from_utf8(bytes[3..].to_vec()).unwrap()
}

/// (class, kind, order_no) of every CSV row.
fn rows(csv: &str) -> Vec<(String, String, String)> {
    csv.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect()
}

fn count(summary: &Value, kind: &str, class: &str) -> u64 {
    summary[kind][class]["count"].as_u64().unwrap_or(0)
}

/// A day with payments, a refund and every bill fault: each discrepancy once, in its class,
/// and nothing else; the unknown order is reported, never created.
async fn every_discrepancy_is_found_once_in_its_class(app: TestApp) {
    let mut orders = Vec::new();
    for _ in 0..5 {
        orders.push(
            app.paid_order("emp_recon", "wechatpay", "resume-download-50")
                .await,
        );
    }
    let [ok, missing, altered, revoked, refunded] = [0, 1, 2, 3, 4].map(|i| no(&orders[i]));
    let refund = app.refund(&refunded, "50.00").await;
    app.sandbox.complete_wechat_refunds();
    app.wait_for_refund(
        &refunded,
        refund["refund_id"].as_str().unwrap(),
        "succeeded",
    )
    .await;
    app.set_faults(json!({
        "bill_missing_row": missing,
        "bill_altered_amount": altered,
        "bill_altered_status": revoked,
        "bill_extra_row": true,
    }))
    .await;
    let (status, run) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "completed");
    let summary = &run["summary"];
    assert_eq!(count(summary, "payments", "matched"), 2, "{summary}");
    assert_eq!(count(summary, "payments", "missing_remote"), 1);
    // Named by the filter of the bill's transaction ids, without staging the bill's payments.
    assert_eq!(summary["timings_ms"]["exact_missing_remote_check"], false);
    assert_eq!(count(summary, "payments", "amount_mismatch"), 1);
    assert_eq!(count(summary, "payments", "status_mismatch"), 1);
    assert_eq!(count(summary, "payments", "missing_local"), 1);
    assert_eq!(count(summary, "refunds", "matched"), 1);
    assert_eq!(summary["healed"], 0);
    let mut found = rows(&csv(&app, run["reconciliation_id"].as_str().unwrap()).await);
    found.sort();
    let foreign = found
        .iter()
        .find(|(class, _, _)| class == "missing_local")
        .map(|(_, _, order)| order.clone())
        .expect("the extra row");
    let mut expected = vec![
        (
            "amount_mismatch".to_owned(),
            "payment".to_owned(),
            altered.clone(),
        ),
        (
            "missing_local".to_owned(),
            "payment".to_owned(),
            foreign.clone(),
        ),
        (
            "missing_remote".to_owned(),
            "payment".to_owned(),
            missing.clone(),
        ),
        (
            "status_mismatch".to_owned(),
            "payment".to_owned(),
            revoked.clone(),
        ),
    ];
    expected.sort();
    assert_eq!(found, expected);
    assert!(!found.iter().any(|(_, _, o)| *o == ok));
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM payment_order WHERE order_no = $1",
            &foreign
        )
        .await,
        0
    );
    let completed: Vec<Value> = app.events().await["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "reconciliation.completed")
        .cloned()
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(
        completed[0]["data"]["reconciliation_id"],
        run["reconciliation_id"]
    );
}
on_both_backends!(
    every_discrepancy_is_found_once_in_its_class_on_sqlite,
    every_discrepancy_is_found_once_in_its_class_on_postgres,
    every_discrepancy_is_found_once_in_its_class
);

/// The Alipay bill (a ZIP of GBK CSVs) the same way: missing, extra, altered amount, and a
/// refund made at the portal that paygate already learned.
async fn alipay_discrepancies_are_found(app: TestApp) {
    let mut orders = Vec::new();
    for _ in 0..4 {
        orders.push(no(&app
            .paid_order("emp_recon_al", "alipay", "resume-download-50")
            .await));
    }
    app.refund(&orders[3], "20.00").await;
    app.set_faults(json!({
        "bill_missing_row": orders[1],
        "bill_altered_amount": orders[2],
        "bill_extra_row": true,
    }))
    .await;
    let (status, run) = reconcile(&app, "alipay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    let summary = &run["summary"];
    assert_eq!(count(summary, "payments", "matched"), 2, "{summary}");
    assert_eq!(count(summary, "payments", "missing_remote"), 1);
    assert_eq!(count(summary, "payments", "amount_mismatch"), 1);
    assert_eq!(count(summary, "payments", "missing_local"), 1);
    assert_eq!(count(summary, "refunds", "matched"), 1, "{summary}");
    let found = rows(&csv(&app, run["reconciliation_id"].as_str().unwrap()).await);
    assert_eq!(found.len(), 3, "{found:?}");
}
on_both_backends!(
    alipay_discrepancies_are_found_on_sqlite,
    alipay_discrepancies_are_found_on_postgres,
    alipay_discrepancies_are_found
);

/// Every notification dropped and the order closed here (as the expiry job does when the
/// provider cannot be reached for the close): the bill has the payment. Healed: paid, granted
/// once, `payment.late`; the notification arriving afterwards changes nothing.
async fn a_payment_closed_here_is_healed_by_the_bill(app: TestApp) {
    let order = app
        .create_order("emp_recon_heal", "resume-download-50")
        .await;
    let order_no = no(&order);
    let parsed = paygate::domain::OrderNo::parse(&order_no).unwrap();
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    assert!(
        paygate::lifecycle::close_locally(
            &app.db,
            &parsed,
            paygate::lifecycle::CloseReason::Expired,
            app.clock.now()
        )
        .await
        .unwrap()
    );
    app.pay(&order_no).await;
    assert_eq!(app.order(&order_no).await["status"], "closed");

    let (status, run) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["summary"]["healed"], 1, "{run}");
    assert_eq!(count(&run["summary"], "payments", "missing_local"), 1);
    let order = app.order(&order_no).await;
    assert_eq!(order["status"], "paid");
    assert_eq!(order["late_payment"], true);
    assert_eq!(order["payment_record"]["source"], "reconciliation");
    app.assert_settled_once(&order_no).await;
    assert_eq!(app.events_of(&order_no, "payment.late").await.len(), 1);
    let line = csv(&app, run["reconciliation_id"].as_str().unwrap()).await;
    assert!(line.contains(",yes,"), "marked healed: {line}");
    // The CSV's exact bytes (after the BOM): its header, and the healed row with every column.
    let txn = order["payment_record"]["provider_transaction_id"]
        .as_str()
        .unwrap();
    assert_eq!(
        line,
        format!(
            "class,kind,order_no,provider_transaction_id,refund_no,bill_amount,local_amount,\
             bill_status,local_status,healed,note,duplicate_bill_amount\r\n\
             missing_local,payment,{order_no},{txn},,199.00,,SUCCESS,closed,yes,\
             settled late (the order had been closed),\r\n"
        )
    );

    // The lost notification arrives at last: nothing changes.
    app.set_faults(json!({})).await;
    app.http
        .post(format!("{}/sandbox/notifications/resend", app.url))
        .send()
        .await
        .unwrap();
    common::wait_until("the notification acknowledged", || {
        app.sandbox.notifications().iter().any(|n| n.acknowledged)
    })
    .await;
    app.assert_settled_once(&order_no).await;
    assert_eq!(
        app.events_of(&order_no, "entitlement.granted").await.len(),
        1
    );
    // A re-run finds it matched now, and replaces the first run.
    let (_, again) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(
        count(&again["summary"], "payments", "matched"),
        1,
        "{again}"
    );
    assert_eq!(again["summary"]["healed"], 0);
    let old = app
        .http
        .get(format!(
            "{}/v1/reconciliations/{}",
            app.url,
            run["reconciliation_id"].as_str().unwrap()
        ))
        .bearer_auth(FINANCE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 404, "the re-run replaced it");
    let list: Value = app
        .http
        .get(format!("{}/v1/reconciliations?provider=wechatpay", app.url))
        .bearer_auth(FINANCE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["reconciliations"].as_array().unwrap().len(),
        1,
        "{list}"
    );
}
on_both_backends!(
    a_payment_closed_here_is_healed_by_the_bill_on_sqlite,
    a_payment_closed_here_is_healed_by_the_bill_on_postgres,
    a_payment_closed_here_is_healed_by_the_bill
);

/// A bill that fails its own checks is refused whole: nothing is healed or stored.
async fn assert_bill_refused(provider: &str, fault: Value) {
    let app = TestApp::spawn().await;
    let order = app
        .create_order_on(
            "emp_recon_bad",
            provider,
            if provider == "alipay" { "qr" } else { "native" },
            json!({}),
        )
        .await;
    let order_no = no(&order);
    // One PUT: every fault not named goes back to its default, and the dropped notification
    // must stay dropped.
    let mut faults = fault.clone();
    faults["drop_notifications"] = json!(1.0);
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    app.pay(&order_no).await;
    app.set_faults(faults).await;
    let (status, body) = reconcile(&app, provider, &today(&app)).await;
    assert_eq!(status, 422, "{fault}: {body}");
    assert_eq!(body["error"]["code"], "bill_invalid");
    assert_eq!(
        app.order(&order_no).await["status"],
        "pending",
        "nothing healed"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM reconciliation_run WHERE provider = $1",
            provider
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM reconciliation_bill_row WHERE run_key <> $1",
            ""
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM reconciliation_work WHERE reconciliation_id <> $1",
            ""
        )
        .await,
        0,
        "a failed run leaves no work behind"
    );
}

#[tokio::test]
async fn a_wechat_bill_with_a_wrong_hash_is_refused() {
    assert_bill_refused("wechatpay", json!({"bill_wrong_hash": true})).await;
}

#[tokio::test]
async fn a_truncated_wechat_bill_is_refused() {
    assert_bill_refused("wechatpay", json!({"bill_truncated": true})).await;
}

#[tokio::test]
async fn a_truncated_alipay_zip_is_refused() {
    assert_bill_refused("alipay", json!({"bill_truncated": true})).await;
}

#[tokio::test]
async fn an_alipay_bill_that_is_not_gbk_is_refused() {
    assert_bill_refused("alipay", json!({"bill_bad_encoding": true})).await;
}

#[tokio::test]
async fn a_bill_not_ready_is_409_and_the_job_tries_again() {
    let app = TestApp::spawn().await;
    app.set_faults(json!({"bill_not_ready": true})).await;
    let (status, body) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("bill_not_ready"))
    );
    let pass = app
        .jobs
        .run_once(paygate::jobs::Job::Reconciliation)
        .await
        .unwrap();
    assert_eq!(pass["not_ready"], json!(["wechatpay", "alipay"]), "{pass}");
    app.set_faults(json!({})).await;
    let pass = app
        .jobs
        .run_once(paygate::jobs::Job::Reconciliation)
        .await
        .unwrap();
    assert_eq!(pass["completed"], json!(["wechatpay", "alipay"]), "{pass}");
    let pass = app
        .jobs
        .run_once(paygate::jobs::Job::Reconciliation)
        .await
        .unwrap();
    assert_eq!(pass["already"], json!(["wechatpay", "alipay"]), "{pass}");
}

/// 23:59:59 and 00:00:00 Beijing are two days, whatever the server's clock zone.
async fn payments_land_on_their_beijing_day(app: TestApp) {
    use chrono::{Duration, TimeZone};
    let now = app.clock.now();
    let beijing = paygate::clock::beijing();
    let tomorrow = now.with_timezone(&beijing).date_naive() + Duration::days(1);
    let midnight = beijing
        .from_local_datetime(&tomorrow.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc);
    // To 23:59:59.000 of today (Beijing), then pay.
    app.clock.advance(midnight - Duration::seconds(1) - now);
    let late = app
        .create_order("emp_recon_day", "resume-download-50")
        .await;
    app.pay(&no(&late)).await;
    app.wait_for_status(&no(&late), "paid").await;
    // To 00:00:00.000 of tomorrow.
    let at = app.clock.now();
    app.clock.advance(midnight - at);
    let early = app
        .create_order("emp_recon_day", "resume-download-50")
        .await;
    app.pay(&no(&early)).await;
    app.wait_for_status(&no(&early), "paid").await;

    let day1 = (tomorrow - Duration::days(1)).to_string();
    let day2 = tomorrow.to_string();
    for (date, mine, other) in [(&day1, &late, &early), (&day2, &early, &late)] {
        let (status, run) = reconcile(&app, "wechatpay", date).await;
        assert_eq!(status, 201, "{run}");
        assert_eq!(
            count(&run["summary"], "payments", "matched"),
            1,
            "{date}: {run}"
        );
        assert_eq!(
            run["summary"]["local_payments"]["count"], 1,
            "{date}: {run}"
        );
        let found = csv(&app, run["reconciliation_id"].as_str().unwrap()).await;
        assert!(
            !found.contains(&no(mine)) && !found.contains(&no(other)),
            "{date}: {found}"
        );
    }
}
on_both_backends!(
    payments_land_on_their_beijing_day_on_sqlite,
    payments_land_on_their_beijing_day_on_postgres,
    payments_land_on_their_beijing_day
);

/// A refund made at the portal whose notification never came: the bill's refund row is
/// recorded through the refund path (origin `provider`) and the entitlement follows.
async fn a_refund_only_the_bill_knows_is_recorded(app: TestApp) {
    let order = app
        .paid_order("emp_recon_refund", "wechatpay", "resume-download-50")
        .await;
    let order_no = no(&order);
    app.set_faults(json!({"drop_notifications": 1.0})).await;
    app.sandbox
        .portal_refund(&order_no, 19_900)
        .expect("portal refund");
    app.sandbox.complete_wechat_refunds();
    assert_eq!(app.order(&order_no).await["status"], "paid");
    let (status, run) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(
        count(&run["summary"], "refunds", "missing_local"),
        1,
        "{run}"
    );
    assert_eq!(run["summary"]["healed"], 1);
    let order = app.order(&order_no).await;
    assert_eq!(order["status"], "refunded", "{order}");
    assert_eq!(order["refunds"][0]["origin"], "provider");
    let ents = app.entitlements("emp_recon_refund").await;
    assert_eq!(ents["entitlements"][0]["status"], "revoked", "{ents}");
    // Matched on a re-run.
    let (_, again) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(count(&again["summary"], "refunds", "matched"), 1, "{again}");
    assert_eq!(again["summary"]["healed"], 0);
}
on_both_backends!(
    a_refund_only_the_bill_knows_is_recorded_on_sqlite,
    a_refund_only_the_bill_knows_is_recorded_on_postgres,
    a_refund_only_the_bill_knows_is_recorded
);

/// A payment listed twice in the bill must not hide a payment missing from it: counting the
/// bill's rows that match a local payment would find as many as paygate has, so the run must
/// notice the duplicate and check by transaction id.
async fn a_duplicate_bill_row_does_not_hide_a_missing_payment(app: TestApp) {
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(
            app.paid_order("emp_recon_dup", "wechatpay", "resume-download-50")
                .await,
        );
    }
    let [_, twice, missing] = [0, 1, 2].map(|i| no(&orders[i]));
    app.set_faults(json!({"bill_duplicate_row": twice, "bill_missing_row": missing}))
        .await;
    let (status, run) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    let summary = &run["summary"];
    assert_eq!(summary["bill_rows"], 3, "{summary}");
    assert_eq!(count(summary, "payments", "missing_remote"), 1, "{summary}");
    assert_eq!(summary["timings_ms"]["exact_missing_remote_check"], true);
    assert_eq!(
        count(summary, "payments", "duplicate_remote"),
        1,
        "{summary}"
    );
    assert_eq!(count(summary, "payments", "matched"), 2, "{summary}");
    let mut found = rows(&csv(&app, run["reconciliation_id"].as_str().unwrap()).await);
    found.sort();
    assert_eq!(
        found,
        vec![
            ("duplicate_remote".to_owned(), "payment".to_owned(), twice),
            ("missing_remote".to_owned(), "payment".to_owned(), missing)
        ]
    );
}
on_both_backends!(
    a_duplicate_bill_row_does_not_hide_a_missing_payment_on_sqlite,
    a_duplicate_bill_row_does_not_hide_a_missing_payment_on_postgres,
    a_duplicate_bill_row_does_not_hide_a_missing_payment
);

/// A clean day is proven complete by counting, without staging the bill's payments.
async fn a_clean_day_needs_no_exact_check(app: TestApp) {
    for _ in 0..3 {
        app.paid_order("emp_recon_clean", "alipay", "resume-download-50")
            .await;
    }
    let (status, run) = reconcile(&app, "alipay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    let summary = &run["summary"];
    assert_eq!(count(summary, "payments", "matched"), 3, "{summary}");
    assert_eq!(summary["timings_ms"]["exact_missing_remote_check"], false);
    assert_eq!(
        rows(&csv(&app, run["reconciliation_id"].as_str().unwrap()).await),
        Vec::<(String, String, String)>::new()
    );
}
on_both_backends!(
    a_clean_day_needs_no_exact_check_on_sqlite,
    a_clean_day_needs_no_exact_check_on_postgres,
    a_clean_day_needs_no_exact_check
);

/// What runs that died under a crash left (their work row, staged bill rows, discrepancy rows
/// with no run row) is swept by the next run once they are 6 hours old; a run still in
/// progress elsewhere (started a minute ago) keeps its rows; the finished run leaves no work.
async fn the_leftovers_of_a_dead_run_are_swept(app: TestApp) {
    app.paid_order("emp_recon_sweep", "alipay", "resume-download-50")
        .await;
    let now = paygate::clock::to_millis(app.clock.now());
    let hour = 3_600_000;
    for (id, started) in [("rec_dead", now - 7 * hour), ("rec_live", now - 60_000)] {
        sqlx::query(
            "INSERT INTO reconciliation_work (reconciliation_id, started_at) VALUES ($1, $2)",
        )
        .bind(id)
        .bind(started)
        .execute(app.db.pool())
        .await
        .unwrap();
        for (key, seq) in [(id.to_owned(), 1_i64), (format!("{id}/payments"), 2)] {
            sqlx::query(
                "INSERT INTO reconciliation_bill_row (run_key, seq, kind, order_no, provider_txn_id,
                                                      amount_fen, status, occurred_at)
                 VALUES ($1, $2, 'payment', 'ORDERX', 'TXN', 100, 'SUCCESS', $3)",
            )
            .bind(key)
            .bind(seq)
            .bind(now)
            .execute(app.db.pool())
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO reconciliation_discrepancy (reconciliation_id, seq, class, kind, order_no)
             VALUES ($1, 1, 'missing_local', 'payment', 'ORDERX')",
        )
        .bind(id)
        .execute(app.db.pool())
        .await
        .unwrap();
    }
    let (status, run) = reconcile(&app, "alipay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    let left = |table: &'static str, column: &'static str, prefix: &'static str| {
        let pool = app.db.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table} WHERE {column} LIKE $1"
            )))
            .bind(format!("{prefix}%"))
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        left("reconciliation_work", "reconciliation_id", "rec_dead").await,
        0
    );
    assert_eq!(
        left("reconciliation_bill_row", "run_key", "rec_dead").await,
        0
    );
    assert_eq!(
        left(
            "reconciliation_discrepancy",
            "reconciliation_id",
            "rec_dead"
        )
        .await,
        0
    );
    assert_eq!(
        left("reconciliation_work", "reconciliation_id", "rec_live").await,
        1
    );
    assert_eq!(
        left("reconciliation_bill_row", "run_key", "rec_live").await,
        2
    );
    assert_eq!(
        left(
            "reconciliation_discrepancy",
            "reconciliation_id",
            "rec_live"
        )
        .await,
        1
    );
    // The finished run: no work row, its result kept.
    let id = run["reconciliation_id"].as_str().unwrap();
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM reconciliation_work WHERE reconciliation_id = $1",
            id
        )
        .await,
        0
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM reconciliation_run WHERE reconciliation_id = $1",
            id
        )
        .await,
        1
    );
}
on_both_backends!(
    the_leftovers_of_a_dead_run_are_swept_on_sqlite,
    the_leftovers_of_a_dead_run_are_swept_on_postgres,
    the_leftovers_of_a_dead_run_are_swept
);

/// A stored run that does not decode (its summary JSON, its provider, its date) is a fault
/// naming the column, answered as a 500, never a `null` summary or a guessed value; the list
/// that holds it fails the same way, and a sound run reads again once repaired.
async fn a_stored_run_that_does_not_decode_is_an_error(app: TestApp) {
    app.paid_order("emp_recon_corrupt", "wechatpay", "resume-download-50")
        .await;
    let (status, run) = reconcile(&app, "wechatpay", &today(&app)).await;
    assert_eq!(status, 201, "{run}");
    let id = run["reconciliation_id"].as_str().unwrap().to_owned();
    let get = async |path: String| {
        let res = app
            .http
            .get(format!("{}{path}", app.url))
            .bearer_auth(FINANCE_KEY)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    };
    let sound = get(format!("/v1/reconciliations/{id}")).await;
    assert_eq!(sound, (200, run.clone()));
    for (column, bad) in [
        ("summary_json", "{\"bill_rows\":"),
        ("provider", "paypal"),
        ("bill_date", "2026-02-30"),
    ] {
        let set = |value: &str| {
            format!(
                "UPDATE reconciliation_run SET {column} = '{value}' WHERE reconciliation_id = '{id}'"
            )
        };
        let original: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {column} FROM reconciliation_run WHERE reconciliation_id = '{id}'"
        )))
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(set(bad)))
            .execute(app.db.pool())
            .await
            .unwrap();
        for path in [
            format!("/v1/reconciliations/{id}"),
            "/v1/reconciliations".to_owned(),
        ] {
            let (status, body) = get(path.clone()).await;
            assert_eq!(status, 500, "{column} in {path}: {body}");
            assert_eq!(body["error"]["code"], "internal_error", "{body}");
        }
        sqlx::query(sqlx::AssertSqlSafe(set(&original)))
            .execute(app.db.pool())
            .await
            .unwrap();
        assert_eq!(get(format!("/v1/reconciliations/{id}")).await, sound);
    }
}
on_both_backends!(
    a_stored_run_that_does_not_decode_is_an_error_on_sqlite,
    a_stored_run_that_does_not_decode_is_an_error_on_postgres,
    a_stored_run_that_does_not_decode_is_an_error
);
