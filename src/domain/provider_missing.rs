//! An order (or a refund, a report) names a provider this instance has not configured. One
//! typed error on every path that looks a provider up, so the cause is the same wherever it
//! is met (never told as a mismatch between a report and the order).

use super::ids::ProviderId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not configured")]
pub struct ProviderMissing(pub ProviderId);
