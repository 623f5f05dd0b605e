//! The Alipay half: gateway.do driven with paygate-alipay's own Client, as the gateway drives
//! it, and the `trade_status_sync` notification received by a tiny merchant. Refund
//! notifications and portal refunds are in their own modules, on the harness below.

mod bills;
mod portal;
mod refund_notifications;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use chrono::Utc;
use paygate_alipay::{
    Client, Error, OrderChannel, OrderRequest, Params, RefundRequest, RefundStatus, RetryPolicy,
    Signer, TradeStatus, Verifier, order_request, refund_request, verify_trade_notification,
};
use paygate_sandbox::{AlipaySandboxConfig, Faults, Sandbox, SandboxConfig, WechatSandboxConfig};
use serde_json::Value;

const APP_KEY: &str = include_str!("../fixtures/test_app_private_key_pkcs8.pem");
const APP_PUB: &str = include_str!("../fixtures/test_app_public_key.pem");
const ALIPAY_KEY: &str = include_str!("../fixtures/test_alipay_private_key.pem");
const ALIPAY_PUB: &str = include_str!("../fixtures/test_alipay_public_key.pem");
const APP_ID: &str = "2021000122671080";
const SELLER_ID: &str = "2088102177846880";
const SUBJECT: &str = "职前通服务";

struct Harness {
    sandbox: Sandbox,
    base: String,
    client: Client,
    http: reqwest::Client,
}

impl Harness {
    fn gateway(&self) -> String {
        format!("{}/sandbox/alipay/gateway.do", self.base)
    }

