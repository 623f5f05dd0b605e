//! A thin reqwest client: signs each request over the exact bytes it sends, verifies every
//! response (signature, window, serial) before reading a byte of it as JSON, and retries only
//! what is safe to repeat.

use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::NaiveDate;
use reqwest::header::HeaderValue;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, USER_AGENT};
use reqwest::{Method, RequestBuilder, Url};

use crate::certificates::{CertificateError, decrypt_certificates};
use crate::cipher::ApiV3Key;
use crate::model::{
    AppOrderRequest, BillDownload, CertificatesResponse, CloseRequest, ErrorBody, H5OrderRequest,
    H5OrderResponse, JsapiOrderRequest, NativeOrderRequest, NativeOrderResponse, PrepayResponse,
    Refund, RefundRequest, Transaction,
};
use crate::sign::{MerchantCredentials, new_nonce};
use crate::verify::{
    HEADER_SERIAL, HEADER_SIGNATURE, PlatformKeys, SignatureHeaders, VerifyError, verify_signed,
};

/// Unix seconds now. Injected so that tests and the sandbox can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// WeChat answers 400 `INVALID_REQUEST` to a request without one.
const DEFAULT_USER_AGENT: &str = concat!("paygate-wechatpay/", env!("CARGO_PKG_VERSION"));

/// At most this much of an (unsigned) error answer to a bill download is read, for its code.
const MAX_DOWNLOAD_ERROR_BODY: usize = 64 * 1024;

/// How queries, closes and bill downloads are repeated while WeChat is unavailable: the one
/// policy of both provider clients (back-off with full jitter, `Retry-After` honoured). Creating
/// an order is never repeated blindly: the caller decides (re-posting identical parameters is
/// WeChat's own idempotent path, and the gateway knows whether its parameters are still
/// identical).
pub use paygate_retry::RetryPolicy;

/// What went wrong talking to WeChat Pay.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("transport error talking to WeChat Pay")]
    Transport(#[source] reqwest::Error),
    #[error("WeChat Pay answered {status} {code}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// The answer's `Retry-After` in seconds, if it had one (429, 503).
        retry_after: Option<Duration>,
    },
    #[error("WeChat Pay response failed verification: {0}")]
    Verify(VerifyError),
    #[error("WeChat Pay response is not the expected JSON")]
    Decode(#[source] serde_json::Error),
    #[error("WeChat Pay answered an unexpected status {0}")]
    UnexpectedStatus(u16),
    /// A `/v3/certificates` answer signed by a serial we do not yet trust, whose certificates
    /// did not decrypt and load (so its signature could not be checked either).
    #[error("WeChat Pay platform certificates: {0}")]
    Certificates(#[source] CertificateError),
    /// A bill's `download_url` that is not an absolute http(s) URL. The URL is not quoted: its
    /// query is a download token.
    #[error("WeChat Pay bill download_url is not an absolute http(s) URL")]
    DownloadUrl,
    /// Writing a downloaded bill into the caller's sink failed; what was written is incomplete.
    #[error("writing the downloaded bill failed")]
    Sink(#[source] std::io::Error),
}

impl ClientError {
    /// WeChat could not be reached or is failing (transport, 5xx, 429): try again later with the
    /// same parameters. Anything else is a rejection or a response we must not trust.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Api { status, .. } => *status >= 500 || *status == 429,
            ClientError::Verify(_)
            | ClientError::Decode(_)
            | ClientError::UnexpectedStatus(_)
            | ClientError::Certificates(_)
            | ClientError::DownloadUrl
            | ClientError::Sink(_) => false,
        }
    }

    /// WeChat has no trade bill for that date yet: `NO_STATEMENT_EXIST` (not generated yet, or
    /// nothing to bill) or `STATEMENT_CREATING` (being generated). Bills are ready after about
    /// 10:00 Beijing time the next day: ask again later rather than treat it as a failure.
    pub fn is_bill_not_ready(&self) -> bool {
        matches!(
            self.api_code(),
            Some("NO_STATEMENT_EXIST" | "STATEMENT_CREATING")
        )
    }

    /// The WeChat error code (`ORDER_NOT_EXIST`, `OUT_TRADE_NO_USED`, …), if WeChat answered one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }
}

