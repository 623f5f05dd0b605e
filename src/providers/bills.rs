//! What reading a provider's bill can fail with, and the checks every adapter's reader shares.

use crate::domain::bill::{BillEntry, BillTotals, EntryKind};

/// Why a bill could not be had or read. A run that meets one applies nothing.
#[derive(Debug, thiserror::Error)]
pub enum BillError {
    /// The provider has no bill for that date yet ("not exist"): try again later.
    #[error("the provider has no bill for this date yet")]
    NotReady,
    #[error("the provider could not be reached for the bill")]
    Unavailable(#[source] anyhow::Error),
    /// The file failed its own checks (hash, totals, encoding, truncation): refused whole.
    #[error("the bill failed its checks: {0}")]
    Invalid(#[source] anyhow::Error),
    /// Past `[reconciliation] max_bill_bytes` (downloaded, decompressed or in lines): refused
    /// whole, as an invalid bill.
    #[error("the bill was refused: {0}")]
    TooLarge(#[from] super::bounds::Exceeded),
    /// The run was dropped (its request cancelled or timed out) while the bill was read.
    #[error("the reconciliation was cancelled")]
    Cancelled,
    #[error("the bill could not be written or read locally")]
    Io(#[from] std::io::Error),
}

/// Counts entries by kind as a bill is read: the totals of what was staged.
pub fn tally(totals: &mut BillTotals, entry: &BillEntry) -> Result<(), BillError> {
    let (count, sum) = match entry.kind {
        EntryKind::Payment => (&mut totals.payments, &mut totals.payment_amount),
        EntryKind::Refund => (&mut totals.refunds, &mut totals.refund_amount),
    };
    *count += 1;
    *sum = sum
        .checked_add(entry.amount)
        .ok_or_else(|| BillError::Invalid(anyhow::anyhow!("the bill's amounts overflow")))?;
    Ok(())
}

/// A provider crate's parser error: the file is refused, as too large when a bound of
/// [`super::bounds`] stopped the reading, or the run is cancelled.
pub fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> BillError {
    match super::bounds::why_stopped(&e) {
        Some(super::bounds::Stopped::Exceeded(x)) => BillError::TooLarge(x),
        Some(super::bounds::Stopped::Cancelled) => BillError::Cancelled,
        None => BillError::Invalid(e.into()),
    }
}
