//! Whose shape an error answer takes, and the envelope code of an unshaped status: shared by
//! the middleware of `shape.rs` and hyper's own answers rewritten in `wire.rs`.

use axum::http::StatusCode;

/// Whose shape an error answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Api,
    Wechat,
    Alipay,
    /// The embedded simulator answers as the providers do; left alone.
    Sandbox,
    /// The console's pages render their own errors, as pages.
    Console,
}

impl Audience {
    pub(crate) fn of(path: &str) -> Audience {
        if path == "/webhooks/wechatpay" {
            Audience::Wechat
        } else if path == "/webhooks/alipay" {
            Audience::Alipay
        } else if path == "/sandbox" || path.starts_with("/sandbox/") {
            Audience::Sandbox
        } else if path == "/console" || path.starts_with("/console/") {
            Audience::Console
        } else {
            Audience::Api
        }
    }
}

/// The envelope code of an answer that no handler shaped (axum's rejections, the layers').
pub(crate) fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "overloaded",
        s if s.is_client_error() => "bad_request",
        _ => "internal_error",
    }
}
