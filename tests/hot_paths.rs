//! The hot paths of issue 9 keep every guarantee while reads stop taking the write lock and
//! SQLite's writes queue in the process: quotas hold under concurrency, a revocation or expiry
//! is seen at once by the read path, duplicates are answered as before, and the writer queue
//! survives failures and drains on shutdown.

mod common;

use std::sync::Arc;

use common::{ENTITLEMENTS_KEY, TestApp, race_all, transaction_json};
use paygate::clock::Clock;
use paygate::domain::{Currency, Fen, OrderNo, ProviderId};
use paygate::settle::{PaidTrade, SettleError, Settled, Source};
use serde_json::{Value, json};

fn no(order: &Value) -> String {
    order["order_no"].as_str().unwrap().to_owned()
}

async fn post_access(
    http: reqwest::Client,
    url: String,
    employer: String,
    resume: String,
) -> Result<u16, reqwest::Error> {
    let res = http
        .post(format!("{url}/v1/employers/{employer}/resume-access"))
        .bearer_auth(ENTITLEMENTS_KEY)
        .json(&json!({"resume_id": resume, "action": "download"}))
        .send()
        .await?;
    Ok(res.status().as_u16())
}

/// 64 first accesses of distinct résumés at once on one entitlement with quota 50: exactly 50.
async fn sixty_four_first_accesses_on_a_quota_of_fifty_grant_fifty(app: TestApp) {
    let employer = "emp_hot_quota";
    app.paid_order(employer, "wechatpay", "resume-download-50")
        .await;
    let answers = race_all((0..64).map(|i| {
        post_access(
            app.http.clone(),
            app.url.clone(),
            employer.into(),
            format!("r-{i}"),
        )
    }))
    .await;
    let granted = answers.iter().filter(|a| matches!(a, Ok(200))).count();
    let refused = answers.iter().filter(|a| matches!(a, Ok(403))).count();
    assert_eq!((granted, refused), (50, 14), "{answers:?}");
    let ent = &app.entitlements(employer).await["entitlements"][0];
    assert_eq!(
        (ent["used"].clone(), ent["remaining"].clone()),
        (json!(50), json!(0))
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM resume_access a JOIN entitlement e ON a.entitlement_id = e.entitlement_id WHERE e.employer_id = $1",
            employer
        )
        .await,
        50
    );
}
on_both_backends!(
    sixty_four_first_accesses_on_a_quota_of_fifty_grant_fifty_on_sqlite,
    sixty_four_first_accesses_on_a_quota_of_fifty_grant_fifty_on_postgres,
    sixty_four_first_accesses_on_a_quota_of_fifty_grant_fifty
);

