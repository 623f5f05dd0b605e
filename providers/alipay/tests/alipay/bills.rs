//! Trade bills: the writer's ZIP read back, the alipay.md §7 fixture, and every way a bill is
//! refused.

use std::io::{Cursor, Write};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use encoding_rs::GBK;
use paygate_alipay::bill::{
    BillError, BillRow, BillRowKind, BillTotals, MAX_LINE_BYTES, TradeBillReader,
};
use paygate_alipay::money::AmountError;
use paygate_alipay::simulator::{BillRowSpec, BillWriteError, write_trade_bill_zip};
use zip::write::SimpleFileOptions;
use zip::{ZipArchive, ZipWriter};

use crate::fixtures::fixture_bytes;

const ACCOUNT: &str = "20880211096256330156";
const PLANTED_PAYER: &str = "*张三(planted-payer-7f3a@example.com)";
const SUBJECT: &str = "职前通服务";

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
}

/// 2026-11-28 00:00:00 in Beijing.
fn midnight() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 16, 0, 0).unwrap()
}

/// Row `i` of a generated day: every third row refunds half of the payment before it.
fn spec(i: u64) -> BillRowSpec {
    let payment = i / 3 * 2 + i % 3;
    let finished_at = midnight() + Duration::seconds(i as i64 % 86_400);
    let amount = 100 + (payment as i64 % 50_000) * 37;
    let base = BillRowSpec {
        trade_no: format!("2026112822001{:015}", payment),
        out_trade_no: format!("P{:025}", payment),
        kind: BillRowKind::Payment,
        subject: SUBJECT.to_owned(),
        created_at: finished_at - Duration::seconds(5),
        finished_at,
        payer_account: PLANTED_PAYER.to_owned(),
        amount_fen: amount,
        out_request_no: None,
    };
    if i % 3 == 2 {
        BillRowSpec {
            trade_no: format!("2026112822001{:015}", payment - 1),
            out_trade_no: format!("P{:025}", payment - 1),
            kind: BillRowKind::Refund,
            amount_fen: (100 + ((payment - 1) as i64 % 50_000) * 37) / 2,
            out_request_no: Some(format!("R{i}")),
            ..base
        }
    } else {
        base
    }
}

fn expected_row(spec: &BillRowSpec) -> BillRow {
    BillRow {
        trade_time: spec.finished_at,
        trade_no: spec.trade_no.clone(),
        out_trade_no: Some(spec.out_trade_no.clone()),
        kind: spec.kind,
        amount_fen: spec.amount_fen,
        received_fen: spec.amount_fen,
        out_request_no: spec.out_request_no.clone(),
    }
}

fn write_bill(rows: impl IntoIterator<Item = BillRowSpec>) -> (Vec<u8>, BillTotals) {
    let mut zip = Cursor::new(Vec::new());
    let totals = write_trade_bill_zip(ACCOUNT, date(), rows, &mut zip).unwrap();
    (zip.into_inner(), totals)
}

/// Every row of a bill and its checked totals (collecting is fine for the small bills here).
fn read_bill(zip: &[u8]) -> Result<(Vec<BillRow>, BillTotals), BillError> {
    let mut bill = TradeBillReader::open(Cursor::new(zip))?;
    let mut rows = bill.rows()?;
    let all = rows.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((all, rows.totals().expect("totals once exhausted")))
}

/// The rows read before the error, and the error.
fn read_until_error(zip: &[u8]) -> (usize, BillError) {
    let mut bill = TradeBillReader::open(Cursor::new(zip)).unwrap();
    let mut rows = bill.rows().unwrap();
    let mut read = 0;
    for row in rows.by_ref() {
        match row {
            Ok(_) => read += 1,
            Err(error) => {
                assert!(rows.next().is_none(), "nothing after an error");
                assert_eq!(rows.totals(), None);
                return (read, error);
            }
        }
    }
    panic!("the bill was accepted");
}

/// A ZIP of `(name bytes, contents)`; names that are valid UTF-8 get the UTF-8 flag, others not.
fn zip_of(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, contents) in entries {
        zip.start_file_with_options(SimpleFileOptions::default().name(name))
            .unwrap();
        zip.write_all(contents).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = GBK.encode(text);
    assert!(!unmappable, "{text:?}");
    bytes.into_owned()
}

