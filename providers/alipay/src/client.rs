//! The thin HTTP part: build with the pure core, POST, verify with the pure core.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use tracing::Instrument;

use crate::bill::{BillUrl, bill_download_url_request, read_bill_download_url_response};
use crate::keys::{Signer, Verifier};
use crate::request::{
    OrderChannel, OrderRequest, RefundRequest, RequestError, SignedRequest, TradeCall,
    order_request, refund_query_request, refund_request, trade_request,
};
use crate::response::{
    ApiError, CloseResponse, PrecreateResponse, QueryResponse, RefundQueryResponse, RefundResponse,
    ResponseError, read_close_response, read_precreate_response, read_query_response,
    read_refund_query_response, read_refund_response,
};

/// The instant requests are stamped with (injected, so tests can fix it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=utf-8";

/// A failed call. [`Error::is_unavailable`] splits "try again later" from "Alipay said no".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("request not sent")]
    Request(#[from] RequestError),
    #[error("could not reach alipay")]
    Transport(#[source] reqwest::Error),
    #[error("alipay answered HTTP {0}")]
    Http(u16),
    #[error("alipay's answer is not UTF-8")]
    Encoding,
    #[error("alipay's answer was not accepted")]
    Response(#[source] ResponseError),
    #[error("writing the downloaded bill failed")]
    Sink(#[source] std::io::Error),
    #[error(transparent)]
    Api(ApiError),
}

impl From<ResponseError> for Error {
    fn from(error: ResponseError) -> Error {
        match error {
            ResponseError::Api(api) => Error::Api(api),
            other => Error::Response(other),
        }
    }
}

impl Error {
    /// Transport failures, HTTP 5xx and Alipay's "unknown error, retry" codes: the outcome is
    /// unknown and asking again (or querying) may help. Everything else is a rejection.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Http(status) => *status >= 500,
            Error::Api(api) => api.is_unavailable(),
            Error::Request(_) | Error::Encoding | Error::Response(_) | Error::Sink(_) => false,
        }
    }

    /// The Alipay API error, when Alipay answered with a code other than 10000.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(api) => Some(api),
            _ => None,
        }
    }
}

/// How queries, closes and refund queries are retried when Alipay is unavailable: the one
/// policy of both provider clients (back-off with full jitter and a cap on delay and attempts).
/// Creates (orders, refunds) are never retried here: the caller decides, after a query,
/// whether a new attempt is safe.
pub use paygate_retry::RetryPolicy;

impl paygate_retry::Transient for Error {
    /// Alipay documents no `Retry-After`; only [`Error::is_unavailable`] decides.
    fn is_transient(&self) -> bool {
        self.is_unavailable()
    }
}

