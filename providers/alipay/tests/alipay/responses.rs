//! Reading synchronous answers: verified over the raw node, typed, exact, without payer data.

use chrono::{TimeZone, Utc};
use paygate_alipay::simulator::{error_response, escape_slashes, sign_response};
use paygate_alipay::{
    AmountError, ApiError, QueryResponse, RefundQueryResponse, RefundResponse, RefundStatus,
    ResponseError, TradeStatus, read_close_response, read_precreate_response, read_query_response,
    read_refund_query_response, read_refund_response, verify_response,
};

use crate::fixtures::{ALIPAY_KEY, ALIPAY_PUBLIC_KEY, APP_KEY};

const ORDER: &str = "P2026112900AB12";

fn query_node(total_amount: &str, trade_status: &str) -> String {
    format!(
        r#"{{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_pay_amount":"199.00","buyer_user_id":"2088101117955611","buyer_open_id":"074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5","fund_bill_list":[{{"amount":"199.00","fund_channel":"ALIPAYACCOUNT"}}],"invoice_amount":"199.00","out_trade_no":"{ORDER}","point_amount":"0.00","receipt_amount":"199.00","send_pay_date":"2026-11-29 00:31:07","total_amount":"{total_amount}","trade_no":"2026112922001411111111111111","trade_status":"{trade_status}"}}"#
    )
}

fn signed_query(node: &str) -> String {
    sign_response("alipay.trade.query", node, &ALIPAY_KEY).unwrap()
}

#[test]
fn a_signed_query_answer_reads_to_status_and_exact_fen_with_payer_fields_dropped() {
    let raw = signed_query(&query_node("199.00", "TRADE_SUCCESS"));
    let answer = read_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER).unwrap();
    assert_eq!(
        answer,
        QueryResponse {
            out_trade_no: ORDER.into(),
            trade_no: "2026112922001411111111111111".into(),
            trade_status: TradeStatus::TradeSuccess,
            total_fen: 19900,
            paid_at: Some(Utc.with_ymd_and_hms(2026, 11, 28, 16, 31, 7).unwrap()),
        }
    );
    let shown = format!("{answer:?}");
    for payer_data in ["159****5620", "2088101117955611", "074a1CcTG1Lel"] {
        assert!(!shown.contains(payer_data), "{payer_data} leaked");
    }
}

#[test]
fn a_whole_yuan_amount_reads_and_an_amount_finer_than_a_fen_is_rejected() {
    let whole = signed_query(&query_node("199", "WAIT_BUYER_PAY"));
    let answer = read_query_response(&whole, &ALIPAY_PUBLIC_KEY, ORDER).unwrap();
    assert_eq!(
        (answer.total_fen, answer.trade_status),
        (19900, TradeStatus::WaitBuyerPay)
    );

    let too_precise = signed_query(&query_node("199.001", "TRADE_SUCCESS"));
    assert_eq!(
        read_query_response(&too_precise, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Amount {
            field: "total_amount",
            source: AmountError::TooPrecise
        })
    );
    let negative = signed_query(&query_node("-1", "TRADE_SUCCESS"));
    assert!(matches!(
        read_query_response(&negative, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Amount {
            source: AmountError::Negative,
            ..
        })
    ));
}

#[test]
fn an_amount_sent_as_a_json_number_is_rejected_rather_than_read_through_a_float() {
    let node = query_node("199.00", "TRADE_SUCCESS")
        .replace(r#""total_amount":"199.00""#, r#""total_amount":199.00"#);
    assert_eq!(
        read_query_response(&signed_query(&node), &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Malformed)
    );
}

#[test]
fn a_trade_status_alipay_adds_later_reads_as_unknown_and_is_not_paid() {
    let raw = signed_query(&query_node("199.00", "TRADE_REFUNDING"));
    let answer = read_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER).unwrap();
    assert_eq!(answer.trade_status, TradeStatus::Unknown);
    assert!(!answer.trade_status.is_paid());
}

