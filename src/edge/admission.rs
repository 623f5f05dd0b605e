//! Classes of traffic (issue 20, DESIGN.md §13), each with its own budget, so one kind of
//! request piling up cannot starve another:
//!
//! | class | requests | budget | past it |
//! |---|---|---|---|
//! | probes | `/healthz`, `/readyz`, `/metrics` | none: never shed | — |
//! | webhooks | `POST /webhooks/{provider}` | [`LimitsConfig::webhook_reserve`] slots only they take, then the shared ones | 503, in the provider's shape |
//! | long polls | `GET /v1/orders/{no}?wait=N`, N > 0 | `max_waits` | answered at once with the current state (a plain read in the API class), counted in `paygate_waits_degraded_total` |
//! | API | every other request | `max_in_flight` − the webhook reserve | 503 `overloaded`, `Retry-After: 1` |
//!
//! A slot is taken when the request comes in and given back when its handler has answered
//! (or the client went away). The embedded simulator (`/sandbox/…`, `serve --sandbox` only)
//! stands for the providers' own servers and takes no slot: order creation calls it over the
//! same listener, and must not wait on itself.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LimitsConfig;
use crate::error::ApiError;

/// The budgets of [`admit`], one per class that has one.
#[derive(Debug)]
pub struct Admission {
    /// The API's slots, which webhooks may also take.
    shared: Arc<Semaphore>,
    /// Webhooks' own slots.
    webhook_reserve: Arc<Semaphore>,
    waits: Arc<Semaphore>,
}

/// Put on a long poll admitted past `max_waits`: `GET /v1/orders/{no}` answers at once.
#[derive(Debug, Clone, Copy)]
pub struct WaitDegraded;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Probes and the embedded simulator: never shed.
    Exempt,
    Webhook,
    Wait,
    Api,
}

fn class_of(method: &Method, path: &str, query: Option<&str>) -> Class {
    if matches!(path, "/healthz" | "/readyz" | "/metrics")
        || path == "/sandbox"
        || path.starts_with("/sandbox/")
    {
        return Class::Exempt;
    }
    if method == Method::POST && path.starts_with("/webhooks/") {
        return Class::Webhook;
    }
    let one_order = path
        .strip_prefix("/v1/orders/")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    if one_order && (method == Method::GET || method == Method::HEAD) && waits(query) {
        return Class::Wait;
    }
    Class::Api
}

/// A `wait=` the handler will honour (its own parser: 1 to 30 whole seconds); anything else is
/// a plain read or the handler's 400, neither of which waits.
fn waits(query: Option<&str>) -> bool {
    wait_param(query).is_ok_and(|wait| !wait.is_zero())
}

/// The longest `wait=` (seconds).
pub const MAX_WAIT_SECS: u64 = 30;

/// `wait=N` of `GET /v1/orders/{no}`: whole seconds, 0 to 30. The handler and the admission
/// class above read it with this one parser.
pub fn wait_param(query: Option<&str>) -> Result<std::time::Duration, ApiError> {
    let mut wait = std::time::Duration::ZERO;
    // Other parameters (a page's cache-buster) were always ignored here, and still are.
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "wait" {
            let secs = value
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= MAX_WAIT_SECS)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_wait",
                        format!("wait must be whole seconds from 0 to {MAX_WAIT_SECS}"),
                    )
                })?;
            wait = std::time::Duration::from_secs(secs);
        }
    }
    Ok(wait)
}

impl Admission {
    pub fn new(limits: &LimitsConfig) -> Admission {
        // The config guarantees max_in_flight ≥ 2, so the API keeps at least one slot.
        let reserve = limits.webhook_reserve();
        Admission {
            shared: Arc::new(Semaphore::new(limits.max_in_flight - reserve)),
            webhook_reserve: Arc::new(Semaphore::new(reserve)),
            waits: Arc::new(Semaphore::new(limits.max_waits())),
        }
    }

    fn shared(&self) -> Option<OwnedSemaphorePermit> {
        self.shared.clone().try_acquire_owned().ok()
    }
}

/// Middleware: the request's class and its slot, held until the handler has answered.
pub async fn admit(
    State(admission): State<Arc<Admission>>,
    mut request: Request,
    next: Next,
) -> Response {
    let class = class_of(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    let slot = match class {
        Class::Exempt => return next.run(request).await,
        Class::Webhook => admission
            .webhook_reserve
            .clone()
            .try_acquire_owned()
            .ok()
            .or_else(|| admission.shared()),
        Class::Wait => match admission.waits.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                crate::telemetry::wait_degraded();
                request.extensions_mut().insert(WaitDegraded);
                admission.shared()
            }
        },
        Class::Api => admission.shared(),
    };
    let Some(slot) = slot else {
        return overloaded();
    };
    let response = next.run(request).await;
    drop(slot);
    response
}

/// 503 with `Retry-After`, shaped for its audience by [`super::one_shape`].
fn overloaded() -> Response {
    crate::telemetry::refused("overloaded");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, HeaderValue::from_static("1"))],
        "too many requests in flight; retry shortly",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_falls_in_its_class() {
        let get = Method::GET;
        let post = Method::POST;
        for (method, path, query, class) in [
            (&get, "/healthz", None, Class::Exempt),
            (&get, "/readyz", None, Class::Exempt),
            (&get, "/metrics", None, Class::Exempt),
            (&post, "/sandbox/pay/X", None, Class::Exempt),
            (&post, "/webhooks/wechatpay", None, Class::Webhook),
            (&post, "/webhooks/alipay", None, Class::Webhook),
            (&get, "/webhooks/alipay", None, Class::Api),
            (&get, "/v1/orders/ABC", Some("wait=25"), Class::Wait),
            (&get, "/v1/orders/ABC", Some("t=1&wait=1"), Class::Wait),
            (&get, "/v1/orders/ABC", Some("wait=0"), Class::Api),
            (&get, "/v1/orders/ABC", Some("wait=31"), Class::Api),
            (&get, "/v1/orders/ABC", Some("wait=x"), Class::Api),
            (&get, "/v1/orders/ABC", None, Class::Api),
            (&get, "/v1/orders/ABC/refunds", Some("wait=5"), Class::Api),
            (&post, "/v1/orders/ABC", Some("wait=5"), Class::Api),
            (&post, "/v1/orders", None, Class::Api),
        ] {
            assert_eq!(
                class_of(method, path, query),
                class,
                "{method} {path} {query:?}"
            );
        }
    }

    #[test]
    fn the_webhook_reserve_is_out_of_the_apis_reach() {
        let limits = LimitsConfig {
            max_in_flight: 16,
            max_waits: Some(1),
            ..LimitsConfig::default()
        };
        let admission = Admission::new(&limits);
        let api: Vec<_> = std::iter::from_fn(|| admission.shared()).collect();
        assert_eq!(api.len(), 14, "16 less an eighth");
        assert_eq!(admission.webhook_reserve.available_permits(), 2);
    }
}
