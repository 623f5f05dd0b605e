//! Healing what the bill has and paygate missed: a payment through the settlement tail after a
//! query confirms it, a refund through the refund report path (which settles through the same
//! tail). The one place reconciliation changes an order; its surface is [`Healer`].

use crate::domain::reconciliation::Discrepancy;
use crate::domain::{OrderNo, ProviderId};
use crate::providers::{PaymentProvider, TradeStatus};
use crate::refunds::{RefundOutcome, RefundReport, RefundSettleError, RefundSettled};
use crate::settle::{Settled, Source};
use crate::store::{Db, orders};

/// What healing uses.
#[derive(Clone, Copy)]
pub(super) struct Healer<'a> {
    pub(super) db: &'a Db,
    /// The settlement tail: a healed payment of an erased account is refunded at once, and
    /// its waiting pages are answered, as on every other path.
    pub(super) tail: crate::settlement::Deps<'a>,
}

/// The note of a bill row with no merchant order number.
const NO_ORDER_NUMBER: &str =
    "not an order of paygate's: the bill row has no merchant order number (商户订单号)";

impl Healer<'_> {
    /// A payment in the bill that paygate has not settled: settle it when the order is ours and
    /// pending or closed, and a query confirms the payment (the bill is the provider's word, but
    /// the settlement path takes only a verified query answer). Otherwise say why not in `d`.
    pub(super) async fn payment(
        &self,
        provider: &dyn PaymentProvider,
        d: &mut Discrepancy,
    ) -> Result<(), sqlx::Error> {
        let Some(order_no) = d.order_no.as_deref() else {
            d.note = Some(NO_ORDER_NUMBER.into());
            return Ok(());
        };
        let Some(no) = OrderNo::parse(order_no) else {
            d.note = Some("order number never issued by paygate".into());
            return Ok(());
        };
        let Some(order) = orders::get(self.db.reader(), &no).await? else {
            d.note = Some("order number never issued by paygate".into());
            return Ok(());
        };
        d.local_status = Some(order.status.as_str().to_owned());
        if order.status.is_settled() {
            d.note = Some("order settled by another transaction".into());
            return Ok(());
        }
        let trade = match provider.query(&no).await {
            Ok(TradeStatus::Paid(trade) | TradeStatus::Refunded(trade)) => trade,
            Ok(other) => {
                d.note = Some(
                    format!("the provider's query does not confirm it: {other:?}")
                        .chars()
                        .take(120)
                        .collect(),
                );
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(order_no, error = %crate::error::chain(&e), "reconciliation could not query a missing payment");
                d.note = Some("the provider could not be queried; healed on a re-run".into());
                return Ok(());
            }
        };
        let settled = crate::settlement::settle(&self.tail, &trade, Source::Reconciliation).await;
        match settled {
            Ok(Settled::Now { late }) => {
                d.healed = true;
                d.note = Some(
                    if late {
                        "settled late (the order had been closed)"
                    } else {
                        "settled"
                    }
                    .into(),
                );
            }
            Ok(Settled::Already) => d.note = Some("settled meanwhile".into()),
            Err(crate::settle::SettleError::Db(e)) => return Err(e),
            Err(e) => d.note = Some(format!("not settled: {e}")),
        }
        Ok(())
    }

    /// A refund in the bill that paygate does not know: record it through the refund path.
    pub(super) async fn refund(
        &self,
        provider: ProviderId,
        occurred_at: i64,
        d: &mut Discrepancy,
    ) -> Result<(), sqlx::Error> {
        let (Some(no), Some(refund_no), Some(amount)) = (
            d.order_no.as_deref().and_then(OrderNo::parse),
            d.refund_no.clone(),
            d.bill_amount_fen,
        ) else {
            d.note = Some(
                "not recorded: the bill names no refund number or no order of paygate's".into(),
            );
            return Ok(());
        };
        let report = RefundReport {
            order_no: no,
            provider,
            out_refund_no: refund_no,
            provider_refund_id: None,
            amount: Some(amount),
            order_total: None,
            outcome: RefundOutcome::Succeeded {
                at: Some(crate::store::time_of("occurred_at", occurred_at)?),
            },
        };
        match crate::refunds::apply_report(&self.tail, &report).await {
            Ok(RefundSettled::Now { .. }) => {
                d.healed = true;
                d.note = Some("recorded".into());
            }
            Ok(_) => d.note = Some("recorded meanwhile".into()),
            Err(RefundSettleError::Db(e)) => return Err(e),
            Err(e) => d.note = Some(format!("not recorded: {e}")),
        }
        Ok(())
    }
}
