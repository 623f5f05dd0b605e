//! The HTTP API (DESIGN.md §4): one module per resource; `router.rs` puts them on their
//! routes, `body.rs` holds what their handlers share.

pub mod auth;
mod body;
pub mod entitlements;
pub mod events;
pub mod health;
pub mod idempotent;
pub mod metrics;
pub mod openapi;
pub mod orders;
pub mod plans;
pub mod privacy;
pub mod reconciliations;
pub mod refunds;
mod router;
pub mod webhooks;

pub use body::json_body;
pub use router::{MAX_WAIT, router};
