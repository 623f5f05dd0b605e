-- The console (issue 21, DESIGN.md §7 console). People sign in as console users; API keys stay
-- for programs. A password is kept only as its argon2id PHC string; the one-time set-password
-- link and the session cookie only as their SHA-256 (a copy of this table opens nothing).
-- The TOTP secret is the one value an authenticator app must share with the server; it is kept
-- as base32 text (RFC 6238 cannot verify against a hash of it).
CREATE TABLE console_user (
    name              TEXT PRIMARY KEY,            -- [a-z0-9._-]{1,32}: a handle, shown as console:<name>
    scopes            TEXT NOT NULL,               -- comma-separated: checkout,entitlements,finance,privacy
    password_hash     TEXT,                        -- argon2id PHC string; NULL until set
    setup_token_sha256 TEXT,                       -- the one-time set-password link's token, hashed
    setup_expires_at  BIGINT,
    totp_required     BIGINT NOT NULL,             -- 1: a second factor before any page
    totp_secret       TEXT,                        -- base32; NULL until enrolled
    totp_pending      TEXT,                        -- base32: offered at enrolment, not yet confirmed
    totp_last_step    BIGINT,                      -- the last accepted step: a code works once
    failed_sign_ins   BIGINT NOT NULL DEFAULT 0,   -- in a row; reset by a success
    locked_until      BIGINT,                      -- too many failures: refused until then
    disabled_at       BIGINT,                      -- disabled: no sign-in, every session ended
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);

-- Server-side sessions. The cookie holds 32 random bytes; the row holds their SHA-256. A
-- session is `password` (the password was right, the second factor is due), `enrol` (the
-- password was right, a TOTP must be enrolled first) or `full`.
CREATE TABLE console_session (
    session_sha256    TEXT PRIMARY KEY,
    name              TEXT NOT NULL REFERENCES console_user (name),
    stage             TEXT NOT NULL CHECK (stage IN ('password', 'enrol', 'full')),
    created_at        BIGINT NOT NULL,
    last_seen_at      BIGINT NOT NULL
);
CREATE INDEX console_session_user ON console_session (name);
CREATE INDEX console_session_seen ON console_session (last_seen_at);

-- Every action has an actor (console:<name>, api_key:<id>, cli, job:<name>). Rows from before
-- this column have none.
ALTER TABLE refund ADD COLUMN actor TEXT;
ALTER TABLE privacy_erasure ADD COLUMN actor TEXT;
ALTER TABLE reconciliation_run ADD COLUMN actor TEXT;

-- The console's order list: newest first, keyset-paged.
CREATE INDEX payment_order_created ON payment_order (created_at, order_no);

-- An order's timeline: its events in order.
CREATE INDEX outbox_event_order ON outbox_event (order_no, event_id);
