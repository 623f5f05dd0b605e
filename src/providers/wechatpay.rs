//! WeChat Pay APIv3 adapter over the `paygate-wechatpay` crate.

mod certificates;

use std::sync::{Arc, RwLock};

use anyhow::{Context, anyhow};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use paygate_wechatpay::model::{
    EVENT_REFUND_ABNORMAL, EVENT_REFUND_CLOSED, EVENT_REFUND_SUCCESS, EVENT_TRANSACTION_SUCCESS,
    Refund, RefundAmount, RefundRequest, RefundStatus as WechatRefundStatus,
};
use paygate_wechatpay::{
    ApiV3Key, AppOrderRequest, Client, ClientError, H5Info, H5OrderRequest, H5SceneInfo,
    JsapiOrderRequest, MerchantCredentials, NativeOrderRequest, OrderAmount, Payer, PlatformKeys,
    SignatureHeaders, Signer, TradeState, Transaction, Verifier, VerifyError, verify_notification,
};

use super::{
    Callback, CallbackError, Mismatch, NewPayment, NewRefund, PaymentInstructions, PaymentProvider,
    ProviderError, RefundState, ReturnError, ReturnOrder, TradeStatus,
};
use crate::clock::{SharedClock, rfc3339_beijing};
use crate::config::{Config, WechatPayConfig};
use crate::domain::{Channel, Currency, Fen, OrderNo, ProviderId};
use crate::reconcile::bill::{self as bill, BillEntry, BillError, BillTotals, EntryKind};
use crate::reconcile::bounds::{BillSink, Bounds};
use crate::refunds::{RefundFailure, RefundOutcome, RefundReport};
use crate::settle::PaidTrade;
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

    /// Checks a verified transaction against our merchant; keeps only what we store. None
    /// while it is not paid (`SUCCESS`, or `REFUND`: paid, then refunded).
    fn paid_trade(&self, tx: &Transaction) -> Result<Option<PaidTrade>, Mismatch> {
        use Mismatch::Malformed;
        if tx.mchid != self.mchid {
            return Err(Mismatch::NotOurs("mchid"));
        }
        if tx.appid != self.appid {
            return Err(Mismatch::NotOurs("appid"));
        }
        if !matches!(tx.trade_state, TradeState::Success | TradeState::Refund) {
            return Ok(None);
        }
        let order_no = OrderNo::parse(&tx.out_trade_no).ok_or(Mismatch::NotOurs("out_trade_no"))?;
        let txn_id = tx
            .transaction_id
            .clone()
            .ok_or(Malformed("paid transaction without transaction_id"))?;
        let amount = tx
            .amount
            .as_ref()
            .ok_or(Malformed("paid transaction without amount"))?;
        let total = amount
            .total
            .ok_or(Malformed("paid transaction without amount.total"))?;
        let amount_fen = Fen::new(total).map_err(|_| Malformed("negative amount"))?;
        let currency = amount
            .currency
            .as_deref()
            .ok_or(Malformed("paid transaction without amount.currency"))?;
        let currency =
            Currency::parse(currency).ok_or(Malformed("paid transaction in another currency"))?;
        let paid_at = tx
            .success_time
            .as_deref()
            .ok_or(Malformed("paid transaction without success_time"))?;
        let paid_at = parse_time(paid_at).ok_or(Malformed("success_time is not RFC 3339"))?;
        Ok(Some(PaidTrade {
            order_no,
            provider: ProviderId::Wechatpay,
            provider_txn_id: txn_id,
            amount: amount_fen,
            currency,
            trade_type: tx.trade_type.clone(),
            bank_type: tx.bank_type.clone(),
            paid_at,
        }))
    }

    /// A verified refund answer (create or query) about our refund `refund_no` of `order_no`.
    fn refund_state(
        &self,
        r: &Refund,
        order_no: &OrderNo,
        refund_no: &str,
    ) -> Result<RefundState, ProviderError> {
        let reject = |m: &'static str| ProviderError::Rejected(anyhow!(m));
        if r.out_trade_no != order_no.as_str() || r.out_refund_no != refund_no {
            return Err(reject("refund answer about another refund"));
        }
        let amount = Fen::new(r.amount.refund).map_err(|_| reject("negative refund amount"))?;
        let provider_refund_id = Some(r.refund_id.clone());
        Ok(match r.status {
            WechatRefundStatus::Success => RefundState::Succeeded {
                amount,
                provider_refund_id,
                at: match r.success_time.as_deref() {
                    Some(t) => {
                        Some(parse_time(t).ok_or_else(|| reject("success_time is not RFC 3339"))?)
                    }
                    None => None,
                },
            },
            WechatRefundStatus::Closed => RefundState::Failed(RefundFailure::Closed),
            WechatRefundStatus::Abnormal => RefundState::Failed(RefundFailure::Abnormal),
            WechatRefundStatus::Processing | WechatRefundStatus::Unknown => {
                RefundState::Processing { provider_refund_id }
            }
        })
    }

    /// A verified `REFUND.*` notification, checked against our merchant.
    fn refund_report(
        &self,
        verified: &paygate_wechatpay::VerifiedNotification,
    ) -> Result<Callback, CallbackError> {
        let n = verified.refund().map_err(CallbackError::unverified)?;
        if n.mchid != self.mchid {
            return Err(Mismatch::NotOurs("mchid").into());
        }
        let order_no = OrderNo::parse(&n.out_trade_no).ok_or(Mismatch::NotOurs("out_trade_no"))?;
        let amount =
            Fen::new(n.amount.refund).map_err(|_| Mismatch::Malformed("negative refund amount"))?;
        let total =
            Fen::new(n.amount.total).map_err(|_| Mismatch::Malformed("negative order total"))?;
        let outcome = match n.refund_status {
            WechatRefundStatus::Success => RefundOutcome::Succeeded {
                at: match n.success_time.as_deref() {
                    Some(t) => Some(
                        parse_time(t).ok_or(Mismatch::Malformed("success_time is not RFC 3339"))?,
                    ),
                    None => None,
                },
            },
            WechatRefundStatus::Closed => RefundOutcome::Failed(RefundFailure::Closed),
            WechatRefundStatus::Abnormal => RefundOutcome::Failed(RefundFailure::Abnormal),
            other => return Ok(Callback::Ignored(format!("refund {}", other.as_str()))),
        };
        Ok(Callback::Refund(RefundReport {
            order_no,
            provider: ProviderId::Wechatpay,
            out_refund_no: n.out_refund_no,
            provider_refund_id: Some(n.refund_id),
            amount: Some(amount),
            order_total: Some(total),
            outcome,
        }))
    }
}

fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.to_utc())
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
        // The allowlist of DESIGN.md §1: merchant ids, order number, amount, neutral text,
        // expiry, notify URL; the request types have no other fields. JSAPI adds the payer's
        // openid and H5 the payer's IP, which those channels require: passed through here and
        // dropped with the request.
        let base = NativeOrderRequest {
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
        };
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
                // A mobile browser page; WeChat also knows `iOS`/`Android` for apps.
                let scene_info = H5SceneInfo {
                    payer_client_ip: ip,
                    h5_info: H5Info {
                        kind: "Wap".to_owned(),
                    },
                };
                let request = H5OrderRequest::new(base, scene_info);
                let answer = self.call(self.client.h5_order(&request)).await?;
                // WeChat sends the browser back to `redirect_url` after paying (issue 13).
                let h5_url = match &p.return_url {
                    Some(url) => answer.url_with_redirect(url),
                    None => answer.h5_url,
                };
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
        let paid = self
            .paid_trade(&tx)
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
            Ok(answer) => self.refund_state(&answer, &refund.order_no, &refund.refund_no),
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
            Ok(answer) => self.refund_state(&answer, order_no, refund_no),
            Err(e) if e.api_code() == Some("RESOURCE_NOT_EXISTS") => Ok(RefundState::NotFound),
            Err(e) => Err(self.client_error(e).await),
        }
    }

    async fn download_bill(
        &self,
        date: chrono::NaiveDate,
        sink: &mut BillSink,
    ) -> Result<(), BillError> {
        use std::io::Seek;
        let classify = |e: ClientError| {
            if e.is_bill_not_ready() {
                BillError::NotReady
            } else if e.is_unavailable() {
                BillError::Unavailable(e.into())
            } else {
                BillError::Invalid(e.into())
            }
        };
        self.certificates.ensure_keys().await;
        // Gzip: a tenth of the bytes on the wire; the SHA-1 is over the uncompressed file.
        let download = self.client.trade_bill(date, true).await.map_err(classify)?;
        if let Err(e) = self.client.download_bill(&download, sink).await {
            // Cut off at max_bill_bytes: the bill's fault, not the provider's availability.
            return Err(sink
                .exceeded()
                .map_or_else(|| classify(e), BillError::TooLarge));
        }
        let bounds = sink.bounds().clone();
        let file = sink.file();
        file.rewind()?;
        // The hash WeChat signed, checked before any row is read (a second pass over the file,
        // on a blocking thread: it is tens of megabytes for a busy day), inflated here so that
        // the inflated size and lines are bounded.
        let copy = file.try_clone()?;
        tokio::task::spawn_blocking(move || {
            download.verify_file(bounds.reader(gunzip(copy)), false)
        })
        .await
        .map_err(|e| BillError::Invalid(e.into()))?
        .map_err(bill::invalid)?;
        file.rewind()?;
        Ok(())
    }

    fn read_bill(
        &self,
        file: std::fs::File,
        bounds: &Bounds,
        each: &mut dyn FnMut(BillEntry) -> bool,
    ) -> Result<BillTotals, BillError> {
        let mut reader =
            paygate_wechatpay::TradeBillReader::new(bounds.reader(gunzip(file)), false);
        let mut totals = BillTotals::NONE;
        for row in reader.by_ref() {
            let row = row.map_err(bill::invalid)?;
            if row.mchid != self.mchid {
                return Err(BillError::Invalid(anyhow!(
                    "a bill row of another merchant"
                )));
            }
            let amount = Fen::new(row.amount_fen).map_err(bill::invalid)?;
            let entry = match row.kind {
                paygate_wechatpay::BillRowKind::Payment => BillEntry {
                    kind: EntryKind::Payment,
                    order_no: Some(row.out_trade_no),
                    provider_txn_id: row.transaction_id,
                    refund_no: None,
                    amount,
                    status: row.trade_state,
                    at: row.trade_time,
                },
                paygate_wechatpay::BillRowKind::Refund => BillEntry {
                    kind: EntryKind::Refund,
                    order_no: Some(row.out_trade_no),
                    provider_txn_id: row.transaction_id,
                    refund_no: row.out_refund_no,
                    amount,
                    // 退款状态 as of the bill; a refund row without one is not a success.
                    status: row.refund_status.unwrap_or_default(),
                    at: row.trade_time,
                },
            };
            bill::tally(&mut totals, &entry)?;
            if !each(entry) {
                return Err(BillError::Invalid(anyhow!("reading the bill was stopped")));
            }
        }
        reader
            .totals()
            .ok_or_else(|| BillError::Invalid(anyhow!("the bill ended without its totals")))?;
        Ok(totals)
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
                return self.refund_report(&verified);
            }
            other => return Ok(Callback::Ignored(other.to_owned())),
        }
        let tx = verified.transaction().map_err(CallbackError::unverified)?;
        match self.paid_trade(&tx)? {
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

/// A `tar_type=GZIP` bill inflated (WeChat may write several gzip members).
fn gunzip(file: std::fs::File) -> flate2::read::MultiGzDecoder<std::io::BufReader<std::fs::File>> {
    flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
}
