//! Wire types of the endpoints paygate uses. Request types are built from an allowlist (design
//! §1.1): there is no field for `attach`, `detail`, goods or any person, so none can be sent.
//! Response types have no field for payer data (design §1.2): `payer.openid` and `attach` are
//! dropped by serde while parsing and never enter the gateway.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `POST /v3/pay/transactions/native`. Only merchant ids, the order number, the amount, one
/// neutral description, the expiry and the notify URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeOrderRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    /// RFC 3339 `yyyy-MM-DDTHH:mm:ss+08:00`; WeChat forbids `null`, so absent rather than null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    pub notify_url: String,
    pub amount: OrderAmount,
}

/// `POST /v3/pay/transactions/jsapi` (公众号 / 小程序): the Native fields plus the payer's openid,
/// which JSAPI makes mandatory. The openid is the one exception to "nothing about a person
/// leaves" (design §1.1): passed through for this one request, never stored, never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsapiOrderRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    pub notify_url: String,
    pub amount: OrderAmount,
    pub payer: Payer,
}

impl JsapiOrderRequest {
    /// The common order fields (those of a Native order) plus the payer.
    pub fn new(order: NativeOrderRequest, payer: Payer) -> JsapiOrderRequest {
        JsapiOrderRequest {
            appid: order.appid,
            mchid: order.mchid,
            description: order.description,
            out_trade_no: order.out_trade_no,
            time_expire: order.time_expire,
            notify_url: order.notify_url,
            amount: order.amount,
            payer,
        }
    }
}

/// `{"openid": …}`. Its `Debug` never shows the openid, so a request logged by mistake with
/// `{:?}` still leaks nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub openid: String,
}

impl fmt::Debug for Payer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payer").field("openid", &REDACTED).finish()
    }
}

/// `POST /v3/pay/transactions/h5`: the Native fields plus the `scene_info` H5 makes mandatory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct H5OrderRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    pub notify_url: String,
    pub amount: OrderAmount,
    pub scene_info: H5SceneInfo,
}

impl H5OrderRequest {
    /// The common order fields (those of a Native order) plus the scene.
    pub fn new(order: NativeOrderRequest, scene_info: H5SceneInfo) -> H5OrderRequest {
        H5OrderRequest {
            appid: order.appid,
            mchid: order.mchid,
            description: order.description,
            out_trade_no: order.out_trade_no,
            time_expire: order.time_expire,
            notify_url: order.notify_url,
            amount: order.amount,
            scene_info,
        }
    }
}

/// `scene_info` of an H5 order: exactly the payer's IP (string(45), IPv4 or IPv6) and the
/// `h5_info.type`. None of the optional scene fields (`device_id`, `store_info`, `h5_info`'s
/// app names and URLs) exist here, so none can be sent. `Debug` hides the IP.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct H5SceneInfo {
    pub payer_client_ip: String,
    pub h5_info: H5Info,
}

impl fmt::Debug for H5SceneInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H5SceneInfo")
            .field("payer_client_ip", &REDACTED)
            .field("h5_info", &self.h5_info)
            .finish()
    }
}

/// `{"type": "iOS" | "Android" | "Wap"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct H5Info {
    #[serde(rename = "type")]
    pub kind: String,
}

/// `POST /v3/pay/transactions/app`: exactly the Native fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppOrderRequest {
    pub appid: String,
    pub mchid: String,
    pub description: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    pub notify_url: String,
    pub amount: OrderAmount,
}

impl From<NativeOrderRequest> for AppOrderRequest {
    /// The same fields, sent to the App endpoint.
    fn from(order: NativeOrderRequest) -> AppOrderRequest {
        AppOrderRequest {
            appid: order.appid,
            mchid: order.mchid,
            description: order.description,
            out_trade_no: order.out_trade_no,
            time_expire: order.time_expire,
            notify_url: order.notify_url,
            amount: order.amount,
        }
    }
}

/// `{"prepay_id": "wx…"}` (string(64), valid 2 hours) of a JSAPI or App order; the second stage
/// is [`crate::MerchantCredentials::jsapi_pay_params`] / `app_pay_params`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepayResponse {
    pub prepay_id: String,
}

/// `{"h5_url": "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?…"}`, valid 5 minutes; the
/// buyer's browser opens it (a URL-encoded `redirect_url` may be appended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct H5OrderResponse {
    pub h5_url: String,
}

