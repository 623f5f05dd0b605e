//! Daily reconciliation (DESIGN.md §10): one provider's trade bill of one Asia/Shanghai day
//! against paygate's payments and refunds of that day.
//!
//! The bill is downloaded to a temporary file, read row by row on a blocking thread (the
//! provider crates' parsers check hashes and the file's own totals and drop payer columns) and
//! staged in `reconciliation_bill_row` in batches, so memory stays flat in the bill's size.
//! The classes are then set-based queries that return only the discrepancies:
//!
//! | class | payment | refund |
//! |---|---|---|
//! | `matched` | bill row = local payment (transaction id, amount, `SUCCESS`) | bill row = local refund (number, amount, succeeded) |
//! | `missing_local` | in the bill, not here: **healed** when paygate has the order pending or closed and a query confirms it (settled with `source = reconciliation`) | in the bill, not here: **recorded** through the refund path |
//! | `missing_remote` | paid here that day, not in the bill | refunded here that day, not in the bill |
//! | `amount_mismatch` | same transaction, other amount | same refund, other amount |
//! | `status_mismatch` | the bill says it did not happen | one side succeeded, the other not |
//! | `duplicate_remote` | a transaction id the bill lists again (each repeat, with the first row's amount and its own) | |
//!
//! A bill row for an order number paygate never issued, or with none, is a discrepancy, never a
//! new order. A run's download and reading are bounded by `[reconciliation] max_bill_bytes`
//! ([`bounds`]); a run dropped before it ends (its request cancelled or timed out) stops its
//! reading thread and drops what it wrote at once ([`Work`]).
//! The run's discrepancies are written under its id as they are found; the run row itself is
//! written last, in one transaction with the removal of the date's previous run, so a re-run
//! replaces the date's result atomically and `reconciliation.completed` goes out with it.

pub mod bill;
pub mod bounds;
mod seen;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::app::AppState;
use crate::clock::{beijing, to_millis};
use crate::domain::{Fen, OrderNo, ProviderId};
use crate::providers::TradeStatus;
use crate::refunds::{RefundOutcome, RefundReport, RefundSettled};
use crate::settle::{Settled, Source};
use crate::store::reconciliations::{self as store, Discrepancy, RunRow};
use crate::store::{events, orders};
use bill::{BillEntry, BillError, BillTotals};
use bounds::{BillLimits, BillSink, Bounds};

/// Discrepancy rows read per query.
const PAGE: i64 = 1_000;

pub const CLASSES: [&str; 6] = [
    "matched",
    "missing_local",
    "missing_remote",
    "amount_mismatch",
    "status_mismatch",
    "duplicate_remote",
];

/// The stored name of a discrepancy class.
pub fn class_name(text: &str) -> Option<&'static str> {
    CLASSES[1..].iter().copied().find(|c| *c == text)
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0} is not configured")]
    ProviderDisabled(ProviderId),
    #[error(transparent)]
    Bill(#[from] BillError),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// Count and amount of one class (or of one side's totals).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub amount_fen: i64,
}

impl Tally {
    fn add(&mut self, fen: i64) {
        self.count += 1;
        self.amount_fen += fen;
    }
}

/// What a run found, per kind and class, with both sides' totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub bill_rows: u64,
    pub bill_totals: Option<BillTotals>,
    pub local_payments: Tally,
    pub local_refunds: Tally,
    pub payments: std::collections::BTreeMap<&'static str, Tally>,
    pub refunds: std::collections::BTreeMap<&'static str, Tally>,
    pub healed: u64,
    /// Where the run's time went, for operators (and the benchmark).
    pub timings_ms: Timings,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Reading the bill and matching its payments against `payment`.
    pub read_and_match: u64,
    /// The discrepancies: classifying, healing, the missing-remote checks.
    pub classify_and_heal: u64,
    /// Whether the missing-remote check of payments had to stage every bill payment (the
    /// counts could not prove that none is missing).
    pub exact_missing_remote_check: bool,
}

/// The Asia/Shanghai day `date` as [start, end) in epoch milliseconds.
pub fn day_bounds(date: NaiveDate) -> (i64, i64) {
    // Beijing has no daylight saving: its midnight is always 16:00 UTC the day before.
    let offset_ms = i64::from(beijing().local_minus_utc()) * 1000;
    let start = to_millis(date.and_time(chrono::NaiveTime::MIN).and_utc()) - offset_ms;
    (start, start + 86_400_000)
}

