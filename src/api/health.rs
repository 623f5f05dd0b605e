//! Liveness and readiness (`/metrics` is `metrics.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
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
