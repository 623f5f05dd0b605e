//! What the reader and the writer of trade bills agree on: entry names, column names, marker and
//! footer lines (alipay.md §7), amounts, and the split of a CSV line into fields.

use std::borrow::Cow;

use crate::money::AmountError;

/// The detail entry: `<account>_<yyyyMMdd>_业务明细.csv`.
pub(crate) const DETAIL_SUFFIX: &str = "_业务明细.csv";
/// The summary entry: `<account>_<yyyyMMdd>_业务明细(汇总).csv`.
pub(crate) const SUMMARY_SUFFIX: &str = "_业务明细(汇总).csv";

pub(crate) const TRADE_NO: &str = "支付宝交易号";
pub(crate) const OUT_TRADE_NO: &str = "商户订单号";
pub(crate) const KIND: &str = "业务类型";
pub(crate) const FINISHED_AT: &str = "完成时间";
pub(crate) const ORDER_AMOUNT: &str = "订单金额（元）";
pub(crate) const RECEIVED: &str = "商家实收（元）";
pub(crate) const OUT_REQUEST_NO: &str = "退款批次号/请求号";

/// The detail file's 25 columns, in Alipay's order. The reader looks columns up by name; the
/// writer writes exactly these.
pub(crate) const DETAIL_COLUMNS: [&str; 25] = [
    TRADE_NO,
    OUT_TRADE_NO,
    KIND,
    "商品名称",
    "创建时间",
    FINISHED_AT,
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    ORDER_AMOUNT,
    RECEIVED,
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    OUT_REQUEST_NO,
    "服务费（元）",
    "分润（元）",
    "备注",
];

pub(crate) const SUMMARY_COLUMNS: [&str; 12] = [
    "门店编号",
    "门店名称",
    "交易订单总笔数",
    "退款订单总笔数",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "卡消费金额（元）",
    "服务费（元）",
    "分润（元）",
    "实收净额（元）",
];

pub(crate) const KIND_PAYMENT: &str = "交易";
pub(crate) const KIND_REFUND: &str = "退款";

pub(crate) const ACCOUNT_PREFIX: &str = "#账号：";
pub(crate) const PERIOD_PREFIX: &str = "#起始日期：";
pub(crate) const PERIOD_END: &str = "终止日期：";
/// `2019年09月16日 00:00:00`, Beijing time.
pub(crate) const HEADER_TIME: &str = "%Y年%m月%d日 %H:%M:%S";

/// `#交易合计：6笔，商家实收共0.06元，商家优惠共0.00元`
pub(crate) const PAYMENT_FOOTER: Footer = Footer {
    name: "交易合计",
    prefix: "#交易合计：",
    middle: "笔，商家实收共",
};
/// `#退款合计：4笔，商家实收退款共-0.04元，商家优惠退款共0.00元`
pub(crate) const REFUND_FOOTER: Footer = Footer {
    name: "退款合计",
    prefix: "#退款合计：",
    middle: "笔，商家实收退款共",
};

/// One totals line under the rows: `<prefix><count><middle><yuan>元[，…]`.
pub(crate) struct Footer {
    pub name: &'static str,
    pub prefix: &'static str,
    pub middle: &'static str,
}

impl Footer {
    /// The count and the signed fen of a line that starts with `prefix`, or `None` when it does
    /// not have the documented shape.
    pub(crate) fn parse(&self, line: &str) -> Option<(u64, i64)> {
        let rest = line.strip_prefix(self.prefix)?;
        let (count, rest) = rest.split_once(self.middle)?;
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let count = count.parse().ok()?;
        let (amount, tail) = rest.split_once('元')?;
        // What follows is the discount total (商家优惠共…), which paygate does not use.
        if !(tail.is_empty() || tail.starts_with('，')) {
            return None;
        }
        Some((count, parse_amount(amount).ok()?))
    }
}

/// The start and end marker lines: `#` + 41 dashes + title + 40 (or 36 for the end) dashes.
pub(crate) fn marker(dashes_before: usize, title: &str, dashes_after: usize) -> String {
    format!(
        "#{}{title}{}",
        "-".repeat(dashes_before),
        "-".repeat(dashes_after)
    )
}

/// A bill amount in yuan, signed: `0.01`, `-0.01`, `199`, `199.5`. At most two decimals: the bill
/// counts fen, so `0.010` is malformed rather than rounded (or even read as 1 fen).
pub(crate) fn parse_amount(text: &str) -> Result<i64, AmountError> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !plain(whole) || !plain(fraction) || digits.ends_with('.') {
        return Err(AmountError::NotANumber);
    }
    if fraction.len() > 2 {
        return Err(AmountError::TooPrecise);
    }
    let yuan: i64 = whole.parse().map_err(|_| AmountError::OutOfRange)?;
    let mut fen_part = 0;
    for (i, b) in fraction.bytes().enumerate() {
        fen_part += i64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    let fen = yuan
        .checked_mul(100)
        .and_then(|f| f.checked_add(fen_part))
        .ok_or(AmountError::OutOfRange)?;
    Ok(if negative { -fen } else { fen })
}

