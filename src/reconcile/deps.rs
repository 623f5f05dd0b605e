//! What a reconciliation run uses, and how it fails.

use crate::clock::Clock;
use crate::config::ReconciliationConfig;
use crate::domain::ProviderId;
use crate::providers::Registry;
use crate::store::Db;

use crate::providers::BillError;

/// The narrow dependencies of a run, borrowed from the application by its caller.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub db: &'a Db,
    pub providers: &'a Registry,
    pub clock: &'a dyn Clock,
    /// `[reconciliation]`: the bounds of a bill's download and reading.
    pub config: &'a ReconciliationConfig,
    /// Who started the run (the scheduler, a person, a program): kept with the run and in its
    /// `reconciliation.completed` event.
    pub actor: &'a crate::domain::Actor,
}

impl<'a> Deps<'a> {
    /// The settlement tail, through which a healed payment or refund goes as any other does.
    pub fn tail(&self) -> crate::settlement::Deps<'a> {
        crate::settlement::Deps {
            db: self.db,
            providers: self.providers,
            clock: self.clock,
        }
    }
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
