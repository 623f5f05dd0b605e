//! Who is looking: the session cookie read back into a [`Viewer`] (signed in, both factors),
//! the CSRF token every form carries, and the cookies themselves (`HttpOnly`,
//! `SameSite=Strict`, `Secure` under https, `Path=/console`).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::context::Console;
use super::page::Failure;
use crate::console_users::{self, sha256_hex};
use crate::domain::{Actor, Scope};
use crate::store::console::{SessionRow, Stage};

/// The session cookie: 32 random bytes, base64url; the database holds its SHA-256.
pub const SESSION_COOKIE: &str = "paygate_console";
/// The sign-in and set-password forms' own token (no session exists yet): the same random
/// value in this cookie and in the form, compared on POST.
pub const FORM_COOKIE: &str = "paygate_console_form";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for `name=value` on the console's path; `None` as the value removes it.
pub fn set_cookie(name: &str, value: Option<&str>, secure: bool) -> HeaderValue {
    let mut text = match value {
        Some(v) => format!("{name}={v}; Path=/console; HttpOnly; SameSite=Strict"),
        None => format!("{name}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"),
    };
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).expect("cookie values are base64url")
}

/// The CSRF token of a session: derived from its cookie, so it needs no storage and a page
/// that shows it shows nothing the cookie could be recovered from.
pub fn csrf_of(cookie: &str) -> String {
    sha256_hex(&format!("paygate console csrf v1\n{cookie}"))
}

/// Constant-time comparison of a presented token with the expected one.
pub fn same_token(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// A session at any stage, with its cookie (the sign-in steps' pages).
pub struct AnySession {
    pub cookie: String,
    pub session: SessionRow,
}

impl FromRequestParts<Console> for AnySession {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, Failure> {
        let Some(cookie) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Failure::SignIn);
        };
        let session = console_users::session(&state.users(), cookie, state.idle)
            .await
            .map_err(Failure::internal)?
            .ok_or(Failure::SignIn)?;
        Ok(AnySession {
            cookie: cookie.to_owned(),
            session,
        })
    }
}

/// A person signed in with every factor their scopes ask for.
pub struct Viewer {
    pub session: SessionRow,
    pub csrf: String,
}

impl Viewer {
    pub fn name(&self) -> &str {
        self.session.user.name.as_str()
    }

    /// What the page frame shows of this viewer.
    pub fn nav(&self) -> super::page::Nav<'_> {
        super::page::Nav {
            name: self.name(),
            csrf: &self.csrf,
            scopes: &self.session.user.scopes,
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.session.user.scopes.contains(&scope)
    }

    pub fn has_any(&self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|&s| self.has(s))
    }

    /// 403 unless the viewer holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), Failure> {
        self.require_any(&[scope])
    }

    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), Failure> {
        if self.has_any(scopes) {
            Ok(())
        } else {
            Err(Failure::Forbidden)
        }
    }

    /// Who this person is in audit rows and events.
    pub fn actor(&self) -> Actor {
        Actor::Console(self.session.user.name.clone())
    }
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, Failure> {
        let any = AnySession::from_request_parts(parts, state).await?;
        match any.session.stage {
            Stage::Full => Ok(Viewer {
                csrf: csrf_of(&any.cookie),
                session: any.session,
            }),
            Stage::Password => Err(Failure::Redirect("/console/sign-in/code")),
            Stage::Enrol => Err(Failure::Redirect("/console/enrol")),
        }
    }
}

/// A form posted by a signed-in viewer, its CSRF token checked before anything else: the only
/// way a console handler reads a POST body, so no form can go without the check.
pub struct Posted<T> {
    pub viewer: Viewer,
    pub form: T,
}

/// What every form has besides its own fields.
#[derive(serde::Deserialize)]
struct Token {
    csrf: String,
}

impl<T: DeserializeOwned + Send> FromRequest<Console> for Posted<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &Console) -> Result<Self, Failure> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, super::context::FORM_BYTES)
            .await
            .map_err(|_| Failure::BadRequest("表单过大或不完整".into()))?;
        let token: Token = serde_urlencoded::from_bytes(&bytes).map_err(|_| Failure::Csrf)?;
        if !same_token(&token.csrf, &viewer.csrf) {
            return Err(Failure::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Failure::BadRequest(format!("表单字段有误：{e}")))?;
        Ok(Posted { viewer, form })
    }
}

/// A form posted before there is a session (sign-in, set-password), its double-submit token
/// checked: the form's `form_token` field must equal the [`FORM_COOKIE`].
pub struct PostedAnonymous<T> {
    pub form: T,
}

#[derive(serde::Deserialize)]
struct FormToken {
    form_token: String,
}

impl<T: DeserializeOwned + Send> FromRequest<Console> for PostedAnonymous<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, _: &Console) -> Result<Self, Failure> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, super::context::FORM_BYTES)
            .await
            .map_err(|_| Failure::BadRequest("表单过大或不完整".into()))?;
        let token: FormToken = serde_urlencoded::from_bytes(&bytes).map_err(|_| Failure::Csrf)?;
        let expected = cookie(&parts.headers, FORM_COOKIE).ok_or(Failure::Csrf)?;
        if !same_token(&token.form_token, expected) {
            return Err(Failure::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Failure::BadRequest(format!("表单字段有误：{e}")))?;
        Ok(PostedAnonymous { form })
    }
}

/// A CSRF-checked POST of a session at any stage (the second factor, enrolment, sign-out).
pub struct PostedPartial<T> {
    pub session: AnySession,
    pub form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<Console> for PostedPartial<T> {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &Console) -> Result<Self, Failure> {
        let (mut parts, body) = request.into_parts();
        let session = AnySession::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, super::context::FORM_BYTES)
            .await
            .map_err(|_| Failure::BadRequest("表单过大或不完整".into()))?;
        let token: Token = serde_urlencoded::from_bytes(&bytes).map_err(|_| Failure::Csrf)?;
        if !same_token(&token.csrf, &csrf_of(&session.cookie)) {
            return Err(Failure::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| Failure::BadRequest(format!("表单字段有误：{e}")))?;
        Ok(PostedPartial { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; paygate_console=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "paygate"), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_under_https() {
        let c = set_cookie(SESSION_COOKIE, Some("v"), true);
        let c = c.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/console"] {
            assert!(c.contains(part), "{c}");
        }
        let plain = set_cookie(SESSION_COOKIE, Some("v"), false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}
