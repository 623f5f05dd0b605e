//! The synchronous return: after paying on a page/wap order, Alipay sends the buyer's browser
//! to the order's `return_url` with a signed query (alipay.md §4, "return_url"): `app_id`,
//! `method=alipay.trade.page.pay.return` (or `wap.pay.return`), `out_trade_no`, `trade_no`,
//! `total_amount`, `seller_id`, `timestamp`, `charset`, `version`, `sign_type`, `sign`…
//!
//! It is signed under the V1 rule (without `sign` and `sign_type`), like a trade notification.
//! It is **never proof of payment**: a browser can replay it or be sent it by anyone who saw
//! it. A verified one only tells the gateway that asking Alipay now is worth it.

use chrono::{DateTime, Utc};

use crate::keys::Verifier;
use crate::money::yuan_to_fen;
use crate::notify::{NotifyError, SignRule, required, verify_params};
use crate::params::Params;
use crate::request::OrderChannel;
use crate::time::parse_beijing_time;

/// What the gateway keeps of a verified return query. Anything else in it (a buyer id some
/// versions add, `auth_app_id`, …) is dropped here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnQuery {
    /// Which browser order came back: page or wap pay.
    pub channel: OrderChannel,
    pub app_id: String,
    pub seller_id: Option<String>,
    pub out_trade_no: String,
    pub trade_no: String,
    pub total_fen: i64,
    pub timestamp: DateTime<Utc>,
}

/// The `method` of the return query of a browser order of `channel`; None for the channels
/// that have no return (precreate, app pay).
pub fn return_method(channel: OrderChannel) -> Option<&'static str> {
    match channel {
        OrderChannel::PagePay => Some("alipay.trade.page.pay.return"),
        OrderChannel::WapPay => Some("alipay.trade.wap.pay.return"),
        OrderChannel::Precreate | OrderChannel::AppPay => None,
    }
}

/// Verifies the raw return query string (without the leading `?`; decoded exactly once) and
/// reads what the gateway keeps. The caller still checks `out_trade_no`, the amount, `app_id`
/// and `seller_id` against its own order and configuration.
pub fn verify_return_query(query: &[u8], verifier: &Verifier) -> Result<ReturnQuery, NotifyError> {
    let params = Params::from_form(query)?;
    let channel = match params.get("method") {
        Some(m) if Some(m) == return_method(OrderChannel::PagePay) => OrderChannel::PagePay,
        Some(m) if Some(m) == return_method(OrderChannel::WapPay) => OrderChannel::WapPay,
        _ => return Err(NotifyError::UnexpectedType),
    };
    verify_params(&params, SignRule::V1, verifier)?;
    let text = |key: &'static str| required(&params, key);
    Ok(ReturnQuery {
        channel,
        app_id: text("app_id")?,
        seller_id: params.non_empty("seller_id").map(str::to_owned),
        out_trade_no: text("out_trade_no")?,
        trade_no: text("trade_no")?,
        total_fen: yuan_to_fen(&text("total_amount")?).map_err(NotifyError::Amount)?,
        timestamp: parse_beijing_time(&text("timestamp")?)
            .ok_or(NotifyError::Field("timestamp"))?,
    })
}
