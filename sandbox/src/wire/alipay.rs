//! Alipay's classic gateway on the wire, Alipay's side (alipay.md §1-§6): form encoding, the
//! sorted parameter string, the checks of a gateway.do request, the signed `*_response` node,
//! V1-rule notifications, yuan amounts and Beijing times.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone as _, Utc};

use super::rsa::{PrivateKey, PublicKey};

/// The trade bill download URL query (§7).
pub const BILL_METHOD: &str = "alipay.data.dataservice.bill.downloadurl.query";

/// `total_amount` is at most 100,000,000 yuan (§4).
pub const MAX_ORDER_FEN: i64 = 10_000_000_000;

/// A form or query that is not `k=v&…` of percent-encoded UTF-8, or names a key twice with
/// different values (which value was signed would be open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form is not percent-encoded UTF-8")]
    Encoding,
    #[error("`{0}` appears twice with different values")]
    Conflicting(String),
}

/// Flat parameters by key. Kept in a `BTreeMap` because the sign string wants the keys in
/// ASCII order; `Debug` shows keys only (notifications carry payer fields).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// The parameters of a gateway.do request: the URL query and the form body merged (each
    /// SDK splits them its own way, §1), every value decoded exactly once.
    pub fn from_request(query: &[u8], body: &[u8]) -> Result<Params, FormError> {
        let mut params = Params::default();
        for (key, value) in decode_form(query)?.into_iter().chain(decode_form(body)?) {
            match params.0.get(&key) {
                Some(seen) if *seen != value => return Err(FormError::Conflicting(key)),
                Some(_) => {}
                None => {
                    params.0.insert(key, value);
                }
            }
        }
        Ok(params)
    }

    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_owned(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Alipay takes an empty value as no value.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The string Alipay signs (§2.1): every pair but the `excluded` keys and those with an
    /// empty key or value, sorted by key in ASCII order, `k=v` joined by `&`, values raw.
    pub fn sign_content(&self, excluded: &[&str]) -> String {
        self.iter()
            .filter(|(k, v)| !k.is_empty() && !v.is_empty() && !excluded.contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// `application/x-www-form-urlencoded`, every pair.
    pub fn to_form(&self) -> String {
        self.iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// `k=v&…` pairs in order, each decoded once: `+` is a space, `%XX` a byte, the result UTF-8.
pub fn decode_form(form: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    form.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            Ok((form_decode(key)?, form_decode(value)?))
        })
        .collect()
}

fn form_decode(raw: &[u8]) -> Result<String, FormError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest.get(..2).ok_or(FormError::Encoding)?;
                let hex = std::str::from_utf8(hex).map_err(|_| FormError::Encoding)?;
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| FormError::Encoding)?);
                rest = &rest[2..];
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| FormError::Encoding)
}

/// As HTML forms (and Java's `URLEncoder`) encode: letters, digits and `*-._` stay, a space
/// becomes `+`, every other byte `%XX`.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') => {
                out.push(char::from(b));
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Why the gateway refuses a request, with the codes it answers (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("missing parameter `{0}`")]
    Missing(&'static str),
    #[error("sign_type is not RSA2")]
    SignType,
    #[error("charset is not utf-8")]
    Charset,
    #[error("format is not JSON")]
    Format,
    #[error("timestamp is not yyyy-MM-dd HH:mm:ss")]
    Timestamp,
    #[error("the signature does not verify with the app public key")]
    Signature,
}

