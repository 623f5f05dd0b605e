//! `AppState`: what the composition layer (handlers, jobs, the CLI) holds, built once by
//! `app::Application::build`. Use cases never take it whole: their callers hand them the
//! narrow parts they use.

use std::sync::Arc;

use crate::api_keys::ApiKeys;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::Catalog;
use crate::providers::Registry;
use crate::store::Db;

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub catalog: Arc<Catalog>,
    pub providers: Arc<Registry>,
    pub api_keys: Arc<ApiKeys>,
    pub clock: SharedClock,
    /// The event push, when `[events] url` is set.
    pub pusher: Option<Arc<crate::push::Pusher>>,
    /// Requests per API key and per webhook source address (`[limits]`).
    pub rate_limits: Arc<crate::edge::RateLimits>,
    /// The key of erased employers' pseudonyms (`[privacy]`); None: erasures are refused.
    pub pseudonym_key: Option<Arc<crate::domain::PseudonymKey>>,
    /// How `Idempotency-Key`s are stored: keyed hashes (`[privacy]`), never text.
    pub idempotency_keys: Arc<crate::store::idempotency_keys::IdempotencyKeys>,
}

impl AppState {
    /// The settlement tail's dependencies, out of the state.
    pub fn tail(&self) -> crate::settlement::Deps<'_> {
        crate::settlement::Deps {
            db: &self.db,
            providers: &self.providers,
            clock: self.clock.as_ref(),
        }
    }

    /// What issuing and following refunds needs.
    pub fn refunds(&self) -> crate::refunds::Deps<'_> {
        self.tail().refunds()
    }

    /// What the checkout use cases need.
    pub fn checkout(&self) -> crate::checkout::Deps<'_> {
        crate::checkout::Deps {
            db: &self.db,
            providers: &self.providers,
            clock: self.clock.as_ref(),
            orders: &self.config.orders,
            checkout: &self.config.checkout,
        }
    }

    /// What a reconciliation run started by `actor` uses (the API, the console, the job and
    /// the CLI run it the same way).
    pub fn reconcile<'a>(&'a self, actor: &'a crate::domain::Actor) -> crate::reconcile::Deps<'a> {
        crate::reconcile::Deps {
            db: &self.db,
            providers: &self.providers,
            clock: self.clock.as_ref(),
            config: &self.config.reconciliation,
            actor,
        }
    }

    /// What erasures use.
    pub fn erasures(&self) -> crate::privacy::ErasureDeps<'_> {
        crate::privacy::ErasureDeps {
            db: &self.db,
            providers: &self.providers,
            clock: self.clock.as_ref(),
            key: self.pseudonym_key.as_deref(),
            idempotency_keys: &self.idempotency_keys,
            config: &self.config.privacy,
        }
    }

    /// What a retention pass uses.
    pub fn retention(&self) -> crate::privacy::RetentionDeps<'_> {
        crate::privacy::RetentionDeps {
            db: &self.db,
            clock: self.clock.as_ref(),
            config: &self.config.privacy,
            idempotency_keys: &self.idempotency_keys,
            events_pushed: self.pusher.is_some(),
        }
    }
}
