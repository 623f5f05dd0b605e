//! The checkout flow's use cases: create an order at the provider, and cancel one. The HTTP
//! handlers in `api/orders.rs` parse, call these, and render.

use std::sync::Arc;

use crate::clock::{Clock, to_millis};
use crate::config::{CheckoutConfig, OrdersConfig};
pub use crate::domain::OwnedClaim;
use crate::domain::{
    Channel, Currency, EmployerId, Fen, OrderNo, OrderStatus, Plan, ProviderId, ProviderMissing,
};
use crate::lifecycle::{self, CloseReason};
use crate::providers::{
    NewPayment, PayerHints, PaymentProvider, ProviderError, Registry, ReturnError, ReturnOrder,
};
use crate::return_url::ReturnUrl;
use crate::settlement::{self, SeenError};
use crate::store::Db;
use crate::store::idempotency;
use crate::store::orders::{self, OrderRow};
use crate::telemetry;

/// What the checkout use cases touch.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub db: &'a Db,
    pub providers: &'a Registry,
    pub clock: &'a dyn Clock,
    pub orders: &'a OrdersConfig,
    pub checkout: &'a CheckoutConfig,
}

impl<'a> Deps<'a> {
    /// The settlement tail's share of these.
    fn tail(&self) -> settlement::Deps<'a> {
        settlement::Deps {
            db: self.db,
            providers: self.providers,
            clock: self.clock,
        }
    }
}

