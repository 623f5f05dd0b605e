//! Refunds, paygate's and the provider's. A facade: [`issue`] starts paygate's refunds and
//! follows them (the API, the CLI, the refund job, the settlement tail's `account_deleted`
//! refund); [`report`] applies what a provider reports (a notification, a reconciliation
//! heal), settling a missed payment first through the settlement tail; [`settle`] is the one
//! refund settlement path both end in. The order between them: `report` → settlement tail →
//! `issue` → `settle`, never back.

pub mod issue;
pub mod report;
pub mod settle;

pub use issue::{DatabaseDown, Deps, FIRST_QUERY_AFTER, RefundPass, StartError, query_due, start};
pub use report::apply_report;
pub use settle::{
    RefundFailure, RefundOutcome, RefundReport, RefundSettleError, RefundSettled, settle_refund,
};
