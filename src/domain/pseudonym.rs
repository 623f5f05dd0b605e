//! The pseudonym that replaces an erased employer id (DESIGN.md §10): `erased:` + the first 56
//! hex digits of HMAC-SHA256(key, id) (224 bits; it still parses as an [`EmployerId`], so every
//! typed path keeps working). The same id always gives the same pseudonym, nobody can reverse
//! it without the key, and with the key destroyed not even paygate can. Pure: reading the key
//! from its file is `privacy::load_key`'s.

use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use super::ids::{EmployerId, PSEUDONYM_PREFIX};

/// Hex digits of the HMAC kept: the prefix and these fit [`EmployerId`]'s 64 characters.
pub const PSEUDONYM_HEX: usize = 56;

/// The secret key of the pseudonyms. Its `Debug` shows nothing.
pub struct PseudonymKey(SecretSlice<u8>);

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the pseudonym key must be at least 32 bytes")]
pub struct KeyTooShort;

/// HMAC-SHA256(key, text).
pub fn hmac_sha256(key: &[u8], text: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text);
    mac.finalize().into_bytes().into()
}

impl PseudonymKey {
    /// At least 32 bytes: the strength of the HMAC-SHA256 it keys.
    pub fn new(bytes: Vec<u8>) -> Result<PseudonymKey, KeyTooShort> {
        if bytes.len() < 32 {
            return Err(KeyTooShort);
        }
        Ok(PseudonymKey(SecretSlice::from(bytes)))
    }

    /// A random key for this process only (`serve --sandbox` without a configured file):
    /// pseudonyms then agree only until the next start.
    pub fn generate() -> PseudonymKey {
        let bytes: [u8; 32] = rand::rng().random();
        PseudonymKey(SecretSlice::from(bytes.to_vec()))
    }

    /// The pseudonym of `id`: always the same for the same id and key.
    pub fn pseudonym(&self, id: &EmployerId) -> EmployerId {
        let digest = hex::encode(hmac_sha256(self.0.expose_secret(), id.as_str().as_bytes()));
        let text = format!("{PSEUDONYM_PREFIX}{}", &digest[..PSEUDONYM_HEX]);
        EmployerId::parse(&text).expect("prefix and hex digits fit an employer id")
    }

    /// A key for another purpose derived from this one, HMAC-SHA256(key, purpose): it says
    /// nothing about this key or the pseudonyms.
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        hmac_sha256(self.0.expose_secret(), purpose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pseudonym_is_stable_keyed_prefixed_and_an_employer_id() {
        let key = PseudonymKey::new(vec![7; 32]).unwrap();
        let id = EmployerId::parse("emp_42").unwrap();
        let p = key.pseudonym(&id);
        assert_eq!(p, key.pseudonym(&id));
        assert!(p.as_str().starts_with(PSEUDONYM_PREFIX));
        assert_eq!(p.as_str().len(), PSEUDONYM_PREFIX.len() + PSEUDONYM_HEX);
        assert!(!p.as_str().contains("emp_42"));
        let other_key = PseudonymKey::new(vec![8; 32]).unwrap();
        assert_ne!(other_key.pseudonym(&id), p);
        assert_ne!(key.pseudonym(&EmployerId::parse("emp_43").unwrap()), p);
        // HMAC-SHA256(key = 32 × 0x07, "emp_42"), as Python's hmac module computes it.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[7; 32]).unwrap();
        mac.update(b"emp_42");
        let full = hex::encode(mac.finalize().into_bytes());
        assert_eq!(&p.as_str()[PSEUDONYM_PREFIX.len()..], &full[..56]);
    }

    #[test]
    fn a_short_key_is_refused_and_debug_shows_nothing() {
        assert!(PseudonymKey::new(vec![1; 31]).is_err());
        let key = PseudonymKey::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        assert_eq!(format!("{key:?}"), "PseudonymKey([redacted])");
    }
}
