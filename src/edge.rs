//! The edges (issue 12): how the gateway faces the internet. Every wait bounded, every
//! resource capped, one error shape per audience, all from `[limits]`:
//!
//! | what | how | answer past it |
//! |---|---|---|
//! | reading a request head; an idle keep-alive connection | hyper's HTTP/1 `header_read_timeout` | connection closed |
//! | open connections | a semaphore taken before `accept` | new ones wait in the listen backlog |
//! | requests in flight | tower `ConcurrencyLimit` + `LoadShed` | 503 `overloaded`, `Retry-After: 1` |
//! | a whole request, body included | tower-http `TimeoutLayer` (in `api::router`) | 408 `request_timeout` |
//! | body size | axum `DefaultBodyLimit` per route (in `api::router`) | 413 `payload_too_large` |
//! | requests per API key / webhook source address | governor keyed limiters | 429 `rate_limited`, `Retry-After` |
//!
//! [`one_shape`] gives every error its audience's shape: the JSON envelope of DESIGN.md §4 for
//! the API (axum's own rejections, 404, 405, 413, 415, 408, 503 included), WeChat's
//! `{"code":"FAIL","message":…}` on `/webhooks/wechatpay`, the body `fail` on
//! `/webhooks/alipay`. The embedded sandbox (`/sandbox/…`) is left as the providers answer.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{BoxError, ServiceBuilder, ServiceExt};

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
enum Audience {
    Api,
    Wechat,
    Alipay,
    /// The embedded simulator answers as the providers do; left alone.
    Sandbox,
}

impl Audience {
    fn of(path: &str) -> Audience {
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
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
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

/// Load shedding's answer: 503 with `Retry-After`, shaped by [`one_shape`].
async fn overloaded(error: BoxError) -> Response {
    if error.is::<tower::load_shed::error::Overloaded>() {
        crate::telemetry::refused("overloaded");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
            "too many requests in flight; retry shortly",
        )
            .into_response()
    } else {
        tracing::error!(error = %error, "request failed in a layer");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
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
    // Outside the router so the in-flight cap is one for the whole process (Router::layer
    // would give each route its own), and outside the cap so a shed request is shaped too.
    let service = ServiceBuilder::new()
        .layer(axum::middleware::from_fn(one_shape))
        .layer(HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(limits.max_in_flight)
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
        let service =
            service
                .clone()
                .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
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
