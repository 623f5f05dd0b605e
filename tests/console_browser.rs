//! The console (issue 21) in a real headless Chromium, driven over WebDriver: a finance user
//! from the set-password link to a refund and a reconciliation run; what a user without
//! `finance` cannot do; CSRF; escaping; sign-out, disabling and the lock-out as the browser
//! meets them. Screenshots of each page go to `target/console-screenshots/`.
//!
//! Needs `chromium` and `chromedriver` (see `console_browser/browser.rs`); on SQLite only: the
//! HTTP-level console tests run on both backends.

#[path = "console_browser/browser.rs"]
mod browser;
mod common;

use std::time::Duration;

use browser::Browser;
use common::{FINANCE_KEY, TestApp};
use paygate::clock::Clock;
use paygate::console_users::{self, Deps, SecondFactor};
use paygate::domain::totp::{TotpSecret, step_of};
use paygate::domain::{ConsoleUserName, Scope};
use serde_json::{Value, json};

const EMPLOYER: &str = "emp_console_1";
/// Every test user's password: long enough, not their name.
const PASSWORD: &str = "correct horse battery 42";

fn users(app: &TestApp) -> Deps<'_> {
    Deps {
        db: &app.state.db,
        clock: app.state.clock.as_ref(),
    }
}

fn name(text: &str) -> ConsoleUserName {
    ConsoleUserName::parse(text).expect("a console user name")
}

/// A user with [`PASSWORD`] set (through the link's use case; the finance journey uses the
/// link's page itself).
async fn console_user(app: &TestApp, user: &str, scopes: &[Scope]) {
    let token = console_users::create(&users(app), &name(user), scopes, SecondFactor::ByScopes)
        .await
        .expect("create console user");
    console_users::set_password(&users(app), &token.0, PASSWORD)
        .await
        .expect("set password");
}

/// The code an authenticator app shows now, by the gateway's clock.
fn code(app: &TestApp, secret: &TotpSecret) -> String {
    format!(
        "{:06}",
        secret.code_at_step(step_of(app.clock.now().timestamp()))
    )
}

/// Name and password on the sign-in page (where it goes next is the caller's to check).
async fn sign_in(b: &Browser, user: &str, password: &str) {
    b.goto("/console/sign-in").await;
    b.fill("name", user).await;
    b.fill("password", password).await;
    b.click("form.stack button[type=submit]").await;
}

/// The enrolment page as a person uses it: the secret read off the page into the app, its
/// code typed back. Lands on the overview.
async fn enrol(b: &Browser, app: &TestApp) -> TotpSecret {
    b.wait_for_path("/console/enrol").await;
    let secret = TotpSecret::from_base32(&b.text("#totp-secret").await).expect("a base32 secret");
    b.fill("code", &code(app, &secret)).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path("/console").await;
    secret
}

/// A browser signed in as a new user `user` with `scopes`, through every factor they need.
async fn signed_in(app: &TestApp, user: &str, scopes: &[Scope]) -> Browser {
    console_user(app, user, scopes).await;
    let b = Browser::open(&app.url).await;
    sign_in(&b, user, PASSWORD).await;
    if console_users::totp_required(scopes) {
        enrol(&b, app).await;
    }
    b.wait_for_path("/console").await;
    b
}

/// The CSRF token of the browser's session, as the page's sign-out form carries it.
async fn csrf(b: &Browser) -> String {
    b.find("form.signout input[name=csrf]")
        .await
        .attr("value")
        .await
        .expect("attribute")
        .expect("a csrf value")
}

/// `POST path` with `fields` and the browser's session cookie, outside the browser (for the
/// status code, which WebDriver does not show): the status and the `Location`, if any.
async fn post_with_session(
    app: &TestApp,
    b: &Browser,
    path: &str,
    fields: &[(&str, &str)],
) -> (u16, Option<String>) {
    let cookie = b
        .cookie(paygate::console::SESSION_COOKIE)
        .await
        .expect("a session cookie");
    let res = no_redirects()
        .post(format!("{}{path}", app.url))
        .header(
            "Cookie",
            format!("{}={cookie}", paygate::console::SESSION_COOKIE),
        )
        .form(fields)
        .send()
        .await
        .expect("request");
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().expect("ascii").to_owned());
    (res.status().as_u16(), location)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn no(order: &Value) -> String {
    order["order_no"].as_str().expect("order_no").to_owned()
}

