-- paygate initial schema (PostgreSQL). Times are unix epoch milliseconds (UTC); money is integer fen.
-- The SQLite twin lives in migrations/sqlite with the same tables, columns and constraints.

CREATE TABLE payment_order (
    order_no        TEXT PRIMARY KEY,
    employer_id     TEXT NOT NULL,
    plan_id         TEXT NOT NULL,
    grants_json     TEXT NOT NULL,           -- the plan's grants frozen at order time
    amount_fen      BIGINT NOT NULL CHECK (amount_fen > 0),
    currency        TEXT NOT NULL,
    provider        TEXT NOT NULL,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'partially_refunded', 'refunded', 'closed')),
    payment_json    TEXT,                    -- what the buyer's client needs (code_url, …); no personal data
    late_payment    BIGINT NOT NULL DEFAULT 0,
    refunded_fen    BIGINT NOT NULL DEFAULT 0,
    expires_at      BIGINT NOT NULL,
    paid_at         BIGINT,
    closed_at       BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX payment_order_status_created ON payment_order (status, created_at);
CREATE INDEX payment_order_employer ON payment_order (employer_id);

CREATE TABLE payment (
    payment_id      TEXT PRIMARY KEY,
    order_no        TEXT NOT NULL REFERENCES payment_order (order_no),
    provider        TEXT NOT NULL,
    provider_txn_id TEXT NOT NULL,
    amount_fen      BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    trade_type      TEXT,
    bank_type       TEXT,
    source          TEXT NOT NULL,           -- notification | query | reconciliation
    paid_at         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    CONSTRAINT payment_order_unique UNIQUE (order_no),
    CONSTRAINT payment_provider_txn_unique UNIQUE (provider, provider_txn_id)
);

CREATE TABLE entitlement (
    entitlement_id  TEXT PRIMARY KEY,
    employer_id     TEXT NOT NULL,
    order_no        TEXT NOT NULL REFERENCES payment_order (order_no),
    plan_id         TEXT NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('view', 'download')),
    quota           BIGINT,                  -- NULL = unlimited
    used            BIGINT NOT NULL DEFAULT 0,
    status          TEXT NOT NULL CHECK (status IN ('active', 'expired', 'revoked')),
    valid_from      BIGINT NOT NULL,
    valid_until     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CONSTRAINT entitlement_order_action_unique UNIQUE (order_no, action)
);
CREATE INDEX entitlement_employer_action ON entitlement (employer_id, action, status, valid_until);

-- One row per (entitlement, résumé, action): the same résumé again consumes nothing.
CREATE TABLE resume_access (
    entitlement_id  TEXT NOT NULL REFERENCES entitlement (entitlement_id),
    resume_id       TEXT NOT NULL,
    action          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (entitlement_id, resume_id, action)
);

-- Append-only: every grant, consumption and revocation.
CREATE TABLE entitlement_audit (
    entitlement_audit_id BIGSERIAL PRIMARY KEY,
    entitlement_id  TEXT NOT NULL,
    kind            TEXT NOT NULL,           -- granted | consumed | revoked | expired | reduced
    resume_id       TEXT,
    quota_delta     BIGINT NOT NULL DEFAULT 0,
    detail          TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX entitlement_audit_entitlement ON entitlement_audit (entitlement_id);

-- Outbox. event_id comes from event_counter inside the writing transaction, so ids are gap-free
-- and appear in commit order: a feed reader paging with ?after= never skips a late commit.
CREATE TABLE event_counter (
    name            TEXT PRIMARY KEY,
    value           BIGINT NOT NULL
);
INSERT INTO event_counter (name, value) VALUES ('outbox', 0);

CREATE TABLE outbox_event (
    event_id        BIGINT PRIMARY KEY,
    event_type      TEXT NOT NULL,
    order_no        TEXT,
    payload_json    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL
);
CREATE INDEX outbox_event_undelivered ON outbox_event (delivered_at, next_attempt_at);

CREATE TABLE idempotency (
    api_key_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    response_status BIGINT,                  -- NULL while the first request is in flight
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    CONSTRAINT idempotency_pkey PRIMARY KEY (api_key_id, idempotency_key)
);
