//! Flat `key=value` parameters: what gateway.do requests, notifications and return URLs carry,
//! and the sign string built from them.

use std::collections::BTreeMap;
use std::fmt;

use url::form_urlencoded;

/// A form body or query string that cannot be taken as parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("form value is not valid percent-encoded UTF-8")]
    Encoding,
    #[error("parameter `{0}` appears twice with different values")]
    Conflicting(String),
}

/// Parameters kept sorted by key in ASCII (byte) order, the order the sign string wants.
///
/// `Debug` shows the keys only: notification values include payer data.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Sets `key`, replacing any earlier value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value of `key` unless it is absent or empty (Alipay treats empty as absent).
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Decodes an `application/x-www-form-urlencoded` body or a query string exactly once
    /// (`+` is a space, `%XX` a byte, the result must be UTF-8). A key that appears twice must
    /// carry the same value both times: two different values would leave it open which one was
    /// signed.
    pub fn from_form(form: &[u8]) -> Result<Params, FormError> {
        let mut params = Params::new();
        params.merge_form(form)?;
        Ok(params)
    }

    /// Adds the pairs of another form (gateway.do merges the URL query and the body).
    pub fn merge_form(&mut self, form: &[u8]) -> Result<(), FormError> {
        for pair in form.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let (key, value) = (decode_component(key)?, decode_component(value)?);
            match self.0.get(&key) {
                Some(existing) if *existing != value => return Err(FormError::Conflicting(key)),
                Some(_) => {}
                None => {
                    self.0.insert(key, value);
                }
            }
        }
        Ok(())
    }

    /// Form-encodes every parameter, in key order (what a form body or a URL query carries).
    pub fn to_form(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (key, value) in self.iter() {
            form.append_pair(key, value);
        }
        form.finish()
    }

    /// The string Alipay signs: every parameter except the `excluded` keys and those with an
    /// empty key or value, sorted by key, `k=v` joined by `&`, values raw (not URL-encoded).
    pub fn sign_content(&self, excluded: &[&str]) -> String {
        let mut content = String::new();
        for (key, value) in self.iter() {
            if key.is_empty() || value.is_empty() || excluded.contains(&key) {
                continue;
            }
            if !content.is_empty() {
                content.push('&');
            }
            content.push_str(key);
            content.push('=');
            content.push_str(value);
        }
        content
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Params {
        Params(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or(FormError::Encoding)?;
                let hex = std::str::from_utf8(hex).map_err(|_| FormError::Encoding)?;
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| FormError::Encoding)?);
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| FormError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_content_sorts_keys_skips_empty_values_and_keeps_raw_values() {
        let params: Params = [
            ("method", "alipay.trade.query"),
            ("app_id", "2021"),
            ("empty", ""),
            ("sign", "abc"),
            ("timestamp", "2026-11-29 00:30:00"),
            ("biz_content", r#"{"out_trade_no":"A&B=C"}"#),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            params.sign_content(&["sign"]),
            r#"app_id=2021&biz_content={"out_trade_no":"A&B=C"}&method=alipay.trade.query&timestamp=2026-11-29 00:30:00"#
        );
    }

    #[test]
    fn a_form_is_decoded_exactly_once() {
        let params = Params::from_form(b"a=1+2%2B3&b=%2541&c=%E4%B8%AD&d").unwrap();
        assert_eq!(params.get("a"), Some("1 2+3"));
        // "%2541" decodes to the text "%41", not to "A".
        assert_eq!(params.get("b"), Some("%41"));
        assert_eq!(params.get("c"), Some("中"));
        assert_eq!(params.get("d"), Some(""));
    }

    #[test]
    fn a_form_with_broken_escapes_or_non_utf8_bytes_is_rejected() {
        assert_eq!(Params::from_form(b"a=%4"), Err(FormError::Encoding));
        assert_eq!(Params::from_form(b"a=%zz"), Err(FormError::Encoding));
        assert_eq!(Params::from_form(b"a=%D6%D0"), Err(FormError::Encoding));
    }

    #[test]
    fn a_key_repeated_with_another_value_is_rejected_but_an_identical_repeat_is_not() {
        assert_eq!(
            Params::from_form(b"charset=utf-8&charset=gbk"),
            Err(FormError::Conflicting("charset".into()))
        );
        let params = Params::from_form(b"charset=utf-8&charset=utf-8").unwrap();
        assert_eq!(params.get("charset"), Some("utf-8"));
    }

    #[test]
    fn debug_output_names_keys_but_never_values() {
        let params: Params = [("buyer_logon_id", "someone@example.com")]
            .into_iter()
            .collect();
        let shown = format!("{params:?}");
        assert!(shown.contains("buyer_logon_id"));
        assert!(!shown.contains("someone"));
    }
}
