//! The simulator's reading of the protocols is its own (issue 19): requests signed with the
//! gateway's provider crates' building blocks pass the sandbox only when those blocks
//! canonicalise as the providers publish. Each test signs once as `paygate-wechatpay` /
//! `paygate-alipay` do and once with one deliberate canonicalisation mistake (Alipay's pairs not
//! sorted, or values encoded; WeChat's URL without its query), and the sandbox, which checks with
//! `paygate_sandbox::wire` only, refuses exactly the mistakes. Were the sandbox to share the
//! crates' sign-string code, a mistake made in a crate would be made on both sides and pass;
//! here the same mistake made inside a crate fails the first half of these tests.
//!
//! Run by hand once (2026-12-06), with a mutation in the provider crate and
//! `cargo test -p paygate-sandbox --no-fail-fast --test sandbox --test alipay --test independence`:
//! `paygate_alipay::Params::sign_content` iterating in reverse (not sorted) failed 39 tests (37 of
//! `alipay`, this file's Alipay test, `keys_dir`'s signed precreate); `request_message` signing
//! the URL without its query failed 31 (30 of `sandbox`, this file's WeChat test). Before the
//! sandbox had its own `wire` it built its sign strings with these same two functions, so either
//! mutation was made on both sides at once (not run).

use paygate_sandbox::{AlipaySandboxConfig, Sandbox, SandboxConfig, WechatSandboxConfig};
use serde_json::Value;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const MCHID: &str = "1900000001";
const MERCHANT_SERIAL: &str = "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB";
const APP_ID: &str = "2021000122671080";

/// The sandbox, both halves, on port 0: `http://addr`.
async fn start() -> String {
    let sandbox = Sandbox::new(SandboxConfig {
        wechatpay: WechatSandboxConfig {
            mchid: MCHID.to_owned(),
            appid: "wx8888888888888888".to_owned(),
            merchant_serial: MERCHANT_SERIAL.to_owned(),
            merchant_public_key_pem: fixture("test_merchant_pub.pem"),
            apiv3_key: "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb".to_owned(),
            platform_private_key_pem: fixture("test_platform_key.pem"),
            platform_key_id: "PUB_KEY_ID_0114232134912410000000000000".to_owned(),
        },
        time_divisor: 1000,
        clock: paygate_sandbox::system_clock(),
    })
    .unwrap()
    .with_alipay(AlipaySandboxConfig {
        app_id: APP_ID.to_owned(),
        app_public_key_pem: fixture("test_app_public_key.pem"),
        alipay_private_key_pem: fixture("test_alipay_private_key.pem"),
        seller_id: "2088102177846880".to_owned(),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

// ---- WeChat Pay: the signed URL is the path with its query ------------------------------------

/// A query GET signed by `paygate_wechatpay::MerchantCredentials` over `signed_url`, sent to
/// `url`: the status and the error code, if any.
async fn wechat_query(base: &str, url: &str, signed_url: &str) -> (u16, String) {
    let credentials = paygate_wechatpay::MerchantCredentials {
        mchid: MCHID.to_owned(),
        serial_no: MERCHANT_SERIAL.to_owned(),
        signer: paygate_wechatpay::Signer::from_pem(&fixture("test_merchant_key.pem")).unwrap(),
    };
    let now = chrono::Utc::now().timestamp();
    let nonce = paygate_wechatpay::new_nonce();
    let authorization = credentials.authorization("GET", signed_url, now, &nonce, b"");
    let response = reqwest::Client::new()
        .get(format!("{base}/sandbox/wechatpay{url}"))
        .header("Accept", "application/json")
        .header("User-Agent", "paygate-independence-test")
        .header("Authorization", authorization)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_wechat_request_signed_over_its_path_and_query_passes_and_over_its_path_alone_is_refused()
{
    let base = start().await;
    let url = format!("/v3/pay/transactions/out-trade-no/INDEPENDENT0001?mchid={MCHID}");

    // As the provider crate canonicalises: past the signature check, to the ledger.
    assert_eq!(
        wechat_query(&base, &url, &url).await,
        (404, "ORDER_NOT_EXIST".to_owned())
    );
    // The query left out of the signed URL: the sandbox's own message differs.
    let (path, _) = url.split_once('?').unwrap();
    assert_eq!(
        wechat_query(&base, &url, path).await,
        (401, "SIGN_ERROR".to_owned())
    );
}

// ---- Alipay: the sign string is every pair but `sign`, sorted, values raw ---------------------

/// The common parameters of an `alipay.trade.query`, in the order a client might list them.
fn query_pairs() -> Vec<(&'static str, String)> {
    let timestamp = paygate_alipay::beijing_time(chrono::Utc::now());
    vec![
        ("method", "alipay.trade.query".to_owned()),
        ("app_id", APP_ID.to_owned()),
        ("charset", "utf-8".to_owned()),
        ("sign_type", "RSA2".to_owned()),
        ("timestamp", timestamp),
        ("version", "1.0".to_owned()),
        (
            "biz_content",
            r#"{"out_trade_no":"INDEPENDENT0002"}"#.to_owned(),
        ),
    ]
}

/// POSTs the pairs with `sign` (signed over `content` by `paygate_alipay::Signer`) as a form;
/// the answer node's `code` and `sub_code`.
async fn alipay_query(base: &str, pairs: &[(&str, String)], content: &str) -> (String, String) {
    let signer =
        paygate_alipay::Signer::from_pem_or_base64(&fixture("test_app_private_key_pkcs8.pem"))
            .unwrap();
    let mut params = paygate_alipay::Params::new();
    for (key, value) in pairs {
        params.insert(*key, value.clone());
    }
    params.insert("sign", signer.sign(content.as_bytes()).unwrap());
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/sandbox/alipay/gateway.do"))
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded;charset=utf-8",
        )
        .body(params.to_form())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = &answer["alipay_trade_query_response"];
    let text = |key: &str| node[key].as_str().unwrap_or_default().to_owned();
    (text("code"), text("sub_code"))
}

#[tokio::test]
async fn an_alipay_request_signed_over_its_sorted_pairs_passes_and_over_unsorted_or_encoded_ones_is_refused()
 {
    let base = start().await;
    let pairs = query_pairs();
    let refused = ("40002".to_owned(), "isv.invalid-signature".to_owned());

    // As the provider crate builds the sign string: past the signature, to the ledger.
    let mut params = paygate_alipay::Params::new();
    for (key, value) in &pairs {
        params.insert(*key, value.clone());
    }
    let sorted = params.sign_content(&["sign"]);
    assert_eq!(
        alipay_query(&base, &pairs, &sorted).await,
        ("40004".to_owned(), "ACQ.TRADE_NOT_EXIST".to_owned())
    );

    // The same pairs in the order given, not sorted.
    let unsorted: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_ne!(unsorted.join("&"), sorted);
    assert_eq!(
        alipay_query(&base, &pairs, &unsorted.join("&")).await,
        refused
    );

    // Sorted, but the values form-encoded as on the wire rather than raw.
    let encoded = params.to_form();
    assert_ne!(encoded, sorted);
    assert_eq!(alipay_query(&base, &pairs, &encoded).await, refused);

    // `sign_type` left out (the notification rule, not the request rule).
    let without_sign_type = params.sign_content(&["sign", "sign_type"]);
    assert_eq!(
        alipay_query(&base, &pairs, &without_sign_type).await,
        refused
    );
}
