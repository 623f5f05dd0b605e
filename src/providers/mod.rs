//! The gateway's view of a payment provider: one trait, one implementation per provider
//! crate, registered by id. Adding a provider is one adapter here and one line in `build`.

pub mod alipay;
pub mod wechatpay;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;

use crate::domain::{Channel, Fen, OrderNo, ProviderId};
use crate::settle::PaidTrade;

/// What leaves for a provider when an order is created: the order number, the amount, and the
/// neutral description — nothing about the employer or the plan (design.md §1).
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub order_no: OrderNo,
    pub amount: Fen,
    pub channel: Channel,
    pub description: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub payer: PayerHints,
}

/// What a channel makes mandatory about the payer (design.md §1, the only exceptions): WeChat
/// JSAPI's `payer.openid` and H5's `payer_client_ip`. Passed through for the one create request,
/// never stored, never logged (`Debug` shows only whether a value is present).
#[derive(Clone, Default)]
pub struct PayerHints {
    pub openid: Option<String>,
    pub client_ip: Option<String>,
}

impl std::fmt::Debug for PayerHints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayerHints")
            .field("openid", &self.openid.as_ref().map(|_| "<redacted>"))
            .field("client_ip", &self.client_ip.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How the buyer's client pays, by channel; serialised as the order's `payment` object.
pub type PaymentInstructions = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Unreachable, timing out, 5xx: retry later with the same parameters.
    #[error("provider unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The provider said no, or answered something we must not trust.
    #[error("provider rejected the request")]
    Rejected(#[source] anyhow::Error),
}

/// The provider's view of one order, from an (already verified) query.
#[derive(Debug, Clone)]
pub enum TradeStatus {
    Pending,
    Paid(PaidTrade),
    Closed,
    Refunded,
    Unknown(String),
}

/// Why a callback was not accepted; answered with a non-success body.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("callback failed verification: {0}")]
    Unverified(String),
    #[error("callback does not match our merchant or order: {0}")]
    Mismatch(String),
    #[error("temporary failure")]
    Temporary(#[source] anyhow::Error),
}

/// A verified callback.
#[derive(Debug)]
pub enum Callback {
    Paid(PaidTrade),
    /// Verified but not about a settled payment (another event type or state): acknowledge.
    Ignored(String),
}

#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    fn id(&self) -> ProviderId;
    fn supports(&self, channel: Channel) -> bool;
    async fn create(&self, payment: &NewPayment) -> Result<PaymentInstructions, ProviderError>;
    async fn query(&self, order_no: &OrderNo) -> Result<TradeStatus, ProviderError>;
    async fn close(&self, order_no: &OrderNo) -> Result<(), ProviderError>;
    /// Verifies a callback over its raw bytes and returns only what the gateway keeps.
    async fn verify_callback(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Callback, CallbackError>;
    /// The provider's success or failure answer.
    fn answer(&self, outcome: &Result<(), CallbackError>) -> Response;
    /// Fetches the provider's current platform keys where it publishes them (WeChat Pay's
    /// certificate mode); answers how many keys are now known. Nothing to do by default.
    async fn refresh_keys(&self) -> anyhow::Result<usize> {
        Ok(0)
    }
}

#[derive(Clone, Default)]
pub struct Registry {
    providers: HashMap<ProviderId, Arc<dyn PaymentProvider>>,
}

impl Registry {
    /// Registers `provider`; every call it makes to its provider is timed for `/metrics`.
    pub fn register(&mut self, provider: Arc<dyn PaymentProvider>) {
        self.providers
            .insert(provider.id(), Arc::new(Measured { inner: provider }));
    }

    pub fn get(&self, id: ProviderId) -> Option<&Arc<dyn PaymentProvider>> {
        self.providers.get(&id)
    }
}

/// Times every call to the provider (create, query, close, key refresh) by outcome, so an
/// operator sees a slow or failing provider before the orders pile up.
struct Measured {
    inner: Arc<dyn PaymentProvider>,
}

impl Measured {
    async fn timed<T>(
        &self,
        call: &'static str,
        f: impl std::future::Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = std::time::Instant::now();
        let result = f.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ProviderError::Unavailable(_)) => "unavailable",
            Err(ProviderError::Rejected(_)) => "rejected",
        };
        crate::telemetry::provider_call(self.inner.id().as_str(), call, outcome, started.elapsed());
        result
    }
}

#[async_trait::async_trait]
impl PaymentProvider for Measured {
    fn id(&self) -> ProviderId {
        self.inner.id()
    }

    fn supports(&self, channel: Channel) -> bool {
        self.inner.supports(channel)
    }

    async fn create(&self, payment: &NewPayment) -> Result<PaymentInstructions, ProviderError> {
        self.timed("create", self.inner.create(payment)).await
    }

    async fn query(&self, order_no: &OrderNo) -> Result<TradeStatus, ProviderError> {
        self.timed("query", self.inner.query(order_no)).await
    }

    async fn close(&self, order_no: &OrderNo) -> Result<(), ProviderError> {
        self.timed("close", self.inner.close(order_no)).await
    }

    async fn verify_callback(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Callback, CallbackError> {
        self.inner.verify_callback(headers, body).await
    }

    fn answer(&self, outcome: &Result<(), CallbackError>) -> Response {
        self.inner.answer(outcome)
    }

    async fn refresh_keys(&self) -> anyhow::Result<usize> {
        self.inner.refresh_keys().await
    }
}
