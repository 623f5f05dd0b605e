//! WeChat Pay APIv3 adapter over the `paygate-wechatpay` crate.

mod bill;
mod certificates;
mod verified;

use std::sync::{Arc, RwLock};

use anyhow::{Context, anyhow};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use paygate_wechatpay::model::{
    EVENT_REFUND_ABNORMAL, EVENT_REFUND_CLOSED, EVENT_REFUND_SUCCESS, EVENT_TRANSACTION_SUCCESS,
    RefundAmount, RefundRequest,
};
use paygate_wechatpay::{
    ApiV3Key, AppOrderRequest, Client, ClientError, H5Info, H5OrderRequest, H5SceneInfo,
    JsapiOrderRequest, MerchantCredentials, NativeOrderRequest, OrderAmount, Payer, PlatformKeys,
    SignatureHeaders, Signer, TradeState, Verifier, VerifyError, verify_notification,
};

use super::port::{
    Callback, CallbackError, Mismatch, NewPayment, NewRefund, PaymentInstructions, PaymentProvider,
    ProviderError, RefundState, ReturnError, ReturnOrder, TradeStatus,
};
use crate::clock::{SharedClock, rfc3339_beijing};
use crate::config::{Config, WechatPayConfig};
use crate::domain::bill::{BillEntry, BillTotals};
use crate::domain::{Channel, Currency, OrderNo, ProviderId};
use crate::providers::BillError;
use crate::providers::RefundFailure;
use crate::providers::bounds::{BillSink, Bounds};
use certificates::Certificates;

pub struct WechatPay {
    client: Client,
    /// Signs the second stage the buyer's client runs (JSAPI `paySign`, App `sign`).
    credentials: Arc<MerchantCredentials>,
    mchid: String,
    appid: String,
    notify_url: String,
    platform: Arc<RwLock<PlatformKeys>>,
    apiv3_key: ApiV3Key,
    clock: SharedClock,
    /// The platform keys' refresh from `/v3/certificates` (certificate mode).
    certificates: Certificates,
}

/// Key material, read once at start-up.
pub struct WechatKeys {
    pub signer: Signer,
    pub apiv3_key: ApiV3Key,
    pub platform: PlatformKeys,
}

impl WechatKeys {
    pub fn load(config: &Config, w: &WechatPayConfig) -> anyhow::Result<WechatKeys> {
        let read = |p: &std::path::Path| {
            let path = config.resolve(p);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let signer = Signer::from_pem(&read(&w.merchant_private_key_file)?)
            .context("wechatpay.merchant_private_key_file is not an RSA private key")?;
        let apiv3 = read(&w.apiv3_key_file)?;
        let apiv3_key = ApiV3Key::new(apiv3.trim_end_matches(['\n', '\r']).as_bytes())
            .map_err(|_| anyhow!("wechatpay.apiv3_key_file must hold exactly 32 bytes"))?;
        let mut platform = PlatformKeys::new();
        for k in &w.platform_public_keys {
            let verifier = Verifier::from_pem(&read(&k.file)?).with_context(|| {
                format!(
                    "platform key {} is not an RSA public key or certificate",
                    k.id
                )
            })?;
            platform.insert(&k.id, verifier);
        }
        Ok(WechatKeys {
            signer,
            apiv3_key,
            platform,
        })
    }
}

impl WechatPay {
    pub fn new(
        w: &WechatPayConfig,
        keys: WechatKeys,
        public_url: &str,
        http: reqwest::Client,
        clock: SharedClock,
    ) -> WechatPay {
        let creds = Arc::new(MerchantCredentials {
            mchid: w.mchid.clone(),
            serial_no: w.merchant_serial.clone(),
            signer: keys.signer,
        });
        let platform = Arc::new(RwLock::new(keys.platform));
        let client_clock = clock.clone();
        let mut client = Client::new(
            http,
            &w.api_base,
            creds.clone(),
            platform.clone(),
            Arc::new(move || client_clock.now().timestamp()),
        );
        if w.fetch_platform_certificates {
            // Lets the first download (and one just after a rotation) be checked against the
            // certificates it lists, which only WeChat can encrypt under our APIv3 key.
            client = client.with_apiv3_key(keys.apiv3_key.clone());
        }
        let certificates = Certificates::new(
            client.clone(),
            platform.clone(),
            keys.apiv3_key.clone(),
            clock.clone(),
            w.fetch_platform_certificates,
        );
        WechatPay {
            client,
            credentials: creds,
            mchid: w.mchid.clone(),
            appid: w.appid.clone(),
            notify_url: format!("{public_url}/webhooks/wechatpay"),
            platform,
            certificates,
            apiv3_key: keys.apiv3_key,
            clock,
        }
    }

