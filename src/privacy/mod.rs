//! Privacy (DESIGN.md §1, §10; issue 11): account deletions carried out within two working
//! days ([`erasures`]: [`request`], [`carry_out`], the `erasure` job [`run_due`]; what one
//! does: [`erase`]), the pseudonym that replaces an erased employer id
//! ([`crate::domain::pseudonym`], its file: [`key`]), and retention ([`retention`]).
//!
//! An erasure replaces the employer id everywhere paygate holds it by its pseudonym (it still
//! parses as an [`crate::domain::EmployerId`], so every typed path keeps working). The
//! accounting (amounts, order numbers, provider transaction ids, refunds, reconciliation rows)
//! is not touched. Every statement is in `store/` (`erasures`, `erased_employers`, `erasure`,
//! `retention`).

pub mod deps;
pub mod erase;
pub mod erasures;
pub mod key;
pub mod retention;
pub mod workdays;

pub use deps::ErasureDeps;
pub use erase::Erased;
pub use erasures::{ErasurePass, PrivacyError, carry_out, pseudonym_of, request, run_due};
pub use retention::{RetentionDeps, RetentionReport};

pub use crate::domain::ids::PSEUDONYM_PREFIX;
pub use crate::domain::reasons::ACCOUNT_DELETED;
pub use crate::domain::{ErasureRow, ErasureStatus, PseudonymKey};
pub use crate::store::erased_employers::is_erased;
/// How `Idempotency-Key`s are stored (moved to `store`; this path is kept for its callers).
pub use crate::store::idempotency_keys;
