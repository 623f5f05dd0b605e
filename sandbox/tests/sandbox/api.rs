//! The WeChat Pay API half: orders, queries, closes, and WeChat's request rules.

use std::sync::Arc;

use paygate_wechatpay::{ClientError, SignatureHeaders, TradeState, new_nonce, verify_signed};
use serde_json::{Value, json};

use paygate_sandbox::Faults;
use paygate_wechatpay::RetryPolicy;

use crate::harness::{
    Harness, MCHID, client_with_clock, credentials, now, order, order_no, platform_keys, start,
};

const NOTIFY: &str = "http://127.0.0.1:9/webhooks/wechatpay";

/// A request signed by hand, for the cases the Client cannot produce.
struct Raw<'a> {
    method: &'a str,
    path: &'a str,
    body: &'a str,
    authorization: Option<String>,
    user_agent: bool,
    content_type: bool,
}

impl<'a> Raw<'a> {
    fn post(path: &'a str, body: &'a str) -> Raw<'a> {
        Raw {
            method: "POST",
            path,
            body,
            authorization: Some(credentials().authorization(
                "POST",
                path,
                now(),
                &new_nonce(),
                body.as_bytes(),
            )),
            user_agent: true,
            content_type: true,
        }
    }

    /// Sends it; returns the status and the JSON body, after checking the answer is signed.
    async fn send(self, h: &Harness) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = h
            .http
            .request(method, format!("{}/sandbox/wechatpay{}", h.base, self.path))
            .header("Accept", "application/json")
            .body(self.body.to_owned());
        if let Some(authorization) = self.authorization {
            request = request.header("Authorization", authorization);
        }
        if self.user_agent {
            request = request.header("User-Agent", "paygate-tests");
        }
        if self.content_type {
            request = request.header("Content-Type", "application/json");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap();
        let signature = SignatureHeaders::from_header_map(&headers).expect("answer is signed");
        assert_eq!(
            verify_signed(&platform_keys(), &signature, &body, now()),
            Ok(())
        );
        assert!(headers.contains_key("Request-ID"));
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        (status, json)
    }
}

fn order_json(out_trade_no: &str, total: i64) -> String {
    serde_json::to_string(&order(out_trade_no, total, NOTIFY)).unwrap()
}

