//! The frame every console page shares (navigation by scope, the signed-in name, sign-out),
//! how values are written for people (¥ amounts, Beijing times, zh-CN labels beside the
//! codes finance sees in exports), and the failures a page can end in.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use crate::clock::beijing;
use crate::domain::{Fen, OrderStatus, RefundStatus, Scope};

/// A finished page.
pub struct Page(pub Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            self.0.into_string(),
        )
            .into_response()
    }
}

/// Who the frame is drawn for: their name, scopes and the CSRF token of the sign-out form
/// (`session::Viewer::nav`).
pub struct Nav<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
    pub scopes: &'a [Scope],
}

impl Nav<'_> {
    fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    fn has_any(&self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|&s| self.has(s))
    }
}

/// The page frame: the navigation shows only what the viewer's scopes open.
pub fn frame(title: &str, viewer: Option<Nav<'_>>, body: Markup) -> Page {
    Page(html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 职前通 paygate 控制台" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header.top {
                    a.brand href="/console" { "paygate 控制台" }
                    @if let Some(v) = viewer {
                        nav {
                            a href="/console" { "概览" }
                            @if v.has_any(&[Scope::Checkout, Scope::Entitlements, Scope::Finance]) {
                                a href="/console/orders" { "订单" }
                            }
                            @if v.has(Scope::Finance) {
                                a href="/console/reconciliations" { "对账" }
                            }
                            @if v.has(Scope::Privacy) {
                                a href="/console/erasures" { "账号注销" }
                            }
                            a href="/console/operations" { "运维" }
                        }
                        form.signout method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            span.who { (v.name) }
                            button type="submit" { "退出" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    })
}

/// `¥1,234.50`: yuan with thousands separators, from integer fen.
pub fn yuan(amount: Fen) -> String {
    let text = amount.to_string();
    let (int, dec) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("¥{grouped}.{dec}")
}

/// A signed total (net of refunds): `-¥12.00` below zero.
pub fn yuan_signed(fen: i64) -> String {
    match Fen::new(fen.abs()) {
        Ok(abs) if fen < 0 => format!("-{}", yuan(abs)),
        Ok(abs) => yuan(abs),
        Err(_) => fen.to_string(),
    }
}

/// A stored time (epoch milliseconds, checked when decoded) in Beijing time, to the second.
pub fn time(ms: i64) -> String {
    match crate::clock::from_millis(ms) {
        Ok(t) => t
            .with_timezone(&beijing())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(e) => e.to_string(),
    }
}

/// An RFC 3339 time as the API writes it (`…+08:00`), shown as [`time`] shows one.
pub fn time_text(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t
            .with_timezone(&beijing())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

pub fn order_status_label(s: OrderStatus) -> &'static str {
    match s {
        OrderStatus::Pending => "待支付",
        OrderStatus::Paid => "已支付",
        OrderStatus::PartiallyRefunded => "部分退款",
        OrderStatus::Refunded => "已退款",
        OrderStatus::Closed => "已关闭",
    }
}

pub fn refund_status_label(s: RefundStatus) -> &'static str {
    match s {
        RefundStatus::Processing => "处理中",
        RefundStatus::Succeeded => "退款成功",
        RefundStatus::Failed => "退款失败",
    }
}

pub fn provider_label(code: &str) -> &'static str {
    match code {
        "wechatpay" => "微信支付",
        "alipay" => "支付宝",
        _ => "其他",
    }
}

/// A zh-CN label with its code beside it, as finance sees the code in exports.
pub fn labelled(label: &str, code: &str) -> Markup {
    html! { span.label { (label) } " " code { (code) } }
}

/// How a console request ends when it does not end in its page.
#[derive(Debug)]
pub enum Failure {
    /// No live session: to the sign-in page.
    SignIn,
    /// Signed in part way: to the next step.
    Redirect(&'static str),
    /// The viewer's scopes do not open this (403).
    Forbidden,
    /// The form's CSRF token is missing or wrong (403).
    Csrf,
    NotFound(String),
    /// The request itself is wrong (400), said in words for the person.
    BadRequest(String),
    /// Too many attempts (429).
    TooMany(String),
    /// Ours: logged with its cause, never shown.
    Internal(anyhow::Error),
}

impl Failure {
    pub fn internal(e: impl Into<anyhow::Error>) -> Failure {
        Failure::Internal(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            Failure::SignIn => return Redirect::to("/console/sign-in").into_response(),
            Failure::Redirect(to) => return Redirect::to(to).into_response(),
            Failure::Forbidden => (
                StatusCode::FORBIDDEN,
                "无权限",
                "你的账号没有此操作所需的权限。".to_owned(),
            ),
            Failure::Csrf => (
                StatusCode::FORBIDDEN,
                "请求无效",
                "表单已过期或不是从本控制台提交的，请返回重新操作。".to_owned(),
            ),
            Failure::NotFound(what) => (StatusCode::NOT_FOUND, "未找到", what),
            Failure::BadRequest(why) => (StatusCode::BAD_REQUEST, "请求有误", why),
            Failure::TooMany(why) => (StatusCode::TOO_MANY_REQUESTS, "请稍后再试", why),
            Failure::Internal(e) => {
                tracing::error!(error = ?e, "console page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "出错了",
                    "服务暂时出错，请稍后再试。".to_owned(),
                )
            }
        };
        let page = frame(
            title,
            None,
            html! {
                p.error { (text) }
                p { a href="/console" { "返回控制台" } }
            },
        );
        (status, page).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_finance_writes_them() {
        let f = |fen| yuan(Fen::new(fen).unwrap());
        assert_eq!(f(0), "¥0.00");
        assert_eq!(f(5), "¥0.05");
        assert_eq!(f(19900), "¥199.00");
        assert_eq!(f(123450), "¥1,234.50");
        assert_eq!(f(123456789), "¥1,234,567.89");
        assert_eq!(yuan_signed(-1200), "-¥12.00");
    }

    #[test]
    fn times_are_beijing_times() {
        // 2026-12-07T02:31:00Z is 10:31 in Beijing.
        assert_eq!(time(1_796_610_660_000), "2026-12-07 10:31:00");
    }
}
