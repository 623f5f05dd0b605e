//! The keyed rate limiters (per API key, per webhook source address) and the webhook route's
//! layer.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::LimitsConfig;

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
/// provider by [`super::shape::one_shape`].
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