fn assert_api_error(result: Result<impl std::fmt::Debug, ClientError>, status: u16, code: &str) {
    match result {
        Err(ClientError::Api {
            status: s, code: c, ..
        }) => assert_eq!((s, c.as_str()), (status, code)),
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn order_query_pay_query_and_the_client_drops_payer_data() {
    let h = start().await;
    let out_trade_no = order_no("PAY");
    let created = h
        .client
        .native_order(&order(&out_trade_no, 19900, NOTIFY))
        .await
        .unwrap();
    assert!(created.code_url.starts_with("weixin://wxpay/bizpayurl?pr="));

    let unpaid = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(unpaid.trade_state, TradeState::NotPay);
    assert_eq!(unpaid.transaction_id, None);
    assert_eq!(unpaid.amount.unwrap().total, Some(19900));

    let paid: Value = h
        .http
        .post(format!("{}/sandbox/pay/{out_trade_no}", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let openid = paid["payer"]["openid"].as_str().unwrap().to_owned();
    assert!(openid.starts_with('o') && openid.len() == 28, "{openid}");
    let transaction_id = paid["transaction_id"].as_str().unwrap();
    assert_eq!(transaction_id.len(), 28);
    assert!(transaction_id.starts_with("42") && transaction_id.bytes().all(|b| b.is_ascii_digit()));
    assert!(paid["success_time"].as_str().unwrap().ends_with("+08:00"));

    let settled = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(settled.trade_state, TradeState::Success);
    assert_eq!(settled.transaction_id.as_deref(), Some(transaction_id));
    assert_eq!(settled.trade_type.as_deref(), Some("NATIVE"));
    assert_eq!(settled.amount.as_ref().unwrap().payer_total, Some(19900));
    let kept = serde_json::to_string(&settled).unwrap();
    assert!(
        !kept.contains(&openid),
        "payer data survived parsing: {kept}"
    );
    assert!(!kept.contains("payer\""));

    // Paid: a re-order is an error, never the old code_url.
    assert_api_error(
        h.client
            .native_order(&order(&out_trade_no, 19900, NOTIFY))
            .await,
        400,
        "ORDER_PAID",
    );
    assert_api_error(h.client.close(&out_trade_no).await, 400, "ORDER_PAID");
}

#[tokio::test]
async fn unknown_order_is_404_order_not_exist_and_not_unavailable() {
    let h = start().await;
    let error = h
        .client
        .query_by_out_trade_no("NOSUCHORDER1")
        .await
        .unwrap_err();
    assert!(!error.is_unavailable());
    assert_api_error(Err::<(), _>(error), 404, "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn unsigned_and_badly_signed_requests_get_401_sign_error() {
    let h = start().await;
    let path = "/v3/pay/transactions/native";
    let body = order_json(&order_no("SIG"), 100);

    let mut unsigned = Raw::post(path, &body);
    unsigned.authorization = None;
    let (status, json) = unsigned.send(&h).await;
    assert_eq!((status, json["code"].as_str()), (401, Some("SIGN_ERROR")));

    // Signed over other bytes than those sent.
    let mut tampered = Raw::post(path, &body);
    tampered.body = "{}";
    assert_eq!(tampered.send(&h).await.0, 401);

    // Attribute order is free: the doc's order (signature before timestamp) is accepted.
    let header = credentials().authorization("POST", path, now(), &new_nonce(), body.as_bytes());
    let parsed = paygate_wechatpay::Authorization::parse(&header).unwrap();
    let doc_order = format!(
        "WECHATPAY2-SHA256-RSA2048 mchid=\"{}\",nonce_str=\"{}\",signature=\"{}\",timestamp=\"{}\",serial_no=\"{}\"",
        parsed.mchid, parsed.nonce_str, parsed.signature, parsed.timestamp, parsed.serial_no
    );
    let mut reordered = Raw::post(path, &body);
    reordered.authorization = Some(doc_order);
    assert_eq!(reordered.send(&h).await.0, 200);

    // Another serial than the configured merchant certificate.
    let other_serial = header.replace("408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB", "0000");
    let mut wrong_serial = Raw::post(path, &body);
    wrong_serial.authorization = Some(other_serial);
    assert_eq!(wrong_serial.send(&h).await.0, 401);

    // Header mchid differs from body mchid.
    let other_mchid = order_json(&order_no("SIG"), 100).replace(MCHID, "1900000002");
    let (status, json) = Raw::post(path, &other_mchid).send(&h).await;
    assert_eq!((status, json["code"].as_str()), (401, Some("SIGN_ERROR")));
}

#[tokio::test]
async fn a_client_clock_five_minutes_off_is_refused() {
    let h = start().await;
    for skew in [-300, 300] {
        let client = client_with_clock(&h.base, Arc::new(move || now() + skew));
        // The sandbox refuses the request; its signed answer is also outside the client's own
        // window, so the client refuses to trust even the error.
        let error = client.query_by_out_trade_no("ANYORDER1").await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Verify(paygate_wechatpay::VerifyError::StaleTimestamp)
            ),
            "{error:?}"
        );
    }
    let (status, json) = {
        let path = "/v3/pay/transactions/native";
        let body = order_json(&order_no("OLD"), 100);
        let mut stale = Raw::post(path, &body);
        stale.authorization = Some(credentials().authorization(
            "POST",
            path,
            now() - 301,
            &new_nonce(),
            body.as_bytes(),
        ));
        stale.send(&h).await
    };
    assert_eq!((status, json["code"].as_str()), (401, Some("SIGN_ERROR")));
}

#[tokio::test]
async fn missing_user_agent_accept_or_content_type_is_400_invalid_request() {
    let h = start().await;
    let path = "/v3/pay/transactions/native";
    let body = order_json(&order_no("HDR"), 100);
    let mut no_agent = Raw::post(path, &body);
    no_agent.user_agent = false;
    let (status, json) = no_agent.send(&h).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );

    let mut no_type = Raw::post(path, &body);
    no_type.content_type = false;
    let (status, json) = no_type.send(&h).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("INVALID_REQUEST"))
    );
}

