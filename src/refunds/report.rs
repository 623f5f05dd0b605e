//! What a provider reports about a refund (a notification, a reconciliation heal), applied:
//! settled through the one refund settlement path, after the payment it refunds was settled
//! through the settlement tail when paygate had missed it.

use super::settle::{self, RefundReport, RefundSettleError, RefundSettled};
use crate::domain::Fen;
use crate::providers::RefundState;
use crate::settle::Settled;
use crate::settlement::{self, Deps};

/// Applies a verified refund report: settles it, after first settling the payment if the
/// provider reports a refund of an order paygate has not seen paid (the payment is real), and
/// asking the provider for the amount when the report does not carry it. A payment settled
/// here goes through the settlement tail's after step once the report is applied, so an
/// erased account's remainder is refunded at once from what is left after this refund.
pub async fn apply_report(
    deps: &Deps<'_>,
    report: &RefundReport,
) -> Result<RefundSettled, RefundSettleError> {
    let mut report = report.clone();
    let mut paid_now = None;
    let mut outcome = Err(RefundSettleError::OrderNotPaid);
    for _ in 0..3 {
        match settle::settle_refund(deps.db, &report, deps.clock.now()).await {
            Err(RefundSettleError::OrderNotPaid) => {
                match settlement::settle_missed_payment(deps, &report.order_no).await {
                    Ok(settled) => paid_now = Some(settled),
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            Err(RefundSettleError::AmountUnknown) => match ask_amount(deps, &report).await {
                Ok(amount) => report.amount = Some(amount),
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            },
            other => {
                outcome = other;
                break;
            }
        }
    }
    if let Some(settled @ Settled::Now { .. }) = paid_now {
        settlement::after_settlement(deps, &report.order_no, settled).await;
    }
    outcome
}

/// A refund paygate did not start, reported without its amount (Alipay gives only the
/// cumulative `refund_fee`, and notifications may come out of order): ask the provider.
async fn ask_amount(deps: &Deps<'_>, report: &RefundReport) -> Result<Fen, RefundSettleError> {
    let provider = deps.provider(report.provider)?;
    match provider
        .refund_query(&report.order_no, &report.out_refund_no)
        .await
    {
        Ok(RefundState::Succeeded { amount, .. }) => Ok(amount),
        Ok(other) => {
            tracing::warn!(order_no = %report.order_no, state = ?other, "the provider does not confirm a reported refund");
            Err(RefundSettleError::AmountUnknown)
        }
        Err(e) => Err(RefundSettleError::Provider(e)),
    }
}