#[test]
fn an_answer_changed_after_signing_is_rejected() {
    let raw = signed_query(&query_node("199.00", "WAIT_BUYER_PAY"))
        .replace("WAIT_BUYER_PAY", "TRADE_SUCCESS");
    assert_eq!(
        read_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::BadSignature)
    );
}

#[test]
fn an_answer_signed_with_another_key_is_rejected_even_when_it_says_success() {
    let forged = sign_response(
        "alipay.trade.query",
        &query_node("199.00", "TRADE_SUCCESS"),
        &APP_KEY,
    )
    .unwrap();
    assert_eq!(
        read_query_response(&forged, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::BadSignature)
    );
    // A bad signature wins over what the node says, even for an error code.
    let forged_error = sign_response(
        "alipay.trade.query",
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST"}"#,
        &APP_KEY,
    )
    .unwrap();
    assert_eq!(
        read_query_response(&forged_error, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::BadSignature)
    );
}

#[test]
fn an_unsigned_success_is_never_a_success() {
    let raw = format!(
        r#"{{"alipay_trade_query_response":{}}}"#,
        query_node("199.00", "TRADE_SUCCESS")
    );
    assert_eq!(
        read_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Unsigned)
    );
    let empty_sign = format!(
        r#"{{"alipay_trade_query_response":{},"sign":""}}"#,
        query_node("199.00", "TRADE_SUCCESS")
    );
    assert_eq!(
        read_query_response(&empty_sign, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Unsigned)
    );
}

#[test]
fn a_signed_business_failure_is_an_api_error_with_its_codes() {
    let raw = sign_response(
        "alipay.trade.query",
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"P2026112900AB12"}"#,
        &ALIPAY_KEY,
    )
    .unwrap();
    let error = read_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER).unwrap_err();
    let ResponseError::Api(api) = error else {
        panic!("{error:?}")
    };
    assert_eq!(api.code, "40004");
    assert_eq!(api.sub_code.as_deref(), Some("ACQ.TRADE_NOT_EXIST"));
    assert!(api.signed);
    assert!(api.is_trade_not_exist());
    assert!(!api.is_unavailable());
}

#[test]
fn an_unsigned_gateway_error_response_is_reported_as_an_unsigned_api_error() {
    let raw = error_response(
        r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}"#,
    );
    assert_eq!(
        read_close_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Api(ApiError {
            code: "20000".into(),
            sub_code: Some("isp.unknow-error".into()),
            signed: false,
        }))
    );
}

#[test]
fn an_answer_about_another_order_is_rejected() {
    let raw = signed_query(&query_node("199.00", "TRADE_SUCCESS"));
    assert_eq!(
        read_query_response(&raw, &ALIPAY_PUBLIC_KEY, "P2026112900ZZ99"),
        Err(ResponseError::OtherOrder)
    );
}

#[test]
fn a_precreate_answer_with_escaped_slashes_verifies_and_gives_the_plain_qr_code() {
    let node = escape_slashes(&format!(
        r#"{{"code":"10000","msg":"Success","out_trade_no":"{ORDER}","qr_code":"https://qr.alipay.com/bax03206ug0kulveltqc80a8"}}"#
    ));
    assert!(node.contains(r#"https:\/\/qr.alipay.com\/bax"#));
    let raw = sign_response("alipay.trade.precreate", &node, &ALIPAY_KEY).unwrap();
    let answer = read_precreate_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER).unwrap();
    assert_eq!(
        answer.qr_code,
        "https://qr.alipay.com/bax03206ug0kulveltqc80a8"
    );
    // Signed with the backslashes: verifying the unescaped text instead would fail.
    assert!(
        ALIPAY_PUBLIC_KEY
            .verify(node.replace("\\/", "/").as_bytes(), &sign_of(&raw))
            .is_err()
    );
}

#[test]
fn a_precreate_answer_without_a_qr_code_is_rejected() {
    let node = format!(r#"{{"code":"10000","msg":"Success","out_trade_no":"{ORDER}"}}"#);
    let raw = sign_response("alipay.trade.precreate", &node, &ALIPAY_KEY).unwrap();
    assert_eq!(
        read_precreate_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Field("qr_code"))
    );
}

#[test]
fn a_close_answer_reads_its_trade_numbers() {
    let node = format!(
        r#"{{"code":"10000","msg":"Success","trade_no":"2026112922001411111111111111","out_trade_no":"{ORDER}"}}"#
    );
    let raw = sign_response("alipay.trade.close", &node, &ALIPAY_KEY).unwrap();
    let answer = read_close_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER).unwrap();
    assert_eq!(answer.out_trade_no.as_deref(), Some(ORDER));
    assert_eq!(
        answer.trade_no.as_deref(),
        Some("2026112922001411111111111111")
    );
}

