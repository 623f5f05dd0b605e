//! The discrepancies of a run, one function per class, each a keyset-paged scan of a
//! set-based query (`store::reconciliations`) that returns only what does not match. Each
//! discrepancy is written under the run's id as it is found.

use std::sync::Arc;

use chrono::NaiveDate;

use super::deps::ReconcileError;
use super::heal::Healer;
use super::read::{Read, Staged};
use super::seen::SeenFilter;
use super::summary::Summary;
use crate::domain::bill::{self, BillTotals};
use crate::domain::reconciliation::{
    Discrepancy, DiscrepancyClass as Class, DiscrepancyKind as Kind, Tally, day_bounds,
};
use crate::domain::{Fen, OrderStatus, ProviderId};
use crate::providers::PaymentProvider;
use crate::store::Db;
use crate::store::reconciliations as store;

/// Discrepancy rows read per query.
const PAGE: i64 = 1_000;

/// One row of a class's query, classified: the discrepancy, the amount it counts for, whether
/// it is a bill row (the bill's rows that are not discrepancies are `matched`), and what
/// healing to try.
struct Found {
    d: Discrepancy,
    amount: Fen,
    bill_row: bool,
    heal: Option<Heal>,
}

enum Heal {
    /// Settle the payment after a query confirms it.
    Payment,
    /// Record the refund (at the bill's time) through the refund path.
    Refund { occurred_at: i64 },
}

/// Writes each discrepancy under the run's id, in order, and counts it in the summary.
struct Recorder<'a> {
    db: &'a Db,
    id: &'a str,
    seq: i64,
    summary: Summary,
}

impl Recorder<'_> {
    async fn record(&mut self, d: Discrepancy, amount: Fen) -> Result<(), sqlx::Error> {
        self.seq += 1;
        store::insert_discrepancy(self.db.pool(), self.id, self.seq, &d).await?;
        let by_kind = match d.kind {
            Kind::Refund => &mut self.summary.refunds,
            Kind::Payment => &mut self.summary.payments,
        };
        by_kind.entry(d.class).or_default().add(amount);
        if d.healed {
            self.summary.healed += 1;
        }
        Ok(())
    }
}

/// One run's classification: where its rows are, and what it has found so far.
struct Classifier<'a> {
    db: &'a Db,
    healer: Healer<'a>,
    provider: Arc<dyn PaymentProvider>,
    pid: ProviderId,
    day: (i64, i64),
    staged: Staged<'a>,
    rec: Recorder<'a>,
    /// The bill's payments and refunds that are discrepancies: the rest are `matched`.
    bill_payments_off: Tally,
    bill_refunds_off: Tally,
}

/// Classifies what [`super::read::read_and_match`] staged under `staged.key`, heals what can be,
/// and answers the run's summary.
pub(super) async fn classify(
    db: &Db,
    healer: Healer<'_>,
    provider: Arc<dyn PaymentProvider>,
    staged: Staged<'_>,
    date: NaiveDate,
    read: Read,
) -> Result<Summary, ReconcileError> {
    let mut run = Classifier {
        db,
        healer,
        pid: provider.id(),
        provider,
        day: day_bounds(date),
        rec: Recorder {
            db,
            id: staged.key,
            seq: 0,
            summary: Summary {
                bill_rows: read.rows,
                bill_totals: Some(read.totals),
                ..Summary::default()
            },
        },
        staged,
        bill_payments_off: Tally::default(),
        bill_refunds_off: Tally::default(),
    };
    if read.maybe_duplicate {
        run.duplicate_remote().await?;
    }
    run.bill_payments().await?;
    run.missing_remote_payments(&read).await?;
    run.bill_refunds().await?;
    run.missing_remote_refunds().await?;
    run.matched(read.totals).await
}

