//! Asynchronous notifications: a form POST to `notify_url`, verified before anything is read.
//!
//! Two signing rules exist and the message type decides which applies; a gateway never tries
//! both:
//! - V1, trade notifications (`notify_type=trade_status_sync`) and return_url parameters: drop
//!   `sign` **and** `sign_type`, sort, join, verify.
//! - V2, gateway-type messages (e.g. `alipay.open.servicemarket.order.notify`): drop only
//!   `sign`.

use chrono::{DateTime, Utc};

use crate::keys::Verifier;
use crate::money::{AmountError, yuan_to_fen};
use crate::params::{FormError, Params};
use crate::response::TradeStatus;
use crate::time::{parse_beijing_time, parse_beijing_time_with_fraction};

/// Why a notification was not accepted. Whatever the reason, it changes nothing and is
/// answered `fail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("notification is not of the expected type")]
    UnexpectedType,
    #[error("notification is signed with an unsupported sign_type")]
    SignType,
    #[error("notification carries no signature")]
    Unsigned,
    #[error("notification signature does not verify")]
    BadSignature,
    #[error("notification field `{0}` is missing or malformed")]
    Field(&'static str),
    #[error("notification amount is not an exact, non-negative yuan amount")]
    Amount(#[source] AmountError),
}

/// Which parameters a notification's signature leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignRule {
    /// Trade notifications and return_url parameters: without `sign` and `sign_type`.
    V1,
    /// Gateway-type messages: without `sign` only.
    V2,
}

impl SignRule {
    pub fn excluded(self) -> &'static [&'static str] {
        match self {
            SignRule::V1 => &["sign", "sign_type"],
            SignRule::V2 => &["sign"],
        }
    }
}

/// Checks `params` under `rule`. Only RSA2 exists for us: a message claiming another
/// `sign_type` (or none) is refused, whether or not the rule signs that field.
/// The value of `key` in a verified message, which must be there and not empty.
pub(crate) fn required(params: &Params, key: &'static str) -> Result<String, NotifyError> {
    params
        .non_empty(key)
        .map(str::to_owned)
        .ok_or(NotifyError::Field(key))
}

pub fn verify_params(
    params: &Params,
    rule: SignRule,
    verifier: &Verifier,
) -> Result<(), NotifyError> {
    if params.get("sign_type") != Some("RSA2") {
        return Err(NotifyError::SignType);
    }
    let sign = params.non_empty("sign").ok_or(NotifyError::Unsigned)?;
    verifier
        .verify(params.sign_content(rule.excluded()).as_bytes(), sign)
        .map_err(|_| NotifyError::BadSignature)
}

/// What the gateway keeps of a trade notification. Payer fields (`buyer_id`,
/// `buyer_logon_id`, `buyer_open_id`, `seller_email`, …), `subject`, `passback_params` and the
/// fund breakdown are dropped here and never reach it.
///
/// A refund sends another `trade_status_sync` for the same trade (alipay.md §6): the payment
/// fields again, `trade_status` `TRADE_SUCCESS` after a partial refund or `TRADE_CLOSED` after
/// a full one, plus `refund_fee`, `out_biz_no` and `gmt_refund` (and `gmt_close` once closed).
/// A notification with `refund_fee` or `out_biz_no` is about a refund, not a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeNotification {
    pub notify_id: String,
    pub notify_time: DateTime<Utc>,
    pub app_id: String,
    /// Our payee, to check against the configured one when set.
    pub seller_id: Option<String>,
    pub out_trade_no: String,
    pub trade_no: String,
    pub trade_status: TradeStatus,
    pub total_fen: i64,
    /// `gmt_payment`, present once the buyer has paid.
    pub paid_at: Option<DateTime<Utc>>,
    /// `refund_fee`: everything refunded on the trade so far (cumulative, not this refund's
    /// amount), exact fen. Present on refund notifications.
    pub refund_fee_fen: Option<i64>,
    /// `out_biz_no`: on a refund notification, the refund's `out_request_no`.
    pub out_biz_no: Option<String>,
    /// `gmt_refund`: when the refund was made (milliseconds kept when Alipay sends them).
    pub gmt_refund: Option<DateTime<Utc>>,
    /// `gmt_close`: when the trade closed (a full refund closes it).
    pub gmt_close: Option<DateTime<Utc>>,
}

/// Verifies a `trade_status_sync` notification body (V1 rule) and reads what the gateway keeps.
///
/// The caller still checks, against its own order: `app_id`, `seller_id`, `out_trade_no` and
/// the amount (alipay.md §6).
pub fn verify_trade_notification(
    body: &[u8],
    verifier: &Verifier,
) -> Result<TradeNotification, NotifyError> {
    let params = Params::from_form(body)?;
    if params.get("notify_type") != Some("trade_status_sync") {
        return Err(NotifyError::UnexpectedType);
    }
    verify_params(&params, SignRule::V1, verifier)?;
    let text = |key: &'static str| required(&params, key);
    let time = |key: &'static str| -> Result<Option<DateTime<Utc>>, NotifyError> {
        match params.non_empty(key) {
            Some(t) => parse_beijing_time(t)
                .map(Some)
                .ok_or(NotifyError::Field(key)),
            None => Ok(None),
        }
    };
    // Real refund notifications write these two with milliseconds (`… 17:17:05.296`); the
    // other times never show a fraction, so they stay strict.
    let refund_time = |key: &'static str| -> Result<Option<DateTime<Utc>>, NotifyError> {
        match params.non_empty(key) {
            Some(t) => parse_beijing_time_with_fraction(t)
                .map(Some)
                .ok_or(NotifyError::Field(key)),
            None => Ok(None),
        }
    };
    let refund_fee_fen = match params.non_empty("refund_fee") {
        Some(text) => Some(yuan_to_fen(text).map_err(NotifyError::Amount)?),
        None => None,
    };
    Ok(TradeNotification {
        notify_id: text("notify_id")?,
        notify_time: time("notify_time")?.ok_or(NotifyError::Field("notify_time"))?,
        app_id: text("app_id")?,
        seller_id: params.non_empty("seller_id").map(str::to_owned),
        out_trade_no: text("out_trade_no")?,
        trade_no: text("trade_no")?,
        trade_status: TradeStatus::parse(&text("trade_status")?),
        total_fen: yuan_to_fen(&text("total_amount")?).map_err(NotifyError::Amount)?,
        paid_at: time("gmt_payment")?,
        refund_fee_fen,
        out_biz_no: params.non_empty("out_biz_no").map(str::to_owned),
        gmt_refund: refund_time("gmt_refund")?,
        gmt_close: refund_time("gmt_close")?,
    })
}

/// Verifies a gateway-type message whose `method` must be `method` (V2 rule) and returns its
/// parameters.
pub fn verify_gateway_message(
    body: &[u8],
    method: &str,
    verifier: &Verifier,
) -> Result<Params, NotifyError> {
    let params = Params::from_form(body)?;
    if params.get("method") != Some(method) {
        return Err(NotifyError::UnexpectedType);
    }
    verify_params(&params, SignRule::V2, verifier)?;
    Ok(params)
}
