//! WeChat Pay's `ALL` trade bill file (wechatpay-v3.md §6), laid out as the one real downloaded
//! file published (wechatpay-php's `bill.ALL.csv`): UTF-8 with a BOM, CRLF after every line
//! (the last included), the detail header, one row per payment or refund with every value
//! prefixed by a backtick, the summary header and one summary row, also backticked. Amounts are
//! yuan with two decimals, 手续费 with five; the summary writes each total as that file does,
//! the shortest decimal with at least one digit after the point (`45.0`, `0.47`, `0.0`).

use std::io::{self, Write};

use aws_lc_rs::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use chrono::{DateTime, FixedOffset, Utc};

/// The `ALL` detail header, 27 columns.
pub const DETAIL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
/// The `ALL` summary header, 7 columns.
pub const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// One detail row, every column of the `ALL` layout. Amounts are fen, 手续费 is in units of
/// 0.00001 yuan (the column has five decimals). A payment row has `0` as both refund numbers,
/// no refund type or status, and 0 in the refund amounts; a refund row has 0 as its 应结订单金额
/// and 订单金额 (§6).
#[derive(Clone, PartialEq, Eq)]
pub struct TradeBillRow {
    /// 交易时间: the payment's time, or when the refund was asked for; written in Beijing time.
    pub trade_time: DateTime<Utc>,
    pub appid: String,
    pub mchid: String,
    /// 特约商户号: `0` for a direct merchant.
    pub sub_mchid: String,
    /// 设备号.
    pub device_info: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    /// 用户标识: the payer's openid.
    pub openid: String,
    pub trade_type: String,
    /// `SUCCESS`, `REFUND` or `REVOKED`.
    pub trade_state: String,
    pub bank_type: String,
    pub currency: String,
    pub settlement_fen: i64,
    pub voucher_fen: i64,
    pub refund_id: String,
    pub out_refund_no: String,
    pub refund_fen: i64,
    pub recharge_refund_fen: i64,
    pub refund_type: String,
    pub refund_status: String,
    pub description: String,
    pub attach: String,
    pub fee_hundred_thousandths: i64,
    /// 费率, e.g. `0.60%`.
    pub fee_rate: String,
    pub order_fen: i64,
    pub requested_refund_fen: i64,
    /// 费率备注.
    pub fee_note: String,
}

impl std::fmt::Debug for TradeBillRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradeBillRow")
            .field("trade_time", &self.trade_time)
            .field("out_trade_no", &self.out_trade_no)
            .field("openid", &"[redacted]")
            .field("trade_state", &self.trade_state)
            .finish_non_exhaustive()
    }
}

/// Writes the file. A text value that would break the layout (a line break, or `` ,` `` which
/// starts a new value) or a negative amount is `InvalidInput`.
pub fn write_trade_bill(
    rows: impl IntoIterator<Item = TradeBillRow>,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    out.write_all(b"\xEF\xBB\xBF")?;
    write!(out, "{DETAIL_HEADER}\r\n")?;
    // count, 应结订单, 退款, 充值券退款, 手续费, 订单, 申请退款
    let mut totals = [0i64; 7];
    let beijing = FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset");
    for row in rows {
        let amounts = [
            row.settlement_fen,
            row.voucher_fen,
            row.refund_fen,
            row.recharge_refund_fen,
            row.fee_hundred_thousandths,
            row.order_fen,
            row.requested_refund_fen,
        ];
        if amounts.iter().any(|a| *a < 0) {
            return Err(invalid("a negative amount"));
        }
        let fen = |fen: i64| format!("{}.{:02}", fen / 100, fen % 100);
        let values = [
            row.trade_time
                .with_timezone(&beijing)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            row.appid,
            row.mchid,
            row.sub_mchid,
            row.device_info,
            row.transaction_id,
            row.out_trade_no,
            row.openid,
            row.trade_type,
            row.trade_state,
            row.bank_type,
            row.currency,
            fen(row.settlement_fen),
            fen(row.voucher_fen),
            row.refund_id,
            row.out_refund_no,
            fen(row.refund_fen),
            fen(row.recharge_refund_fen),
            row.refund_type,
            row.refund_status,
            row.description,
            row.attach,
            format!(
                "{}.{:05}",
                row.fee_hundred_thousandths / 100_000,
                row.fee_hundred_thousandths % 100_000
            ),
            row.fee_rate,
            fen(row.order_fen),
            fen(row.requested_refund_fen),
            row.fee_note,
        ];
        if values
            .iter()
            .any(|v| v.contains(['\r', '\n']) || v.contains(",`"))
        {
            return Err(invalid("a value would break the line or its columns"));
        }
        write!(out, "`{}\r\n", values.join(",`"))?;
        let sums = [
            1,
            row.settlement_fen,
            row.refund_fen,
            row.recharge_refund_fen,
            row.fee_hundred_thousandths,
            row.order_fen,
            row.requested_refund_fen,
        ];
        for (total, add) in totals.iter_mut().zip(sums) {
            *total = total
                .checked_add(add)
                .ok_or_else(|| invalid("totals overflow"))?;
        }
    }
    let [count, settlement, refund, recharge, fee, order, requested] = totals;
    write!(out, "{SUMMARY_HEADER}\r\n")?;
    let summary = [
        shortest(count, 0),
        shortest(settlement, 2),
        shortest(refund, 2),
        shortest(recharge, 2),
        shortest(fee, 5),
        shortest(order, 2),
        shortest(requested, 2),
    ];
    write!(out, "`{}\r\n", summary.join(",`"))?;
    out.flush()
}

/// `units` × 10^-`scale` as the published file writes totals: the decimal with its trailing
/// zeros dropped but one digit kept after the point (`45` units, scale 0 → `45.0`; 47, 2 →
/// `0.47`; 8000, 5 → `0.08`).
fn shortest(units: i64, scale: u32) -> String {
    let unit = 10i64.pow(scale);
    let fraction = format!("{:0width$}", units % unit, width = scale as usize);
    let fraction = fraction.trim_end_matches('0');
    let fraction = if fraction.is_empty() { "0" } else { fraction };
    format!("{}.{fraction}", units / unit)
}

/// `hash_value` of the bill answer: lower-case hex SHA-1 of the uncompressed file (§6).
pub fn sha1_hex(file: &[u8]) -> String {
    digest(&SHA1_FOR_LEGACY_USE_ONLY, file)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_written_as_the_shortest_decimal() {
        assert_eq!(shortest(45, 0), "45.0");
        assert_eq!(shortest(47, 2), "0.47");
        assert_eq!(shortest(0, 2), "0.0");
        assert_eq!(shortest(8000, 5), "0.08");
        assert_eq!(shortest(10, 2), "0.1");
        assert_eq!(shortest(12_345, 2), "123.45");
        assert_eq!(shortest(600, 5), "0.006");
    }

    #[test]
    fn sha1_is_lower_case_hex() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }
}