/// Reconciles `provider`'s bill of `date`: downloads, checks, classifies, heals, stores and
/// announces the run. A bill that cannot be had or fails its checks applies nothing.
pub async fn run(
    state: &AppState,
    provider_id: ProviderId,
    date: NaiveDate,
) -> Result<RunRow, ReconcileError> {
    let provider = state
        .providers
        .get(provider_id)
        .cloned()
        .ok_or(ReconcileError::ProviderDisabled(provider_id))?;
    let started = state.clock.now();
    // The run is working from the download on: dropped meanwhile, its guard cleans up.
    let work = Work::begin(state, started).await?;
    let downloaded = async {
        let file = tempfile::tempfile().map_err(BillError::Io)?;
        let mut sink = BillSink::new(file, work.bounds.clone());
        provider.download_bill(date, &mut sink).await?;
        Ok::<_, BillError>(sink.into_file())
    }
    .await;
    match downloaded {
        Ok(file) => reconcile_file(state, provider, date, file, started, work).await,
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
    state: &AppState,
    provider_id: ProviderId,
    date: NaiveDate,
    file: std::fs::File,
    started: DateTime<Utc>,
) -> Result<RunRow, ReconcileError> {
    let provider = state
        .providers
        .get(provider_id)
        .cloned()
        .ok_or(ReconcileError::ProviderDisabled(provider_id))?;
    let work = Work::begin(state, started).await?;
    reconcile_file(state, provider, date, file, started, work).await
}

/// A run in progress: its work row, and its bounds with the flag that stops its reading.
/// Dropped before [`Work::finish`] or [`Work::abandon`] (the request that runs it was cancelled
/// or timed out), it stops the reading thread and drops the run's rows at once, rather than
/// leaving them to the sweep 6 hours later.
struct Work {
    db: crate::store::Db,
    id: String,
    bounds: Bounds,
    open: bool,
}

impl Work {
    /// Sweeps what runs that died long ago left behind, then writes this run's work row.
    async fn begin(state: &AppState, started: DateTime<Utc>) -> Result<Work, sqlx::Error> {
        let cutoff = to_millis(started) - ABANDONED_AFTER.as_millis() as i64;
        match store::sweep_abandoned(&state.db, cutoff).await {
            Ok(0) => {}
            Ok(swept) => tracing::warn!(
                swept,
                "swept the leftovers of reconciliations that never finished"
            ),
            Err(e) => tracing::warn!(error = %e, "sweeping unfinished reconciliations failed"),
        }
        let id = crate::domain::ids::prefixed_id("rec");
        store::begin_work(state.db.pool(), &id, to_millis(started)).await?;
        let limits = BillLimits::from_max_bill_bytes(state.config.reconciliation.max_bill_bytes);
        Ok(Work {
            db: state.db.clone(),
            id,
            bounds: Bounds::new(limits),
            open: true,
        })
    }

    /// The run failed: what it wrote goes with it, before the caller hears of the failure.
    async fn abandon(mut self) {
        self.open = false;
        self.bounds.cancel.cancel();
        if let Err(e) = store::abandon(&self.db, &self.id).await {
            tracing::warn!(error = %e, "dropping a failed reconciliation's rows failed");
        }
    }

    /// The run's result is stored (its work row went in the same transaction).
    fn finish(mut self) {
        self.open = false;
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        // Whatever happened, no reading thread of this run goes on.
        self.bounds.cancel.cancel();
        if !self.open {
            return;
        }
        let (db, id) = (self.db.clone(), std::mem::take(&mut self.id));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime left (the process is ending): the next run's sweep deletes them.
            return;
        };
        runtime.spawn(async move {
            match store::abandon(&db, &id).await {
                Ok(()) => tracing::info!(
                    reconciliation_id = id,
                    "a cancelled reconciliation's rows were dropped"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "dropping a cancelled reconciliation's rows failed")
                }
            }
        });
    }
}

