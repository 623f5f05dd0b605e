//! Request signing (merchant → WeChat): the 5-line message, the `Authorization` header and its
//! order-independent parser (the sandbox's side), and the client-side signatures of JSAPI and App
//! payments.

use rand::Rng as _;
use rand::distr::Alphanumeric;

use crate::keys::Signer;

/// The only signature scheme WeChat Pay APIv3 uses for merchant requests.
pub const AUTHORIZATION_SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";

/// WeChat signs 5 lines, each ending in `\n` including the last, so an empty body is a lone
/// `\n`: `METHOD\nCANONICAL_URL\nTIMESTAMP\nNONCE\nBODY\n`. The canonical URL is path plus `?query`
/// byte for byte as sent, and the body is the exact bytes sent.
pub fn request_message(
    method: &str,
    canonical_url: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    lines(&[
        method.as_bytes(),
        canonical_url.as_bytes(),
        timestamp.to_string().as_bytes(),
        nonce.as_bytes(),
        body,
    ])
}

/// Each part followed by `\n`: the shape of every WeChat Pay signature message.
pub(crate) fn lines(parts: &[&[u8]]) -> Vec<u8> {
    let mut message = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        message.extend_from_slice(part);
        message.push(b'\n');
    }
    message
}

/// A fresh request nonce: 32 characters of `[0-9A-Za-z]`, as the official SDKs make them.
pub fn new_nonce() -> String {
    random_alphanumeric(32)
}

pub(crate) fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Who we are at WeChat Pay: the merchant id, the merchant API certificate serial, and the
/// merchant API private key.
#[derive(Debug)]
pub struct MerchantCredentials {
    pub mchid: String,
    pub serial_no: String,
    pub signer: Signer,
}

impl MerchantCredentials {
    /// The `Authorization` header value for one request, attributes in the Go SDK's order
    /// (`mchid,nonce_str,timestamp,serial_no,signature`).
    pub fn authorization(
        &self,
        method: &str,
        canonical_url: &str,
        timestamp: i64,
        nonce: &str,
        body: &[u8],
    ) -> String {
        let message = request_message(method, canonical_url, timestamp, nonce, body);
        Authorization {
            mchid: self.mchid.clone(),
            nonce_str: nonce.to_owned(),
            timestamp,
            serial_no: self.serial_no.clone(),
            signature: self.signer.sign_base64(&message),
        }
        .to_header()
    }

    /// The signed parameters a JSAPI / mini-program page passes to `wx.requestPayment`:
    /// `paySign` over `appId\ntimeStamp\nnonceStr\npackage\n`, `package` = `prepay_id=…`.
    pub fn jsapi_pay_params(
        &self,
        appid: &str,
        prepay_id: &str,
        timestamp: i64,
        nonce: &str,
    ) -> JsapiPayParams {
        let package = format!("prepay_id={prepay_id}");
        let time_stamp = timestamp.to_string();
        let message = lines(&[
            appid.as_bytes(),
            time_stamp.as_bytes(),
            nonce.as_bytes(),
            package.as_bytes(),
        ]);
        JsapiPayParams {
            app_id: appid.to_owned(),
            time_stamp,
            nonce_str: nonce.to_owned(),
            package,
            sign_type: "RSA".to_owned(),
            pay_sign: self.signer.sign_base64(&message),
        }
    }

    /// The signed parameters an App hands to the WeChat SDK: `sign` over
    /// `appid\ntimestamp\nnoncestr\nprepayid\n` (the bare prepay id).
    pub fn app_pay_params(
        &self,
        appid: &str,
        prepay_id: &str,
        timestamp: i64,
        nonce: &str,
    ) -> AppPayParams {
        let timestamp = timestamp.to_string();
        let message = lines(&[
            appid.as_bytes(),
            timestamp.as_bytes(),
            nonce.as_bytes(),
            prepay_id.as_bytes(),
        ]);
        AppPayParams {
            appid: appid.to_owned(),
            partnerid: self.mchid.clone(),
            prepayid: prepay_id.to_owned(),
            package: "Sign=WXPay".to_owned(),
            noncestr: nonce.to_owned(),
            timestamp,
            sign: self.signer.sign_base64(&message),
        }
    }
}