/// An Alipay merchant app talking to one gateway.do.
pub struct Client {
    http: reqwest::Client,
    gateway_url: String,
    app_id: String,
    signer: Arc<Signer>,
    alipay_public_key: Arc<Verifier>,
    clock: Clock,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("gateway_url", &self.gateway_url)
            .field("app_id", &self.app_id)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `gateway_url` is the full gateway.do URL (production, Alipay's sandbox or ours).
    pub fn new(
        http: reqwest::Client,
        gateway_url: impl Into<String>,
        app_id: impl Into<String>,
        signer: Arc<Signer>,
        alipay_public_key: Arc<Verifier>,
        clock: Clock,
    ) -> Client {
        Client {
            http,
            gateway_url: gateway_url.into(),
            app_id: app_id.into(),
            signer,
            alipay_public_key,
            clock,
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// `alipay.trade.precreate`: the QR code for the buyer to scan. Sent once; on an
    /// unavailable error, query before creating again.
    pub async fn precreate(&self, order: &OrderRequest) -> Result<PrecreateResponse, Error> {
        let request = self.order(OrderChannel::Precreate, order)?;
        let raw = self.post(&request).await?;
        Ok(read_precreate_response(
            &raw,
            &self.alipay_public_key,
            &order.out_trade_no,
        )?)
    }

    /// `alipay.trade.query`, retried while Alipay is unavailable.
    pub async fn query(&self, out_trade_no: &str) -> Result<QueryResponse, Error> {
        self.with_retries(
            Some(out_trade_no),
            |now| {
                trade_request(
                    TradeCall::Query,
                    &self.app_id,
                    &self.signer,
                    out_trade_no,
                    now,
                )
            },
            |raw| read_query_response(raw, &self.alipay_public_key, out_trade_no),
        )
        .await
    }

    /// `alipay.trade.close`, retried while Alipay is unavailable. Closing a trade that is
    /// already closed, or that Alipay never created, comes back as an [`ApiError`].
    pub async fn close(&self, out_trade_no: &str) -> Result<CloseResponse, Error> {
        self.with_retries(
            Some(out_trade_no),
            |now| {
                trade_request(
                    TradeCall::Close,
                    &self.app_id,
                    &self.signer,
                    out_trade_no,
                    now,
                )
            },
            |raw| read_close_response(raw, &self.alipay_public_key, out_trade_no),
        )
        .await
    }

    /// `alipay.trade.refund` of `refund_fen` (this refund, not the total) from our paid order
    /// `out_trade_no`, numbered `out_request_no`. Sent once, like a create.
    ///
    /// Posting the same `out_request_no` again is safe at Alipay: a refund already made is not
    /// made twice but answered 10000 with `fund_change=N` and the unchanged cumulative
    /// `refund_fee`. So after an unavailable error, or a `fund_change=N`, either ask
    /// [`Client::refund_query`] or post the same refund again; never a new `out_request_no` for
    /// the same refund. `reason` must be a neutral text (see [`RefundRequest::refund_reason`]).
    pub async fn refund(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
        refund_fen: i64,
        reason: Option<&str>,
    ) -> Result<RefundResponse, Error> {
        let refund = RefundRequest {
            out_trade_no: out_trade_no.to_owned(),
            out_request_no: out_request_no.to_owned(),
            refund_fen,
            refund_reason: reason.map(str::to_owned),
        };
        let request = refund_request(&self.app_id, &self.signer, &refund, (self.clock)())?;
        let raw = self.post(&request).await?;
        Ok(read_refund_response(
            &raw,
            &self.alipay_public_key,
            out_trade_no,
        )?)
    }

    /// `alipay.trade.fastpay.refund.query` of refund `out_request_no` of `out_trade_no`,
    /// retried while Alipay is unavailable. alipay.md: ask no sooner than 10 s after the refund.
    pub async fn refund_query(
        &self,
        out_trade_no: &str,
        out_request_no: &str,
    ) -> Result<RefundQueryResponse, Error> {
        self.with_retries(
            Some(out_trade_no),
            |now| {
                refund_query_request(
                    &self.app_id,
                    &self.signer,
                    out_trade_no,
                    out_request_no,
                    now,
                )
            },
            |raw| {
                read_refund_query_response(
                    raw,
                    &self.alipay_public_key,
                    out_trade_no,
                    out_request_no,
                )
            },
        )
        .await
    }

    /// Where to download the `trade` bill of `bill_date` (a Beijing date, at the earliest
    /// yesterday): `alipay.data.dataservice.bill.downloadurl.query`, retried while Alipay is
    /// unavailable. A bill not there yet is an [`ApiError`] with
    /// [`ApiError::is_bill_not_exist`]. The URL is good for 30 seconds: download it at once with
    /// [`Client::download_bill`].
    pub async fn bill_download_url(&self, bill_date: NaiveDate) -> Result<BillUrl, Error> {
        self.with_retries(
            None,
            |now| bill_download_url_request(&self.app_id, &self.signer, bill_date, now),
            |raw| read_bill_download_url_response(raw, &self.alipay_public_key),
        )
        .instrument(tracing::info_span!("alipay_bill", %bill_date))
        .await
    }

    /// Downloads a bill (the ZIP) from `url` into `sink`, chunk by chunk as it arrives, never
    /// the whole file in memory; returns the bytes written. A plain GET: the URL carries its
    /// own token and expiry. Anything but a 2xx (an expired URL, for one) is [`Error::Http`].
    /// Not retried: the sink already holds part of a failed download, and a new attempt needs
    /// a fresh URL anyway. Neither the URL nor the bytes are logged, and transport errors are
    /// returned without the URL (its token opens the bill).
    pub async fn download_bill(
        &self,
        url: &str,
        sink: &mut (impl std::io::Write + ?Sized),
    ) -> Result<u64, Error> {
        let url = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or(Error::Request(RequestError::BillUrl))?;
        let transport = |e: reqwest::Error| Error::Transport(e.without_url());
        let mut response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Http(status.as_u16()));
        }
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            sink.write_all(&chunk).map_err(Error::Sink)?;
            written += chunk.len() as u64;
        }
        sink.flush().map_err(Error::Sink)?;
        Ok(written)
    }

    /// The signed `alipay.trade.page.pay` URL the desktop browser opens (no server call).
    pub fn page_pay_url(&self, order: &OrderRequest) -> Result<String, Error> {
        Ok(self
            .order(OrderChannel::PagePay, order)?
            .browser_url(&self.gateway_url))
    }

    /// The signed `alipay.trade.wap.pay` URL the mobile browser opens (no server call).
    pub fn wap_pay_url(&self, order: &OrderRequest) -> Result<String, Error> {
        Ok(self
            .order(OrderChannel::WapPay, order)?
            .browser_url(&self.gateway_url))
    }

    /// The signed `alipay.trade.app.pay` order string for the mobile SDK (no server call).
    pub fn app_order_string(&self, order: &OrderRequest) -> Result<String, Error> {
        Ok(self.order(OrderChannel::AppPay, order)?.order_string())
    }

    fn order(&self, channel: OrderChannel, order: &OrderRequest) -> Result<SignedRequest, Error> {
        Ok(order_request(
            channel,
            &self.app_id,
            &self.signer,
            order,
            (self.clock)(),
        )?)
    }

    /// Calls that change nothing (or nothing twice), retried while Alipay is unavailable. Each
    /// retry is logged with the method and, for a call about an order, its number.
    async fn with_retries<T>(
        &self,
        out_trade_no: Option<&str>,
        build: impl Fn(DateTime<Utc>) -> Result<SignedRequest, RequestError>,
        read: impl Fn(&str) -> Result<T, ResponseError>,
    ) -> Result<T, Error> {
        // The method of the request, for the retry log line (the same on every attempt).
        let method = std::sync::OnceLock::<&'static str>::new();
        self.retry
            .run(
                |_| async {
                    // Signed afresh each time: the timestamp is part of the signature.
                    let request = build((self.clock)())?;
                    method.get_or_init(|| request.method());
                    let raw = self.post(&request).await?;
                    read(&raw).map_err(Error::from)
                },
                |error, attempt, delay| {
                    tracing::warn!(
                        method = method.get().copied(),
                        out_trade_no,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "alipay unavailable, retrying"
                    );
                },
            )
            .await
    }

    async fn post(&self, request: &SignedRequest) -> Result<String, Error> {
        let response = self
            .http
            .post(&self.gateway_url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(request.form_body())
            .send()
            .await
            .map_err(Error::Transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Http(status.as_u16()));
        }
        let bytes = response.bytes().await.map_err(Error::Transport)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::Encoding)
    }
}