    /// One API call: keys first if needed, and an answer signed by a serial we do not know yet
    /// (WeChat rotated) refreshes the certificates so the next attempt verifies; that answer
    /// itself stays unverified, so the outcome is unknown: unavailable, try again.
    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ProviderError> {
        self.certificates.ensure_keys().await;
        match call.await {
            Ok(answer) => Ok(answer),
            Err(e) => Err(self.client_error(e).await),
        }
    }

    async fn client_error(&self, e: ClientError) -> ProviderError {
        if matches!(e, ClientError::Verify(VerifyError::UnknownSerial(_)))
            && self.certificates.refresh_for_unknown_serial().await
        {
            return ProviderError::Unavailable(e.into());
        }
        provider_error(e)
    }

    fn verify(
        &self,
        signature: &SignatureHeaders,
        body: &[u8],
    ) -> Result<paygate_wechatpay::VerifiedNotification, paygate_wechatpay::NotifyError> {
        let keys = self.platform.read().unwrap_or_else(|e| e.into_inner());
        verify_notification(
            &keys,
            signature,
            body,
            self.clock.now().timestamp(),
            &self.apiv3_key,
        )
    }

    /// What every channel's order request holds: the allowlist of DESIGN.md §1 (merchant ids,
    /// order number, amount, neutral text, expiry, notify URL); the request types have no other
    /// fields. JSAPI adds the payer's openid and H5 the payer's IP, which those channels
    /// require: passed through by `create` and dropped with the request.
    fn order_request(&self, p: &NewPayment) -> NativeOrderRequest {
        NativeOrderRequest {
            appid: self.appid.clone(),
            mchid: self.mchid.clone(),
            description: p.description.clone(),
            out_trade_no: p.order_no.to_string(),
            time_expire: Some(rfc3339_beijing(p.expires_at)),
            notify_url: self.notify_url.clone(),
            amount: OrderAmount {
                total: p.amount.get(),
                currency: Currency::Cny.as_str().to_owned(),
            },
        }
    }