/// `wx.requestPayment` / `WeixinJSBridge` parameters (field names as WeChat's JS expects).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsapiPayParams {
    pub app_id: String,
    pub time_stamp: String,
    pub nonce_str: String,
    pub package: String,
    pub sign_type: String,
    pub pay_sign: String,
}

/// App SDK `PayReq` parameters (field names as in the design's `app_params`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppPayParams {
    pub appid: String,
    pub partnerid: String,
    pub prepayid: String,
    pub package: String,
    pub noncestr: String,
    pub timestamp: String,
    pub sign: String,
}

/// Why an `Authorization` header was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("scheme is not {AUTHORIZATION_SCHEME}")]
    Scheme,
    #[error("attribute list is malformed")]
    Malformed,
    #[error("attribute `{0}` is missing")]
    Missing(&'static str),
    #[error("attribute `{0}` appears twice")]
    Duplicate(String),
    #[error("attribute `{0}` is not known")]
    Unknown(String),
    #[error("timestamp is not a decimal number")]
    Timestamp,
}

/// The five attributes of `Authorization: WECHATPAY2-SHA256-RSA2048 …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: i64,
    pub serial_no: String,
    pub signature: String,
}

impl Authorization {
    /// Parses the header value. The attribute order is free ("五项签名信息，无顺序要求"): the Go
    /// SDK and the official Java sample put them in different orders, and both must pass.
    pub fn parse(header: &str) -> Result<Authorization, AuthorizationError> {
        let attributes = header
            .strip_prefix(AUTHORIZATION_SCHEME)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or(AuthorizationError::Scheme)?;

        let (mut mchid, mut nonce_str, mut timestamp, mut serial_no, mut signature) =
            (None, None, None, None, None);
        for (key, value) in parse_attributes(attributes)? {
            let slot = match key {
                "mchid" => &mut mchid,
                "nonce_str" => &mut nonce_str,
                "timestamp" => &mut timestamp,
                "serial_no" => &mut serial_no,
                "signature" => &mut signature,
                other => return Err(AuthorizationError::Unknown(other.to_owned())),
            };
            if slot.replace(value).is_some() {
                return Err(AuthorizationError::Duplicate(key.to_owned()));
            }
        }
        let timestamp: &str = timestamp.ok_or(AuthorizationError::Missing("timestamp"))?;
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthorizationError::Timestamp);
        }
        Ok(Authorization {
            mchid: mchid
                .ok_or(AuthorizationError::Missing("mchid"))?
                .to_owned(),
            nonce_str: nonce_str
                .ok_or(AuthorizationError::Missing("nonce_str"))?
                .to_owned(),
            timestamp: timestamp
                .parse()
                .map_err(|_| AuthorizationError::Timestamp)?,
            serial_no: serial_no
                .ok_or(AuthorizationError::Missing("serial_no"))?
                .to_owned(),
            signature: signature
                .ok_or(AuthorizationError::Missing("signature"))?
                .to_owned(),
        })
    }

    /// The header value, attributes in the Go SDK's order.
    pub fn to_header(&self) -> String {
        format!(
            "{AUTHORIZATION_SCHEME} mchid=\"{}\",nonce_str=\"{}\",timestamp=\"{}\",serial_no=\"{}\",signature=\"{}\"",
            self.mchid, self.nonce_str, self.timestamp, self.serial_no, self.signature
        )
    }

    /// The message this header's signature must cover, for the given request.
    pub fn message(&self, method: &str, canonical_url: &str, body: &[u8]) -> Vec<u8> {
        request_message(method, canonical_url, self.timestamp, &self.nonce_str, body)
    }
}

/// `key="value"` pairs joined by `,`. Values never contain `"` (digits, hex, Base64, the nonce
/// alphabet), so a value runs to the next quote. Spaces around a pair are tolerated.
fn parse_attributes(text: &str) -> Result<Vec<(&str, &str)>, AuthorizationError> {
    let mut pairs = Vec::with_capacity(5);
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after_key) = rest
            .split_once("=\"")
            .ok_or(AuthorizationError::Malformed)?;
        let (value, after_value) = after_key
            .split_once('"')
            .ok_or(AuthorizationError::Malformed)?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(AuthorizationError::Malformed);
        }
        pairs.push((key, value));
        let after_value = after_value.trim_start();
        rest = match after_value.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if after_value.is_empty() => after_value,
            None => return Err(AuthorizationError::Malformed),
        };
    }
    Ok(pairs)
}
