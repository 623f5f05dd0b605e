//! What the erasure use cases take instead of the application state: [`ErasureDeps`]. A leaf
//! of `privacy/`: `erasures` and `erase` both use it, neither is used by it.

use crate::clock::Clock;
use crate::config::PrivacyConfig;
use crate::domain::PseudonymKey;
use crate::providers::Registry;
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

impl<'a> ErasureDeps<'a> {
    /// The settlement tail: an erased account's pending order is asked about and closed, and a
    /// payment that reached it refunded, as on every other path.
    pub fn tail(&self) -> crate::settlement::Deps<'a> {
        crate::settlement::Deps {
            db: self.db,
            providers: self.providers,
            clock: self.clock,
        }
    }
}
