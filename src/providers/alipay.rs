//! Alipay adapter over the `paygate-alipay` crate: `qr` (precreate, a server call), `page` and
//! `wap` (a signed gateway URL the browser opens), `app` (a signed order string for the SDK).

use std::sync::Arc;

use anyhow::{Context, anyhow};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use paygate_alipay::{
    Client, Error as ClientError, OrderChannel, OrderRequest, QueryResponse,
    RefundStatus as AlipayRefundStatus, Signer, TradeStatus as AlipayStatus, Verifier,
    verify_trade_notification,
};

use super::port::{
    Callback, CallbackError, Mismatch, NewPayment, NewRefund, PaymentInstructions, PaymentProvider,
    ProviderError, RefundState, ReturnError, ReturnOrder, TradeStatus,
};
use crate::config::{AlipayConfig, Config};
use crate::domain::bill::{self as bill, BillEntry, BillTotals, EntryKind};
use crate::domain::{Channel, Currency, Fen, OrderNo, ProviderId};
use crate::providers::BillError;
use crate::providers::PaidTrade;
use crate::providers::bounds::{BillSink, Bounds};
use crate::providers::{RefundFailure, RefundOutcome, RefundReport};

/// Key material, read once at start-up.
pub struct AlipayKeys {
    pub signer: Signer,
    pub alipay_public_key: Verifier,
}

impl AlipayKeys {
    pub fn load(config: &Config, a: &AlipayConfig) -> anyhow::Result<AlipayKeys> {
        let read = |p: &std::path::Path| {
            let path = config.resolve(p);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let signer = Signer::from_pem_or_base64(&read(&a.app_private_key_file)?)
            .context("alipay.app_private_key_file is not an RSA private key (PKCS#1 or PKCS#8)")?;
        let alipay_public_key = Verifier::from_pem_or_base64(&read(&a.alipay_public_key_file)?)
            .context("alipay.alipay_public_key_file is not an RSA public key")?;
        Ok(AlipayKeys {
            signer,
            alipay_public_key,
        })
    }
}

pub struct Alipay {
    client: Client,
    app_id: String,
    seller_id: Option<String>,
    notify_url: String,
    alipay_public_key: Arc<Verifier>,
}

impl Alipay {
    pub fn new(
        a: &AlipayConfig,
        keys: AlipayKeys,
        public_url: &str,
        http: reqwest::Client,
        clock: crate::clock::SharedClock,
    ) -> Alipay {
        let alipay_public_key = Arc::new(keys.alipay_public_key);
        let client_clock = clock.clone();
        let client = Client::new(
            http,
            &a.gateway_url,
            &a.app_id,
            Arc::new(keys.signer),
            alipay_public_key.clone(),
            Arc::new(move || client_clock.now()),
        );
        Alipay {
            client,
            app_id: a.app_id.clone(),
            seller_id: a.seller_id.clone(),
            notify_url: format!("{public_url}/webhooks/alipay"),
            alipay_public_key,
        }
    }

    fn paid_trade(
        &self,
        order_no: OrderNo,
        trade_no: &str,
        total_fen: i64,
        paid_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<PaidTrade, Mismatch> {
        if trade_no.is_empty() {
            return Err(Mismatch::Malformed("paid trade without trade_no"));
        }
        // No payment time, no payment: Alipay gives `send_pay_date` / `gmt_payment` for every
        // paid trade, and paygate never stands in "now" for it.
        let paid_at = paid_at.ok_or(Mismatch::Malformed("paid trade without a payment time"))?;
        Ok(PaidTrade {
            order_no,
            provider: ProviderId::Alipay,
            provider_txn_id: trade_no.to_owned(),
            amount: Fen::new(total_fen).map_err(|_| Mismatch::Malformed("negative amount"))?,
            // Domestic Alipay trades are in yuan by definition (`trans_currency` exists for
            // cross-border merchants only, which paygate is not).
            currency: Currency::Cny,
            trade_type: None,
            bank_type: None,
            paid_at,
        })
    }

    fn status_of(&self, order_no: &OrderNo, q: QueryResponse) -> Result<TradeStatus, Mismatch> {
        if q.out_trade_no != order_no.as_str() {
            return Err(Mismatch::Malformed("query answered about another order"));
        }
        Ok(match q.trade_status {
            s if s.is_paid() => TradeStatus::Paid(self.paid_trade(
                order_no.clone(),
                &q.trade_no,
                q.total_fen,
                q.paid_at,
            )?),
            AlipayStatus::WaitBuyerPay => TradeStatus::Pending,
            // A fully refunded trade is closed too; only a paid one has a payment date.
            AlipayStatus::TradeClosed if q.paid_at.is_some() => TradeStatus::Refunded(
                self.paid_trade(order_no.clone(), &q.trade_no, q.total_fen, q.paid_at)?,
            ),
            AlipayStatus::TradeClosed => TradeStatus::Closed,
            other => TradeStatus::Unknown(other.as_str().to_owned()),
        })
    }
}

fn provider_error(e: ClientError) -> ProviderError {
    if e.is_unavailable() {
        ProviderError::Unavailable(e.into())
    } else {
        ProviderError::Rejected(e.into())
    }
}

/// A signed Alipay business error (not a "try again" one): Alipay took nothing.
fn refusal(e: &ClientError) -> Option<RefundFailure> {
    let api = e.api()?;
    (api.signed && !api.is_unavailable())
        .then(|| RefundFailure::Refused(api.sub_code.clone().unwrap_or_else(|| api.code.clone())))
}

fn is_trade_not_exist(e: &ClientError) -> bool {
    e.api().is_some_and(|api| api.is_trade_not_exist())
}

#[async_trait::async_trait]
impl PaymentProvider for Alipay {
    fn id(&self) -> ProviderId {
        ProviderId::Alipay
    }

