//! The API keys of programs (`[[api_keys]]`): configured by the SHA-256 of their secret, each
//! with its scopes. `api::auth` reads them from the `Authorization` header.

use sha2::{Digest, Sha256};

use crate::config::ApiKeyConfig;

pub use crate::domain::Scope;

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub id: String,
    scopes: Vec<Scope>,
}

impl ApiKey {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Configured keys by the SHA-256 of their secret.
///
/// A presented secret is hashed and compared with EVERY configured hash in constant time
/// (`subtle`), no early exit: how long the check takes says nothing about which bytes of which
/// key matched. (Even a map lookup by hash would leak only bytes of a SHA-256 of the guess,
/// which does not help find a secret; the full scan removes the question.)
#[derive(Debug, Clone, Default)]
pub struct ApiKeys(Vec<([u8; 32], ApiKey)>);

impl ApiKeys {
    pub fn new(configured: &[ApiKeyConfig]) -> ApiKeys {
        ApiKeys(
            configured
                .iter()
                .filter_map(|k| {
                    let scopes = k.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
                    // Validated as 64 lower-case hex by the config.
                    let hash: [u8; 32] = hex::decode(&k.secret_sha256).ok()?.try_into().ok()?;
                    Some((
                        hash,
                        ApiKey {
                            id: k.id.clone(),
                            scopes,
                        },
                    ))
                })
                .collect(),
        )
    }

    /// The key whose secret this is.
    pub fn find(&self, secret: &str) -> Option<&ApiKey> {
        use subtle::ConstantTimeEq;
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let mut found = None;
        for (hash, key) in &self.0 {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(key);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_secret_finds_its_key() {
        let keys = ApiKeys::new(&[ApiKeyConfig {
            id: "a".into(),
            secret_sha256: hex::encode(Sha256::digest(b"pgk_secret")),
            scopes: vec!["checkout".into()],
        }]);
        assert_eq!(keys.find("pgk_secret").map(|k| k.id.as_str()), Some("a"));
        assert!(keys.find("pgk_secreT").is_none());
        assert!(keys.find("").is_none());
    }
}
