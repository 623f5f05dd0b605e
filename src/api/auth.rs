//! `Authorization: Bearer <api key>`: the request's key (`crate::api_keys`), checked.

pub use crate::api_keys::{ApiKey, ApiKeys, Scope};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// Why an `Authorization` header is refused (all answered 401 alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthHeaderError {
    #[error("no Authorization header")]
    Missing,
    #[error("more than one Authorization header")]
    Repeated,
    #[error("the Authorization header is not Bearer <token>")]
    Malformed,
}

/// The token of the request's one `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 9110 §11.1) and followed by one or more spaces; the token is the
/// token68 of RFC 9110 §11.2 (no inner whitespace). Two headers are refused, not picked from.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, AuthHeaderError> {
    let mut all = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let value = all.next().ok_or(AuthHeaderError::Missing)?;
    if all.next().is_some() {
        return Err(AuthHeaderError::Repeated);
    }
    parse_bearer(value.as_bytes())
}

/// [`bearer_token`] over one header value's bytes.
pub fn parse_bearer(value: &[u8]) -> Result<&str, AuthHeaderError> {
    let text = std::str::from_utf8(value).map_err(|_| AuthHeaderError::Malformed)?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, token) = text.split_once(' ').ok_or(AuthHeaderError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthHeaderError::Malformed);
    }
    let token = token.trim_start_matches(' ');
    let token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    let bytes = token.as_bytes();
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if bytes.len() == padding || !bytes[..bytes.len() - padding].iter().all(|&b| token68(b)) {
        return Err(AuthHeaderError::Malformed);
    }
    Ok(token)
}

/// The caller's key, checked; handlers then ask for the scope they need.
pub struct Caller(pub ApiKey);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.require_any(&[scope])
    }

    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        if scopes.iter().any(|&s| self.0.has(s)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scopes[0].name()))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer_token(&parts.headers).map_err(|_| ApiError::Unauthorized)?;
        let key = state.api_keys.find(secret).ok_or(ApiError::Unauthorized)?;
        if state.rate_limits.api(&key.id).is_err() {
            crate::telemetry::refused("api_rate");
            return Err(ApiError::RateLimited);
        }
        Ok(Caller(key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any header bytes: a token or a refusal, never a panic; a token is a token68 taken
        /// from after a case-insensitive `Bearer`.
        #[test]
        fn the_bearer_parser_never_panics(
            value in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                "(?i:bearer)[ \\t]{0,3}.{0,40}".prop_map(String::into_bytes),
            ],
        ) {
            if let Ok(token) = parse_bearer(&value) {
                prop_assert!(!token.is_empty());
                prop_assert!(!token.contains(' ') && !token.contains('\t'));
                let text = std::str::from_utf8(&value).unwrap();
                prop_assert!(text.trim_start().to_ascii_lowercase().starts_with("bearer "));
                prop_assert!(text.trim_end().ends_with(token));
            }
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_spaces_are_not_counted() {
        for v in [
            "Bearer k1",
            "bearer k1",
            "BEARER k1",
            "bEaReR   k1",
            "Bearer k1 ",
        ] {
            assert_eq!(bearer_token(&headers(&[v])), Ok("k1"), "{v}");
        }
    }

    #[test]
    fn two_headers_an_other_scheme_or_a_bad_token_are_refused() {
        assert_eq!(bearer_token(&headers(&[])), Err(AuthHeaderError::Missing));
        assert_eq!(
            bearer_token(&headers(&["Bearer k1", "Bearer k1"])),
            Err(AuthHeaderError::Repeated)
        );
        for v in [
            "Basic k1",
            "Bearer",
            "Bearer ",
            "Bearerk1",
            "Bearer k1 k2",
            "Bearer =",
        ] {
            assert!(bearer_token(&headers(&[v])).is_err(), "{v}");
        }
    }
}