    fn supports(&self, channel: Channel) -> bool {
        matches!(
            channel,
            Channel::Qr | Channel::Page | Channel::Wap | Channel::App
        )
    }

    async fn create(&self, p: &NewPayment) -> Result<PaymentInstructions, ProviderError> {
        // The allowlist of DESIGN.md §1; the crate's biz_content type has no other fields.
        let request = OrderRequest {
            out_trade_no: p.order_no.to_string(),
            total_fen: p.amount.get(),
            subject: p.description.clone(),
            time_expire: p.expires_at,
            notify_url: self.notify_url.clone(),
            // The one common parameter browser orders add (DESIGN.md §1, issue 13).
            return_url: match p.channel {
                Channel::Page | Channel::Wap => p.return_url.clone(),
                _ => None,
            },
        };
        let mut out = PaymentInstructions::new();
        match p.channel {
            Channel::Qr => {
                let answer = self
                    .client
                    .precreate(&request)
                    .await
                    .map_err(provider_error)?;
                out.insert("qr_code".into(), answer.qr_code.into());
            }
            Channel::Page | Channel::Wap => {
                let url = if p.channel == Channel::Page {
                    self.client.page_pay_url(&request)
                } else {
                    self.client.wap_pay_url(&request)
                };
                out.insert("pay_url".into(), url.map_err(provider_error)?.into());
            }
            Channel::App => {
                let order_string = self
                    .client
                    .app_order_string(&request)
                    .map_err(provider_error)?;
                out.insert("order_string".into(), order_string.into());
            }
            other => {
                return Err(ProviderError::Rejected(anyhow!(
                    "alipay has no channel {}",
                    other.as_str()
                )));
            }
        }
        Ok(out)
    }

    async fn query(&self, order_no: &OrderNo) -> Result<TradeStatus, ProviderError> {
        match self.client.query(order_no.as_str()).await {
            Ok(q) => self
                .status_of(order_no, q)
                .map_err(|m| ProviderError::Rejected(m.into())),
            // A QR code nobody scanned, or a page/wap URL nobody opened: no trade yet.
            Err(e) if is_trade_not_exist(&e) => Ok(TradeStatus::Pending),
            Err(e) => Err(provider_error(e)),
        }
    }

    async fn close(&self, order_no: &OrderNo) -> Result<(), ProviderError> {
        match self.client.close(order_no.as_str()).await {
            Ok(_) => Ok(()),
            // Alipay never created the trade, so there is nothing to close there; once the
            // order is closed here, a later payment is refused by its expiry at Alipay.
            Err(e) if is_trade_not_exist(&e) => Ok(()),
            Err(e) => Err(provider_error(e)),
        }
    }

