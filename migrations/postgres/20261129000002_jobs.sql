-- Jobs (design.md §10). Several instances may share one database; each scheduled run of a job
-- is taken by one of them through its lease row: the holder, until when it holds it, a fencing
-- counter bumped on every take, and the last slot (scheduled time) taken, so a slot runs once.
CREATE TABLE job_lease (
    job             TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,
    expires_at      BIGINT NOT NULL,
    fence           BIGINT NOT NULL,
    last_slot       BIGINT NOT NULL
);

-- One row per run that was taken: which instance ran which slot, and what it did.
CREATE TABLE job_run (
    job             TEXT NOT NULL,
    slot            BIGINT NOT NULL,
    holder          TEXT NOT NULL,
    fence           BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    outcome         TEXT,                    -- JSON counts, or the error
    PRIMARY KEY (job, slot)
);

CREATE INDEX payment_order_status_expires ON payment_order (status, expires_at);
CREATE INDEX entitlement_status_valid_until ON entitlement (status, valid_until);