    async fn pay(&self, out_trade_no: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/sandbox/pay/{out_trade_no}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

async fn start() -> Harness {
    start_with_divisor(1000).await
}

async fn start_with_divisor(time_divisor: u32) -> Harness {
    start_with(time_divisor, paygate_sandbox::system_clock()).await
}

async fn start_with(time_divisor: u32, clock: paygate_sandbox::SandboxClock) -> Harness {
    let wechat = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let sandbox = Sandbox::new(SandboxConfig {
        wechatpay: WechatSandboxConfig {
            mchid: "1900000001".to_owned(),
            appid: "wx8888888888888888".to_owned(),
            merchant_serial: "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB".to_owned(),
            merchant_public_key_pem: wechat("test_merchant_pub.pem"),
            apiv3_key: "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb".to_owned(),
            platform_private_key_pem: wechat("test_platform_key.pem"),
            platform_key_id: "PUB_KEY_ID_0114232134912410000000000000".to_owned(),
        },
        time_divisor,
        clock,
    })
    .unwrap()
    .with_alipay(AlipaySandboxConfig {
        app_id: APP_ID.to_owned(),
        app_public_key_pem: APP_PUB.to_owned(),
        alipay_private_key_pem: ALIPAY_KEY.to_owned(),
        seller_id: SELLER_ID.to_owned(),
    })
    .unwrap();
    let base = serve(sandbox.router()).await;
    let client = client(&base, APP_KEY);
    Harness {
        sandbox,
        base,
        client,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

fn client(base: &str, app_key: &str) -> Client {
    Client::new(
        reqwest::Client::new(),
        format!("{base}/sandbox/alipay/gateway.do"),
        APP_ID,
        Arc::new(Signer::from_pem_or_base64(app_key).unwrap()),
        Arc::new(Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap()),
        Arc::new(Utc::now),
    )
    .with_retry(RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    })
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn order_no(prefix: &str) -> String {
    format!("{prefix}{}", &paygate_wechatpay::new_nonce()[..12]).to_uppercase()
}

fn order(out_trade_no: &str, total_fen: i64, notify_url: &str) -> OrderRequest {
    OrderRequest {
        out_trade_no: out_trade_no.to_owned(),
        total_fen,
        subject: SUBJECT.to_owned(),
        time_expire: Utc::now() + chrono::Duration::hours(2),
        notify_url: notify_url.to_owned(),
        return_url: None,
    }
}

const NOWHERE: &str = "http://127.0.0.1:9/webhooks/alipay";

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn api_error(error: Error) -> (String, Option<String>, bool) {
    let api = error
        .api()
        .unwrap_or_else(|| panic!("not an API error: {error:?}"));
    (api.code.clone(), api.sub_code.clone(), api.signed)
}

#[tokio::test]
async fn precreate_query_pay_query() {
    let h = start().await;
    let no = order_no("AP");
    let created = h
        .client
        .precreate(&order(&no, 19900, NOWHERE))
        .await
        .unwrap();
    assert_eq!(created.out_trade_no, no);
    assert!(created.qr_code.starts_with("https://qr.alipay.com/bax"));

    let waiting = h.client.query(&no).await.unwrap();
    assert_eq!(waiting.trade_status, TradeStatus::WaitBuyerPay);
    assert_eq!(waiting.total_fen, 19900);
    assert_eq!(waiting.paid_at, None);
    let today = paygate_alipay::beijing_time(Utc::now())[..10].replace('-', "");
    assert_eq!(waiting.trade_no.len(), 28);
    assert!(waiting.trade_no.starts_with(&today));
    assert!(waiting.trade_no.bytes().all(|b| b.is_ascii_digit()));

    // The cashier works for Alipay orders too.
    let page = h
        .http
        .get(format!("{}/sandbox/cashier/{no}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("¥199.00"));
    assert!(page.contains("Alipay sandbox cashier"));

    let (status, paid) = h.pay(&no).await;
    assert_eq!(status, 200);
    assert_eq!(paid["trade_status"], "TRADE_SUCCESS");
    assert_eq!(paid["trade_no"], waiting.trade_no.as_str());
    assert_eq!(paid["total_amount"], "199.00");
    assert!(paid["buyer_user_id"].as_str().unwrap().starts_with("2088"));
    assert!(paid["buyer_logon_id"].as_str().unwrap().contains("****"));

    let done = h.client.query(&no).await.unwrap();
    assert_eq!(done.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(done.trade_no, waiting.trade_no);
    assert_eq!(done.total_fen, 19900);
    assert!(done.paid_at.is_some());

    // Paying twice is refused; the order stays paid.
    assert_eq!(h.pay(&no).await.0, 409);
    // Re-creating a paid trade is refused.
    let again = h
        .client
        .precreate(&order(&no, 19900, NOWHERE))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(again),
        ("40004".into(), Some("ACQ.TRADE_HAS_SUCCESS".into()), true)
    );
}

#[tokio::test]
async fn answers_are_signed_over_the_exact_node_with_escaped_slashes() {
    let h = start().await;
    let no = order_no("RAW");
    let request = order_request(
        OrderChannel::Precreate,
        APP_ID,
        &Signer::from_pem_or_base64(APP_KEY).unwrap(),
        &order(&no, 1, NOWHERE),
        Utc::now(),
    )
    .unwrap();
    // Split the parameters between the URL query and the form body, as the Java SDK does.
    let (mut query, mut body) = (Params::new(), Params::new());
    for (key, value) in request.params().iter() {
        if key == "biz_content" || key == "notify_url" {
            body.insert(key, value);
        } else {
            query.insert(key, value);
        }
    }
    let raw = h
        .http
        .post(format!("{}?{}", h.gateway(), query.to_form()))
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(body.to_form())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.starts_with(
            "{\"alipay_trade_precreate_response\":{\"code\":\"10000\",\"msg\":\"Success\""
        ),
        "{raw}"
    );
    assert!(raw.contains("https:\\/\\/qr.alipay.com\\/bax"));
    let verifier = Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap();
    let read = paygate_alipay::read_precreate_response(&raw, &verifier, &no).unwrap();
    assert!(read.qr_code.starts_with("https://qr.alipay.com/bax"));
}

#[tokio::test]
async fn a_bad_signature_is_40002_invalid_signature() {
    let h = start().await;
    // Signed with a key the sandbox does not know as the app's.
    let wrong = client(&h.base, ALIPAY_KEY);
    let no = order_no("SIG");
    let error = wrong
        .precreate(&order(&no, 100, NOWHERE))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error),
        ("40002".into(), Some("isv.invalid-signature".into()), true)
    );
    // Nothing was recorded.
    let error = h.client.query(&no).await.unwrap_err();
    assert_eq!(
        api_error(error),
        ("40004".into(), Some("ACQ.TRADE_NOT_EXIST".into()), true)
    );
}

#[tokio::test]
async fn a_foreign_app_id_is_refused() {
    let h = start().await;
    let other = Client::new(
        reqwest::Client::new(),
        h.gateway(),
        "2021000000000000",
        Arc::new(Signer::from_pem_or_base64(APP_KEY).unwrap()),
        Arc::new(Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap()),
        Arc::new(Utc::now),
    );
    let error = other
        .precreate(&order(&order_no("APPID"), 100, NOWHERE))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error),
        ("40002".into(), Some("isv.invalid-app-id".into()), true)
    );
}

#[tokio::test]
async fn unknown_trades_and_inconsistent_reorders() {
    let h = start().await;
    let error = h.client.query("NO_SUCH_ORDER_1").await.unwrap_err();
    assert_eq!(
        api_error(error),
        ("40004".into(), Some("ACQ.TRADE_NOT_EXIST".into()), true)
    );
    let error = h.client.close("NO_SUCH_ORDER_2").await.unwrap_err();
    assert_eq!(
        error.api().unwrap().sub_code.as_deref(),
        Some("ACQ.TRADE_NOT_EXIST")
    );

    let no = order_no("CTX");
    let first = h.client.precreate(&order(&no, 100, NOWHERE)).await.unwrap();
    // The same order again gets the same QR code back.
    let same = h.client.precreate(&order(&no, 100, NOWHERE)).await.unwrap();
    assert_eq!(same.qr_code, first.qr_code);
    let error = h
        .client
        .precreate(&order(&no, 200, NOWHERE))
        .await
        .unwrap_err();
    assert_eq!(
        api_error(error),
        (
            "40004".into(),
            Some("ACQ.CONTEXT_INCONSISTENT".into()),
            true
        )
    );
    assert_eq!(h.client.query(&no).await.unwrap().total_fen, 100);
}

#[tokio::test]
async fn close_makes_the_trade_closed() {
    let h = start().await;
    let no = order_no("CL");
    h.client.precreate(&order(&no, 500, NOWHERE)).await.unwrap();
    let closed = h.client.close(&no).await.unwrap();
    assert_eq!(closed.out_trade_no.as_deref(), Some(no.as_str()));
    assert_eq!(
        h.client.query(&no).await.unwrap().trade_status,
        TradeStatus::TradeClosed
    );
    // Only WAIT_BUYER_PAY trades close; a closed one cannot be paid.
    let error = h.client.close(&no).await.unwrap_err();
    assert_eq!(
        error.api().unwrap().sub_code.as_deref(),
        Some("ACQ.TRADE_STATUS_ERROR")
    );
    assert_eq!(h.pay(&no).await.0, 400);
}

#[tokio::test]
async fn page_and_wap_pay_urls_open_the_sandbox_cashier() {
    let h = start().await;
    for (prefix, url) in [("PAGE", true), ("WAP", false)] {
        let no = order_no(prefix);
        let order = order(&no, 2990, NOWHERE);
        let url = if url {
            h.client.page_pay_url(&order).unwrap()
        } else {
            h.client.wap_pay_url(&order).unwrap()
        };
        let response = h.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 302);
        assert_eq!(
            response.headers()["location"],
            format!("/sandbox/cashier/{no}").as_str()
        );
        let page = h
            .http
            .get(format!("{}/sandbox/cashier/{no}", h.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("¥29.90"));
        assert_eq!(
            h.client.query(&no).await.unwrap().trade_status,
            TradeStatus::WaitBuyerPay
        );
    }
    // A tampered URL is refused on an error page and records nothing.
    let no = order_no("TAMPER");
    let url = h.client.page_pay_url(&order(&no, 100, NOWHERE)).unwrap();
    let tampered = url.replace("1.00", "0.01");
    assert_ne!(url, tampered);
    let response = h.http.get(&tampered).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(h.client.query(&no).await.is_err());
}

#[tokio::test]
async fn corrupt_response_signature_is_refused_by_the_client() {
    let h = start().await;
    h.sandbox.set_faults(Faults {
        corrupt_response_signature: true,
        ..Faults::default()
    });
    let error = h
        .client
        .precreate(&order(&order_no("CORRUPT"), 100, NOWHERE))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Response(_)), "{error:?}");
}