/// The alipay.md §7 fixture, decoded, for tests that change a line of it.
fn fixture_text() -> String {
    let bytes = fixture_bytes("trade_bill_20190916_detail.gbk.csv");
    GBK.decode_without_bom_handling_and_without_replacement(&bytes)
        .unwrap()
        .into_owned()
}

/// A bill ZIP holding `detail` (UTF-8 text, written in GBK) under Alipay's GBK entry name.
fn bill_of(detail: &str) -> Vec<u8> {
    zip_of(&[(
        &gbk("20880211096256330156_20190916_业务明细.csv"),
        &gbk(detail),
    )])
}

fn beijing(text: &str) -> DateTime<Utc> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        - Duration::hours(8)
}

#[test]
fn a_written_bill_reads_back_row_for_row_with_the_totals_of_its_footer() {
    let specs: Vec<BillRowSpec> = (0..60).map(spec).collect();
    let (zip, written) = write_bill(specs.clone());
    let (rows, totals) = read_bill(&zip).unwrap();

    assert_eq!(rows, specs.iter().map(expected_row).collect::<Vec<_>>());
    assert_eq!(totals, written);
    assert_eq!((totals.payments, totals.refunds), (40, 20));
    let payment_fen: i64 = specs
        .iter()
        .filter(|s| s.kind == BillRowKind::Payment)
        .map(|s| s.amount_fen)
        .sum();
    let refund_fen: i64 = specs
        .iter()
        .filter(|s| s.kind == BillRowKind::Refund)
        .map(|s| s.amount_fen)
        .sum();
    assert_eq!(
        (totals.payment_fen, totals.refund_fen),
        (payment_fen, refund_fen)
    );
}

#[test]
fn a_written_bill_names_its_account_and_day() {
    let (zip, _) = write_bill((0..3).map(spec));
    let mut bill = TradeBillReader::open(Cursor::new(&zip)).unwrap();
    assert_eq!(
        bill.entry_name(),
        "20880211096256330156_20261128_业务明细.csv"
    );
    let rows = bill.rows().unwrap();
    assert_eq!(rows.account(), Some(ACCOUNT));
    let (start, end) = rows.period().unwrap();
    assert_eq!(start, date().and_hms_opt(0, 0, 0).unwrap());
    assert_eq!(
        end,
        date().succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap()
    );
}

#[test]
fn an_empty_day_is_a_bill_with_zero_totals() {
    let (zip, written) = write_bill(std::iter::empty());
    assert_eq!(read_bill(&zip).unwrap(), (vec![], BillTotals::default()));
    assert_eq!(written, BillTotals::default());
}

#[test]
fn the_fixture_from_alipay_md_parses_to_its_rows_and_totals() {
    let bytes = fixture_bytes("trade_bill_20190916_detail.gbk.csv");
    let zip = zip_of(&[
        (&gbk("20880211096256330156_20190916_业务明细.csv"), &bytes),
        (
            &gbk("20880211096256330156_20190916_业务明细(汇总).csv"),
            b"#",
        ),
    ]);
    let mut bill = TradeBillReader::open(Cursor::new(&zip)).unwrap();
    assert_eq!(
        bill.entry_name(),
        "20880211096256330156_20190916_业务明细.csv"
    );
    let mut rows = bill.rows().unwrap();
    assert_eq!(rows.account(), Some("20880211096256330156"));
    let all: Vec<BillRow> = rows.by_ref().collect::<Result<_, _>>().unwrap();

    assert_eq!(all.len(), 10);
    assert_eq!(
        all[0],
        BillRow {
            trade_time: beijing("2019-09-16 10:55:23"),
            trade_no: "2019091622001458860515315453".into(),
            out_trade_no: Some("service_1568601259302".into()),
            kind: BillRowKind::Payment,
            amount_fen: 1,
            received_fen: 1,
            out_request_no: None,
        }
    );
    assert_eq!(
        all[1],
        BillRow {
            trade_time: beijing("2019-09-16 10:56:48"),
            trade_no: "2019091622001458860515315453".into(),
            out_trade_no: Some("service_1568601259302".into()),
            kind: BillRowKind::Refund,
            amount_fen: 1,
            received_fen: 1,
            out_request_no: Some("re_fixture_0001".into()),
        }
    );
    // 23:59:59 in Beijing is still the 16th there, 15:59:59 UTC.
    assert_eq!(
        all[9].trade_time,
        Utc.with_ymd_and_hms(2019, 9, 16, 15, 59, 59).unwrap()
    );
    assert_eq!(
        rows.totals(),
        Some(BillTotals {
            payments: 6,
            payment_fen: 6,
            refunds: 4,
            refund_fen: 4,
        })
    );
}

