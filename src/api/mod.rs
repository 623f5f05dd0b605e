//! The HTTP API (design.md §4): one module per resource.

pub mod auth;
pub mod entitlements;
pub mod events;
pub mod health;
pub mod idempotent;
pub mod openapi;
pub mod orders;
pub mod plans;
pub mod reconciliations;
pub mod refunds;
pub mod webhooks;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/plans", get(plans::list))
        .route("/v1/orders", post(orders::create))
        .route("/v1/orders/{order_no}", get(orders::get))
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
        .route("/webhooks/{provider}", post(webhooks::receive))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(|| async {
            crate::error::ApiError::NotFound("not_found", "no such route".into())
        })
        .with_state(state)
}

/// Parses a JSON body ourselves so malformed input gets the error envelope.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::error::ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        crate::error::ApiError::bad_request("invalid_json", format!("request body: {e}"))
    })
}
