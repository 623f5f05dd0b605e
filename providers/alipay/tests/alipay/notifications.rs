//! Trade notifications signed by the simulator side and read by the gateway side.

use paygate_alipay::simulator::sign_notification;
use paygate_alipay::{AmountError, NotifyError, Params, TradeStatus, verify_trade_notification};

use crate::fixtures::{ALIPAY_KEY, ALIPAY_PUBLIC_KEY, APP_KEY};

fn fields(total_amount: &str) -> Params {
    [
        ("notify_time", "2026-11-29 00:31:08"),
        ("notify_type", "trade_status_sync"),
        ("notify_id", "2026112900222003108000000000000001"),
        ("app_id", "2021000000000000"),
        ("charset", "utf-8"),
        ("version", "1.0"),
        ("trade_no", "2026112922001411111111111111"),
        ("out_trade_no", "P2026112900AB12"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", total_amount),
        ("seller_id", "2088000000000000"),
        ("buyer_id", "2088102534368455"),
        ("buyer_logon_id", "xud***@126.com"),
        ("subject", "职前通服务"),
        ("gmt_create", "2026-11-29 00:30:30"),
        ("gmt_payment", "2026-11-29 00:31:07"),
        (
            "fund_bill_list",
            r#"[{"amount":"199.00","fundChannel":"ALIPAYACCOUNT"}]"#,
        ),
    ]
    .into_iter()
    .collect()
}

#[test]
fn a_notification_signed_with_the_alipay_key_verifies_and_reads_what_the_gateway_keeps() {
    let body = sign_notification(fields("199.00"), &ALIPAY_KEY).unwrap();
    let n = verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY).unwrap();
    assert_eq!(n.out_trade_no, "P2026112900AB12");
    assert_eq!(n.trade_no, "2026112922001411111111111111");
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(n.total_fen, 19900);
    assert_eq!(n.app_id, "2021000000000000");
    assert_eq!(n.seller_id.as_deref(), Some("2088000000000000"));
    assert_eq!(n.paid_at.unwrap().to_rfc3339(), "2026-11-28T16:31:07+00:00");
    // A payment notification says nothing about refunds.
    assert_eq!(
        (n.refund_fee_fen, n.out_biz_no, n.gmt_refund, n.gmt_close),
        (None, None, None, None)
    );
}

/// The payment fields again (payer fields included, as Alipay sends them), plus a refund's.
fn refund_fields(trade_status: &str, refund_fee: &str, out_biz_no: &str) -> Params {
    let mut f = fields("199.00");
    f.insert("notify_time", "2026-11-30 10:00:01");
    f.insert("notify_id", "2026113000222100001000000000000002");
    f.insert("trade_status", trade_status);
    f.insert("refund_fee", refund_fee);
    f.insert("out_biz_no", out_biz_no);
    // Real refund notifications carry milliseconds here.
    f.insert("gmt_refund", "2026-11-30 10:00:00.296");
    f
}

#[test]
fn a_partial_refund_notification_reads_the_cumulative_refund_fee_and_the_refund_number() {
    let body = sign_notification(
        refund_fields("TRADE_SUCCESS", "50.00", "RF2026113000AB12"),
        &ALIPAY_KEY,
    )
    .unwrap();
    let n = verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY).unwrap();
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(n.out_trade_no, "P2026112900AB12");
    assert_eq!(n.total_fen, 19900);
    assert_eq!(n.refund_fee_fen, Some(5000));
    assert_eq!(n.out_biz_no.as_deref(), Some("RF2026113000AB12"));
    assert_eq!(
        n.gmt_refund.unwrap().to_rfc3339(),
        "2026-11-30T02:00:00.296+00:00"
    );
    assert_eq!(n.gmt_close, None);
    // Still the paid trade: gmt_payment comes along.
    assert_eq!(n.paid_at.unwrap().to_rfc3339(), "2026-11-28T16:31:07+00:00");
    // The payer fields the body carries have nowhere to go.
    assert!(body.contains("buyer_id=") && body.contains("buyer_logon_id="));
    let kept = format!("{n:?}");
    assert!(!kept.contains("2088102534368455") && !kept.contains("xud***"));
}

