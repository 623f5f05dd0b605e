//! Alipay OpenAPI (classic `gateway.do`, RSA2) for paygate.
//!
//! A pure core (bytes in, bytes out, no I/O, no clock) and a thin reqwest [`Client`] on top:
//!
//! - [`keys`]: the app private key ([`Signer`]) and Alipay's public key ([`Verifier`]), parsed
//!   once; SHA256withRSA on aws-lc-rs, or on `rsa` with the `pure-rust` feature.
//! - [`params`]: flat parameters, form decoding (exactly once) and the sign string.
//! - [`request`]: signed precreate / page / wap / app pay, query, close, refund and refund query
//!   requests. Only the order number, the amount, the neutral subject, the product code, the
//!   expiry, the notify URL and (page/wap) the return URL, and for refunds the refund's number and a neutral reason leave.
//! - [`response`]: the raw `*_response` node cut out and verified before it is parsed; typed
//!   answers with amounts in exact fen and no payer fields.
//! - [`notify`]: trade notifications (V1 rule), payments and refunds alike, and gateway-type
//!   messages (V2 rule).
//! - [`return_query`]: the signed query Alipay appends to `return_url` when it sends the
//!   browser back from a page/wap payment (V1 rule; never proof of payment).
//! - [`bill`]: trade bills for the daily reconciliation: the download URL query, and a streaming
//!   reader of the downloaded ZIP of GBK CSVs into [`BillRow`]s (no payer column) whose footer
//!   totals are checked once every row is read. [`Client::bill_download_url`] and
//!   [`Client::download_bill`] do the HTTP.
//! - [`simulator`]: Alipay's side, for the sandbox, including
//!   [`simulator::write_trade_bill_zip`], which writes bills in Alipay's format.
//!
//! Wire facts and their sources: `docs/alipay.md` of the shared design docs.

pub mod bill;
pub mod client;
pub mod keys;
pub mod money;
pub mod notify;
pub mod params;
pub mod request;
pub mod response;
pub mod return_query;
pub mod simulator;
pub mod time;

pub use bill::{
    BillError, BillRow, BillRowKind, BillTotals, BillUrl, TradeBillReader, TradeBillRows,
    bill_download_url_request, read_bill_download_url_response,
};
pub use client::{Client, Clock, Error, RetryPolicy};
pub use keys::{BadSignature, KeyError, SignFailed, Signer, Verifier, generate_key_pair};
pub use money::{AmountError, fen_to_yuan, yuan_to_fen};
pub use notify::{
    NotifyError, SignRule, TradeNotification, verify_gateway_message, verify_params,
    verify_trade_notification,
};
pub use params::{FormError, Params};
pub use request::{
    OrderChannel, OrderRequest, RefundCall, RefundRequest, RequestError, SignedRequest, TradeCall,
    order_request, refund_query_request, refund_request, response_key, trade_request,
};
pub use response::{
    ApiError, CloseResponse, PrecreateResponse, QueryResponse, RefundQueryResponse, RefundResponse,
    RefundStatus, ResponseError, TradeStatus, extract_signed_content, read_close_response,
    read_precreate_response, read_query_response, read_refund_query_response, read_refund_response,
    verify_response,
};
pub use return_query::{ReturnQuery, return_method, verify_return_query};
pub use time::{beijing_time, parse_beijing_time, parse_beijing_time_with_fraction};