/// Reads, classifies and stores the run of `file` under `work`.
async fn reconcile_file(
    state: &AppState,
    provider: std::sync::Arc<dyn crate::providers::PaymentProvider>,
    date: NaiveDate,
    file: std::fs::File,
    started: DateTime<Utc>,
    work: Work,
) -> Result<RunRow, ReconcileError> {
    let provider_id = provider.id();
    let reconciliation_id = work.id.clone();
    // The exact missing-remote check and the duplicates (rarely needed) read the file again.
    let again = match file.try_clone() {
        Ok(again) => again,
        Err(e) => {
            work.abandon().await;
            return Err(BillError::Io(e).into());
        }
    };
    let all_payments_key = format!("{reconciliation_id}/payments");
    let clock = std::time::Instant::now();
    let read = read_and_match(
        state,
        &reconciliation_id,
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
                key: &reconciliation_id,
                all_payments_key: &all_payments_key,
                file: Some(again),
                bounds: &work.bounds,
            };
            classify(state, provider, staged, date, read).await
        }
        Err(e) => Err(e),
    };
    let classify_ms = clock.elapsed().as_millis() as u64 - read_ms;
    // The staged rows go whatever happened.
    for key in [&reconciliation_id, &all_payments_key] {
        if let Err(e) = store::drop_staged(state.db.pool(), key).await {
            tracing::warn!(error = %e, "dropping staged bill rows failed");
        }
    }
    let mut summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            // Its discrepancy rows so far are nobody's: no run row will ever name them.
            work.abandon().await;
            return Err(e);
        }
    };
    summary.timings_ms.read_and_match = read_ms;
    summary.timings_ms.classify_and_heal = classify_ms;

    let finished = state.clock.now();
    let run = RunRow {
        reconciliation_id: reconciliation_id.clone(),
        provider: provider_id.as_str().to_owned(),
        bill_date: date.to_string(),
        status: "completed".to_owned(),
        failure: None,
        summary: serde_json::to_value(&summary).map_err(|e| sqlx::Error::Encode(e.into()))?,
        started_at: to_millis(started),
        finished_at: to_millis(finished),
    };
    let stored = async {
        let mut tx = state.db.begin_write().await?;
        store::replace(&mut tx, &run).await?;
        let data = serde_json::json!({
            "reconciliation_id": reconciliation_id,
            "provider": provider_id,
            "date": date.to_string(),
            "summary": summary,
        });
        events::append(
            &mut tx,
            "reconciliation.completed",
            None,
            &data,
            to_millis(finished),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = stored {
        work.abandon().await;
        return Err(e.into());
    }
    work.finish();
    tracing::info!(provider = %provider_id, date = %date, reconciliation_id, rows = summary.bill_rows, healed = summary.healed, "reconciliation completed");
    Ok(run)
}

/// A run still marked working this long after it started died with its process: the next run
/// sweeps what it left. A run of a day's bill takes seconds to minutes.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Entries handed from the reading thread per batch.
const READ_BATCH: usize = 2_000;

/// Reads `file` on a blocking thread, handing its entries over in batches; the handle answers
/// the bill's totals once its own checks passed. Dropping the receiver stops the reading.
fn read_batches(
    provider: std::sync::Arc<dyn crate::providers::PaymentProvider>,
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
struct Read {
    rows: u64,
    totals: BillTotals,
    /// Bill payments matched by a local payment paid within the day: with no duplicate among
    /// the bill's payments, this many of the day's local payments are certainly in the bill.
    matched_in_day: u64,
    /// Some payment's transaction id may appear twice in the bill.
    maybe_duplicate: bool,
    /// Every bill payment's transaction id.
    seen: seen::SeenFilter,
}

/// Reads the bill and matches its payments, a batch at a time, against `payment` (read-only
/// lookups by transaction id). Only what does not match is staged in `reconciliation_bill_row`
/// for the classifying queries: payments without a local twin of the same amount, and refunds.
/// On a normal day that is a handful of rows, so the write lock is barely touched and memory
/// stays flat in the bill's size.
async fn read_and_match(
    state: &AppState,
    run_key: &str,
    provider: std::sync::Arc<dyn crate::providers::PaymentProvider>,
    file: std::fs::File,
    bounds: &Bounds,
    (day_start, day_end): (i64, i64),
) -> Result<Read, ReconcileError> {
    let pid = provider.id();
    let (mut batches, reading) = read_batches(provider, file, bounds);
    let mut read = Read {
        rows: 0,
        totals: BillTotals::NONE,
        matched_in_day: 0,
        maybe_duplicate: false,
        seen: seen::SeenFilter::new(),
    };
    let mut matching: Result<(), ReconcileError> = Ok(());
    while let Some(batch) = batches.recv().await {
        if matching.is_err() {
            continue;
        }
        let mut local = std::collections::HashMap::with_capacity(batch.len());
        let txn_ids: Vec<&str> = batch
            .iter()
            .filter(|e| e.kind == bill::EntryKind::Payment)
            .map(|e| e.provider_txn_id.as_str())
            .collect();
        for chunk in txn_ids.chunks(store::LOOKUP_CHUNK) {
            match store::payments_by_txn(state.db.reader(), pid.as_str(), chunk).await {
                Ok(found) => local.extend(found),
                Err(e) => {
                    matching = Err(e.into());
                    break;
                }
            }
        }
        if matching.is_err() {
            continue;
        }
        let mut off = Vec::new();
        for entry in batch {
            let seq = read.rows as i64;
            read.rows += 1;
            if entry.kind == bill::EntryKind::Payment {
                read.maybe_duplicate |= read.seen.insert(entry.provider_txn_id.as_bytes());
                if let Some(p) = local.get(&entry.provider_txn_id)
                    && p.amount_fen == entry.amount.get()
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
            continue;
        }
        let staged = async {
            let mut tx = state.db.begin_write().await?;
            store::stage(&mut tx, run_key, &off).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = staged {
            matching = Err(e.into());
        }
    }
    read.totals = finish_reading(reading).await?;
    matching?;
    Ok(read)
}

/// Stages every payment of the bill under `run_key`, each under its position in the bill (the
/// `seq` [`read_and_match`] stages under): the exact path of the missing-remote check and of
/// the duplicates, taken only when counting cannot prove that nothing is missing or repeated.
async fn stage_all_payments(
    state: &AppState,
    run_key: &str,
    provider: std::sync::Arc<dyn crate::providers::PaymentProvider>,
    file: std::fs::File,
    bounds: &Bounds,
) -> Result<(), ReconcileError> {
    let (mut batches, reading) = read_batches(provider, file, bounds);
    let mut seq = -1i64;
    let mut staging: Result<(), ReconcileError> = Ok(());
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
        let written = async {
            let mut tx = state.db.begin_write().await?;
            store::stage(&mut tx, run_key, &payments).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = written {
            staging = Err(e.into());
        }
    }
    finish_reading(reading).await?;
    staging
}

struct Recorder<'a> {
    state: &'a AppState,
    id: &'a str,
    seq: i64,
    summary: Summary,
}

impl Recorder<'_> {
    async fn record(&mut self, d: Discrepancy, fen: i64) -> Result<(), sqlx::Error> {
        self.seq += 1;
        store::insert_discrepancy(self.state.db.pool(), self.id, self.seq, &d).await?;
        let by_kind = if d.kind == "refund" {
            &mut self.summary.refunds
        } else {
            &mut self.summary.payments
        };
        by_kind.entry(d.class).or_default().add(fen);
        if d.healed {
            self.summary.healed += 1;
        }
        Ok(())
    }
}

fn opt_text(r: &sqlx::any::AnyRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    r.try_get(column)
}

/// Where a run's staged rows are, and the bill again for the exact missing-remote check.
struct Staged<'a> {
    /// The rows [`read_and_match`] could not match.
    key: &'a str,
    /// Every bill payment, when the exact check needs them.
    all_payments_key: &'a str,
    /// The bill, for the one second reading that stages every payment.
    file: Option<std::fs::File>,
    bounds: &'a Bounds,
}

impl Staged<'_> {
    /// Stages every bill payment under `all_payments_key` (once).
    async fn stage_all(
        &mut self,
        state: &AppState,
        provider: &std::sync::Arc<dyn crate::providers::PaymentProvider>,
    ) -> Result<(), ReconcileError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).map_err(BillError::Io)?;
        stage_all_payments(
            state,
            self.all_payments_key,
            provider.clone(),
            file,
            self.bounds,
        )
        .await
    }
}

