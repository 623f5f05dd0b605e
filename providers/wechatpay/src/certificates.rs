//! Platform certificate mode (平台证书): `GET /v3/certificates` lists WeChat Pay's platform
//! certificates, each PEM AES-256-GCM-encrypted under the APIv3 key with the AAD `certificate`
//! (wechatpay-v3.md §2). [`decrypt_certificates`] turns an answer into verifiers by serial;
//! [`self_signed_certificate`] makes such a certificate, for the sandbox and for tests.
//!
//! Why a decrypted certificate is trusted: only WeChat and the merchant know the APIv3 key, and
//! AES-GCM authenticates the ciphertext, so a certificate that decrypts came from WeChat. The
//! certificate's own issuer signature is not checked (no CA chain is configured anywhere).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::cipher::{ApiV3Key, DecryptError};
use crate::der;
use crate::keys::{KeyError, Signer, Verifier, certificate_serial_hex};
use crate::model::{AEAD_AES_256_GCM, CertificatesResponse};

/// The AAD WeChat uses for every `encrypt_certificate`.
pub const CERTIFICATE_ASSOCIATED_DATA: &str = "certificate";

/// Why a `/v3/certificates` answer gave no certificates. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate {serial_no}: algorithm `{algorithm}` is not AEAD_AES_256_GCM")]
    Algorithm {
        serial_no: String,
        algorithm: String,
    },
    #[error("certificate {0}: associated_data is not `certificate`")]
    AssociatedData(String),
    #[error("certificate {serial_no} did not decrypt: {source}")]
    Decrypt {
        serial_no: String,
        #[source]
        source: DecryptError,
    },
    #[error("certificate {0}: plaintext is not UTF-8 PEM")]
    NotUtf8(String),
    #[error("certificate {serial_no}: {source}")]
    Certificate {
        serial_no: String,
        #[source]
        source: KeyError,
    },
    #[error("certificate listed as {listed} has serial {actual}")]
    SerialMismatch { listed: String, actual: String },
}

/// Decrypts every `encrypt_certificate` of a `/v3/certificates` answer and loads each PEM
/// certificate: `(serial_no, verifier, expire_time)`, `expire_time` as WeChat sent it (RFC
/// 3339). Strict: `associated_data` must be `certificate` (the one value WeChat uses; another
/// AAD would mean another kind of resource), every entry must decrypt, and the certificate's own
/// serial must equal its `serial_no`, so a listing can never put one certificate's key under
/// another certificate's serial. One bad entry fails the whole answer.
pub fn decrypt_certificates(
    response: &CertificatesResponse,
    apiv3_key: &ApiV3Key,
) -> Result<Vec<(String, Verifier, String)>, CertificateError> {
    response
        .data
        .iter()
        .map(|entry| {
            let serial_no = entry.serial_no.clone();
            let resource = &entry.encrypt_certificate;
            if resource.algorithm != AEAD_AES_256_GCM {
                return Err(CertificateError::Algorithm {
                    serial_no,
                    algorithm: resource.algorithm.clone(),
                });
            }
            if resource.associated_data.as_deref() != Some(CERTIFICATE_ASSOCIATED_DATA) {
                return Err(CertificateError::AssociatedData(serial_no));
            }
            let plaintext = apiv3_key
                .decrypt(
                    &resource.nonce,
                    CERTIFICATE_ASSOCIATED_DATA,
                    &resource.ciphertext,
                )
                .map_err(|source| CertificateError::Decrypt {
                    serial_no: serial_no.clone(),
                    source,
                })?;
            let pem = String::from_utf8(plaintext)
                .map_err(|_| CertificateError::NotUtf8(serial_no.clone()))?;
            let loaded = |source| CertificateError::Certificate {
                serial_no: serial_no.clone(),
                source,
            };
            let actual = certificate_serial_hex(&pem).map_err(loaded)?;
            // Serials are hex; WeChat prints them upper-case, but case carries no meaning.
            if !actual.eq_ignore_ascii_case(&serial_no) {
                return Err(CertificateError::SerialMismatch {
                    listed: serial_no,
                    actual,
                });
            }
            let verifier = Verifier::from_pem(&pem).map_err(loaded)?;
            Ok((serial_no, verifier, entry.expire_time.clone()))
        })
        .collect()
}

/// A self-signed X.509 v3 certificate (PEM) for `signer`'s public key: serial `serial_hex`
/// (upper- or lower-case hex, at most 20 bytes, not starting with a zero byte, as RFC 5280
/// wants), issuer and subject `CN=common_name`, valid between the two unix times, signed
/// SHA256withRSA with the same key. What the sandbox lists in `/v3/certificates`; real WeChat
/// certificates are issued by Tenpay's CA instead, which nothing here checks.
pub fn self_signed_certificate(
    signer: &Signer,
    serial_hex: &str,
    common_name: &str,
    not_before_unix: i64,
    not_after_unix: i64,
) -> Result<String, KeyError> {
    let serial = parse_serial(serial_hex).ok_or(KeyError::Malformed("certificate serial"))?;
    if not_after_unix <= not_before_unix {
        return Err(KeyError::Malformed("certificate validity"));
    }
    let spki = signer.public_key_der()?;
    let tbs =
        der::write::tbs_certificate(&serial, common_name, not_before_unix, not_after_unix, &spki);
    let signature = signer.sign_raw(&tbs);
    let certificate = der::write::certificate(&tbs, &signature);
    let base64 = BASE64.encode(certificate);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Ok(pem)
}

/// The serial's DER INTEGER content: positive, so a 0x00 goes in front of a high first byte.
fn parse_serial(serial_hex: &str) -> Option<Vec<u8>> {
    if serial_hex.is_empty()
        || !serial_hex.len().is_multiple_of(2)
        || serial_hex.len() > 40
        || !serial_hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let bytes: Vec<u8> = (0..serial_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(serial_hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    match bytes.first() {
        None | Some(0) => None,
        Some(&first) if first >= 0x80 => Some([&[0u8][..], &bytes].concat()),
        Some(_) => Some(bytes),
    }
}
