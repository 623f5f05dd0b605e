//! Waiting for an order to leave `pending` (`GET /v1/orders/{no}?wait=N`, issue 13) without a
//! database loop per waiter.
//!
//! - **This instance**: the settlement path and the close announce a committed status change
//!   here ([`OrderWatch::changed`]); every waiter on that order wakes at once.
//! - **Other instances** (many paygates on one PostgreSQL): one re-read per instance, not per
//!   waiter — `store::reread::reread_loop` asks every [`REREAD_INTERVAL`] which of the watched orders are no
//!   longer pending (one query per 200 orders) and wakes their waiters.
//!
//! An order is in the map only while someone waits on it: the last [`Subscription`] dropped
//! removes it, so nothing grows with the number of waits served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::OrderNo;

/// How often the watched orders are re-read for changes made by other instances (issue 13:
/// at least 500 ms apart).
pub const REREAD_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone, Default)]
pub struct OrderWatch {
    orders: Arc<Mutex<HashMap<OrderNo, Entry>>>,
}

struct Entry {
    signal: watch::Sender<()>,
    waiters: usize,
}

impl std::fmt::Debug for OrderWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderWatch")
            .field("watched", &self.lock().len())
            .finish()
    }
}

impl OrderWatch {
    fn lock(&self) -> MutexGuard<'_, HashMap<OrderNo, Entry>> {
        // A panic while holding this lock leaves a plain map behind: still consistent.
        self.orders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts watching `order_no`. Take it **before** reading the order, so a change committed
    /// between the read and the wait is not missed.
    pub fn subscribe(&self, order_no: &OrderNo) -> Subscription {
        let mut orders = self.lock();
        let entry = orders.entry(order_no.clone()).or_insert_with(|| Entry {
            signal: watch::channel(()).0,
            waiters: 0,
        });
        entry.waiters += 1;
        Subscription {
            signal: entry.signal.subscribe(),
            order_no: order_no.clone(),
            watch: self.clone(),
        }
    }

    /// The status of `order_no` changed and the change has committed: wakes its waiters.
    pub fn changed(&self, order_no: &OrderNo) {
        if let Some(entry) = self.lock().get(order_no) {
            entry.signal.send_replace(());
        }
    }

    /// The orders someone waits on now.
    pub fn watched(&self) -> Vec<OrderNo> {
        self.lock().keys().cloned().collect()
    }

    /// How many waits are in progress, over all orders.
    pub fn waiters(&self) -> usize {
        self.lock().values().map(|e| e.waiters).sum()
    }

    /// How many orders are watched (0 once every wait has ended).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One waiter's hold on an order; dropping it (the request ended, or its client went away)
/// lets the order go from the map when it was the last.
pub struct Subscription {
    signal: watch::Receiver<()>,
    order_no: OrderNo,
    watch: OrderWatch,
}

impl Subscription {
    /// Resolves at the next announced change of the order.
    pub async fn changed(&mut self) {
        if self.signal.changed().await.is_err() {
            // The sender lives in the map as long as this subscription does, so this cannot
            // happen; never spin on it anyway.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut orders = self.watch.lock();
        if let Some(entry) = orders.get_mut(&self.order_no) {
            entry.waiters -= 1;
            if entry.waiters == 0 {
                orders.remove(&self.order_no);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_wakes_every_waiter_and_the_last_one_out_removes_the_order() {
        let watch = OrderWatch::default();
        let no = OrderNo::generate();
        let mut a = watch.subscribe(&no);
        let mut b = watch.subscribe(&no);
        assert_eq!(watch.len(), 1);
        watch.changed(&no);
        tokio::time::timeout(Duration::from_secs(1), a.changed())
            .await
            .expect("a wakes");
        tokio::time::timeout(Duration::from_secs(1), b.changed())
            .await
            .expect("b wakes");
        drop(a);
        assert_eq!(watch.len(), 1);
        drop(b);
        assert!(watch.is_empty());
        // A change of an order nobody watches is nothing.
        watch.changed(&no);
        assert!(watch.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_does_not_wake_for_another_order() {
        let watch = OrderWatch::default();
        let (mine, other) = (OrderNo::generate(), OrderNo::generate());
        let mut sub = watch.subscribe(&mine);
        watch.changed(&other);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), sub.changed())
                .await
                .is_err()
        );
    }
}
