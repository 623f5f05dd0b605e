//! WeChat Pay APIv3 on the wire, WeChat's side (wechatpay-v3.md §1-§3).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng as _;
use rand::distr::Alphanumeric;

use super::rsa::PrivateKey;

/// The merchant's `Authorization` scheme, and the `Wechatpay-Signature-Type` of answers.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
pub const HEADER_TIMESTAMP: &str = "Wechatpay-Timestamp";
pub const HEADER_NONCE: &str = "Wechatpay-Nonce";
pub const HEADER_SIGNATURE: &str = "Wechatpay-Signature";
pub const HEADER_SERIAL: &str = "Wechatpay-Serial";
pub const HEADER_SIGNATURE_TYPE: &str = "Wechatpay-Signature-Type";
/// `{id}-{errcode}` on every answer, `-0` on success (§2).
pub const HEADER_REQUEST_ID: &str = "Request-ID";
/// A signature probe (签名探测) starts with this; merchants must refuse it (§2).
pub const SIGNATURE_PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// A signed timestamp this far from now or further is refused (§1, §2: "< 5 min").
pub const MAX_SKEW_SECONDS: u64 = 300;

/// The request message (§1): `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`, every line ending in `\n`
/// (an empty body leaves a lone `\n`). `url` is the path with `?query`, byte for byte as sent;
/// `timestamp` as the header wrote it.
pub fn request_message(
    method: &str,
    url: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut message = format!("{method}\n{url}\n{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// The answer and callback message (§2): `TIMESTAMP\nNONCE\nBODY\n`.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut message = format!("{timestamp}\n{nonce}\n").into_bytes();
    message.extend_from_slice(body);
    message.push(b'\n');
    message
}

/// The `Wechatpay-*` headers of an answer or a callback signed by `key` under `serial` (the
/// `PUB_KEY_ID_…` or a platform certificate's serial).
pub fn signed_headers(
    key: &PrivateKey,
    serial: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let timestamp = timestamp.to_string();
    let signature = key.sign_base64(&response_message(&timestamp, nonce, body));
    vec![
        (HEADER_TIMESTAMP, timestamp),
        (HEADER_NONCE, nonce.to_owned()),
        (HEADER_SIGNATURE, signature),
        (HEADER_SERIAL, serial.to_owned()),
        (HEADER_SIGNATURE_TYPE, SCHEME.to_owned()),
    ]
}

/// `len` characters of `[0-9A-Za-z]`, as the SDKs make nonces (a resource nonce is 12).
pub fn nonce(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The five attributes of `Authorization: WECHATPAY2-SHA256-RSA2048 k="v",…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    /// As written in the header: the signed message holds these exact characters.
    pub timestamp: String,
    pub serial_no: String,
    pub signature: String,
}

impl Authorization {
    /// The scheme, one space, then `key="value"` pairs joined by `,` in any order
    /// ("五项签名信息，无顺序要求"), each of the five exactly once and nothing else. None when
    /// the header is not that.
    pub fn parse(header: &str) -> Option<Authorization> {
        let attributes = header.strip_prefix(SCHEME)?.strip_prefix(' ')?;
        let mut slots: [Option<&str>; 5] = [None; 5];
        // No value contains a comma: digits, hex, the nonce alphabet and Base64.
        for pair in attributes.split(',') {
            let (key, quoted) = pair.trim().split_once('=')?;
            let value = quoted.strip_prefix('"')?.strip_suffix('"')?;
            let at = ["mchid", "nonce_str", "timestamp", "serial_no", "signature"]
                .iter()
                .position(|name| *name == key)?;
            if slots[at].replace(value).is_some() {
                return None;
            }
        }
        let [
            Some(mchid),
            Some(nonce_str),
            Some(timestamp),
            Some(serial_no),
            Some(signature),
        ] = slots
        else {
            return None;
        };
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Authorization {
            mchid: mchid.to_owned(),
            nonce_str: nonce_str.to_owned(),
            timestamp: timestamp.to_owned(),
            serial_no: serial_no.to_owned(),
            signature: signature.to_owned(),
        })
    }

    /// The timestamp as unix seconds; None when it does not fit.
    pub fn unix_seconds(&self) -> Option<i64> {
        self.timestamp.parse().ok()
    }

    /// The message the signature must cover for this request.
    pub fn message(&self, method: &str, url: &str, body: &[u8]) -> Vec<u8> {
        request_message(method, url, &self.timestamp, &self.nonce_str, body)
    }
}

/// The APIv3 key: AEAD_AES_256_GCM (§3), key = the 32 key characters, IV = the 12 `nonce`
/// characters, AAD = `associated_data`, ciphertext = Base64(encrypted ‖ 16-byte tag).
pub struct ApiV3Key(LessSafeKey);

/// A key that is not 32 bytes (AES-256 only: the Go SDK's silent AES-128 is not WeChat's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the APIv3 key must be 32 bytes, not {0}")]
pub struct KeyLength(pub usize);

/// A resource that did not decrypt (wrong key, nonce, AAD, or altered bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the resource does not decrypt")]
pub struct DecryptFailed;

impl ApiV3Key {
    pub fn new(key: &[u8]) -> Result<ApiV3Key, KeyLength> {
        if key.len() != 32 {
            return Err(KeyLength(key.len()));
        }
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| KeyLength(key.len()))?;
        Ok(ApiV3Key(LessSafeKey::new(key)))
    }

    /// Base64(ciphertext ‖ tag). The nonce must be fresh for every call.
    ///
    /// # Panics
    /// When `nonce` is not 12 bytes: every caller makes 12-character nonces.
    pub fn encrypt(&self, nonce: &str, aad: &str, plaintext: &[u8]) -> String {
        let nonce = Nonce::try_assume_unique_for_key(nonce.as_bytes())
            .expect("an AEAD_AES_256_GCM nonce is 12 bytes");
        let mut sealed = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(nonce, Aad::from(aad.as_bytes()), &mut sealed)
            .expect("AES-GCM sealing fails only past 64 GiB");
        BASE64.encode(sealed)
    }

    /// The plaintext of Base64(ciphertext ‖ tag).
    pub fn decrypt(
        &self,
        nonce: &str,
        aad: &str,
        ciphertext_base64: &str,
    ) -> Result<Vec<u8>, DecryptFailed> {
        let nonce =
            Nonce::try_assume_unique_for_key(nonce.as_bytes()).map_err(|_| DecryptFailed)?;
        let mut sealed = BASE64
            .decode(ciphertext_base64)
            .map_err(|_| DecryptFailed)?;
        let plaintext = self
            .0
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut sealed)
            .map_err(|_| DecryptFailed)?;
        Ok(plaintext.to_vec())
    }
}

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key([redacted])")
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved ones: how a URL goes into a query value
/// (the H5 `redirect_url`, §4).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_attributes_are_taken_in_any_order_but_each_exactly_once() {
        let go = r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="2",serial_no="S",signature="c2ln""#;
        let java = r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",signature="c2ln",timestamp="2",serial_no="S""#;
        let parsed = Authorization::parse(go).unwrap();
        assert_eq!(Authorization::parse(java), Some(parsed.clone()));
        assert_eq!(parsed.timestamp, "2");
        for bad in [
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="2",serial_no="S""#,
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",mchid="1",nonce_str="n",timestamp="2",serial_no="S",signature="x""#,
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="x2",serial_no="S",signature="x""#,
            r#"WECHATPAY2-SHA256-RSA2048 mchid="1",nonce_str="n",timestamp="2",serial_no="S",signature="x",extra="y""#,
            r#"Bearer mchid="1",nonce_str="n",timestamp="2",serial_no="S",signature="x""#,
        ] {
            assert_eq!(Authorization::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_empty_body_leaves_a_lone_newline() {
        assert_eq!(
            request_message("GET", "/v3/x?a=1", "1", "n", b""),
            b"GET\n/v3/x?a=1\n1\nn\n\n"
        );
        assert_eq!(response_message("1", "n", b""), b"1\nn\n\n");
    }

    #[test]
    fn urls_are_percent_encoded_outside_the_unreserved_set() {
        assert_eq!(
            percent_encode("https://a.b/c?d=e f"),
            "https%3A%2F%2Fa.b%2Fc%3Fd%3De%20f"
        );
    }
}
