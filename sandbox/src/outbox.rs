//! Every notification not yet acknowledged, WeChat's and Alipay's alike, and the loop that
//! retries it on its provider's schedule. The notification faults act here, on each delivery
//! attempt, in this order: `delay_notifications_ms` (wait), `drop_notifications` (lose it),
//! `reorder` (hold it in a batch), then the provider's own sending (probes, duplicates).
//!
//! A notification stays pending until one copy is acknowledged, even after its schedule runs
//! out, so that [`Sandbox::resend_pending`] can still deliver it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::SecondsFormat;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::alipay::AlipayOrder;
use crate::delivery::DeliveryRecord;
use crate::faults::REORDER_WINDOW_MS;
use crate::{Sandbox, lock};

/// What is being notified.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) enum Payload {
    /// WeChat's `TRANSACTION.SUCCESS`, the transaction to encrypt.
    Wechat { transaction: Value },
    /// Alipay's `trade_status_sync` of a paid trade, a snapshot taken when it was queued: its
    /// payment, or with `refund` the refund of that `out_request_no`.
    Alipay {
        order: Box<AlipayOrder>,
        refund: Option<String>,
    },
}

#[derive(Clone)]
struct Pending {
    out_trade_no: String,
    notify_url: String,
    payload: Arc<Payload>,
    /// Attempts made so far, by the retry loop and by resends together.
    attempts: u32,
}

/// A held attempt's signal to go; it hands back a sender it drops once it has been answered.
type Turn = oneshot::Sender<oneshot::Sender<()>>;

#[derive(Default)]
pub(crate) struct Outbox {
    /// By notification id (WeChat envelope `id`, Alipay `notify_id`).
    pending: Mutex<HashMap<String, Pending>>,
    /// Attempts held by the `reorder` fault, in the order they joined.
    batch: Mutex<Vec<Turn>>,
}

impl Sandbox {
    /// Records a notification as pending and starts its retry loop in the background: the
    /// first attempt at once, then one after each delay of `schedule` (seconds, divided by
    /// `time_divisor`), until acknowledged.
    pub(crate) fn enqueue_notification(
        &self,
        id: String,
        out_trade_no: String,
        notify_url: String,
        payload: Payload,
        schedule: &'static [u64],
    ) {
        self.keep_notification(&id, &out_trade_no, &notify_url, &payload);
        self.start_notification(id, out_trade_no, notify_url, payload, 0, schedule);
    }

    /// Records a notification as pending, `attempts` already made (a restarted simulator's
    /// kept one, [`crate::ledger_file`]), and starts its retry loop: an attempt at once, then
    /// one after each delay of `schedule`.
    pub(crate) fn start_notification(
        &self,
        id: String,
        out_trade_no: String,
        notify_url: String,
        payload: Payload,
        attempts: u32,
        schedule: &'static [u64],
    ) {
        lock(&self.inner.outbox.pending).insert(
            id.clone(),
            Pending {
                out_trade_no,
                notify_url,
                payload: Arc::new(payload),
                attempts,
            },
        );
        let sandbox = self.clone();
        tokio::spawn(async move { sandbox.retry_loop(id, schedule).await });
    }

    /// Makes one more delivery attempt of every notification not yet acknowledged, now (the
    /// current faults apply), and returns when they are answered: how many were attempted. For
    /// tests that drop notifications first and "later let them through".
    pub async fn resend_pending(&self) -> usize {
        let ids: Vec<String> = lock(&self.inner.outbox.pending).keys().cloned().collect();
        let mut attempts = tokio::task::JoinSet::new();
        for id in &ids {
            let (sandbox, id) = (self.clone(), id.clone());
            attempts.spawn(async move { sandbox.attempt(&id).await });
        }
        while attempts.join_next().await.is_some() {}
        ids.len()
    }

    /// How many notifications are not yet acknowledged.
    pub fn pending_notifications(&self) -> usize {
        lock(&self.inner.outbox.pending).len()
    }

    async fn retry_loop(&self, id: String, schedule: &'static [u64]) {
        let divisor = u64::from(self.time_divisor());
        let mut delays = schedule.iter();
        loop {
            if self.attempt(&id).await {
                return;
            }
            let Some(delay) = delays.next() else {
                tracing::warn!(
                    notification_id = %id,
                    "sandbox: notification never acknowledged on its schedule, kept for resend"
                );
                return;
            };
            tokio::time::sleep(Duration::from_millis(delay * 1000 / divisor)).await;
            if !lock(&self.inner.outbox.pending).contains_key(&id) {
                // A resend got it through meanwhile.
                return;
            }
        }
    }

    /// One delivery attempt; true when acknowledged (or already acknowledged before).
    async fn attempt(&self, id: &str) -> bool {
        let (entry, attempt) = {
            let mut pending = lock(&self.inner.outbox.pending);
            let Some(entry) = pending.get_mut(id) else {
                return true;
            };
            entry.attempts += 1;
            (entry.clone(), entry.attempts)
        };
        self.keep_notification_attempts(id, attempt);
        let faults = self.faults();
        let delay = faults.notification_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if faults.drop_this_attempt() {
            tracing::info!(out_trade_no = %entry.out_trade_no, attempt, "sandbox: notification dropped (fault)");
            self.record(DeliveryRecord {
                notification_id: id.to_owned(),
                out_trade_no: entry.out_trade_no.clone(),
                attempt,
                probe: false,
                status: None,
                acknowledged: false,
                dropped: true,
                at: self.now().to_rfc3339_opts(SecondsFormat::Millis, false),
            });
            return false;
        }
        let turn = if faults.reorder {
            self.wait_for_turn().await
        } else {
            None
        };
        let acknowledged = match entry.payload.as_ref() {
            Payload::Wechat { transaction } => {
                self.send_wechat(
                    id,
                    attempt,
                    &entry.out_trade_no,
                    &entry.notify_url,
                    transaction,
                    &faults,
                )
                .await
            }
            Payload::Alipay { order, refund } => {
                self.send_alipay(
                    id,
                    attempt,
                    order,
                    refund.as_deref(),
                    &entry.notify_url,
                    &faults,
                )
                .await
            }
        };
        // Answered: the next held attempt may go.
        drop(turn);
        if acknowledged {
            lock(&self.inner.outbox.pending).remove(id);
            self.forget_notification(id);
            tracing::info!(out_trade_no = %entry.out_trade_no, attempt, "sandbox: notification acknowledged");
        } else {
            tracing::info!(out_trade_no = %entry.out_trade_no, attempt, "sandbox: notification not acknowledged");
        }
        acknowledged
    }

    /// The `reorder` fault: joins the open batch (opening one if none is) and waits to be
    /// released. Returns the sender to drop once this attempt has been answered.
    async fn wait_for_turn(&self) -> Option<oneshot::Sender<()>> {
        let (go, turn) = oneshot::channel();
        let opens = {
            let mut batch = lock(&self.inner.outbox.batch);
            batch.push(go);
            batch.len() == 1
        };
        if opens {
            let sandbox = self.clone();
            tokio::spawn(async move { sandbox.release_batch().await });
        }
        turn.await.ok()
    }

    /// After the window, sends the held attempts newest first, one at a time.
    async fn release_batch(&self) {
        tokio::time::sleep(Duration::from_millis(REORDER_WINDOW_MS)).await;
        let held = std::mem::take(&mut *lock(&self.inner.outbox.batch));
        for go in held.into_iter().rev() {
            let (done, answered) = oneshot::channel();
            if go.send(done).is_ok() {
                // Err only means the attempt finished (dropped its sender): the signal itself.
                let _ = answered.await;
            }
        }
    }
}
