-- Daily reconciliation (design.md §10). One run per (provider, bill date): re-running a date
-- replaces its run and discrepancies in one transaction. Bill rows are staged per run while it
-- is computed (so memory stays flat in the bill's size) and dropped when it ends.
CREATE TABLE reconciliation_run (
    reconciliation_id  TEXT PRIMARY KEY,            -- rec_…
    provider           TEXT NOT NULL,
    bill_date          TEXT NOT NULL,               -- YYYY-MM-DD, an Asia/Shanghai day
    status             TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
    failure            TEXT,                        -- why a run failed: bill_not_ready, …
    summary_json       TEXT NOT NULL,               -- counts and totals per class, bill and local totals
    started_at         BIGINT NOT NULL,
    finished_at        BIGINT NOT NULL,
    CONSTRAINT reconciliation_run_date_unique UNIQUE (provider, bill_date)
);

CREATE TABLE reconciliation_discrepancy (
    reconciliation_id  TEXT NOT NULL,               -- its run (written first, the run row last)
    seq                BIGINT NOT NULL,
    class              TEXT NOT NULL CHECK (class IN ('missing_local', 'missing_remote', 'amount_mismatch', 'status_mismatch')),
    kind               TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    order_no           TEXT NOT NULL,
    provider_txn_id    TEXT,
    refund_no          TEXT,
    bill_amount_fen    BIGINT,
    local_amount_fen   BIGINT,
    bill_status        TEXT,
    local_status       TEXT,
    healed             BIGINT NOT NULL DEFAULT 0,   -- missing_local settled or recorded by this run
    note               TEXT,
    PRIMARY KEY (reconciliation_id, seq)
);

CREATE TABLE reconciliation_bill_row (
    run_key            TEXT NOT NULL,               -- the run being computed
    seq                BIGINT NOT NULL,
    kind               TEXT NOT NULL,               -- payment | refund
    order_no           TEXT NOT NULL,
    provider_txn_id    TEXT NOT NULL,
    refund_no          TEXT,
    amount_fen         BIGINT NOT NULL,
    status             TEXT NOT NULL,
    occurred_at        BIGINT NOT NULL,
    PRIMARY KEY (run_key, seq)
);
CREATE INDEX reconciliation_bill_row_txn ON reconciliation_bill_row (run_key, kind, provider_txn_id);
CREATE INDEX reconciliation_bill_row_refund ON reconciliation_bill_row (run_key, kind, refund_no);

CREATE INDEX payment_provider_paid_at ON payment (provider, paid_at);
CREATE INDEX refund_provider_succeeded_at ON refund (provider, succeeded_at);