#[tokio::test]
async fn bad_parameters_are_400_param_error() {
    let h = start().await;
    let path = "/v3/pay/transactions/native";
    let long_description = "职".repeat(128);
    let cases: Vec<(String, &str)> = vec![
        (order_json("P1234", 100), "PARAM_ERROR"), // 5 chars
        (order_json(&"P".repeat(33), 100), "PARAM_ERROR"), // 33 chars
        (order_json("P12345/6", 100), "PARAM_ERROR"), // '/' not allowed
        (order_json(&order_no("AMT"), 0), "PARAM_ERROR"), // below 1 fen
        (
            order_json(&order_no("CUR"), 100).replace("\"CNY\"", "\"USD\""),
            "PARAM_ERROR",
        ),
        (
            order_json(&order_no("DSC"), 100).replace("职前通服务", &long_description),
            "PARAM_ERROR",
        ),
        (
            order_json(&order_no("URL"), 100).replace(NOTIFY, "ftp://x/y"),
            "PARAM_ERROR",
        ),
        (
            order_json(&order_no("URL"), 100).replace(&format!(",\"notify_url\":\"{NOTIFY}\""), ""),
            "PARAM_ERROR",
        ),
        (
            order_json(&order_no("FEN"), 100).replace("\"total\":100", "\"total\":1.5"),
            "PARAM_ERROR",
        ),
        (
            order_json(&order_no("APP"), 100).replace("wx8888888888888888", "wx0000000000000000"),
            "APPID_MCHID_NOT_MATCH",
        ),
        // Outside the privacy allowlist: the sandbox refuses what WeChat would accept.
        (
            order_json(&order_no("ATT"), 100)
                .replace("{\"appid\"", "{\"attach\":\"emp_42\",\"appid\""),
            "INVALID_REQUEST",
        ),
    ];
    for (body, code) in cases {
        let (status, json) = Raw::post(path, &body).send(&h).await;
        assert_eq!((status, json["code"].as_str()), (400, Some(code)), "{body}");
        assert!(json["message"].is_string());
    }
    // The pipe and star are allowed, and the client percent-encodes `|` in the query URL.
    let odd = "P_1-2|3*4";
    h.client
        .native_order(&order(odd, 100, NOTIFY))
        .await
        .unwrap();
    let t = h.client.query_by_out_trade_no(odd).await.unwrap();
    assert_eq!(t.out_trade_no, odd);
}

#[tokio::test]
async fn identical_reorder_returns_the_same_code_url_and_different_params_are_403() {
    let h = start().await;
    let out_trade_no = order_no("RE");
    let first = h
        .client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap();
    let again = h
        .client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap();
    assert_eq!(first.code_url, again.code_url);
    let error = h
        .client
        .native_order(&order(&out_trade_no, 200, NOTIFY))
        .await
        .unwrap_err();
    assert!(!error.is_unavailable());
    assert_api_error(Err::<(), _>(error), 403, "OUT_TRADE_NO_USED");
}

