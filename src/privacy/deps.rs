//! What the erasure use cases take instead of the application state: [`ErasureDeps`], and the
//! [`SettlementTail`] port the composition implements. A leaf of `privacy/`: `erasures` and
//! `erase` both use it, neither is used by it.

use std::future::Future;

use crate::clock::Clock;
use crate::config::PrivacyConfig;
use crate::domain::{OrderNo, PseudonymKey};
use crate::providers::{PaymentProvider, Registry};
use crate::store::Db;
use crate::store::idempotency_keys::IdempotencyKeys;

/// What erasures use of the application.
#[derive(Clone, Copy)]
pub struct ErasureDeps<'a> {
    pub db: &'a Db,
    pub providers: &'a Registry,
    pub clock: &'a dyn Clock,
    /// None: no `[privacy] pseudonym_key_file`, erasures are refused.
    pub key: Option<&'a PseudonymKey>,
    pub idempotency_keys: &'a IdempotencyKeys,
    pub config: &'a PrivacyConfig,
}

/// What an erasure needs of the settlement path, which lives above privacy (it refunds through
/// the refund path and wakes the waiting pages): the composition implements it.
pub trait SettlementTail: Sync {
    /// Asks `provider` about a pending order of an erased account and settles what it reports
    /// (the payment is then erased like any other), else closes the order here and at the
    /// provider, reason `account_deleted`.
    fn query_then_close(
        &self,
        provider: &dyn PaymentProvider,
        no: &OrderNo,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Refunds in full, reason `account_deleted`, a payment that reached an erased account. True
    /// when a refund was started now.
    fn refund_if_erased(&self, no: &OrderNo) -> impl Future<Output = bool> + Send;
}