#[tokio::test]
async fn an_api_error_rate_of_one_answers_every_call_with_a_signed_unknown_error() {
    let h = start().await;
    h.sandbox.set_faults(Faults {
        api_error_rate: 1.0,
        ..Faults::default()
    });
    let no = order_no("ERR");
    for _ in 0..3 {
        let error = h
            .client
            .precreate(&order(&no, 100, NOWHERE))
            .await
            .unwrap_err();
        assert_eq!(
            api_error(error),
            ("20000".into(), Some("isp.unknow-error".into()), true)
        );
    }
    let error = h.client.query(&no).await.unwrap_err();
    assert_eq!(
        api_error(error),
        ("20000".into(), Some("isp.unknow-error".into()), true)
    );
    h.sandbox.set_faults(Faults::default());
    // No trade was created by the failed calls.
    let error = h.client.query(&no).await.unwrap_err();
    assert_eq!(api_error(error).1.as_deref(), Some("ACQ.TRADE_NOT_EXIST"));
}

#[tokio::test]
async fn dropped_alipay_notifications_get_through_on_resend() {
    // Real retry delays (4 min first), so only the resend can deliver within the test.
    let h = start_with_divisor(1).await;
    let receiver = Receiver::start(&[]).await;
    h.sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..Faults::default()
    });
    let no = order_no("DROP");
    h.client
        .precreate(&order(&no, 100, &receiver.url))
        .await
        .unwrap();
    h.sandbox.pay(&no).unwrap();
    let first = eventually("the first attempt", || {
        h.sandbox.notifications().first().cloned()
    })
    .await;
    assert!(first.dropped && !first.acknowledged && first.status.is_none());
    assert!(receiver.received().is_empty());
    assert_eq!(h.sandbox.pending_notifications(), 1);

    h.sandbox.set_faults(Faults::default());
    assert_eq!(h.sandbox.resend_pending().await, 1);
    let last = h.sandbox.notifications().pop().unwrap();
    assert_eq!(
        (last.attempt, last.acknowledged, last.dropped),
        (2, true, false)
    );
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(h.sandbox.pending_notifications(), 0);
}

