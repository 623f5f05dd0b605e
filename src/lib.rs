//! paygate: the payments and order gateway of 职前通.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod api;
pub mod api_keys;
pub mod app;
pub mod checkout;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod console_users;
pub mod domain;
pub mod edge;
pub mod embedded;
pub mod entitlements;
pub mod error;
pub mod jobs;
pub mod keygen;
pub mod lifecycle;
pub mod order_watch;
pub mod privacy;
pub mod providers;
pub mod push;
pub mod reconcile;
pub mod refunds;
pub mod return_url;
pub mod settle;
pub mod settlement;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(feature = "sandbox")]
pub mod test_clock;