async fn refunds_of(app: &TestApp, order_no: &str) -> i64 {
    app.count("SELECT COUNT(*) FROM refund WHERE order_no = $1", order_no)
        .await
}

/// Moves the gateway's clock (the sandbox's too) to the next 10:00 in Beijing, so that what
/// the test does falls on one Beijing day whenever it runs.
fn to_ten_in_the_morning(app: &TestApp) {
    use chrono::TimeZone;
    let beijing = paygate::clock::beijing();
    let now = app.clock.now();
    let local = now.with_timezone(&beijing);
    let mut day = local.date_naive();
    if local.time() >= chrono::NaiveTime::from_hms_opt(10, 0, 0).expect("a time") {
        day = day.succ_opt().expect("a next day");
    }
    let ten = beijing
        .from_local_datetime(&day.and_hms_opt(10, 0, 0).expect("a time"))
        .single()
        .expect("Beijing has no DST");
    app.clock.advance(ten.with_timezone(&chrono::Utc) - now);
}

/// The Beijing date of the gateway's clock.
fn today(app: &TestApp) -> String {
    app.clock
        .now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive()
        .to_string()
}

/// Issue 21's journey: the set-password link, enrolment, a later sign-in with the code; the
/// order found by its employer, refunded 50.00 of 199.00 after a confirmation that shows
/// `50 → 38`; the order partially refunded with 38 downloads, the refund named after the
/// person in the order's timeline and in its event; the day reconciled from the console, its
/// run with its classes, its CSV downloaded with the browser's session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finance_user_signs_in_refunds_and_reconciles() {
    if !browser::wanted() {
        return;
    }
    let app = TestApp::spawn().await;
    to_ten_in_the_morning(&app);
    let order = app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await;
    let order_no = no(&order);
    assert_eq!(order["amount"], "199.00");
    let b = Browser::open(&app.url).await;

    // The set-password link, as `paygate console-user create` prints it.
    let link = console_users::create(
        &users(&app),
        &name("li.finance"),
        &[Scope::Finance],
        SecondFactor::ByScopes,
    )
    .await
    .expect("create");
    let link = format!("/console/set-password?token={}", link.0);
    b.goto(&link).await;
    assert_eq!(b.title().await, "设置密码");
    assert!(b.body_text().await.contains("li.finance"));
    b.fill("password", PASSWORD).await;
    b.fill("again", PASSWORD).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path("/console/sign-in").await;
    assert!(b.text("p.notice").await.contains("密码已设置"));
    b.screenshot("sign-in").await;
    b.goto(&link).await;
    assert_eq!(b.title().await, "未找到", "the link works once");

    // First sign-in: the password, then the enrolment of an authenticator app.
    sign_in(&b, "li.finance", PASSWORD).await;
    b.wait_for_path("/console/enrol").await;
    assert_eq!(b.count(".qr svg").await, 1, "the QR code");
    b.screenshot("enrol").await;
    let secret = enrol(&b, &app).await;
    assert_eq!(b.title().await, "概览");
    assert_eq!(b.text("form.signout .who").await, "li.finance");
    assert_eq!(b.count("nav a[href='/console/reconciliations']").await, 1);
    assert_eq!(
        b.count("nav a[href='/console/erasures']").await,
        0,
        "no privacy scope"
    );

    // Later: signed out, back with the password and the app's code of that moment.
    b.click("form.signout button").await;
    b.wait_for_path("/console/sign-in").await;
    assert!(b.text("p.notice").await.contains("你已退出"));
    app.clock.advance(chrono::Duration::seconds(30));
    sign_in(&b, "li.finance", PASSWORD).await;
    b.wait_for_path("/console/sign-in/code").await;
    b.screenshot("sign-in-code").await;
    b.fill("code", &code(&app, &secret)).await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path("/console").await;

    // The order, found by its employer.
    b.goto("/console/orders").await;
    b.fill("employer", EMPLOYER).await;
    b.click("form.filters button[type=submit]").await;
    b.wait_for_query(&format!("employer={EMPLOYER}")).await;
    let link = format!("a[href='/console/orders/{order_no}']");
    b.find(&link).await;
    assert_eq!(
        b.count("table tbody tr").await,
        1,
        "one order of {EMPLOYER}"
    );
    b.screenshot("orders").await;
    b.click(&link).await;
    b.wait_for_path(&format!("/console/orders/{order_no}"))
        .await;
    assert!(b.text("#order-status").await.contains("paid"));
    assert_eq!(b.text("#refundable").await, "¥199.00");
    assert_eq!(b.text("#entitlements td.quota").await, "50");

    // The refund: amount and reason, then the confirmation with its effect, then sent.
    b.click(&format!(
        "a.button[href='/console/orders/{order_no}/refund']"
    ))
    .await;
    b.wait_for_path(&format!("/console/orders/{order_no}/refund"))
        .await;
    b.fill("amount", "50.00").await;
    b.fill("reason", "服务退款").await;
    b.click("form.stack button[type=submit]").await;
    b.wait_for_path(&format!("/console/orders/{order_no}/refund/confirm"))
        .await;
    assert_eq!(b.text("#confirm-amount").await, "¥50.00");
    let effects = b.text("#effects").await;
    assert!(effects.contains("50 → 38"), "{effects}");
    assert_eq!(
        refunds_of(&app, &order_no).await,
        0,
        "nothing sent before confirming"
    );
    b.screenshot("refund-confirm").await;
    // Double-clicked, as people do: the confirmation's token sends it once. The browser shows
    // the order (the first or the replayed answer) or, when the second press overtook the
    // first while it was being sent, the page saying it is under way — and it is.
    let page = format!("/console/orders/{order_no}");
    b.double_click("button.danger").await;
    let landed = b
        .wait_to_leave(&format!("/console/orders/{order_no}/refund/confirm"))
        .await;
    if landed != page {
        assert_eq!(b.title().await, "退款处理中", "at {landed}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while refunds_of(&app, &order_no).await == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "said to be under way, but no refund was made"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        b.goto(&page).await;
    }
    assert_eq!(refunds_of(&app, &order_no).await, 1);

    // The provider completes it (the sandbox, a moment later): the order page follows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !b.text("#order-status").await.contains("partially_refunded") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the order never showed partially_refunded: {}",
            b.body_text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.client.refresh().await.expect("reload");
    }
    assert_eq!(b.text("#entitlements td.quota").await, "38");
    assert_eq!(b.text("#refundable").await, "¥149.00");
    let refund_row = b.text("#refunds tbody tr").await;
    assert!(refund_row.contains("¥50.00"), "{refund_row}");
    assert!(refund_row.contains("succeeded"), "{refund_row}");
    assert!(refund_row.contains("console:li.finance"), "{refund_row}");
    let timeline = b.text("#timeline").await;
    assert!(
        timeline.contains("refund.succeeded · 由 console:li.finance"),
        "{timeline}"
    );
    b.screenshot("order").await;
    let events = app.events_of(&order_no, "refund.succeeded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["data"]["actor"], "console:li.finance",
        "{}",
        events[0]
    );
    assert_eq!(app.refund_requests(&order_no), 1, "sent once");

    // Reconciliation of today, started from the list page.
    b.goto("/console/reconciliations").await;
    let run_form = "form.filters[method=post]";
    b.find(&format!("{run_form} select[name=provider]"))
        .await
        .select_by_value("wechatpay")
        .await
        .expect("select wechatpay");
    b.set_value(&format!("{run_form} input[name=date]"), &today(&app))
        .await;
    b.click(&format!("{run_form} button[type=submit]")).await;
    let classes = b.find("#classes").await;
    let run_path = b.path().await;
    assert!(
        run_path.starts_with("/console/reconciliations/rec"),
        "{run_path}"
    );
    let classes = classes.text().await.expect("text");
    // The payment and the refund, both in the bill: matched, each in its own columns, and
    // nothing else.
    let lines: Vec<&str> = classes.lines().collect();
    assert!(
        lines.contains(&"已匹配 matched 1 ¥199.00 1 ¥50.00"),
        "{classes}"
    );
    for other in [
        "missing_local",
        "missing_remote",
        "amount_mismatch",
        "status_mismatch",
        "duplicate_remote",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!("{other} 0 ¥0.00 0 ¥0.00"))),
            "{other}: {classes}"
        );
    }
    assert!(b.body_text().await.contains("console:li.finance"));
    b.screenshot("reconciliation-run").await;

    // The CSV, with the browser's session (and without one: not served).
    let href = b
        .find("#csv")
        .await
        .attr("href")
        .await
        .expect("attribute")
        .expect("an href");
    let cookie = b
        .cookie(paygate::console::SESSION_COOKIE)
        .await
        .expect("the session cookie");
    let res = reqwest::Client::new()
        .get(format!("{}{href}", app.url))
        .header(
            "Cookie",
            format!("{}={cookie}", paygate::console::SESSION_COOKIE),
        )
        .send()
        .await
        .expect("csv");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    let bytes = res.bytes().await.expect("body");
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    assert_eq!(
        text.lines().next(),
        Some(
            "class,kind,order_no,provider_transaction_id,refund_no,bill_amount,local_amount,\
             bill_status,local_status,healed,note,duplicate_bill_amount"
        )
    );
    let anonymous = no_redirects()
        .get(format!("{}{href}", app.url))
        .send()
        .await
        .expect("csv");
    assert_eq!(anonymous.status(), 303);

    // The list shows the run, who started it, and its classes.
    b.goto("/console/reconciliations").await;
    let runs = b.text("#runs tbody").await;
    assert!(runs.contains(&today(&app)), "{runs}");
    assert!(runs.contains("console:li.finance"), "{runs}");
    assert!(runs.contains("completed"), "{runs}");
    b.screenshot("reconciliations").await;

    b.goto("/console/operations").await;
    assert_eq!(b.title().await, "运维");
    b.screenshot("operations").await;
    // The overview once there is a refund to show.
    b.goto("/console").await;
    b.screenshot("overview").await;
    b.quit().await;
}