/// Repeat views run while the order is refunded in full: once the revoking transaction has
/// committed (the refund call returned), no repeat view is granted, not one.
async fn repeat_views_see_a_revocation_at_once(app: TestApp) {
    let employer = "emp_hot_revoke";
    let order = app
        .paid_order(employer, "alipay", "resume-download-50")
        .await;
    assert_eq!(app.access(employer, "r-seen", "download").await.0, 200);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let viewers: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, stop) = (app.http.clone(), app.url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let status =
                        post_access(http.clone(), url.clone(), employer.into(), "r-seen".into())
                            .await
                            .unwrap();
                    seen.push(status);
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Alipay refunds at once (fund_change=Y): the answer comes after the revocation committed.
    let refund = app.refund(&no(&order), "199.00").await;
    assert_eq!(refund["status"], "succeeded");
    for _ in 0..50 {
        assert_eq!(app.access(employer, "r-seen", "download").await.0, 403);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for viewer in viewers {
        let seen = viewer.await.unwrap();
        // Granted, then refused: never granted again after a refusal.
        let first_refusal = seen.iter().position(|s| *s == 403).unwrap_or(seen.len());
        assert!(seen[first_refusal..].iter().all(|s| *s == 403), "{seen:?}");
        assert!(seen[..first_refusal].iter().all(|s| *s == 200), "{seen:?}");
    }
}
on_both_backends!(
    repeat_views_see_a_revocation_at_once_on_sqlite,
    repeat_views_see_a_revocation_at_once_on_postgres,
    repeat_views_see_a_revocation_at_once
);

/// An entitlement past `valid_until` refuses the repeat at once, before the hourly job.
#[tokio::test]
async fn a_repeat_view_past_validity_is_refused_without_the_expiry_job() {
    let app = TestApp::spawn().await;
    let employer = "emp_hot_expiry";
    app.paid_order(employer, "wechatpay", "resume-download-50")
        .await;
    assert_eq!(app.access(employer, "r-1", "download").await.0, 200);
    assert_eq!(app.access(employer, "r-1", "download").await.0, 200);
    app.clock.advance(chrono::Duration::days(91));
    assert_eq!(app.access(employer, "r-1", "download").await.0, 403);
}

/// A duplicate callback (answered from the read path) settles nothing and answers 204 as
/// before; the same transaction id with another amount is still refused.
async fn duplicates_answer_as_before_and_other_amounts_are_refused(app: TestApp) {
    let order = app.create_order("emp_hot_dup", "resume-download-50").await;
    let order_no = no(&order);
    let now = app.clock.now().timestamp();
    let tx = transaction_json(&order, "4200000000202611300000000777", 19900);
    let signed = app.sandbox.wechat_notification(&tx, now);
    let res = app
        .post_wechat_callback(&signed.headers, &signed.body)
        .await;
    assert_eq!(res.status(), 204);
    app.assert_settled_once(&order_no).await;
    let events = app
        .count(
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1",
            &order_no,
        )
        .await;
    for _ in 0..3 {
        let again = app.sandbox.wechat_notification(&tx, now);
        let res = app.post_wechat_callback(&again.headers, &again.body).await;
        assert_eq!(res.status(), 204);
        assert!(res.bytes().await.unwrap().is_empty());
    }
    let forged = transaction_json(&order, "4200000000202611300000000777", 19800);
    let signed = app.sandbox.wechat_notification(&forged, now);
    assert_eq!(
        app.post_wechat_callback(&signed.headers, &signed.body)
            .await
            .status(),
        400
    );
    app.assert_settled_once(&order_no).await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1",
            &order_no
        )
        .await,
        events
    );
    // Alipay: the duplicate is `success`, another amount `fail`.
    let order = app
        .create_order_on("emp_hot_dup", "alipay", "qr", json!({}))
        .await;
    let body = common::alipay_notification(&order, &[]);
    assert_eq!(
        app.post_alipay_callback(&body).await,
        (200, "success".into())
    );
    assert_eq!(
        app.post_alipay_callback(&body).await,
        (200, "success".into())
    );
    let other = common::alipay_notification(&order, &[("total_amount", "198.00")]);
    assert_eq!(app.post_alipay_callback(&other).await.1, "fail");
    app.assert_settled_once(&no(&order)).await;
}
on_both_backends!(
    duplicates_answer_as_before_and_other_amounts_are_refused_on_sqlite,
    duplicates_answer_as_before_and_other_amounts_are_refused_on_postgres,
    duplicates_answer_as_before_and_other_amounts_are_refused
);

/// Many settlements queued for the writer at once, one of which fails: the others commit,
/// and the failing caller gets its own error.
async fn a_failing_write_among_many_fails_alone(app: TestApp) {
    let mut orders = Vec::new();
    for _ in 0..16 {
        orders.push(no(&app
            .create_order("emp_hot_queue", "resume-download-50")
            .await));
    }
    let db = app.db.clone();
    let now = app.clock.now();
    let results = race_all(orders.iter().enumerate().map(|(i, order_no)| {
        let db = db.clone();
        let trade = PaidTrade {
            order_no: OrderNo::parse(order_no).unwrap(),
            provider: ProviderId::Wechatpay,
            provider_txn_id: format!("42000000002026113000000{i:05}"),
            // The seventh reports a wrong amount.
            amount: Fen::new(if i == 7 { 100 } else { 19900 }).unwrap(),
            currency: Currency::Cny,
            trade_type: Some("NATIVE".into()),
            bank_type: None,
            paid_at: now,
        };
        async move { paygate::settle::settle(&db, &trade, Source::Notification, now).await }
    }))
    .await;
    for (i, result) in results.iter().enumerate() {
        match (i, result) {
            (7, Err(SettleError::AmountMismatch { .. })) => {}
            (7, other) => panic!("the wrong amount: {other:?}"),
            (_, Ok(Settled::Now { late: false })) => {}
            (_, other) => panic!("order {i}: {other:?}"),
        }
    }
    for (i, order_no) in orders.iter().enumerate() {
        let expected = if i == 7 { "pending" } else { "paid" };
        assert_eq!(app.order(order_no).await["status"], expected);
    }
}
on_both_backends!(
    a_failing_write_among_many_fails_alone_on_sqlite,
    a_failing_write_among_many_fails_alone_on_postgres,
    a_failing_write_among_many_fails_alone
);