impl Classifier<'_> {
    /// The one paged scan of every class: pages through a keyset-ordered query to its end
    /// (`page(after)` answers at most [`PAGE`] rows after the cursor `after`, `cursor(row)` is
    /// a row's cursor), classifies each row (`class`), heals what it says to, and records it.
    async fn scan<C, R, Fut>(
        &mut self,
        mut after: C,
        page: impl Fn(C) -> Fut,
        cursor: impl Fn(&R) -> C,
        class: impl Fn(R) -> Found,
    ) -> Result<(), ReconcileError>
    where
        Fut: Future<Output = Result<Vec<R>, sqlx::Error>>,
    {
        loop {
            let rows = page(after).await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = cursor(last);
            for row in rows {
                self.found(class(row)).await?;
            }
        }
    }

    async fn found(&mut self, found: Found) -> Result<(), ReconcileError> {
        let Found {
            mut d,
            amount,
            bill_row,
            heal,
        } = found;
        match heal {
            Some(Heal::Payment) => self.healer.payment(self.provider.as_ref(), &mut d).await?,
            Some(Heal::Refund { occurred_at }) => {
                self.healer.refund(self.pid, occurred_at, &mut d).await?
            }
            None => {}
        }
        if bill_row {
            match d.kind {
                Kind::Payment => self.bill_payments_off.add(amount),
                Kind::Refund => self.bill_refunds_off.add(amount),
            }
        }
        Ok(self.rec.record(d, amount).await?)
    }

    /// A transaction id the bill may list twice: every bill payment is staged, and each row
    /// that repeats an earlier one's id is a `duplicate_remote` of its own (with both amounts),
    /// so the first row alone is matched, healed or reported, and `matched` counts local
    /// payments once.
    async fn duplicate_remote(&mut self) -> Result<(), ReconcileError> {
        self.staged.stage_all(self.db, &self.provider).await?;
        let (reader, all_key) = (self.db.reader(), self.staged.all_payments_key);
        self.scan(
            -1i64,
            move |after| store::repeated_payments(reader, all_key, after, PAGE),
            |r| r.seq,
            |r| Found {
                d: Discrepancy {
                    order_no: r.order_no,
                    provider_txn_id: Some(r.provider_txn_id),
                    bill_amount_fen: Some(r.first_amount),
                    bill_status: Some(r.status),
                    note: Some("the bill lists this transaction id more than once".into()),
                    duplicate_amount_fen: Some(r.amount),
                    ..Discrepancy::new(Class::DuplicateRemote, Kind::Payment)
                },
                amount: r.amount,
                bill_row: true,
                heal: None,
            },
        )
        .await
    }

    /// Bill payments that are not matched by a local payment (a repeated row excepted):
    /// `amount_mismatch`, `status_mismatch`, or `missing_local`, healed when it can be.
    async fn bill_payments(&mut self) -> Result<(), ReconcileError> {
        let keys = (self.staged.key, self.staged.all_payments_key);
        let (reader, pid) = (self.db.reader(), self.pid);
        self.scan(
            -1i64,
            move |after| store::unmatched_payments(reader, keys, pid, after, PAGE),
            |r| r.seq,
            |r| {
                let mut d = Discrepancy {
                    order_no: r.order_no,
                    provider_txn_id: Some(r.provider_txn_id),
                    bill_amount_fen: Some(r.amount),
                    local_amount_fen: r.local_amount,
                    bill_status: Some(r.status.clone()),
                    ..Discrepancy::new(Class::MissingLocal, Kind::Payment)
                };
                let mut heal = None;
                match r.local_amount {
                    Some(local) if local != r.amount => d.class = Class::AmountMismatch,
                    Some(_) => {
                        d.class = Class::StatusMismatch;
                        d.local_status = Some(OrderStatus::Paid.as_str().into());
                    }
                    None if r.status != bill::SUCCESS => d.class = Class::StatusMismatch,
                    None => heal = Some(Heal::Payment),
                }
                Found {
                    d,
                    amount: r.amount,
                    bill_row: true,
                    heal,
                }
            },
        )
        .await
    }

    /// Local payments of the day that the bill does not have. With no transaction id twice in
    /// the bill, the day's local payments that are in it are the matched rows counted while
    /// reading plus the staged ones that have a local payment of the day now (after healing):
    /// when that is all of them, none is missing. Otherwise the filter of the bill's
    /// transaction ids names them when it can be shown to have made no mistake, or else every
    /// bill payment is staged and the anti-join names them.
    async fn missing_remote_payments(&mut self, read: &Read) -> Result<(), ReconcileError> {
        let (reader, pid, day) = (self.db.reader(), self.pid, self.day);
        // Counted in this order, the staged ones first: both sets only grow, so every payment
        // the two counts name is in the later count of the day's payments, and equal counts
        // are equal sets even with settlements committing in between.
        let staged_in_day =
            store::staged_payments_paid_between(reader, self.staged.key, pid, day).await?;
        let local_now = store::local_payments(reader, pid, day).await?;
        let in_bill = read.matched_in_day + staged_in_day;
        let mut exact = read.maybe_duplicate;
        if !exact && in_bill != local_now.count {
            match missing_by_filter(reader, pid, day, &read.seen, in_bill).await? {
                Some(missing) => {
                    for (d, amount) in missing {
                        self.rec.record(d, amount).await?;
                    }
                }
                None => exact = true,
            }
        }
        self.rec.summary.timings_ms.exact_missing_remote_check = exact;
        if !exact {
            return Ok(());
        }
        self.staged.stage_all(self.db, &self.provider).await?;
        let all_key = self.staged.all_payments_key;
        self.scan(
            String::new(),
            move |after: String| async move {
                store::payments_not_staged(reader, all_key, pid, day, &after, PAGE).await
            },
            |p| p.payment_id.clone(),
            |p| Found {
                d: missing_remote_payment(p.order_no, p.provider_txn_id, p.amount),
                amount: p.amount,
                bill_row: false,
                heal: None,
            },
        )
        .await
    }

    /// Bill refunds not matched by a local refund (by refund number; a bill without refund
    /// numbers is matched by order and amount): `amount_mismatch`, `status_mismatch`, or
    /// `missing_local`, recorded through the refund path when it can be.
    async fn bill_refunds(&mut self) -> Result<(), ReconcileError> {
        let (reader, pid, key) = (self.db.reader(), self.pid, self.staged.key);
        self.scan(
            -1i64,
            move |after| store::unmatched_refunds(reader, key, pid, after, PAGE),
            |r| r.seq,
            |r| {
                let mut d = Discrepancy {
                    order_no: r.order_no,
                    provider_txn_id: Some(r.provider_txn_id),
                    refund_no: r.refund_no,
                    bill_amount_fen: Some(r.amount),
                    local_amount_fen: r.local_amount,
                    bill_status: Some(r.status.clone()),
                    local_status: r.local_status,
                    ..Discrepancy::new(Class::MissingLocal, Kind::Refund)
                };
                let mut heal = None;
                match r.local_amount {
                    Some(local) if local != r.amount => d.class = Class::AmountMismatch,
                    Some(_) => d.class = Class::StatusMismatch,
                    None if r.status != bill::SUCCESS => d.class = Class::StatusMismatch,
                    None => {
                        heal = Some(Heal::Refund {
                            occurred_at: r.occurred_at,
                        })
                    }
                }
                Found {
                    d,
                    amount: r.amount,
                    bill_row: true,
                    heal,
                }
            },
        )
        .await
    }

    /// Local refunds of the day that the bill does not have.
    async fn missing_remote_refunds(&mut self) -> Result<(), ReconcileError> {
        let (reader, pid, day, key) = (self.db.reader(), self.pid, self.day, self.staged.key);
        self.scan(
            String::new(),
            move |after: String| async move {
                store::refunds_not_staged(reader, key, pid, day, &after, PAGE).await
            },
            |r| r.refund_id.clone(),
            |r| Found {
                d: Discrepancy {
                    order_no: Some(r.order_no),
                    refund_no: Some(r.out_refund_no),
                    local_amount_fen: Some(r.amount),
                    local_status: Some(r.status),
                    ..Discrepancy::new(Class::MissingRemote, Kind::Refund)
                },
                amount: r.amount,
                bill_row: false,
                heal: None,
            },
        )
        .await
    }

    /// `matched`: every bill row that produced no discrepancy; and both sides' local totals.
    async fn matched(self, totals: BillTotals) -> Result<Summary, ReconcileError> {
        let mut summary = self.rec.summary;
        let matched = |count: u64, amount: Fen, off: Tally| Tally {
            count: count - off.count,
            amount_fen: amount.get() - off.amount_fen,
        };
        let payments = matched(
            totals.payments,
            totals.payment_amount,
            self.bill_payments_off,
        );
        summary.payments.insert(Class::Matched, payments);
        let refunds = matched(totals.refunds, totals.refund_amount, self.bill_refunds_off);
        summary.refunds.insert(Class::Matched, refunds);
        let reader = self.db.reader();
        summary.local_payments = store::local_payments(reader, self.pid, self.day).await?;
        summary.local_refunds = store::local_refunds(reader, self.pid, self.day).await?;
        Ok(summary)
    }
}

/// A local payment the bill does not have.
fn missing_remote_payment(order_no: String, provider_txn_id: String, amount: Fen) -> Discrepancy {
    Discrepancy {
        order_no: Some(order_no),
        provider_txn_id: Some(provider_txn_id),
        local_amount_fen: Some(amount),
        local_status: Some(OrderStatus::Paid.as_str().into()),
        ..Discrepancy::new(Class::MissingRemote, Kind::Payment)
    }
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
    provider: ProviderId,
    day: (i64, i64),
    seen: &SeenFilter,
    in_bill: u64,
) -> Result<Option<Vec<(Discrepancy, Fen)>>, sqlx::Error> {
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
            let d = missing_remote_payment(p.order_no, p.provider_txn_id, p.amount);
            missing.push((d, p.amount));
        }
    }
    Ok((maybe == in_bill).then_some(missing))
}
