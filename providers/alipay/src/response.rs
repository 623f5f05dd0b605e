//! Synchronous answers: `{"<method>_response":{…},"sign":"…"}`.
//!
//! Alipay signs the exact bytes of the response node, from its `{` to the matching `}`, with
//! whitespace, key order and escapes as sent (it writes `/` as `\/` and the backslash is signed).
//! So the node is cut out of the raw text by a string- and escape-aware scan and verified before
//! anything is parsed; it is never parsed and re-serialised first. We do not retry with `\/`
//! replaced by `/` as the Java SDK does after a failure: a signature either holds over the bytes
//! received or the answer is not trusted.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::Verifier;
use crate::money::{AmountError, yuan_to_fen};
use crate::request::{OrderChannel, RefundCall, TradeCall, response_key};
use crate::time::parse_beijing_time;

/// The code of a call that succeeded.
const SUCCESS: &str = "10000";
const ERROR_RESPONSE: &str = "error_response";

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("response is not the JSON object Alipay sends")]
    Malformed,
    #[error("response has no `{0}` node")]
    MissingNode(String),
    #[error("response node `{0}` appears more than once")]
    RepeatedNode(String),
    #[error("response carries no signature")]
    Unsigned,
    #[error("response signature does not verify")]
    BadSignature,
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("response field `{0}` is missing or malformed")]
    Field(&'static str),
    #[error("response amount `{field}` is not an exact, non-negative yuan amount")]
    Amount {
        field: &'static str,
        #[source]
        source: AmountError,
    },
    #[error("response is about another order")]
    OtherOrder,
    #[error("response is about another refund")]
    OtherRefund,
}

/// A call Alipay answered with a code other than 10000.
///
/// Only the codes are kept (and shown): they say what happened without carrying any text that
/// could name a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alipay answered code {code}, sub_code {}", sub_code.as_deref().unwrap_or("-"))]
pub struct ApiError {
    pub code: String,
    pub sub_code: Option<String>,
    /// Whether the answer carried a signature that verified. Alipay may leave `error_response`
    /// unsigned; such an error is reported but proves nothing.
    pub signed: bool,
}

impl ApiError {
    /// Worth retrying (and, for a create, worth a query before anything else): code 20000
    /// (`isp.unknow-error`, `aop.unknow-error`) and `ACQ.SYSTEM_ERROR`, which alipay.md says to
    /// retry and then query.
    pub fn is_unavailable(&self) -> bool {
        self.code == "20000" || self.sub_code.as_deref() == Some("ACQ.SYSTEM_ERROR")
    }

    /// `ACQ.TRADE_NOT_EXIST`: Alipay has no trade for that order number (a precreated QR code
    /// nobody has scanned yet, or an unknown order).
    pub fn is_trade_not_exist(&self) -> bool {
        self.sub_code.as_deref() == Some("ACQ.TRADE_NOT_EXIST")
    }

    /// The bill asked for does not exist (yet): `isp.bill_not_exist`, or `BILL_NOT_EXIST`, the
    /// older code alipay.md also lists. Daily bills appear about 09:00-10:00 the next day, so
    /// before then this means "ask again later", after it "no bill for that day".
    pub fn is_bill_not_exist(&self) -> bool {
        matches!(
            self.sub_code.as_deref(),
            Some("isp.bill_not_exist" | "BILL_NOT_EXIST")
        )
    }
}

/// The parts of a raw answer, as located by [`extract_signed_content`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedContent<'a> {
    /// The exact text of the node, `{` to `}`: what the signature covers.
    pub node: &'a str,
    /// True when the node is `error_response` (the method's node was absent).
    pub is_error_response: bool,
    /// The top-level `sign`, decoded from its JSON string; `None` when absent or empty.
    pub sign: Option<String>,
}

