//! The buyer's side: the cashier page (amount, QR code of the code_url, a Pay button) and the
//! pay action behind the button, which tests also call directly.

use axum::Router;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use qrcode::QrCode;
use qrcode::render::svg;
use serde_json::json;

use crate::Sandbox;
use crate::wechat::{PayError, PayTiming};

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route("/sandbox/cashier/{out_trade_no}", get(cashier_page))
        .route("/sandbox/pay/{out_trade_no}", post(pay))
        .route("/sandbox/return/{order_no}", get(merchant_return))
}

/// A stand-in for the merchant's "paid?" page that a return URL points at (`paygate serve
/// --sandbox` uses `{public_url}/sandbox/return/{order_no}` when `[checkout] return_url` is
/// unset), so a person clicking through lands somewhere: it shows what the browser brought
/// back and how the real page would check it. It verifies nothing itself.
async fn merchant_return(
    Path(order_no): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let mut rows = String::new();
    for (key, value) in url_pairs(&query) {
        rows.push_str(&format!(
            "<tr><td>{}</td><td class=\"order\">{}</td></tr>",
            escape(&key),
            escape(&value)
        ));
    }
    let brought = if rows.is_empty() {
        "<p>The provider appended nothing (WeChat H5 never does).</p>".to_owned()
    } else {
        format!("<p>Alipay's signed return query:</p><table>{rows}</table>")
    };
    let content = format!(
        r#"<p class="order">Order {no}</p>
{brought}
<p>A return is never proof of payment. The merchant's page now asks paygate:</p>
<pre class="code-url">POST /v1/orders/{no}/return-check   (body: the query string above)
GET  /v1/orders/{no}?wait=25</pre>"#,
        no = escape(&order_no),
    );
    Html(page("Back at the merchant", &content)).into_response()
}

/// `k=v&…` decoded once, `+` as a space, as a browser's form encoding writes it.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    crate::wire::alipay::decode_form(query.as_bytes()).unwrap_or_default()
}

/// `199.00` from 19900 fen: integer arithmetic only, never floats.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

/// WeChat H5's `redirect_url` (appended by the merchant to the h5_url), when it is an
/// http(s) URL and the order is an H5 order: where the browser goes after paying.
fn h5_redirect(
    sandbox: &Sandbox,
    out_trade_no: &str,
    query: &HashMap<String, String>,
) -> Option<String> {
    let url = query.get("redirect_url")?;
    let http = url.starts_with("https://") || url.starts_with("http://");
    (http && sandbox.is_wechat_h5(out_trade_no)).then(|| url.clone())
}

