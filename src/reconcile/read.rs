//! Reading a downloaded bill: on a blocking thread (the provider crates' parsers check hashes
//! and the file's own totals and drop payer columns), handed over in batches, each batch's
//! payments matched against `payment` and only what does not match staged.

use std::collections::HashMap;
use std::sync::Arc;

use super::deps::ReconcileError;
use super::seen::SeenFilter;
use crate::domain::ProviderId;
use crate::domain::bill::{self, BillEntry, BillTotals};
use crate::providers::BillError;
use crate::providers::PaymentProvider;
use crate::providers::bounds::Bounds;
use crate::store::Db;
use crate::store::reconciliations::{self as store, LocalPayment};

/// Entries handed from the reading thread per batch.
const READ_BATCH: usize = 2_000;

/// Reads `file` on a blocking thread, handing its entries over in batches; the handle answers
/// the bill's totals once its own checks passed. Dropping the receiver stops the reading.
fn read_batches(
    provider: Arc<dyn PaymentProvider>,
    file: std::fs::File,
    bounds: &Bounds,
) -> (
    tokio::sync::mpsc::Receiver<Vec<BillEntry>>,
    tokio::task::JoinHandle<Result<BillTotals, BillError>>,
) {
    let (sender, batches) = tokio::sync::mpsc::channel::<Vec<BillEntry>>(4);
    let bounds = bounds.clone();
    let reading = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(READ_BATCH);
        let totals = provider.read_bill(file, &bounds, &mut |entry| {
            batch.push(entry);
            if batch.len() < READ_BATCH {
                return true;
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_BATCH));
            sender.blocking_send(full).is_ok()
        })?;
        if !batch.is_empty() {
            // The receiver only goes away when matching failed; that error is reported instead.
            let _ = sender.blocking_send(batch);
        }
        Ok::<BillTotals, BillError>(totals)
    });
    (batches, reading)
}

async fn finish_reading(
    reading: tokio::task::JoinHandle<Result<BillTotals, BillError>>,
) -> Result<BillTotals, ReconcileError> {
    Ok(reading
        .await
        .map_err(|e| BillError::Invalid(anyhow::anyhow!("the bill reader stopped: {e}")))??)
}

/// What reading the bill found, before any discrepancy was looked at.
pub(super) struct Read {
    pub(super) rows: u64,
    pub(super) totals: BillTotals,
    /// Bill payments matched by a local payment paid within the day: with no duplicate among
    /// the bill's payments, this many of the day's local payments are certainly in the bill.
    pub(super) matched_in_day: u64,
    /// Some payment's transaction id may appear twice in the bill.
    pub(super) maybe_duplicate: bool,
    /// Every bill payment's transaction id.
    pub(super) seen: SeenFilter,
}

/// Reads the bill and matches its payments, a batch at a time, against `payment` (read-only
/// lookups by transaction id). Only what does not match is staged in `reconciliation_bill_row`
/// for the classifying queries: payments without a local twin of the same amount, and refunds.
/// On a normal day that is a handful of rows, so the write lock is barely touched and memory
/// stays flat in the bill's size.
pub(super) async fn read_and_match(
    db: &Db,
    run_key: &str,
    provider: Arc<dyn PaymentProvider>,
    file: std::fs::File,
    bounds: &Bounds,
    day: (i64, i64),
) -> Result<Read, ReconcileError> {
    let pid = provider.id();
    let (mut batches, reading) = read_batches(provider, file, bounds);
    let mut read = Read {
        rows: 0,
        totals: BillTotals::NONE,
        matched_in_day: 0,
        maybe_duplicate: false,
        seen: SeenFilter::new(),
    };
    let mut matching: Result<(), sqlx::Error> = Ok(());
    while let Some(batch) = batches.recv().await {
        // After a failure the batches are drained (the reader stops at its own pace).
        if matching.is_ok() {
            matching = match_batch(db, run_key, pid, batch, &mut read, day).await;
        }
    }
    read.totals = finish_reading(reading).await?;
    matching?;
    Ok(read)
}