/// A validated order request.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub employer: EmployerId,
    pub plan: Plan,
    pub provider: ProviderId,
    pub channel: Channel,
    pub payer: PayerHints,
    /// The order's own return URL (its host allowed by `[checkout] allowed_return_hosts`);
    /// None: the configured `[checkout] return_url`, if any.
    pub return_url: Option<ReturnUrl>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("no such order")]
    UnknownOrder,
    #[error(transparent)]
    ProviderDisabled(#[from] ProviderMissing),
    #[error("the payment provider could not be asked")]
    Provider(#[source] ProviderError),
    #[error("the provider reports a payment that does not fit the order")]
    DoesNotFit(#[source] anyhow::Error),
    #[error("the browser return was refused")]
    ReturnRefused(#[source] ReturnError),
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<SeenError> for CheckoutError {
    fn from(e: SeenError) -> CheckoutError {
        match e {
            SeenError::Provider(p) => CheckoutError::Provider(p),
            SeenError::Db(d) => CheckoutError::Db(d),
            SeenError::DoesNotFit(s) => CheckoutError::DoesNotFit(s.into()),
        }
    }
}

/// The provider of `id`, or [`CheckoutError::ProviderDisabled`].
pub fn provider(
    providers: &Registry,
    id: ProviderId,
) -> Result<Arc<dyn PaymentProvider>, CheckoutError> {
    providers
        .get(id)
        .cloned()
        .ok_or(CheckoutError::ProviderDisabled(ProviderMissing(id)))
}

/// Creates the order here (`pending`, so even an instant callback finds it), then at the
/// provider, and stores `render(order)` as the claim's answer with the provider's payment
/// instructions, in one transaction. On a provider failure the order and the claim are removed:
/// nothing half-created, and the same key works once the provider is back.
pub async fn create(
    deps: &Deps<'_>,
    req: NewOrder,
    claim: OwnedClaim<'_>,
    render: impl Fn(&OrderRow) -> String,
) -> Result<(OrderRow, String), CheckoutError> {
    let provider = provider(deps.providers, req.provider)?;
    let now = deps.clock.now();
    let now_ms = to_millis(now);
    let expires_at = now + chrono::Duration::minutes(deps.orders.ttl_minutes);
    let mut order = OrderRow {
        order_no: OrderNo::generate(),
        employer_id: req.employer,
        plan_id: req.plan.id.clone(),
        grants: req.plan.grants.clone(),
        amount: req.plan.price,
        currency: Currency::Cny,
        provider: req.provider,
        channel: req.channel,
        status: OrderStatus::Pending,
        payment_json: None,
        late_payment: false,
        refunded: Fen::ZERO,
        refund_pending: Fen::ZERO,
        expires_at: to_millis(expires_at),
        paid_at: None,
        closed_at: None,
        created_at: now_ms,
        updated_at: now_ms,
    };
    let pool = deps.db.pool();
    if let Err(e) = orders::insert(deps.db, &order).await {
        let _ = idempotency::release(pool, claim.api_key_id, claim.key).await;
        return Err(e.into());
    }
    let payment = NewPayment {
        order_no: order.order_no.clone(),
        amount: order.amount,
        channel: order.channel,
        description: deps.orders.description.clone(),
        expires_at,
        payer: req.payer,
        return_url: req
            .return_url
            .as_ref()
            .or(deps.checkout.return_url.as_ref())
            .map(|r| r.render(&order.order_no)),
    };
    let instructions = match provider.create(&payment).await {
        Ok(i) => i,
        Err(e) => {
            orders::delete_unaccepted(pool, &order.order_no).await?;
            idempotency::release(pool, claim.api_key_id, claim.key).await?;
            let reason = match e {
                ProviderError::Unavailable(_) => "provider_unavailable",
                ProviderError::Rejected(_) => "provider_rejected",
            };
            telemetry::order_create_failed(req.provider.as_str(), reason);
            return Err(CheckoutError::Provider(e));
        }
    };
    let payment_json = serde_json::Value::Object(instructions);
    let set_payment = orders::set_payment_json(&order.order_no, &payment_json, now_ms);
    order.payment_json = Some(payment_json);
    let body = render(&order);
    deps.db
        .write_all(vec![
            set_payment,
            idempotency::complete_statement(claim.api_key_id, claim.key, 201, body.clone()),
        ])
        .await?;
    tracing::info!(order_no = %order.order_no, provider = %order.provider, channel = order.channel.as_str(), "order created");
    telemetry::order_created(order.provider.as_str(), order.channel.as_str());
    Ok((order, body))
}

/// Cancels an unpaid order: the query-then-close of [`lifecycle::query_then_close`]. Answers
/// the order afterwards: `closed`, or paid (settled) when the buyer had paid.
pub async fn cancel(deps: &Deps<'_>, no: &OrderNo) -> Result<OrderRow, CheckoutError> {
    let order = orders::get(deps.db.pool(), no)
        .await?
        .ok_or(CheckoutError::UnknownOrder)?;
    if order.status == OrderStatus::Pending {
        let provider = provider(deps.providers, order.provider)?;
        lifecycle::query_then_close(&deps.tail(), provider.as_ref(), no, CloseReason::Cancelled)
            .await?;
    }
    orders::get(deps.db.pool(), no)
        .await?
        .ok_or(CheckoutError::UnknownOrder)
}

/// `POST /v1/orders/{no}/return-check`: the buyer's browser came back from the provider.
/// The return itself is never proof of payment: what it carries is verified (Alipay's signed
/// query must name this order, amount and app), and then the provider is asked, and a payment
/// it reports settles through the one settlement path. A refused return changes nothing.
pub async fn return_check(
    deps: &Deps<'_>,
    no: &OrderNo,
    query: &[u8],
) -> Result<OrderRow, CheckoutError> {
    let order = orders::get(deps.db.pool(), no)
        .await?
        .ok_or(CheckoutError::UnknownOrder)?;
    let provider = provider(deps.providers, order.provider)?;
    let returned = ReturnOrder {
        order_no: no,
        amount: order.amount,
        channel: order.channel,
    };
    provider
        .verify_return(returned, query)
        .map_err(CheckoutError::ReturnRefused)?;
    // A closed order may still have been paid just before it closed: the query honours that
    // as a late payment, like any other report.
    if matches!(order.status, OrderStatus::Pending | OrderStatus::Closed) {
        settlement::query_and_settle(&deps.tail(), provider.as_ref(), no).await?;
    }
    orders::get(deps.db.pool(), no)
        .await?
        .ok_or(CheckoutError::UnknownOrder)
}