/// A user with only `entitlements` reads the order but is offered no refund, and a refund
/// posted anyway — with their own valid CSRF token — is 403 and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entitlements_user_gets_no_refund_form_and_a_forged_refund_is_403() {
    if !browser::wanted() {
        return;
    }
    let app = TestApp::spawn().await;
    let order_no = no(&app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await);
    let b = signed_in(&app, "zhao.support", &[Scope::Entitlements]).await;
    assert_eq!(b.count("nav a[href='/console/reconciliations']").await, 0);

    let page = format!("/console/orders/{order_no}");
    b.goto(&page).await;
    assert!(b.text("#order-status").await.contains("paid"));
    assert_eq!(b.count("a[href$='/refund']").await, 0, "no refund link");
    assert_eq!(
        b.count("form[action*='/refund']").await,
        0,
        "no refund form"
    );
    b.goto(&format!("{page}/refund")).await;
    assert_eq!(b.title().await, "无权限");

    b.goto(&page).await;
    let token = csrf(&b).await;
    let refund = format!("{page}/refund");
    let forged = [
        ("csrf", token.as_str()),
        ("token", "forged-confirmation-token-1"),
        ("amount", "50.00"),
        ("reason", ""),
    ];
    b.post_form(&refund, &forged).await;
    assert_eq!(b.title().await, "无权限");
    assert_eq!(post_with_session(&app, &b, &refund, &forged).await.0, 403);
    let confirm = format!("{page}/refund/confirm");
    assert_eq!(
        post_with_session(&app, &b, &confirm, &[("csrf", &token), ("amount", "50.00")])
            .await
            .0,
        403
    );
    assert_eq!(refunds_of(&app, &order_no).await, 0);
    assert_eq!(app.refund_requests(&order_no), 0);
    assert_eq!(app.order(&order_no).await["status"], "paid");
    b.quit().await;
}

