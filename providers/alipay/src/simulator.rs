//! The other side of the protocol, for the sandbox: read and check a gateway.do request as
//! Alipay does, sign answers and notifications with the simulator's "Alipay" key, and write
//! trade bills in Alipay's format.

pub use crate::bill::write::{BillRowSpec, BillWriteError, write_trade_bill_zip};
use crate::keys::{SignFailed, Signer, Verifier};
use crate::notify::SignRule;
use crate::params::{FormError, Params};
use crate::request::response_key;
use crate::time::parse_beijing_time;

/// Why Alipay would refuse a request, with the code and sub_code it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GatewayRequestError {
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    #[error("sign_type is not RSA2")]
    SignType,
    #[error("charset is not utf-8")]
    Charset,
    #[error("format is not JSON")]
    Format,
    #[error("timestamp is not yyyy-MM-dd HH:mm:ss")]
    Timestamp,
    #[error("signature does not verify with the app public key")]
    Signature,
}

impl GatewayRequestError {
    /// The gateway code: 40001 for a missing argument, 40002 for an invalid one.
    pub fn code(self) -> &'static str {
        match self {
            GatewayRequestError::Missing(_) => "40001",
            _ => "40002",
        }
    }

    pub fn msg(self) -> &'static str {
        match self {
            GatewayRequestError::Missing(_) => "Missing Required Arguments",
            _ => "Invalid Arguments",
        }
    }

    pub fn sub_code(self) -> &'static str {
        match self {
            GatewayRequestError::Missing("method") => "isv.missing-method",
            GatewayRequestError::Missing("app_id") => "isv.missing-app-id",
            GatewayRequestError::Missing("timestamp") => "isv.missing-timestamp",
            GatewayRequestError::Missing("version") => "isv.missing-version",
            GatewayRequestError::Missing("sign_type") => "isv.missing-signature-type",
            GatewayRequestError::Missing(_) => "isv.missing-signature",
            // Not in alipay.md's list; the name follows the pattern of the others [?].
            GatewayRequestError::SignType => "isv.invalid-signature-type",
            GatewayRequestError::Charset => "isv.invalid-charset",
            GatewayRequestError::Format => "isv.invalid-format",
            GatewayRequestError::Timestamp => "isv.invalid-timestamp",
            GatewayRequestError::Signature => "isv.invalid-signature",
        }
    }
}

/// The parameters of a gateway.do request, merged from the URL query and the form body (each
/// client splits them differently; a key in both must carry the same value).
pub fn parse_gateway_request(query: &str, body: &[u8]) -> Result<Params, FormError> {
    let mut params = Params::from_form(query.as_bytes())?;
    params.merge_form(body)?;
    Ok(params)
}

/// Checks the common parameters and the signature (request rule: everything but `sign`,
/// `sign_type` included) with the app's public key.
pub fn verify_gateway_request(
    params: &Params,
    app_public_key: &Verifier,
) -> Result<(), GatewayRequestError> {
    for key in [
        "method",
        "app_id",
        "timestamp",
        "version",
        "sign_type",
        "sign",
    ] {
        if params.non_empty(key).is_none() {
            return Err(GatewayRequestError::Missing(key));
        }
    }
    if params.get("sign_type") != Some("RSA2") {
        return Err(GatewayRequestError::SignType);
    }
    // Clients send `utf-8` or `UTF-8`, `JSON` or `json` (alipay.md §1).
    if params
        .non_empty("charset")
        .is_some_and(|c| !c.eq_ignore_ascii_case("utf-8"))
    {
        return Err(GatewayRequestError::Charset);
    }
    if params
        .non_empty("format")
        .is_some_and(|f| !f.eq_ignore_ascii_case("json"))
    {
        return Err(GatewayRequestError::Format);
    }
    if params
        .get("timestamp")
        .and_then(parse_beijing_time)
        .is_none()
    {
        return Err(GatewayRequestError::Timestamp);
    }
    let sign = params.get("sign").unwrap_or_default();
    app_public_key
        .verify(params.sign_content(&["sign"]).as_bytes(), sign)
        .map_err(|_| GatewayRequestError::Signature)
}

/// The full answer body `{"<method>_response":<node>,"sign":"…"}`, signed over exactly the
/// `node_json` bytes emitted.
pub fn sign_response(
    method: &str,
    node_json: &str,
    alipay_key: &Signer,
) -> Result<String, SignFailed> {
    let sign = alipay_key.sign(node_json.as_bytes())?;
    Ok(format!(
        "{{\"{}\":{node_json},\"sign\":\"{sign}\"}}",
        response_key(method)
    ))
}

/// An unsigned `{"error_response":<node>}`, as Alipay answers some gateway-level failures.
pub fn error_response(node_json: &str) -> String {
    format!("{{\"error_response\":{node_json}}}")
}

/// Writes `/` as `\/`, as Alipay's JSON does (valid JSON: a slash only occurs inside strings).
/// Sign the result, not the input, so clients meet the backslashes they will meet for real.
pub fn escape_slashes(json: &str) -> String {
    json.replace('/', "\\/")
}

/// A trade notification form body: sets `sign_type=RSA2`, signs under the V1 rule with the
/// simulator's Alipay key, and form-encodes every field.
pub fn sign_notification(mut params: Params, alipay_key: &Signer) -> Result<String, SignFailed> {
    params.insert("sign_type", "RSA2");
    params.remove("sign");
    let sign = alipay_key.sign(params.sign_content(SignRule::V1.excluded()).as_bytes())?;
    params.insert("sign", sign);
    Ok(params.to_form())
}
