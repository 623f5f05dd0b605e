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
//! reading thread and drops what it wrote at once (`work.rs`).
//! The run's discrepancies are written under its id as they are found; the run row itself is
//! written last, in one transaction with the removal of the date's previous run, so a re-run
//! replaces the date's result atomically and `reconciliation.completed` goes out with it.
//!
//! A facade: the children share nothing through this file.
//!
//! | file | holds |
//! |---|---|
//! | `run.rs` | [`run`], [`run_downloaded`]: the run from end to end, stored and announced |
//! | `deps.rs` | [`Deps`], what a run uses; [`ReconcileError`] |
//! | `work.rs` | the work row of a run in progress and its drop guard |
//! | `read.rs` | the reading thread, its batches, matching them against `payment`, staging |
//! | `classify.rs` | one paged scan and one function per class |
//! | `heal.rs` | healing a missing payment or refund through the settlement tail |
//! | `summary.rs` | [`Summary`], what a run found |

mod classify;
mod deps;
mod heal;
mod read;
pub mod report_csv;
mod run;
mod seen;
mod summary;
mod work;

pub use crate::domain::reconciliation::{Tally, day_bounds};
pub use deps::{Deps, ReconcileError};
pub use run::{run, run_downloaded};
pub use summary::{Summary, Timings};
