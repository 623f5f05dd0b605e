//! A run's summary: what it found per kind and class, with both sides' totals (stored as the
//! run's `summary_json` and sent in `reconciliation.completed`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::bill::BillTotals;
use crate::domain::reconciliation::{DiscrepancyClass, Tally};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub bill_rows: u64,
    pub bill_totals: Option<BillTotals>,
    pub local_payments: Tally,
    pub local_refunds: Tally,
    pub payments: BTreeMap<DiscrepancyClass, Tally>,
    pub refunds: BTreeMap<DiscrepancyClass, Tally>,
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
