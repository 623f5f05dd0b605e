//! A run from end to end: download, read and match, classify and heal, then store the run
//! and announce it in one transaction.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::classify::classify;
use super::deps::{Deps, ReconcileError};
use super::heal::Healer;
use super::read::{Staged, read_and_match};
use super::summary::Summary;
use super::work::Work;
use crate::clock::to_millis;
use crate::domain::ProviderId;
use crate::domain::reconciliation::day_bounds;
use crate::providers::BillError;
use crate::providers::PaymentProvider;
use crate::providers::bounds::BillSink;
use crate::store::reconciliations::{self as store, RunRow, RunStatus};

/// Reconciles `provider`'s bill of `date`: downloads, checks, classifies, heals, stores and
/// announces the run. A bill that cannot be had or fails its checks applies nothing.
pub async fn run(
    deps: Deps<'_>,
    provider_id: ProviderId,
    date: NaiveDate,
) -> Result<RunRow, ReconcileError> {
    let provider = configured(&deps, provider_id)?;
    let started = deps.clock.now();
    // The run is working from the download on: dropped meanwhile, its guard cleans up.
    let work = Work::begin(deps.db, deps.config, started).await?;
    let downloaded = async {
        let file = tempfile::tempfile().map_err(BillError::Io)?;
        let mut sink = BillSink::new(file, work.bounds.clone());
        provider.download_bill(date, &mut sink).await?;
        Ok::<_, BillError>(sink.into_file())
    }
    .await;
    match downloaded {
        Ok(file) => reconcile_file(deps, provider, date, file, started, work).await,
        Err(e) => {
            // The temporary file (nameless) is gone with its handle: nothing was written.
            work.abandon().await;
            Err(e.into())
        }
    }
}

/// [`run`] from a bill already downloaded (and, for WeChat, hash-checked) into `file`: what the
/// benchmark feeds a generated bill to. Its reading is bounded as a downloaded bill's is.
pub async fn run_downloaded(
    deps: Deps<'_>,
    provider_id: ProviderId,
    date: NaiveDate,
    file: std::fs::File,
    started: DateTime<Utc>,
) -> Result<RunRow, ReconcileError> {
    let provider = configured(&deps, provider_id)?;
    let work = Work::begin(deps.db, deps.config, started).await?;
    reconcile_file(deps, provider, date, file, started, work).await
}

fn configured(
    deps: &Deps<'_>,
    provider_id: ProviderId,
) -> Result<Arc<dyn PaymentProvider>, ReconcileError> {
    deps.providers
        .get(provider_id)
        .cloned()
        .ok_or(ReconcileError::ProviderDisabled(provider_id))
}

/// Reads, classifies and stores the run of `file` under `work`.
async fn reconcile_file(
    deps: Deps<'_>,
    provider: Arc<dyn PaymentProvider>,
    date: NaiveDate,
    file: std::fs::File,
    started: DateTime<Utc>,
    work: Work,
) -> Result<RunRow, ReconcileError> {
    match summarize(deps, provider.clone(), date, file, &work).await {
        Ok(summary) => complete(deps, provider.id(), date, started, summary, work).await,
        Err(e) => {
            // Its discrepancy rows so far are nobody's: no run row will ever name them.
            work.abandon().await;
            Err(e)
        }
    }
}

/// Reads and matches the bill, then classifies and heals; the staged rows go whatever happened.
async fn summarize(
    deps: Deps<'_>,
    provider: Arc<dyn PaymentProvider>,
    date: NaiveDate,
    file: std::fs::File,
    work: &Work,
) -> Result<Summary, ReconcileError> {
    let id = work.id.as_str();
    // The exact missing-remote check and the duplicates (rarely needed) read the file again.
    let again = file.try_clone().map_err(BillError::Io)?;
    let all_payments_key = format!("{id}/payments");
    let clock = std::time::Instant::now();
    let read = read_and_match(
        deps.db,
        id,
        provider.clone(),
        file,
        &work.bounds,
        day_bounds(date),
    )
    .await;
    let read_ms = clock.elapsed().as_millis() as u64;
    let result = match read {
        Ok(read) => {
            let staged = Staged {
                key: id,
                all_payments_key: &all_payments_key,
                file: Some(again),
                bounds: &work.bounds,
            };
            let healer = Healer {
                db: deps.db,
                tail: deps.tail(),
            };
            classify(deps.db, healer, provider, staged, date, read).await
        }
        Err(e) => Err(e),
    };
    let classify_ms = clock.elapsed().as_millis() as u64 - read_ms;
    for key in [id, &all_payments_key] {
        if let Err(e) = store::drop_staged(deps.db.pool(), key).await {
            tracing::warn!(error = %e, "dropping staged bill rows failed");
        }
    }
    let mut summary = result?;
    summary.timings_ms.read_and_match = read_ms;
    summary.timings_ms.classify_and_heal = classify_ms;
    Ok(summary)
}

/// Stores the run in place of the date's previous one and announces it, in one transaction.
async fn complete(
    deps: Deps<'_>,
    provider_id: ProviderId,
    date: NaiveDate,
    started: DateTime<Utc>,
    summary: Summary,
    work: Work,
) -> Result<RunRow, ReconcileError> {
    let reconciliation_id = work.id.clone();
    let run = RunRow {
        reconciliation_id: reconciliation_id.clone(),
        provider: provider_id,
        bill_date: date,
        status: RunStatus::Completed,
        failure: None,
        summary: serde_json::to_value(&summary).map_err(|e| sqlx::Error::Encode(e.into()))?,
        started_at: to_millis(started),
        finished_at: to_millis(deps.clock.now()),
        actor: Some(deps.actor.clone()),
    };
    let data = serde_json::json!({
        "reconciliation_id": reconciliation_id,
        "provider": provider_id,
        "date": date.to_string(),
        "actor": deps.actor,
        "summary": summary,
    });
    if let Err(e) = store::store_completed(deps.db, &run, &data).await {
        work.abandon().await;
        return Err(e.into());
    }
    work.finish();
    tracing::info!(provider = %provider_id, date = %date, reconciliation_id, rows = summary.bill_rows, healed = summary.healed, "reconciliation completed");
    Ok(run)
}
