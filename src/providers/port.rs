//! The port every provider adapter implements: [`PaymentProvider`], and the types that cross
//! it (what leaves for a provider, what it reports back, why a callback or return is refused).

use axum::http::HeaderMap;
use axum::response::Response;

use crate::domain::bill::{BillEntry, BillTotals};
use crate::domain::{Channel, Fen, OrderNo, ProviderId};
use crate::providers::BillError;
use crate::providers::PaidTrade;
use crate::providers::bounds::{BillSink, Bounds};
use crate::providers::{RefundFailure, RefundReport};

/// What leaves for a provider when an order is created: the order number, the amount, and the
/// neutral description — nothing about the employer or the plan (DESIGN.md §1).
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub order_no: OrderNo,
    pub amount: Fen,
    pub channel: Channel,
    pub description: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub payer: PayerHints,
    /// Where the buyer's browser goes back after paying (Alipay page/wap `return_url`, WeChat
    /// H5 `redirect_url`): the rendered `[checkout]` template or the order's own, carrying the
    /// order number only. Channels without a browser leave it unused.
    pub return_url: Option<String>,
}

/// What a channel makes mandatory about the payer (DESIGN.md §1, the only exceptions): WeChat
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
    /// Paid, then refunded in full (WeChat `REFUND`; Alipay `TRADE_CLOSED` with a payment
    /// date): the payment is real and settles first, then the refund is recorded.
    Refunded(PaidTrade),
    Unknown(String),
}

/// What leaves for a provider when paygate refunds: the order number, the refund number, the
/// amounts and a neutral reason (DESIGN.md §1).
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub order_no: OrderNo,
    /// `out_refund_no` (WeChat) / `out_request_no` (Alipay): the refund's idempotency key there.
    pub refund_no: String,
    pub amount: Fen,
    /// The order's paid total.
    pub total: Fen,
    pub reason: Option<String>,
}

/// Where one refund stands at the provider, from a verified answer.
#[derive(Debug, Clone)]
pub enum RefundState {
    /// The money went back. `at` is the provider's time when its answer gives one.
    Succeeded {
        amount: Fen,
        provider_refund_id: Option<String>,
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Accepted, not final yet: ask again later.
    Processing { provider_refund_id: Option<String> },
    /// It will not go back (or not without the merchant): final for paygate.
    Failed(RefundFailure),
    /// The provider has no refund of that number: it never arrived.
    NotFound,
}

/// Why a callback was not accepted; answered with a non-success body. Each variant keeps its
/// cause, so the one log line of a refused callback carries the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// Signature, window, serial, decryption or the message's own form.
    #[error("callback failed verification")]
    Unverified(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Verified, but not about our merchant, or not a payment of the order it names.
    #[error("callback does not match our merchant or order")]
    Mismatch(#[source] Mismatch),
    #[error("temporary failure")]
    Temporary(#[source] anyhow::Error),
}

impl CallbackError {
    pub fn unverified(cause: impl std::error::Error + Send + Sync + 'static) -> CallbackError {
        CallbackError::Unverified(Box::new(cause))
    }
}

/// What about a verified message does not fit: a typed reason, never a string to parse.
#[derive(Debug, thiserror::Error)]
pub enum Mismatch {
    /// A merchant or order identifier that is not one of ours (`mchid`, `appid`, `app_id`,
    /// `seller_id`, `out_trade_no`).
    #[error("{0} is not ours")]
    NotOurs(&'static str),
    /// A field the message must carry is missing or out of range.
    #[error("{0}")]
    Malformed(&'static str),
    /// A state that settles nothing where a payment was announced.
    #[error("{what} {state} does not settle")]
    DoesNotSettle { what: &'static str, state: String },
    /// The settlement refused the report (amount, provider, another transaction, a refund that
    /// does not fit): its error is the cause.
    #[error("the report does not fit the order")]
    Order(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<Mismatch> for CallbackError {
    fn from(m: Mismatch) -> CallbackError {
        CallbackError::Mismatch(m)
    }
}

/// The order a browser return is checked against.
#[derive(Debug, Clone, Copy)]
pub struct ReturnOrder<'a> {
    pub order_no: &'a OrderNo,
    pub amount: Fen,
    pub channel: Channel,
}

/// Why a browser return was refused: it changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReturnError {
    #[error("the return query does not verify: {0}")]
    Unverified(String),
    #[error("the return query does not match the order: {0}")]
    Mismatch(String),
    #[error("{0}")]
    NotExpected(&'static str),
}

/// A verified callback.
#[derive(Debug)]
pub enum Callback {
    Paid(PaidTrade),
    /// A refund went back, or failed (WeChat `REFUND.*`; Alipay `trade_status_sync` carrying
    /// `refund_fee`).
    Refund(RefundReport),
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
    /// Asks for a refund. Sent once: an error leaves the outcome unknown, and it is resolved by
    /// [`PaymentProvider::refund_query`], never by asking again under a new number. A
    /// definite, verified refusal is `Ok(RefundState::Failed(Refused(code)))`.
    async fn refund(&self, refund: &NewRefund) -> Result<RefundState, ProviderError>;
    /// Where refund `refund_no` of `order_no` stands.
    async fn refund_query(
        &self,
        order_no: &OrderNo,
        refund_no: &str,
    ) -> Result<RefundState, ProviderError>;
    /// Downloads the trade bill of `date` (an Asia/Shanghai day) into `sink` (which refuses to
    /// grow past `max_bill_bytes`) and checks what can be checked before reading (WeChat's
    /// SHA-1, decompressed through `sink.bounds()`). `NotReady` when the provider has none yet.
    async fn download_bill(
        &self,
        date: chrono::NaiveDate,
        sink: &mut BillSink,
    ) -> Result<(), BillError>;
    /// Reads a downloaded bill row by row into `each` (false stops), dropping payer columns;
    /// answers the totals of the entries read once the file's own totals checked out. The
    /// decompressed stream goes through `bounds.reader` (size, lines, cancellation).
    /// Blocking: run it on a blocking thread.
    fn read_bill(
        &self,
        file: std::fs::File,
        bounds: &Bounds,
        each: &mut dyn FnMut(BillEntry) -> bool,
    ) -> Result<BillTotals, BillError>;
    /// Verifies a callback over its raw bytes and returns only what the gateway keeps.
    async fn verify_callback(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Callback, CallbackError>;
    /// The provider's success or failure answer.
    fn answer(&self, outcome: &Result<(), CallbackError>) -> Response;
    /// Checks what the provider appended when it sent the buyer's browser back (Alipay's
    /// signed synchronous return query) against the order. Never proof of payment: the caller
    /// asks the provider afterwards.
    fn verify_return(&self, order: ReturnOrder<'_>, query: &[u8]) -> Result<(), ReturnError>;
    /// Fetches the provider's current platform keys where it publishes them (WeChat Pay's
    /// certificate mode); answers how many keys are now known. Nothing to do by default.
    async fn refresh_keys(&self) -> anyhow::Result<usize> {
        Ok(0)
    }
}