/// A console POST without its CSRF token (or with another one) is 403 and does nothing, even
/// from a signed-in `finance` user's browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_without_the_csrf_token_is_403() {
    if !browser::wanted() {
        return;
    }
    let app = TestApp::spawn().await;
    let order_no = no(&app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await);
    let b = signed_in(&app, "qian.finance", &[Scope::Finance]).await;
    let refund = format!("/console/orders/{order_no}/refund");
    b.goto(&format!("/console/orders/{order_no}")).await;
    let fields = [
        ("token", "a-confirmation-token-0001"),
        ("amount", "50.00"),
        ("reason", ""),
    ];
    b.post_form(&refund, &fields).await;
    assert_eq!(b.title().await, "请求无效");
    assert!(
        b.body_text()
            .await
            .contains("表单已过期或不是从本控制台提交的")
    );
    assert_eq!(post_with_session(&app, &b, &refund, &fields).await.0, 403);
    let zeros = "0".repeat(64);
    let wrong = [("csrf", zeros.as_str()), fields[0], fields[1], fields[2]];
    assert_eq!(post_with_session(&app, &b, &refund, &wrong).await.0, 403);
    // Signing out needs it too: the session lives on.
    assert_eq!(
        post_with_session(&app, &b, "/console/sign-out", &[])
            .await
            .0,
        403
    );
    b.goto("/console").await;
    assert_eq!(b.title().await, "概览");
    assert_eq!(refunds_of(&app, &order_no).await, 0);
    assert_eq!(app.refund_requests(&order_no), 0);
    b.quit().await;
}