#[tokio::test]
async fn alipay_times_come_from_the_injected_clock() {
    use chrono::TimeZone as _;
    let fake = Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap();
    let h = start_with(1000, Arc::new(move || fake)).await;
    let receiver = Receiver::start(&[]).await;
    let no = order_no("CLOCK");
    h.client
        .precreate(&order(&no, 100, &receiver.url))
        .await
        .unwrap();
    let (status, paid) = h.pay(&no).await;
    assert_eq!(status, 200);
    assert_eq!(paid["send_pay_date"], "2031-03-04 13:06:07");
    assert!(paid["trade_no"].as_str().unwrap().starts_with("20310304"));
    let (body, _, _) = eventually("the notification", || {
        receiver.received().into_iter().next()
    })
    .await;
    let params = Params::from_form(&body).unwrap();
    for key in ["notify_time", "gmt_payment", "gmt_create"] {
        assert_eq!(params.get(key), Some("2031-03-04 13:06:07"), "{key}");
    }
}

#[tokio::test]
async fn keys_endpoint_shows_the_alipay_public_key() {
    let h = start().await;
    let keys: Value = h
        .http
        .get(format!("{}/sandbox/keys", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pem = keys["alipay"]["public_key_pem"].as_str().unwrap();
    // The same key as the fixture, whatever the PEM wrapping.
    assert_eq!(
        Verifier::from_pem_or_base64(pem).unwrap().public_key_pem(),
        Verifier::from_pem_or_base64(ALIPAY_PUB)
            .unwrap()
            .public_key_pem()
    );
    assert!(keys["wechatpay"]["public_key_pem"].is_string());
}

/// A trade of `total_fen` the buyer has paid.
async fn paid_trade(h: &Harness, prefix: &str, total_fen: i64) -> String {
    let no = order_no(prefix);
    h.client
        .precreate(&order(&no, total_fen, NOWHERE))
        .await
        .unwrap();
    assert_eq!(h.pay(&no).await.0, 200);
    no
}

/// An `alipay.trade.refund` with the business content `biz` as given (the crate's builder
/// always sends `out_request_no` and only allowlisted fields), signed with the app key; the raw
/// answer text.
async fn raw_refund(h: &Harness, biz: Value) -> String {
    let request = refund_request(
        APP_ID,
        &Signer::from_pem_or_base64(APP_KEY).unwrap(),
        &RefundRequest {
            out_trade_no: "P1".to_owned(),
            out_request_no: "R1".to_owned(),
            refund_fen: 1,
            refund_reason: None,
        },
        Utc::now(),
    )
    .unwrap();
    let mut params = request.params().clone();
    params.remove("sign");
    params.insert("biz_content", biz.to_string());
    let sign = Signer::from_pem_or_base64(APP_KEY)
        .unwrap()
        .sign(params.sign_content(&["sign"]).as_bytes())
        .unwrap();
    params.insert("sign", sign);
    h.http
        .post(h.gateway())
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(params.to_form())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn refund_node(raw: &str) -> Value {
    serde_json::from_str::<Value>(raw).unwrap()["alipay_trade_refund_response"].clone()
}

#[tokio::test]
async fn a_full_refund_closes_the_trade() {
    let h = start().await;
    let no = paid_trade(&h, "FULL", 19900).await;
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(0));
    let refund = h
        .client
        .refund(&no, &no, 19900, Some("订单退款"))
        .await
        .unwrap();
    assert!(refund.fund_change);
    assert_eq!(refund.refund_fee_fen, 19900);
    assert!(refund.gmt_refund_pay.is_some());
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(19900));

    let queried = h.client.query(&no).await.unwrap();
    assert_eq!(queried.trade_status, TradeStatus::TradeClosed);
    // A closed trade takes no further refund, but the same refund again is still answered.
    let error = h.client.refund(&no, "R2", 1, None).await.unwrap_err();
    assert_eq!(
        api_error(error),
        ("40004".into(), Some("ACQ.TRADE_STATUS_ERROR".into()), true)
    );
    let again = h.client.refund(&no, &no, 19900, None).await.unwrap();
    assert_eq!((again.fund_change, again.refund_fee_fen), (false, 19900));
}

#[tokio::test]
async fn a_refund_without_out_request_no_is_a_full_refund_numbered_by_the_order() {
    let h = start().await;
    let no = paid_trade(&h, "NOREQ", 19900).await;
    // Without out_request_no, anything but the whole amount is refused.
    let partial = refund_node(
        &raw_refund(
            &h,
            serde_json::json!({"out_trade_no": no, "refund_amount": "50.00"}),
        )
        .await,
    );
    assert_eq!(partial["sub_code"], "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");

    let raw = raw_refund(
        &h,
        serde_json::json!({"out_trade_no": no, "refund_amount": "199.00"}),
    )
    .await;
    let node = refund_node(&raw);
    assert_eq!(node["code"], "10000");
    assert_eq!(node["fund_change"], "Y");
    assert_eq!(node["refund_fee"], "199.00");
    // Alipay's answer carries the masked payer login, for the gateway to drop.
    assert!(node["buyer_logon_id"].as_str().unwrap().contains("****"));
    assert!(raw.starts_with(
        "{\"alipay_trade_refund_response\":{\"code\":\"10000\",\"msg\":\"Success\",\"buyer_logon_id\""
    ));

    let found = h.client.refund_query(&no, &no).await.unwrap();
    assert_eq!(found.refund_status, RefundStatus::Success);
    assert_eq!(found.refund_fen, Some(19900));
}

#[tokio::test]
async fn two_partial_refunds_then_an_over_refund_is_refused() {
    let h = start().await;
    let no = paid_trade(&h, "PART", 19900).await;
    let first = h.client.refund(&no, "R1", 5000, None).await.unwrap();
    assert_eq!((first.fund_change, first.refund_fee_fen), (true, 5000));
    let second = h.client.refund(&no, "R2", 10000, None).await.unwrap();
    assert_eq!((second.fund_change, second.refund_fee_fen), (true, 15000));
    assert_eq!(
        h.client.query(&no).await.unwrap().trade_status,
        TradeStatus::TradeSuccess
    );

    let error = h.client.refund(&no, "R3", 4901, None).await.unwrap_err();
    assert_eq!(
        api_error(error),
        (
            "40004".into(),
            Some("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL".into()),
            true
        )
    );
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(15000));
    // The refused refund is unknown to the refund query.
    let refused = h.client.refund_query(&no, "R3").await.unwrap();
    assert_eq!(refused.refund_status, RefundStatus::NotFound);

    // Exactly what is left brings the trade to TRADE_CLOSED.
    let last = h.client.refund(&no, "R3", 4900, None).await.unwrap();
    assert_eq!((last.fund_change, last.refund_fee_fen), (true, 19900));
    assert_eq!(
        h.client.query(&no).await.unwrap().trade_status,
        TradeStatus::TradeClosed
    );
}

