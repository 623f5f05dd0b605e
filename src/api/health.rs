//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Prometheus text exposition (DESIGN.md §4); unauthenticated like the health checks, so
/// expose it only where the scraper can reach it. It holds counts, never identifiers.
pub async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::render(),
    )
}

/// Ready when the database answers (and, on SQLite, its write lock can be had) within
/// `limits.readiness_timeout_ms`, whatever the database does meanwhile.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let within = crate::config::LimitsConfig::ms(state.config.limits.readiness_timeout_ms);
    match state.db.ready(within).await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))),
        Err(e) => {
            match e {
                Some(e) => tracing::warn!(error = %e, "readiness: database unreachable"),
                None => tracing::warn!(?within, "readiness: database did not answer in time"),
            }
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "database_unreachable"})),
            )
        }
    }
}
