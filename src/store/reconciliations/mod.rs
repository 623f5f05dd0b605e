//! Reconciliation runs, their discrepancies, and the bill rows staged while a run computes
//! (DESIGN.md §10). A facade: each child holds one part, and they share nothing through here.
//!
//! - `staged`: the bill rows a run stages in `reconciliation_bill_row`, and the set-based
//!   queries that match them against `payment` and `refund`;
//! - `local`: the day's local payments and refunds, as the run pages through and counts them;
//! - `discrepancies`: a run's discrepancy rows, written as found, read as the CSV's pages;
//! - `runs`: the run row (its atomic replace of the date's previous run), the work row of a run
//!   in progress, and the sweep of what a run that died left behind.

mod columns;
mod discrepancies;
mod local;
mod runs;
mod staged;

pub use discrepancies::{discrepancies, filtered, insert_discrepancy, unhealed};
pub use local::{
    DayPayment, LOOKUP_CHUNK, LocalPayment, local_payments, local_refunds, payments_by_txn,
    payments_paid_between,
};
pub use runs::{
    RunRow, RunStatus, abandon, begin_work, get, last_completed_days, list, of_date,
    store_completed, sweep_abandoned,
};
pub use staged::{
    MissingPayment, MissingRefund, RepeatedPayment, UnmatchedPayment, UnmatchedRefund, drop_staged,
    payments_not_staged, refunds_not_staged, repeated_payments, stage,
    staged_payments_paid_between, unmatched_payments, unmatched_refunds,
};