/// Cuts the signed node out of a raw answer: the `response_key` member of the top-level object,
/// or `error_response` when that is absent. The answer is rejected when it is not one JSON
/// object, when the node is not an object, or when the node's name appears again after it.
pub fn extract_signed_content<'a>(
    raw: &'a str,
    response_key: &str,
) -> Result<SignedContent<'a>, ResponseError> {
    let members = top_level_members(raw)?;
    let find = |key: &str| -> Result<Option<&Member<'a>>, ResponseError> {
        let mut found = members.iter().filter(|m| m.key == key);
        let first = found.next();
        if found.next().is_some() {
            return Err(ResponseError::RepeatedNode(key.to_owned()));
        }
        Ok(first)
    };
    let (member, is_error_response) = match find(response_key)? {
        Some(member) => (member, false),
        None => match find(ERROR_RESPONSE)? {
            Some(member) => (member, true),
            None => return Err(ResponseError::MissingNode(response_key.to_owned())),
        },
    };
    if !member.value.starts_with('{') {
        // An encrypted (`encrypt_type=AES`) node is a string; we never ask for encryption.
        return Err(ResponseError::Malformed);
    }
    // As the Java SDK does: the node's name anywhere after the node means the text was spliced.
    let rest = &raw[member.end..];
    if rest.contains(&format!("\"{}\"", member.key)) {
        return Err(ResponseError::RepeatedNode(member.key.to_owned()));
    }
    let sign = match find("sign")? {
        Some(m) => {
            Some(serde_json::from_str::<String>(m.value).map_err(|_| ResponseError::Malformed)?)
        }
        None => None,
    }
    .filter(|s| !s.is_empty());
    Ok(SignedContent {
        node: member.value,
        is_error_response,
        sign,
    })
}

/// Verifies an answer to `method` with Alipay's public key and returns the node text of a call
/// that succeeded (code 10000).
///
/// - A present signature must verify over the node bytes, or the answer is rejected, whatever it
///   says.
/// - An answer without a signature is never a success: an unsigned `error_response` or
///   non-10000 node becomes an [`ApiError`] marked unsigned, anything else is rejected.
pub fn verify_response<'a>(
    raw: &'a str,
    method: &str,
    verifier: &Verifier,
) -> Result<&'a str, ResponseError> {
    let content = extract_signed_content(raw, &response_key(method))?;
    let signed = match &content.sign {
        Some(sign) => {
            verifier
                .verify(content.node.as_bytes(), sign)
                .map_err(|_| ResponseError::BadSignature)?;
            true
        }
        None => false,
    };
    let status: StatusWire =
        serde_json::from_str(content.node).map_err(|_| ResponseError::Malformed)?;
    let code = status.code.unwrap_or_default();
    if content.is_error_response || code != SUCCESS {
        return Err(ResponseError::Api(ApiError {
            code,
            sub_code: status.sub_code.filter(|s| !s.is_empty()),
            signed,
        }));
    }
    if !signed {
        return Err(ResponseError::Unsigned);
    }
    Ok(content.node)
}

#[derive(Deserialize)]
struct StatusWire {
    code: Option<String>,
    sub_code: Option<String>,
}

/// A trade's state at Alipay. Only `TradeSuccess` and `TradeFinished` mean paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    WaitBuyerPay,
    TradeClosed,
    TradeSuccess,
    TradeFinished,
    #[serde(other)]
    Unknown,
}

impl TradeStatus {
    pub fn is_paid(self) -> bool {
        matches!(self, TradeStatus::TradeSuccess | TradeStatus::TradeFinished)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
            TradeStatus::Unknown => "UNKNOWN",
        }
    }

    /// Reads a status as Alipay writes it; anything new is `Unknown`.
    pub fn parse(text: &str) -> TradeStatus {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .unwrap_or(TradeStatus::Unknown)
    }
}

/// `alipay.trade.precreate` succeeded: the QR code content for the buyer to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrecreateResponse {
    pub out_trade_no: String,
    pub qr_code: String,
}

