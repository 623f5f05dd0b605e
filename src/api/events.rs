//! `GET /v1/events?after=&limit=`: the outbox as a feed.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::auth::{Caller, Scope};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::events;

#[derive(Deserialize)]
pub struct FeedQuery {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_any(&[Scope::Entitlements, Scope::Finance])?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = events::list_after(state.db.reader(), q.after, limit).await?;
    let next_after = events.last().map(|e| e.id).unwrap_or(q.after);
    // Retention deletes delivered events as a prefix: a reader whose `after` is below this
    // has missed the events in between for good.
    let starts_after = crate::store::retention::feed_starts_after(state.db.reader()).await?;
    Ok(Json(serde_json::json!({
        "events": events,
        "next_after": next_after,
        "starts_after": starts_after,
    })))
}