#[tokio::test]
async fn the_same_out_request_no_again_moves_no_money() {
    let h = start().await;
    let no = paid_trade(&h, "IDEM", 19900).await;
    let first = h.client.refund(&no, "R1", 5000, None).await.unwrap();
    let repeat = h.client.refund(&no, "R1", 5000, None).await.unwrap();
    assert!(first.fund_change);
    assert!(!repeat.fund_change);
    assert_eq!(repeat.refund_fee_fen, 5000);
    assert_eq!(repeat.gmt_refund_pay, first.gmt_refund_pay);
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(5000));
    // The same number with another amount is not the same refund.
    let error = h.client.refund(&no, "R1", 6000, None).await.unwrap_err();
    assert_eq!(
        api_error(error).1.as_deref(),
        Some("ACQ.DISCORDANT_REPEAT_REQUEST")
    );
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(5000));
}

#[tokio::test]
async fn refunds_of_unpaid_or_unknown_trades_are_refused() {
    let h = start().await;
    let no = order_no("UNPAID");
    h.client
        .precreate(&order(&no, 19900, NOWHERE))
        .await
        .unwrap();
    let error = h.client.refund(&no, "R1", 100, None).await.unwrap_err();
    assert_eq!(
        api_error(error),
        ("40004".into(), Some("ACQ.TRADE_STATUS_ERROR".into()), true)
    );
    h.client.close(&no).await.unwrap();
    let error = h.client.refund(&no, "R1", 100, None).await.unwrap_err();
    assert_eq!(
        api_error(error).1.as_deref(),
        Some("ACQ.TRADE_STATUS_ERROR")
    );
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(0));

    let unknown = order_no("NONE");
    let error = h
        .client
        .refund(&unknown, "R1", 100, None)
        .await
        .unwrap_err();
    assert!(error.api().unwrap().is_trade_not_exist());
    let error = h.client.refund_query(&unknown, "R1").await.unwrap_err();
    assert!(error.api().unwrap().is_trade_not_exist());
    assert_eq!(h.sandbox.alipay_refunded_fen(&unknown), None);
}

