//! AEAD_AES_256_GCM with the APIv3 key: how WeChat encrypts callback resources and platform
//! certificates (RFC 5116; key = the 32 key characters as bytes, IV = the 12 `nonce` characters,
//! AAD = `associated_data`, ciphertext = Base64(ct ‖ 16-byte tag)).

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The APIv3 key must be exactly 32 bytes. WeChat's own Go SDK silently falls back to AES-128 for
/// a 16-byte key; we refuse instead, since a real APIv3 key is always 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the APIv3 key must be exactly 32 bytes, got {0}")]
pub struct ApiV3KeyLength(pub usize);

/// Why a resource did not decrypt. Never carries key or plaintext material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("nonce must be 12 bytes")]
    Nonce,
    #[error("ciphertext is not Base64")]
    Base64,
    #[error("authentication failed (wrong key, nonce, associated data, or altered ciphertext)")]
    Authentication,
}

/// The merchant's APIv3 key.
#[derive(Clone)]
pub struct ApiV3Key(Aes256Gcm);

impl ApiV3Key {
    /// From the key's 32 bytes (as configured: the 32 characters of the key).
    pub fn new(key: &[u8]) -> Result<ApiV3Key, ApiV3KeyLength> {
        Aes256Gcm::new_from_slice(key)
            .map(ApiV3Key)
            .map_err(|_| ApiV3KeyLength(key.len()))
    }

    /// Decrypts a resource: `nonce` and `aad` as sent (`resource.nonce`,
    /// `resource.associated_data`, "" when absent), `ciphertext_b64` = `resource.ciphertext`.
    pub fn decrypt(
        &self,
        nonce: &str,
        aad: &str,
        ciphertext_b64: &str,
    ) -> Result<Vec<u8>, DecryptError> {
        let nonce = nonce_of(nonce)?;
        let ciphertext = BASE64
            .decode(ciphertext_b64.as_bytes())
            .map_err(|_| DecryptError::Base64)?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: &ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| DecryptError::Authentication)
    }

    /// Encrypts as WeChat does (the sandbox's side), returning Base64(ct ‖ tag). The nonce must
    /// never be reused with the same key.
    ///
    /// # Panics
    /// When `nonce` is not 12 bytes: WeChat's nonces always are, so that is a caller bug.
    pub fn encrypt(&self, nonce: &str, aad: &str, plaintext: &[u8]) -> String {
        let nonce = nonce_of(nonce).expect("AEAD_AES_256_GCM nonce must be 12 bytes");
        let ciphertext = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption fails only past 64 GiB of plaintext");
        BASE64.encode(ciphertext)
    }
}

fn nonce_of(nonce: &str) -> Result<Nonce<Aes256Gcm>, DecryptError> {
    Nonce::<Aes256Gcm>::try_from(nonce.as_bytes()).map_err(|_| DecryptError::Nonce)
}

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key([redacted])")
    }
}