async fn classify(
    state: &AppState,
    provider: std::sync::Arc<dyn crate::providers::PaymentProvider>,
    mut staged: Staged<'_>,
    date: NaiveDate,
    read: Read,
) -> Result<Summary, ReconcileError> {
    let day = day_bounds(date);
    let (day_start, day_end) = day;
    let pid = provider.id().as_str();
    let id = staged.key;
    let reader = state.db.reader();
    let mut rec = Recorder {
        state,
        id,
        seq: 0,
        summary: Summary {
            bill_rows: read.rows,
            bill_totals: Some(read.totals),
            ..Summary::default()
        },
    };

    // A transaction id the bill may list twice: every bill payment is staged, and each row
    // that repeats an earlier one's id is a `duplicate_remote` of its own (with both amounts),
    // so the first row alone is matched, healed or reported, and `matched` counts local
    // payments once.
    let mut bill_payments_off = Tally::default();
    if read.maybe_duplicate {
        staged.stage_all(state, &provider).await?;
        let mut after = -1i64;
        loop {
            let page =
                store::repeated_payments(reader, staged.all_payments_key, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for r in page {
                bill_payments_off.add(r.amount_fen);
                let d = Discrepancy {
                    class: "duplicate_remote",
                    kind: "payment",
                    order_no: r.order_no,
                    provider_txn_id: Some(r.provider_txn_id),
                    refund_no: None,
                    bill_amount_fen: Some(r.first_amount_fen),
                    local_amount_fen: None,
                    bill_status: Some(r.status),
                    local_status: None,
                    healed: false,
                    note: Some("the bill lists this transaction id more than once".into()),
                    duplicate_amount_fen: Some(r.amount_fen),
                };
                rec.record(d, r.amount_fen).await?;
            }
        }
    }

    // Bill payments that are not matched by a local payment (a repeated row excepted).
    let mut after = -1i64;
    loop {
        let page =
            store::unmatched_payments(reader, (id, staged.all_payments_key), pid, after, PAGE)
                .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in page {
            let amount = r.amount_fen;
            let status = r.status;
            let local = r.local_amount_fen;
            bill_payments_off.add(amount);
            let mut d = Discrepancy {
                class: "missing_local",
                kind: "payment",
                order_no: r.order_no.clone(),
                provider_txn_id: Some(r.provider_txn_id),
                refund_no: None,
                bill_amount_fen: Some(amount),
                local_amount_fen: local,
                bill_status: Some(status.clone()),
                local_status: None,
                healed: false,
                note: None,
                duplicate_amount_fen: None,
            };
            match local {
                Some(l) if l != amount => d.class = "amount_mismatch",
                Some(_) => {
                    d.class = "status_mismatch";
                    d.local_status = Some("paid".into());
                }
                None if status != bill::SUCCESS => d.class = "status_mismatch",
                None => {
                    heal_payment(state, provider.as_ref(), r.order_no.as_deref(), &mut d).await?
                }
            }
            rec.record(d, amount).await?;
        }
    }

    // Local payments of the day that the bill does not have. With no transaction id twice in
    // the bill, the day's local payments that are in it are the matched rows counted while
    // reading plus the staged ones that have a local payment of the day now (after healing):
    // when that is all of them, none is missing. Otherwise every bill payment is staged and the
    // anti-join names the missing ones.
    // Counted in this order, the staged ones first: both sets only grow, so every payment the
    // two counts name is in the later count of the day's payments, and equal counts are equal
    // sets even with settlements committing in between.
    let staged_in_day =
        store::staged_payments_paid_between(reader, id, pid, day_start, day_end).await?;
    let local_now = local_tally(reader, pid, bill::EntryKind::Payment, day).await?;
    let in_bill = read.matched_in_day + staged_in_day;
    let mut exact = read.maybe_duplicate;
    if !exact && in_bill != local_now.count {
        // Some are missing: the filter of the bill's transaction ids names them, when it can
        // be shown to have made no mistake; otherwise the anti-join below.
        match missing_by_filter(reader, pid, day, &read.seen, in_bill).await? {
            Some(missing) => {
                for (d, amount) in missing {
                    rec.record(d, amount).await?;
                }
            }
            None => exact = true,
        }
    }
    rec.summary.timings_ms.exact_missing_remote_check = exact;
    // The anti-join's cursor: None when it is not needed.
    let mut after = None;
    if exact {
        staged.stage_all(state, &provider).await?;
        after = Some(String::new());
    }
    while let Some(cursor) = &after {
        let page = sqlx::query(
            "SELECT p.payment_id, p.order_no, p.provider_txn_id, p.amount_fen FROM payment p
             WHERE p.provider = $2 AND p.paid_at >= $3 AND p.paid_at < $4 AND p.payment_id > $5
               AND NOT EXISTS (SELECT 1 FROM reconciliation_bill_row b
                               WHERE b.run_key = $1 AND b.kind = 'payment'
                                 AND b.provider_txn_id = p.provider_txn_id)
             ORDER BY p.payment_id LIMIT $6",
        )
        .bind(staged.all_payments_key)
        .bind(pid)
        .bind(day_start)
        .bind(day_end)
        .bind(cursor)
        .bind(PAGE)
        .fetch_all(reader)
        .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.try_get("payment_id")?);
        for r in &page {
            let amount: i64 = r.try_get("amount_fen")?;
            rec.record(
                Discrepancy {
                    class: "missing_remote",
                    kind: "payment",
                    order_no: r.try_get("order_no")?,
                    provider_txn_id: opt_text(r, "provider_txn_id")?,
                    refund_no: None,
                    bill_amount_fen: None,
                    local_amount_fen: Some(amount),
                    bill_status: None,
                    local_status: Some("paid".into()),
                    healed: false,
                    note: None,
                    duplicate_amount_fen: None,
                },
                amount,
            )
            .await?;
        }
    }

    // Bill refunds not matched by a local refund (by refund number; a bill without refund
    // numbers is matched by order and amount).
    let mut after = -1i64;
    let mut bill_refunds_off = Tally::default();
    loop {
        let page = sqlx::query(
            "SELECT b.seq, b.order_no, b.provider_txn_id, b.refund_no, b.amount_fen, b.status,
                    b.occurred_at, r.amount_fen AS local_amount, r.status AS local_status
             FROM reconciliation_bill_row b
             LEFT JOIN refund r ON r.provider = $2 AND r.status <> 'failed'
                  AND (r.out_refund_no = b.refund_no
                       OR (b.refund_no IS NULL AND r.order_no = b.order_no AND r.amount_fen = b.amount_fen))
             WHERE b.run_key = $1 AND b.kind = 'refund' AND b.seq > $3
               AND (r.refund_id IS NULL OR r.amount_fen <> b.amount_fen
                    OR (b.status = 'SUCCESS' AND r.status <> 'succeeded')
                    OR (b.status <> 'SUCCESS' AND r.status = 'succeeded'))
             ORDER BY b.seq LIMIT $4",
        )
        .bind(id)
        .bind(pid)
        .bind(after)
        .bind(PAGE)
        .fetch_all(reader)
        .await?;
        let Some(last) = page.last() else { break };
        after = last.try_get("seq")?;
        for r in &page {
            let amount: i64 = r.try_get("amount_fen")?;
            let status: String = r.try_get("status")?;
            let local: Option<i64> = r.try_get("local_amount")?;
            let local_status: Option<String> = r.try_get("local_status")?;
            let occurred_at: i64 = r.try_get("occurred_at")?;
            bill_refunds_off.add(amount);
            let mut d = Discrepancy {
                class: "missing_local",
                kind: "refund",
                order_no: r.try_get("order_no")?,
                provider_txn_id: opt_text(r, "provider_txn_id")?,
                refund_no: opt_text(r, "refund_no")?,
                bill_amount_fen: Some(amount),
                local_amount_fen: local,
                bill_status: Some(status.clone()),
                local_status: local_status.clone(),
                healed: false,
                note: None,
                duplicate_amount_fen: None,
            };
            match local {
                Some(l) if l != amount => d.class = "amount_mismatch",
                Some(_) => d.class = "status_mismatch",
                None if status != bill::SUCCESS => d.class = "status_mismatch",
                None => heal_refund(state, provider.id(), occurred_at, &mut d).await?,
            }
            rec.record(d, amount).await?;
        }
    }

    // Local refunds of the day that the bill does not have.
    let mut after = String::new();
    loop {
        let page = sqlx::query(
            "SELECT r.refund_id, r.order_no, r.out_refund_no, r.amount_fen, r.status FROM refund r
             WHERE r.provider = $2 AND r.status <> 'failed' AND r.created_at >= $3
               AND r.created_at < $4 AND r.refund_id > $5
               AND NOT EXISTS (SELECT 1 FROM reconciliation_bill_row b
                               WHERE b.run_key = $1 AND b.kind = 'refund'
                                 AND (b.refund_no = r.out_refund_no
                                      OR (b.refund_no IS NULL AND b.order_no = r.order_no
                                          AND b.amount_fen = r.amount_fen)))
             ORDER BY r.refund_id LIMIT $6",
        )
        .bind(id)
        .bind(pid)
        .bind(day_start)
        .bind(day_end)
        .bind(&after)
        .bind(PAGE)
        .fetch_all(reader)
        .await?;
        let Some(last) = page.last() else { break };
        after = last.try_get("refund_id")?;
        for r in &page {
            let amount: i64 = r.try_get("amount_fen")?;
            rec.record(
                Discrepancy {
                    class: "missing_remote",
                    kind: "refund",
                    order_no: r.try_get("order_no")?,
                    provider_txn_id: None,
                    refund_no: opt_text(r, "out_refund_no")?,
                    bill_amount_fen: None,
                    local_amount_fen: Some(amount),
                    bill_status: None,
                    local_status: opt_text(r, "status")?,
                    healed: false,
                    note: None,
                    duplicate_amount_fen: None,
                },
                amount,
            )
            .await?;
        }
    }

    // Matched: every bill row that produced no discrepancy.
    let mut summary = rec.summary;
    let t = read.totals;
    {
        summary.payments.insert(
            "matched",
            Tally {
                count: t.payments - bill_payments_off.count,
                amount_fen: t.payment_amount.get() - bill_payments_off.amount_fen,
            },
        );
        summary.refunds.insert(
            "matched",
            Tally {
                count: t.refunds - bill_refunds_off.count,
                amount_fen: t.refund_amount.get() - bill_refunds_off.amount_fen,
            },
        );
    }
    summary.local_payments = local_tally(reader, pid, bill::EntryKind::Payment, day).await?;
    summary.local_refunds = local_tally(reader, pid, bill::EntryKind::Refund, day).await?;
    Ok(summary)
}