#[test]
fn a_query_answer_is_not_accepted_as_the_answer_to_another_method() {
    let raw = signed_query(&query_node("199.00", "TRADE_SUCCESS"));
    assert!(matches!(
        verify_response(&raw, "alipay.trade.close", &ALIPAY_PUBLIC_KEY),
        Err(ResponseError::MissingNode(_))
    ));
}

const REFUND: &str = "R2026112900AB12_1";

/// A refund answer as Alipay writes it: payer fields included, `/` escaped, signed over the
/// escaped bytes.
fn signed_refund(fund_change: &str, refund_fee: &str) -> String {
    let node = escape_slashes(&format!(
        r#"{{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_user_id":"2088101117955611","fund_change":"{fund_change}","gmt_refund_pay":"2026-11-29 10:15:42","out_trade_no":"{ORDER}","refund_fee":"{refund_fee}","send_back_fee":"50.00","store_name":"望京店/1号","trade_no":"2026112922001411111111111111"}}"#
    ));
    assert!(node.contains(r#"望京店\/1号"#));
    sign_response("alipay.trade.refund", &node, &ALIPAY_KEY).unwrap()
}

#[test]
fn a_signed_refund_answer_reads_to_the_cumulative_fee_with_payer_fields_dropped() {
    let raw = signed_refund("Y", "150.00");
    let answer = read_refund_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER).unwrap();
    assert_eq!(
        answer,
        RefundResponse {
            out_trade_no: ORDER.into(),
            trade_no: "2026112922001411111111111111".into(),
            fund_change: true,
            refund_fee_fen: 15000,
            // 10:15:42 in Beijing.
            gmt_refund_pay: Some(Utc.with_ymd_and_hms(2026, 11, 29, 2, 15, 42).unwrap()),
        }
    );
    let shown = format!("{answer:?}");
    for payer_data in ["159****5620", "2088101117955611"] {
        assert!(!shown.contains(payer_data), "{payer_data} leaked");
    }
}

#[test]
fn a_refund_answered_fund_change_n_reads_as_no_money_moved_by_this_call() {
    let raw = signed_refund("N", "150.00");
    let answer = read_refund_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER).unwrap();
    assert!(!answer.fund_change);
    assert_eq!(answer.refund_fee_fen, 15000);
}

#[test]
fn a_refund_answer_with_an_odd_fund_change_or_inexact_fee_is_rejected() {
    assert_eq!(
        read_refund_response(&signed_refund("y", "150.00"), &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Field("fund_change"))
    );
    assert_eq!(
        read_refund_response(&signed_refund("Y", "150.001"), &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Amount {
            field: "refund_fee",
            source: AmountError::TooPrecise
        })
    );
    assert_eq!(
        read_refund_response(&signed_refund("Y", "150.00"), &ALIPAY_PUBLIC_KEY, "P0"),
        Err(ResponseError::OtherOrder)
    );
    // Tampered after signing, even with the escapes undone: refused.
    let tampered = signed_refund("N", "150.00").replace(r#"\/"#, "/");
    assert_eq!(
        read_refund_response(&tampered, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::BadSignature)
    );
}

#[test]
fn a_refund_refused_for_the_sellers_balance_is_a_signed_api_error() {
    let raw = sign_response(
        "alipay.trade.refund",
        &format!(
            r#"{{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SELLER_BALANCE_NOT_ENOUGH","sub_msg":"卖家余额不足","out_trade_no":"{ORDER}","refund_fee":"0.00","send_back_fee":"0.00"}}"#
        ),
        &ALIPAY_KEY,
    )
    .unwrap();
    assert_eq!(
        read_refund_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Api(ApiError {
            code: "40004".into(),
            sub_code: Some("ACQ.SELLER_BALANCE_NOT_ENOUGH".into()),
            signed: true,
        }))
    );
    let unsigned = error_response(
        r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SELLER_BALANCE_NOT_ENOUGH"}"#,
    );
    assert_eq!(
        read_refund_response(&unsigned, &ALIPAY_PUBLIC_KEY, ORDER),
        Err(ResponseError::Api(ApiError {
            code: "40004".into(),
            sub_code: Some("ACQ.SELLER_BALANCE_NOT_ENOUGH".into()),
            signed: false,
        }))
    );
}