impl RequestError {
    /// 40001 for a missing argument, 40002 for an invalid one.
    pub fn code(self) -> &'static str {
        match self {
            RequestError::Missing(_) => "40001",
            _ => "40002",
        }
    }

    pub fn msg(self) -> &'static str {
        match self {
            RequestError::Missing(_) => "Missing Required Arguments",
            _ => "Invalid Arguments",
        }
    }

    pub fn sub_code(self) -> &'static str {
        match self {
            RequestError::Missing("method") => "isv.missing-method",
            RequestError::Missing("app_id") => "isv.missing-app-id",
            RequestError::Missing("timestamp") => "isv.missing-timestamp",
            RequestError::Missing("version") => "isv.missing-version",
            RequestError::Missing("sign_type") => "isv.missing-signature-type",
            RequestError::Missing(_) => "isv.missing-signature",
            // Not in the doc's list; named after the others [?].
            RequestError::SignType => "isv.invalid-signature-type",
            RequestError::Charset => "isv.invalid-charset",
            RequestError::Format => "isv.invalid-format",
            RequestError::Timestamp => "isv.invalid-timestamp",
            RequestError::Signature => "isv.invalid-signature",
        }
    }
}

/// The common parameters and the signature of a request (§1, §2.1): everything but `sign` is
/// signed, `sign_type` included, and verified with the app public key.
pub fn verify_request(params: &Params, app_key: &PublicKey) -> Result<(), RequestError> {
    for key in [
        "method",
        "app_id",
        "timestamp",
        "version",
        "sign_type",
        "sign",
    ] {
        if params.non_empty(key).is_none() {
            return Err(RequestError::Missing(key));
        }
    }
    if params.get("sign_type") != Some("RSA2") {
        return Err(RequestError::SignType);
    }
    // `utf-8` or `UTF-8`, `JSON` or `json`: SDKs differ (§1).
    if params
        .non_empty("charset")
        .is_some_and(|c| !c.eq_ignore_ascii_case("utf-8"))
    {
        return Err(RequestError::Charset);
    }
    if params
        .non_empty("format")
        .is_some_and(|f| !f.eq_ignore_ascii_case("json"))
    {
        return Err(RequestError::Format);
    }
    if params
        .get("timestamp")
        .and_then(parse_beijing_time)
        .is_none()
    {
        return Err(RequestError::Timestamp);
    }
    let sign = params.get("sign").unwrap_or_default();
    if app_key.verify_base64(params.sign_content(&["sign"]).as_bytes(), sign) {
        Ok(())
    } else {
        Err(RequestError::Signature)
    }
}

