//! The event push (DESIGN.md §6): when `[events] url` is set, every outbox event is POSTed there
//! as JSON with `Paygate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! retried with back-off until a 2xx: at least once, each event with its stable `id` for the
//! receiver to dedupe.
//!
//! Several instances may push from one database: each attempt first claims the event (a
//! conditional update of its `next_attempt_at`), so two instances do not push the same event at
//! the same moment; a crash between the POST and the `delivered_at` write means one more push,
//! which the receiver dedupes by `id`.

use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;

use crate::clock::{Clock, to_millis};
use crate::config::Config;
use crate::store::{Db, events};

/// The header a receiver verifies.
pub const SIGNATURE_HEADER: &str = "Paygate-Signature";
/// Events one pass looks at.
const BATCH: i64 = 100;
/// How long a claimed attempt keeps other instances away (longer than the request timeout).
const CLAIM: chrono::Duration = chrono::Duration::seconds(30);
/// Back-off between attempts: 1 s, 2 s, 4 s, … capped at one hour.
const MAX_BACKOFF_SECS: i64 = 3600;

pub struct Pusher {
    http: reqwest::Client,
    url: String,
    secret: SecretString,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// `None` when no `[events] url` is configured (the feed alone).
    pub fn load(config: &Config) -> anyhow::Result<Option<Pusher>> {
        let Some(events) = &config.events else {
            return Ok(None);
        };
        let Some(url) = &events.url else {
            return Ok(None);
        };
        let file = events
            .secret_file
            .as_ref()
            .context("[events] url needs secret_file, the HMAC key the receiver shares")?;
        let path = config.resolve(file);
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let secret = secret.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(
            secret.len() >= 16,
            "the events secret must be at least 16 characters"
        );
        Ok(Some(Pusher::new(url, SecretString::from(secret))?))
    }

    pub fn new(url: &str, secret: SecretString) -> anyhow::Result<Pusher> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Pusher {
            http,
            url: url.to_owned(),
            secret,
        })
    }

    /// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    pub fn signature(&self, t: i64, body: &str) -> String {
        signature(self.secret.expose_secret().as_bytes(), t, body)
    }

    async fn post(&self, body: String, t: i64) -> Result<(), PushError> {
        let response = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(SIGNATURE_HEADER, self.signature(t, &body))
            .body(body)
            .send()
            .await
            .map_err(PushError::Transport)?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(PushError::Refused(response.status().as_u16()))
        }
    }
}

/// Why one event was not delivered; it is tried again later.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("the receiver could not be reached")]
    Transport(#[source] reqwest::Error),
    #[error("the receiver answered {0}")]
    Refused(u16),
}

/// The signature scheme, for receivers' tests and for [`Pusher::signature`].
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// One push pass.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PushPass {
    pub pushed: u64,
    pub failed: u64,
    /// Claimed by another instance first.
    pub skipped: u64,
    /// No `[events] url`: nothing to do.
    pub disabled: bool,
}

fn backoff(attempts: i64) -> chrono::Duration {
    let exponent = (attempts - 1).clamp(0, 12) as u32;
    chrono::Duration::seconds((1i64 << exponent).min(MAX_BACKOFF_SECS))
}

/// Pushes the undelivered events that are due, oldest first; `pusher` None (no `[events]
/// url`): nothing to do.
pub async fn push_due(
    db: &Db,
    pusher: Option<&Pusher>,
    clock: &dyn Clock,
) -> anyhow::Result<PushPass> {
    let Some(pusher) = pusher else {
        return Ok(PushPass {
            disabled: true,
            ..PushPass::default()
        });
    };
    let pool = db.pool();
    let mut pass = PushPass::default();
    let now = clock.now();
    for due in events::due_for_push(pool, to_millis(now), BATCH).await? {
        if !events::claim_push(pool, &due, to_millis(now + CLAIM)).await? {
            pass.skipped += 1;
            continue;
        }
        let id = due.event.id;
        let body = serde_json::to_string(&due.event)?;
        match pusher.post(body, clock.now().timestamp()).await {
            Ok(()) => {
                events::mark_delivered(pool, id, to_millis(clock.now())).await?;
                pass.pushed += 1;
            }
            Err(why) => {
                let attempts = due.attempts + 1;
                let next = clock.now() + backoff(attempts);
                events::retry_push_at(pool, id, to_millis(next)).await?;
                let reason = crate::error::chain(&why);
                tracing::warn!(
                    event_id = id,
                    attempts,
                    reason,
                    "event push failed; retrying later"
                );
                pass.failed += 1;
            }
        }
    }
    crate::telemetry::events_pushed(pass.pushed, pass.failed);
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_t_dot_body() {
        // Python: hmac.new(b"whsec_test_0123456789", b"1764388800.{\"id\":1}", "sha256").hexdigest()
        let s = signature(b"whsec_test_0123456789", 1_764_388_800, "{\"id\":1}");
        assert_eq!(
            s,
            "t=1764388800,v1=8683fe9aacb300591cd8dfb7d68805b9cd3c7f91067b63890b8804e49b987b1f"
        );
        assert_ne!(
            s,
            signature(b"whsec_test_0123456789", 1_764_388_801, "{\"id\":1}")
        );
        assert_ne!(
            s,
            signature(b"whsec_other_012345678", 1_764_388_800, "{\"id\":1}")
        );
    }

    #[test]
    fn back_off_doubles_from_one_second_up_to_an_hour() {
        let secs: Vec<i64> = (1..=14).map(|n| backoff(n).num_seconds()).collect();
        assert_eq!(&secs[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(secs[12], 3600);
        assert_eq!(secs[13], 3600);
    }
}