#[test]
fn the_fixture_is_gbk_and_not_utf8() {
    let bytes = fixture_bytes("trade_bill_20190916_detail.gbk.csv");
    assert!(std::str::from_utf8(&bytes).is_err());
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(contains(&gbk("#支付宝业务明细查询")));
    assert!(!contains("支付宝".as_bytes()));
}

#[test]
fn the_writer_writes_names_and_text_in_gbk_without_the_utf8_flag() {
    let (zip, _) = write_bill((0..3).map(spec));
    let mut archive = ZipArchive::new(Cursor::new(&zip)).unwrap();
    let names: Vec<Vec<u8>> = archive.file_names_raw().map(<[u8]>::to_vec).collect();
    assert_eq!(
        names,
        [
            gbk("20880211096256330156_20261128_业务明细.csv"),
            gbk("20880211096256330156_20261128_业务明细(汇总).csv"),
        ]
    );
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).unwrap();
        assert_eq!(entry.flags().as_u16() & 0x0800, 0, "UTF-8 flag set");
    }

    let mut detail = Vec::new();
    std::io::copy(&mut archive.by_index(0).unwrap(), &mut detail).unwrap();
    let contains = |needle: &[u8]| detail.windows(needle.len()).any(|w| w == needle);
    assert!(std::str::from_utf8(&detail).is_err());
    for text in [
        "#支付宝业务明细查询",
        "订单金额（元）",
        SUBJECT,
        "交易\t,",
        "退款\t,",
    ] {
        assert!(contains(&gbk(text)), "{text} not in GBK");
        assert!(!contains(text.as_bytes()), "{text} in UTF-8");
    }
    assert!(contains(&gbk(
        "#交易合计：2笔，商家实收共2.37元，商家优惠共0.00元"
    )));
    assert!(contains(&gbk(
        "#退款合计：1笔，商家实收退款共-0.68元，商家优惠退款共0.00元"
    )));

    let mut summary = Vec::new();
    std::io::copy(&mut archive.by_index(1).unwrap(), &mut summary).unwrap();
    let summary = GBK
        .decode_without_bom_handling_and_without_replacement(&summary)
        .unwrap()
        .into_owned();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "#支付宝业务汇总查询");
    assert!(lines[4].starts_with("门店编号,门店名称,交易订单总笔数,退款订单总笔数,"));
    // 1.00 + 1.37 paid, 0.68 refunded.
    assert_eq!(
        lines[5],
        "合计,,2,1,1.69,1.69,0.00,0.00,0.00,0.00,0.00,1.69"
    );
}

#[test]
fn entry_names_in_utf8_are_found_too() {
    let detail = gbk(&fixture_text());
    let zip = zip_of(&[
        ("2088_20190916_业务明细(汇总).csv".as_bytes(), b"#"),
        ("2088_20190916_业务明细.csv".as_bytes(), &detail),
    ]);
    let archive = ZipArchive::new(Cursor::new(&zip)).unwrap();
    assert_ne!(
        archive.by_index_data(1).unwrap().flags().as_u16() & 0x0800,
        0
    );
    let (rows, _) = read_bill(&zip).unwrap();
    assert_eq!(rows.len(), 10);
}

#[test]
fn lines_ending_in_crlf_read_the_same() {
    let crlf = fixture_text().replace('\n', "\r\n");
    assert_eq!(
        read_bill(&bill_of(&crlf)).unwrap(),
        read_bill(&bill_of(&fixture_text())).unwrap()
    );
}

#[test]
fn columns_are_found_by_name_not_by_position() {
    // Swap the two id columns and the two amount columns, header and rows alike.
    let swapped: String = fixture_text()
        .lines()
        .map(|line| {
            if line.starts_with('#') {
                return format!("{line}\n");
            }
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.swap(0, 1);
            fields.swap(11, 12);
            format!("{}\n", fields.join(","))
        })
        .collect();
    assert_eq!(
        read_bill(&bill_of(&swapped)).unwrap(),
        read_bill(&bill_of(&fixture_text())).unwrap()
    );
}