    /// An H5 order from a mobile browser page at payer address `ip`: the page the buyer opens,
    /// sending the browser back to `return_url` after paying (issue 13) when there is one.
    async fn h5_url(
        &self,
        base: NativeOrderRequest,
        ip: String,
        return_url: Option<&str>,
    ) -> Result<String, ProviderError> {
        // A mobile browser page; WeChat also knows `iOS`/`Android` for apps.
        let scene_info = H5SceneInfo {
            payer_client_ip: ip,
            h5_info: H5Info {
                kind: "Wap".to_owned(),
            },
        };
        let request = H5OrderRequest::new(base, scene_info);
        let answer = self.call(self.client.h5_order(&request)).await?;
        Ok(match return_url {
            Some(url) => answer.url_with_redirect(url),
            None => answer.h5_url,
        })
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value, ProviderError> {
    serde_json::to_value(value).map_err(|e| ProviderError::Rejected(e.into()))
}

fn provider_error(e: ClientError) -> ProviderError {
    if e.is_unavailable() {
        ProviderError::Unavailable(e.into())
    } else {
        ProviderError::Rejected(e.into())
    }
}

#[async_trait::async_trait]
impl PaymentProvider for WechatPay {
    fn id(&self) -> ProviderId {
        ProviderId::Wechatpay
    }

    fn supports(&self, channel: Channel) -> bool {
        matches!(
            channel,
            Channel::Native | Channel::Jsapi | Channel::H5 | Channel::App
        )
    }

    async fn create(&self, p: &NewPayment) -> Result<PaymentInstructions, ProviderError> {
        let base = self.order_request(p);
        let missing = |what: &str| ProviderError::Rejected(anyhow!("channel needs {what}"));
        let mut out = PaymentInstructions::new();
        match p.channel {
            Channel::Native => {
                let answer = self.call(self.client.native_order(&base)).await?;
                out.insert("code_url".into(), answer.code_url.into());
            }
            Channel::Jsapi => {
                let openid = p
                    .payer
                    .openid
                    .clone()
                    .ok_or_else(|| missing("payer_openid"))?;
                let request = JsapiOrderRequest::new(base, Payer { openid });
                let answer = self.call(self.client.jsapi_order(&request)).await?;
                let js = self.credentials.jsapi_pay_params(
                    &self.appid,
                    &answer.prepay_id,
                    self.clock.now().timestamp(),
                    &paygate_wechatpay::new_nonce(),
                );
                out.insert("prepay_id".into(), answer.prepay_id.into());
                out.insert("js_params".into(), to_json(&js)?);
            }
            Channel::H5 => {
                let ip = p
                    .payer
                    .client_ip
                    .clone()
                    .ok_or_else(|| missing("client_ip"))?;
                let h5_url = self.h5_url(base, ip, p.return_url.as_deref()).await?;
                out.insert("h5_url".into(), h5_url.into());
            }
            Channel::App => {
                let request = AppOrderRequest::from(base);
                let answer = self.call(self.client.app_order(&request)).await?;
                let app = self.credentials.app_pay_params(
                    &self.appid,
                    &answer.prepay_id,
                    self.clock.now().timestamp(),
                    &paygate_wechatpay::new_nonce(),
                );
                out.insert("prepay_id".into(), answer.prepay_id.into());
                out.insert("app_params".into(), to_json(&app)?);
            }
            other => {
                return Err(ProviderError::Rejected(anyhow!(
                    "wechatpay has no channel {}",
                    other.as_str()
                )));
            }
        }
        Ok(out)
    }

    async fn query(&self, order_no: &OrderNo) -> Result<TradeStatus, ProviderError> {
        self.certificates.ensure_keys().await;
        let tx = match self.client.query_by_out_trade_no(order_no.as_str()).await {
            Ok(tx) => tx,
            Err(e) if e.api_code() == Some("ORDER_NOT_EXIST") => return Ok(TradeStatus::Pending),
            Err(e) => return Err(self.client_error(e).await),
        };
        if tx.out_trade_no != order_no.as_str() {
            return Err(ProviderError::Rejected(anyhow!(
                "query answered about another order"
            )));
        }
        let paid = verified::paid_trade(&self.mchid, &self.appid, &tx)
            .map_err(|m| ProviderError::Rejected(m.into()))?;
        Ok(match (paid, tx.trade_state) {
            (Some(trade), TradeState::Refund) => TradeStatus::Refunded(trade),
            (Some(trade), _) => TradeStatus::Paid(trade),
            (None, TradeState::NotPay | TradeState::UserPaying) => TradeStatus::Pending,
            (None, TradeState::Closed | TradeState::Revoked | TradeState::PayError) => {
                TradeStatus::Closed
            }
            (None, other) => TradeStatus::Unknown(other.as_str().to_owned()),
        })
    }

    async fn close(&self, order_no: &OrderNo) -> Result<(), ProviderError> {
        self.call(self.client.close(order_no.as_str())).await
    }

    async fn refund(&self, refund: &NewRefund) -> Result<RefundState, ProviderError> {
        // The allowlist (DESIGN.md §1): the order number, the refund number, the amounts, the
        // neutral reason and our notify URL; the request type has no other fields.
        let request = RefundRequest {
            out_trade_no: refund.order_no.to_string(),
            out_refund_no: refund.refund_no.clone(),
            reason: refund.reason.clone(),
            notify_url: Some(self.notify_url.clone()),
            amount: RefundAmount {
                refund: refund.amount.get(),
                total: refund.total.get(),
                currency: Currency::Cny.as_str().to_owned(),
            },
        };
        self.certificates.ensure_keys().await;
        match self.client.refund(&request).await {
            Ok(answer) => verified::refund_state(&answer, &refund.order_no, &refund.refund_no),
            // A verified 4xx business error (NOT_ENOUGH, RESOURCE_NOT_EXISTS, …): WeChat took
            // nothing. 429 and 5xx leave the outcome unknown.
            Err(ClientError::Api { status, code, .. })
                if (400..500).contains(&status) && status != 429 =>
            {
                Ok(RefundState::Failed(RefundFailure::Refused(code)))
            }
            Err(e) => Err(self.client_error(e).await),
        }
    }

    async fn refund_query(
        &self,
        order_no: &OrderNo,
        refund_no: &str,
    ) -> Result<RefundState, ProviderError> {
        self.certificates.ensure_keys().await;
        match self.client.refund_by_out_refund_no(refund_no).await {
            Ok(answer) => verified::refund_state(&answer, order_no, refund_no),
            Err(e) if e.api_code() == Some("RESOURCE_NOT_EXISTS") => Ok(RefundState::NotFound),
            Err(e) => Err(self.client_error(e).await),
        }
    }

    async fn download_bill(
        &self,
        date: chrono::NaiveDate,
        sink: &mut BillSink,
    ) -> Result<(), BillError> {
        self.certificates.ensure_keys().await;
        bill::download(&self.client, date, sink).await
    }

    fn read_bill(
        &self,
        file: std::fs::File,
        bounds: &Bounds,
        each: &mut dyn FnMut(BillEntry) -> bool,
    ) -> Result<BillTotals, BillError> {
        bill::read(&self.mchid, file, bounds, each)
    }

    async fn verify_callback(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Callback, CallbackError> {
        let signature =
            SignatureHeaders::from_header_map(headers).map_err(CallbackError::unverified)?;
        let verified = match self.verify(&signature, body) {
            Err(paygate_wechatpay::NotifyError::Verify(VerifyError::UnknownSerial(_)))
                if self.certificates.refresh_for_unknown_serial().await =>
            {
                self.verify(&signature, body)
            }
            other => other,
        }
        .map_err(CallbackError::unverified)?;
        match verified.notification.event_type.as_str() {
            EVENT_TRANSACTION_SUCCESS => {}
            EVENT_REFUND_SUCCESS | EVENT_REFUND_CLOSED | EVENT_REFUND_ABNORMAL => {
                return verified::refund_report(&self.mchid, &verified);
            }
            other => return Ok(Callback::Ignored(other.to_owned())),
        }
        let tx = verified.transaction().map_err(CallbackError::unverified)?;
        match verified::paid_trade(&self.mchid, &self.appid, &tx)? {
            Some(trade) if tx.trade_state == TradeState::Success => Ok(Callback::Paid(trade)),
            _ => Err(Mismatch::DoesNotSettle {
                what: "TRANSACTION.SUCCESS with trade_state",
                state: tx.trade_state.as_str().to_owned(),
            }
            .into()),
        }
    }

    async fn refresh_keys(&self) -> anyhow::Result<usize> {
        self.certificates.refresh().await
    }

    fn answer(&self, outcome: &Result<(), CallbackError>) -> Response {
        // WeChat: 2xx without body = received; 4xx/5xx with {"code":"FAIL"} = send again.
        let (status, message) = match outcome {
            Ok(()) => return StatusCode::NO_CONTENT.into_response(),
            Err(CallbackError::Unverified(_)) => (StatusCode::UNAUTHORIZED, "验签失败"),
            Err(CallbackError::Mismatch(_)) => (StatusCode::BAD_REQUEST, "订单信息不符"),
            Err(CallbackError::Temporary(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "系统繁忙"),
        };
        (
            status,
            axum::Json(serde_json::json!({"code": "FAIL", "message": message})),
        )
            .into_response()
    }

    /// WeChat's H5 `redirect_url` gets nothing appended (WeChat documents that the redirect
    /// says nothing about the payment): there is nothing to verify, so only an empty body is
    /// taken, and the check is the active query the caller makes next.
    fn verify_return(&self, _order: ReturnOrder<'_>, query: &[u8]) -> Result<(), ReturnError> {
        // Empty means no byte at all: README and DESIGN.md §4 promise 422 for any body, and a
        // body of blanks is a body.
        if query.is_empty() {
            Ok(())
        } else {
            Err(ReturnError::NotExpected(
                "WeChat Pay returns carry no query: send an empty body",
            ))
        }
    }
}