impl H5OrderResponse {
    /// The h5_url the buyer's browser opens, sending it back to `redirect_url` after paying:
    /// WeChat's documented `&redirect_url=` + the URL-encoded return address, appended to the
    /// answered URL (which always has a query of its own; `?` would only be used if it had
    /// none). The redirect carries no payment result: WeChat appends nothing to it.
    pub fn url_with_redirect(&self, redirect_url: &str) -> String {
        let separator = if self.h5_url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}redirect_url={}",
            self.h5_url,
            url_encode_component(redirect_url)
        )
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (as `encodeURIComponent`
/// and PHP's `rawurlencode` do): `:`, `/`, `?`, `&`, `=` of the embedded URL all become escapes,
/// so the embedded URL cannot add parameters to WeChat's.
pub fn url_encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const REDACTED: &str = "[redacted]";

/// Amount in fen (integer, ≥ 1) and currency (`CNY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAmount {
    pub total: i64,
    pub currency: String,
}

/// `{"code_url":"weixin://wxpay/bizpayurl?pr=…"}`, valid for 2 hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeOrderResponse {
    pub code_url: String,
}

/// `{"mchid": …}`, the body of `POST …/out-trade-no/{out_trade_no}/close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRequest {
    pub mchid: String,
}

/// The query-order answer and the decrypted `TRANSACTION.SUCCESS` resource. Deliberately has no
/// `payer` and no `attach` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub appid: String,
    pub mchid: String,
    pub out_trade_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_type: Option<String>,
    pub trade_state: TradeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_state_desc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_type: Option<String>,
    /// RFC 3339 with offset, e.g. `2026-11-29T12:01:07+08:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<TransactionAmount>,
}

/// Amounts of a transaction, integers in fen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionAmount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_currency: Option<String>,
}

/// `trade_state`. Terminal for Native/JSAPI/H5/App: `SUCCESS`, `REFUND`, `CLOSED`; `NOTPAY` can
/// still become `SUCCESS` or `CLOSED`. The last three are for 付款码 (micropay) only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TradeState {
    #[serde(rename = "SUCCESS")]
    Success,
    #[serde(rename = "REFUND")]
    Refund,
    #[serde(rename = "NOTPAY")]
    NotPay,
    #[serde(rename = "CLOSED")]
    Closed,
    #[serde(rename = "REVOKED")]
    Revoked,
    #[serde(rename = "USERPAYING")]
    UserPaying,
    #[serde(rename = "PAYERROR")]
    PayError,
    /// A state WeChat added after this was written: treat as "not settled, ask again".
    #[serde(rename = "UNKNOWN", other)]
    Unknown,
}

impl TradeState {
    /// The wire name (`NOTPAY`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TradeState::Success => "SUCCESS",
            TradeState::Refund => "REFUND",
            TradeState::NotPay => "NOTPAY",
            TradeState::Closed => "CLOSED",
            TradeState::Revoked => "REVOKED",
            TradeState::UserPaying => "USERPAYING",
            TradeState::PayError => "PAYERROR",
            TradeState::Unknown => "UNKNOWN",
        }
    }
}

/// The callback envelope (wechatpay-v3.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub create_time: String,
    pub event_type: String,
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub resource: EncryptedResource,
}

/// An AEAD_AES_256_GCM-encrypted resource (callbacks, `/v3/certificates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associated_data: Option<String>,
    pub nonce: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
}

/// The only resource algorithm WeChat Pay APIv3 uses.
pub const AEAD_AES_256_GCM: &str = "AEAD_AES_256_GCM";
/// `event_type` of a successful payment (basic payment notifies only on success).
pub const EVENT_TRANSACTION_SUCCESS: &str = "TRANSACTION.SUCCESS";

/// `event_type` of a refund that reached the buyer.
pub const EVENT_REFUND_SUCCESS: &str = "REFUND.SUCCESS";
/// `event_type` of a refund that failed at the buyer's side (e.g. a closed card account); the
/// merchant must resolve it (offline or a new refund).
pub const EVENT_REFUND_ABNORMAL: &str = "REFUND.ABNORMAL";
/// `event_type` of a refund WeChat closed without paying it out.
pub const EVENT_REFUND_CLOSED: &str = "REFUND.CLOSED";

