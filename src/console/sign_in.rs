//! Signing in, step by step: name and password; then the TOTP code (or, the first time, the
//! enrolment of an authenticator app); a new session id at each step. Also the one-time
//! set-password link and signing out.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::context::Console;
use super::page::{Failure, frame};
use super::session::{
    AnySession, FORM_COOKIE, PostedAnonymous, PostedPartial, SESSION_COOKIE, cookie, csrf_of,
    set_cookie,
};
use crate::console_users::{self, PasswordError, SecondFactorError, SignInError};
use crate::store::console::Stage;

/// The address a request came from (the connection's peer).
pub struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip()),
        ))
    }
}

/// Where a session at `stage` goes next.
fn next_page(stage: Stage) -> &'static str {
    match stage {
        Stage::Password => "/console/sign-in/code",
        Stage::Enrol => "/console/enrol",
        Stage::Full => "/console",
    }
}

/// A page with a fresh double-submit token in its form and in its cookie.
fn with_form_token(console: &Console, render: impl FnOnce(&str) -> Markup) -> Response {
    let token = console_users::OneTime::generate().0;
    let page = render(&token);
    (
        [(
            header::SET_COOKIE,
            set_cookie(FORM_COOKIE, Some(&token), console.secure),
        )],
        super::page::Page(page),
    )
        .into_response()
}

fn sign_in_page(token: &str, notice: Option<&str>, error: Option<&str>) -> Markup {
    frame(
        "登录",
        None,
        html! {
            @if let Some(n) = notice { p.notice { (n) } }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/console/sign-in" {
                input type="hidden" name="form_token" value=(token);
                label { "用户名" input name="name" autocomplete="username" required; }
                label { "密码" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "登录" }
            }
        },
    )
    .0
}

#[derive(Deserialize)]
pub struct Notice {
    #[serde(default)]
    done: Option<String>,
}

pub async fn form(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Response {
    // Someone signed in already goes where their session stands.
    if let Some(c) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(s)) = console_users::session(&console.users(), c, console.idle).await
    {
        return Redirect::to(next_page(s.stage)).into_response();
    }
    let notice = match q.done.as_deref() {
        Some("password") => Some("密码已设置，请登录。"),
        Some("signed-out") => Some("你已退出。"),
        _ => None,
    };
    with_form_token(&console, |t| sign_in_page(t, notice, None))
}

#[derive(Deserialize)]
pub struct SignInForm {
    name: String,
    password: String,
}

pub async fn submit(
    State(console): State<Console>,
    Peer(peer): Peer,
    posted: PostedAnonymous<SignInForm>,
) -> Result<Response, Failure> {
    let now = Instant::now();
    if let Some(ip) = peer
        && !console.throttle.allows(ip, now)
    {
        return Err(Failure::TooMany(
            "此地址登录失败次数过多，请稍后再试。".into(),
        ));
    }
    let f = posted.form;
    match console_users::sign_in(&console.users(), f.name.trim(), &f.password).await {
        Ok(started) => {
            // Sign-ins are rare: the moment to clear sessions nobody uses any more.
            if let Err(e) = console_users::forget_idle(&console.users(), console.idle).await {
                tracing::warn!(error = %e, "forgetting idle console sessions failed");
            }
            Ok((
                [(
                    header::SET_COOKIE,
                    set_cookie(SESSION_COOKIE, Some(&started.cookie.0), console.secure),
                )],
                Redirect::to(next_page(started.stage)),
            )
                .into_response())
        }
        Err(SignInError::Db(e)) => Err(Failure::internal(e)),
        Err(e) => {
            if let Some(ip) = peer {
                console.throttle.failed(ip, now);
            }
            let (status, text) = match e {
                SignInError::Locked => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "登录失败次数过多，账号已暂时锁定，请稍后再试。",
                ),
                _ => (StatusCode::UNAUTHORIZED, "用户名或密码错误。"),
            };
            Ok((
                status,
                with_form_token(&console, |t| sign_in_page(t, None, Some(text))),
            )
                .into_response())
        }
    }
}

fn code_page(csrf: &str, error: Option<&str>) -> Markup {
    frame(
        "两步验证",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action="/console/sign-in/code" {
                input type="hidden" name="csrf" value=(csrf);
                label { "验证器中的 6 位验证码" input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required; }
                button type="submit" { "验证" }
            }
        },
    )
    .0
}

pub async fn code_form(session: AnySession) -> Result<Response, Failure> {
    if session.session.stage != Stage::Password {
        return Ok(Redirect::to(next_page(session.session.stage)).into_response());
    }
    Ok(super::page::Page(code_page(&csrf_of(&session.cookie), None)).into_response())
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// The answer once the second factor is through: the new session's cookie, to the overview.
fn promoted(console: &Console, cookie: &console_users::OneTime) -> Response {
    (
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, Some(&cookie.0), console.secure),
        )],
        Redirect::to("/console"),
    )
        .into_response()
}

pub async fn code_submit(
    State(console): State<Console>,
    posted: PostedPartial<CodeForm>,
) -> Result<Response, Failure> {
    let s = &posted.session;
    if s.session.stage != Stage::Password {
        return Ok(Redirect::to(next_page(s.session.stage)).into_response());
    }
    match console_users::second_factor(&console.users(), &s.cookie, &s.session, &posted.form.code)
        .await
    {
        Ok(cookie) => Ok(promoted(&console, &cookie)),
        Err(SecondFactorError::Refused) => Ok((
            StatusCode::UNAUTHORIZED,
            super::page::Page(code_page(&csrf_of(&s.cookie), Some("验证码错误或已使用。"))),
        )
            .into_response()),
        Err(SecondFactorError::SessionEnded) => Err(Failure::SignIn),
        Err(e) => Err(Failure::internal(e)),
    }
}

