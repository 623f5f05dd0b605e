//! `Authorization: Bearer <api key>`: keys are configured by the SHA-256 of their secret.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::config::ApiKeyConfig;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Checkout,
    Entitlements,
    Finance,
    /// Account deletions (erasure requests).
    Privacy,
}

impl Scope {
    fn parse(text: &str) -> Option<Scope> {
        match text {
            "checkout" => Some(Scope::Checkout),
            "entitlements" => Some(Scope::Entitlements),
            "finance" => Some(Scope::Finance),
            "privacy" => Some(Scope::Privacy),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scope::Checkout => "checkout",
            Scope::Entitlements => "entitlements",
            Scope::Finance => "finance",
            Scope::Privacy => "privacy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    scopes: Vec<Scope>,
}

/// Configured keys by the hex SHA-256 of their secret.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(HashMap<String, ApiKey>);

impl ApiKeys {
    pub fn new(configured: &[ApiKeyConfig]) -> ApiKeys {
        ApiKeys(
            configured
                .iter()
                .map(|k| {
                    let scopes = k.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
                    (
                        k.secret_sha256.clone(),
                        ApiKey {
                            id: k.id.clone(),
                            scopes,
                        },
                    )
                })
                .collect(),
        )
    }

    fn find(&self, secret: &str) -> Option<&ApiKey> {
        self.0.get(&hex::encode(Sha256::digest(secret.as_bytes())))
    }
}

/// The caller's key, checked; handlers then ask for the scope they need.
pub struct Caller(pub ApiKey);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        self.require_any(&[scope])
    }

    pub fn require_any(&self, scopes: &[Scope]) -> Result<(), ApiError> {
        if scopes.iter().any(|s| self.0.scopes.contains(s)) {
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
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let secret = header
            .strip_prefix("Bearer ")
            .ok_or(ApiError::Unauthorized)?;
        let key = state
            .api_keys
            .find(secret.trim())
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller(key.clone()))
    }
}