    async fn refund(&self, refund: &NewRefund) -> Result<RefundState, ProviderError> {
        // The crate's biz_content has only out_trade_no, out_request_no, refund_amount and
        // refund_reason (DESIGN.md §1).
        let answer = self
            .client
            .refund(
                refund.order_no.as_str(),
                &refund.refund_no,
                refund.amount.get(),
                refund.reason.as_deref(),
            )
            .await;
        match answer {
            // alipay.md §5: done only when fund_change = Y; `refund_fee` is the cumulative
            // total, so it can never be less than this refund.
            Ok(r) if r.fund_change => {
                if r.refund_fee_fen < refund.amount.get() {
                    return Err(ProviderError::Rejected(anyhow!(
                        "refund_fee is less than the refund"
                    )));
                }
                Ok(RefundState::Succeeded {
                    amount: refund.amount,
                    provider_refund_id: None,
                    at: r.gmt_refund_pay,
                })
            }
            // Accepted but no money moved by this call (a repeat, or not settled yet): ask.
            Ok(_) => Ok(RefundState::Processing {
                provider_refund_id: None,
            }),
            Err(e) => match refusal(&e) {
                Some(refused) => Ok(RefundState::Failed(refused)),
                None => Err(provider_error(e)),
            },
        }
    }

    async fn refund_query(
        &self,
        order_no: &OrderNo,
        refund_no: &str,
    ) -> Result<RefundState, ProviderError> {
        match self.client.refund_query(order_no.as_str(), refund_no).await {
            Ok(q) => Ok(match q.refund_status {
                AlipayRefundStatus::Success => {
                    let fen = q.refund_fen.ok_or_else(|| {
                        ProviderError::Rejected(anyhow!("REFUND_SUCCESS without refund_amount"))
                    })?;
                    RefundState::Succeeded {
                        amount: Fen::new(fen).map_err(|e| ProviderError::Rejected(e.into()))?,
                        provider_refund_id: None,
                        at: None,
                    }
                }
                AlipayRefundStatus::NotFound => RefundState::NotFound,
                AlipayRefundStatus::Unknown => RefundState::Processing {
                    provider_refund_id: None,
                },
            }),
            Err(e) if is_trade_not_exist(&e) => Ok(RefundState::NotFound),
            Err(e) => Err(provider_error(e)),
        }
    }

    async fn download_bill(
        &self,
        date: chrono::NaiveDate,
        sink: &mut BillSink,
    ) -> Result<(), BillError> {
        use std::io::Seek;
        let classify = |e: ClientError| {
            if e.api().is_some_and(|api| api.is_bill_not_exist()) {
                BillError::NotReady
            } else if e.is_unavailable() {
                BillError::Unavailable(e.into())
            } else {
                BillError::Invalid(e.into())
            }
        };
        let url = self
            .client
            .bill_download_url(date)
            .await
            .map_err(classify)?;
        // The URL lives 30 seconds: download at once.
        if let Err(e) = self.client.download_bill(url.as_str(), sink).await {
            // Cut off at max_bill_bytes: the bill's fault, not the provider's availability.
            return Err(sink
                .exceeded()
                .map_or_else(|| classify(e), BillError::TooLarge));
        }
        sink.file().rewind()?;
        Ok(())
    }

    fn read_bill(
        &self,
        file: std::fs::File,
        bounds: &Bounds,
        each: &mut dyn FnMut(BillEntry) -> bool,
    ) -> Result<BillTotals, BillError> {
        let mut zip = paygate_alipay::bill::TradeBillReader::open(std::io::BufReader::new(file))
            .map_err(crate::providers::bills::invalid)?;
        // The detail entry inflated through the bounds: a ZIP bomb stops at max_bill_bytes.
        let entry = zip
            .detail_entry()
            .map_err(crate::providers::bills::invalid)?;
        let mut rows = paygate_alipay::bill::TradeBillRows::from_csv(bounds.reader(entry))
            .map_err(crate::providers::bills::invalid)?;
        let mut totals = BillTotals::NONE;
        for row in rows.by_ref() {
            let row = row.map_err(crate::providers::bills::invalid)?;
            let entry = BillEntry {
                kind: match row.kind {
                    paygate_alipay::bill::BillRowKind::Payment => EntryKind::Payment,
                    paygate_alipay::bill::BillRowKind::Refund => EntryKind::Refund,
                },
                order_no: row.out_trade_no,
                provider_txn_id: row.trade_no,
                refund_no: row.out_request_no,
                amount: Fen::new(row.amount_fen).map_err(crate::providers::bills::invalid)?,
                // The trade bill lists only what completed that day: it has no status column.
                status: bill::SUCCESS.to_owned(),
                at: row.trade_time,
            };
            crate::providers::bills::tally(&mut totals, &entry)?;
            if !each(entry) {
                return Err(BillError::Invalid(anyhow!("reading the bill was stopped")));
            }
        }
        rows.totals()
            .ok_or_else(|| BillError::Invalid(anyhow!("the bill ended without its totals")))?;
        Ok(totals)
    }

