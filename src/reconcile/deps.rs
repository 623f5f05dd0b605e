//! What a reconciliation run uses, and how it fails.

use crate::clock::Clock;
use crate::config::ReconciliationConfig;
use crate::domain::ProviderId;
use crate::providers::Registry;
use crate::store::Db;

use super::bill::BillError;
use super::heal::RefundPath;

/// The narrow dependencies of a run, borrowed from the application by its caller.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub db: &'a Db,
    pub providers: &'a Registry,
    pub clock: &'a dyn Clock,
    /// `[reconciliation]`: the bounds of a bill's download and reading.
    pub config: &'a ReconciliationConfig,
    /// Where a refund the bill has and paygate does not is recorded (the refund path).
    pub refunds: &'a dyn RefundPath,
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
