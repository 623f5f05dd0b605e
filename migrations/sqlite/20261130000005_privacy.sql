-- Privacy (design.md §1, §10; issue 11). An erasure request names the employer only while it
-- is pending: carrying it out replaces the id everywhere, this row included, by the
-- pseudonym (HMAC-SHA256 under [privacy] pseudonym_key_file), which is known from the start so
-- that a request can be read and deduplicated without the id.
CREATE TABLE privacy_erasure (
    erasure_id      TEXT PRIMARY KEY,            -- era_…
    employer_id     TEXT,                        -- NULL once completed
    pseudonym       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'completed')),
    requested_at    BIGINT NOT NULL,
    due_by          BIGINT NOT NULL,             -- end of the 2nd working day (Asia/Shanghai)
    completed_at    BIGINT,
    CHECK ((status = 'pending') = (employer_id IS NOT NULL))
);
CREATE INDEX privacy_erasure_status ON privacy_erasure (status, requested_at);
CREATE INDEX privacy_erasure_employer ON privacy_erasure (employer_id);

-- One row per erased employer: the unique pseudonym makes `employer.erased` once however often
-- or concurrently the same id is erased, and tells settlement that a late payment belongs to
-- an erased account (nothing granted, refunded in full).
CREATE TABLE erased_employer (
    pseudonym       TEXT PRIMARY KEY,
    erasure_id      TEXT NOT NULL,
    erased_at       BIGINT NOT NULL
);

-- Retention deletes delivered events only as a prefix of the feed: every id up to this one is
-- gone, every later one is still there (GET /v1/events answers it as `starts_after`).
INSERT INTO event_counter (name, value) VALUES ('outbox_pruned_through', 0);

CREATE INDEX entitlement_audit_created ON entitlement_audit (created_at);
CREATE INDEX idempotency_created ON idempotency (created_at);