/// Matches one batch: counts its rows, notes its payments' transaction ids, and stages what
/// no local payment of the same amount and a `SUCCESS` status matches.
async fn match_batch(
    db: &Db,
    run_key: &str,
    provider: ProviderId,
    batch: Vec<BillEntry>,
    read: &mut Read,
    (day_start, day_end): (i64, i64),
) -> Result<(), sqlx::Error> {
    let local = local_payments(db, provider, &batch).await?;
    let mut off = Vec::new();
    for entry in batch {
        let seq = read.rows as i64;
        read.rows += 1;
        if entry.kind == bill::EntryKind::Payment {
            read.maybe_duplicate |= read.seen.insert(entry.provider_txn_id.as_bytes());
            if let Some(p) = local.get(&entry.provider_txn_id)
                && p.amount == entry.amount
                && entry.status == bill::SUCCESS
            {
                if (day_start..day_end).contains(&p.paid_at) {
                    read.matched_in_day += 1;
                }
                continue;
            }
        }
        off.push((seq, entry));
    }
    if off.is_empty() {
        return Ok(());
    }
    store::stage(db, run_key, &off).await
}

/// The local payments of the batch's payments, by transaction id.
async fn local_payments(
    db: &Db,
    provider: ProviderId,
    batch: &[BillEntry],
) -> Result<HashMap<String, LocalPayment>, sqlx::Error> {
    let mut local = HashMap::with_capacity(batch.len());
    let txn_ids: Vec<&str> = batch
        .iter()
        .filter(|e| e.kind == bill::EntryKind::Payment)
        .map(|e| e.provider_txn_id.as_str())
        .collect();
    for chunk in txn_ids.chunks(store::LOOKUP_CHUNK) {
        local.extend(store::payments_by_txn(db.reader(), provider, chunk).await?);
    }
    Ok(local)
}

/// Stages every payment of the bill under `run_key`, each under its position in the bill (the
/// `seq` [`read_and_match`] stages under): the exact path of the missing-remote check and of
/// the duplicates, taken only when counting cannot prove that nothing is missing or repeated.
async fn stage_all_payments(
    db: &Db,
    run_key: &str,
    provider: Arc<dyn PaymentProvider>,
    file: std::fs::File,
    bounds: &Bounds,
) -> Result<(), ReconcileError> {
    let (mut batches, reading) = read_batches(provider, file, bounds);
    let mut seq = -1i64;
    let mut staging: Result<(), sqlx::Error> = Ok(());
    while let Some(batch) = batches.recv().await {
        if staging.is_err() {
            continue;
        }
        let payments: Vec<(i64, BillEntry)> = batch
            .into_iter()
            .filter_map(|e| {
                seq += 1;
                (e.kind == bill::EntryKind::Payment).then_some((seq, e))
            })
            .collect();
        staging = store::stage(db, run_key, &payments).await;
    }
    finish_reading(reading).await?;
    Ok(staging?)
}

/// Where a run's staged rows are, and the bill again for the exact missing-remote check.
pub(super) struct Staged<'a> {
    /// The rows [`read_and_match`] could not match.
    pub(super) key: &'a str,
    /// Every bill payment, when the exact check needs them.
    pub(super) all_payments_key: &'a str,
    /// The bill, for the one second reading that stages every payment.
    pub(super) file: Option<std::fs::File>,
    pub(super) bounds: &'a Bounds,
}

impl Staged<'_> {
    /// Stages every bill payment under `all_payments_key` (once).
    pub(super) async fn stage_all(
        &mut self,
        db: &Db,
        provider: &Arc<dyn PaymentProvider>,
    ) -> Result<(), ReconcileError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(BillError::Io)?;
        stage_all_payments(
            db,
            self.all_payments_key,
            provider.clone(),
            file,
            self.bounds,
        )
        .await
    }
}