/// `alipay.trade.query` succeeded. Payer fields (`buyer_user_id`, `buyer_logon_id`,
/// `buyer_open_id`, …) have no place here: serde drops them while parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResponse {
    pub out_trade_no: String,
    pub trade_no: String,
    pub trade_status: TradeStatus,
    pub total_fen: i64,
    /// `send_pay_date`, when Alipay gives it (paid trades).
    pub paid_at: Option<DateTime<Utc>>,
}

/// `alipay.trade.close` succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseResponse {
    pub out_trade_no: Option<String>,
    pub trade_no: Option<String>,
}

/// `alipay.trade.refund` answered 10000: the request was accepted. Payer fields
/// (`buyer_logon_id`, `buyer_user_id`) have no place here: serde drops them while parsing.
///
/// Only `fund_change: true` proves that this call moved money. `false` is the answer to a
/// refund already made (the same `out_request_no` again), and alipay.md also allows it for one
/// not settled yet: either way, confirm with a refund query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResponse {
    pub out_trade_no: String,
    pub trade_no: String,
    /// `fund_change` `Y`.
    pub fund_change: bool,
    /// `refund_fee`: everything refunded on this trade so far, this refund included. Not this
    /// refund's amount.
    pub refund_fee_fen: i64,
    /// `gmt_refund_pay`, when Alipay gives it.
    pub gmt_refund_pay: Option<DateTime<Utc>>,
}

/// Where a refund stands, as `alipay.trade.fastpay.refund.query` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundStatus {
    /// `REFUND_SUCCESS`: the money went back.
    Success,
    /// No `refund_status`: Alipay has not received the refund, or it failed (alipay.md §5).
    /// Re-posting the same `out_request_no` is safe.
    NotFound,
    /// A `refund_status` we do not know; neither done nor safely absent.
    Unknown,
}

/// `alipay.trade.fastpay.refund.query` answered 10000.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundQueryResponse {
    pub out_trade_no: String,
    pub out_request_no: String,
    /// `refund_amount`: this refund's amount (present whenever the status is `Success`).
    pub refund_fen: Option<i64>,
    /// `total_amount`: the trade's amount.
    pub total_fen: Option<i64>,
    pub refund_status: RefundStatus,
}

#[derive(Deserialize)]
struct PrecreateWire {
    out_trade_no: Option<String>,
    qr_code: Option<String>,
}

#[derive(Deserialize)]
struct QueryWire {
    out_trade_no: Option<String>,
    trade_no: Option<String>,
    trade_status: Option<TradeStatus>,
    // Strings only: a JSON number would go through a float.
    total_amount: Option<String>,
    send_pay_date: Option<String>,
}

#[derive(Deserialize)]
struct CloseWire {
    out_trade_no: Option<String>,
    trade_no: Option<String>,
}

#[derive(Deserialize)]
struct RefundWire {
    out_trade_no: Option<String>,
    trade_no: Option<String>,
    fund_change: Option<String>,
    refund_fee: Option<String>,
    gmt_refund_pay: Option<String>,
}

#[derive(Deserialize)]
struct RefundQueryWire {
    out_trade_no: Option<String>,
    out_request_no: Option<String>,
    refund_amount: Option<String>,
    total_amount: Option<String>,
    refund_status: Option<String>,
}

/// Verifies and reads the answer to a precreate of `out_trade_no`.
pub fn read_precreate_response(
    raw: &str,
    verifier: &Verifier,
    out_trade_no: &str,
) -> Result<PrecreateResponse, ResponseError> {
    let wire: PrecreateWire = parse_node(raw, OrderChannel::Precreate.method(), verifier)?;
    let answered = wire
        .out_trade_no
        .ok_or(ResponseError::Field("out_trade_no"))?;
    if answered != out_trade_no {
        return Err(ResponseError::OtherOrder);
    }
    let qr_code = wire
        .qr_code
        .filter(|q| !q.is_empty())
        .ok_or(ResponseError::Field("qr_code"))?;
    Ok(PrecreateResponse {
        out_trade_no: answered,
        qr_code,
    })
}

