//! [`one_shape`]: every error answer in its audience's shape.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::audience::{Audience, code_of};
use crate::error::envelope;

pub(super) fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

pub(super) fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// The readable part of an unshaped error body (axum's rejection texts are one short line);
/// the status's reason otherwise.
async fn message_of(status: StatusCode, body: Body) -> String {
    const MAX: usize = 512;
    let text = axum::body::to_bytes(body, MAX)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_owned())
        .unwrap_or_default();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    }
}

/// Middleware: every error answer in its audience's shape, status and headers (`Allow`,
/// `Retry-After`) kept. Answers already shaped (JSON from the API and WeChat's answer, `fail`
/// for Alipay) pass through untouched.
pub async fn one_shape(request: Request, next: Next) -> Response {
    let audience = Audience::of(request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || audience == Audience::Sandbox {
        return response;
    }
    if audience != Audience::Alipay && is_json(&response) {
        return response;
    }
    if audience == Audience::Console && is_html(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = match audience {
        Audience::Alipay => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Body::from("fail")
        }
        Audience::Wechat => {
            let message = message_of(status, body).await;
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Body::from(serde_json::json!({"code": "FAIL", "message": message}).to_string())
        }
        Audience::Console => {
            // A layer's or axum's own refusal on a console route: a page, saying only its code.
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            Body::from(format!(
                "<!DOCTYPE html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>{}</title>\
                 <p>请求未完成：<code>{}</code></p><p><a href=\"/console\">返回控制台</a></p></html>",
                status.as_u16(),
                code_of(status)
            ))
        }
        Audience::Api | Audience::Sandbox => {
            let message = message_of(status, body).await;
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Body::from(envelope(code_of(status), &message).to_string())
        }
    };
    Response::from_parts(parts, body)
}
