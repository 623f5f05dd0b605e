//! DESIGN.md §1.1 and §1.2: only the order number and the amount leave for WeChat (plus merchant
//! ids, the neutral description, expiry and notify URL), and no payer data is ever stored.

mod common;

use std::collections::BTreeSet;

use common::{TestApp, captured_logs};
use paygate::clock::Clock;
use serde_json::Value;

const EMPLOYER: &str = "emp_privacy_5309";

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Nothing in any request WeChat received names the employer or the plan.
fn assert_nothing_about_the_employer_left(app: &TestApp) {
    for r in app.sandbox.wechat_requests() {
        for secret in [EMPLOYER, "resume-", "简历"] {
            assert!(
                !r.body.contains(secret) && !r.path.contains(secret),
                "{secret:?} left for WeChat: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_order_sends_wechat_only_the_allowlisted_fields() {
    let app = TestApp::spawn().await;
    let order = app.create_order(EMPLOYER, "resume-download-200").await;
    let order_no = order["order_no"].as_str().unwrap();

    let requests = app.sandbox.wechat_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v3/pay/transactions/native")
    );
    let body: Value = serde_json::from_str(&r.body).expect("JSON body");
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "appid",
            "mchid",
            "description",
            "out_trade_no",
            "time_expire",
            "notify_url",
            "amount"
        ])
    );
    assert_eq!(keys(&body["amount"]), BTreeSet::from(["total", "currency"]));
    assert_eq!(body["description"], "职前通服务");
    assert_eq!(body["out_trade_no"], order_no);
    assert_eq!(body["amount"]["total"], 59900);
    assert_eq!(body["amount"]["currency"], "CNY");
    assert_eq!(body["appid"], paygate::app::SANDBOX_APPID);
    assert_eq!(body["mchid"], paygate::app::SANDBOX_MCHID);
    // The order's own expiry travels with it (RFC 3339, +08:00), so WeChat refuses a late
    // payment by itself.
    assert_eq!(body["time_expire"], order["expires_at"]);
    assert!(body["time_expire"].as_str().unwrap().ends_with("+08:00"));
    assert_eq!(
        body["notify_url"],
        format!("{}/webhooks/wechatpay", app.url)
    );
    assert_nothing_about_the_employer_left(&app);
}

#[tokio::test]
async fn a_cancel_sends_wechat_only_the_order_number_and_mchid() {
    let app = TestApp::spawn().await;
    let order = app.create_order(EMPLOYER, "resume-view-30d").await;
    let order_no = order["order_no"].as_str().unwrap();
    let res = app.cancel(order_no).await;
    assert_eq!(res.status(), 200);

    let requests = app.sandbox.wechat_requests();
    let summary: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let query = format!(
        "/v3/pay/transactions/out-trade-no/{order_no}?mchid={}",
        paygate::app::SANDBOX_MCHID
    );
    let close = format!("/v3/pay/transactions/out-trade-no/{order_no}/close");
    assert_eq!(
        summary,
        vec![
            ("POST", "/v3/pay/transactions/native"),
            ("GET", query.as_str()),
            ("POST", close.as_str()),
        ]
    );
    assert_eq!(requests[1].body, "");
    let close_body: Value = serde_json::from_str(&requests[2].body).unwrap();
    assert_eq!(keys(&close_body), BTreeSet::from(["mchid"]));
    assert_nothing_about_the_employer_left(&app);
}

async fn the_payer_openid_is_never_stored(app: TestApp) {
    let order = app.create_order(EMPLOYER, "resume-download-50").await;
    let order_no = order["order_no"].as_str().unwrap();
    let tx = app.pay(order_no).await;
    let openid = tx["payer"]["openid"]
        .as_str()
        .expect("payer.openid")
        .to_owned();
    assert!(openid.len() >= 20, "a realistic openid: {openid}");

    // The real, encrypted callback from the sandbox settles the order.
    let paid = app.wait_for_status(order_no, "paid").await;
    assert_eq!(
        paid["payment_record"]["provider_transaction_id"],
        tx["transaction_id"]
    );
    assert!(!paid.to_string().contains(&openid), "order JSON: {paid}");
    assert!(!app.events().await.to_string().contains(&openid));

    let dump = app.dump_database().await;
    assert!(
        dump.contains(order_no),
        "the dump really holds the order rows"
    );
    assert!(
        dump.contains(tx["transaction_id"].as_str().unwrap()),
        "the dump really holds the payment rows"
    );
    assert!(!dump.contains(&openid), "payer openid stored:\n{dump}");

    // Creating, paying, settling and reading the order sent WeChat one request only.
    let requests = app.sandbox.wechat_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_nothing_about_the_employer_left(&app);
}
on_both_backends!(
    the_payer_openid_is_never_stored_on_sqlite,
    the_payer_openid_is_never_stored_on_postgres,
    the_payer_openid_is_never_stored
);