#[test]
fn a_full_refund_notification_reads_as_a_closed_trade_with_its_close_time() {
    let mut f = refund_fields("TRADE_CLOSED", "199.00", "P2026112900AB12");
    f.insert("gmt_refund", "2026-11-30 10:00:00");
    f.insert("gmt_close", "2026-11-30 10:00:00");
    let body = sign_notification(f, &ALIPAY_KEY).unwrap();
    let n = verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY).unwrap();
    assert_eq!(n.trade_status, TradeStatus::TradeClosed);
    assert_eq!(n.refund_fee_fen, Some(19900));
    assert_eq!(n.out_biz_no.as_deref(), Some("P2026112900AB12"));
    let at = "2026-11-30T02:00:00+00:00";
    assert_eq!(n.gmt_refund.unwrap().to_rfc3339(), at);
    assert_eq!(n.gmt_close.unwrap().to_rfc3339(), at);
    assert!(n.paid_at.is_some());
}

#[test]
fn a_refund_fee_finer_than_a_fen_is_refused_not_rounded() {
    let body =
        sign_notification(refund_fields("TRADE_SUCCESS", "1.001", "RF1"), &ALIPAY_KEY).unwrap();
    assert_eq!(
        verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::Amount(AmountError::TooPrecise))
    );
}

#[test]
fn an_empty_refund_fee_is_absent_and_malformed_refund_times_are_refused() {
    let mut f = fields("199.00");
    f.insert("refund_fee", "");
    f.insert("out_biz_no", "");
    let body = sign_notification(f, &ALIPAY_KEY).unwrap();
    let n = verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY).unwrap();
    assert_eq!((n.refund_fee_fen, n.out_biz_no), (None, None));

    for (key, value) in [
        ("gmt_refund", "2026-11-30T10:00:00"),
        ("gmt_refund", "2026-11-30 10:00:00."),
        ("gmt_close", "30/11/2026 10:00:00"),
    ] {
        let mut f = refund_fields("TRADE_SUCCESS", "50.00", "RF1");
        f.insert(key, value);
        let body = sign_notification(f, &ALIPAY_KEY).unwrap();
        assert_eq!(
            verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY),
            Err(NotifyError::Field(key)),
            "{value}"
        );
    }
    let body =
        sign_notification(refund_fields("TRADE_SUCCESS", "-1.00", "RF1"), &ALIPAY_KEY).unwrap();
    assert_eq!(
        verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::Amount(AmountError::Negative))
    );
}

#[test]
fn a_notification_with_its_amount_changed_in_transit_is_rejected() {
    let body = sign_notification(fields("0.01"), &ALIPAY_KEY)
        .unwrap()
        .replace("total_amount=0.01", "total_amount=199.00");
    assert_eq!(
        verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::BadSignature)
    );
}

#[test]
fn a_notification_signed_with_another_key_is_rejected() {
    let body = sign_notification(fields("199.00"), &APP_KEY).unwrap();
    assert_eq!(
        verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::BadSignature)
    );
}

#[test]
fn a_notification_without_a_sign_or_with_a_legacy_sign_type_is_rejected() {
    let body = sign_notification(fields("199.00"), &ALIPAY_KEY).unwrap();
    let mut params = Params::from_form(body.as_bytes()).unwrap();
    params.insert("sign_type", "RSA");
    assert_eq!(
        verify_trade_notification(params.to_form().as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::SignType)
    );
    params.insert("sign_type", "RSA2");
    params.remove("sign");
    assert_eq!(
        verify_trade_notification(params.to_form().as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::Unsigned)
    );
}

#[test]
fn a_validly_signed_amount_finer_than_a_fen_is_rejected_not_rounded() {
    let body = sign_notification(fields("199.001"), &ALIPAY_KEY).unwrap();
    assert_eq!(
        verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::Amount(AmountError::TooPrecise))
    );
}

#[test]
fn a_body_that_repeats_a_field_with_another_value_is_rejected() {
    let body = sign_notification(fields("0.01"), &ALIPAY_KEY).unwrap() + "&total_amount=199.00";
    assert!(matches!(
        verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY),
        Err(NotifyError::Form(_))
    ));
}

#[test]
fn a_percent_sign_in_a_value_is_decoded_once_and_still_verifies() {
    let mut f = fields("199.00");
    f.insert("subject", "100%25 off");
    let body = sign_notification(f, &ALIPAY_KEY).unwrap();
    assert!(body.contains("subject=100%2525+off"));
    assert!(verify_trade_notification(body.as_bytes(), &ALIPAY_PUBLIC_KEY).is_ok());
}