#[tokio::test]
async fn the_refund_query_answers_each_refunds_own_amount() {
    let h = start().await;
    let no = paid_trade(&h, "RQ", 19900).await;
    h.client.refund(&no, "R1", 5000, None).await.unwrap();
    h.client.refund(&no, "R2", 2500, None).await.unwrap();
    let second = h.client.refund_query(&no, "R2").await.unwrap();
    assert_eq!(second.refund_status, RefundStatus::Success);
    assert_eq!(second.refund_fen, Some(2500));
    assert_eq!(second.total_fen, Some(19900));
    assert_eq!(second.out_request_no, "R2");
    let unknown = h.client.refund_query(&no, "R9").await.unwrap();
    assert_eq!(unknown.refund_status, RefundStatus::NotFound);
    assert_eq!(unknown.refund_fen, None);
}

#[tokio::test]
async fn refund_fields_outside_the_allowlist_and_api_faults_are_answered_as_for_any_call() {
    let h = start().await;
    let no = paid_trade(&h, "RFLT", 19900).await;
    let node = refund_node(
        &raw_refund(
            &h,
            serde_json::json!({"out_trade_no": no, "refund_amount": "1.00", "out_request_no": "R1", "goods_detail": []}),
        )
        .await,
    );
    assert_eq!(node["sub_code"], "ACQ.INVALID_PARAMETER");

    h.sandbox.set_faults(Faults {
        api_errors: 1,
        ..Faults::default()
    });
    let error = h.client.refund(&no, "R1", 100, None).await.unwrap_err();
    assert!(error.is_unavailable());
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(0));

    h.sandbox.set_faults(Faults {
        corrupt_response_signature: true,
        ..Faults::default()
    });
    let error = h.client.refund(&no, "R1", 100, None).await.unwrap_err();
    assert!(matches!(error, Error::Response(_)), "{error:?}");
    h.sandbox.set_faults(Faults::default());
    // The refund went through although its answer was refused: the same number is safe.
    let again = h.client.refund(&no, "R1", 100, None).await.unwrap();
    assert_eq!((again.fund_change, again.refund_fee_fen), (false, 100));
}

