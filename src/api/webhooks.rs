//! `POST /webhooks/{provider}`: verified over the raw bytes, then settled.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::domain::ProviderId;
use crate::providers::{Callback, CallbackError, Mismatch};
use crate::refunds::{RefundSettleError, RefundSettled};
use crate::settle::{self, SettleError, Source};
use crate::settlement;
use crate::state::AppState;
use crate::telemetry;

pub async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(provider) = ProviderId::parse(&provider)
        .and_then(|id| state.providers.get(id))
        .cloned()
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let outcome = match provider.verify_callback(&headers, &body).await {
        Ok(Callback::Paid(trade)) => {
            match settle::settle(&state.db, &trade, Source::Notification, state.clock.now()).await {
                Ok(settled) => {
                    tracing::info!(order_no = %trade.order_no, provider = %provider.id(), ?settled, "callback settled");
                    // The settlement tail's after step (wake the waiting pages; an erased
                    // account's payment straight back), after the provider has its answer:
                    // the refund call must not hold the notification. The erasure job
                    // retries a refund that does not start now.
                    if let settle::Settled::Now { .. } = settled {
                        let (state, order_no) = (state.clone(), trade.order_no.clone());
                        tokio::spawn(async move {
                            settlement::after_settlement(&state.tail(), &order_no, settled).await;
                        });
                    }
                    let outcome = match settled {
                        settle::Settled::Now { .. } => "settled",
                        settle::Settled::Already => "duplicate",
                    };
                    telemetry::callback(provider.id().as_str(), outcome);
                    Ok(())
                }
                Err(SettleError::Db(e)) => Err(CallbackError::Temporary(e.into())),
                Err(e) => Err(Mismatch::Order(Box::new(e)).into()),
            }
        }
        Ok(Callback::Refund(report)) => {
            match crate::refunds::apply_report(&state.tail(), &report).await {
                Ok(settled) => {
                    tracing::info!(order_no = %report.order_no, provider = %provider.id(), ?settled, "refund callback recorded");
                    let outcome = match settled {
                        RefundSettled::Now { .. } => "refund_settled",
                        RefundSettled::Already => "refund_duplicate",
                        RefundSettled::Ignored => "ignored",
                    };
                    telemetry::callback(provider.id().as_str(), outcome);
                    Ok(())
                }
                Err(RefundSettleError::Db(e)) => Err(CallbackError::Temporary(e.into())),
                Err(RefundSettleError::Provider(e)) => Err(CallbackError::Temporary(e.into())),
                Err(e) => Err(Mismatch::Order(Box::new(e)).into()),
            }
        }
        Ok(Callback::Ignored(what)) => {
            tracing::info!(provider = %provider.id(), what, "verified callback acknowledged without action");
            telemetry::callback(provider.id().as_str(), "ignored");
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &outcome {
        let kind = match e {
            CallbackError::Unverified(_) => "unverified",
            CallbackError::Mismatch(_) => "mismatch",
            CallbackError::Temporary(_) => "temporary",
        };
        telemetry::callback(provider.id().as_str(), kind);
        // One line per refused callback, with the whole cause chain.
        let reason = crate::error::chain(e);
        match e {
            CallbackError::Temporary(_) => {
                tracing::error!(provider = %provider.id(), error = reason, "callback not processed")
            }
            _ => tracing::warn!(provider = %provider.id(), reason, "callback refused"),
        }
    }
    provider.answer(&outcome)
}