#[test]
fn a_byte_sequence_that_is_not_gbk_is_refused() {
    // Line 8 is the fourth row; 0x81 0x20 is a lead byte without a trail byte.
    let mut text = gbk(&fixture_text());
    let line_8 = text
        .split(|&b| b == b'\n')
        .take(7)
        .map(|l| l.len() + 1)
        .sum::<usize>();
    let subject = line_8 + text[line_8..].iter().position(|&b| b == b'\t').unwrap() + 20;
    text.splice(subject..subject, [0x81, 0x20]);
    let zip = zip_of(&[(&gbk("2088_20190916_业务明细.csv"), &text)]);
    let (read, error) = read_until_error(&zip);
    assert_eq!(read, 2);
    assert!(
        matches!(error, BillError::Encoding { line: 8 }),
        "{error:?}"
    );

    let zip = zip_of(&[(&gbk("2088_20190916_业务明细.csv"), b"\xff\xfe#\n")]);
    assert!(matches!(
        TradeBillReader::open(Cursor::new(&zip)).unwrap().rows(),
        Err(BillError::Encoding { line: 1 })
    ));
}

#[test]
fn totals_that_do_not_add_up_are_refused() {
    for (from, to, kind) in [
        ("商家实收共0.06元", "商家实收共0.07元", BillRowKind::Payment),
        ("#交易合计：6笔", "#交易合计：5笔", BillRowKind::Payment),
        (
            "商家实收退款共-0.04元",
            "商家实收退款共-0.03元",
            BillRowKind::Refund,
        ),
        ("#退款合计：4笔", "#退款合计：40笔", BillRowKind::Refund),
    ] {
        let (read, error) = read_until_error(&bill_of(&fixture_text().replace(from, to)));
        assert_eq!(read, 10, "every row is read before the totals are checked");
        assert!(
            matches!(error, BillError::TotalsMismatch { kind: k, .. } if k == kind),
            "{to}: {error:?}"
        );
    }
}

