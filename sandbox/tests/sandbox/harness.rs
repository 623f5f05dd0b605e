//! Starts the sandbox and a callback receiver on port 0, with the fixture keys.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use paygate_sandbox::{Sandbox, SandboxConfig, WechatSandboxConfig};
use paygate_wechatpay::{
    ApiV3Key, Client, MerchantCredentials, NativeOrderRequest, OrderAmount, PlatformKeys,
    SignatureHeaders, Signer, Verifier, new_nonce, verify_notification,
};

pub const MERCHANT_KEY: &str = include_str!("../fixtures/test_merchant_key.pem");
pub const MERCHANT_PUB: &str = include_str!("../fixtures/test_merchant_pub.pem");
pub const PLATFORM_KEY: &str = include_str!("../fixtures/test_platform_key.pem");
pub const PLATFORM_PUB: &str = include_str!("../fixtures/test_platform_pub.pem");

pub const MCHID: &str = "1900000001";
pub const APPID: &str = "wx8888888888888888";
pub const MERCHANT_SERIAL: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
pub const PLATFORM_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";
pub const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

pub fn platform_keys() -> PlatformKeys {
    let mut keys = PlatformKeys::new();
    keys.insert(PLATFORM_KEY_ID, Verifier::from_pem(PLATFORM_PUB).unwrap());
    keys
}

pub fn credentials() -> Arc<MerchantCredentials> {
    Arc::new(MerchantCredentials {
        mchid: MCHID.to_owned(),
        serial_no: MERCHANT_SERIAL.to_owned(),
        signer: Signer::from_pem(MERCHANT_KEY).unwrap(),
    })
}

pub struct Harness {
    pub sandbox: Sandbox,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: Client,
    pub http: reqwest::Client,
}

pub async fn start() -> Harness {
    start_with_divisor(1000).await
}

pub async fn start_with_divisor(time_divisor: u32) -> Harness {
    start_with(time_divisor, paygate_sandbox::system_clock(), Arc::new(now)).await
}

/// The sandbox on `clock`, and a client whose own clock is `client_clock` (unix seconds).
pub async fn start_with(
    time_divisor: u32,
    clock: paygate_sandbox::SandboxClock,
    client_clock: paygate_wechatpay::Clock,
) -> Harness {
    let sandbox = Sandbox::new(SandboxConfig {
        wechatpay: WechatSandboxConfig {
            mchid: MCHID.to_owned(),
            appid: APPID.to_owned(),
            merchant_serial: MERCHANT_SERIAL.to_owned(),
            merchant_public_key_pem: MERCHANT_PUB.to_owned(),
            apiv3_key: APIV3_KEY.to_owned(),
            platform_private_key_pem: PLATFORM_KEY.to_owned(),
            platform_key_id: PLATFORM_KEY_ID.to_owned(),
        },
        time_divisor,
        clock,
    })
    .unwrap();
    let base = serve(sandbox.router()).await;
    let http = reqwest::Client::new();
    let client = client_with_clock(&base, client_clock);
    Harness {
        sandbox,
        base,
        client,
        http,
    }
}

pub fn client_with_clock(base: &str, clock: paygate_wechatpay::Clock) -> Client {
    Client::new(
        reqwest::Client::new(),
        &format!("{base}/sandbox/wechatpay"),
        credentials(),
        Arc::new(RwLock::new(platform_keys())),
        clock,
    )
}

/// POSTs `body` to a WeChat API `path` (`/v3/…`), signed now by the merchant, as the Client
/// would but with any body; checks the answer is signed, returns its status and JSON.
pub async fn signed_post(h: &Harness, path: &str, body: &str) -> (u16, serde_json::Value) {
    let authorization =
        credentials().authorization("POST", path, now(), &new_nonce(), body.as_bytes());
    let response = h
        .http
        .post(format!("{}/sandbox/wechatpay{path}", h.base))
        .header("Accept", "application/json")
        .header("User-Agent", "paygate-tests")
        .header("Content-Type", "application/json")
        .header("Authorization", authorization)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let signature = SignatureHeaders::from_header_map(&headers).expect("answer is signed");
    assert_eq!(
        paygate_wechatpay::verify_signed(&platform_keys(), &signature, &body, now()),
        Ok(())
    );
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// GETs a WeChat API `path` (`/v3/…` with its query), signed now by the merchant; checks the
/// answer is signed, returns its status and JSON.
pub async fn signed_get(h: &Harness, path: &str) -> (u16, serde_json::Value) {
    let authorization = credentials().authorization("GET", path, now(), &new_nonce(), b"");
    let response = h
        .http
        .get(format!("{}/sandbox/wechatpay{path}", h.base))
        .header("Accept", "application/json")
        .header("User-Agent", "paygate-tests")
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    let signature = SignatureHeaders::from_header_map(&headers).expect("answer is signed");
    assert_eq!(
        paygate_wechatpay::verify_signed(&platform_keys(), &signature, &body, now()),
        Ok(())
    );
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

/// Serves a router on 127.0.0.1:0; returns `http://addr`.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

pub fn order(out_trade_no: &str, total: i64, notify_url: &str) -> NativeOrderRequest {
    NativeOrderRequest {
        appid: APPID.to_owned(),
        mchid: MCHID.to_owned(),
        description: "职前通服务".to_owned(),
        out_trade_no: out_trade_no.to_owned(),
        time_expire: None,
        notify_url: notify_url.to_owned(),
        amount: OrderAmount {
            total,
            currency: "CNY".to_owned(),
        },
    }
}

/// A fresh order number (tests share no state, but a readable prefix helps).
pub fn order_no(prefix: &str) -> String {
    format!("{prefix}{}", &new_nonce()[..12]).to_uppercase()
}

/// Polls `check` until it gives a value, for at most 10 s (a bound, never a wait).
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One callback as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the receiver answered.
    pub status: u16,
}

/// A tiny merchant: verifies each callback like the gateway would (204 when it checks out, 401
/// when not), unless a scripted status comes first.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let state = (received.clone(), script.clone());
        let router = axum::Router::new()
            .route("/webhooks/wechatpay", post(receive))
            .with_state(state);
        let base = serve(router).await;
        Receiver {
            url: format!("{base}/webhooks/wechatpay"),
            received,
            script,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn script_is_empty(&self) -> bool {
        self.script.lock().unwrap().is_empty()
    }
}

type ReceiverState = (Arc<Mutex<Vec<Received>>>, Arc<Mutex<VecDeque<u16>>>);

async fn receive(
    State((received, script)): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let scripted = script.lock().unwrap().pop_front();
    let status = scripted.unwrap_or_else(|| {
        let key = ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap();
        let ok = SignatureHeaders::from_header_map(&headers)
            .ok()
            .and_then(|h| verify_notification(&platform_keys(), &h, &body, now(), &key).ok())
            .is_some();
        if ok { 204 } else { 401 }
    });
    received.lock().unwrap().push(Received {
        headers,
        body,
        status,
    });
    StatusCode::from_u16(status).unwrap()
}
