//! Trade bills: the published fixture, tampered and truncated copies, gzip and SHA-1, other
//! bill types, and round trips through the writer.

use std::io::Write;

use chrono::{DateTime, TimeZone, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;
use paygate_wechatpay::{
    BillDownload, BillError, BillRow, BillRowKind, BillRowSpec, BillTotals, RefundSpec,
    TradeBillReader, WriteOptions, bill_hash, verify_bill_hash, write_trade_bill,
    write_trade_bill_with,
};

/// The wechatpay-php fixture: BOM, CRLF, 45 rows, summary `` `45.0,`0.47,`0.14,… ``.
const FIXTURE: &[u8] = include_bytes!("../fixtures/bill.ALL.csv");
const FIXTURE_SHA1: &str = "9bb6cd819be348f17a9cbcedddc8eb62fefbd790";
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// A payer value planted in generated bills.
const PLANTED_OPENID: &str = "oPLANTEDopenid_never_in_a_row_0001";

fn parse(bytes: &[u8], gzip: bool) -> Result<(Vec<BillRow>, BillTotals), BillError> {
    let mut reader = TradeBillReader::new(bytes, gzip);
    let rows = reader.by_ref().collect::<Result<Vec<_>, _>>()?;
    let totals = reader
        .totals()
        .expect("totals once the iterator ended without error");
    Ok((rows, totals))
}

fn parse_err(bytes: &[u8]) -> BillError {
    let mut reader = TradeBillReader::new(bytes, false);
    let error = reader
        .by_ref()
        .find_map(Result::err)
        .expect("the bill is refused");
    assert_eq!(reader.totals(), None, "no totals for a refused bill");
    assert!(reader.next().is_none(), "nothing after the error");
    error
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn replace_once(haystack: &str, from: &str, to: &str) -> Vec<u8> {
    assert_eq!(haystack.matches(from).count(), 1, "{from:?} is unique");
    haystack.replacen(from, to, 1).into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn beijing(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn published_fixture_parses_to_its_45_rows_and_its_own_totals() {
    let (rows, totals) = parse(FIXTURE, false).unwrap();
    assert_eq!(rows.len(), 45);
    // The summary `45.0,0.47,0.14,…,0.47,0.14` adds up exactly.
    assert_eq!(
        totals,
        BillTotals {
            count: 45,
            payment_fen: 47,
            refund_fen: 14,
            order_fen: 47,
            requested_refund_fen: 14,
        }
    );
    let payments: Vec<_> = rows
        .iter()
        .filter(|r| r.kind == BillRowKind::Payment)
        .collect();
    let refunds: Vec<_> = rows
        .iter()
        .filter(|r| r.kind == BillRowKind::Refund)
        .collect();
    assert_eq!((payments.len(), refunds.len()), (31, 14));
    assert_eq!(payments.iter().map(|r| r.amount_fen).sum::<i64>(), 47);
    assert_eq!(refunds.iter().map(|r| r.amount_fen).sum::<i64>(), 14);
    assert!(payments.iter().all(|r| r.trade_state == "SUCCESS"
        && r.refund_id.is_none()
        && r.out_refund_no.is_none()
        && r.refund_status.is_none()));
    assert!(refunds.iter().all(|r| r.trade_state == "REFUND"
        && r.refund_status.as_deref() == Some("SUCCESS")
        && r.settled_fen == 1));
    assert!(rows.iter().all(|r| r.mchid == "1921000401"
        && r.appid == "wxab8acd895ab1638a"
        && r.currency == "CNY"));

    // The first row, a refund, field by field (Beijing 05:01:46 is 21:01:46 UTC the day before).
    assert_eq!(
        rows[0],
        BillRow {
            trade_time: beijing(2019, 2, 19, 5, 1, 46),
            appid: "wxab8acd895ab1638a".to_owned(),
            mchid: "1921000401".to_owned(),
            transaction_id: "4200000263201902167700134212".to_owned(),
            out_trade_no: "autotest_20190216081946_82335".to_owned(),
            trade_type: "JSAPI".to_owned(),
            trade_state: "REFUND".to_owned(),
            currency: "CNY".to_owned(),
            kind: BillRowKind::Refund,
            amount_fen: 1,
            settled_fen: 1,
            refund_id: Some("50000709672019011908420787722".to_owned()),
            out_refund_no: Some("REF4200000263201902167700963919".to_owned()),
            refund_status: Some("SUCCESS".to_owned()),
        }
    );
    assert_eq!(
        rows[0].trade_time,
        Utc.with_ymd_and_hms(2019, 2, 18, 21, 1, 46).unwrap()
    );
    // The third, a Native payment of 0.03 yuan.
    assert_eq!(
        rows[2],
        BillRow {
            trade_time: beijing(2019, 2, 19, 1, 52, 32),
            appid: "wxab8acd895ab1638a".to_owned(),
            mchid: "1921000401".to_owned(),
            transaction_id: "4200000263201902167700134902".to_owned(),
            out_trade_no: "autotest_20190219015232_89201".to_owned(),
            trade_type: "NATIVE".to_owned(),
            trade_state: "SUCCESS".to_owned(),
            currency: "CNY".to_owned(),
            kind: BillRowKind::Payment,
            amount_fen: 3,
            settled_fen: 3,
            refund_id: None,
            out_refund_no: None,
            refund_status: None,
        }
    );
    // The last row, a payment with a 0.01 voucher: 应结订单金额 and 订单金额 are both 0.03.
    assert_eq!(rows[44].out_trade_no, "autotest_20190219015157_13391");
    assert_eq!((rows[44].amount_fen, rows[44].settled_fen), (3, 3));
}

/// The 用户标识 values of the fixture, read here with a plain split (not the parser).
fn fixture_payer_values() -> Vec<String> {
    let text = text(&FIXTURE[BOM.len()..]);
    let mut lines = text.split("\r\n");
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let payer = header.iter().position(|n| *n == "用户标识").unwrap();
    lines
        .filter(|l| l.starts_with('`') && l.split(",`").count() == header.len())
        .map(|l| l.split(",`").nth(payer).unwrap().to_owned())
        .collect()
}

#[test]
fn payer_ids_product_names_and_attach_never_reach_a_row() {
    let payers = fixture_payer_values();
    assert_eq!(payers.len(), 45);
    assert!(payers.iter().any(|p| p.starts_with("oHkLx")));
    let (rows, _) = parse(FIXTURE, false).unwrap();
    for row in &rows {
        let shown = format!("{row:?}");
        for payer in &payers {
            assert!(!shown.contains(payer.as_str()), "payer id in {shown}");
        }
        // 商品名称 (`autotest`, `测试…-cheeryin-…`) and the device column are dropped too.
        assert!(!shown.contains("cheeryin") && !shown.contains("harryma007"));
        assert!(!shown.contains("autotest,") && !shown.contains("\"autotest\""));
    }
}

#[test]
fn bom_or_not_crlf_or_lf_and_a_missing_last_line_end_read_the_same() {
    let (expected, totals) = parse(FIXTURE, false).unwrap();
    let without_bom = &FIXTURE[BOM.len()..];
    let lf = text(FIXTURE).replace("\r\n", "\n").into_bytes();
    let lf_no_bom = text(without_bom).replace("\r\n", "\n").into_bytes();
    let no_final_crlf = &FIXTURE[..FIXTURE.len() - 2];
    let blank_lines_around = [b"\r\n".as_slice(), without_bom, b"\r\n\r\n"].concat();
    for variant in [
        without_bom,
        &lf[..],
        &lf_no_bom[..],
        no_final_crlf,
        &blank_lines_around[..],
    ] {
        assert_eq!(parse(variant, false).unwrap(), (expected.clone(), totals));
    }
}

#[test]
fn gzip_bills_read_and_hash_as_their_uncompressed_bytes() {
    let compressed = gzip(FIXTURE);
    assert_ne!(compressed, FIXTURE);
    assert_eq!(
        parse(&compressed, true).unwrap(),
        parse(FIXTURE, false).unwrap()
    );
    assert_eq!(bill_hash(&compressed[..], true).unwrap(), FIXTURE_SHA1);
    verify_bill_hash(&compressed[..], true, FIXTURE_SHA1).unwrap();
    // The hash is over the uncompressed file, not the download.
    assert!(matches!(
        verify_bill_hash(&compressed[..], false, FIXTURE_SHA1),
        Err(BillError::HashMismatch { .. })
    ));
    // A cut gzip stream is an error, not a shorter bill.
    let cut = &compressed[..compressed.len() / 2];
    assert!(parse(cut, true).is_err());
    assert!(matches!(
        verify_bill_hash(cut, true, FIXTURE_SHA1),
        Err(BillError::Io(_))
    ));
}

#[test]
fn sha1_is_checked_case_insensitively_and_a_wrong_one_is_refused() {
    verify_bill_hash(FIXTURE, false, FIXTURE_SHA1).unwrap();
    verify_bill_hash(FIXTURE, false, &FIXTURE_SHA1.to_uppercase()).unwrap();
    let wrong = FIXTURE_SHA1.replace("9bb6", "9bb7");
    match verify_bill_hash(FIXTURE, false, &wrong) {
        Err(BillError::HashMismatch { expected, actual }) => {
            assert_eq!(
                (expected.as_str(), actual.as_str()),
                (&wrong[..], FIXTURE_SHA1)
            );
        }
        other => panic!("{other:?}"),
    }
    // One changed amount with the original hash.
    let tampered = replace_once(
        &text(FIXTURE),
        "`0.03,`0.00,`0,`0,`0.00,`0.00,`,`,`autotest,`,`0.01000,`39.00%,`0.03,`0.00,`\r\n`2019-02-19 18:19:32",
        "`0.04,`0.00,`0,`0,`0.00,`0.00,`,`,`autotest,`,`0.01000,`39.00%,`0.03,`0.00,`\r\n`2019-02-19 18:19:32",
    );
    assert!(matches!(
        verify_bill_hash(&tampered[..], false, FIXTURE_SHA1),
        Err(BillError::HashMismatch { .. })
    ));

    let download = BillDownload {
        hash_type: "SHA1".to_owned(),
        hash_value: FIXTURE_SHA1.to_owned(),
        download_url: "https://api.mch.weixin.qq.com/v3/billdownload/file?token=secret".to_owned(),
    };
    download.verify_file(FIXTURE, false).unwrap();
    let md5 = BillDownload {
        hash_type: "MD5".to_owned(),
        ..download.clone()
    };
    assert!(matches!(
        md5.verify_file(FIXTURE, false),
        Err(BillError::UnsupportedHashType(t)) if t == "MD5"
    ));
    // The download token is not shown.
    assert!(!format!("{download:?}").contains("secret"));
}

#[test]
fn summaries_that_do_not_add_up_are_refused() {
    let fixture = text(FIXTURE);
    let summary = "`45.0,`0.47,`0.14,`0.0,`0.08,`0.47,`0.14";
    for (tampered_summary, column, stated, rows) in [
        (
            "`44.0,`0.47,`0.14,`0.0,`0.08,`0.47,`0.14",
            "总交易单数",
            44,
            45,
        ),
        (
            "`45.0,`0.48,`0.14,`0.0,`0.08,`0.47,`0.14",
            "应结订单总金额",
            48,
            47,
        ),
        (
            "`45.0,`0.47,`0.13,`0.0,`0.08,`0.47,`0.14",
            "退款总金额",
            13,
            14,
        ),
        (
            "`45.0,`0.47,`0.14,`0.0,`0.08,`4.70,`0.14",
            "订单总金额",
            470,
            47,
        ),
        (
            "`45.0,`0.47,`0.14,`0.0,`0.08,`0.47,`1.14",
            "申请退款总金额",
            114,
            14,
        ),
    ] {
        let bill = replace_once(&fixture, summary, tampered_summary);
        match parse_err(&bill) {
            BillError::TotalsMismatch {
                column: c,
                summary: s,
                rows: r,
            } => assert_eq!((c, s, r), (column, stated, rows)),
            other => panic!("{tampered_summary}: {other:?}"),
        }
    }
    // A row changed, the summary left alone.
    let bill = replace_once(
        &fixture,
        "`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.03,`0.00,`0,`0,`0.00,`0.00,`,`,`autotest,`,`0.01000,`39.00%,`0.03,`0.00,`\r\n`2019-02-19 18:19:32",
        "`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.13,`0.00,`0,`0,`0.00,`0.00,`,`,`autotest,`,`0.01000,`39.00%,`0.03,`0.00,`\r\n`2019-02-19 18:19:32",
    );
    assert!(matches!(
        parse_err(&bill),
        BillError::TotalsMismatch {
            column: "应结订单总金额",
            summary: 47,
            rows: 57
        }
    ));
    // A row dropped.
    let first_row_end = fixture.find("\r\n`2019-02-19 05:01:46,`wxab8acd895ab1638a,`1921000401,`0,`harryma007,`4200000263201902167700134202").unwrap();
    let header_end = fixture.find("\r\n").unwrap();
    let dropped = format!("{}{}", &fixture[..header_end], &fixture[first_row_end..]);
    assert!(matches!(
        parse_err(dropped.as_bytes()),
        BillError::TotalsMismatch {
            column: "总交易单数",
            summary: 45,
            rows: 44
        }
    ));
}

#[test]
fn counts_are_read_as_12_or_12_point_0_but_never_as_a_fraction() {
    let fixture = text(FIXTURE);
    let plain = replace_once(&fixture, "`45.0,`0.47", "`45,`0.47");
    assert_eq!(parse(&plain, false).unwrap().1.count, 45);
    let fractional = replace_once(&fixture, "`45.0,`0.47", "`45.5,`0.47");
    assert!(matches!(
        parse_err(&fractional),
        BillError::Field {
            column: "总交易单数",
            ..
        }
    ));
}

#[test]
fn truncated_bills_are_refused() {
    let fixture = text(FIXTURE);
    // Cut at a line end: no summary.
    let before_summary = &fixture[..fixture.find("总交易单数").unwrap()];
    assert!(matches!(
        parse_err(before_summary.as_bytes()),
        BillError::MissingSummary
    ));
    // The summary header without its row.
    let without_row = &fixture[..fixture.find("`45.0").unwrap()];
    assert!(matches!(
        parse_err(without_row.as_bytes()),
        BillError::MissingSummary
    ));
    // Cut inside a detail row.
    let middle = fixture.len() / 2;
    let cut = &FIXTURE[..middle];
    assert!(matches!(
        parse_err(cut),
        BillError::FieldCount { .. } | BillError::Field { .. } | BillError::NotUtf8 { .. }
    ));
    // Cut anywhere (every byte of the summary's two lines and the last row, both sides of every
    // line end, every 7th byte elsewhere): never accepted as a complete bill unless the cut
    // loses nothing but the last line end.
    let full = parse(FIXTURE, false).unwrap();
    let line_ends = FIXTURE
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .flat_map(|(i, _)| [i - 1, i, i + 1]);
    let tail = FIXTURE.len() - 600..FIXTURE.len();
    for end in (0..FIXTURE.len()).step_by(7).chain(line_ends).chain(tail) {
        if let Ok(parsed) = parse(&FIXTURE[..end], false) {
            assert_eq!(parsed, full);
            assert!(end >= FIXTURE.len() - 2, "accepted a bill cut at {end}");
        }
    }
    // Empty.
    assert!(matches!(parse_err(b""), BillError::Empty));
    assert!(matches!(parse_err(BOM), BillError::Empty));
}

#[test]
fn amounts_with_three_decimals_or_other_shapes_are_refused_not_rounded() {
    let fixture = text(FIXTURE);
    let row = "`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.03,`0.00,`0,`0,`0.00,`0.00,`,`,`autotest,`,`0.01000,`39.00%,`0.03,`0.00,`\r\n`2019-02-19 18:19:32";
    for (bad, column) in [
        ("`0.030,", "应结订单金额"),
        ("`0.03 ,", "应结订单金额"),
        ("`-0.03,", "应结订单金额"),
        ("`,", "应结订单金额"),
    ] {
        let bill = replace_once(&fixture, row, &row.replacen("`0.03,", bad, 1));
        match parse_err(&bill) {
            BillError::Field { line, column: c } => assert_eq!((line, c), (4, column)),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let bill = replace_once(
        &fixture,
        row,
        &row.replace("`0.03,`0.00,`\r\n", "`0.03,`0.001,`\r\n"),
    );
    assert!(matches!(
        parse_err(&bill),
        BillError::Field {
            column: "申请退款金额",
            ..
        }
    ));
    let bill = replace_once(&fixture, "`0.47,`0.14,`0.0", "`0.470,`0.14,`0.0");
    assert!(matches!(
        parse_err(&bill),
        BillError::Field {
            column: "应结订单总金额",
            ..
        }
    ));
}

#[test]
fn malformed_rows_times_and_lines_are_refused() {
    let fixture = text(FIXTURE);
    // A time that is not yyyy-MM-dd HH:mm:ss.
    let bill = replace_once(&fixture, "`2019-02-19 18:19:32,", "`2019-02-19T18:19:32,");
    assert!(matches!(
        parse_err(&bill),
        BillError::Field {
            column: "交易时间",
            ..
        }
    ));
    // A refund without refund numbers.
    let bill = replace_once(&fixture, "`50000709672019011908420787722,", "`0,");
    assert!(matches!(
        parse_err(&bill),
        BillError::Field {
            column: "微信退款单号",
            ..
        }
    ));
    // A line that is not a row among the rows.
    let bill = replace_once(&fixture, "`2019-02-19 18:19:32,", "2019-02-19 18:19:32,");
    assert!(matches!(
        parse_err(&bill),
        BillError::UnexpectedLine { line: 5 }
    ));
    // Anything after the summary.
    let bill = format!("{fixture}`45.0,`0.47,`0.14,`0.0,`0.08,`0.47,`0.14\r\n");
    assert!(matches!(
        parse_err(bill.as_bytes()),
        BillError::UnexpectedLine { line: 49 }
    ));
    // A header without a column the rows need.
    let bill = replace_once(&fixture, "应结订单金额,", "结算金额,");
    assert!(matches!(
        parse_err(&bill),
        BillError::MissingColumn("应结订单金额")
    ));
    // Not UTF-8 (a GBK file, say).
    let mut bytes = FIXTURE.to_vec();
    let at = text(FIXTURE).find("autotest,").unwrap();
    bytes[at] = 0xB2;
    assert!(matches!(parse_err(&bytes), BillError::NotUtf8 { .. }));
    // An endless line is not buffered whole.
    let long = [FIXTURE, &vec![b'`'; 1 << 20]].concat();
    assert!(matches!(parse_err(&long), BillError::LineTooLong { .. }));
}

#[test]
fn columns_are_found_by_name_in_success_and_refund_bills() {
    // SUCCESS bill: no refund columns, a 4-column summary.
    let success = "\u{feff}交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注\r\n\
        `2026-11-29 12:00:00,`wx1,`1900000001,`0,`,`4200000001,`P1,`oPAYER1,`NATIVE,`SUCCESS,`OTHERS,`CNY,`199.00,`0.00,`简历精修, 加急,`,`1.19400,`0.60%,`199.00,`\r\n\
        `2026-11-29 23:59:59,`wx1,`1900000001,`0,`,`4200000002,`P2,`oPAYER2,`JSAPI,`SUCCESS,`OTHERS,`CNY,`9.90,`1.00,`会员,`,`0.05940,`0.60%,`10.90,`\r\n\
        总交易单数,应结订单总金额,手续费总金额,订单总金额\r\n\
        `2,`208.90,`1.25340,`209.90\r\n";
    let (rows, totals) = parse(success.as_bytes(), false).unwrap();
    assert_eq!(
        totals,
        BillTotals {
            count: 2,
            payment_fen: 20890,
            refund_fen: 0,
            order_fen: 20990,
            requested_refund_fen: 0,
        }
    );
    assert_eq!(rows[0].trade_time, beijing(2026, 11, 29, 12, 0, 0));
    // A comma inside a product name does not shift the columns.
    assert_eq!((rows[0].amount_fen, rows[0].settled_fen), (19900, 19900));
    // A voucher: the order amount is what was asked, the settlement what the merchant gets.
    assert_eq!((rows[1].amount_fen, rows[1].settled_fen), (1090, 990));
    assert!(rows.iter().all(|r| r.kind == BillRowKind::Payment));
    assert!(!format!("{rows:?}").contains("oPAYER"));

    // REFUND bill: two time columns inserted before 微信退款单号.
    let refund = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n\
        `2026-11-29 13:00:00,`wx1,`1900000001,`0,`,`4200000001,`P1,`oPAYER1,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`2026-11-29 13:00:00,`2026-11-29 13:00:05,`50300000001,`R1,`50.00,`0.00,`ORIGINAL,`SUCCESS,`简历精修,`,`-0.30000,`0.60%,`0.00,`50.00,`\n\
        总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n\
        `1,`0.00,`50.00,`0.00,`-0.30000,`0.00,`50.00\n";
    let (rows, totals) = parse(refund.as_bytes(), false).unwrap();
    assert_eq!((totals.count, totals.refund_fen), (1, 5000));
    assert_eq!(rows[0].kind, BillRowKind::Refund);
    assert_eq!(rows[0].amount_fen, 5000);
    assert_eq!(rows[0].refund_id.as_deref(), Some("50300000001"));
    assert_eq!(rows[0].out_refund_no.as_deref(), Some("R1"));
}

#[test]
fn a_success_row_with_refund_numbers_is_a_refund() {
    // 交易状态 alone does not decide: refund numbers or a refund amount make a refund row.
    let bill = format!(
        "{}\r\n`2026-11-29 13:00:00,`wx1,`1900000001,`0,`,`42001,`P1,`oX,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.00,`0.00,`503001,`R1,`1.00,`0.00,`ORIGINAL,`PROCESSING,`x,`,`0.00000,`0.60%,`0.00,`1.00,`\r\n{}\r\n`1,`0.00,`1.00,`0.00,`0.00000,`0.00,`1.00\r\n",
        paygate_wechatpay::bill::ALL_HEADER,
        paygate_wechatpay::bill::ALL_SUMMARY_HEADER,
    );
    let (rows, _) = parse(bill.as_bytes(), false).unwrap();
    assert_eq!(rows[0].kind, BillRowKind::Refund);
    assert_eq!(rows[0].refund_status.as_deref(), Some("PROCESSING"));
}

fn spec(i: u64) -> BillRowSpec {
    let refund = i % 5 == 4;
    BillRowSpec {
        // Spread over the Beijing day 2026-11-29.
        trade_time: beijing(2026, 11, 29, 0, 0, 0) + chrono::Duration::seconds((i % 86_400) as i64),
        appid: "wx2421b1c4370ec43b".to_owned(),
        mchid: "1900000001".to_owned(),
        transaction_id: format!("42000000002026112900{i:010}"),
        out_trade_no: format!("P20261129{i:017}"),
        payer_openid: PLANTED_OPENID.to_owned(),
        trade_type: if i.is_multiple_of(2) {
            "NATIVE"
        } else {
            "JSAPI"
        }
        .to_owned(),
        trade_state: if refund { "REFUND" } else { "SUCCESS" }.to_owned(),
        description: "职前通 简历精修".to_owned(),
        attach: String::new(),
        amount_fen: 1 + (i as i64 * 7919) % 100_000,
        refund: refund.then(|| RefundSpec {
            refund_id: format!("50300000002026112900{i:010}"),
            out_refund_no: format!("R20261129{i:017}"),
            refund_status: "SUCCESS".to_owned(),
        }),
    }
}

#[test]
fn written_bills_read_back_to_the_same_rows_and_totals() {
    let n = 1_000;
    for options in [
        WriteOptions::default(),
        WriteOptions {
            bom: false,
            count_as_decimal: true,
        },
    ] {
        let mut file = Vec::new();
        let written = write_trade_bill_with((0..n).map(spec), &mut file, options).unwrap();
        assert_eq!(file.starts_with(BOM), options.bom);
        // The payer was planted in the file: it is the parser that drops it.
        assert_eq!(text(&file).matches(PLANTED_OPENID).count(), n as usize);
        let (rows, totals) = parse(&file, false).unwrap();
        assert_eq!(totals, written);
        assert_eq!(totals.count, n);
        assert_eq!(rows.len(), n as usize);
        for (i, row) in rows.iter().enumerate() {
            let spec = spec(i as u64);
            assert_eq!(row.trade_time, spec.trade_time);
            assert_eq!(row.transaction_id, spec.transaction_id);
            assert_eq!(row.out_trade_no, spec.out_trade_no);
            assert_eq!(row.trade_type, spec.trade_type);
            assert_eq!(row.trade_state, spec.trade_state);
            assert_eq!(row.amount_fen, spec.amount_fen);
            assert_eq!(row.settled_fen, spec.amount_fen);
            let refund = spec.refund.as_ref();
            assert_eq!(
                row.kind,
                if refund.is_some() {
                    BillRowKind::Refund
                } else {
                    BillRowKind::Payment
                }
            );
            assert_eq!(
                row.refund_id.as_deref(),
                refund.map(|r| r.refund_id.as_str())
            );
            assert_eq!(
                row.out_refund_no.as_deref(),
                refund.map(|r| r.out_refund_no.as_str())
            );
            assert!(!format!("{row:?}").contains(PLANTED_OPENID));
        }
        let payments: i64 = rows
            .iter()
            .filter(|r| r.kind == BillRowKind::Payment)
            .map(|r| r.amount_fen)
            .sum();
        assert_eq!(payments, totals.payment_fen);
        // Hashing what was written is what the sandbox answers with.
        verify_bill_hash(&file[..], false, &bill_hash(&file[..], false).unwrap()).unwrap();
    }
    assert!(!format!("{:?}", spec(0)).contains(PLANTED_OPENID));
}

#[test]
fn the_writer_produces_the_exact_all_format() {
    let payment = BillRowSpec {
        trade_time: beijing(2026, 11, 29, 12, 0, 0),
        appid: "wx1".to_owned(),
        mchid: "1900000001".to_owned(),
        transaction_id: "4200000001".to_owned(),
        out_trade_no: "P1".to_owned(),
        payer_openid: "oPAYER".to_owned(),
        trade_type: "NATIVE".to_owned(),
        trade_state: "SUCCESS".to_owned(),
        description: "简历精修".to_owned(),
        attach: String::new(),
        amount_fen: 19900,
        refund: None,
    };
    let refund = BillRowSpec {
        trade_time: beijing(2026, 11, 29, 13, 0, 0),
        trade_state: "REFUND".to_owned(),
        amount_fen: 5000,
        refund: Some(RefundSpec {
            refund_id: "503001".to_owned(),
            out_refund_no: "R1".to_owned(),
            refund_status: "SUCCESS".to_owned(),
        }),
        ..payment.clone()
    };
    let mut file = Vec::new();
    write_trade_bill([payment, refund], &mut file).unwrap();
    let expected = format!(
        "\u{feff}{}\r\n\
         `2026-11-29 12:00:00,`wx1,`1900000001,`0,`,`4200000001,`P1,`oPAYER,`NATIVE,`SUCCESS,`OTHERS,`CNY,`199.00,`0.00,`0,`0,`0.00,`0.00,`,`,`简历精修,`,`1.19400,`0.60%,`199.00,`0.00,`\r\n\
         `2026-11-29 13:00:00,`wx1,`1900000001,`0,`,`4200000001,`P1,`oPAYER,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`503001,`R1,`50.00,`0.00,`ORIGINAL,`SUCCESS,`简历精修,`,`0.00000,`0.60%,`0.00,`50.00,`\r\n\
         {}\r\n\
         `2,`199.00,`50.00,`0.00,`1.19400,`199.00,`50.00\r\n",
        paygate_wechatpay::bill::ALL_HEADER,
        paygate_wechatpay::bill::ALL_SUMMARY_HEADER,
    );
    assert_eq!(text(&file), expected);
    // Same header as the published fixture.
    assert!(FIXTURE[BOM.len()..].starts_with(paygate_wechatpay::bill::ALL_HEADER.as_bytes()));
}

#[test]
fn the_writer_refuses_values_that_would_break_the_format() {
    for broken in [
        BillRowSpec {
            description: "a,`b".to_owned(),
            ..spec(0)
        },
        BillRowSpec {
            attach: "line\r\nbreak".to_owned(),
            ..spec(0)
        },
        BillRowSpec {
            amount_fen: -1,
            ..spec(0)
        },
    ] {
        let error = write_trade_bill([broken], &mut Vec::new()).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn a_200k_row_bill_streams_through_a_pipe_without_being_held() {
    // The writer runs on one end of a pipe, the reader on the other: neither the file nor the
    // rows are ever held whole (the pipe holds a few KiB), and the rows are counted, not kept.
    const ROWS: u64 = 200_000;
    let (pipe_reader, mut pipe_writer) = std::io::pipe().unwrap();
    let writer = std::thread::spawn(move || {
        let totals = write_trade_bill((0..ROWS).map(spec), &mut pipe_writer);
        drop(pipe_writer);
        totals
    });
    let mut reader = TradeBillReader::new(pipe_reader, false);
    let (mut payments, mut refunds, mut refund_fen) = (0u64, 0u64, 0i64);
    for row in reader.by_ref() {
        let row = row.unwrap();
        match row.kind {
            BillRowKind::Payment => payments += 1,
            BillRowKind::Refund => {
                refunds += 1;
                refund_fen += row.amount_fen;
            }
        }
    }
    let written = writer.join().unwrap().unwrap();
    let totals = reader.totals().unwrap();
    assert_eq!(totals, written);
    assert_eq!((payments, refunds), (160_000, 40_000));
    assert_eq!(totals.count, ROWS);
    assert_eq!(totals.refund_fen, refund_fen);
}
