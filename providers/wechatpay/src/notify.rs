//! Callbacks (notify_url): verify the signature first, then parse the envelope, then decrypt the
//! resource. Nothing of the body is trusted, or even parsed, before the signature checks out.

use crate::cipher::{ApiV3Key, DecryptError};
use crate::model::{
    AEAD_AES_256_GCM, EncryptedResource, Notification, RefundNotification, Transaction,
};
use crate::verify::{PlatformKeys, SignatureHeaders, VerifyError, verify_signed};

/// Why a callback was refused. Answer WeChat with a 4xx/5xx so that it retries.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("callback signature: {0}")]
    Verify(#[from] VerifyError),
    #[error("callback body is not a notification envelope")]
    Envelope(#[source] serde_json::Error),
    #[error("resource algorithm `{0}` is not AEAD_AES_256_GCM")]
    Algorithm(String),
    #[error("resource did not decrypt: {0}")]
    Decrypt(#[from] DecryptError),
    #[error("decrypted resource is not the expected JSON")]
    Resource(#[source] serde_json::Error),
}

/// A verified callback: its envelope and the decrypted resource bytes (which may hold payer
/// data: parse them into a type without payer fields, [`Transaction`] or
/// [`RefundNotification`], and drop them).
pub struct VerifiedNotification {
    pub notification: Notification,
    plaintext: Vec<u8>,
}

impl VerifiedNotification {
    /// The resource as a [`Transaction`] (for `TRANSACTION.*` events); payer data is dropped.
    pub fn transaction(&self) -> Result<Transaction, NotifyError> {
        serde_json::from_slice(&self.plaintext).map_err(NotifyError::Resource)
    }

    /// The resource as a [`RefundNotification`] (for `REFUND.*` events);
    /// `user_received_account` is dropped.
    ///
    /// Like [`VerifiedNotification::transaction`] this reads what AES-GCM authenticated under
    /// the envelope's own `associated_data` (`refund` in the doc's note, unconfirmed): the AAD
    /// label and `original_type` are not checked against a fixed value. A transaction resource
    /// read as a refund fails to parse (`NotifyError::Resource`), so the caller should still
    /// dispatch on `event_type`.
    pub fn refund(&self) -> Result<RefundNotification, NotifyError> {
        serde_json::from_slice(&self.plaintext).map_err(NotifyError::Resource)
    }

    /// The decrypted resource bytes, for other event types. Never log them.
    pub fn resource_bytes(&self) -> &[u8] {
        &self.plaintext
    }
}

impl std::fmt::Debug for VerifiedNotification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedNotification")
            .field("id", &self.notification.id)
            .field("event_type", &self.notification.event_type)
            .field("resource", &"[redacted]")
            .finish()
    }
}

/// Verifies (probe, window, serial, signature over the raw body), parses and decrypts a callback.
pub fn verify_notification(
    keys: &PlatformKeys,
    headers: &SignatureHeaders,
    body: &[u8],
    now_unix: i64,
    apiv3_key: &ApiV3Key,
) -> Result<VerifiedNotification, NotifyError> {
    verify_signed(keys, headers, body, now_unix)?;
    let notification: Notification = serde_json::from_slice(body).map_err(NotifyError::Envelope)?;
    let plaintext = decrypt_resource(apiv3_key, &notification.resource)?;
    Ok(VerifiedNotification {
        notification,
        plaintext,
    })
}

/// Decrypts an [`EncryptedResource`] (absent `associated_data` = empty AAD).
pub fn decrypt_resource(
    apiv3_key: &ApiV3Key,
    resource: &EncryptedResource,
) -> Result<Vec<u8>, NotifyError> {
    if resource.algorithm != AEAD_AES_256_GCM {
        return Err(NotifyError::Algorithm(resource.algorithm.clone()));
    }
    let aad = resource.associated_data.as_deref().unwrap_or("");
    Ok(apiv3_key.decrypt(&resource.nonce, aad, &resource.ciphertext)?)
}