/// The day's local payments that the bill certainly does not have: paged through and asked of
/// the filter of the bill's transaction ids. That is all of the missing ones when the payments
/// the filter may have seen number exactly `in_bill`, the day's payments the counts found in the
/// bill: the paging sees every payment that existed when `in_bill` was counted, and each of
/// those in the bill answers "maybe", so equal numbers leave no room for a false "maybe". Else
/// (a false "maybe", a payment of the bill settled meanwhile, or more missing than are kept in
/// memory) None, and the anti-join decides.
async fn missing_by_filter(
    reader: &sqlx::AnyPool,
    provider: &str,
    day: (i64, i64),
    seen: &seen::SeenFilter,
    in_bill: u64,
) -> Result<Option<Vec<(Discrepancy, i64)>>, sqlx::Error> {
    const KEPT: usize = 100_000;
    let mut missing = Vec::new();
    let mut maybe = 0u64;
    let mut after: Option<(i64, String)> = None;
    loop {
        let cursor = after.as_ref().map(|(at, id)| (*at, id.as_str()));
        let page = store::payments_paid_between(reader, provider, day, cursor, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.paid_at, last.payment_id.clone()));
        for p in page {
            if seen.may_contain(p.provider_txn_id.as_bytes()) {
                maybe += 1;
                continue;
            }
            if missing.len() == KEPT {
                return Ok(None);
            }
            let d = Discrepancy {
                class: "missing_remote",
                kind: "payment",
                order_no: Some(p.order_no),
                provider_txn_id: Some(p.provider_txn_id),
                refund_no: None,
                bill_amount_fen: None,
                local_amount_fen: Some(p.amount_fen),
                bill_status: None,
                local_status: Some("paid".into()),
                healed: false,
                note: None,
                duplicate_amount_fen: None,
            };
            missing.push((d, p.amount_fen));
        }
    }
    Ok((maybe == in_bill).then_some(missing))
}