fn signed_refund_query(node: &str) -> String {
    sign_response("alipay.trade.fastpay.refund.query", node, &ALIPAY_KEY).unwrap()
}

#[test]
fn a_refund_query_reads_this_refunds_amount_and_success() {
    let raw = signed_refund_query(&format!(
        r#"{{"code":"10000","msg":"Success","out_request_no":"{REFUND}","out_trade_no":"{ORDER}","refund_amount":"50.00","refund_status":"REFUND_SUCCESS","total_amount":"199.00","trade_no":"2026112922001411111111111111"}}"#
    ));
    assert_eq!(
        read_refund_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER, REFUND),
        Ok(RefundQueryResponse {
            out_trade_no: ORDER.into(),
            out_request_no: REFUND.into(),
            refund_fen: Some(5000),
            total_fen: Some(19900),
            refund_status: RefundStatus::Success,
        })
    );
}

#[test]
fn a_refund_query_without_refund_status_is_a_refund_alipay_does_not_have() {
    let raw = signed_refund_query(r#"{"code":"10000","msg":"Success"}"#);
    assert_eq!(
        read_refund_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER, REFUND),
        Ok(RefundQueryResponse {
            out_trade_no: ORDER.into(),
            out_request_no: REFUND.into(),
            refund_fen: None,
            total_fen: None,
            refund_status: RefundStatus::NotFound,
        })
    );
    let other = signed_refund_query(&format!(
        r#"{{"code":"10000","msg":"Success","out_request_no":"{REFUND}","out_trade_no":"{ORDER}","refund_status":"REFUND_PROCESSING"}}"#
    ));
    assert_eq!(
        read_refund_query_response(&other, &ALIPAY_PUBLIC_KEY, ORDER, REFUND)
            .unwrap()
            .refund_status,
        RefundStatus::Unknown
    );
}

#[test]
fn a_refund_query_about_another_refund_or_a_success_without_amount_is_rejected() {
    let raw = signed_refund_query(&format!(
        r#"{{"code":"10000","msg":"Success","out_request_no":"{REFUND}","out_trade_no":"{ORDER}","refund_amount":"50.00","refund_status":"REFUND_SUCCESS"}}"#
    ));
    assert_eq!(
        read_refund_query_response(&raw, &ALIPAY_PUBLIC_KEY, ORDER, "R2"),
        Err(ResponseError::OtherRefund)
    );
    assert_eq!(
        read_refund_query_response(&raw, &ALIPAY_PUBLIC_KEY, "P0", REFUND),
        Err(ResponseError::OtherOrder)
    );
    let no_amount = signed_refund_query(&format!(
        r#"{{"code":"10000","msg":"Success","out_request_no":"{REFUND}","out_trade_no":"{ORDER}","refund_status":"REFUND_SUCCESS"}}"#
    ));
    assert_eq!(
        read_refund_query_response(&no_amount, &ALIPAY_PUBLIC_KEY, ORDER, REFUND),
        Err(ResponseError::Field("refund_amount"))
    );
}

fn sign_of(raw: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(raw).unwrap();
    value["sign"].as_str().unwrap().to_owned()
}
