//! Domain types: money, identifiers, plans, and the states of orders and refunds. Parsed once at the edge, used everywhere.

pub mod actor;
pub mod bill;
pub mod claim;
pub mod date;
pub mod erasure;
pub mod ids;
pub mod money;
pub mod plans;
pub mod provider_missing;
pub mod pseudonym;
pub mod reasons;
pub mod reconciliation;
pub mod scope;
pub mod status;
pub mod totp;

pub use actor::{Actor, ConsoleUserName};
pub use claim::OwnedClaim;
pub use date::{DateError, parse_date};
pub use erasure::{ErasureId, ErasureRow, ErasureStatus};
pub use ids::{Channel, EmployerId, OrderNo, OutRefundNo, ProviderId, RefundId};
pub use money::{Currency, Fen};
pub use plans::{Action, Catalog, Grant, Plan};
pub use provider_missing::ProviderMissing;
pub use pseudonym::PseudonymKey;
pub use scope::Scope;
pub use status::{OrderStatus, RefundOrigin, RefundStatus};