#[test]
fn a_row_missing_from_the_file_is_caught_by_the_totals() {
    let text = fixture_text();
    let without: String = text
        .lines()
        .filter(|l| !l.contains("re_fixture_0003"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (read, error) = read_until_error(&bill_of(&without));
    assert_eq!(read, 9);
    assert!(
        matches!(
            error,
            BillError::TotalsMismatch {
                kind: BillRowKind::Refund,
                rows: 3,
                fen: 3,
                footer_rows: 4,
                footer_fen: 4,
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_missing_or_malformed_footer_is_refused() {
    let text = fixture_text();
    let drop = |prefix: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with(prefix))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let (_, error) = read_until_error(&bill_of(&drop("#退款合计")));
    assert!(
        matches!(error, BillError::MissingFooter("退款合计")),
        "{error:?}"
    );
    let (_, error) = read_until_error(&bill_of(&drop("#交易合计")));
    assert!(
        matches!(error, BillError::MissingFooter("交易合计")),
        "{error:?}"
    );
    // A file cut off after its rows has neither.
    let cut = &text[..text
        .find("#-----------------------------------------业务明细列表结束")
        .unwrap()];
    let (read, error) = read_until_error(&bill_of(cut));
    assert_eq!(read, 10);
    assert!(matches!(error, BillError::MissingFooter(_)), "{error:?}");

    for (from, to, at) in [
        ("商家实收共0.06元", "交易金额共0.06元", 17),
        ("商家实收共0.06元", "商家实收共0.060元", 17),
        ("商家实收共0.06元", "商家实收共-0.06元", 17),
        ("商家实收退款共-0.04元", "商家实收退款共0.04元", 18),
    ] {
        let (_, error) = read_until_error(&bill_of(&text.replace(from, to)));
        assert!(
            matches!(error, BillError::Footer { line, .. } if line == at),
            "{to}: {error:?}"
        );
    }
    let doubled = text.replace("#导出时间", "#交易合计：6笔，商家实收共0.06元\n#导出时间");
    let (_, error) = read_until_error(&bill_of(&doubled));
    assert!(
        matches!(
            error,
            BillError::Footer {
                footer: "交易合计",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_truncated_zip_is_refused() {
    let (zip, _) = write_bill((0..300).map(spec));
    for keep in [zip.len() / 2, zip.len() - 10, 30] {
        let error = TradeBillReader::open(Cursor::new(&zip[..keep])).unwrap_err();
        assert!(matches!(error, BillError::Zip(_)), "{keep}: {error:?}");
    }
}

#[test]
fn a_corrupt_entry_is_refused_not_half_read() {
    let (mut zip, _) = write_bill((0..3000).map(spec));
    // A byte in the middle of the deflated detail entry: the directory still reads.
    let middle = zip.len() / 3;
    zip[middle] ^= 0x5a;
    let mut bill = TradeBillReader::open(Cursor::new(&zip)).unwrap();
    let result = bill
        .rows()
        .and_then(|mut rows| rows.try_fold(0u64, |n, row| row.map(|_| n + 1)));
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn an_amount_with_three_decimals_is_refused() {
    let text = fixture_text().replacen(",0.01,0.01,", ",0.010,0.01,", 1);
    let (read, error) = read_until_error(&bill_of(&text));
    assert_eq!(read, 0);
    assert!(
        matches!(
            error,
            BillError::Amount {
                line: 6,
                column: "订单金额（元）",
                source: AmountError::TooPrecise,
            }
        ),
        "{error:?}"
    );
}

/// A payment by collection code or QR sticker has no 商户订单号: it is read (with none) and
/// counted in the totals, not refused with the bill.
#[test]
fn a_row_without_a_merchant_order_number_is_read_with_none() {
    let text = fixture_text().replacen("service_1568601259302\t,交易", "\t,交易", 1);
    let (rows, totals) = read_bill(&bill_of(&text)).unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0].out_trade_no, None);
    assert_eq!(rows[0].trade_no, "2019091622001458860515315453");
    assert_eq!(
        rows[1].out_trade_no.as_deref(),
        Some("service_1568601259302")
    );
    assert_eq!(totals.payments, 6);
}

#[test]
fn malformed_rows_are_refused() {
    let text = fixture_text();
    for (from, to, check) in [
        (",0.01,0.01,", ",1e3,0.01,", "amount"),
        (",0.01,0.01,", ",-0.01,0.01,", "sign"),
        (",-0.01,-0.01,", ",0.01,-0.01,", "sign"),
        (",交易\t,", ",转账\t,", "kind"),
        ("2019-09-16 10:55:23", "2019/09/16 10:55:23", "field"),
        (",下单测试,", ",下单,测试,", "count"),
    ] {
        let (_, error) = read_until_error(&bill_of(&text.replacen(from, to, 1)));
        let ok = match check {
            "amount" => matches!(error, BillError::Amount { .. }),
            "sign" => matches!(error, BillError::Sign { .. }),
            "kind" => matches!(error, BillError::Kind { line: 6 }),
            "field" => matches!(error, BillError::Field { line: 6, .. }),
            _ => matches!(
                error,
                BillError::FieldCount {
                    line: 6,
                    expected: 25,
                    found: 26
                }
            ),
        };
        assert!(ok, "{to}: {error:?}");
    }
    let after = text.replace(
        "#导出时间",
        "2019091622001458860515315453\t,x\t,交易\t\n#导出时间",
    );
    let (_, error) = read_until_error(&bill_of(&after));
    assert!(
        matches!(error, BillError::RowAfterFooter { line: 19 }),
        "{error:?}"
    );
}

#[test]
fn a_header_without_a_needed_column_is_refused() {
    let text = fixture_text().replace("退款批次号/请求号", "退款批次号");
    let error = TradeBillReader::open(Cursor::new(bill_of(&text)))
        .unwrap()
        .rows()
        .unwrap_err();
    assert!(
        matches!(error, BillError::MissingColumn("退款批次号/请求号")),
        "{error:?}"
    );
    let only_comments = "#支付宝业务明细查询\n#账号：[1]\n";
    let error = TradeBillReader::open(Cursor::new(bill_of(only_comments)))
        .unwrap()
        .rows()
        .unwrap_err();
    assert!(matches!(error, BillError::NoHeader), "{error:?}");
}

#[test]
fn a_zip_without_the_detail_entry_is_refused() {
    let zip = zip_of(&[(&gbk("2088_20190916_业务明细(汇总).csv"), b"#")]);
    assert!(matches!(
        TradeBillReader::open(Cursor::new(&zip)),
        Err(BillError::NoDetailEntry)
    ));
    let two = zip_of(&[
        (&gbk("a_业务明细.csv"), b"#"),
        ("b_业务明细.csv".as_bytes(), b"#"),
    ]);
    assert!(matches!(
        TradeBillReader::open(Cursor::new(&two)),
        Err(BillError::SeveralDetailEntries)
    ));
    assert!(matches!(
        TradeBillReader::open(Cursor::new(b"not a zip at all")),
        Err(BillError::Zip(_))
    ));
}

#[test]
fn the_payer_column_never_appears_in_a_row() {
    let (zip, _) = write_bill((0..30).map(spec));
    // It is in the file...
    let mut archive = ZipArchive::new(Cursor::new(&zip)).unwrap();
    let mut detail = Vec::new();
    std::io::copy(&mut archive.by_index(0).unwrap(), &mut detail).unwrap();
    let planted = gbk(PLANTED_PAYER);
    assert!(detail.windows(planted.len()).any(|w| w == planted));
    // ...and in no row that comes out, nor the product name.
    let (rows, _) = read_bill(&zip).unwrap();
    for row in &rows {
        let debug = format!("{row:?}");
        for hidden in [PLANTED_PAYER, "planted-payer", "张三", SUBJECT] {
            assert!(!debug.contains(hidden), "{debug}");
        }
    }
    assert!(!format!("{:?}", spec(0)).contains("planted-payer"));
}

#[test]
fn the_writer_refuses_text_it_cannot_write_exactly() {
    let cases = [
        (
            BillRowSpec {
                subject: "emoji 😀".into(),
                ..spec(0)
            },
            "subject",
        ),
        (
            BillRowSpec {
                payer_account: "a,b".into(),
                ..spec(0)
            },
            "payer_account",
        ),
        (
            BillRowSpec {
                out_trade_no: String::new(),
                ..spec(0)
            },
            "out_trade_no",
        ),
        (
            BillRowSpec {
                trade_no: "1\n2".into(),
                ..spec(0)
            },
            "trade_no",
        ),
    ];
    for (row, field) in cases {
        let error =
            write_trade_bill_zip(ACCOUNT, date(), [row], Cursor::new(Vec::new())).unwrap_err();
        assert!(
            matches!(error, BillWriteError::Text { row: 1, field: f } if f == field),
            "{field}: {error:?}"
        );
    }
    let payment_with_refund_no = BillRowSpec {
        out_request_no: Some("R1".into()),
        ..spec(0)
    };
    assert!(matches!(
        write_trade_bill_zip(
            ACCOUNT,
            date(),
            [payment_with_refund_no],
            Cursor::new(Vec::new())
        ),
        Err(BillWriteError::OutRequestNo { row: 1 })
    ));
    assert!(matches!(
        write_trade_bill_zip("../x", date(), [], Cursor::new(Vec::new())),
        Err(BillWriteError::Account)
    ));
}

#[test]
fn a_200k_row_bill_streams_through_without_collecting() {
    const ROWS: u64 = 200_000;
    let (zip, written) = write_bill((0..ROWS).map(spec));
    let mut bill = TradeBillReader::open(Cursor::new(&zip)).unwrap();
    let mut rows = bill.rows().unwrap();
    let (mut count, mut last) = (0u64, None);
    for row in rows.by_ref() {
        let row = row.unwrap();
        count += 1;
        last = Some(row);
    }
    assert_eq!(count, ROWS);
    assert_eq!(last, Some(expected_row(&spec(ROWS - 1))));
    assert_eq!(rows.totals(), Some(written));
    assert_eq!(written.payments + written.refunds, ROWS);
}

#[test]
fn a_line_longer_than_the_limit_is_refused_not_buffered() {
    let long = "长".repeat(MAX_LINE_BYTES / 2);
    let text = fixture_text().replacen(",下单测试,", &format!(",{long},"), 1);
    let (read, error) = read_until_error(&bill_of(&text));
    assert_eq!(read, 0);
    assert!(
        matches!(error, BillError::LineTooLong { line: 6 }),
        "{error:?}"
    );
}
