//! Reasons paygate itself gives, shown to buyers and receivers of events: they name nobody.

/// The refund reason of a payment that arrives for an erased account, and the reason of what
/// an erasure closes or revokes (DESIGN.md §10).
pub const ACCOUNT_DELETED: &str = "account_deleted";

/// WeChat's `reason` is string(80); Alipay's `refund_reason` is shorter in bytes, so the limit
/// is in characters of the text the buyer sees.
pub const REFUND_REASON_MAX_CHARS: usize = 80;

/// Why a refund reason is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("reason must not be empty")]
    Empty,
    #[error("reason is longer than 80 characters")]
    TooLong,
    #[error("reason must not contain control characters")]
    Control,
}

/// A refund's reason as the buyer will see it: short, printable, or none. (That it does not
/// name the employer is checked against the order when the refund is made.)
pub fn refund_reason(text: Option<String>) -> Result<Option<String>, ReasonError> {
    let Some(text) = text else { return Ok(None) };
    if text.trim().is_empty() {
        return Err(ReasonError::Empty);
    }
    if text.chars().count() > REFUND_REASON_MAX_CHARS {
        return Err(ReasonError::TooLong);
    }
    if text.chars().any(char::is_control) {
        return Err(ReasonError::Control);
    }
    Ok(Some(text))
}
