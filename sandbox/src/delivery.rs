//! The `TRANSACTION.SUCCESS` and `REFUND.*` callbacks: envelope per wechatpay-v3.md §3, the
//! resource (transaction or refund) AES-256-GCM-encrypted under the APIv3 key, headers signed
//! with the platform key that signs now (public-key id, or the newest certificate after a
//! rotation); POSTed to the notify_url until it is acknowledged (200 or 204), on WeChat's retry
//! schedule ([`crate::outbox`] runs the schedule and the notification faults).

use chrono::{FixedOffset, SecondsFormat};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::Faults;
use crate::outbox::Payload;
use crate::wechat::random_hex;
use crate::wire::wechat::{HEADER_SIGNATURE, SIGNATURE_PROBE_PREFIX, nonce, signed_headers};
use crate::{Sandbox, lock};

/// Delays before the 2nd, 3rd, … delivery when unacknowledged: 15s/15s/30s/3m/10m/20m/30m/30m/
/// 30m/60m/3h/3h/3h/6h/6h (15 retries, 24h4m in all). Each is divided by `time_divisor`.
pub const RETRY_SCHEDULE_SECS: [u64; 15] = [
    15,
    15,
    30,
    3 * 60,
    10 * 60,
    20 * 60,
    30 * 60,
    30 * 60,
    30 * 60,
    60 * 60,
    3 * 3600,
    3 * 3600,
    3 * 3600,
    6 * 3600,
    6 * 3600,
];

/// One POST of a callback to a notify_url, and what it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The envelope `id` (a probe carries the id of the notification it precedes).
    pub notification_id: String,
    pub out_trade_no: String,
    /// 1 for the first delivery, 2 for the first retry, …
    pub attempt: u32,
    /// A `WECHATPAY/SIGNTEST/` probe rather than a real delivery.
    pub probe: bool,
    /// The HTTP status answered; `None` when the request failed (refused, timed out).
    pub status: Option<u16>,
    /// Whether this answer counts as an acknowledgement (200 or 204).
    pub acknowledged: bool,
    /// Lost on purpose by the `drop_notifications` fault: nothing was sent.
    #[serde(default)]
    pub dropped: bool,
    /// When the answer came, RFC 3339.
    pub at: String,
}

/// A callback exactly as the sandbox sends it: headers and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNotification {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Sandbox {
    /// Builds the callback for `transaction` (any JSON: tests may forge one), signed at
    /// `timestamp` (unix seconds). A fresh notification id each call. A resource with a
    /// `refund_status` is a refund (see `ResourceKind::of`); anything else a transaction
    /// (`TRANSACTION.SUCCESS`).
    pub fn wechat_notification(&self, transaction: &Value, timestamp: i64) -> SignedNotification {
        self.notification_with_id(&new_notification_id(), transaction, timestamp)
    }

    fn notification_with_id(
        &self,
        id: &str,
        transaction: &Value,
        timestamp: i64,
    ) -> SignedNotification {
        let wechat = &self.inner.wechat;
        let (serial, signer) = wechat.platform.signing();
        // WeChat's resource nonces are 12 characters; the AAD is non-empty (the original_type,
        // "transaction" or "refund"), since the official Java sample rejects an empty one.
        let resource_nonce = nonce(12);
        let kind = ResourceKind::of(transaction);
        let plaintext = serde_json::to_vec(transaction).unwrap_or_default();
        let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
        let envelope = json!({
            "id": id,
            "create_time": self
                .now()
                .with_timezone(&beijing)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            "event_type": kind.event_type,
            "resource_type": "encrypt-resource",
            "summary": kind.summary,
            "resource": {
                "original_type": kind.original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": wechat.apiv3_key.encrypt(
                    &resource_nonce,
                    kind.original_type,
                    &plaintext,
                ),
                "associated_data": kind.original_type,
                "nonce": resource_nonce,
            },
        });
        let body = envelope.to_string();
        let headers = signed_headers(&signer, &serial, timestamp, &nonce(32), body.as_bytes());
        let mut headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        SignedNotification { headers, body }
    }

    pub(crate) fn record(&self, record: DeliveryRecord) {
        lock(&self.inner.deliveries).push(record);
    }

    /// POSTs one callback; returns the status, or None when there was no answer.
    async fn post(&self, notify_url: &str, notification: &SignedNotification) -> Option<u16> {
        let mut request = self
            .inner
            .http
            .post(notify_url)
            .body(notification.body.clone());
        for (name, value) in &notification.headers {
            request = request.header(name, value);
        }
        match request.send().await {
            Ok(response) => Some(response.status().as_u16()),
            Err(error) => {
                tracing::debug!(error = %error, "sandbox: callback delivery failed");
                None
            }
        }
    }
}