/// Verifies and reads the answer to a query of `out_trade_no`.
pub fn read_query_response(
    raw: &str,
    verifier: &Verifier,
    out_trade_no: &str,
) -> Result<QueryResponse, ResponseError> {
    let wire: QueryWire = parse_node(raw, TradeCall::Query.method(), verifier)?;
    let answered = wire
        .out_trade_no
        .ok_or(ResponseError::Field("out_trade_no"))?;
    if answered != out_trade_no {
        return Err(ResponseError::OtherOrder);
    }
    let total = wire
        .total_amount
        .ok_or(ResponseError::Field("total_amount"))?;
    let paid_at = match wire.send_pay_date.filter(|d| !d.is_empty()) {
        Some(text) => Some(parse_beijing_time(&text).ok_or(ResponseError::Field("send_pay_date"))?),
        None => None,
    };
    Ok(QueryResponse {
        out_trade_no: answered,
        trade_no: wire.trade_no.ok_or(ResponseError::Field("trade_no"))?,
        trade_status: wire
            .trade_status
            .ok_or(ResponseError::Field("trade_status"))?,
        total_fen: yuan_to_fen(&total).map_err(|source| ResponseError::Amount {
            field: "total_amount",
            source,
        })?,
        paid_at,
    })
}

/// Verifies and reads the answer to a close of `out_trade_no`.
pub fn read_close_response(
    raw: &str,
    verifier: &Verifier,
    out_trade_no: &str,
) -> Result<CloseResponse, ResponseError> {
    let wire: CloseWire = parse_node(raw, TradeCall::Close.method(), verifier)?;
    if wire
        .out_trade_no
        .as_deref()
        .is_some_and(|o| o != out_trade_no)
    {
        return Err(ResponseError::OtherOrder);
    }
    Ok(CloseResponse {
        out_trade_no: wire.out_trade_no,
        trade_no: wire.trade_no,
    })
}

/// Verifies and reads the answer to a refund of `out_trade_no`. `fund_change` must be `Y` or
/// `N` and `refund_fee` an exact amount; anything else is rejected rather than guessed.
pub fn read_refund_response(
    raw: &str,
    verifier: &Verifier,
    out_trade_no: &str,
) -> Result<RefundResponse, ResponseError> {
    let wire: RefundWire = parse_node(raw, RefundCall::Refund.method(), verifier)?;
    let answered = wire
        .out_trade_no
        .ok_or(ResponseError::Field("out_trade_no"))?;
    if answered != out_trade_no {
        return Err(ResponseError::OtherOrder);
    }
    let fund_change = match wire.fund_change.as_deref() {
        Some("Y") => true,
        Some("N") => false,
        _ => return Err(ResponseError::Field("fund_change")),
    };
    let refund_fee = wire.refund_fee.ok_or(ResponseError::Field("refund_fee"))?;
    Ok(RefundResponse {
        out_trade_no: answered,
        trade_no: wire.trade_no.ok_or(ResponseError::Field("trade_no"))?,
        fund_change,
        refund_fee_fen: amount("refund_fee", &refund_fee)?,
        gmt_refund_pay: optional_time("gmt_refund_pay", wire.gmt_refund_pay)?,
    })
}