fn logs_so_far() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// `secret` is nowhere: not in the database, the order, the event feed or the logs.
async fn assert_kept_nowhere(app: &TestApp, order_no: &str, secret: &str) {
    let dump = app.dump_database().await;
    assert!(
        dump.contains(order_no),
        "the dump really holds the order rows"
    );
    assert!(!dump.contains(secret), "{secret:?} stored:\n{dump}");
    let order = app.order(order_no).await;
    assert!(!order.to_string().contains(secret), "order JSON: {order}");
    assert!(!app.events().await.to_string().contains(secret));
    let logs = logs_so_far();
    assert!(
        logs.contains(order_no),
        "the capture really holds this flow's logs"
    );
    assert!(!logs.contains(secret), "{secret:?} logged");
    assert!(!logs.contains(EMPLOYER), "the employer id logged");
}

/// Issue 11: request spans carry the route template, never the raw path, and no log line at
/// any level names the employer or the résumé, through orders, access checks, listings and
/// an erasure.
#[tokio::test]
async fn request_paths_are_logged_as_route_templates_and_name_nobody() {
    captured_logs();
    let app = TestApp::spawn().await;
    let employer = "emp_logcheck_7731";
    let resume = "cv-logcheck-4410";
    let order = app
        .paid_order(employer, "wechatpay", "resume-download-50")
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    assert_eq!(app.access(employer, resume, "download").await.0, 200);
    assert_eq!(
        app.entitlements(employer).await["entitlements"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, _) = app.request_erasure(employer, "log-erase-1").await;
    assert_eq!(status, 202);
    app.jobs
        .run_once(paygate::jobs::Job::Erasure)
        .await
        .unwrap();
    let logs = logs_so_far();
    assert!(logs.contains(order_no), "the capture holds this flow");
    for route in [
        "/v1/employers/{employer_id}/resume-access",
        "/v1/employers/{employer_id}/entitlements",
        "/v1/privacy/erasures",
    ] {
        assert!(logs.contains(route), "{route} not in the request spans");
    }
    for id in [employer, resume] {
        assert!(!logs.contains(id), "{id:?} logged");
    }
}

#[tokio::test]
async fn the_jsapi_openid_goes_to_wechat_for_that_request_only() {
    captured_logs();
    let app = TestApp::spawn().await;
    let openid = "oJsapiPayer00000000000000042";
    let order = app
        .create_order_on(
            EMPLOYER,
            "wechatpay",
            "jsapi",
            serde_json::json!({"payer_openid": openid}),
        )
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    let requests = app.sandbox.wechat_requests();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "appid",
            "mchid",
            "description",
            "out_trade_no",
            "time_expire",
            "notify_url",
            "amount",
            "payer"
        ])
    );
    assert_eq!(keys(&body["payer"]), BTreeSet::from(["openid"]));
    assert_eq!(body["payer"]["openid"], openid);

    let tx = app.pay(order_no).await;
    assert_eq!(
        tx["payer"]["openid"], openid,
        "the sandbox's payer is that openid"
    );
    app.wait_for_status(order_no, "paid").await;
    assert_kept_nowhere(&app, order_no, openid).await;
    assert_nothing_about_the_employer_left(&app);
}

#[tokio::test]
async fn the_h5_client_ip_goes_to_wechat_for_that_request_only() {
    captured_logs();
    let app = TestApp::spawn().await;
    let ip = "198.51.100.203";
    let order = app
        .create_order_on(
            EMPLOYER,
            "wechatpay",
            "h5",
            serde_json::json!({"client_ip": ip}),
        )
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    let requests = app.sandbox.wechat_requests();
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(
        keys(&body["scene_info"]),
        BTreeSet::from(["payer_client_ip", "h5_info"])
    );
    assert_eq!(body["scene_info"]["payer_client_ip"], ip);
    // WeChat's order API is not told where the browser returns: the return address is appended
    // to the h5_url the browser opens (see tests/checkout_return.rs), never sent here.
    assert!(!requests[0].body.contains("redirect"));
    let tx = app.pay(order_no).await;
    app.wait_for_status(order_no, "paid").await;
    assert_kept_nowhere(&app, order_no, ip).await;
    let openid = tx["payer"]["openid"].as_str().expect("payer.openid");
    assert_kept_nowhere(&app, order_no, openid).await;
}

