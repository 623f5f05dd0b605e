//! Alipay's trade bill archive (alipay.md §7): a ZIP holding `<account>_<yyyyMMdd>_业务明细.csv`
//! and `<account>_<yyyyMMdd>_业务明细(汇总).csv`, entry names GBK bytes without the UTF-8 flag,
//! contents GBK. The detail file: four `#` lines, the 25-column header, one line per payment or
//! refund (a TAB after the id and type fields, refunds negative), the end marker, the
//! `#交易合计` / `#退款合计` lines and the export time. The summary: the same kind of head, its
//! header, the `合计` line, its end marker and the export time.

use std::io::{Cursor, Write as _};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use encoding_rs::GBK;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::alipay::beijing_time;

const DETAIL_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";
const SUMMARY_HEADER: &str = "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）";
/// `2019年09月16日 00:00:00`.
const HEAD_TIME: &str = "%Y年%m月%d日 %H:%M:%S";

/// 业务类型.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillRowKind {
    /// 交易
    Payment,
    /// 退款
    Refund,
}

/// One line of the detail file.
#[derive(Clone, PartialEq, Eq)]
pub struct BillRow {
    /// 支付宝交易号 (a refund repeats its payment's).
    pub trade_no: String,
    /// 商户订单号; empty for a payment that was no order of the merchant's (a collection code).
    pub out_trade_no: String,
    pub kind: BillRowKind,
    /// 商品名称: GBK-encodable, with no comma, quote or line break (the sandbox maps them away).
    pub subject: String,
    /// 创建时间 (a refund repeats its payment's).
    pub created_at: DateTime<Utc>,
    /// 完成时间: when the payment or refund completed.
    pub finished_at: DateTime<Utc>,
    /// 对方账户.
    pub payer_account: String,
    /// Fen, positive; a refund is written negative.
    pub amount_fen: i64,
    /// 退款批次号/请求号: the refund's `out_request_no`.
    pub out_request_no: Option<String>,
}

impl std::fmt::Debug for BillRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BillRow")
            .field("trade_no", &self.trade_no)
            .field("out_trade_no", &self.out_trade_no)
            .field("kind", &self.kind)
            .field("payer_account", &"[redacted]")
            .field("amount_fen", &self.amount_fen)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BillWriteError {
    #[error(
        "a row has a negative amount, or a field with a comma, quote, line break or no GBK form"
    )]
    Row,
    #[error("the day has no next day")]
    Date,
    #[error("writing the ZIP failed")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing the ZIP failed")]
    Io(#[from] std::io::Error),
}

/// The ZIP of `date`'s bill for `account` (the PID and `0156`). The export time is written as
/// 06:00 the next day (Alipay exports in the small hours; the bytes stay the same whenever the
/// bill is asked for).
pub fn write_trade_bill_zip(
    account: &str,
    date: NaiveDate,
    rows: &[BillRow],
) -> Result<Vec<u8>, BillWriteError> {
    let next = date
        .checked_add_days(Days::new(1))
        .ok_or(BillWriteError::Date)?;
    let at = |day: NaiveDate, hour| {
        day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN))
            .format(HEAD_TIME)
            .to_string()
    };
    let head = |title: &str, list: &str| {
        format!(
            "#{title}\n#账号：[{account}]\n#起始日期：[{}]   终止日期：[{}]\n#{}{list}{}\n",
            at(date, 0),
            at(next, 0),
            "-".repeat(41),
            "-".repeat(40),
        )
    };
    let exported = format!("#导出时间：[{}]\n", at(next, 6));

    let mut detail = head("支付宝业务明细查询", "业务明细列表");
    detail.push_str(DETAIL_HEADER);
    detail.push('\n');
    let (mut payments, mut paid, mut refunds, mut refunded) = (0u64, 0i64, 0u64, 0i64);
    for row in rows {
        let fields = [
            &row.trade_no,
            &row.out_trade_no,
            &row.subject,
            &row.payer_account,
        ];
        let breaks = |s: &String| s.contains([',', '"', '\r', '\n', '\t']);
        if row.amount_fen < 0 || fields.into_iter().any(breaks) {
            return Err(BillWriteError::Row);
        }
        let (kind, amount) = match row.kind {
            BillRowKind::Payment => {
                payments += 1;
                paid += row.amount_fen;
                ("交易", row.amount_fen)
            }
            BillRowKind::Refund => {
                refunds += 1;
                refunded += row.amount_fen;
                ("退款", -row.amount_fen)
            }
        };
        let amount = yuan(amount);
        let refund_no = row.out_request_no.as_deref().unwrap_or("");
        detail.push_str(&format!(
            "{}\t,{}\t,{kind}\t,{},{},{},\t,\t,\t,\t,{}\t,{amount},{amount},0.00,0.00,0.00,0.00,0.00,,0.00,0.00,{refund_no}\t,0.00,0.00,\n",
            row.trade_no,
            row.out_trade_no,
            row.subject,
            beijing_time(row.created_at),
            beijing_time(row.finished_at),
            row.payer_account,
        ));
    }
    detail.push_str(&format!(
        "#{}业务明细列表结束{}\n#交易合计：{payments}笔，商家实收共{}元，商家优惠共0.00元\n#退款合计：{refunds}笔，商家实收退款共{}元，商家优惠退款共0.00元\n{exported}",
        "-".repeat(41),
        "-".repeat(36),
        yuan(paid),
        yuan(-refunded),
    ));

    let net = yuan(paid - refunded);
    let summary = format!(
        "{}{SUMMARY_HEADER}\n合计,,{payments},{refunds},{net},{net},0.00,0.00,0.00,0.00,0.00,{net}\n#{}业务汇总列表结束{}\n{exported}",
        head("支付宝业务汇总查询", "业务汇总列表"),
        "-".repeat(40),
        "-".repeat(37),
    );

    let stamp = date.format("%Y%m%d");
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (suffix, text) in [("_业务明细.csv", detail), ("_业务明细(汇总).csv", summary)] {
        let name = gbk(&format!("{account}_{stamp}{suffix}"))?;
        // Raw GBK bytes as the name: the UTF-8 flag (bit 11) stays clear, as in Alipay's files.
        zip.start_file_with_options(options.name(&name))?;
        zip.write_all(&gbk(&text)?)?;
    }
    Ok(zip.finish()?.into_inner())
}