#[tokio::test]
async fn close_answers_204_and_the_order_is_closed_for_good() {
    let h = start().await;
    let out_trade_no = order_no("CL");
    h.client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap();
    h.client.close(&out_trade_no).await.unwrap();
    // Re-entrant.
    h.client.close(&out_trade_no).await.unwrap();
    let closed = h.client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(closed.trade_state, TradeState::Closed);

    let pay = h
        .http
        .post(format!("{}/sandbox/pay/{out_trade_no}", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(pay.status().as_u16(), 400);
    let json: Value = pay.json().await.unwrap();
    assert_eq!(json["code"], "ORDER_CLOSED");

    assert_api_error(
        h.client
            .native_order(&order(&out_trade_no, 100, NOTIFY))
            .await,
        400,
        "ORDER_CLOSED",
    );
    assert_api_error(h.client.close("NOSUCHORDER2").await, 404, "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn paying_an_unknown_order_is_a_json_404() {
    let h = start().await;
    let response = h
        .http
        .post(format!("{}/sandbox/pay/NOSUCHORDER3", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["code"], "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn faults_reject_unknown_fields_and_show_the_current_setting() {
    let h = start().await;
    let put = |body: Value| {
        h.http
            .put(format!("{}/sandbox/faults", h.base))
            .json(&body)
            .send()
    };
    assert_eq!(
        put(json!({"duplicate_notification": 2}))
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        put(json!({"duplicate_notifications": 2}))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let current: Value = h
        .http
        .get(format!("{}/sandbox/faults", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        current,
        json!({
            "duplicate_notifications": 2,
            "signature_probe": false,
            "api_errors": 0,
            "corrupt_response_signature": false,
            "drop_notifications": 0.0,
            "delay_notifications_ms": 0,
            "reorder": false,
            "api_error_rate": 0.0,
            "api_latency_ms": 0,
            "pay_before_close": false,
            "wechat_refund_outcome": "success",
            "bill_missing_row": null,
            "bill_duplicate_row": null,
            "bill_extra_row": false,
            "bill_altered_amount": null,
            "bill_altered_status": null,
            "bill_wrong_hash": false,
            "bill_not_ready": false,
            "bill_url_expired": false,
            "bill_truncated": false,
            "bill_bad_encoding": false,
            "bill_endless_download": false,
        })
    );
    assert_eq!(h.sandbox.faults().duplicate_notifications, 2);
}

#[tokio::test]
async fn keys_endpoint_shows_the_platform_public_key() {
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
    assert_eq!(
        keys["wechatpay"]["platform_key_id"],
        crate::harness::PLATFORM_KEY_ID
    );
    assert_eq!(
        keys["wechatpay"]["public_key_pem"],
        crate::harness::PLATFORM_PUB
    );
}

#[tokio::test]
async fn unsimulated_wechat_paths_get_a_signed_404() {
    let h = start().await;
    let mut raw = Raw::post("/v3/pay/transactions/h6", "{}");
    raw.method = "POST";
    let (status, json) = raw.send(&h).await;
    assert_eq!(
        (status, json["code"].as_str()),
        (404, Some("RESOURCE_NOT_EXISTS"))
    );
}

fn quick_retries(h: &Harness) -> paygate_wechatpay::Client {
    h.client.clone().with_retry(RetryPolicy {
        max_attempts: 3,
        initial_backoff: std::time::Duration::from_millis(5),
        max_backoff: std::time::Duration::from_millis(20),
    })
}

#[tokio::test]
async fn queries_are_retried_on_5xx_a_bounded_number_of_times() {
    let h = start().await;
    let client = quick_retries(&h);
    let out_trade_no = order_no("RTY");
    client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap();

    h.sandbox.set_faults(Faults {
        api_errors: 2,
        ..Faults::default()
    });
    let t = client.query_by_out_trade_no(&out_trade_no).await.unwrap();
    assert_eq!(t.trade_state, TradeState::NotPay);
    assert_eq!(h.sandbox.faults().api_errors, 0);

    h.sandbox.set_faults(Faults {
        api_errors: 5,
        ..Faults::default()
    });
    let error = client
        .query_by_out_trade_no(&out_trade_no)
        .await
        .unwrap_err();
    assert!(error.is_unavailable());
    assert_api_error(Err::<(), _>(error), 500, "SYSTEM_ERROR");
    assert_eq!(h.sandbox.faults().api_errors, 2, "three attempts, no more");

    h.sandbox.set_faults(Faults {
        api_errors: 1,
        ..Faults::default()
    });
    client.close(&out_trade_no).await.unwrap();
    assert_eq!(h.sandbox.faults().api_errors, 0);
}

#[tokio::test]
async fn creating_an_order_is_never_retried_blindly() {
    let h = start().await;
    let client = quick_retries(&h);
    h.sandbox.set_faults(Faults {
        api_errors: 1,
        ..Faults::default()
    });
    let out_trade_no = order_no("ONE");
    let error = client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap_err();
    assert!(error.is_unavailable());
    assert_eq!(h.sandbox.faults().api_errors, 0);
    assert_api_error(
        client.query_by_out_trade_no(&out_trade_no).await,
        404,
        "ORDER_NOT_EXIST",
    );
}

#[tokio::test]
async fn a_response_with_a_corrupt_signature_is_refused_before_it_is_parsed() {
    let h = start().await;
    let out_trade_no = order_no("COR");
    h.client
        .native_order(&order(&out_trade_no, 100, NOTIFY))
        .await
        .unwrap();
    h.sandbox.set_faults(Faults {
        corrupt_response_signature: true,
        ..Faults::default()
    });
    let error = h
        .client
        .query_by_out_trade_no(&out_trade_no)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Verify(paygate_wechatpay::VerifyError::BadSignature)
        ),
        "{error:?}"
    );
    assert!(!error.is_unavailable());
}
