//! The WeChat Pay platform certificates of certificate mode (`fetch_platform_certificates =
//! true`): fetched from `/v3/certificates`, decrypted under the APIv3 key, added beside the
//! keys already known (old and new side by side across a rotation). Fetched on schedule
//! (`refresh_platform_keys`), before the first call when no key is known yet, and when an
//! answer or a callback names a serial not yet known — at most once per
//! [`MIN_REFRESH_INTERVAL`], so forged serials cannot turn into a stream of requests.

use std::sync::{Arc, RwLock};

use anyhow::Context;
use paygate_wechatpay::{ApiV3Key, Client, PlatformKeys};

use crate::clock::SharedClock;

/// An unknown `Wechatpay-Serial` on a callback triggers a certificate fetch at most this often,
/// so forged serials cannot turn callbacks into a stream of requests to WeChat.
const MIN_REFRESH_INTERVAL: chrono::Duration = chrono::Duration::seconds(5);

pub(super) struct Certificates {
    client: Client,
    platform: Arc<RwLock<PlatformKeys>>,
    apiv3_key: ApiV3Key,
    clock: SharedClock,
    /// `fetch_platform_certificates`: platform keys come from `/v3/certificates`.
    enabled: bool,
    /// When the certificates were last fetched (gateway clock); one fetch at a time.
    last_refresh: tokio::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

impl Certificates {
    pub(super) fn new(
        client: Client,
        platform: Arc<RwLock<PlatformKeys>>,
        apiv3_key: ApiV3Key,
        clock: SharedClock,
        enabled: bool,
    ) -> Certificates {
        Certificates {
            client,
            platform,
            apiv3_key,
            clock,
            enabled,
            last_refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// The scheduled refresh: fetches in certificate mode, else nothing to do (0).
    pub(super) async fn refresh(&self) -> anyhow::Result<usize> {
        if !self.enabled {
            return Ok(0);
        }
        self.fetch().await
    }

    /// Fetches `/v3/certificates` and adds every listed key beside the ones already known
    /// (old and new side by side across a rotation). Answers how many keys are known.
    pub(super) async fn fetch(&self) -> anyhow::Result<usize> {
        let mut last = self.last_refresh.lock().await;
        self.fetch_locked(&mut last).await
    }

    /// The fetch itself, under the `last_refresh` lock so fetches never run side by side. An
    /// attempt counts for the rate limit whether or not it succeeds.
    async fn fetch_locked(
        &self,
        last: &mut Option<chrono::DateTime<chrono::Utc>>,
    ) -> anyhow::Result<usize> {
        *last = Some(self.clock.now());
        let listing = self
            .client
            .certificates()
            .await
            .context("fetching /v3/certificates")?;
        let certificates = paygate_wechatpay::decrypt_certificates(&listing, &self.apiv3_key)
            .context("decrypting /v3/certificates")?;
        let known = {
            let mut keys = self.platform.write().unwrap_or_else(|e| e.into_inner());
            for (serial, verifier, _expires) in certificates {
                keys.insert(&serial, verifier);
            }
            keys.len()
        };
        tracing::info!(known, "wechatpay platform certificates refreshed");
        Ok(known)
    }

    /// Certificate mode: an unknown serial may be a key WeChat just rotated in. Fetch once,
    /// unless an attempt was made within [`MIN_REFRESH_INTERVAL`]; true when a fetch succeeded.
    pub(super) async fn refresh_for_unknown_serial(&self) -> bool {
        if !self.enabled {
            return false;
        }
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| self.clock.now() - at < MIN_REFRESH_INTERVAL) {
            return false;
        }
        match self.fetch_locked(&mut last).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "certificate refresh for an unknown serial failed"
                );
                false
            }
        }
    }

    /// Certificate mode before any key is known (start-up, before the first scheduled fetch):
    /// fetch first, so the answer to this call can be verified.
    pub(super) async fn ensure_keys(&self) {
        let empty = self
            .platform
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if empty {
            self.refresh_for_unknown_serial().await;
        }
    }
}