impl paygate_retry::Transient for ClientError {
    /// Transport errors, 5xx and 429: the same request (signed afresh) may succeed.
    fn is_transient(&self) -> bool {
        self.is_unavailable()
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A response's `Retry-After` (delay-seconds only).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(paygate_retry::parse_retry_after)
}

/// How a response is checked before a byte of it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Signed by a key we already trust (the usual case).
    Known,
    /// `/v3/certificates`: a key we already trust, or else one of the certificates in this very
    /// answer that decrypts under the APIv3 key (first download, or WeChat already signing with
    /// a newly rotated certificate).
    KnownOrListedCertificate,
}

/// A verified response.
struct Verified {
    status: u16,
    body: bytes::Bytes,
}

/// The WeChat Pay APIv3 client of one merchant.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api_base: String,
    creds: Arc<MerchantCredentials>,
    platform: Arc<RwLock<PlatformKeys>>,
    clock: Clock,
    retry: RetryPolicy,
    user_agent: String,
    /// Only for verifying `/v3/certificates` answers signed by a certificate not yet trusted.
    apiv3_key: Option<ApiV3Key>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_base", &self.api_base)
            .field("mchid", &self.creds.mchid)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `api_base` is `https://api.mch.weixin.qq.com` (or the sandbox's
    /// `{public_url}/sandbox/wechatpay`); the signed canonical URL is the part after it
    /// (`/v3/...`). `platform` may be updated at runtime (certificate rotation).
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        creds: Arc<MerchantCredentials>,
        platform: Arc<RwLock<PlatformKeys>>,
        clock: Clock,
    ) -> Client {
        Client {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            creds,
            platform,
            clock,
            retry: RetryPolicy::default(),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            apiv3_key: None,
        }
    }

    /// Lets [`Client::certificates`] accept an answer signed by a certificate it lists but that
    /// is not yet in the platform keys (see there). Without it, only trusted keys verify.
    pub fn with_apiv3_key(mut self, apiv3_key: ApiV3Key) -> Client {
        self.apiv3_key = Some(apiv3_key);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Client {
        self.user_agent = user_agent.into();
        self
    }

    pub fn mchid(&self) -> &str {
        &self.creds.mchid
    }

    /// `POST /v3/pay/transactions/native`. Sent once: a transport error leaves it unknown
    /// whether WeChat created the order, and the caller decides whether to re-post.
    pub async fn native_order(
        &self,
        request: &NativeOrderRequest,
    ) -> Result<NativeOrderResponse, ClientError> {
        self.create("/v3/pay/transactions/native", request).await
    }

    /// `POST /v3/pay/transactions/jsapi` → `prepay_id`, for `jsapi_pay_params`. Sent once, as
    /// [`Client::native_order`]. The request carries `payer.openid`; it is never logged here.
    pub async fn jsapi_order(
        &self,
        request: &JsapiOrderRequest,
    ) -> Result<PrepayResponse, ClientError> {
        self.create("/v3/pay/transactions/jsapi", request).await
    }

    /// `POST /v3/pay/transactions/h5` → `h5_url`. Sent once, as [`Client::native_order`]. The
    /// request carries the payer's IP; it is never logged here.
    pub async fn h5_order(&self, request: &H5OrderRequest) -> Result<H5OrderResponse, ClientError> {
        self.create("/v3/pay/transactions/h5", request).await
    }

    /// `POST /v3/pay/transactions/app` → `prepay_id`, for `app_pay_params`. Sent once, as
    /// [`Client::native_order`].
    pub async fn app_order(
        &self,
        request: &AppOrderRequest,
    ) -> Result<PrepayResponse, ClientError> {
        self.create("/v3/pay/transactions/app", request).await
    }

    /// One creation (order or refund): signed, sent once, verified, parsed.
    async fn create<Req, Resp>(&self, path: &str, request: &Req) -> Result<Resp, ClientError>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
    {
        let body = serde_json::to_vec(request).map_err(ClientError::Decode)?;
        let response = self
            .send(Method::POST, path, Some(body), Trust::Known)
            .await?;
        json_of(response)
    }

    /// `GET /v3/certificates` (platform certificate mode), retried like a query. Decrypt the
    /// answer with [`crate::decrypt_certificates`].
    ///
    /// The answer's signature is checked before anything else is believed, in this order
    /// (wechatpay-v3.md §2: "verify with the key selected by `Wechatpay-Serial`"):
    /// 1. the serial is a key we already trust: verified with it, as any answer;
    /// 2. otherwise, with [`Client::with_apiv3_key`] set and a 2xx answer: every certificate in
    ///    the answer must decrypt under the APIv3 key (AES-GCM authenticates it, so it is
    ///    WeChat's) with its own serial equal to its `serial_no`, the signing serial must be
    ///    one of them, and the signature must verify with that certificate, within the same
    ///    5-minute window. This is how a first download, and a download just after WeChat
    ///    rotated its key, can be checked at all;
    /// 3. anything else is refused (`Verify(UnknownSerial)`), never returned unverified.
    pub async fn certificates(&self) -> Result<CertificatesResponse, ClientError> {
        let response = self
            .send_with_retries(
                Method::GET,
                "/v3/certificates",
                None,
                Trust::KnownOrListedCertificate,
            )
            .await?;
        json_of(response)
    }

    /// `GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…`, retried on transport
    /// errors and 5xx. An unknown order is `Api { status: 404, code: "ORDER_NOT_EXIST" }`.
    pub async fn query_by_out_trade_no(
        &self,
        out_trade_no: &str,
    ) -> Result<Transaction, ClientError> {
        let url = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            encode_segment(out_trade_no),
            encode_segment(&self.creds.mchid)
        );
        let response = self
            .send_with_retries(Method::GET, &url, None, Trust::Known)
            .await?;
        json_of(response)
    }

    /// `POST /v3/refund/domestic/refunds` → the refund, usually `PROCESSING` (accepted, not yet
    /// paid out: the outcome comes as a `REFUND.*` notification or from
    /// [`Client::refund_by_out_refund_no`]).
    ///
    /// Sent once, like an order create: a transport error or 5xx leaves it unknown whether
    /// WeChat accepted it. WeChat refunds one `out_refund_no` once, so the caller may re-post
    /// the same request (same number, identical parameters) to learn the answer; a re-post with
    /// other parameters is refused. Unpaid or unknown order: `Api { status: 404 }`; more than
    /// is left to refund: `Api { status: 403, code: "NOT_ENOUGH" }` in the sandbox.
    pub async fn refund(&self, request: &RefundRequest) -> Result<Refund, ClientError> {
        self.create("/v3/refund/domestic/refunds", request).await
    }

    /// `GET /v3/refund/domestic/refunds/{out_refund_no}`, retried on transport errors and 5xx
    /// like [`Client::query_by_out_trade_no`]. An unknown number is `Api { status: 404,
    /// code: "RESOURCE_NOT_EXISTS" }`.
    pub async fn refund_by_out_refund_no(
        &self,
        out_refund_no: &str,
    ) -> Result<Refund, ClientError> {
        let url = format!(
            "/v3/refund/domestic/refunds/{}",
            encode_segment(out_refund_no)
        );
        let response = self
            .send_with_retries(Method::GET, &url, None, Trust::Known)
            .await?;
        json_of(response)
    }

    /// `GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL[&tar_type=GZIP]`: where to
    /// download the day's trade bill (payments and refunds), and its SHA-1. Verified like every
    /// answer and retried like a query. A bill not ready yet is an error for which
    /// [`ClientError::is_bill_not_ready`] holds. Download it with [`Client::download_bill`]
    /// within the URL's lifetime (5 minutes; older docs say 30 s), then check it with
    /// [`BillDownload::verify_file`] and read it with [`crate::TradeBillReader`], passing the
    /// same `gzip`.
    pub async fn trade_bill(
        &self,
        bill_date: NaiveDate,
        gzip: bool,
    ) -> Result<BillDownload, ClientError> {
        let mut url = format!(
            "/v3/bill/tradebill?bill_date={}&bill_type=ALL",
            bill_date.format("%Y-%m-%d")
        );
        if gzip {
            url.push_str("&tar_type=GZIP");
        }
        let response = self
            .send_with_retries(Method::GET, &url, None, Trust::Known)
            .await?;
        json_of(response)
    }

    /// Downloads a bill into `sink`, chunk by chunk as it arrives (never the whole file in
    /// memory), and returns the number of bytes written: the raw file, gzip-compressed if it
    /// was asked for with `gzip`.
    ///
    /// A signed `GET` of `download_url`, absolute and possibly on another host than the API
    /// base; the signed canonical URL is its path and query (`/v3/billdownload/file?token=…`),
    /// exactly as sent (less the API base's path, for a URL under it: the sandbox's). WeChat does not sign the answer (wechatpay-v3.md §2), so it is not
    /// verified: the file is checked against the verified `hash_value` instead
    /// ([`BillDownload::verify_file`]). A 5xx or transport error before the first byte is
    /// retried like a query; once bytes have reached `sink` nothing is retried (the sink holds
    /// part of the file): start again with an empty sink. A non-2xx answer is `Api`, its code
    /// read from the unsigned body if it has one (so it is only a hint). Neither the URL's
    /// token nor the body is logged.
    pub async fn download_bill<W: Write + ?Sized>(
        &self,
        bill: &BillDownload,
        sink: &mut W,
    ) -> Result<u64, ClientError> {
        let url = Url::parse(&bill.download_url).map_err(|_| ClientError::DownloadUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ClientError::DownloadUrl);
        }
        let canonical_url = self.download_canonical_url(&url);

        let mut response = self
            .retry
            .run(
                |_| self.start_download(&url, &canonical_url),
                |error, attempt, delay| {
                    tracing::warn!(
                        path = url.path(),
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "WeChat Pay bill download unavailable, retrying"
                    );
                },
            )
            .await?;

        let mut written: u64 = 0;
        while let Some(chunk) = response.chunk().await.map_err(ClientError::Transport)? {
            sink.write_all(&chunk).map_err(ClientError::Sink)?;
            written += chunk.len() as u64;
        }
        sink.flush().map_err(ClientError::Sink)?;
        tracing::debug!(
            path = url.path(),
            bytes = written,
            "WeChat Pay bill downloaded"
        );
        Ok(written)
    }

    /// The signed canonical URL of a download: its path and query as sent, less the API base's
    /// own path when the URL lies under the API base. That is the rule of every other request
    /// (the part after `api_base`), and what the sandbox checks (it mounts WeChat's paths under
    /// `/sandbox/wechatpay`); with WeChat's `api_base`, which has no path, it is simply the
    /// path and query.
    fn download_canonical_url(&self, url: &Url) -> String {
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        if let Ok(base) = Url::parse(&self.api_base) {
            let prefix = base.path().trim_end_matches('/');
            if !prefix.is_empty()
                && base.origin() == url.origin()
                && let Some(rest) = path_and_query.strip_prefix(prefix)
                && rest.starts_with('/')
            {
                return rest.to_owned();
            }
        }
        path_and_query
    }

    /// Sends the download request; a 2xx answer is returned unread, anything else is an error.
    async fn start_download(
        &self,
        url: &Url,
        canonical_url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let mut response = self
            .signed_request(Method::GET, url.clone(), canonical_url, None)
            .header(ACCEPT, HeaderValue::from_static("*/*"))
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let mut body = Vec::new();
        while body.len() < MAX_DOWNLOAD_ERROR_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                // An error answer cut short still says what its status says.
                Ok(None) | Err(_) => break,
            }
        }
        let error: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let (code, message) = error.map(|e| (e.code, e.message)).unwrap_or_default();
        tracing::debug!(
            path = url.path(),
            status,
            "WeChat Pay bill download refused"
        );
        Err(ClientError::Api {
            status,
            code,
            message,
            retry_after,
        })
    }

    /// `POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close` with `{"mchid"}` → 204.
    /// Closing is re-entrant at WeChat, so it is retried like a query.
    pub async fn close(&self, out_trade_no: &str) -> Result<(), ClientError> {
        let url = format!(
            "/v3/pay/transactions/out-trade-no/{}/close",
            encode_segment(out_trade_no)
        );
        let body = serde_json::to_vec(&CloseRequest {
            mchid: self.creds.mchid.clone(),
        })
        .map_err(ClientError::Decode)?;
        let response = self
            .send_with_retries(Method::POST, &url, Some(body), Trust::Known)
            .await?;
        match response.status {
            200 | 204 => Ok(()),
            status => Err(ClientError::UnexpectedStatus(status)),
        }
    }

    async fn send_with_retries(
        &self,
        method: Method,
        canonical_url: &str,
        body: Option<Vec<u8>>,
        trust: Trust,
    ) -> Result<Verified, ClientError> {
        self.retry
            .run(
                // Each attempt is signed afresh: a new nonce and timestamp.
                |_| self.send(method.clone(), canonical_url, body.clone(), trust),
                |error, attempt, delay| {
                    tracing::warn!(
                        path = canonical_url,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "WeChat Pay unavailable, retrying"
                    );
                },
            )
            .await
    }

    /// Signs, sends, verifies. Non-2xx answers become [`ClientError::Api`] after verification.
    async fn send(
        &self,
        method: Method,
        canonical_url: &str,
        body: Option<Vec<u8>>,
        trust: Trust,
    ) -> Result<Verified, ClientError> {
        let url = format!("{}{canonical_url}", self.api_base);
        let response = self
            .signed_request(method.clone(), url, canonical_url, body)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(ClientError::Transport)?;
        tracing::debug!(%method, path = canonical_url, status, "WeChat Pay answered");

        // A 5xx without any signature comes from a proxy or load balancer in front of WeChat,
        // not from WeChat: it says only "unavailable" and changes nothing, so it is reported
        // as such rather than as a verification failure.
        if status >= 500 && !headers.contains_key(HEADER_SIGNATURE) {
            return Err(ClientError::Api {
                status,
                code: String::new(),
                message: "unsigned error response".to_owned(),
                retry_after: retry_after(&headers),
            });
        }
        match self.verify(&headers, &body) {
            Err(ClientError::Verify(VerifyError::UnknownSerial(_)))
                if trust == Trust::KnownOrListedCertificate && (200..300).contains(&status) =>
            {
                self.verify_by_listed_certificate(&headers, &body)?;
            }
            other => other?,
        }

        if (200..300).contains(&status) {
            Ok(Verified { status, body })
        } else {
            let error: Option<ErrorBody> = serde_json::from_slice(&body).ok();
            let (code, message) = error.map(|e| (e.code, e.message)).unwrap_or_default();
            Err(ClientError::Api {
                status,
                code,
                message,
                retry_after: retry_after(&headers),
            })
        }
    }

    /// A request to `url`, signed over `canonical_url` (what `url` sends as path and query) and
    /// the exact body bytes; a fresh nonce and timestamp each time.
    fn signed_request(
        &self,
        method: Method,
        url: impl reqwest::IntoUrl,
        canonical_url: &str,
        body: Option<Vec<u8>>,
    ) -> RequestBuilder {
        let timestamp = (self.clock)();
        let nonce = new_nonce();
        let body_bytes = body.as_deref().unwrap_or_default();
        let authorization = self.creds.authorization(
            method.as_str(),
            canonical_url,
            timestamp,
            &nonce,
            body_bytes,
        );
        let platform_serial = self.platform_keys().current_serial().map(str::to_owned);

        let mut request = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, authorization)
            .header(USER_AGENT, &self.user_agent);
        if let Some(serial) = platform_serial {
            request = request.header(HEADER_SERIAL, serial);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        request
    }

    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), ClientError> {
        let signature = SignatureHeaders::from_header_map(headers).map_err(ClientError::Verify)?;
        verify_signed(&self.platform_keys(), &signature, body, (self.clock)())
            .map_err(ClientError::Verify)
    }

    /// Case 2 of [`Client::certificates`]: the answer verified with a certificate it lists.
    fn verify_by_listed_certificate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), ClientError> {
        let signature = SignatureHeaders::from_header_map(headers).map_err(ClientError::Verify)?;
        let unknown = || ClientError::Verify(VerifyError::UnknownSerial(signature.serial.into()));
        let Some(apiv3_key) = &self.apiv3_key else {
            return Err(unknown());
        };
        // Parsed before the signature is checked, unavoidably: the key is inside. Nothing of it
        // is used unless every certificate authenticates under the APIv3 key first.
        let listing: CertificatesResponse = serde_json::from_slice(body).map_err(|_| unknown())?;
        let mut listed = PlatformKeys::new();
        for (serial, verifier, _) in
            decrypt_certificates(&listing, apiv3_key).map_err(ClientError::Certificates)?
        {
            listed.insert(serial, verifier);
        }
        verify_signed(&listed, &signature, body, (self.clock)()).map_err(ClientError::Verify)
    }

    fn platform_keys(&self) -> std::sync::RwLockReadGuard<'_, PlatformKeys> {
        // A panic while a writer held the lock cannot leave a half-inserted HashMap entry.
        self.platform.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn json_of<T: serde::de::DeserializeOwned>(response: Verified) -> Result<T, ClientError> {
    serde_json::from_slice(&response.body).map_err(ClientError::Decode)
}

/// Percent-encodes everything outside `[0-9A-Za-z_-*.~]`, so the URL sent is exactly the URL
/// signed (`|`, allowed in out_trade_no, and `@`, allowed in out_refund_no, would otherwise be
/// left to the HTTP stack's choice).
fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'*' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
