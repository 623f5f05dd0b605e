//! The event push (DESIGN.md §6): every outbox event POSTed to `[events] url` with
//! `Paygate-Signature: t=…,v1=HMAC-SHA256(secret, "t.body")`, retried with back-off until a 2xx,
//! each event with its stable id.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use common::{EVENTS_SECRET, TestApp};
use paygate::jobs::Job;
use serde_json::{Value, json};

/// A platform endpoint that records what it receives and answers 500 to the first `failures`.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(String, String)>>>,
    failures: Arc<AtomicU32>,
}

impl Receiver {
    async fn start(failures: u32) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver.failures.store(failures, Ordering::SeqCst);
        let state = receiver.clone();
        let router = axum::Router::new().route(
            "/hooks/paygate",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let signature = headers
                        .get(paygate::push::SIGNATURE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    state.received.lock().unwrap().push((signature, body));
                    let failing = state
                        .failures
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if failing {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/paygate", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (receiver, url)
    }

    fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }
}

/// Checks the signature as a receiver would: recompute over `t.body` and compare.
fn verify(signature: &str, body: &str) -> bool {
    let Some(t) = signature
        .split(',')
        .find_map(|part| part.strip_prefix("t="))
        .and_then(|t| t.parse::<i64>().ok())
    else {
        return false;
    };
    paygate::push::signature(EVENTS_SECRET.as_bytes(), t, body) == signature
}

async fn paid_order(app: &TestApp) -> String {
    let order = app
        .create_order_on("emp_push", "wechatpay", "native", json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap().to_owned();
    app.pay(&order_no).await;
    app.wait_for_status(&order_no, "paid").await;
    order_no
}

async fn push(app: &TestApp) -> Value {
    app.jobs.run_once(Job::Events).await.expect("push pass")
}

#[tokio::test]
async fn every_event_is_pushed_once_signed_with_its_stable_id() {
    let (receiver, url) = Receiver::start(0).await;
    let app = TestApp::spawn_with_events(&url).await;
    let order_no = paid_order(&app).await;

    let pass = push(&app).await;
    assert_eq!(
        pass["pushed"], 2,
        "order.paid and entitlement.granted: {pass}"
    );
    let received = receiver.received();
    let mut types = Vec::new();
    for (signature, body) in &received {
        assert!(verify(signature, body), "{signature} over {body}");
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["order_no"], order_no.as_str());
        assert!(event["id"].as_i64().unwrap() > 0);
        types.push(event["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(types, ["order.paid", "entitlement.granted"]);
    // The same ids as the feed.
    let feed = app.events().await;
    let feed_ids: Vec<i64> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let pushed_ids: Vec<i64> = received
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(pushed_ids, feed_ids);

    // Delivered: nothing goes out again.
    assert_eq!(push(&app).await["pushed"], 0);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_failing_receiver_gets_the_event_again_after_the_back_off() {
    let (receiver, url) = Receiver::start(3).await;
    let app = TestApp::spawn_with_events(&url).await;
    paid_order(&app).await;

    // Both events fail (500), then one more attempt of the first fails.
    let first = push(&app).await;
    assert_eq!(first["failed"], 2, "{first}");
    // Not due yet: back-off of 1 s after the first failure.
    assert_eq!(push(&app).await["pushed"], 0);
    assert_eq!(receiver.received().len(), 2);

    app.clock.advance(chrono::Duration::seconds(1));
    let second = push(&app).await;
    assert_eq!(
        (second["failed"].as_u64(), second["pushed"].as_u64()),
        (Some(1), Some(1)),
        "{second}"
    );
    // The failed one now waits 2 s.
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(push(&app).await["pushed"], 0);
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(push(&app).await["pushed"], 1);

    // Each event reached a 2xx exactly once, under one id throughout.
    let bodies: Vec<Value> = receiver
        .received()
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(
        bodies.len(),
        5,
        "2 failed + 1 failed + 1 delivered + 1 delivered"
    );
    let first_id = bodies[0]["id"].clone();
    assert_eq!(
        bodies.iter().filter(|b| b["id"] == first_id).count(),
        3,
        "the first event: failed, failed, delivered"
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM outbox_event WHERE delivered_at IS NULL AND event_type <> $1",
            ""
        )
        .await,
        0
    );
    assert_eq!(push(&app).await["pushed"], 0);
}

#[tokio::test]
async fn without_an_events_url_the_push_is_off() {
    let app = TestApp::spawn().await;
    paid_order(&app).await;
    let pass = push(&app).await;
    assert_eq!(pass["disabled"], true);
    assert_eq!(pass["pushed"], 0);
}

#[tokio::test]
async fn serve_pushes_continuously() {
    let (receiver, url) = Receiver::start(0).await;
    let app = TestApp::spawn_with_events(&url).await;
    let scheduled = app.jobs.clone().start().await.expect("scheduler starts");
    paid_order(&app).await;
    common::wait_until("both events pushed by the loop", || {
        receiver.received().len() == 2
    })
    .await;
    scheduled.shutdown().await.expect("scheduler stops");
}