/// The enrolment page: a new secret each time it is shown, as a QR code and as text.
pub async fn enrol_form(
    State(console): State<Console>,
    session: AnySession,
) -> Result<Response, Failure> {
    enrol_page(&console, &session, None, StatusCode::OK).await
}

async fn enrol_page(
    console: &Console,
    session: &AnySession,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, Failure> {
    if session.session.stage != Stage::Enrol {
        return Ok(Redirect::to(next_page(session.session.stage)).into_response());
    }
    let user = &session.session.user;
    let secret = console_users::offer_enrolment(&console.users(), user)
        .await
        .map_err(Failure::internal)?;
    let uri = secret.otpauth_uri("paygate", user.name.as_str());
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .map_err(Failure::internal)?;
    // The renderer writes a standalone file: inline, only the <svg> element goes in.
    let svg = qr.find("<svg").map_or("", |at| &qr[at..]).to_owned();
    let page = frame(
        "设置两步验证",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            p { "你的账号可以退款或处理个人信息，登录需要验证器（如 Google Authenticator、Microsoft Authenticator）生成的验证码。用验证器扫描二维码，或手动输入密钥，然后输入验证器显示的 6 位验证码。" }
            div.qr { (PreEscaped(svg)) }
            p { "密钥：" code #totp-secret { (secret.to_base32()) } }
            form.stack method="post" action="/console/enrol" {
                input type="hidden" name="csrf" value=(csrf_of(&session.cookie));
                label { "6 位验证码" input name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required; }
                button type="submit" { "完成设置" }
            }
        },
    );
    Ok((status, page).into_response())
}

pub async fn enrol_submit(
    State(console): State<Console>,
    posted: PostedPartial<CodeForm>,
) -> Result<Response, Failure> {
    let s = &posted.session;
    match console_users::confirm_enrolment(
        &console.users(),
        &s.cookie,
        &s.session,
        &posted.form.code,
    )
    .await
    {
        Ok(cookie) => Ok(promoted(&console, &cookie)),
        // The secret offered with the page it came from: a new page offers a new one.
        Err(SecondFactorError::Refused) => {
            enrol_page(
                &console,
                s,
                Some("验证码不对，请用新的二维码重新设置。"),
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(SecondFactorError::SessionEnded) => Err(Failure::SignIn),
        Err(e) => Err(Failure::internal(e)),
    }
}

#[derive(Deserialize)]
pub struct LinkToken {
    token: String,
}

fn password_page(form_token: &str, link: &str, name: &str, error: Option<&str>) -> Markup {
    frame(
        "设置密码",
        None,
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            p { "为控制台用户 " strong { (name) } " 设置密码（至少 12 个字符）。" }
            form.stack method="post" action="/console/set-password" {
                input type="hidden" name="form_token" value=(form_token);
                input type="hidden" name="token" value=(link);
                label { "新密码" input type="password" name="password" autocomplete="new-password" minlength="12" required; }
                label { "再输入一次" input type="password" name="again" autocomplete="new-password" minlength="12" required; }
                button type="submit" { "设置密码" }
            }
        },
    )
    .0
}

pub async fn password_form(
    State(console): State<Console>,
    Query(q): Query<LinkToken>,
) -> Result<Response, Failure> {
    let user = console_users::setup_link_user(&console.users(), &q.token)
        .await
        .map_err(Failure::internal)?
        .ok_or_else(|| {
            Failure::NotFound("链接无效、已使用或已过期，请联系管理员重新生成。".into())
        })?;
    Ok(with_form_token(&console, |t| {
        password_page(t, &q.token, user.name.as_str(), None)
    }))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    token: String,
    password: String,
    again: String,
}

pub async fn password_submit(
    State(console): State<Console>,
    posted: PostedAnonymous<PasswordForm>,
) -> Result<Response, Failure> {
    let f = posted.form;
    if f.password != f.again {
        return refuse_password(&console, &f.token, "两次输入的密码不一致。").await;
    }
    match console_users::set_password(&console.users(), &f.token, &f.password).await {
        Ok(_) => Ok(Redirect::to("/console/sign-in?done=password").into_response()),
        Err(PasswordError::Length) => {
            refuse_password(&console, &f.token, "密码须为 12 到 256 个字符。").await
        }
        Err(PasswordError::IsName) => {
            refuse_password(&console, &f.token, "密码不能与用户名相同。").await
        }
        Err(PasswordError::LinkInvalid) => Err(Failure::NotFound(
            "链接无效、已使用或已过期，请联系管理员重新生成。".into(),
        )),
        Err(e) => Err(Failure::internal(e)),
    }
}

/// The set-password form again, saying why the password was not taken.
async fn refuse_password(console: &Console, token: &str, why: &str) -> Result<Response, Failure> {
    let user = console_users::setup_link_user(&console.users(), token)
        .await
        .map_err(Failure::internal)?
        .ok_or_else(|| Failure::NotFound("链接无效、已使用或已过期。".into()))?;
    Ok((
        StatusCode::BAD_REQUEST,
        with_form_token(console, |t| {
            password_page(t, token, user.name.as_str(), Some(why))
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct Nothing {}

pub async fn sign_out(
    State(console): State<Console>,
    posted: PostedPartial<Nothing>,
) -> Result<Response, Failure> {
    console_users::sign_out(&console.users(), &posted.session.cookie)
        .await
        .map_err(Failure::internal)?;
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, None, console.secure),
        )],
        Redirect::to("/console/sign-in?done=signed-out"),
    )
        .into_response())
}