/// The count and sum of `provider`'s local payments (by payment time) or refunds (by request
/// time, failed ones left out) of the day.
async fn local_tally(
    reader: &sqlx::AnyPool,
    provider: &str,
    kind: bill::EntryKind,
    (day_start, day_end): (i64, i64),
) -> Result<Tally, sqlx::Error> {
    let sql = match kind {
        bill::EntryKind::Payment => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM payment
             WHERE provider = $1 AND paid_at >= $2 AND paid_at < $3"
        }
        bill::EntryKind::Refund => {
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) FROM refund
             WHERE provider = $1 AND created_at >= $2 AND created_at < $3 AND status <> 'failed'"
        }
    };
    let (count, amount): (i64, i64) = sqlx::query_as(sql)
        .bind(provider)
        .bind(day_start)
        .bind(day_end)
        .fetch_one(reader)
        .await?;
    Ok(Tally {
        count: count as u64,
        amount_fen: amount,
    })
}

/// The note of a bill row with no merchant order number.
const NO_ORDER_NUMBER: &str =
    "not an order of paygate's: the bill row has no merchant order number (商户订单号)";

/// A payment in the bill that paygate has not settled: settle it when the order is ours and
/// pending or closed, and a query confirms the payment (the bill is the provider's word, but
/// the settlement path takes only a verified query answer). Otherwise say why not.
async fn heal_payment(
    state: &AppState,
    provider: &dyn crate::providers::PaymentProvider,
    order_no: Option<&str>,
    d: &mut Discrepancy,
) -> Result<(), sqlx::Error> {
    let Some(order_no) = order_no else {
        d.note = Some(NO_ORDER_NUMBER.into());
        return Ok(());
    };
    let Some(no) = OrderNo::parse(order_no) else {
        d.note = Some("order number never issued by paygate".into());
        return Ok(());
    };
    let Some(order) = orders::get(state.db.reader(), &no).await? else {
        d.note = Some("order number never issued by paygate".into());
        return Ok(());
    };
    if order.status.is_settled() {
        d.local_status = Some(order.status.as_str().to_owned());
        d.note = Some("order settled by another transaction".into());
        return Ok(());
    }
    d.local_status = Some(order.status.as_str().to_owned());
    let trade = match provider.query(&no).await {
        Ok(TradeStatus::Paid(trade) | TradeStatus::Refunded(trade)) => trade,
        Ok(other) => {
            d.note = Some(
                format!("the provider's query does not confirm it: {other:?}")
                    .chars()
                    .take(120)
                    .collect(),
            );
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(order_no, error = %crate::error::chain(&e), "reconciliation could not query a missing payment");
            d.note = Some("the provider could not be queried; healed on a re-run".into());
            return Ok(());
        }
    };
    match crate::settle::settle(&state.db, &trade, Source::Reconciliation, state.clock.now()).await
    {
        Ok(Settled::Now { late }) => {
            d.healed = true;
            d.note = Some(
                if late {
                    "settled late (the order had been closed)"
                } else {
                    "settled"
                }
                .into(),
            );
        }
        Ok(Settled::Already) => d.note = Some("settled meanwhile".into()),
        Err(crate::settle::SettleError::Db(e)) => return Err(e),
        Err(e) => d.note = Some(format!("not settled: {e}")),
    }
    Ok(())
}