/// `alipay.trade.query` → `alipay_trade_query_response` (§3).
pub fn response_key(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// `/` written `\/`, as Alipay's JSON has it (a `/` only occurs inside strings). Sign the
/// result: the backslashes are part of the signed bytes (§3).
pub fn escape_slashes(json: &str) -> String {
    json.replace('/', "\\/")
}

/// `{"<method>_response":<node>,"sign":"…"}`, the signature over `signed` (the node's exact
/// bytes, unless a fault signs something else).
pub fn signed_response(method: &str, node: &str, signed: &str, key: &PrivateKey) -> String {
    response_body(method, node, &key.sign_base64(signed.as_bytes()))
}

/// The answer around a node and its signature: the node's bytes go out exactly as signed.
pub fn response_body(method: &str, node: &str, sign: &str) -> String {
    format!(
        "{{\"{}\":{node},\"sign\":\"{sign}\"}}",
        response_key(method)
    )
}

/// `{"error_response":<node>}`, unsigned, as some gateway-level failures come (§3).
pub fn error_response(node: &str) -> String {
    format!("{{\"error_response\":{node}}}")
}

/// A notification or return query as Alipay sends it (§2.2, V1 rule): `sign_type=RSA2` set,
/// the signature over every other non-empty pair but `sign` and `sign_type`, all form-encoded.
pub fn signed_notification(mut params: Params, key: &PrivateKey) -> String {
    params.0.remove("sign");
    let sign = key.sign_base64(params.sign_content(&["sign_type"]).as_bytes());
    params.insert("sign_type", "RSA2");
    params.insert("sign", sign);
    params.to_form()
}

/// 19900 → `199.00`: yuan with two decimals, integer arithmetic only. Negative amounts are not
/// written on this wire; `None` for one.
pub fn fen_to_yuan(fen: i64) -> Option<String> {
    (fen >= 0).then(|| format!("{}.{:02}", fen / 100, fen % 100))
}

/// `199.00`, `199.5` or `199` → fen, exactly: digits, then at most two decimals. No sign,
/// exponent or spaces; `None` for anything else, never rounded.
pub fn yuan_to_fen(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "00"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || fraction.len() > 2 || whole.len() > 15 {
        return None;
    }
    let cents = if fraction.len() == 1 {
        fraction.parse::<i64>().ok()? * 10
    } else {
        fraction.parse::<i64>().ok()?
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

/// Beijing time: +08:00 all year since 1991.
fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// `yyyy-MM-dd HH:mm:ss` in Beijing time: every time on Alipay's wire (§1, §6).
pub fn beijing_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&beijing()).format(TIME_FORMAT).to_string()
}

/// The instant of a `yyyy-MM-dd HH:mm:ss` Beijing time.
pub fn parse_beijing_time(text: &str) -> Option<DateTime<Utc>> {
    let local = NaiveDateTime::parse_from_str(text, TIME_FORMAT).ok()?;
    beijing()
        .from_local_datetime(&local)
        .single()
        .map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_decoded_once_and_repeats_must_agree() {
        let params =
            Params::from_request(b"a=1+2%2B3&b=%2541", b"c=%E4%B8%AD&d&a=1+2%2B3").unwrap();
        assert_eq!(params.get("a"), Some("1 2+3"));
        assert_eq!(params.get("b"), Some("%41"));
        assert_eq!(params.get("c"), Some("中"));
        assert_eq!(params.get("d"), Some(""));
        assert_eq!(
            Params::from_request(b"charset=utf-8", b"charset=gbk"),
            Err(FormError::Conflicting("charset".into()))
        );
        for bad in [&b"a=%4"[..], b"a=%zz", b"a=%D6%D0"] {
            assert_eq!(Params::from_request(bad, b""), Err(FormError::Encoding));
        }
    }

    #[test]
    fn the_sign_string_sorts_keys_drops_empty_values_and_keeps_values_raw() {
        let params = Params::from_request(
            b"method=m&app_id=2021&empty=&sign=s&biz_content=%7B%22a%22%3A%22x%26y%22%7D",
            b"",
        )
        .unwrap();
        assert_eq!(
            params.sign_content(&["sign"]),
            r#"app_id=2021&biz_content={"a":"x&y"}&method=m"#
        );
    }

    #[test]
    fn form_encoding_round_trips() {
        let mut params = Params::default();
        params.insert("k", "a b&c=d/中*~");
        assert_eq!(params.to_form(), "k=a+b%26c%3Dd%2F%E4%B8%AD*%7E");
        assert_eq!(
            Params::from_request(params.to_form().as_bytes(), b"").unwrap(),
            params
        );
    }

    #[test]
    fn yuan_amounts_are_exact_to_the_fen_or_refused() {
        assert_eq!(yuan_to_fen("199.00"), Some(19900));
        assert_eq!(yuan_to_fen("199.5"), Some(19950));
        assert_eq!(yuan_to_fen("199"), Some(19900));
        assert_eq!(yuan_to_fen("0.01"), Some(1));
        for bad in ["", "1.001", "-1", "+1", "1e3", " 1", "1.", ".5", "1,00"] {
            assert_eq!(yuan_to_fen(bad), None, "{bad}");
        }
        assert_eq!(fen_to_yuan(19900).as_deref(), Some("199.00"));
        assert_eq!(fen_to_yuan(7).as_deref(), Some("0.07"));
        assert_eq!(fen_to_yuan(-1), None);
    }

    #[test]
    fn times_are_beijing_time() {
        let at = parse_beijing_time("2026-11-29 00:30:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-11-28T16:30:00+00:00");
        assert_eq!(beijing_time(at), "2026-11-29 00:30:00");
        assert_eq!(parse_beijing_time("2026-11-29T00:30:00"), None);
    }
}