/// The parameters of every gateway.do call the sandbox received, plus those in the URLs and
/// order strings the gateway handed the buyer: everything that left for Alipay.
fn alipay_calls(app: &TestApp, orders: &[Value]) -> Vec<Vec<(String, String)>> {
    let mut calls = app.sandbox.alipay_requests();
    for order in orders {
        let payment = &order["payment"];
        let signed = match (
            payment["pay_url"].as_str(),
            payment["order_string"].as_str(),
        ) {
            (Some(url), _) => url.split_once('?').expect("a query string").1.to_owned(),
            (None, Some(order_string)) => order_string.to_owned(),
            (None, None) => continue,
        };
        let params = paygate_alipay::Params::from_form(signed.as_bytes()).expect("form");
        calls.push(
            params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
    }
    calls
}

#[tokio::test]
async fn alipay_orders_send_only_the_allowlisted_fields() {
    // With a return URL configured: page and wap carry it (issue 13).
    let app = TestApp::spawn_with_checkout(common::Backend::Sqlite)
        .await
        .expect("sqlite always runs");
    let mut orders = Vec::new();
    for channel in ["qr", "page", "wap", "app"] {
        orders.push(
            app.create_order_on(EMPLOYER, "alipay", channel, serde_json::json!({}))
                .await,
        );
    }
    let calls = alipay_calls(&app, &orders);
    assert_eq!(
        calls.len(),
        4,
        "one precreate call, three signed browser/app orders"
    );
    for params in &calls {
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {key}"))
        };
        let top: BTreeSet<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        let mut allowed = BTreeSet::from([
            "app_id",
            "method",
            "format",
            "charset",
            "sign_type",
            "sign",
            "timestamp",
            "version",
            "notify_url",
            "biz_content",
        ]);
        // The allowlist grows by exactly `return_url`, and only for the browser orders (page,
        // wap): the buyer's browser must come back to the platform, and the URL's only
        // variable is the order number (DESIGN.md §1, issue 13).
        let browser = matches!(
            get("method"),
            "alipay.trade.page.pay" | "alipay.trade.wap.pay"
        );
        if browser {
            allowed.insert("return_url");
            let biz: Value = serde_json::from_str(get("biz_content")).expect("JSON biz_content");
            assert_eq!(
                get("return_url"),
                common::RETURN_URL.replace("{order_no}", biz["out_trade_no"].as_str().unwrap())
            );
        }
        assert_eq!(top, allowed, "{params:?}");
        assert_eq!(get("app_id"), paygate::app::SANDBOX_ALIPAY_APP_ID);
        assert_eq!(get("notify_url"), format!("{}/webhooks/alipay", app.url));
        let biz: Value = serde_json::from_str(get("biz_content")).expect("JSON biz_content");
        let method = get("method");
        let product_code = match method {
            "alipay.trade.precreate" => None,
            "alipay.trade.page.pay" => Some("FAST_INSTANT_TRADE_PAY"),
            "alipay.trade.wap.pay" => Some("QUICK_WAP_WAY"),
            "alipay.trade.app.pay" => Some("QUICK_MSECURITY_PAY"),
            other => panic!("unexpected method {other}"),
        };
        let mut expected =
            BTreeSet::from(["out_trade_no", "total_amount", "subject", "time_expire"]);
        if product_code.is_some() {
            expected.insert("product_code");
        }
        assert_eq!(keys(&biz), expected, "{method}");
        assert_eq!(biz["product_code"].as_str(), product_code);
        assert_eq!(biz["subject"], "职前通服务");
        assert_eq!(biz["total_amount"], "199.00");
        let order = orders
            .iter()
            .find(|o| o["order_no"] == biz["out_trade_no"])
            .unwrap_or_else(|| panic!("{biz}"));
        // The order's expiry, as Alipay wants it: Beijing wall time, `yyyy-MM-dd HH:mm:ss`.
        let expires_at = order["expires_at"].as_str().unwrap();
        assert!(expires_at.ends_with("+08:00"));
        assert_eq!(biz["time_expire"], expires_at[..19].replace('T', " "));
        let everything = format!("{params:?}");
        for secret in [EMPLOYER, "resume-", "简历"] {
            assert!(!everything.contains(secret), "{secret:?} left for Alipay");
        }
    }
}

