//! `GET /v1/plans`: the catalog.

use axum::Json;
use axum::extract::State;

use super::auth::Caller;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<serde_json::Value> {
    let plans: Vec<_> = state
        .catalog
        .plans()
        .iter()
        .map(|p| {
            serde_json::json!({"plan": p.id, "name": p.name, "price": p.price, "currency": "CNY", "grants": p.grants})
        })
        .collect();
    Json(serde_json::json!({ "plans": plans }))
}
