//! `Idempotency-Key`s are stored as keyed hashes, never as text (DESIGN.md §4, issue 20): a key
//! may hold an id (`checkout-<employer>-1`), and an erasure cannot find, let alone rewrite, an
//! id inside a key it cannot read.
//!
//! The stored value is hex(HMAC-SHA256(K, key)) with
//! K = HMAC-SHA256(pseudonym key, "paygate idempotency-key v1") when `[privacy]
//! pseudonym_key_file` is configured (form `keyed`): without the key file nobody can test a
//! guessed key against the table. Without the file (also `serve --sandbox`, whose generated
//! pseudonym key lives one process only, while stored keys must match across restarts and
//! instances), K is the public constant "paygate idempotency-key v1 (no pseudonym key)" (form
//! `unkeyed`): still no text, but a guessed key can be confirmed by hashing it, as erasures are
//! refused in that setup anyway. The application logs a warning at start.
//!
//! Rows written before (form `text`, the migration's default) or in the other hashed form
//! still match: while any may exist, a claim first moves the row of its key to the current
//! form in the same write as its insert, and an erasure hashes every `text` key that names the
//! employer. Retention deletes them all after `idempotency_days`; then the extra statement
//! stops.

use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::{ExposeSecret, SecretSlice};

use super::Db;
use super::idempotency::{KeyForm, StoredKey};
use crate::domain::pseudonym::{PseudonymKey, hmac_sha256 as hmac};

const PURPOSE: &[u8] = b"paygate idempotency-key v1";
const PUBLIC_KEY: &[u8] = b"paygate idempotency-key v1 (no pseudonym key)";

/// How this process stores `Idempotency-Key`s. Its `Debug` shows nothing of the key.
pub struct IdempotencyKeys {
    secret: SecretSlice<u8>,
    form: KeyForm,
    /// Rows in another form may still exist: claims look for them too.
    others_may_exist: AtomicBool,
}

impl std::fmt::Debug for IdempotencyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyKeys")
            .field("form", &self.form)
            .finish_non_exhaustive()
    }
}

/// One `Idempotency-Key` as stored, and the other forms its row may have been written in.
#[derive(Debug, Clone)]
pub struct Key {
    stored: StoredKey,
    earlier: Vec<StoredKey>,
}

impl Key {
    /// The value in the `idempotency_key` column.
    pub fn stored(&self) -> &str {
        &self.stored.value
    }

    pub fn stored_key(&self) -> &StoredKey {
        &self.stored
    }

    /// The forms an older row of this key may have (empty once none can exist).
    pub fn earlier(&self) -> &[StoredKey] {
        &self.earlier
    }
}

impl IdempotencyKeys {
    /// `configured`: the pseudonym key read from `[privacy] pseudonym_key_file`; None when the
    /// file is not configured (a sandbox's generated key does not count: see the module docs).
    pub fn new(configured: Option<&PseudonymKey>) -> IdempotencyKeys {
        let (secret, form) = match configured {
            Some(k) => (k.derive(PURPOSE).to_vec(), KeyForm::Keyed),
            None => (PUBLIC_KEY.to_vec(), KeyForm::Unkeyed),
        };
        IdempotencyKeys {
            secret: SecretSlice::from(secret),
            form,
            others_may_exist: AtomicBool::new(true),
        }
    }

    pub fn form(&self) -> KeyForm {
        self.form
    }

    /// The header's text as stored, with the forms of rows written before.
    pub fn key(&self, text: &str) -> Key {
        let stored = self.digest(text);
        let mut earlier = Vec::new();
        if self.others_may_exist.load(Ordering::Relaxed) {
            earlier.push(StoredKey {
                value: text.to_owned(),
                form: KeyForm::Text,
            });
            if self.form == KeyForm::Keyed {
                earlier.push(StoredKey {
                    value: hex::encode(hmac(PUBLIC_KEY, text.as_bytes())),
                    form: KeyForm::Unkeyed,
                });
            }
        }
        Key { stored, earlier }
    }

    /// `text` in this process's form.
    pub fn digest(&self, text: &str) -> StoredKey {
        StoredKey {
            value: hex::encode(hmac(self.secret.expose_secret(), text.as_bytes())),
            form: self.form,
        }
    }

    /// Asks the database whether rows of another form are left (at start and after each
    /// retention pass); claims stop looking for them once none are.
    pub async fn refresh(&self, db: &Db) -> Result<(), sqlx::Error> {
        let others = super::idempotency::other_forms_exist(db.pool(), self.form).await?;
        self.others_may_exist.store(others, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_stored_as_a_keyed_hash_and_never_as_its_text() {
        let pseudonym = PseudonymKey::new(vec![7; 32]).unwrap();
        let keys = IdempotencyKeys::new(Some(&pseudonym));
        let key = keys.key("checkout-emp_4-1");
        assert_eq!(key.stored_key().form, KeyForm::Keyed);
        assert_eq!(key.stored().len(), 64);
        assert!(!key.stored().contains("emp_4"));
        // The same text, the same value; another pseudonym key, another value.
        assert_eq!(keys.key("checkout-emp_4-1").stored(), key.stored());
        let other = IdempotencyKeys::new(Some(&PseudonymKey::new(vec![8; 32]).unwrap()));
        assert_ne!(other.key("checkout-emp_4-1").stored(), key.stored());
        // Without the file: a hash all the same, and the form a keyed process looks for.
        let unkeyed = IdempotencyKeys::new(None);
        assert_eq!(unkeyed.form(), KeyForm::Unkeyed);
        let earlier = key.earlier();
        assert_eq!(earlier[0].form, KeyForm::Text);
        assert_eq!(earlier[1], unkeyed.digest("checkout-emp_4-1"));
        assert!(format!("{keys:?}").find("secret").is_none());
    }
}