#[tokio::test]
async fn alipay_buyer_fields_are_never_stored_or_logged() {
    captured_logs();
    let app = TestApp::spawn().await;
    let order = app
        .create_order_on(EMPLOYER, "alipay", "qr", serde_json::json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    // The sandbox's own notification carries buyer_id and buyer_logon_id …
    let trade = app.pay(order_no).await;
    // … and a query (the cancel path, unless the notification won the race) answers
    // buyer_user_id and buyer_logon_id.
    assert_eq!(app.cancel(order_no).await.status(), 409);
    app.wait_for_status(order_no, "paid").await;
    let mut secrets = Vec::new();
    for key in [
        "buyer_logon_id",
        "buyer_user_id",
        "buyer_id",
        "buyer_open_id",
    ] {
        if let Some(value) = trade[key].as_str() {
            secrets.push(value.to_owned());
        }
    }
    assert!(
        secrets.len() >= 2,
        "the sandbox trade names its buyer: {trade}"
    );
    // A forged-but-signed duplicate with every payer field Alipay may send.
    let forged =
        common::alipay_notification(&order, &[("trade_no", trade["trade_no"].as_str().unwrap())]);
    assert_eq!(
        app.post_alipay_callback(&forged).await,
        (200, "success".to_owned())
    );
    secrets.extend(
        [
            "2088102177846880",
            "forged***@example.com",
            "seller.forged@example.com",
        ]
        .map(String::from),
    );
    secrets.push("074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5".into());
    for secret in &secrets {
        assert_kept_nowhere(&app, order_no, secret).await;
    }
}

/// A refund sends WeChat only the order number, the refund number, the amounts, the neutral
/// reason and the notify URL; what WeChat answers and notifies about where the buyer got the
/// money (`user_received_account`) is kept nowhere.
#[tokio::test]
async fn a_wechat_refund_sends_only_the_allowlisted_fields_and_keeps_no_payer_account() {
    captured_logs();
    let app = TestApp::spawn().await;
    let order = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    let refund = app.refund(order_no, "50.00").await;
    let refund_id = refund["refund_id"].as_str().unwrap();
    app.sandbox.complete_wechat_refunds();
    app.wait_for_refund(order_no, refund_id, "succeeded").await;

    let creates: Vec<_> = app
        .sandbox
        .wechat_requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v3/refund/domestic/refunds")
        .collect();
    assert_eq!(creates.len(), 1);
    let body: Value = serde_json::from_str(&creates[0].body).unwrap();
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "out_trade_no",
            "out_refund_no",
            "reason",
            "notify_url",
            "amount"
        ])
    );
    assert_eq!(
        keys(&body["amount"]),
        BTreeSet::from(["refund", "total", "currency"])
    );
    assert_eq!(body["out_refund_no"], refund_id);
    assert_eq!(body["amount"]["refund"], 5000);
    assert_eq!(body["amount"]["total"], 19900);
    assert_nothing_about_the_employer_left(&app);
    // The sandbox's refund answer and notification name the buyer's receiving account.
    let answered = app
        .sandbox
        .wechat_requests()
        .iter()
        .any(|r| r.path.contains("/v3/refund/domestic/refunds"));
    assert!(answered);
    assert_kept_nowhere(&app, order_no, "支付用户零钱").await;
}

/// An Alipay refund sends only `out_trade_no`, `out_request_no`, `refund_amount` and
/// `refund_reason`; the buyer ids in its answer and in the refund notification are kept
/// nowhere.
#[tokio::test]
async fn an_alipay_refund_sends_only_the_allowlisted_fields_and_keeps_no_buyer_ids() {
    captured_logs();
    let app = TestApp::spawn().await;
    let order = app
        .create_order_on(EMPLOYER, "alipay", "qr", serde_json::json!({}))
        .await;
    let order_no = order["order_no"].as_str().unwrap();
    let trade = app.pay(order_no).await;
    app.wait_for_status(order_no, "paid").await;
    let refund = app.refund(order_no, "199.00").await;
    assert_eq!(refund["status"], "succeeded");
    app.wait_for_status(order_no, "refunded").await;

    let refunds: Vec<_> = app
        .sandbox
        .alipay_requests()
        .into_iter()
        .filter(|p| {
            p.iter()
                .any(|(k, v)| k == "method" && v == "alipay.trade.refund")
        })
        .collect();
    assert_eq!(refunds.len(), 1);
    let biz = refunds[0]
        .iter()
        .find(|(k, _)| k == "biz_content")
        .map(|(_, v)| v.clone())
        .expect("biz_content");
    let biz: Value = serde_json::from_str(&biz).unwrap();
    assert_eq!(
        keys(&biz),
        BTreeSet::from([
            "out_trade_no",
            "out_request_no",
            "refund_amount",
            "refund_reason"
        ])
    );
    assert_eq!(biz["out_request_no"], refund["refund_id"]);
    assert_eq!(biz["refund_amount"], "199.00");
    let secrets: Vec<String> = ["buyer_logon_id", "buyer_id", "buyer_user_id"]
        .iter()
        .filter_map(|k| trade[*k].as_str().map(str::to_owned))
        .collect();
    assert!(
        secrets.len() >= 2,
        "the sandbox trade names its buyer: {trade}"
    );
    // Let the refund notification (with the buyer fields) arrive and be acknowledged.
    common::wait_until("the refund notification acknowledged", || {
        app.sandbox
            .notifications()
            .iter()
            .filter(|n| n.acknowledged)
            .count()
            >= 2
    })
    .await;
    for secret in &secrets {
        assert_kept_nowhere(&app, order_no, secret).await;
    }
}