/// Shutdown drains: first accesses in flight when the stop comes all finish and commit;
/// every request answered 200 left its row, none is half-done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_writes_in_flight() {
    let mut app = TestApp::spawn().await;
    let employer = "emp_hot_shutdown";
    app.paid_order(employer, "alipay", "resume-download-200")
        .await;
    let requests: Vec<_> = (0..40)
        .map(|i| {
            tokio::spawn(post_access(
                app.http.clone(),
                app.url.clone(),
                employer.into(),
                format!("r-{i}"),
            ))
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    app.shut_down().await;
    let mut granted = 0;
    for request in requests {
        match request.await.unwrap() {
            Ok(200) => granted += 1,
            Ok(other) => panic!("an answered request failed: {other}"),
            // Not yet accepted when the listener closed: refused, nothing done.
            Err(_) => {}
        }
    }
    assert!(granted > 0, "some requests were in flight");
    use sqlx::Connection;
    let url = app.database_url().to_owned();
    let rows: i64 = if url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM resume_access")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        unreachable!()
    };
    assert_eq!(
        rows, granted,
        "every answered grant committed, nothing else"
    );
}

/// `GET /v1/orders/{no}` reads the order and its payment in one joined query: the payment
/// record it shows is the stored one, field for field, and a pending order has none.
async fn an_order_read_shows_its_stored_payment(app: TestApp) {
    let pending = app
        .create_order_on(
            "emp_read",
            "wechatpay",
            "native",
            json!({"plan": "resume-download-50"}),
        )
        .await;
    let shown = app.order(&no(&pending)).await;
    assert_eq!(shown["status"], "pending");
    assert!(shown.get("payment_record").is_none(), "{shown}");
    let paid = app
        .paid_order("emp_read", "alipay", "resume-download-50")
        .await;
    let shown = app.order(&no(&paid)).await;
    let (txn, amount, source): (String, i64, String) = sqlx::query_as(
        "SELECT provider_txn_id, amount_fen, source FROM payment WHERE order_no = $1",
    )
    .bind(no(&paid))
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(amount, 19_900);
    let record = &shown["payment_record"];
    assert_eq!(record["provider_transaction_id"], txn.as_str(), "{shown}");
    assert_eq!(record["amount"], "199.00");
    assert_eq!(record["source"], source.as_str());
    assert_eq!(shown["amount"], "199.00");
    assert_eq!(shown["order_no"], no(&paid).as_str());
}
on_both_backends!(
    an_order_read_shows_its_stored_payment_on_sqlite,
    an_order_read_shows_its_stored_payment_on_postgres,
    an_order_read_shows_its_stored_payment
);

/// SQLite's batching writer on a file of its own, with a table for the test.
async fn batch_writer_db(dir: &tempfile::TempDir) -> paygate::store::Db {
    let url = format!("sqlite://{}", dir.path().join("writer.db").display());
    let db = paygate::store::Db::connect(&url, 4, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    db.batch_writer()
        .expect("a SQLite file has a batching writer")
        .write(|c| c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
        .await
        .unwrap();
    db
}

async fn rows_of_t(db: &paygate::store::Db) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM t ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap()
}

/// Sixteen transactions queued at once share one commit; the one that fails (a duplicate key)
/// is rolled back alone: the other fifteen are written and their callers hear so, the failing
/// caller gets its own error as a unique violation.
#[tokio::test]
async fn a_failing_transaction_in_a_batch_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = batch_writer_db(&dir).await;
    let writer = db.batch_writer().unwrap();
    let (commits_before, _) = writer.commits();
    // Polled in one pass of this (single-threaded) runtime: all sixteen are queued before the
    // writer's task first runs, so they are one batch.
    let outcomes = futures_util::future::join_all((0..16_i64).map(|i| {
        writer.write(move |c| {
            // The ninth inserts the third's key again.
            let id = if i == 8 { 2 } else { i };
            c.execute("INSERT INTO t (id, v) VALUES (?1, 'x')", [id])?;
            Ok(id)
        })
    }))
    .await;
    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (8, Err(e)) => assert!(paygate::store::is_unique_violation(e), "{e:?}"),
            (8, Ok(_)) => panic!("a duplicate key was written"),
            (i, Ok(id)) => assert_eq!(*id, i as i64),
            (i, Err(e)) => panic!("transaction {i} failed with the bad one: {e:?}"),
        }
    }
    assert_eq!(
        writer.commits().0 - commits_before,
        1,
        "one commit for the batch"
    );
    let expected: Vec<i64> = (0..16).filter(|i| *i != 8).collect();
    assert_eq!(rows_of_t(&db).await, expected);
}