/// Verifies and reads the answer to a refund query of `out_request_no` of `out_trade_no`.
///
/// An unknown refund may come back as little as `{"code":"10000","msg":"Success"}`, so the two
/// numbers are taken from the request when absent, and must match it when present.
pub fn read_refund_query_response(
    raw: &str,
    verifier: &Verifier,
    out_trade_no: &str,
    out_request_no: &str,
) -> Result<RefundQueryResponse, ResponseError> {
    let wire: RefundQueryWire = parse_node(raw, RefundCall::Query.method(), verifier)?;
    if wire
        .out_trade_no
        .as_deref()
        .is_some_and(|o| o != out_trade_no)
    {
        return Err(ResponseError::OtherOrder);
    }
    if wire
        .out_request_no
        .as_deref()
        .is_some_and(|o| o != out_request_no)
    {
        return Err(ResponseError::OtherRefund);
    }
    let refund_status = match wire.refund_status.as_deref() {
        None | Some("") => RefundStatus::NotFound,
        Some("REFUND_SUCCESS") => RefundStatus::Success,
        Some(_) => RefundStatus::Unknown,
    };
    let refund_fen = wire
        .refund_amount
        .map(|text| amount("refund_amount", &text))
        .transpose()?;
    // A success without its amount cannot be booked.
    if refund_status == RefundStatus::Success && refund_fen.is_none() {
        return Err(ResponseError::Field("refund_amount"));
    }
    Ok(RefundQueryResponse {
        out_trade_no: out_trade_no.to_owned(),
        out_request_no: out_request_no.to_owned(),
        refund_fen,
        total_fen: wire
            .total_amount
            .map(|text| amount("total_amount", &text))
            .transpose()?,
        refund_status,
    })
}

fn amount(field: &'static str, text: &str) -> Result<i64, ResponseError> {
    yuan_to_fen(text).map_err(|source| ResponseError::Amount { field, source })
}

fn optional_time(
    field: &'static str,
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, ResponseError> {
    match text.filter(|t| !t.is_empty()) {
        Some(text) => Ok(Some(
            parse_beijing_time(&text).ok_or(ResponseError::Field(field))?,
        )),
        None => Ok(None),
    }
}

pub(crate) fn parse_node<T: DeserializeOwned>(
    raw: &str,
    method: &str,
    verifier: &Verifier,
) -> Result<T, ResponseError> {
    let node = verify_response(raw, method, verifier)?;
    serde_json::from_str(node).map_err(|_| ResponseError::Malformed)
}

struct Member<'a> {
    /// The key as written between its quotes.
    key: &'a str,
    /// The value's exact text.
    value: &'a str,
    /// Byte offset just past the value.
    end: usize,
}

/// Splits a JSON object into its members without decoding any value, so each value's text is
/// exactly what was received.
fn top_level_members(raw: &str) -> Result<Vec<Member<'_>>, ResponseError> {
    let bytes = raw.as_bytes();
    let mut pos = skip_whitespace(bytes, 0);
    if bytes.get(pos) != Some(&b'{') {
        return Err(ResponseError::Malformed);
    }
    pos = skip_whitespace(bytes, pos + 1);
    let mut members = Vec::new();
    if bytes.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            let key_end = string_end(bytes, pos)?;
            let key = &raw[pos + 1..key_end - 1];
            pos = skip_whitespace(bytes, key_end);
            if bytes.get(pos) != Some(&b':') {
                return Err(ResponseError::Malformed);
            }
            let value_start = skip_whitespace(bytes, pos + 1);
            let value_end = value_end(bytes, value_start)?;
            members.push(Member {
                key,
                value: &raw[value_start..value_end],
                end: value_end,
            });
            pos = skip_whitespace(bytes, value_end);
            match bytes.get(pos) {
                Some(b',') => pos = skip_whitespace(bytes, pos + 1),
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                _ => return Err(ResponseError::Malformed),
            }
        }
    }
    if skip_whitespace(bytes, pos) != bytes.len() {
        return Err(ResponseError::Malformed);
    }
    Ok(members)
}

fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    while matches!(bytes.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// `pos` is at an opening quote; returns the offset just past the closing quote.
fn string_end(bytes: &[u8], pos: usize) -> Result<usize, ResponseError> {
    if bytes.get(pos) != Some(&b'"') {
        return Err(ResponseError::Malformed);
    }
    let mut i = pos + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(ResponseError::Malformed)
}

/// Returns the offset just past the value starting at `pos`: a string, an object or array up to
/// its matching bracket (brackets inside strings do not count), or a bare scalar.
fn value_end(bytes: &[u8], pos: usize) -> Result<usize, ResponseError> {
    match bytes.get(pos) {
        Some(b'"') => string_end(bytes, pos),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = pos;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err(ResponseError::Malformed)
        }
        Some(_) => {
            let mut i = pos;
            while let Some(&b) = bytes.get(i) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            if i == pos {
                Err(ResponseError::Malformed)
            } else {
                Ok(i)
            }
        }
        None => Err(ResponseError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "alipay_trade_query_response";

    #[test]
    fn the_node_text_is_cut_out_byte_for_byte_with_escapes_and_whitespace() {
        let raw = "{ \"alipay_trade_query_response\" :\n {\"a\":\"x\\/y\", \"b\" : [1,{\"c\":\"}\"}]} ,\"sign\":\"c2ln\"}";
        let content = extract_signed_content(raw, KEY).unwrap();
        assert_eq!(content.node, "{\"a\":\"x\\/y\", \"b\" : [1,{\"c\":\"}\"}]}");
        assert_eq!(content.sign.as_deref(), Some("c2ln"));
        assert!(!content.is_error_response);
    }

    #[test]
    fn braces_and_quotes_inside_strings_do_not_end_the_node() {
        let raw = r#"{"alipay_trade_query_response":{"msg":"a \"}\" b","x":"{"},"sign":"s"}"#;
        let content = extract_signed_content(raw, KEY).unwrap();
        assert_eq!(content.node, r#"{"msg":"a \"}\" b","x":"{"}"#);
    }

    #[test]
    fn error_response_is_used_when_the_method_node_is_absent() {
        let raw = r#"{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id"}}"#;
        let content = extract_signed_content(raw, KEY).unwrap();
        assert!(content.is_error_response);
        assert_eq!(content.sign, None);
    }

    #[test]
    fn a_node_name_repeated_after_the_node_is_rejected() {
        let repeated = r#"{"alipay_trade_query_response":{"code":"10000"},"alipay_trade_query_response":{"code":"10000"},"sign":"s"}"#;
        assert_eq!(
            extract_signed_content(repeated, KEY),
            Err(ResponseError::RepeatedNode(KEY.into()))
        );
        let nested = r#"{"alipay_trade_query_response":{"code":"10000"},"other":{"alipay_trade_query_response":1},"sign":"s"}"#;
        assert_eq!(
            extract_signed_content(nested, KEY),
            Err(ResponseError::RepeatedNode(KEY.into()))
        );
    }

    #[test]
    fn text_that_is_not_one_json_object_is_rejected() {
        for raw in [
            "",
            "[]",
            r#"{"alipay_trade_query_response":{"code":"10000"}"#,
            r#"{"alipay_trade_query_response":{"code":"10000"}} trailing"#,
            r#"{"alipay_trade_query_response":"ZW5jcnlwdGVk","sign":"s"}"#,
            r#"{"alipay_trade_query_response":{"code":"10000"},"sign":"s",}"#,
        ] {
            assert!(extract_signed_content(raw, KEY).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_missing_node_is_named_in_the_error() {
        assert_eq!(
            extract_signed_content(r#"{"sign":"s"}"#, KEY),
            Err(ResponseError::MissingNode(KEY.into()))
        );
    }

    #[test]
    fn trade_statuses_read_as_written_and_new_ones_are_unknown() {
        assert_eq!(
            TradeStatus::parse("TRADE_SUCCESS"),
            TradeStatus::TradeSuccess
        );
        assert_eq!(
            TradeStatus::parse("WAIT_BUYER_PAY"),
            TradeStatus::WaitBuyerPay
        );
        assert_eq!(TradeStatus::parse("TRADE_PENDING"), TradeStatus::Unknown);
        assert!(TradeStatus::TradeFinished.is_paid());
        assert!(!TradeStatus::TradeClosed.is_paid());
        assert!(!TradeStatus::Unknown.is_paid());
    }
}