    async fn verify_callback(
        &self,
        _headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Callback, CallbackError> {
        let n = verify_trade_notification(body, &self.alipay_public_key)
            .map_err(CallbackError::unverified)?;
        if n.app_id != self.app_id {
            return Err(Mismatch::NotOurs("app_id").into());
        }
        // Strict: when a payee is configured, a notification must name it.
        if let Some(seller) = &self.seller_id
            && n.seller_id.as_deref() != Some(seller.as_str())
        {
            return Err(Mismatch::NotOurs("seller_id").into());
        }
        let order_no = OrderNo::parse(&n.out_trade_no).ok_or(Mismatch::NotOurs("out_trade_no"))?;
        let order_total =
            Fen::new(n.total_fen).map_err(|_| Mismatch::Malformed("negative amount"))?;
        // alipay.md §6: a refund sends another trade_status_sync carrying `refund_fee` (the
        // total refunded so far) and `out_biz_no` (the refund's out_request_no; a refund made
        // without one is numbered by the out_trade_no). TRADE_SUCCESS after a partial refund,
        // TRADE_CLOSED after a full one: a refund report, never a second payment.
        if n.refund_fee_fen.is_some() || n.out_biz_no.is_some() {
            return Ok(Callback::Refund(RefundReport {
                out_refund_no: n
                    .out_biz_no
                    .clone()
                    .unwrap_or_else(|| n.out_trade_no.clone()),
                order_no,
                provider: ProviderId::Alipay,
                provider_refund_id: None,
                // Only the cumulative total is given: known refunds have their amount, others
                // are asked for.
                amount: None,
                order_total: Some(order_total),
                outcome: RefundOutcome::Succeeded { at: n.gmt_refund },
            }));
        }
        if n.trade_status == AlipayStatus::TradeClosed {
            // An unpaid trade closed (expiry, our close): verified, nothing to settle.
            return Ok(Callback::Ignored("TRADE_CLOSED".into()));
        }
        if !n.trade_status.is_paid() {
            // Only TRADE_SUCCESS / TRADE_FINISHED settle anything; any other state is answered
            // `fail` so nothing is mistaken for an acknowledged payment.
            return Err(Mismatch::DoesNotSettle {
                what: "trade_status",
                state: n.trade_status.as_str().to_owned(),
            }
            .into());
        }
        // The amount is compared with the order's, exactly, inside the settlement.
        self.paid_trade(order_no, &n.trade_no, n.total_fen, n.paid_at)
            .map(Callback::Paid)
            .map_err(CallbackError::Mismatch)
    }

    fn answer(&self, outcome: &Result<(), CallbackError>) -> Response {
        // Alipay reads the body: exactly `success` stops the retries, anything else is a failure.
        let status = match outcome {
            Ok(()) => return (StatusCode::OK, "success").into_response(),
            Err(CallbackError::Unverified(_) | CallbackError::Mismatch(_)) => {
                StatusCode::BAD_REQUEST
            }
            Err(CallbackError::Temporary(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, "fail").into_response()
    }

    fn verify_return(&self, order: ReturnOrder<'_>, query: &[u8]) -> Result<(), ReturnError> {
        let expected = match order.channel {
            Channel::Page => OrderChannel::PagePay,
            Channel::Wap => OrderChannel::WapPay,
            _ => {
                return Err(ReturnError::NotExpected(
                    "only Alipay page and wap orders come back with a return query",
                ));
            }
        };
        // Signature first (V1 rule), then the facts, against this order and this app.
        let r = paygate_alipay::verify_return_query(query, &self.alipay_public_key)
            .map_err(|e| ReturnError::Unverified(e.to_string()))?;
        let mismatch = |m: &str| Err(ReturnError::Mismatch(m.to_owned()));
        if r.channel != expected {
            return mismatch("the return is of another channel");
        }
        if r.out_trade_no != order.order_no.as_str() {
            return mismatch("the return names another order");
        }
        if r.total_fen != order.amount.get() {
            return mismatch("the return names another amount");
        }
        if r.app_id != self.app_id {
            return mismatch("the return is of another app_id");
        }
        if let Some(seller) = &self.seller_id
            && r.seller_id.as_ref() != Some(seller)
        {
            return mismatch("the return is of another seller_id");
        }
        Ok(())
    }
}
