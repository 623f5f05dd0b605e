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
    pub pseudonym_key: Option<Arc<crate::privacy::PseudonymKey>>,
    /// How `Idempotency-Key`s are stored: keyed hashes (`[privacy]`), never text.
    pub idempotency_keys: Arc<crate::privacy::idempotency_keys::IdempotencyKeys>,
}
