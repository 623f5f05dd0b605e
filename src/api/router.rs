//! The routes of the API, webhooks and health checks, with their per-route layers (body
//! limits, request timeouts, the webhook rate).

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use super::{
    entitlements, events, health, metrics, openapi, orders, plans, privacy, reconciliations,
    refunds, webhooks,
};
use crate::config::LimitsConfig;
use crate::state::AppState;

/// The longest `?wait=` of `GET /v1/orders/{order_no}` (DESIGN.md §4).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let request_timeout = LimitsConfig::ms(limits.request_timeout_ms);
    // 408: the request took too long (a slow body included); shaped by edge::one_shape.
    let timeout = |d: Duration| TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, d);
    let webhook = post(webhooks::receive)
        .layer(DefaultBodyLimit::max(limits.webhook_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.rate_limits.clone(),
            crate::edge::webhook_rate,
        ));
    Router::new()
        .route("/v1/plans", get(plans::list))
        .route("/v1/orders", post(orders::create))
        .route("/v1/orders/{order_no}/cancel", post(orders::cancel))
        .route(
            "/v1/orders/{order_no}/return-check",
            post(orders::return_check),
        )
        .route("/v1/orders/{order_no}/refunds", post(refunds::create))
        .route(
            "/v1/orders/{order_no}/refunds/{refund_id}",
            get(refunds::get),
        )
        .route(
            "/v1/employers/{employer_id}/entitlements",
            get(entitlements::list),
        )
        .route(
            "/v1/employers/{employer_id}/resume-access",
            post(entitlements::access),
        )
        .route("/v1/events", get(events::list))
        .route(
            "/v1/reconciliations",
            post(reconciliations::create).get(reconciliations::list),
        )
        .route("/v1/reconciliations/{id}", get(reconciliations::get))
        .route(
            "/v1/reconciliations/{id}/discrepancies.csv",
            get(reconciliations::discrepancies_csv),
        )
        .route("/v1/privacy/erasures", post(privacy::create))
        .route("/v1/privacy/erasures/{erasure_id}", get(privacy::get))
        .route("/webhooks/{provider}", webhook)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        // Unauthenticated like the health checks (expose it only where the scraper reaches
        // it): counts and times, never identifiers. Its database read is shared by the scrapes
        // that arrive while it is in flight.
        .route(
            "/metrics",
            get(metrics::serve).layer(axum::Extension(std::sync::Arc::new(
                metrics::Scrapes::default(),
            ))),
        )
        .route("/openapi.json", get(openapi::serve))
        .route_layer(timeout(request_timeout))
        // The long poll may wait up to MAX_WAIT before it answers.
        .route(
            "/v1/orders/{order_no}",
            get(orders::get).layer(timeout(request_timeout + MAX_WAIT)),
        )
        .layer(DefaultBodyLimit::max(limits.api_body_bytes))
        .fallback(|| async {
            crate::error::ApiError::NotFound("not_found", "no such route".into())
        })
        .with_state(state)
}
