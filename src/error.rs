//! The API error: stable snake_case codes mapped to statuses in one place. Internal causes
//! are logged here, once, and never sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("this API key lacks the `{0}` scope")]
    Forbidden(&'static str),
    /// A request the key may make, refused for what it asks (an access no entitlement serves).
    #[error("{1}")]
    Refused(&'static str, String),
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{1}")]
    NotFound(&'static str, String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{1}")]
    Unprocessable(&'static str, String),
    #[error("the payment provider is unavailable; retry with the same Idempotency-Key")]
    ProviderUnavailable(#[source] anyhow::Error),
    /// The same outage where the caller sends no Idempotency-Key (reconciliation).
    #[error("the payment provider is unavailable; retry later")]
    ProviderUnavailableRetryLater(#[source] anyhow::Error),
    #[error("the payment provider rejected the request")]
    ProviderRejected(#[source] anyhow::Error),
    #[error("too many requests for this API key; retry after a second")]
    RateLimited,
    /// A test clock's standalone simulator did not take its clock's move (DESIGN.md §7): the
    /// message says where the advance stopped.
    #[error("{0}")]
    SimulatorUnavailable(String, #[source] anyhow::Error),
    /// The database failed, or a stored value did not decode ([`stored_value_invalid`]).
    #[error("{}", if stored_value_invalid(.0) { "internal error" } else { "the database is unavailable" })]
    Database(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(code, message.into())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Refused(code, _) => (StatusCode::FORBIDDEN, code),
            ApiError::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            ApiError::NotFound(code, _) => (StatusCode::NOT_FOUND, code),
            ApiError::Conflict(code, _) => (StatusCode::CONFLICT, code),
            ApiError::Unprocessable(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::ProviderUnavailable(_) | ApiError::ProviderUnavailableRetryLater(_) => {
                (StatusCode::BAD_GATEWAY, "provider_unavailable")
            }
            ApiError::ProviderRejected(_) => (StatusCode::BAD_GATEWAY, "provider_rejected"),
            ApiError::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::SimulatorUnavailable(..) => {
                (StatusCode::BAD_GATEWAY, "simulator_unavailable")
            }
            ApiError::Database(e) if stored_value_invalid(e) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
            ApiError::Database(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// A stored value that does not decode (a corrupt row, named by its column): a fault to look
/// into, not an outage that a retry rides out.
pub fn stored_value_invalid(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_))
}

/// An error and its causes on one line (`outer: inner: root`), for the log.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

pub fn envelope(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message}})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::ProviderUnavailable(e)
            | ApiError::ProviderUnavailableRetryLater(e)
            | ApiError::ProviderRejected(e)
            | ApiError::SimulatorUnavailable(_, e)
            | ApiError::Internal(e) => {
                tracing::error!(code, error = format!("{e:#}"), "request failed");
            }
            ApiError::Database(e) => {
                tracing::error!(code, error = chain(e), "request failed")
            }
            _ => {}
        }
        let mut response = (status, axum::Json(envelope(code, &self.to_string()))).into_response();
        let retry = match &self {
            ApiError::RateLimited => true,
            ApiError::Database(e) => !stored_value_invalid(e),
            _ => false,
        };
        if retry {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::BillError;
    use crate::reconcile::ReconcileError;

    async fn body_of(e: ApiError) -> (StatusCode, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    /// `POST /v1/reconciliations` takes no Idempotency-Key: its 502 must not ask for one.
    #[tokio::test]
    async fn a_reconciliation_outage_says_retry_later_without_an_idempotency_key() {
        let e = crate::api::reconciliations::reconcile_error(ReconcileError::Bill(
            BillError::Unavailable(anyhow::anyhow!("connection refused")),
        ));
        let (status, body) = body_of(e).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(body["error"]["code"], "provider_unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("retry later"), "{message}");
        assert!(!message.contains("Idempotency"), "{message}");
        assert!(
            !message.contains("refused"),
            "the cause stays in the log: {message}"
        );
    }
}