/// Markup typed into the search, or stored in a refund's reason, is shown as text: no element
/// made of it, no script run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_a_search_or_a_reason_shows_as_text_and_runs_nothing() {
    if !browser::wanted() {
        return;
    }
    const MARKUP: &str = "<img src=x onerror=alert(1)>";
    let app = TestApp::spawn().await;
    let order_no = no(&app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await);
    let (status, body) = app
        .post_refund(
            FINANCE_KEY,
            "markup-reason-1",
            &order_no,
            json!({"amount": "1.00", "reason": MARKUP}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let b = signed_in(&app, "sun.support", &[Scope::Entitlements]).await;

    b.goto("/console/orders").await;
    b.fill("employer", MARKUP).await;
    b.click("form.filters button[type=submit]").await;
    let error = b.text("p.error").await;
    assert!(error.contains(MARKUP), "shown as typed: {error}");
    let echoed = b
        .find("input[name=employer]")
        .await
        .prop("value")
        .await
        .expect("property");
    assert_eq!(echoed.as_deref(), Some(MARKUP));
    assert_nothing_ran(&b).await;

    b.goto(&format!("/console/orders/{order_no}")).await;
    let refunds = b.text("#refunds tbody").await;
    assert!(refunds.contains(MARKUP), "{refunds}");
    assert_nothing_ran(&b).await;
    b.quit().await;
}

/// No `<img>` was made of the markup and no alert is open.
async fn assert_nothing_ran(b: &Browser) {
    assert_eq!(b.count("img").await, 0, "an element was made of the markup");
    let alert = b.client.get_alert_text().await;
    assert!(
        alert.as_ref().is_err_and(|e| e.is_no_such_alert()),
        "a script ran: {alert:?}"
    );
}

/// After signing out, the back button asks the server again (`no-store`), which sends the
/// browser to the sign-in page: the order is not shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_signing_out_the_back_button_shows_no_data() {
    if !browser::wanted() {
        return;
    }
    let app = TestApp::spawn().await;
    let order_no = no(&app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await);
    let b = signed_in(&app, "zhou.support", &[Scope::Checkout]).await;
    b.goto(&format!("/console/orders/{order_no}")).await;
    assert!(b.title().await.contains(&order_no));
    b.click("form.signout button").await;
    b.wait_for_path("/console/sign-in").await;

    b.client.back().await.expect("back");
    b.wait_for_path("/console/sign-in").await;
    let shown = b.client.source().await.expect("source");
    assert!(
        !shown.contains(&order_no),
        "the order is still shown: {shown}"
    );
    assert!(!shown.contains(EMPLOYER));
    b.quit().await;
}

