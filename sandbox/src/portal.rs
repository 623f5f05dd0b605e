//! Refunds made "at the merchant portal" (design §7): `POST /sandbox/refund/{out_trade_no}`
//! with `{"amount": "50.00"}`, a refund paygate did not start, of an order of either provider.
//!
//! - WeChat Pay: a refund numbered `PORTAL…` (a sandbox-made `out_refund_no`) starts
//!   `PROCESSING` and completes like an API refund (time-scaled, or
//!   [`Sandbox::complete_wechat_refunds`], honouring `wechat_refund_outcome`); its `REFUND.*`
//!   notification goes to the order's notify_url, standing in for the refund URL a real
//!   merchant sets on the platform.
//! - Alipay: an immediate refund numbered `PORTAL…` (the `out_request_no`), visible to the
//!   refund query and the trade query (`TRADE_CLOSED` once fully refunded), notified as every
//!   Alipay refund is (a `trade_status_sync` with `refund_fee`, `out_biz_no`, `gmt_refund`).
//!
//! Either way the refund counts against what is left, exactly as API refunds do, so a later
//! API refund for more than remains is refused (`NOT_ENOUGH`, `ACQ.REFUND_AMT_NOT_EQUAL_TOTAL`).
//! It is a control route, like `/sandbox/pay`: no signature, and the API faults do not apply.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Sandbox;

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new().route("/sandbox/refund/{out_trade_no}", post(refund))
}

/// Which provider's ledger held the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortalProvider {
    Wechatpay,
    Alipay,
}

/// The refund's status right after it was made: WeChat's start `PROCESSING`, Alipay's are
/// done at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PortalRefundStatus {
    Processing,
    Success,
}

/// A refund made at the portal, as `POST /sandbox/refund/{out_trade_no}` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalRefund {
    pub provider: PortalProvider,
    pub out_trade_no: String,
    /// The refund's number at the provider: WeChat's `out_refund_no`, Alipay's
    /// `out_request_no` (`PORTAL` and 20 of `[0-9A-Z]`).
    pub refund_no: String,
    /// This refund's amount in yuan, `"50.00"`.
    pub amount: String,
    pub status: PortalRefundStatus,
}

/// Why a portal refund was refused; nothing was refunded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortalRefundError {
    #[error("no such order in either ledger")]
    NotFound,
    #[error("the order is not paid")]
    NotPaid,
    #[error("the amount must be at least 0.01")]
    InvalidAmount,
    #[error("more than is left to refund ({left_fen} fen)")]
    NotEnough { left_fen: i64 },
    #[error("the order already has 50 refunds")]
    TooManyRefunds,
}

impl PortalRefundError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            PortalRefundError::NotFound => (StatusCode::NOT_FOUND, "ORDER_NOT_FOUND"),
            PortalRefundError::NotPaid => (StatusCode::NOT_FOUND, "ORDER_NOT_PAID"),
            PortalRefundError::InvalidAmount => (StatusCode::BAD_REQUEST, "INVALID_AMOUNT"),
            PortalRefundError::NotEnough { .. } => (StatusCode::BAD_REQUEST, "NOT_ENOUGH"),
            PortalRefundError::TooManyRefunds => (StatusCode::BAD_REQUEST, "RULE_LIMIT"),
        }
    }
}

impl Sandbox {
    /// Refunds `amount_fen` of the paid order `out_trade_no` "at the merchant portal", in the
    /// WeChat ledger or else the Alipay one; see the module docs for what follows.
    pub fn portal_refund(
        &self,
        out_trade_no: &str,
        amount_fen: i64,
    ) -> Result<PortalRefund, PortalRefundError> {
        if amount_fen < 1 {
            return Err(PortalRefundError::InvalidAmount);
        }
        if let Some(result) = self.wechat_portal_refund(out_trade_no, amount_fen) {
            return result;
        }
        self.alipay_portal_refund(out_trade_no, amount_fen)
            .unwrap_or(Err(PortalRefundError::NotFound))
    }
}

/// The request body: exactly `{"amount": "<yuan>"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortalRefundRequest {
    amount: String,
}

/// `POST /sandbox/refund/{out_trade_no}`.
async fn refund(
    State(sandbox): State<Sandbox>,
    Path(out_trade_no): Path<String>,
    body: Bytes,
) -> Response {
    let request = match serde_json::from_slice::<PortalRefundRequest>(&body) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                &format!("the body must be {{\"amount\": \"50.00\"}}: {error}"),
            );
        }
    };
    // Exact to the fen or refused, never rounded.
    let Some(amount_fen) = crate::wire::alipay::yuan_to_fen(&request.amount) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "INVALID_AMOUNT",
            "amount must be a yuan amount exact to the fen, like \"50.00\"",
        );
    };
    match sandbox.portal_refund(&out_trade_no, amount_fen) {
        Ok(refund) => axum::Json(refund).into_response(),
        Err(error) => {
            let (status, code) = error.status_and_code();
            error_response(status, code, &error.to_string())
        }
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

/// `PORTAL` and 20 of `[0-9A-Z]`: valid both as WeChat's `out_refund_no` and as Alipay's
/// `out_request_no`.
pub(crate) fn portal_refund_no() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    let tail: String = (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    format!("PORTAL{tail}")
}

#[cfg(test)]
mod tests {
    use super::portal_refund_no;

    #[test]
    fn portal_refund_numbers_are_portal_and_twenty_upper_alphanumerics() {
        let no = portal_refund_no();
        assert_eq!(no.len(), 26);
        assert!(no.starts_with("PORTAL"));
        assert!(
            no.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_ne!(no, portal_refund_no());
    }
}
