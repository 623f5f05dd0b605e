//! Reasons paygate itself gives, shown to buyers and receivers of events: they name nobody.

/// The refund reason of a payment that arrives for an erased account, and the reason of what
/// an erasure closes or revokes (DESIGN.md §10).
pub const ACCOUNT_DELETED: &str = "account_deleted";