/// A refund in the bill that paygate does not know: record it through the refund path (it
/// follows the money like any refund made at the portal).
async fn heal_refund(
    state: &AppState,
    provider: ProviderId,
    occurred_at: i64,
    d: &mut Discrepancy,
) -> Result<(), sqlx::Error> {
    let (Some(no), Some(refund_no), Some(amount)) = (
        d.order_no.as_deref().and_then(OrderNo::parse),
        d.refund_no.clone(),
        d.bill_amount_fen.and_then(|f| Fen::new(f).ok()),
    ) else {
        d.note =
            Some("not recorded: the bill names no refund number or no order of paygate's".into());
        return Ok(());
    };
    let report = RefundReport {
        order_no: no,
        provider,
        out_refund_no: refund_no,
        provider_refund_id: None,
        amount: Some(amount),
        order_total: None,
        outcome: RefundOutcome::Succeeded {
            at: Some(crate::store::time::time_of("occurred_at", occurred_at)?),
        },
    };
    match crate::refunds::apply_report(state, &report).await {
        Ok(RefundSettled::Now { .. }) => {
            d.healed = true;
            d.note = Some("recorded".into());
        }
        Ok(_) => d.note = Some("recorded meanwhile".into()),
        Err(crate::refunds::RefundSettleError::Db(e)) => return Err(e),
        Err(e) => d.note = Some(format!("not recorded: {e}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beijing_day_starts_at_16_utc_the_day_before() {
        let (start, end) = day_bounds(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap());
        use chrono::TimeZone;
        let utc = chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, 16, 0, 0)
            .unwrap();
        assert_eq!(start, to_millis(utc));
        assert_eq!(end - start, 86_400_000);
    }
}
