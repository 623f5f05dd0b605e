//! The life of an order and of a refund as typed states, with every allowed move in one place.
//!
//! ```text
//! pending ──▶ paid ──▶ partially_refunded ──▶ refunded
//!    │          ╰──────────────────────────────▲
//!    ▼
//! closed ──▶ paid   (a payment that raced the close is honoured: `payment.late`)
//! ```
//!
//! The store writes a status only through a conditional update whose `WHERE` names the states
//! [`OrderStatus::can_become`] allows to move, so two concurrent reports cannot both move it.

use std::fmt;

use serde::Serialize;

use super::Fen;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    Closed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
        OrderStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The one table of allowed moves.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Paid)
                | (Pending, Closed)
                // The buyer paid just before the close reached the provider.
                | (Closed, Paid)
                | (Paid, PartiallyRefunded)
                | (Paid, Refunded)
                | (PartiallyRefunded, PartiallyRefunded)
                | (PartiallyRefunded, Refunded)
        )
    }

    /// The states that may move to `next`, for the `WHERE status IN (…)` of an update.
    pub fn sources_of(next: OrderStatus) -> Vec<OrderStatus> {
        Self::ALL
            .into_iter()
            .filter(|s| s.can_become(next))
            .collect()
    }

    /// Money was taken: the states in which a refund may be asked for or reported.
    /// Whether a new refund may be made of an order in this state (DESIGN.md §12): paid, in
    /// full or what a refund left of it.
    pub fn may_refund(self) -> bool {
        matches!(self, OrderStatus::Paid | OrderStatus::PartiallyRefunded)
    }

    pub fn is_settled(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
        )
    }

    /// The status of a paid order of `amount` once `refunded` (in total) went back.
    pub fn after_refunds(amount: Fen, refunded: Fen) -> OrderStatus {
        if refunded >= amount {
            OrderStatus::Refunded
        } else if refunded == Fen::ZERO {
            OrderStatus::Paid
        } else {
            OrderStatus::PartiallyRefunded
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refund's state: `processing` until the provider says it went back (`succeeded`) or that it
/// will not (`failed`). A verified report that the money went back wins over an earlier
/// failure (WeChat's `ABNORMAL` refunds can still be paid out once the merchant resolves them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Processing,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "processing",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RefundStatus> {
        [
            RefundStatus::Processing,
            RefundStatus::Succeeded,
            RefundStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn can_become(self, next: RefundStatus) -> bool {
        use RefundStatus::*;
        matches!(
            (self, next),
            (Processing, Succeeded) | (Processing, Failed) | (Failed, Succeeded)
        )
    }
}

/// Who started a refund: paygate (the API or the CLI), or the provider's side (the merchant
/// portal, the provider's own tools), learned from a notification or a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundOrigin {
    Paygate,
    Provider,
}

impl RefundOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundOrigin::Paygate => "paygate",
            RefundOrigin::Provider => "provider",
        }
    }

    pub fn parse(text: &str) -> Option<RefundOrigin> {
        match text {
            "paygate" => Some(RefundOrigin::Paygate),
            "provider" => Some(RefundOrigin::Provider),
            _ => None,
        }
    }
}

/// How paygate learned of a payment, stored in `payment.source` and reported in `order.paid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentSource {
    /// The provider's callback (webhook).
    Notification,
    /// paygate asked the provider (return check, active query, expiry, cancel, a refund's
    /// settle-first).
    Query,
    /// The provider's bill named a payment paygate had not recorded.
    Reconciliation,
}

impl PaymentSource {
    pub const ALL: [PaymentSource; 3] = [
        PaymentSource::Notification,
        PaymentSource::Query,
        PaymentSource::Reconciliation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentSource::Notification => "notification",
            PaymentSource::Query => "query",
            PaymentSource::Reconciliation => "reconciliation",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentSource> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for PaymentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entitlement's stored status (DESIGN.md §5). `active` is the only state access checks and
/// the refund and erasure rules change; an `active` row past `valid_until` is already expired
/// for every reader, whether or not the hourly job has marked it yet ([`EntitlementStatus::at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntitlementStatus {
    Active,
    Expired,
    Revoked,
}

impl EntitlementStatus {
    pub const ALL: [EntitlementStatus; 3] = [
        EntitlementStatus::Active,
        EntitlementStatus::Expired,
        EntitlementStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntitlementStatus::Active => "active",
            EntitlementStatus::Expired => "expired",
            EntitlementStatus::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<EntitlementStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The status as a caller sees it at `now_ms`, given the row's `valid_until`.
    pub fn at(self, valid_until_ms: i64, now_ms: i64) -> EntitlementStatus {
        match self {
            EntitlementStatus::Active if valid_until_ms <= now_ms => EntitlementStatus::Expired,
            other => other,
        }
    }
}

impl fmt::Display for EntitlementStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_move_only_forward() {
        use OrderStatus::*;
        assert!(Pending.can_become(Paid));
        assert!(Closed.can_become(Paid));
        assert!(Paid.can_become(Refunded));
        assert!(!Refunded.can_become(Paid));
        assert!(!Paid.can_become(Closed));
        assert!(!Paid.can_become(Pending));
        assert!(!Pending.can_become(Refunded));
        assert!(!Closed.can_become(PartiallyRefunded));
        assert_eq!(OrderStatus::sources_of(Paid), vec![Pending, Closed]);
        assert_eq!(
            OrderStatus::sources_of(Refunded),
            vec![Paid, PartiallyRefunded]
        );
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn refunded_share_decides_the_order_status() {
        let fen = |v| Fen::new(v).unwrap();
        assert_eq!(
            OrderStatus::after_refunds(fen(100), fen(0)),
            OrderStatus::Paid
        );
        assert_eq!(
            OrderStatus::after_refunds(fen(100), fen(1)),
            OrderStatus::PartiallyRefunded
        );
        assert_eq!(
            OrderStatus::after_refunds(fen(100), fen(100)),
            OrderStatus::Refunded
        );
    }

    #[test]
    fn a_succeeded_refund_is_final() {
        use RefundStatus::*;
        assert!(Processing.can_become(Succeeded));
        assert!(Failed.can_become(Succeeded));
        assert!(!Succeeded.can_become(Failed));
        assert!(!Succeeded.can_become(Processing));
    }

    #[test]
    fn payment_sources_and_entitlement_statuses_round_trip_their_stored_text() {
        for s in PaymentSource::ALL {
            assert_eq!(PaymentSource::parse(s.as_str()), Some(s));
        }
        for s in EntitlementStatus::ALL {
            assert_eq!(EntitlementStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(PaymentSource::parse("webhook"), None);
        assert_eq!(EntitlementStatus::parse("Active"), None);
    }

    #[test]
    fn an_active_entitlement_past_its_end_reads_as_expired() {
        use EntitlementStatus::*;
        assert_eq!(Active.at(100, 99), Active);
        assert_eq!(Active.at(100, 100), Expired);
        assert_eq!(Revoked.at(100, 200), Revoked);
    }
}
