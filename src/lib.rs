//! paygate: the payments and order gateway of 职前通.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod clock;
pub mod config;
pub mod domain;
