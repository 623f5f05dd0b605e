//! `paygate-sandbox --data FILE`: the standalone binary killed with SIGKILL and started again
//! on the same file remembers its ledger (orders, payments, closes, refunds, the day's bill) and
//! delivers the notifications that were still due; without `--data` it forgets. Driven with
//! the provider crates' own clients, as the gateway drives it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::Utc;
use paygate_wechatpay::{
    ApiV3Key, ClientError, MerchantCredentials, NativeOrderRequest, OrderAmount, PlatformKeys,
    RefundAmount, RefundRequest, SignatureHeaders, Signer, TradeState, Verifier,
    verify_notification,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MERCHANT_KEY: &str = include_str!("fixtures/test_merchant_key.pem");
const MERCHANT_PUB: &str = include_str!("fixtures/test_merchant_pub.pem");
const PLATFORM_KEY: &str = include_str!("fixtures/test_platform_key.pem");
const PLATFORM_PUB: &str = include_str!("fixtures/test_platform_pub.pem");
const APP_KEY: &str = include_str!("fixtures/test_app_private_key_pkcs8.pem");
const APP_PUB: &str = include_str!("fixtures/test_app_public_key.pem");
const ALIPAY_KEY: &str = include_str!("fixtures/test_alipay_private_key.pem");
const ALIPAY_PUB: &str = include_str!("fixtures/test_alipay_public_key.pem");

const MCHID: &str = "1900000001";
const APPID: &str = "wx8888888888888888";
const MERCHANT_SERIAL: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
const PLATFORM_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";
const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const ALIPAY_APP_ID: &str = "2021000122671080";
const NOWHERE: &str = "http://127.0.0.1:9/webhooks";

/// A keys dir as `paygate keys generate` writes it, with the fixture keys (the simulator's own
/// keys too, so the binary generates none).
fn keys_dir(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    let write = |path: &str, text: &str| {
        let path = keys.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("wechatpay/apiclient_pub.pem", MERCHANT_PUB);
    write("wechatpay/merchant_serial.txt", MERCHANT_SERIAL);
    write("wechatpay/apiv3.key", APIV3_KEY);
    write("wechatpay/mchid.txt", MCHID);
    write("wechatpay/appid.txt", APPID);
    write(
        paygate_sandbox::keys_dir::PLATFORM_PRIVATE_KEY_FILE,
        PLATFORM_KEY,
    );
    write(
        paygate_sandbox::keys_dir::PLATFORM_KEY_ID_FILE,
        PLATFORM_KEY_ID,
    );
    write(
        paygate_sandbox::keys_dir::ALIPAY_APP_PUBLIC_KEY_FILE,
        APP_PUB,
    );
    write(paygate_sandbox::keys_dir::ALIPAY_APP_ID_FILE, ALIPAY_APP_ID);
    write(
        paygate_sandbox::keys_dir::ALIPAY_PRIVATE_KEY_FILE,
        ALIPAY_KEY,
    );
    keys
}

/// The `paygate-sandbox` binary, running.
struct Simulator {
    child: Child,
    base: String,
}

impl Simulator {
    async fn start(keys: &Path, data: Option<&Path>) -> Simulator {
        let mut command = Command::new(env!("CARGO_BIN_EXE_paygate-sandbox"));
        command
            .args([
                "--keys-dir",
                keys.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--time-divisor", "1000"]);
        if let Some(data) = data {
            command.args(["--data", data.to_str().unwrap()]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start paygate-sandbox");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("the simulator starts")
                .unwrap()
                .expect("a line before the simulator exits");
            if let Some(url) = line.strip_prefix("paygate-sandbox listening on ") {
                break url.to_owned();
            }
        };
        // Keep reading so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Simulator { child, base }
    }

    /// SIGKILL: no shutdown, nothing flushed on the way out.
    async fn kill_nine(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.unwrap();
    }

    fn wechat(&self) -> paygate_wechatpay::Client {
        let mut keys = PlatformKeys::new();
        keys.insert(PLATFORM_KEY_ID, Verifier::from_pem(PLATFORM_PUB).unwrap());
        paygate_wechatpay::Client::new(
            reqwest::Client::new(),
            &format!("{}/sandbox/wechatpay", self.base),
            Arc::new(MerchantCredentials {
                mchid: MCHID.to_owned(),
                serial_no: MERCHANT_SERIAL.to_owned(),
                signer: Signer::from_pem(MERCHANT_KEY).unwrap(),
            }),
            Arc::new(RwLock::new(keys)),
            Arc::new(|| Utc::now().timestamp()),
        )
    }

    fn alipay(&self) -> paygate_alipay::Client {
        paygate_alipay::Client::new(
            reqwest::Client::new(),
            format!("{}/sandbox/alipay/gateway.do", self.base),
            ALIPAY_APP_ID,
            Arc::new(paygate_alipay::Signer::from_pem_or_base64(APP_KEY).unwrap()),
            Arc::new(paygate_alipay::Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap()),
            Arc::new(Utc::now),
        )
    }

    /// The buyer pays at the cashier.
    async fn pay(&self, out_trade_no: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/sandbox/pay/{out_trade_no}", self.base))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "pay {out_trade_no}: {}",
            res.status()
        );
    }
}

fn order_no(prefix: &str) -> String {
    format!("{prefix}{}", &paygate_wechatpay::new_nonce()[..12]).to_uppercase()
}

fn wechat_order(out_trade_no: &str, total: i64, notify_url: &str) -> NativeOrderRequest {
    NativeOrderRequest {
        appid: APPID.to_owned(),
        mchid: MCHID.to_owned(),
        description: "职前通服务".to_owned(),
        out_trade_no: out_trade_no.to_owned(),
        time_expire: None,
        notify_url: format!("{notify_url}/wechatpay"),
        amount: OrderAmount {
            total,
            currency: "CNY".to_owned(),
        },
    }
}

fn alipay_order(
    out_trade_no: &str,
    total_fen: i64,
    notify_url: &str,
) -> paygate_alipay::OrderRequest {
    paygate_alipay::OrderRequest {
        out_trade_no: out_trade_no.to_owned(),
        total_fen,
        subject: "职前通服务".to_owned(),
        time_expire: Utc::now() + chrono::Duration::hours(2),
        notify_url: format!("{notify_url}/alipay"),
        return_url: None,
    }
}

/// Polls `check` until it gives a value, for at most 20 s (a bound, never a wait).
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_restarted_simulator_answers_for_what_was_paid_closed_and_refunded_before() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_dir(dir.path());
    let data = dir.path().join("sandbox.db");
    let sim = Simulator::start(&keys, Some(&data)).await;
    let (wechat, alipay) = (sim.wechat(), sim.alipay());

    // WeChat: one paid and partly refunded, one left unpaid, one closed.
    let (paid, unpaid, closed) = (order_no("WP"), order_no("WU"), order_no("WC"));
    for no in [&paid, &unpaid, &closed] {
        wechat
            .native_order(&wechat_order(no, 19900, NOWHERE))
            .await
            .unwrap();
    }
    sim.pay(&paid).await;
    wechat.close(&closed).await.unwrap();
    let refund_no = order_no("WR");
    wechat
        .refund(&RefundRequest {
            out_trade_no: paid.clone(),
            out_refund_no: refund_no.clone(),
            reason: None,
            notify_url: None,
            amount: RefundAmount {
                refund: 5000,
                total: 19900,
                currency: "CNY".to_owned(),
            },
        })
        .await
        .unwrap();
    let transaction_id = wechat
        .query_by_out_trade_no(&paid)
        .await
        .unwrap()
        .transaction_id
        .expect("a paid order has a transaction id");

    // Alipay: one paid and partly refunded, one closed.
    let (trade, closed_trade) = (order_no("AP"), order_no("AC"));
    for no in [&trade, &closed_trade] {
        alipay
            .precreate(&alipay_order(no, 59900, NOWHERE))
            .await
            .unwrap();
    }
    sim.pay(&trade).await;
    alipay.close(&closed_trade).await.unwrap();
    alipay.refund(&trade, "AR1", 10000, None).await.unwrap();
    let trade_no = alipay.query(&trade).await.unwrap().trade_no;

    sim.kill_nine().await;
    let sim = Simulator::start(&keys, Some(&data)).await;
    let (wechat, alipay) = (sim.wechat(), sim.alipay());

    let found = wechat.query_by_out_trade_no(&paid).await.unwrap();
    assert_eq!(found.trade_state, TradeState::Success);
    assert_eq!(
        found.transaction_id.as_deref(),
        Some(transaction_id.as_str())
    );
    assert_eq!(found.amount.and_then(|a| a.total), Some(19900));
    assert_eq!(
        wechat
            .query_by_out_trade_no(&unpaid)
            .await
            .unwrap()
            .trade_state,
        TradeState::NotPay
    );
    assert_eq!(
        wechat
            .query_by_out_trade_no(&closed)
            .await
            .unwrap()
            .trade_state,
        TradeState::Closed
    );
    let refund = wechat.refund_by_out_refund_no(&refund_no).await.unwrap();
    assert_eq!(
        (refund.out_trade_no.as_str(), refund.transaction_id.as_str()),
        (paid.as_str(), transaction_id.as_str())
    );
    // It remembers the payment, so the same order is not taken twice.
    match wechat
        .native_order(&wechat_order(&paid, 19900, NOWHERE))
        .await
    {
        Err(ClientError::Api { code, .. }) => assert_eq!(code, "ORDER_PAID"),
        other => panic!("a paid order created again: {other:?}"),
    }
    // And today's bill, made from the kept ledger, lists the payment.
    let today = (Utc::now() + chrono::Duration::hours(8)).date_naive();
    let bill = wechat.trade_bill(today, false).await.unwrap();
    let mut file = Vec::new();
    wechat.download_bill(&bill, &mut file).await.unwrap();
    assert!(
        String::from_utf8_lossy(&file).contains(&transaction_id),
        "today's bill lists the payment made before the restart"
    );

    let found = alipay.query(&trade).await.unwrap();
    assert_eq!(
        found.trade_status,
        paygate_alipay::TradeStatus::TradeSuccess
    );
    assert_eq!(
        (found.trade_no.as_str(), found.total_fen),
        (trade_no.as_str(), 59900)
    );
    assert!(found.paid_at.is_some());
    assert_eq!(
        alipay.query(&closed_trade).await.unwrap().trade_status,
        paygate_alipay::TradeStatus::TradeClosed
    );
    let refund = alipay.refund_query(&trade, "AR1").await.unwrap();
    assert_eq!(refund.refund_status, paygate_alipay::RefundStatus::Success);
    assert_eq!(refund.refund_fen, Some(10000));

    // What happens after the restart is kept too: pay the unpaid order, restart once more.
    sim.pay(&unpaid).await;
    sim.kill_nine().await;
    let sim = Simulator::start(&keys, Some(&data)).await;
    assert_eq!(
        sim.wechat()
            .query_by_out_trade_no(&unpaid)
            .await
            .unwrap()
            .trade_state,
        TradeState::Success
    );
    sim.kill_nine().await;
}

#[tokio::test]
async fn without_data_a_restarted_simulator_knows_nothing_of_before() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_dir(dir.path());
    let sim = Simulator::start(&keys, None).await;
    let no = order_no("WM");
    sim.wechat()
        .native_order(&wechat_order(&no, 19900, NOWHERE))
        .await
        .unwrap();
    sim.pay(&no).await;
    sim.kill_nine().await;

    let sim = Simulator::start(&keys, None).await;
    match sim.wechat().query_by_out_trade_no(&no).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "ORDER_NOT_EXIST"));
        }
        other => panic!("an in-memory simulator remembered: {other:?}"),
    }
    sim.kill_nine().await;
}

