//! Where the buyer's browser goes back to after paying (issue 13): Alipay page/wap
//! `return_url`, WeChat H5 `redirect_url`.
//!
//! A return URL is a template whose only placeholder is `{order_no}`, so the order number is
//! the only thing about the order it can carry (DESIGN.md §1): no employer, no buyer. https is
//! required, except on 127.0.0.1/localhost (a developer's machine, the sandbox).

use crate::domain::OrderNo;

pub const PLACEHOLDER: &str = "{order_no}";

/// Alipay takes `return_url` up to 256 characters (the same bound as `notify_url`).
const MAX_LEN: usize = 256;

/// A validated return URL template. Parsed once (config load, or the order request), rendered
/// per order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnUrl {
    template: String,
    scheme: String,
    /// The host, lower-case, with `:port` when the template names one.
    host: String,
    host_port: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnUrlError {
    #[error("the only placeholder a return URL may hold is {{order_no}}")]
    Placeholder,
    #[error("a return URL must be an absolute URL with a host")]
    NotAUrl,
    #[error("a return URL must use https (http only for 127.0.0.1 or localhost)")]
    Scheme,
    #[error("a return URL must not carry a user name, password or fragment")]
    Extras,
    #[error("a return URL may be at most 256 characters once the order number is filled in")]
    TooLong,
}

impl ReturnUrl {
    pub fn parse(template: &str) -> Result<ReturnUrl, ReturnUrlError> {
        let rest = template.replace(PLACEHOLDER, "");
        if rest.contains(['{', '}']) {
            return Err(ReturnUrlError::Placeholder);
        }
        // Rendered with the longest order number, checked as the provider will see it.
        let sample = template.replace(PLACEHOLDER, &"0".repeat(OrderNo::MAX_LEN));
        if sample.chars().count() > MAX_LEN {
            return Err(ReturnUrlError::TooLong);
        }
        let url = url::Url::parse(&sample).map_err(|_| ReturnUrlError::NotAUrl)?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(ReturnUrlError::NotAUrl)?
            .to_ascii_lowercase();
        // The placeholder belongs in the path or the query, never in where the browser goes.
        if template.split("://").nth(1).is_some_and(|after| {
            after
                .split(['/', '?', '#'])
                .next()
                .is_some_and(|authority| authority.contains(PLACEHOLDER))
        }) {
            return Err(ReturnUrlError::Placeholder);
        }
        let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(ReturnUrlError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(ReturnUrlError::Extras);
        }
        Ok(ReturnUrl {
            template: template.to_owned(),
            scheme: url.scheme().to_owned(),
            host_port: url.port().map(|p| format!("{host}:{p}")),
            host,
        })
    }

    /// The URL for one order.
    pub fn render(&self, order_no: &OrderNo) -> String {
        self.template.replace(PLACEHOLDER, order_no.as_str())
    }

    pub fn as_template(&self) -> &str {
        &self.template
    }

    /// Whether the host (with its port, when it names one) is in `allowed` (`[checkout]
    /// allowed_return_hosts`). The scheme is already https, or http on a loopback host.
    pub fn host_allowed(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|entry| {
            let entry = entry.to_ascii_lowercase();
            match &self.host_port {
                Some(host_port) => entry == *host_port,
                None => entry == self.host,
            }
        })
    }

    pub fn scheme(&self) -> &str {
        &self.scheme
    }
}

impl TryFrom<String> for ReturnUrl {
    type Error = ReturnUrlError;
    fn try_from(text: String) -> Result<ReturnUrl, ReturnUrlError> {
        ReturnUrl::parse(&text)
    }
}

impl<'de> serde::Deserialize<'de> for ReturnUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ReturnUrl, D::Error> {
        let text = String::deserialize(d)?;
        ReturnUrl::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("checkout.return_url {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_with_the_order_number_renders_per_order() {
        let r = ReturnUrl::parse("https://www.example.cn/orders/{order_no}/paid").unwrap();
        let no = OrderNo::parse("P2026112912000000AB12CD34Z").unwrap();
        assert_eq!(
            r.render(&no),
            "https://www.example.cn/orders/P2026112912000000AB12CD34Z/paid"
        );
        assert!(r.host_allowed(&["www.example.cn".into()]));
        assert!(!r.host_allowed(&["example.cn".into()]));
    }

    #[test]
    fn only_https_or_loopback_http_and_only_the_order_number_placeholder() {
        let bad = |t: &str| ReturnUrl::parse(t).unwrap_err();
        assert_eq!(bad("http://www.example.cn/paid"), ReturnUrlError::Scheme);
        assert_eq!(bad("javascript:alert(1)"), ReturnUrlError::NotAUrl);
        assert_eq!(
            bad("https://www.example.cn/{employer_id}/paid"),
            ReturnUrlError::Placeholder
        );
        assert_eq!(
            bad("https://{order_no}.example.cn/paid"),
            ReturnUrlError::Placeholder
        );
        assert_eq!(bad("https://u:p@www.example.cn/"), ReturnUrlError::Extras);
        assert_eq!(bad("https://www.example.cn/#x"), ReturnUrlError::Extras);
        assert_eq!(
            bad(&format!("https://www.example.cn/{}", "a".repeat(250))),
            ReturnUrlError::TooLong
        );
        let local = ReturnUrl::parse("http://127.0.0.1:8081/orders/{order_no}").unwrap();
        assert!(local.host_allowed(&["127.0.0.1:8081".into()]));
        assert!(!local.host_allowed(&["127.0.0.1".into()]));
        assert!(ReturnUrl::parse("http://localhost/paid?order={order_no}").is_ok());
    }
}
