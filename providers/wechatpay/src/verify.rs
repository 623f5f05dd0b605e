//! Verifying what WeChat sends (responses and callbacks), and signing as WeChat does (the
//! sandbox's side): `Wechatpay-*` headers over the 3-line message `TIMESTAMP\nNONCE\nBODY\n`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::keys::{Signer, Verifier};
use crate::sign::lines;

pub const HEADER_SERIAL: &str = "Wechatpay-Serial";
pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
pub const HEADER_SIGNATURE_TYPE: &str = "Wechatpay-Signature-Type";
pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";
pub const HEADER_REQUEST_ID: &str = "Request-ID";

/// WeChat's "signature probe" (签名探测): a deliberately invalid signature to check that the
/// merchant really verifies. Must be rejected (callbacks: answer 4xx/5xx).
pub const SIGNATURE_PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";

/// Reject when `|now − Wechatpay-Timestamp| >= 300 s` (Go SDK `FiveMinute`, PHP, Java samples).
pub const MAX_SKEW_SECONDS: i64 = 300;

/// The message WeChat signs on responses and callbacks. Every line ends in `\n`, so an empty
/// (204) body gives `TIMESTAMP\nNONCE\n\n`.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    lines(&[timestamp.as_bytes(), nonce.as_bytes(), body])
}

/// Signs a response or callback as WeChat does: Base64 SHA256withRSA of [`response_message`].
pub fn sign_message(signer: &Signer, timestamp: &str, nonce: &str, body: &[u8]) -> String {
    signer.sign_base64(&response_message(timestamp, nonce, body))
}

/// The five `Wechatpay-*` headers for `body`, signed with the platform key `serial`.
pub fn signed_headers(
    signer: &Signer,
    serial: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> [(&'static str, String); 5] {
    let timestamp = timestamp.to_string();
    let signature = sign_message(signer, &timestamp, nonce, body);
    [
        (HEADER_TIMESTAMP, timestamp),
        (HEADER_NONCE, nonce.to_owned()),
        (HEADER_SIGNATURE, signature),
        (HEADER_SERIAL, serial.to_owned()),
        (HEADER_SIGNATURE_TYPE, SIGNATURE_TYPE.to_owned()),
    ]
}

/// The signature headers of one response or callback, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureHeaders<'a> {
    pub serial: &'a str,
    pub timestamp: &'a str,
    pub nonce: &'a str,
    pub signature: &'a str,
}

impl<'a> SignatureHeaders<'a> {
    /// Reads the headers from an `http::HeaderMap` (what axum and reqwest both use). A
    /// `Wechatpay-Signature-Type`, when present, must be `WECHATPAY2-SHA256-RSA2048`.
    /// Each of the `Wechatpay-*` headers may appear once: a second one is refused, never
    /// picked from (which of two would the signature be meant for?).
    pub fn from_header_map(headers: &'a http::HeaderMap) -> Result<Self, VerifyError> {
        for name in [
            HEADER_SERIAL,
            HEADER_TIMESTAMP,
            HEADER_NONCE,
            HEADER_SIGNATURE,
            HEADER_SIGNATURE_TYPE,
        ] {
            if headers.get_all(name).iter().nth(1).is_some() {
                return Err(VerifyError::RepeatedHeader(name));
            }
        }
        Self::from_lookup(|name| headers.get(name).and_then(|v| v.to_str().ok()))
    }

    /// Reads the headers through any case-insensitive lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<&'a str>) -> Result<Self, VerifyError> {
        if let Some(kind) = lookup(HEADER_SIGNATURE_TYPE)
            && kind != SIGNATURE_TYPE
        {
            return Err(VerifyError::UnsupportedSignatureType);
        }
        let get = |name: &'static str| lookup(name).ok_or(VerifyError::MissingHeader(name));
        Ok(SignatureHeaders {
            serial: get(HEADER_SERIAL)?,
            timestamp: get(HEADER_TIMESTAMP)?,
            nonce: get(HEADER_NONCE)?,
            signature: get(HEADER_SIGNATURE)?,
        })
    }
}

/// Why a response or callback was not accepted as WeChat's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("header {0} appears more than once")]
    RepeatedHeader(&'static str),
    #[error("Wechatpay-Signature-Type is not {SIGNATURE_TYPE}")]
    UnsupportedSignatureType,
    #[error("signature probe (WECHATPAY/SIGNTEST/)")]
    SignatureProbe,
    #[error("no platform key for serial {0}")]
    UnknownSerial(String),
    #[error("Wechatpay-Timestamp is not a decimal number")]
    MalformedTimestamp,
    #[error("Wechatpay-Timestamp is 5 minutes or more away from now")]
    StaleTimestamp,
    #[error("signature does not verify")]
    BadSignature,
}

/// The platform keys we trust, by `Wechatpay-Serial`: `PUB_KEY_ID_…` (public-key mode) and
/// certificate serials (certificate mode) side by side, so a migration or a rotation never has a
/// moment where a genuine message is refused.
#[derive(Debug, Default, Clone)]
pub struct PlatformKeys {
    keys: HashMap<String, Arc<Verifier>>,
    /// The serial sent as our request's `Wechatpay-Serial`: the last one inserted, unless set.
    current: Option<String>,
}

impl PlatformKeys {
    pub fn new() -> PlatformKeys {
        PlatformKeys::default()
    }

    /// Adds (or replaces) the key for `serial`; it becomes the current one.
    pub fn insert(&mut self, serial: impl Into<String>, verifier: Verifier) {
        let serial = serial.into();
        self.keys.insert(serial.clone(), Arc::new(verifier));
        self.current = Some(serial);
    }

    pub fn get(&self, serial: &str) -> Option<&Verifier> {
        self.keys.get(serial).map(Arc::as_ref)
    }

    pub fn remove(&mut self, serial: &str) -> bool {
        let removed = self.keys.remove(serial).is_some();
        if self.current.as_deref() == Some(serial) {
            self.current = self.keys.keys().next().cloned();
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn serials(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The serial we name in `Wechatpay-Serial` on requests (the key we expect WeChat to use).
    pub fn current_serial(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Makes a known serial the current one; false when it is not known.
    pub fn set_current(&mut self, serial: &str) -> bool {
        if self.keys.contains_key(serial) {
            self.current = Some(serial.to_owned());
            true
        } else {
            false
        }
    }
}

/// Checks a response or callback: not a probe, timestamp within 5 minutes of `now_unix`, a known
/// serial, and a valid signature over the raw `body` bytes (never re-serialised JSON).
pub fn verify_signed(
    keys: &PlatformKeys,
    h: &SignatureHeaders,
    body: &[u8],
    now_unix: i64,
) -> Result<(), VerifyError> {
    if h.signature.starts_with(SIGNATURE_PROBE_PREFIX) {
        return Err(VerifyError::SignatureProbe);
    }
    if h.timestamp.is_empty() || !h.timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    let timestamp: i64 = h
        .timestamp
        .parse()
        .map_err(|_| VerifyError::MalformedTimestamp)?;
    if now_unix.abs_diff(timestamp) >= MAX_SKEW_SECONDS as u64 {
        return Err(VerifyError::StaleTimestamp);
    }
    let verifier = keys
        .get(h.serial)
        .ok_or_else(|| VerifyError::UnknownSerial(h.serial.to_owned()))?;
    let message = response_message(h.timestamp, h.nonce, body);
    if verifier.verify_base64(&message, h.signature) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}