/// Fen as the bill writes them: `1` → `0.01`, `-1` → `-0.01`.
pub(crate) fn format_amount(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// Splits one CSV line into trimmed fields, or `None` for an unterminated quote.
///
/// Alipay writes bare fields, text ones followed by a TAB ("to keep Excel from reading numbers")
/// which the trim removes. A field in double quotes (with `""` for a quote) is read as RFC 4180
/// has it, in case a text ever holds a comma; a quoted field spanning lines is not supported.
pub(crate) fn split_fields(line: &str) -> Option<Vec<Cow<'_, str>>> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let start = rest.trim_start();
        if let Some(quoted) = start.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let after = loop {
                match chars.next() {
                    None => return None,
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            value.push('"');
                            chars.next();
                        } else {
                            break quoted[i + 1..].trim_start();
                        }
                    }
                    Some((_, c)) => value.push(c),
                }
            };
            fields.push(Cow::Owned(value));
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None if after.is_empty() => return Some(fields),
                None => return None,
            }
        } else {
            match rest.split_once(',') {
                Some((field, next)) => {
                    fields.push(Cow::Borrowed(field.trim()));
                    rest = next;
                }
                None => {
                    fields.push(Cow::Borrowed(rest.trim()));
                    return Some(fields);
                }
            }
        }
    }
}

/// A header name as compared: trimmed, ASCII brackets read as the full-width ones Alipay uses.
pub(crate) fn normalize_header(name: &str) -> String {
    name.trim().replace('(', "（").replace(')', "）")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_with_up_to_two_decimals_read_as_signed_fen() {
        assert_eq!(parse_amount("0.01"), Ok(1));
        assert_eq!(parse_amount("-0.01"), Ok(-1));
        assert_eq!(parse_amount("199"), Ok(19900));
        assert_eq!(parse_amount("199.5"), Ok(19950));
        assert_eq!(parse_amount("-0.00"), Ok(0));
        assert_eq!(parse_amount("100000000.00"), Ok(10_000_000_000));
    }

    #[test]
    fn three_decimals_are_refused_even_when_the_last_is_zero() {
        assert_eq!(parse_amount("0.010"), Err(AmountError::TooPrecise));
        assert_eq!(parse_amount("-1.005"), Err(AmountError::TooPrecise));
    }

    #[test]
    fn anything_but_plain_digits_is_not_an_amount() {
        for text in [
            "", "-", "1.", ".5", "+1", "1e3", "1,00", "--1", "1.0.0", "１", "0x1", " 1",
        ] {
            assert_eq!(parse_amount(text), Err(AmountError::NotANumber), "{text:?}");
        }
        assert_eq!(
            parse_amount("999999999999999999999"),
            Err(AmountError::OutOfRange)
        );
    }

    #[test]
    fn fen_are_written_with_two_decimals_and_a_sign() {
        assert_eq!(format_amount(1), "0.01");
        assert_eq!(format_amount(-1), "-0.01");
        assert_eq!(format_amount(0), "0.00");
        assert_eq!(format_amount(-19950), "-199.50");
        assert_eq!(parse_amount(&format_amount(i64::MIN + 1)), Ok(i64::MIN + 1));
    }

    #[test]
    fn fields_lose_the_tab_alipay_puts_after_text() {
        let fields =
            split_fields("2019091622001458860515315453\t,service_1\t,交易\t,,0.01").unwrap();
        assert_eq!(
            fields,
            [
                "2019091622001458860515315453",
                "service_1",
                "交易",
                "",
                "0.01"
            ]
        );
    }

    #[test]
    fn quoted_fields_may_hold_commas_and_quotes() {
        let fields = split_fields(r#"a,"b,""c""",d"#).unwrap();
        assert_eq!(fields, ["a", r#"b,"c""#, "d"]);
        assert_eq!(split_fields(r#"a,"b"#), None);
        assert_eq!(split_fields(r#"a,"b"x,c"#), None);
    }

    #[test]
    fn footers_read_count_and_signed_amount() {
        assert_eq!(
            PAYMENT_FOOTER.parse("#交易合计：6笔，商家实收共0.06元，商家优惠共0.00元"),
            Some((6, 6))
        );
        assert_eq!(
            REFUND_FOOTER.parse("#退款合计：4笔，商家实收退款共-0.04元，商家优惠退款共0.00元"),
            Some((4, -4))
        );
        assert_eq!(
            PAYMENT_FOOTER.parse("#交易合计：4笔，交易金额共0.08元，优惠金额共0.00元"),
            None
        );
        assert_eq!(
            PAYMENT_FOOTER.parse("#交易合计：笔，商家实收共0.06元"),
            None
        );
        assert_eq!(
            PAYMENT_FOOTER.parse("#交易合计：6笔，商家实收共0.060元"),
            None
        );
    }

    #[test]
    fn the_documented_markers_have_their_dash_counts() {
        let start = marker(41, "业务明细列表", 40);
        assert!(start.starts_with("#-----------------------------------------业务"));
        assert_eq!(start.chars().filter(|&c| c == '-').count(), 81);
    }
}
