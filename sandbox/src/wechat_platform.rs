//! The simulated WeChat Pay platform keys: the public-key mode key (`PUB_KEY_ID_…`, the
//! configured key, never rotated, as WeChat's public key has no rotation flow) and the
//! platform certificates of the certificate mode, which rotate.
//!
//! - At start the sandbox is in public-key mode: it signs with the `PUB_KEY_ID_…`, and
//!   `/v3/certificates` already lists one certificate, a self-signed one for the same key.
//! - [`Sandbox::use_wechat_platform_certificates`] switches to certificate mode: answers and
//!   notifications are then signed with the newest certificate, named by its serial.
//! - [`Sandbox::rotate_wechat_platform_key`] makes a new key and certificate and signs with it
//!   from then on (certificate mode). The previous certificate stays listed and valid for the
//!   overlap; a further rotation retires the oldest, so at most two are ever listed. The
//!   `PUB_KEY_ID_…` key keeps verifying whatever it signed.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, SecondsFormat, Timelike as _, Utc};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Sandbox;
use crate::wire::rsa::{PrivateKey, generate_private_key_pem};
use crate::wire::wechat::{ApiV3Key, nonce};
use crate::wire::x509::self_signed_certificate;

/// Real platform certificates live five years.
const CERTIFICATE_YEARS: i64 = 5;
/// How many certificates `/v3/certificates` lists at most: the current one and the previous.
const LISTED_CERTIFICATES: usize = 2;

/// Which key signs answers and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformMode {
    /// `Wechatpay-Serial: PUB_KEY_ID_…` (the default; what new merchants get).
    PublicKey,
    /// `Wechatpay-Serial: <certificate serial>`, the newest certificate.
    Certificate,
}

/// One platform certificate as `GET /sandbox/keys` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformCertificateKey {
    pub serial_no: String,
    pub certificate_pem: String,
    pub effective_time: String,
    pub expire_time: String,
}

struct CertificateEntry {
    listed: PlatformCertificateKey,
    signer: Arc<PrivateKey>,
}

struct Keyring {
    mode: PlatformMode,
    /// Oldest first; the last one signs in certificate mode.
    certificates: Vec<CertificateEntry>,
}

pub(crate) struct Platform {
    key_id: String,
    key: Arc<PrivateKey>,
    state: RwLock<Keyring>,
}

impl Platform {
    pub(crate) fn new(
        key_id: String,
        key: PrivateKey,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Platform> {
        let key = Arc::new(key);
        let first = certificate_for(key.clone(), now)?;
        Ok(Platform {
            key_id,
            key,
            state: RwLock::new(Keyring {
                mode: PlatformMode::PublicKey,
                certificates: vec![first],
            }),
        })
    }

    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    pub(crate) fn public_key_pem(&self) -> String {
        self.key.public_key_pem()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keyring> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The serial to put in `Wechatpay-Serial` and the key that signs under it, now.
    pub(crate) fn signing(&self) -> (String, Arc<PrivateKey>) {
        let state = self.read();
        match (state.mode, state.certificates.last()) {
            (PlatformMode::Certificate, Some(newest)) => {
                (newest.listed.serial_no.clone(), newest.signer.clone())
            }
            _ => (self.key_id.clone(), self.key.clone()),
        }
    }

    pub(crate) fn certificates(&self) -> Vec<PlatformCertificateKey> {
        self.read()
            .certificates
            .iter()
            .map(|c| c.listed.clone())
            .collect()
    }

    fn set_mode(&self, mode: PlatformMode) {
        self.write().mode = mode;
    }

    /// A new key and certificate, signing from now on; returns its serial.
    fn rotate(&self, now: DateTime<Utc>) -> anyhow::Result<String> {
        let private_pem =
            generate_private_key_pem().map_err(|e| anyhow::anyhow!("platform key: {e}"))?;
        let signer =
            PrivateKey::from_pem(&private_pem).map_err(|e| anyhow::anyhow!("platform key: {e}"))?;
        let entry = certificate_for(Arc::new(signer), now)?;
        let serial = entry.listed.serial_no.clone();
        let mut state = self.write();
        state.certificates.push(entry);
        let excess = state.certificates.len().saturating_sub(LISTED_CERTIFICATES);
        state.certificates.drain(..excess);
        state.mode = PlatformMode::Certificate;
        Ok(serial)
    }

    /// The `/v3/certificates` answer (wechatpay-v3.md §2): each listed certificate's PEM
    /// encrypted under the APIv3 key with the AAD `certificate` and a fresh 12-character nonce.
    pub(crate) fn listing(&self, apiv3_key: &ApiV3Key) -> Value {
        let data: Vec<Value> = self
            .read()
            .certificates
            .iter()
            .map(|c| {
                let nonce = nonce(12);
                json!({
                    "serial_no": c.listed.serial_no,
                    "effective_time": c.listed.effective_time,
                    "expire_time": c.listed.expire_time,
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "nonce": nonce,
                        "associated_data": "certificate",
                        "ciphertext": apiv3_key.encrypt(
                            &nonce,
                            "certificate",
                            c.listed.certificate_pem.as_bytes(),
                        ),
                    },
                })
            })
            .collect();
        json!({ "data": data })
    }
}

/// A self-signed certificate for `signer`, valid from `now` for five years, with a random
/// 20-byte serial (40 upper-case hex characters, as WeChat's are).
fn certificate_for(
    signer: Arc<PrivateKey>,
    now: DateTime<Utc>,
) -> anyhow::Result<CertificateEntry> {
    let serial = new_serial();
    let not_before = now.with_nanosecond(0).unwrap_or(now);
    let not_after = not_before + chrono::Duration::days(CERTIFICATE_YEARS * 365);
    let pem = self_signed_certificate(
        &signer,
        &serial,
        "paygate sandbox WeChat Pay platform",
        not_before,
        not_after,
    );
    let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
    let rfc3339 = |at: DateTime<Utc>| {
        at.with_timezone(&beijing)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    };
    Ok(CertificateEntry {
        listed: PlatformCertificateKey {
            serial_no: serial.iter().map(|b| format!("{b:02X}")).collect(),
            certificate_pem: pem,
            effective_time: rfc3339(not_before),
            expire_time: rfc3339(not_after),
        },
        signer,
    })
}

/// 20 random bytes, the first 0x10..=0x7F: a positive INTEGER with no leading zero to strip.
fn new_serial() -> Vec<u8> {
    let mut rng = rand::rng();
    let mut serial = vec![rng.random_range(0x10..0x80u8)];
    serial.extend((0..19).map(|_| rng.random::<u8>()));
    serial
}

impl Sandbox {
    /// Switches WeChat Pay to certificate mode: answers and notifications are signed with the
    /// newest platform certificate (its serial in `Wechatpay-Serial`).
    pub fn use_wechat_platform_certificates(&self) {
        self.inner
            .wechat
            .platform
            .set_mode(PlatformMode::Certificate);
    }