/// A merchant that refuses every notification until told to take them, and keeps what it was
/// sent: `(notification id, out_trade_no, acknowledged)` per delivery, each verified.
#[derive(Clone)]
struct Merchant {
    url: String,
    accept: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<(String, String, bool)>>>,
}

type MerchantState = (Arc<AtomicBool>, Arc<Mutex<Vec<(String, String, bool)>>>);

impl Merchant {
    async fn start() -> Merchant {
        let accept = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let router = axum::Router::new()
            .route("/webhooks/wechatpay", post(wechat_webhook))
            .route("/webhooks/alipay", post(alipay_webhook))
            .with_state((accept.clone(), received.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Merchant {
            url: format!("http://{addr}/webhooks"),
            accept,
            received,
        }
    }

    fn received(&self) -> Vec<(String, String, bool)> {
        self.received.lock().unwrap().clone()
    }

    /// The ids of the notifications of `out_trade_no`, refused or taken.
    fn ids_of(&self, out_trade_no: &str, acknowledged: bool) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|(_, no, ack)| no == out_trade_no && *ack == acknowledged)
            .map(|(id, _, _)| id)
            .collect()
    }
}

async fn wechat_webhook(
    State((accept, received)): State<MerchantState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut keys = PlatformKeys::new();
    keys.insert(PLATFORM_KEY_ID, Verifier::from_pem(PLATFORM_PUB).unwrap());
    let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
    let verified = SignatureHeaders::from_header_map(&headers)
        .ok()
        .and_then(|h| verify_notification(&keys, &h, &body, Utc::now().timestamp(), &key).ok())
        .expect("a verified notification");
    let transaction = verified.transaction().unwrap();
    assert_eq!(transaction.trade_state, TradeState::Success);
    let take = accept.load(Ordering::SeqCst);
    received.lock().unwrap().push((
        verified.notification.id.clone(),
        transaction.out_trade_no,
        take,
    ));
    if take {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

async fn alipay_webhook(
    State((accept, received)): State<MerchantState>,
    body: Bytes,
) -> &'static str {
    let verifier = paygate_alipay::Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap();
    let notification = paygate_alipay::verify_trade_notification(&body, &verifier)
        .expect("a verified notification");
    assert_eq!(
        notification.trade_status,
        paygate_alipay::TradeStatus::TradeSuccess
    );
    let take = accept.load(Ordering::SeqCst);
    received
        .lock()
        .unwrap()
        .push((notification.notify_id, notification.out_trade_no, take));
    if take { "success" } else { "fail" }
}

#[tokio::test]
async fn notifications_still_due_at_a_kill_are_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_dir(dir.path());
    let data = dir.path().join("sandbox.db");
    let merchant = Merchant::start().await;
    let sim = Simulator::start(&keys, Some(&data)).await;
    let (wechat_no, alipay_no) = (order_no("WN"), order_no("AN"));
    sim.wechat()
        .native_order(&wechat_order(&wechat_no, 19900, &merchant.url))
        .await
        .unwrap();
    sim.alipay()
        .precreate(&alipay_order(&alipay_no, 59900, &merchant.url))
        .await
        .unwrap();
    sim.pay(&wechat_no).await;
    sim.pay(&alipay_no).await;
    // Both were offered and refused before the kill.
    let refused = eventually("a refused delivery of each", || {
        let (w, a) = (
            merchant.ids_of(&wechat_no, false),
            merchant.ids_of(&alipay_no, false),
        );
        (!w.is_empty() && !a.is_empty()).then(|| (w[0].clone(), a[0].clone()))
    })
    .await;
    sim.kill_nine().await;

    merchant.accept.store(true, Ordering::SeqCst);
    let sim = Simulator::start(&keys, Some(&data)).await;
    let taken = eventually("both delivered after the restart", || {
        let (w, a) = (
            merchant.ids_of(&wechat_no, true),
            merchant.ids_of(&alipay_no, true),
        );
        (!w.is_empty() && !a.is_empty()).then(|| (w[0].clone(), a[0].clone()))
    })
    .await;
    assert_eq!(taken, refused, "the same notifications, not new ones");
    sim.kill_nine().await;
}

#[tokio::test]
async fn data_naming_a_file_that_is_not_a_sandbox_ledger_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_dir(dir.path());
    let data = dir.path().join("not-a-ledger.db");
    std::fs::write(&data, b"this is not an SQLite file, and is kept as it is").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_paygate-sandbox"))
        .args([
            "--keys-dir",
            keys.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--data", data.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not-a-ledger.db"), "{stderr}");
    assert_eq!(
        std::fs::read(&data).unwrap(),
        b"this is not an SQLite file, and is kept as it is"
    );
}
