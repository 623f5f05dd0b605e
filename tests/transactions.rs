//! Every transaction body that runs through `Db::transaction`, run on both backends through
//! the real paths that use it (issue 18 item 3).
//!
//! On a SQLite file the runner polls a body once on the batching writer (`store::exec::ready`):
//! a body that awaits anything but its executor would fail there at run time, as an error
//! instead of a hang. Nothing in the types forbids that await, so this file is the check: each
//! body below is run on SQLite (batching writer) and on PostgreSQL (a sqlx transaction), and
//! `every_transaction_body_is_run_here` fails when a body is added to `src/` without being
//! added here.

mod common;

use common::{Backend, TestApp};
use paygate::clock::Clock;
use serde_json::Value;

/// (file under src/, the body function the runner is given). A new `.transaction(` call site
/// must be added here AND be run by `every_body_runs_on`.
const BODIES: [(&str, &str); 5] = [
    ("settle.rs", "settle_in"),
    ("store/jobs.rs", "take_in"),
    ("entitlements.rs", "access_in"),
    ("entitlements.rs", "expire_batch"),
    ("store/db.rs", "execute_all"),
];

fn order_no(order: &Value) -> String {
    order["order_no"].as_str().expect("order_no").to_owned()
}

/// Runs each body of [`BODIES`] on `app`'s backend, asserting what it committed.
async fn every_body_runs_on(app: TestApp) {
    let employer = "emp_tx_bodies";
    // execute_all: order creation's statements (claim, pending order, stored answer).
    let order = app.create_order(employer, "resume-download-50").await;
    let no = order_no(&order);
    assert_eq!(order["status"], "pending", "{order}");
    // settle_in: the callback's settlement, with its grants and events.
    app.pay(&no).await;
    let paid = app.wait_for_status(&no, "paid").await;
    assert_eq!(paid["payment_record"]["source"], "notification", "{paid}");
    let list = app.entitlements(employer).await;
    assert_eq!(list["entitlements"][0]["quota"], 50, "{list}");
    assert_eq!(list["entitlements"][0]["status"], "active", "{list}");
    // access_in, a unit taken: the first access of a résumé.
    let (status, body) = app.access(employer, "resume-1", "download").await;
    assert_eq!(
        (status, &body["remaining"]),
        (200, &Value::from(49)),
        "{body}"
    );
    // Covered: the repeat is the lookup, no transaction, nothing taken.
    let (status, body) = app.access(employer, "resume-1", "download").await;
    assert_eq!(
        (status, &body["remaining"]),
        (200, &Value::from(49)),
        "{body}"
    );
    // access_in, refused: every statement of the no-unit branch (take, covered, quota left,
    // the latest entitlement of each status that names the refusal).
    let (status, body) = app.access(employer, "resume-1", "view").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "no_entitlement", "{body}");
    // expire_batch: the expiry job's transactions, one full batch and the rest.
    let later = app.clock.now() + chrono::Duration::days(400);
    let expired = paygate::entitlements::expire_due(&app.db, later, 1)
        .await
        .expect("expiry");
    assert_eq!(expired, 1);
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM outbox_event WHERE order_no = $1 AND event_type = 'entitlement.expired'",
            &no
        )
        .await,
        1
    );
    let list = app.entitlements(employer).await;
    assert_eq!(list["entitlements"][0]["status"], "expired", "{list}");
    // access_in, refused with a row to name the refusal by.
    let (status, body) = app.access(employer, "resume-2", "download").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "entitlement_expired", "{body}");
    leases_are_taken_and_finished(&app).await;
}

/// take_in (and `finish`'s statements through execute_all): a slot is taken once, a later
/// slot by another holder once the first is finished.
async fn leases_are_taken_and_finished(app: &TestApp) {
    use paygate::store::jobs::{Outcome, Taken, finish, take};
    let (job, now_ms) = ("tx_bodies_job", 1_000_000);
    let first = take(&app.db, job, "a", 1, now_ms, 60_000).await.unwrap();
    assert_eq!(first, Some(Taken { slot: 1, fence: 1 }));
    let again = take(&app.db, job, "b", 1, now_ms, 60_000).await.unwrap();
    assert_eq!(again, None, "a slot runs once");
    finish(
        &app.db,
        job,
        first.unwrap(),
        Outcome::Succeeded("ok"),
        now_ms + 1,
    )
    .await
    .unwrap();
    let next = take(&app.db, job, "b", 2, now_ms + 2, 60_000)
        .await
        .unwrap();
    assert_eq!(
        next,
        Some(Taken { slot: 2, fence: 2 }),
        "the finished lease is free"
    );
    let finished = "SELECT COUNT(*) FROM job_run WHERE job = $1 AND outcome = 'ok'";
    assert_eq!(app.count(finished, job).await, 1);
    let succeeded = "SELECT COUNT(*) FROM job_lease WHERE job = $1 AND last_success_at = 1000001";
    assert_eq!(
        app.count(succeeded, job).await,
        1,
        "the success is on the lease row"
    );
}

#[tokio::test]
async fn every_transaction_body_runs_on_sqlites_batching_writer() {
    let app = TestApp::spawn_on(Backend::Sqlite).await.expect("sqlite");
    assert!(
        app.db.batch_writer().is_some(),
        "a SQLite file: the batching writer"
    );
    every_body_runs_on(app).await;
}

#[tokio::test]
async fn every_transaction_body_runs_on_a_postgres_transaction() {
    let Some(app) = TestApp::spawn_on(Backend::Postgres).await else {
        return;
    };
    every_body_runs_on(app).await;
}

/// The call sites of the runner in `src/`, each as (file, body), read from the source: each
/// `.transaction(` is followed by `Box::pin(async move { BODY(ex` within a few lines.
fn runner_call_sites() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let file = path
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            for (at, call) in text.match_indices(".transaction(") {
                let after = &text[at..text.len().min(at + 300)];
                if after[call.len()..].trim_start().starts_with(')') {
                    // Another type's `transaction()` (a verified callback's), not the runner.
                    continue;
                }
                let body = after
                    .split("async move {")
                    .nth(1)
                    .and_then(|rest| rest.trim_start().split('(').next())
                    .unwrap_or_else(|| panic!("{file}: a runner call whose body is not named"));
                found.push((file.clone(), body.trim().to_owned()));
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_transaction_body_is_run_here() {
    let mut expected: Vec<(String, String)> = BODIES
        .iter()
        .map(|(f, b)| ((*f).to_owned(), (*b).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(
        runner_call_sites(),
        expected,
        "a transaction body runs through Db::transaction without being run by this file on \
         both backends: add it to BODIES and to every_body_runs_on"
    );
}

/// The choice "batching writer or sqlx transaction" is made in one place: no file but the
/// runner's hands work to the batching writer.
#[test]
fn only_the_runner_hands_transactions_to_the_batching_writer() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source");
            let file = path.strip_prefix(&root).expect("under src").to_owned();
            let allowed = file.ends_with("store/db.rs") || file.ends_with("store/writer.rs");
            assert!(
                allowed || !(text.contains("write_with(") || text.contains("exec::ready(")),
                "{}: hands a transaction to the batching writer outside Db::transaction",
                file.display()
            );
        }
    }
}