/// A closure that panics is a failed transaction: its caller hears the writer crashed, the
/// rest of its batch commits, and the writer goes on taking work.
#[tokio::test]
async fn a_panicking_transaction_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = batch_writer_db(&dir).await;
    let writer = db.batch_writer().unwrap();
    let (first, panicked) = tokio::join!(
        writer.write(|c| c.execute("INSERT INTO t (id, v) VALUES (1, 'a')", [])),
        writer.write(|c| -> rusqlite::Result<()> {
            c.execute("INSERT INTO t (id, v) VALUES (2, 'b')", [])?;
            panic!("a bug in a transaction")
        }),
    );
    assert_eq!(first.unwrap(), 1);
    assert!(
        matches!(panicked, Err(sqlx::Error::WorkerCrashed)),
        "{panicked:?}"
    );
    writer
        .write(|c| c.execute("INSERT INTO t (id, v) VALUES (3, 'c')", []))
        .await
        .unwrap();
    assert_eq!(
        rows_of_t(&db).await,
        vec![1, 3],
        "the panicking one left nothing"
    );
}

/// Shutdown drains the queue: every write queued before `close` commits and is answered;
/// a write after it is refused as unavailable.
#[tokio::test]
async fn closing_the_database_drains_the_writer_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = batch_writer_db(&dir).await;
    let writer = db.batch_writer().unwrap().clone();
    // `join!` polls the writes first: each queues its transaction before `close` is called.
    let writes =
        futures_util::future::join_all((0..200_i64).map(|i| {
            writer.write(move |c| c.execute("INSERT INTO t (id, v) VALUES (?1, 'q')", [i]))
        }));
    let (answers, ()) = tokio::join!(writes, db.close());
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap_or_else(|e| panic!("write {i}: {e:?}")), 1);
    }
    let after = writer
        .write(|c| c.execute("INSERT INTO t (id, v) VALUES (1000, 'late')", []))
        .await;
    assert!(matches!(after, Err(sqlx::Error::PoolClosed)), "{after:?}");
    assert!(paygate::store::is_unavailable(&after.unwrap_err()));
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.path().join("writer.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 200, "every write queued before the close committed");
}

/// One provider transaction reported for a second order: the second order's flip to `paid` is
/// rolled back with everything after it (no payment, no entitlement, no event), while the
/// settlements queued beside it (SQLite: in the same batch) commit.
async fn a_transaction_id_reported_for_two_orders_settles_one(app: TestApp) {
    let mut orders = Vec::new();
    for _ in 0..9 {
        orders.push(no(&app
            .create_order("emp_hot_twice", "resume-download-50")
            .await));
    }
    let now = app.clock.now();
    let trade = |i: usize, txn: String| PaidTrade {
        order_no: OrderNo::parse(&orders[i]).unwrap(),
        provider: ProviderId::Wechatpay,
        provider_txn_id: txn,
        amount: Fen::new(19900).unwrap(),
        currency: Currency::Cny,
        trade_type: Some("NATIVE".into()),
        bank_type: None,
        paid_at: now,
    };
    let shared = "4200000000202611300000077777".to_owned();
    let first = paygate::settle::settle(
        &app.db,
        &trade(0, shared.clone()),
        Source::Notification,
        now,
    )
    .await
    .unwrap();
    assert_eq!(first, Settled::Now { late: false });
    // Order 1 reports order 0's transaction; orders 2‥8 their own, all at once.
    let results = race_all((1..9).map(|i| {
        let db = app.db.clone();
        let txn = if i == 1 {
            shared.clone()
        } else {
            format!("42000000002026113000000880{i:02}")
        };
        let trade = trade(i, txn);
        async move { paygate::settle::settle(&db, &trade, Source::Notification, now).await }
    }))
    .await;
    for (k, result) in results.iter().enumerate() {
        match (k + 1, result) {
            (1, Err(SettleError::ConflictingTransaction)) => {}
            (1, other) => panic!("the reused transaction: {other:?}"),
            (_, Ok(Settled::Now { late: false })) => {}
            (i, other) => panic!("order {i}: {other:?}"),
        }
    }
    assert_eq!(app.order(&orders[1]).await["status"], "pending");
    for (sql, expected) in [
        ("SELECT COUNT(*) FROM payment WHERE order_no = $1", 0),
        ("SELECT COUNT(*) FROM entitlement WHERE order_no = $1", 0),
        ("SELECT COUNT(*) FROM outbox_event WHERE order_no = $1", 0),
    ] {
        assert_eq!(app.count(sql, &orders[1]).await, expected, "{sql}");
    }
    for order_no in orders.iter().skip(2) {
        assert_eq!(app.order(order_no).await["status"], "paid");
        assert_eq!(
            app.count(
                "SELECT COUNT(*) FROM entitlement WHERE order_no = $1",
                order_no
            )
            .await,
            1
        );
    }
}
on_both_backends!(
    a_transaction_id_reported_for_two_orders_settles_one_on_sqlite,
    a_transaction_id_reported_for_two_orders_settles_one_on_postgres,
    a_transaction_id_reported_for_two_orders_settles_one
);