/// Fen as signed yuan: `-4` → `-0.04`.
fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}{}.{:02}", fen / 100, fen % 100)
}

fn gbk(text: &str) -> Result<Vec<u8>, BillWriteError> {
    let (bytes, _, unmappable) = GBK.encode(text);
    if unmappable {
        return Err(BillWriteError::Row);
    }
    Ok(bytes.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        super::super::alipay::parse_beijing_time(text).unwrap()
    }

    #[test]
    fn the_archive_has_gbk_names_without_the_utf8_flag_and_a_footer_that_adds_up() {
        let payment = BillRow {
            trade_no: "2019091622001458860515315453".into(),
            out_trade_no: "service_1568601259302".into(),
            kind: BillRowKind::Payment,
            subject: "下单测试".into(),
            created_at: at("2019-09-16 10:55:16"),
            finished_at: at("2019-09-16 10:55:23"),
            payer_account: "159****5620".into(),
            amount_fen: 6,
            out_request_no: None,
        };
        let refund = BillRow {
            kind: BillRowKind::Refund,
            amount_fen: 4,
            out_request_no: Some("R1".into()),
            ..payment.clone()
        };
        let date = NaiveDate::from_ymd_opt(2019, 9, 16).unwrap();
        let zip = write_trade_bill_zip("20880211096256330156", date, &[payment, refund]).unwrap();

        // The first local file header: the flags at offset 6, the name at offset 30.
        assert_eq!(&zip[..4], b"PK\x03\x04");
        let flags = u16::from_le_bytes([zip[6], zip[7]]);
        assert_eq!(flags & (1 << 11), 0, "UTF-8 flag set");
        let name_len = usize::from(u16::from_le_bytes([zip[26], zip[27]]));
        let name = GBK.encode("20880211096256330156_20190916_业务明细.csv").0;
        assert_eq!(&zip[30..30 + name_len], &name[..]);

        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_index(0).unwrap(), &mut text).unwrap();
        let (text, _, bad) = GBK.decode(&text);
        assert!(!bad);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#支付宝业务明细查询");
        assert_eq!(lines[1], "#账号：[20880211096256330156]");
        assert_eq!(
            lines[2],
            "#起始日期：[2019年09月16日 00:00:00]   终止日期：[2019年09月17日 00:00:00]"
        );
        assert_eq!(lines[4], DETAIL_HEADER);
        assert!(lines[5].starts_with(
            "2019091622001458860515315453\t,service_1568601259302\t,交易\t,下单测试,2019-09-16 10:55:16,2019-09-16 10:55:23,"
        ));
        assert_eq!(lines[5].split(',').count(), 25);
        assert!(lines[6].contains(",-0.04,-0.04,"));
        assert_eq!(
            lines[8],
            "#交易合计：1笔，商家实收共0.06元，商家优惠共0.00元"
        );
        assert_eq!(
            lines[9],
            "#退款合计：1笔，商家实收退款共-0.04元，商家优惠退款共0.00元"
        );
        assert_eq!(lines[10], "#导出时间：[2019年09月17日 06:00:00]");
    }
}