/// What a notification says about its resource: event, summary, and `original_type` (also the
/// AAD).
struct ResourceKind {
    event_type: &'static str,
    summary: &'static str,
    original_type: &'static str,
}

impl ResourceKind {
    /// A refund resource is the one with a `refund_status` (WeChat's refund resource has it, a
    /// transaction never does); its status picks the event. The outbox carries resources as
    /// plain JSON, so the kind is read from the resource rather than carried beside it.
    fn of(resource: &Value) -> ResourceKind {
        let refund = |event_type, summary| ResourceKind {
            event_type,
            summary,
            original_type: "refund",
        };
        match resource.get("refund_status").and_then(Value::as_str) {
            None => ResourceKind {
                event_type: "TRANSACTION.SUCCESS",
                summary: "支付成功",
                original_type: "transaction",
            },
            Some("SUCCESS") => refund("REFUND.SUCCESS", "退款成功"),
            Some("CLOSED") => refund("REFUND.CLOSED", "退款关闭"),
            Some(_) => refund("REFUND.ABNORMAL", "退款异常"),
        }
    }
}

impl Sandbox {
    /// Starts delivering a callback in the background: a paid order's transaction, or a
    /// refund's resource.
    pub(crate) fn notify_wechat(
        &self,
        out_trade_no: String,
        notify_url: String,
        transaction: Value,
    ) {
        self.enqueue_notification(
            new_notification_id(),
            out_trade_no,
            notify_url,
            Payload::Wechat { transaction },
            &RETRY_SCHEDULE_SECS,
        );
    }

    /// One delivery attempt: a probe first when that fault is on, then every copy at once, the
    /// same notification (same id), each copy signed afresh. True when a copy was acknowledged.
    pub(crate) async fn send_wechat(
        &self,
        id: &str,
        attempt: u32,
        out_trade_no: &str,
        notify_url: &str,
        transaction: &Value,
        faults: &Faults,
    ) -> bool {
        let record = |probe: bool, status: Option<u16>| DeliveryRecord {
            notification_id: id.to_owned(),
            out_trade_no: out_trade_no.to_owned(),
            attempt,
            probe,
            status,
            acknowledged: matches!(status, Some(200 | 204)),
            dropped: false,
            at: self.now().to_rfc3339_opts(SecondsFormat::Millis, false),
        };

        if faults.signature_probe {
            let mut probe = self.notification_with_id(id, transaction, self.now().timestamp());
            for (name, value) in &mut probe.headers {
                if name == HEADER_SIGNATURE {
                    *value = format!("{SIGNATURE_PROBE_PREFIX}{}", random_hex(64));
                }
            }
            let status = self.post(notify_url, &probe).await;
            self.record(record(true, status));
        }

        let mut copies = tokio::task::JoinSet::new();
        for _ in 0..faults.copies() {
            let notification = self.notification_with_id(id, transaction, self.now().timestamp());
            let (sandbox, notify_url) = (self.clone(), notify_url.to_owned());
            copies.spawn(async move { sandbox.post(&notify_url, &notification).await });
        }
        let mut acknowledged = false;
        while let Some(joined) = copies.join_next().await {
            let entry = record(false, joined.unwrap_or(None));
            acknowledged |= entry.acknowledged;
            self.record(entry);
        }
        acknowledged
    }
}

/// A 36-character id like WeChat's (`3119dfba-e649-5eec-ab1e-3412bc4d2e17`).
pub(crate) fn new_notification_id() -> String {
    let hex = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
