//! [`body_limit`]: a declared `Content-Length` over the route's limit is 413 before the body
//! is read.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audience::Audience;
use super::shape::is_json;

/// The body limits of the routes (`DefaultBodyLimit` in `api::router` holds the same
/// numbers): webhooks have theirs, every other route but the simulator's the API's.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    pub(super) api: usize,
    pub(super) webhook: usize,
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
/// [`super::shape::one_shape`].
pub(super) async fn body_limit(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
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