/// `console-user disable` ends an open session: its next request lands on the sign-in page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_users_open_session_is_refused_at_its_next_request() {
    if !browser::wanted() {
        return;
    }
    let app = TestApp::spawn().await;
    let order_no = no(&app
        .paid_order(EMPLOYER, "wechatpay", "resume-download-50")
        .await);
    let b = signed_in(&app, "wu.finance", &[Scope::Finance]).await;
    b.goto(&format!("/console/orders/{order_no}")).await;
    assert!(b.text("#order-status").await.contains("paid"));

    console_users::disable(&users(&app), &name("wu.finance"))
        .await
        .expect("disable");
    b.client.refresh().await.expect("reload");
    b.wait_for_path("/console/sign-in").await;
    assert!(!b.body_text().await.contains(&order_no));
    // And the password no longer signs in.
    sign_in(&b, "wu.finance", PASSWORD).await;
    assert_eq!(b.path().await, "/console/sign-in");
    assert!(b.text("p.error").await.contains("用户名或密码错误"));
    b.quit().await;
}

/// Ten wrong passwords in a row lock the user: the right one is then refused, saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_wrong_passwords_lock_the_sign_in() {
    if !browser::wanted() {
        return;
    }
    let app = TestApp::spawn().await;
    console_user(&app, "zheng.finance", &[Scope::Finance]).await;
    let b = Browser::open(&app.url).await;
    for attempt in 1..=console_users::LOCK_AFTER_FAILURES {
        sign_in(&b, "zheng.finance", &format!("wrong password {attempt}")).await;
        let error = b.text("p.error").await;
        assert!(
            error.contains("用户名或密码错误"),
            "attempt {attempt}: {error}"
        );
    }
    sign_in(&b, "zheng.finance", PASSWORD).await;
    let error = b.text("p.error").await;
    assert!(error.contains("账号已暂时锁定"), "{error}");
    assert_eq!(b.path().await, "/console/sign-in");
    assert!(b.cookie(paygate::console::SESSION_COOKIE).await.is_none());
    b.quit().await;
}

/// A `privacy` user requests an account deletion: the confirmation says what will happen,
/// and the request is listed, made by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privacy_user_requests_an_erasure_after_a_confirmation() {
    if !browser::wanted() {
        return;
    }
    let app = TestApp::spawn().await;
    let b = signed_in(&app, "feng.privacy", &[Scope::Privacy]).await;
    b.goto("/console/erasures").await;
    b.fill("employer_id", "emp_leaving_1").await;
    b.click("form.filters button[type=submit]").await;
    b.wait_for_path("/console/erasures/confirm").await;
    assert_eq!(b.title().await, "确认注销");
    assert!(b.body_text().await.contains("emp_leaving_1"));
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM privacy_erasure WHERE employer_id = $1",
            "emp_leaving_1"
        )
        .await,
        0,
        "nothing before confirming"
    );
    b.click("button.danger").await;
    b.wait_for_path("/console/erasures").await;
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM privacy_erasure WHERE employer_id = $1",
            "emp_leaving_1"
        )
        .await,
        1
    );
    let listed = b.text("#erasures tbody").await;
    assert!(listed.contains("pending"), "{listed}");
    assert!(listed.contains("console:feng.privacy"), "{listed}");
    b.screenshot("erasures").await;
    b.quit().await;
}
