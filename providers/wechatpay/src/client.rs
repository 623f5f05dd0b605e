//! A thin reqwest client: signs each request over the exact bytes it sends, verifies every
//! response (signature, window, serial) before reading a byte of it as JSON, and retries only
//! what is safe to repeat.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, USER_AGENT};

use crate::certificates::{CertificateError, decrypt_certificates};
use crate::cipher::ApiV3Key;
use crate::model::{
    AppOrderRequest, CertificatesResponse, CloseRequest, ErrorBody, H5OrderRequest,
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

/// How queries and closes are repeated on transport errors and 5xx. Creating an order is never
/// repeated blindly: the caller decides (re-posting identical parameters is WeChat's own
/// idempotent path, and the gateway knows whether its parameters are still identical).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

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
            | ClientError::Certificates(_) => false,
        }
    }

    /// The WeChat error code (`ORDER_NOT_EXIST`, `OUT_TRADE_NO_USED`, …), if WeChat answered one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
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
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            // Each attempt is signed afresh: a new nonce and timestamp.
            match self
                .send(method.clone(), canonical_url, body.clone(), trust)
                .await
            {
                Err(error) if error.is_retryable() && attempt < self.retry.max_attempts => {
                    tracing::warn!(
                        path = canonical_url,
                        attempt,
                        error = %error,
                        "WeChat Pay unavailable, retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Signs, sends, verifies. Non-2xx answers become [`ClientError::Api`] after verification.
    async fn send(
        &self,
        method: Method,
        canonical_url: &str,
        body: Option<Vec<u8>>,
        trust: Trust,
    ) -> Result<Verified, ClientError> {
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
            .request(method.clone(), format!("{}{canonical_url}", self.api_base))
            .header(AUTHORIZATION, authorization)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, &self.user_agent);
        if let Some(serial) = platform_serial {
            request = request.header(HEADER_SERIAL, serial);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }

        let response = request.send().await.map_err(ClientError::Transport)?;
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
            })
        }
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
