//! Every Alipay refund sends its own `trade_status_sync`: the payment fields again, plus
//! `refund_fee` (cumulative), `out_biz_no` and `gmt_refund`, and `TRADE_CLOSED` with
//! `gmt_close` once the trade is fully refunded.

use std::sync::Arc;

use chrono::{TimeZone as _, Utc};
use paygate_alipay::{Params, TradeNotification, TradeStatus, Verifier, verify_trade_notification};
use paygate_sandbox::Faults;

use crate::{
    ALIPAY_PUB, APP_ID, Harness, Receiver, SELLER_ID, eventually, order, order_no, start,
    start_with, start_with_divisor,
};

/// A trade of `total_fen` the buyer has paid, notifying `notify_url`.
pub(crate) async fn paid_trade_notifying(
    h: &Harness,
    prefix: &str,
    total_fen: i64,
    notify_url: &str,
) -> String {
    let no = order_no(prefix);
    h.client
        .precreate(&order(&no, total_fen, notify_url))
        .await
        .unwrap();
    assert_eq!(h.pay(&no).await.0, 200);
    no
}

/// The first `count` notifications `receiver` got, as sent and as the gateway reads them, in
/// the order they came.
pub(crate) async fn notifications(
    receiver: &Receiver,
    count: usize,
) -> Vec<(Params, TradeNotification)> {
    let received = eventually(&format!("{count} notifications"), || {
        let r = receiver.received();
        (r.len() >= count).then_some(r)
    })
    .await;
    let verifier = Verifier::from_pem_or_base64(ALIPAY_PUB).unwrap();
    received
        .iter()
        .take(count)
        .map(|(body, _, answer)| {
            assert_eq!(answer, "success", "the receiver verified it");
            (
                Params::from_form(body).unwrap(),
                verify_trade_notification(body, &verifier).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_partial_then_a_full_refund_each_notify_with_the_cumulative_refund_fee() {
    let h = start().await;
    let receiver = Receiver::start(&[]).await;
    let no = paid_trade_notifying(&h, "RN", 19900, &receiver.url).await;
    let payment = notifications(&receiver, 1).await.remove(0).1;

    h.client.refund(&no, "R1", 5000, None).await.unwrap();
    let partial = notifications(&receiver, 2).await.remove(1);
    h.client.refund(&no, "R2", 14900, None).await.unwrap();
    let full = notifications(&receiver, 3).await.remove(2);

    let (partial_params, partial) = partial;
    assert_eq!(partial.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(partial.refund_fee_fen, Some(5000));
    assert_eq!(partial.out_biz_no.as_deref(), Some("R1"));
    assert!(partial.gmt_refund.is_some());
    assert_eq!(partial.gmt_close, None);

    let (full_params, full) = full;
    assert_eq!(full.trade_status, TradeStatus::TradeClosed);
    assert_eq!(
        full.refund_fee_fen,
        Some(19900),
        "cumulative, not this refund's"
    );
    assert_eq!(full.out_biz_no.as_deref(), Some("R2"));
    assert!(full.gmt_close.is_some());
    assert_eq!(
        full.gmt_close.map(|t| t.timestamp()),
        full.gmt_refund.map(|t| t.timestamp())
    );

    for (params, n) in [(&partial_params, &partial), (&full_params, &full)] {
        // The trade's payment fields, as on the payment notification.
        assert_eq!(n.out_trade_no, no);
        assert_eq!(n.trade_no, payment.trade_no);
        assert_eq!(n.total_fen, 19900);
        assert_eq!(n.app_id, APP_ID);
        assert_eq!(n.seller_id.as_deref(), Some(SELLER_ID));
        assert_eq!(n.paid_at, payment.paid_at);
        assert_ne!(n.notify_id, payment.notify_id, "each its own notify_id");
        // The payer fields ride along, for the gateway to prove it drops them.
        for key in [
            "buyer_id",
            "buyer_logon_id",
            "gmt_payment",
            "fund_bill_list",
        ] {
            assert!(params.non_empty(key).is_some(), "{key}");
        }
        assert_eq!(params.get("notify_type"), Some("trade_status_sync"));
    }
    assert_eq!(partial_params.get("refund_fee"), Some("50.00"));
    assert_eq!(full_params.get("refund_fee"), Some("199.00"));
    assert_ne!(partial.notify_id, full.notify_id);
}

#[tokio::test]
async fn repeating_a_refund_moves_no_money_and_notifies_nothing() {
    let h = start().await;
    let receiver = Receiver::start(&[]).await;
    let no = paid_trade_notifying(&h, "RNR", 19900, &receiver.url).await;
    h.client.refund(&no, "R1", 5000, None).await.unwrap();
    notifications(&receiver, 2).await;
    eventually("both acknowledged", || {
        (h.sandbox.pending_notifications() == 0).then_some(())
    })
    .await;

    // Any notification queued now would stay pending: every attempt is lost.
    h.sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..Faults::default()
    });
    let repeat = h.client.refund(&no, "R1", 5000, None).await.unwrap();
    assert!(!repeat.fund_change);
    assert_eq!(h.sandbox.pending_notifications(), 0);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn refund_times_come_from_the_injected_clock_gmt_refund_with_milliseconds() {
    let fake =
        Utc.with_ymd_and_hms(2031, 3, 4, 5, 6, 7).unwrap() + chrono::Duration::milliseconds(250);
    let h = start_with(1000, Arc::new(move || fake)).await;
    let receiver = Receiver::start(&[]).await;
    let no = paid_trade_notifying(&h, "RNC", 100, &receiver.url).await;
    // No out_request_no: a full refund numbered by the order.
    let refund = h.client.refund(&no, &no, 100, None).await.unwrap();
    assert!(refund.fund_change);
    let (params, n) = notifications(&receiver, 2).await.remove(1);
    assert_eq!(params.get("gmt_refund"), Some("2031-03-04 13:06:07.250"));
    assert_eq!(params.get("gmt_close"), Some("2031-03-04 13:06:07"));
    assert_eq!(params.get("trade_status"), Some("TRADE_CLOSED"));
    assert_eq!(params.get("out_biz_no"), Some(no.as_str()));
    assert_eq!(n.gmt_refund, Some(fake), "milliseconds kept");
}

#[tokio::test]
async fn a_dropped_refund_notification_stays_on_its_schedule_until_resent() {
    // Real retry delays (4 min first), so only the resend can deliver within the test.
    let h = start_with_divisor(1).await;
    let receiver = Receiver::start(&[]).await;
    let no = paid_trade_notifying(&h, "RND", 19900, &receiver.url).await;
    notifications(&receiver, 1).await;
    eventually("the payment acknowledged", || {
        (h.sandbox.pending_notifications() == 0).then_some(())
    })
    .await;

    h.sandbox.set_faults(Faults {
        drop_notifications: 1.0,
        ..Faults::default()
    });
    h.client.refund(&no, "R1", 100, None).await.unwrap();
    let dropped = eventually("the dropped attempt", || {
        h.sandbox.notifications().into_iter().find(|r| r.dropped)
    })
    .await;
    assert_eq!(
        (dropped.out_trade_no.as_str(), dropped.attempt),
        (no.as_str(), 1)
    );
    assert_eq!(h.sandbox.pending_notifications(), 1);
    assert_eq!(receiver.received().len(), 1);

    h.sandbox.set_faults(Faults::default());
    assert_eq!(h.sandbox.resend_pending().await, 1);
    let (_, n) = notifications(&receiver, 2).await.remove(1);
    assert_eq!(n.notify_id, dropped.notification_id);
    assert_eq!(n.refund_fee_fen, Some(100));
    assert_eq!(h.sandbox.pending_notifications(), 0);
}
