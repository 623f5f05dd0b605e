//! The edges (issues 12 and 20): how the gateway faces the internet. Every wait bounded, every
//! resource capped, one error shape per audience, all from `[limits]`:
//!
//! | what | how | answer past it |
//! |---|---|---|
//! | reading a request head; an idle keep-alive connection | hyper's HTTP/1 `header_read_timeout` | connection closed |
//! | open connections | a semaphore taken before `accept` | new ones wait in the listen backlog |
//! | a request head hyper cannot parse (400, 414, 431) | hyper answers; [`wire`] rewrites the bodiless answer | the envelope (a webhook route: its provider's shape) |
//! | a declared `Content-Length` over the route's limit | [`body_limit`], before any body is read | 413 `payload_too_large` |
//! | requests in flight, per class of traffic | [`admission`] | 503 `overloaded` with `Retry-After: 1`; a long poll is answered at once |
//! | a whole request, body included | tower-http `TimeoutLayer` (in `api::router`) | 408 `request_timeout` |
//! | a body that grows over its limit | axum `DefaultBodyLimit` per route (in `api::router`) | 413 `payload_too_large` |
//! | requests per API key / webhook source address | governor keyed limiters | 429 `rate_limited`, `Retry-After` |
//!
//! [`one_shape`] gives every error its audience's shape: the JSON envelope of DESIGN.md §4 for
//! the API (axum's own rejections, 404, 405, 413, 415, 408, 503 included), WeChat's
//! `{"code":"FAIL","message":…}` on `/webhooks/wechatpay`, the body `fail` on
//! `/webhooks/alipay`. The embedded sandbox (`/sandbox/…`) is left as the providers answer.

pub mod admission;
mod wire;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

use crate::config::LimitsConfig;
use crate::error::envelope;

/// The keyed rate limiters: requests per second per API key and per webhook source address.
pub struct RateLimits {
    api: DefaultKeyedRateLimiter<String>,
    webhooks: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

fn per_second(n: u32) -> Quota {
    // Validated positive by the config; a burst of one second's worth.
    Quota::per_second(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    pub fn new(limits: &LimitsConfig) -> RateLimits {
        RateLimits {
            api: governor::RateLimiter::keyed(per_second(limits.api_rate_per_key)),
            webhooks: governor::RateLimiter::keyed(per_second(limits.webhook_rate_per_ip)),
        }
    }

    /// One request of API key `key_id`; `Err` when it is over its rate.
    pub fn api(&self, key_id: &str) -> Result<(), RateLimited> {
        self.api
            .check_key(&key_id.to_owned())
            .map_err(|_| RateLimited)
    }

    fn webhook(&self, from: IpAddr) -> Result<(), RateLimited> {
        self.webhooks.check_key(&from).map_err(|_| RateLimited)
    }

    /// Forgets keys idle for a full period (bounded memory under address churn).
    pub fn shrink(&self) {
        self.api.retain_recent();
        self.webhooks.retain_recent();
    }
}

#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many requests; slow down")]
pub struct RateLimited;

/// Route layer of `/webhooks/{provider}`: at most `webhook_rate_per_ip` requests a second from
/// one source address, before anything is read or verified. Answered 429, shaped for the
/// provider by [`one_shape`].
pub async fn webhook_rate(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if let Some(ip) = peer
        && limits.webhook(ip).is_err()
    {
        crate::telemetry::refused("webhook_rate");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
        )
            .into_response();
    }
    next.run(request).await
}

/// Whose shape an error answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Api,
    Wechat,
    Alipay,
    /// The embedded simulator answers as the providers do; left alone.
    Sandbox,
}

impl Audience {
    pub(crate) fn of(path: &str) -> Audience {
        if path == "/webhooks/wechatpay" {
            Audience::Wechat
        } else if path == "/webhooks/alipay" {
            Audience::Alipay
        } else if path == "/sandbox" || path.starts_with("/sandbox/") {
            Audience::Sandbox
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

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
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

/// The body limits of the routes (`DefaultBodyLimit` in `api::router` holds the same
/// numbers): webhooks have theirs, every other route but the simulator's the API's.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    api: usize,
    webhook: usize,
}

impl BodyLimits {
    fn of(&self, path: &str) -> Option<usize> {
        if path.starts_with("/webhooks/") {
            Some(self.webhook)
        } else if Audience::of(path) == Audience::Sandbox {
            None
        } else {
            Some(self.api)
        }
    }
}

fn too_large(limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over this route's limit of {limit} bytes"),
    )
        .into_response()
}

/// Middleware: a request whose `Content-Length` is over its route's limit is answered 413 at
/// once, before any of the body is read or a slot taken (hyper then closes the connection,
/// the body unread). A body that grows past the limit without declaring it is refused by
/// `DefaultBodyLimit` as it is read; that 413 gets the same wording here. Shaped by
/// [`one_shape`].
async fn body_limit(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let Some(limit) = limits.of(request.uri().path()) else {
        return next.run(request).await;
    };
    // hyper has already refused a request with two different lengths or an unparsable one.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        crate::telemetry::refused("body_too_large");
        return too_large(limit);
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&response) {
        crate::telemetry::refused("body_too_large");
        return too_large(limit);
    }
    response
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests in flight
/// finish. HTTP/1.1 only (what the providers and the platform speak), so the header-read
/// timeout holds for every connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &LimitsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Outside the router so the budgets are one for the whole process (Router::layer would
    // give each route its own); the body check before admission, so an oversized request
    // takes no slot; one_shape outermost, so every refusal is shaped.
    let body_limits = BodyLimits {
        api: limits.api_body_bytes,
        webhook: limits.webhook_body_bytes,
    };
    let admission = Arc::new(admission::Admission::new(limits));
    let service = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(one_shape))
        .layer(axum::middleware::from_fn_with_state(
            body_limits,
            body_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            admission,
            admission::admit,
        ))
        .service(router);

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(LimitsConfig::ms(limits.header_read_timeout_ms))
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the permit returns.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let exchanges = Arc::new(wire::Exchanges::default());
        let stream = wire::Wire::new(stream, exchanges.clone());
        let service =
            service
                .clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                    // Before hyper can write its answer: see `wire`.
                    exchanges.request(request.method() == axum::http::Method::HEAD);
                    let mut request = request.map(Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