/// The bills' payer columns (WeChat 用户标识, Alipay 对方账户) are dropped by the parsers: no
/// value of theirs reaches a table, the discrepancy CSV, an event or a log line.
#[tokio::test]
async fn bill_payer_columns_are_kept_nowhere() {
    captured_logs();
    let app = TestApp::spawn().await;
    let wechat = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let wechat_no = wechat["order_no"].as_str().unwrap().to_owned();
    let alipay = app
        .create_order_on(EMPLOYER, "alipay", "qr", serde_json::json!({}))
        .await;
    let alipay_no = alipay["order_no"].as_str().unwrap().to_owned();
    app.pay(&alipay_no).await;
    app.wait_for_status(&alipay_no, "paid").await;
    // A missing row for each, so the CSV has lines about these very orders.
    app.set_faults(serde_json::json!({"bill_extra_row": true}))
        .await;
    let date = app
        .clock
        .now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive();
    let wechat_bill = String::from_utf8(app.sandbox.wechat_bill(date).expect("bill")).unwrap();
    let openid = wechat_bill
        .lines()
        .find(|l| l.contains(&wechat_no))
        .and_then(|l| l.split(',').nth(7))
        .map(|v| v.trim_start_matches('`').to_owned())
        .expect("the bill's 用户标识 of our order");
    assert!(openid.len() > 8, "a planted openid: {openid}");
    let mut secrets = vec![openid];
    let alipay_zip = app.sandbox.alipay_bill(date).expect("bill");
    let mut zip = zip_entries(&alipay_zip);
    let detail = zip.remove(0);
    let line = detail
        .lines()
        .find(|l| l.contains(&alipay_no))
        .expect("our order's row")
        .to_owned();
    let header = detail
        .lines()
        .find(|l| l.contains("对方账户"))
        .expect("the column header")
        .to_owned();
    let column = header
        .split(',')
        .position(|c| c.trim() == "对方账户")
        .unwrap();
    let account = line.split(',').nth(column).unwrap().trim().to_owned();
    assert!(!account.is_empty());
    secrets.push(account);
    for provider in ["wechatpay", "alipay"] {
        let res = app
            .http
            .post(format!("{}/v1/reconciliations", app.url))
            .bearer_auth(common::FINANCE_KEY)
            .json(&serde_json::json!({"provider": provider, "date": date.to_string()}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let run: Value = res.json().await.unwrap();
        let csv = app
            .http
            .get(format!(
                "{}/v1/reconciliations/{}/discrepancies.csv",
                app.url,
                run["reconciliation_id"].as_str().unwrap()
            ))
            .bearer_auth(common::FINANCE_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for secret in &secrets {
            assert!(!csv.contains(secret.as_str()), "{secret:?} in the CSV");
            assert!(!run.to_string().contains(secret.as_str()));
        }
    }
    for secret in &secrets {
        assert_kept_nowhere(&app, &wechat_no, secret).await;
    }
}

/// The CSV entries of a ZIP, decoded from GBK, detail first.
fn zip_entries(bytes: &[u8]) -> Vec<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a ZIP");
    let mut out = Vec::new();
    for i in 0..archive.len() {
        use std::io::Read;
        let mut entry = archive.by_index(i).unwrap();
        let mut raw = Vec::new();
        entry.read_to_end(&mut raw).unwrap();
        let (text, _, _) = encoding_rs::GBK.decode(&raw);
        out.push(text.into_owned());
    }
    out.sort_by_key(|t| t.contains("汇总"));
    out
}
