//! Finance's reconciliation surface (scope `finance`): run one, list them, read one, and its
//! discrepancies as a CSV that Excel opens.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::NaiveDate;
use serde::Deserialize;

use super::auth::{Caller, Scope};
use crate::clock::rfc3339_beijing_millis;
use crate::domain::ProviderId;
use crate::error::ApiError;
use crate::providers::BillError;
use crate::reconcile::{self, ReconcileError};
use crate::state::AppState;
use crate::store::reconciliations::{self as store, RunRow};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    provider: String,
    date: String,
}

fn provider(text: &str) -> Result<ProviderId, ApiError> {
    ProviderId::parse(text).ok_or_else(|| {
        ApiError::Unprocessable(
            "unknown_provider",
            "provider must be wechatpay or alipay".into(),
        )
    })
}

fn date(text: &str, field: &str) -> Result<NaiveDate, ApiError> {
    crate::domain::parse_date(text)
        .map_err(|_| ApiError::bad_request("invalid_date", format!("{field} must be YYYY-MM-DD")))
}

/// A run as the API shows it.
pub fn run_json(run: &RunRow) -> serde_json::Value {
    serde_json::json!({
        "reconciliation_id": run.reconciliation_id,
        "provider": run.provider.as_str(),
        "date": run.bill_date.to_string(),
        "status": run.status.as_str(),
        "failure": run.failure,
        "summary": run.summary,
        "started_at": rfc3339_beijing_millis(run.started_at),
        "finished_at": rfc3339_beijing_millis(run.finished_at),
        "actor": run.actor,
    })
}

pub fn reconcile_error(e: ReconcileError) -> ApiError {
    match e {
        ReconcileError::ProviderDisabled(id) => {
            ApiError::Unprocessable("provider_disabled", format!("{id} is not configured"))
        }
        ReconcileError::Bill(BillError::NotReady) => ApiError::Conflict(
            "bill_not_ready",
            "the provider has no bill for this date yet; try again later".into(),
        ),
        // No Idempotency-Key here: re-running a date is itself safe.
        ReconcileError::Bill(BillError::Unavailable(e)) => {
            ApiError::ProviderUnavailableRetryLater(e)
        }
        ReconcileError::Bill(BillError::Invalid(e)) => {
            ApiError::Unprocessable("bill_invalid", format!("the bill was refused: {e:#}"))
        }
        ReconcileError::Bill(BillError::TooLarge(x)) => {
            ApiError::Unprocessable("bill_invalid", format!("the bill was refused: {x}"))
        }
        // Only a dropped run is cancelled, and then nobody is left to hear the answer.
        ReconcileError::Bill(BillError::Cancelled) => {
            ApiError::Internal(anyhow::anyhow!("the reconciliation was cancelled"))
        }
        ReconcileError::Bill(BillError::Io(e)) => ApiError::Internal(e.into()),
        ReconcileError::Db(e) => ApiError::Database(e),
    }
}

/// `POST /v1/reconciliations`: runs (or re-runs) one date now and answers its summary.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Scope::Finance)?;
    let req: RunRequest = super::json_body(&body)?;
    let provider = provider(&req.provider)?;
    let date = date(&req.date, "date")?;
    let actor = crate::domain::Actor::ApiKey(caller.0.id.clone());
    let run = reconcile::run(state.reconcile(&actor), provider, date)
        .await
        .map_err(reconcile_error)?;
    Ok((StatusCode::CREATED, Json(run_json(&run))).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    provider: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Finance)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let provider = q.provider.as_deref().map(provider).transpose()?;
    let from = q.from.as_deref().map(|d| date(d, "from")).transpose()?;
    let to = q.to.as_deref().map(|d| date(d, "to")).transpose()?;
    let runs = store::list(state.db.reader(), provider, (from, to), 366).await?;
    Ok(Json(serde_json::json!({
        "reconciliations": runs.iter().map(run_json).collect::<Vec<_>>()
    })))
}

async fn load(state: &AppState, id: &str) -> Result<RunRow, ApiError> {
    store::get(state.db.reader(), id).await?.ok_or_else(|| {
        ApiError::NotFound("reconciliation_not_found", "no such reconciliation".into())
    })
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Finance)?;
    Ok(Json(run_json(&load(&state, &id).await?)))
}

/// `GET /v1/reconciliations/{id}/discrepancies.csv`: UTF-8 with a BOM so Excel reads it as
/// such, one row per discrepancy, streamed page by page; no payer data exists to put in it.
pub async fn discrepancies_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Finance)?;
    let run = load(&state, &id).await?;
    let body = Body::from_stream(crate::reconcile::report_csv::stream(
        state.db.clone(),
        run.reconciliation_id.clone(),
    ));
    let filename = crate::reconcile::report_csv::filename(&run);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}