#[tokio::test]
async fn api_latency_holds_the_answer_of_a_refund_already_made() {
    let h = start().await;
    let no = paid_trade(&h, "LAT", 19900).await;
    h.sandbox.set_faults(Faults {
        api_latency_ms: 3_000,
        ..Faults::default()
    });
    // A gateway that gives up after 300 ms, as on a provider that acted and then timed out.
    let impatient = Client::new(
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
        h.gateway(),
        APP_ID,
        Arc::new(Signer::from_pem_or_base64(APP_KEY).unwrap()),
        Arc::new(Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap()),
        Arc::new(Utc::now),
    );
    let error = impatient.refund(&no, "R1", 5000, None).await.unwrap_err();
    assert!(
        matches!(&error, Error::Transport(e) if e.is_timeout()),
        "{error:?}"
    );
    // The refund was made before the wait began.
    assert_eq!(h.sandbox.alipay_refunded_fen(&no), Some(5000));

    h.sandbox.set_faults(Faults::default());
    let again = h.client.refund(&no, "R1", 5000, None).await.unwrap();
    assert_eq!((again.fund_change, again.refund_fee_fen), (false, 5000));
}

/// A tiny merchant: answers each notification with the next scripted body, then `success` once
/// the notification verifies (`fail` when it does not).
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<(Bytes, String, String)>>>,
}

type ReceiverState = (
    Arc<Mutex<Vec<(Bytes, String, String)>>>,
    Arc<Mutex<VecDeque<&'static str>>>,
);

