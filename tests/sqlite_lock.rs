//! SQLite honours `db_acquire_timeout_ms` (DESIGN.md §13, issue 20 item 9): with the file's
//! write lock held by another connection (what a second process writing the same file does),
//! every write fails after about the setting with the 503 envelope, however many writes were
//! queued before it, and not after the setting twice (one batch's wait for the lock, then its
//! own). Bounds are the behaviour specified here, so they are asserted, with a wide margin.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, CHECKOUT_KEY, TestApp, transaction_json};
use paygate::clock::Clock;
use paygate::config::LimitsConfig;
use serde_json::Value;
use sqlx::Connection;

const SETTING: Duration = Duration::from_millis(2_000);
const MARGIN: Duration = Duration::from_millis(1_500);

/// Runs `f` after `delay`; answers what it answered and how long it took from its own start.
async fn timed<T>(delay: Duration, f: impl std::future::Future<Output = T>) -> (T, Duration) {
    tokio::time::sleep(delay).await;
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

fn assert_about_the_setting(what: &str, took: Duration) {
    assert!(
        took < SETTING + MARGIN,
        "{what} answered after {took:?}: over {SETTING:?} + {MARGIN:?}"
    );
    assert!(
        took > SETTING / 2,
        "{what} answered after {took:?}: it did not wait for the lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_elsewhere_fails_each_write_after_the_setting_not_twice() {
    let limits = LimitsConfig {
        db_acquire_timeout_ms: SETTING.as_millis() as u64,
        ..LimitsConfig::default()
    };
    let app = TestApp::spawn_with_limits(Backend::Sqlite, limits)
        .await
        .unwrap();
    let path = app
        .database_url()
        .strip_prefix("sqlite://")
        .unwrap()
        .to_owned();
    let pending = app.create_order("emp_lock_cb", "resume-download-50").await;
    let tx = transaction_json(&pending, "4200000000202612060000000001", 19900);
    let callback = app
        .sandbox
        .wechat_notification(&tx, app.clock.now().timestamp());

    let mut held = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut held)
        .await
        .unwrap();

    let body = |employer: &str| {
        format!(
            r#"{{"employer_id":"{employer}","plan":"resume-download-50","provider":"wechatpay","channel":"native"}}"#
        )
    };
    // The first create takes the writer's turn and waits for the lock; the others queue
    // behind it (the batching writer's queue, the pool's writer connection) a little later.
    let later = Duration::from_millis(300);
    let (body_1, body_2) = (body("emp_lock_1"), body("emp_lock_2"));
    let (first, second, webhook, pooled) = tokio::join!(
        timed(
            Duration::ZERO,
            app.post_order(CHECKOUT_KEY, "lock-1", &body_1)
        ),
        timed(later, app.post_order(CHECKOUT_KEY, "lock-2", &body_2)),
        timed(
            later,
            app.post_wechat_callback(&callback.headers, &callback.body)
        ),
        // A transaction of the pooled writer (refunds, erasures, jobs): its wait for the
        // writer connection, which the batch holds meanwhile, counts against the setting too.
        timed(later, app.db.begin_write()),
    );
    for (what, (res, took)) in [("first create", first), ("second create", second)] {
        assert_eq!(res.status(), 503, "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "database_unavailable",
            "{what}: {body}"
        );
        assert_about_the_setting(what, took);
    }
    let (res, took) = webhook;
    assert!(res.status().is_server_error(), "webhook: {}", res.status());
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "FAIL");
    assert_about_the_setting("webhook", took);
    let (tx, took) = pooled;
    let Err(e) = tx else {
        panic!("a write transaction began while the lock is held elsewhere");
    };
    assert!(paygate::store::is_unavailable(&e), "{e}");
    assert_about_the_setting("pooled write transaction", took);

    // The lock goes: the same key creates its order (nothing was half-created), the
    // provider's retry settles.
    sqlx::query("ROLLBACK").execute(&mut held).await.unwrap();
    let res = app
        .post_order(CHECKOUT_KEY, "lock-1", &body("emp_lock_1"))
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .post_wechat_callback(&callback.headers, &callback.body)
        .await;
    assert_eq!(res.status(), 204);
    app.assert_settled_once(pending["order_no"].as_str().unwrap())
        .await;
}
