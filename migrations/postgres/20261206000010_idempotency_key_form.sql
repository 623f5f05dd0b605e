-- Idempotency-Keys are stored as keyed hashes, never as text (DESIGN.md §4, issue 20): a key
-- may hold an id ("checkout-<employer>-1") that an erasure could neither find nor rewrite.
-- `key_form` says how `idempotency_key` was written: 'keyed' = hex HMAC-SHA256 under the key
-- derived from [privacy] pseudonym_key_file, 'unkeyed' = the same under a public constant (no
-- pseudonym key configured), 'text' = the header's text, as every row before this migration.
-- SQL cannot compute the HMAC (the key is not in the database), so existing rows stay 'text':
-- a claim moves the row of its key to the hashed form as it finds it, an erasure hashes every
-- text key that names the employer, and retention deletes the rest after idempotency_days.
ALTER TABLE idempotency ADD COLUMN key_form TEXT NOT NULL DEFAULT 'text'
    CHECK (key_form IN ('text', 'keyed', 'unkeyed'));
