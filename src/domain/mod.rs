//! Domain types: money, identifiers, plans. Parsed once at the edge, used everywhere.

pub mod ids;
pub mod money;
pub mod plans;

pub use ids::{Channel, EmployerId, OrderNo, ProviderId};
pub use money::Fen;
pub use plans::{Action, Catalog, Grant, Plan};
