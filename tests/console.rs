//! The console over HTTP (issue 21), on both backends: signing in with both factors, the
//! forms' CSRF tokens and the scopes, the refund sent once whatever the double-clicks and its
//! actor in the events, an erasure and a reconciliation naming who asked, lockout, disabling,
//! signing out, escaping. (`console_browser.rs` drives the same pages in Chromium.)

mod common;

use std::collections::HashMap;

use common::TestApp;
use paygate::console_users::{self, SecondFactor};
use paygate::domain::totp::{TotpSecret, step_of};
use paygate::domain::{ConsoleUserName, Scope};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

/// A browser without a browser: cookies kept, redirects shown rather than followed.
struct Console<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first `<input name=NAME value=…>` of the page.
    fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in {}", self.body));
        let rest = &self.body[at + marker.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

impl<'a> Console<'a> {
    fn new(app: &'a TestApp) -> Console<'a> {
        Console {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, res: reqwest::Response) -> Answer {
        for c in res.headers().get_all(SET_COOKIE) {
            let text = c.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Answer {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let res = self
            .http
            .get(format!("{}{path}", self.app.url))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(res).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let res = self
            .http
            .post(format!("{}{path}", self.app.url))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(res).await
    }

    /// Name and password; answers where the sign-in sent the browser.
    async fn password(&mut self, name: &str, password: &str) -> Answer {
        let form = self.get("/console/sign-in").await;
        let token = form.input("form_token");
        self.post(
            "/console/sign-in",
            &[
                ("form_token", &token),
                ("name", name),
                ("password", password),
            ],
        )
        .await
    }

    fn now_unix(&self) -> i64 {
        self.app.state.clock.now().timestamp()
    }

    /// Enrols a TOTP from the enrolment page; answers the secret.
    async fn enrol(&mut self) -> TotpSecret {
        let page = self.get("/console/enrol").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let marker = "id=\"totp-secret\">";
        let at = page.body.find(marker).expect("the secret is shown") + marker.len();
        let text = &page.body[at..at + page.body[at..].find('<').unwrap()];
        let secret = TotpSecret::from_base32(text).expect("base32");
        let code = format!("{:06}", secret.code_at_step(step_of(self.now_unix())));
        let csrf = page.input("csrf");
        let done = self
            .post("/console/enrol", &[("csrf", &csrf), ("code", &code)])
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(done.location(), "/console");
        secret
    }

    /// A page's CSRF token.
    async fn csrf(&mut self) -> String {
        self.get("/console").await.input("csrf")
    }
}

/// A user with a password; answers it.
async fn user(app: &TestApp, name: &str, scopes: &[Scope]) -> String {
    let deps = console_users::Deps {
        db: &app.db,
        clock: app.state.clock.as_ref(),
    };
    let name = ConsoleUserName::parse(name).unwrap();
    let token = console_users::create(&deps, &name, scopes, SecondFactor::ByScopes)
        .await
        .unwrap();
    let password = format!("correct horse {name}");
    console_users::set_password(&deps, &token.0, &password)
        .await
        .unwrap();
    password
}

/// A finance user signed in with both factors.
async fn finance<'a>(app: &'a TestApp, name: &str) -> (Console<'a>, TotpSecret, String) {
    let password = user(app, name, &[Scope::Finance, Scope::Checkout]).await;
    let mut console = Console::new(app);
    let signed = console.password(name, &password).await;
    assert_eq!(signed.location(), "/console/enrol");
    // Nothing opens before the second factor.
    assert_eq!(console.get("/console").await.location(), "/console/enrol");
    let secret = console.enrol().await;
    (console, secret, password)
}

async fn a_refund_from_the_console_is_sent_once_and_names_its_person(app: TestApp) {
    let order = app
        .paid_order("emp_console", "wechatpay", "resume-download-50")
        .await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    let (mut console, _, _) = finance(&app, "li.wei").await;

    let found = console.get("/console/orders?employer=emp_console").await;
    assert!(found.body.contains(&no), "{}", found.body);
    let page = console.get(&format!("/console/orders/{no}")).await;
    assert!(page.body.contains(&format!("/console/orders/{no}/refund")));
    let form = console.get(&format!("/console/orders/{no}/refund")).await;
    let csrf = form.input("csrf");
    let confirm = console
        .post(
            &format!("/console/orders/{no}/refund/confirm"),
            &[("csrf", &csrf), ("amount", "50.00"), ("reason", "服务调整")],
        )
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    // 50 downloads for ¥199.00; ¥50.00 back keeps ceil(50 × 149/199) = 38.
    assert!(confirm.body.contains("50 → 38"), "{}", confirm.body);
    assert_eq!(
        app.refund_requests(&no),
        0,
        "nothing is sent before the confirmation"
    );
    let token = confirm.input("token");
    let send = [
        ("csrf", csrf.as_str()),
        ("token", token.as_str()),
        ("amount", "50.00"),
        ("reason", "服务调整"),
    ];
    let path = format!("/console/orders/{no}/refund");
    let twin = || Console {
        app: &app,
        http: console.http.clone(),
        cookies: console.cookies.clone(),
    };
    let (mut one, mut two) = (twin(), twin());
    let (first, second) = tokio::join!(one.post(&path, &send), two.post(&path, &send));
    for answer in [&first, &second] {
        assert!(
            answer.status == 303 || answer.status == 200,
            "{} {}",
            answer.status,
            answer.body
        );
    }
    let again = console.post(&path, &send).await;
    assert_eq!(again.status, 303, "a replay goes back to the order");
    assert_eq!(
        app.refund_requests(&no),
        1,
        "one refund whatever the clicks"
    );

    let order = app.wait_for_status(&no, "partially_refunded").await;
    let refund_id = order["refunds"][0]["refund_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refund = app.wait_for_refund(&no, &refund_id, "succeeded").await;
    assert_eq!(refund["actor"], "console:li.wei");
    let events = app.events_of(&no, "refund.succeeded").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["actor"], "console:li.wei");
    let ents = app.entitlements("emp_console").await;
    assert_eq!(ents["entitlements"][0]["quota"], 38);

    let page = console.get(&format!("/console/orders/{no}")).await;
    assert!(page.body.contains("partially_refunded"), "{}", page.body);
    assert!(page.body.contains("console:li.wei"), "{}", page.body);
    assert!(page.body.contains(">38<"), "{}", page.body);
}

on_both_backends!(
    a_refund_from_the_console_is_sent_once_and_names_its_person_sqlite,
    a_refund_from_the_console_is_sent_once_and_names_its_person_postgres,
    a_refund_from_the_console_is_sent_once_and_names_its_person
);

async fn forms_without_their_token_or_their_scope_are_refused(app: TestApp) {
    let order = app
        .paid_order("emp_scope", "alipay", "resume-download-50")
        .await;
    let no = order["order_no"].as_str().unwrap().to_owned();
    let password = user(&app, "reader", &[Scope::Entitlements]).await;
    let mut reader = Console::new(&app);
    assert_eq!(
        reader.password("reader", &password).await.location(),
        "/console",
        "no second factor without finance or privacy"
    );
    let page = reader.get(&format!("/console/orders/{no}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/refund"), "{}", page.body);
    assert_eq!(
        reader
            .get(&format!("/console/orders/{no}/refund"))
            .await
            .status,
        403
    );
    let csrf = page.input("csrf");
    let forged = reader
        .post(
            &format!("/console/orders/{no}/refund"),
            &[("csrf", &csrf), ("token", "forged"), ("amount", "1.00")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(reader.get("/console/reconciliations").await.status, 403);
    assert_eq!(reader.get("/console/erasures").await.status, 403);

    let (mut finance, _, _) = finance(&app, "cashier").await;
    for csrf in [None, Some("0".repeat(64))] {
        let mut form = vec![("amount", "1.00"), ("token", "t1")];
        if let Some(c) = &csrf {
            form.push(("csrf", c));
        }
        let refused = finance
            .post(&format!("/console/orders/{no}/refund"), &form)
            .await;
        assert_eq!(refused.status, 403, "csrf {csrf:?}");
    }
    // Sign-in itself needs its form's token.
    let bare = Console::new(&app)
        .post(
            "/console/sign-in",
            &[("name", "cashier"), ("password", "whatever")],
        )
        .await;
    assert_eq!(bare.status, 403);
    assert_eq!(app.refund_requests(&no), 0);
    assert_eq!(app.order(&no).await["status"], "paid");
}

on_both_backends!(
    forms_without_their_token_or_their_scope_are_refused_sqlite,
    forms_without_their_token_or_their_scope_are_refused_postgres,
    forms_without_their_token_or_their_scope_are_refused
);

async fn a_code_works_once_and_ten_wrong_passwords_lock(app: TestApp) {
    let (_, secret, password) = finance(&app, "zhao").await;
    let mut console = Console::new(&app);
    assert_eq!(
        console.password("zhao", &password).await.location(),
        "/console/sign-in/code"
    );
    let page = console.get("/console/sign-in/code").await;
    let csrf = page.input("csrf");
    // The enrolment spent this step's code: the same code again is refused.
    let now = console.now_unix();
    let used = format!("{:06}", secret.code_at_step(step_of(now)));
    let refused = console
        .post("/console/sign-in/code", &[("csrf", &csrf), ("code", &used)])
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let next = format!("{:06}", secret.code_at_step(step_of(now) + 1));
    let ok = console
        .post("/console/sign-in/code", &[("csrf", &csrf), ("code", &next)])
        .await;
    assert_eq!(ok.location(), "/console", "{}", ok.body);
    assert_eq!(console.get("/console").await.status, 200);

    let mut stranger = Console::new(&app);
    for _ in 0..10 {
        assert_eq!(
            stranger.password("zhao", "wrong password!").await.status,
            401
        );
    }
    let locked = stranger.password("zhao", &password).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.body.contains("锁定"));
    // An unknown name is refused as a wrong password is: the form tells no names.
    assert_eq!(stranger.password("nobody", "x").await.status, 401);
}

on_both_backends!(
    a_code_works_once_and_ten_wrong_passwords_lock_sqlite,
    a_code_works_once_and_ten_wrong_passwords_lock_postgres,
    a_code_works_once_and_ten_wrong_passwords_lock
);

async fn disabling_and_signing_out_end_sessions_at_once(app: TestApp) {
    let password = user(&app, "temp", &[Scope::Checkout]).await;
    let mut console = Console::new(&app);
    console.password("temp", &password).await;
    let page = console.get("/console").await;
    assert_eq!(page.status, 200);
    for (header, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(page.headers[header], value, "{header}");
    }
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let cookie = page.headers.get_all(SET_COOKIE).iter().count();
    assert_eq!(cookie, 0, "no new cookie on a page");

    let csrf = page.input("csrf");
    let out = console.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!console.cookies.contains_key("paygate_console"));
    let mut kept = Console::new(&app);
    kept.password("temp", &password).await;
    let old_cookie = kept.cookies.clone();
    assert_eq!(kept.get("/console").await.status, 200);

    let deps = console_users::Deps {
        db: &app.db,
        clock: app.state.clock.as_ref(),
    };
    console_users::disable(&deps, &ConsoleUserName::parse("temp").unwrap())
        .await
        .unwrap();
    kept.cookies = old_cookie;
    let refused = kept.get("/console").await;
    assert_eq!(refused.status, 303);
    assert_eq!(refused.location(), "/console/sign-in");
    assert_eq!(kept.password("temp", &password).await.status, 401);
}

on_both_backends!(
    disabling_and_signing_out_end_sessions_at_once_sqlite,
    disabling_and_signing_out_end_sessions_at_once_postgres,
    disabling_and_signing_out_end_sessions_at_once
);

async fn an_erasure_and_a_reconciliation_from_the_console_name_who_asked(app: TestApp) {
    let order = app
        .paid_order("emp_gone", "wechatpay", "resume-download-50")
        .await;
    let password = user(&app, "wang", &[Scope::Finance, Scope::Privacy]).await;
    let mut console = Console::new(&app);
    console.password("wang", &password).await;
    console.enrol().await;
    let csrf = console.csrf().await;

    let confirm = console
        .post(
            "/console/erasures/confirm",
            &[("csrf", &csrf), ("employer_id", "emp_gone")],
        )
        .await;
    assert!(confirm.body.contains("不可撤销"), "{}", confirm.body);
    let done = console
        .post(
            "/console/erasures",
            &[("csrf", &csrf), ("employer_id", "emp_gone")],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let list = console.get("/console/erasures").await;
    assert!(list.body.contains("console:wang"), "{}", list.body);
    assert!(
        !list.body.contains("emp_gone"),
        "the list shows no employer id"
    );
    app.jobs
        .run_once(paygate::jobs::Job::Erasure)
        .await
        .unwrap();
    let erased = app.events().await["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "employer.erased")
        .cloned()
        .expect("employer.erased");
    assert_eq!(erased["data"]["actor"], "console:wang");

    let today = app
        .state
        .clock
        .now()
        .with_timezone(&paygate::clock::beijing())
        .date_naive()
        .to_string();
    let run = console
        .post(
            "/console/reconciliations",
            &[("csrf", &csrf), ("provider", "wechatpay"), ("date", &today)],
        )
        .await;
    assert_eq!(run.status, 303, "{}", run.body);
    let page = console.get(run.location()).await;
    assert!(page.body.contains("console:wang"), "{}", page.body);
    assert!(page.body.contains("matched"));
    let csv = console
        .get(&format!("{}/discrepancies.csv", run.location()))
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.body
            .trim_start_matches('\u{feff}')
            .starts_with("class,kind,order_no")
    );
    let feed: Value = app.events().await;
    let completed = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "reconciliation.completed")
        .cloned()
        .expect("reconciliation.completed");
    assert_eq!(completed["data"]["actor"], "console:wang");
    let _ = order;
}

on_both_backends!(
    an_erasure_and_a_reconciliation_from_the_console_name_who_asked_sqlite,
    an_erasure_and_a_reconciliation_from_the_console_name_who_asked_postgres,
    an_erasure_and_a_reconciliation_from_the_console_name_who_asked
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_is_escaped_and_a_link_sets_a_password_once() {
    let app = TestApp::spawn().await;
    let password = user(&app, "viewer", &[Scope::Checkout]).await;
    let mut console = Console::new(&app);
    console.password("viewer", &password).await;
    let attack = "<img src=x onerror=alert(1)>";
    let path = format!(
        "/console/orders?employer={}",
        url::form_urlencoded::byte_serialize(attack.as_bytes()).collect::<String>()
    );
    let page = console.get(&path).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(attack), "{}", page.body);
    assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));

    let deps = console_users::Deps {
        db: &app.db,
        clock: app.state.clock.as_ref(),
    };
    let name = ConsoleUserName::parse("newcomer").unwrap();
    let token = console_users::create(&deps, &name, &[Scope::Checkout], SecondFactor::ByScopes)
        .await
        .unwrap();
    let mut newcomer = Console::new(&app);
    let link = format!("/console/set-password?token={}", token.0);
    let form = newcomer.get(&link).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let form_token = form.input("form_token");
    let short = newcomer
        .post(
            "/console/set-password",
            &[
                ("form_token", &form_token),
                ("token", &token.0),
                ("password", "short"),
                ("again", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 400);
    let form_token = short.input("form_token");
    let set = newcomer
        .post(
            "/console/set-password",
            &[
                ("form_token", &form_token),
                ("token", &token.0),
                ("password", "a long enough one"),
                ("again", "a long enough one"),
            ],
        )
        .await;
    assert_eq!(
        set.location(),
        "/console/sign-in?done=password",
        "{}",
        set.body
    );
    assert_eq!(newcomer.get(&link).await.status, 404, "a link works once");
    assert_eq!(
        newcomer
            .password("newcomer", "a long enough one")
            .await
            .location(),
        "/console"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_its_reader() {
    let app = TestApp::spawn().await;
    app.paid_order("emp_pages", "alipay", "resume-view-30d")
        .await;
    let password = user(&app, "all", &Scope::ALL).await;
    let mut console = Console::new(&app);
    console.password("all", &password).await;
    console.enrol().await;
    for path in [
        "/console",
        "/console/orders",
        "/console/reconciliations",
        "/console/erasures",
        "/console/operations",
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(page.body.contains("paygate 控制台"), "{path}");
        assert!(
            page.body.len() < 100_000,
            "{path} is {} bytes",
            page.body.len()
        );
        assert!(!page.body.contains("<script"), "{path} has a script");
    }
    let overview = console.get("/console").await;
    assert!(overview.body.contains("<svg"), "the daily chart");
    assert!(overview.body.contains("¥99.00"), "{}", overview.body);
    assert_eq!(console.get("/console/nothing-here").await.status, 404);
}