impl Receiver {
    async fn start(script: &[&'static str]) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let router = axum::Router::new()
            .route("/webhooks/alipay", post(receive))
            .with_state((received.clone(), script));
        let base = serve(router).await;
        Receiver {
            url: format!("{base}/webhooks/alipay"),
            received,
        }
    }

    /// (body, content type, what was answered)
    fn received(&self) -> Vec<(Bytes, String, String)> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(
    State((received, script)): State<ReceiverState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> String {
    let scripted = script.lock().unwrap().pop_front();
    let answer = scripted.unwrap_or_else(|| {
        let verifier = Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap();
        if verify_trade_notification(&body, &verifier).is_ok() {
            "success"
        } else {
            "fail"
        }
    });
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    received
        .lock()
        .unwrap()
        .push((body, content_type, answer.to_owned()));
    answer.to_owned()
}

#[tokio::test]
async fn paying_sends_a_signed_notification_resent_until_success() {
    let h = start().await;
    // `SUCCESS` and `success\n` are not `success`.
    let receiver = Receiver::start(&["fail", "SUCCESS", "success\n"]).await;
    let no = order_no("NT");
    h.client
        .precreate(&order(&no, 19900, &receiver.url))
        .await
        .unwrap();
    let (_, paid) = h.pay(&no).await;

    let received = eventually("four deliveries", || {
        let r = receiver.received();
        (r.len() >= 4).then_some(r)
    })
    .await;
    let verifier = Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap();
    let mut ids = Vec::new();
    for (body, content_type, _) in &received {
        assert!(content_type.starts_with("application/x-www-form-urlencoded"));
        let n = verify_trade_notification(body, &verifier).unwrap();
        assert_eq!(n.app_id, APP_ID);
        assert_eq!(n.seller_id.as_deref(), Some(SELLER_ID));
        assert_eq!(n.out_trade_no, no);
        assert_eq!(n.trade_no, paid["trade_no"].as_str().unwrap());
        assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
        assert_eq!(n.total_fen, 19900);
        assert!(n.paid_at.is_some());
        ids.push(n.notify_id);
        let params = Params::from_form(body).unwrap();
        for key in [
            "buyer_id",
            "buyer_logon_id",
            "gmt_payment",
            "charset",
            "version",
        ] {
            assert!(params.non_empty(key).is_some(), "{key}");
        }
        assert_eq!(params.get("sign_type"), Some("RSA2"));
    }
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one notify_id throughout"
    );
    assert_eq!(received[3].2, "success");

    let records = eventually("the acknowledged record", || {
        let r: Vec<_> = h
            .sandbox
            .notifications()
            .into_iter()
            .filter(|r| r.out_trade_no == no)
            .collect();
        r.iter().any(|r| r.acknowledged).then_some(r)
    })
    .await;
    assert_eq!(records.len(), 4);
    assert_eq!(
        records.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(
        records.iter().map(|r| r.acknowledged).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    // Nothing more after `success`.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.received().len(), 4);
}

#[tokio::test]
async fn duplicate_notifications_send_copies_with_one_notify_id() {
    let h = start().await;
    h.sandbox.set_faults(Faults {
        duplicate_notifications: 3,
        ..Faults::default()
    });
    let receiver = Receiver::start(&[]).await;
    let no = order_no("DUP");
    h.client
        .precreate(&order(&no, 100, &receiver.url))
        .await
        .unwrap();
    h.pay(&no).await;
    let received = eventually("three copies", || {
        let r = receiver.received();
        (r.len() >= 3).then_some(r)
    })
    .await;
    let verifier = Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap();
    let ids: Vec<String> = received
        .iter()
        .map(|(body, _, _)| {
            verify_trade_notification(body, &verifier)
                .unwrap()
                .notify_id
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert!(received.iter().all(|(_, _, answer)| answer == "success"));
}