/// `POST /v3/refund/domestic/refunds`. The allowlist (design §1.1): the order number, the
/// refund number, the amounts, and optionally a reason and notify URL. There is no field for
/// `transaction_id`, `funds_account`, `goods_detail` or `amount.from`, so none can be sent.
///
/// `out_refund_no` is WeChat's idempotency key: the same number is refunded once, so a retry
/// re-posts the same number with identical parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub out_trade_no: String,
    /// string(64) of `[0-9A-Za-z_-|*@]`, unique per merchant.
    pub out_refund_no: String,
    /// string(80); shown to the buyer, so it must say nothing about anyone. WeChat forbids
    /// `null`, so absent rather than null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// string(256); overrides the refund notify URL set on the merchant platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    pub amount: RefundAmount,
}

/// The amounts of a refund request, integers in fen: `refund` ≤ the paid `total`, which must be
/// the order's total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmount {
    pub refund: i64,
    pub total: i64,
    /// `CNY`.
    pub currency: String,
}

/// The answer of a refund create and of `GET /v3/refund/domestic/refunds/{out_refund_no}`.
/// Deliberately has no `user_received_account` (where the buyer got the money, e.g.
/// `招商银行信用卡0403`: payer data, design §1.2), no `funds_account` and no `promotion_detail`;
/// serde drops them while parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub out_refund_no: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    /// `ORIGINAL` / `BALANCE` / `OTHER_BALANCE` / `OTHER_BANKCARD`: the kind of route the money
    /// took, not an account; kept like a payment's `bank_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub status: RefundStatus,
    /// RFC 3339 with offset; present once `SUCCESS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    pub amount: RefundAmounts,
}

/// Amounts of a refund (answer and notification), integers in fen. `settlement_*`,
/// `discount_refund` and `from` are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundAmounts {
    /// The order's total.
    pub total: i64,
    /// This refund.
    pub refund: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer_refund: Option<i64>,
    /// Absent in the notification resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// `status` of a refund (`refund_status` in the notification). `PROCESSING` can still become
/// any of the other three; `SUCCESS` and `CLOSED` are final; `ABNORMAL` needs the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefundStatus {
    #[serde(rename = "SUCCESS")]
    Success,
    #[serde(rename = "CLOSED")]
    Closed,
    #[serde(rename = "PROCESSING")]
    Processing,
    #[serde(rename = "ABNORMAL")]
    Abnormal,
    /// A status WeChat added after this was written: treat as "not final, ask again".
    #[serde(rename = "UNKNOWN", other)]
    Unknown,
}

impl RefundStatus {
    /// The wire name (`PROCESSING`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Closed => "CLOSED",
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Abnormal => "ABNORMAL",
            RefundStatus::Unknown => "UNKNOWN",
        }
    }
}

/// The decrypted resource of a `REFUND.*` notification (`original_type` `refund`). Note
/// `refund_status` here where the refund API answers `status`. Deliberately has no
/// `user_received_account` (payer data, design §1.2); serde drops it while parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundNotification {
    pub mchid: String,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub out_refund_no: String,
    pub refund_id: String,
    pub refund_status: RefundStatus,
    /// RFC 3339 with offset; present for `SUCCESS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    pub amount: RefundAmounts,
}

/// Every 4xx/5xx body: `{"code":"PARAM_ERROR","message":"…"}` (`detail` optional, ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `GET /v3/certificates` (platform certificate mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatesResponse {
    pub data: Vec<PlatformCertificate>,
}

/// One platform certificate, its PEM encrypted under the APIv3 key (AAD `certificate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformCertificate {
    pub serial_no: String,
    pub effective_time: String,
    pub expire_time: String,
    pub encrypt_certificate: EncryptedResource,
}

/// `GET /v3/bill/tradebill` (and `fundflowbill`): where to download the bill and its hash.
/// `download_url` carries a short-lived token (5 minutes in the current docs, 30 s in older
/// ones), so `Debug` shows the URL without its query.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillDownload {
    /// `SHA1`.
    pub hash_type: String,
    /// Lower-hex SHA-1 of the uncompressed file.
    pub hash_value: String,
    /// `https://api.mch.weixin.qq.com/v3/billdownload/file?token=…`.
    pub download_url: String,
}

impl fmt::Debug for BillDownload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let without_query = self
            .download_url
            .split_once('?')
            .map_or(self.download_url.as_str(), |(url, _)| url);
        f.debug_struct("BillDownload")
            .field("hash_type", &self.hash_type)
            .field("hash_value", &self.hash_value)
            .field("download_url", &format_args!("{without_query}?[redacted]"))
            .finish()
    }
}
