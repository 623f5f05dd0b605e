//! The [`Registry`] of configured providers by id; each call through it is timed for
//! `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;

use super::port::{
    Callback, CallbackError, NewPayment, NewRefund, PaymentInstructions, PaymentProvider,
    ProviderError, RefundState, ReturnError, ReturnOrder, TradeStatus,
};
use crate::domain::{Channel, OrderNo, ProviderId};
use crate::reconcile::bill::{BillEntry, BillError, BillTotals};
use crate::reconcile::bounds::{BillSink, Bounds};

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

    async fn refund(&self, refund: &NewRefund) -> Result<RefundState, ProviderError> {
        self.timed("refund", self.inner.refund(refund)).await
    }

    async fn refund_query(
        &self,
        order_no: &OrderNo,
        refund_no: &str,
    ) -> Result<RefundState, ProviderError> {
        self.timed("refund_query", self.inner.refund_query(order_no, refund_no))
            .await
    }

    async fn download_bill(
        &self,
        date: chrono::NaiveDate,
        sink: &mut BillSink,
    ) -> Result<(), BillError> {
        let started = std::time::Instant::now();
        let result = self.inner.download_bill(date, sink).await;
        let outcome = match &result {
            Ok(()) => "ok",
            Err(BillError::NotReady) => "not_ready",
            Err(BillError::Unavailable(_)) => "unavailable",
            Err(_) => "rejected",
        };
        crate::telemetry::provider_call(
            self.inner.id().as_str(),
            "bill",
            outcome,
            started.elapsed(),
        );
        result
    }

    fn read_bill(
        &self,
        file: std::fs::File,
        bounds: &Bounds,
        each: &mut dyn FnMut(BillEntry) -> bool,
    ) -> Result<BillTotals, BillError> {
        self.inner.read_bill(file, bounds, each)
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

    fn verify_return(&self, order: ReturnOrder<'_>, query: &[u8]) -> Result<(), ReturnError> {
        self.inner.verify_return(order, query)
    }

    async fn refresh_keys(&self) -> anyhow::Result<usize> {
        self.inner.refresh_keys().await
    }
}