async fn cashier_page(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(view) = sandbox.cashier_view(&out_trade_no) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page("订单不存在", "<p>No such order in the sandbox.</p>")),
        )
            .into_response();
    };
    let qr = QrCode::new(view.code_url.as_bytes())
        .map(|code| {
            code.render::<svg::Color>()
                .min_dimensions(220, 220)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    // The H5 page carries WeChat's redirect_url on to the Pay button.
    let pay_path = match h5_redirect(&sandbox, &out_trade_no, &query) {
        Some(url) => format!(
            "/sandbox/pay/{out_trade_no}?redirect_url={}",
            crate::wire::wechat::percent_encode(&url)
        ),
        None => format!("/sandbox/pay/{out_trade_no}"),
    };
    let action = match view.state {
        "NOTPAY" => format!(
            r#"<form method="post" action="{path}"><button type="submit">Pay ¥{amount}</button></form>"#,
            path = escape(&pay_path),
            amount = yuan(view.total_fen),
        ),
        "SUCCESS" => "<p class=\"state\">Paid.</p>".to_owned(),
        _ => "<p class=\"state\">This order is closed.</p>".to_owned(),
    };
    let content = format!(
        r#"<p class="amount">¥{amount}</p>
<p>{description}</p>
<p class="order">Order {otn}</p>
<div class="qr">{qr}</div>
<p class="code-url">{code_url}</p>
{action}"#,
        amount = yuan(view.total_fen),
        description = escape(&view.description),
        otn = escape(&out_trade_no),
        code_url = escape(&view.code_url),
    );
    Html(page(
        &format!("{} sandbox cashier", view.provider),
        &content,
    ))
    .into_response()
}

/// `?late=true` ([`PayTiming::RacedTheClose`]), `?late=false` or nothing (an open order's
/// ordinary payment); None for any other value.
fn timing(query: &HashMap<String, String>) -> Option<PayTiming> {
    match query.get("late").map(String::as_str) {
        None | Some("false") => Some(PayTiming::Open),
        Some("true") => Some(PayTiming::RacedTheClose),
        Some(_) => None,
    }
}

/// Pays the order (`?late=true`: a closed order, whose payment raced its close and completes
/// after all, see [`PayTiming`]). A browser form post (HTML accepted, or a form body) is sent
/// back to the merchant as the provider would (303): an Alipay page/wap order with a
/// `return_url` to it with the signed return query, a WeChat H5 order to its `redirect_url`;
/// otherwise it ends on a page saying paid. Any other client gets the provider-side
/// transaction as JSON.
async fn pay(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let browser = wants_html(&headers);
    let Some(timing) = timing(&query) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": "INVALID_REQUEST", "message": "late must be true or false"})),
        )
            .into_response();
    };
    match sandbox.pay_with(&out_trade_no, timing) {
        Ok(_) if browser => {
            let back = sandbox
                .alipay_return_location(&out_trade_no)
                .or_else(|| h5_redirect(&sandbox, &out_trade_no, &query));
            if let Some(location) = back
                && let Ok(location) = axum::http::HeaderValue::from_str(&location)
            {
                return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
            }
            let amount = sandbox
                .cashier_view(&out_trade_no)
                .map(|view| view.total_fen)
                .unwrap_or(0);
            Html(page(
                "Paid",
                &format!(
                    "<p class=\"state\">Paid ¥{}.</p><p>Order {}</p><p>The merchant is being notified.</p>",
                    yuan(amount),
                    escape(&out_trade_no)
                ),
            ))
            .into_response()
        }
        Ok(transaction) => axum::Json(transaction).into_response(),
        Err(error) => {
            let (status, code) = match error {
                PayError::NotFound => (StatusCode::NOT_FOUND, "ORDER_NOT_EXIST"),
                PayError::Closed => (StatusCode::BAD_REQUEST, "ORDER_CLOSED"),
                PayError::AlreadyPaid => (StatusCode::CONFLICT, "ORDER_PAID"),
                PayError::NotClosed => (StatusCode::CONFLICT, "ORDER_NOT_CLOSED"),
            };
            if browser {
                (status, Html(page("Not paid", &format!("<p>{error}.</p>")))).into_response()
            } else {
                (
                    status,
                    axum::Json(json!({"code": code, "message": error.to_string()})),
                )
                    .into_response()
            }
        }
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    value(header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded")
        || value(header::ACCEPT).contains("text/html")
}

fn page(title: &str, content: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:2rem auto;text-align:center}}
.amount{{font-size:2.5rem;margin:.5rem}}.order,.code-url{{color:#666;font-size:.85rem;word-break:break-all}}
button{{font-size:1.2rem;padding:.6rem 2rem;background:#07c160;color:#fff;border:0;border-radius:.3rem}}</style>
</head><body><h1>{title}</h1>
<p><small>paygate sandbox: no real money moves.</small></p>
{content}
</body></html>"#,
        title = escape(title),
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::yuan;

    #[test]
    fn fen_become_yuan_with_two_decimals() {
        assert_eq!(yuan(19900), "199.00");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(10), "0.10");
        assert_eq!(yuan(123456789), "1234567.89");
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(-5), "-0.05");
    }
}