    /// Generates a new platform key and certificate and signs with it from now on (certificate
    /// mode); the previous certificate stays listed in `/v3/certificates` for the overlap.
    /// Returns the new serial. Generating an RSA-2048 key takes a moment of CPU.
    pub fn rotate_wechat_platform_key(&self) -> anyhow::Result<String> {
        let serial = self.inner.wechat.platform.rotate(self.now())?;
        tracing::info!(serial = %serial, "sandbox: WeChat Pay platform key rotated");
        Ok(serial)
    }

    /// The serials `/v3/certificates` lists now, oldest first.
    pub fn wechat_platform_serials(&self) -> Vec<String> {
        self.wechat_platform_certificates()
            .into_iter()
            .map(|c| c.serial_no)
            .collect()
    }

    /// The listed platform certificates (PEM), oldest first, for tests that trust them directly.
    pub fn wechat_platform_certificates(&self) -> Vec<PlatformCertificateKey> {
        self.inner.wechat.platform.certificates()
    }

    /// The `Wechatpay-Serial` answers and notifications carry now.
    pub fn wechat_signing_serial(&self) -> String {
        self.inner.wechat.platform.signing().0
    }

    /// Which mode signs now.
    pub fn wechat_platform_mode(&self) -> PlatformMode {
        self.inner.wechat.platform.read().mode
    }
}

/// `POST /sandbox/wechatpay/rotate-platform-key` → `{"serial_no": new, "serials": [listed]}`.
pub(crate) async fn rotate_platform_key(State(sandbox): State<Sandbox>) -> Response {
    let rotating = sandbox.clone();
    match tokio::task::spawn_blocking(move || rotating.rotate_wechat_platform_key()).await {
        Ok(Ok(serial)) => axum::Json(serde_json::json!({
            "serial_no": serial,
            "serials": sandbox.wechat_platform_serials(),
        }))
        .into_response(),
        Ok(Err(error)) => {
            tracing::error!(error = %error, "sandbox: platform key rotation failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `POST /sandbox/wechatpay/platform-mode` with `{"mode": "certificate" | "public_key"}`.
pub(crate) async fn set_platform_mode(
    State(sandbox): State<Sandbox>,
    body: axum::body::Bytes,
) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        mode: PlatformMode,
    }
    match serde_json::from_slice::<Body>(&body) {
        Ok(Body { mode }) => {
            sandbox.inner.wechat.platform.set_mode(mode);
            axum::Json(serde_json::json!({
                "mode": mode,
                "signing_serial": sandbox.wechat_signing_serial(),
            }))
            .into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"code": "INVALID_MODE", "message": error.to_string()})),
        )
            .into_response(),
    }
}
