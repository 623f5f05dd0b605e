-- Issue 20 and 19: a transaction id the bill lists twice is a discrepancy of its own class,
-- `duplicate_remote`, which keeps both rows' amounts (`bill_amount_fen` the first row's,
-- `duplicate_amount_fen` the repeating row's); and a bill row without a merchant order number
-- (a payment that was never an order of paygate's) is staged and reported with no order_no.
-- SQLite cannot change a CHECK or a NOT NULL in place: both tables are rebuilt.
CREATE TABLE reconciliation_discrepancy_new (
    reconciliation_id     TEXT NOT NULL,
    seq                   BIGINT NOT NULL,
    class                 TEXT NOT NULL CHECK (class IN ('missing_local', 'missing_remote', 'amount_mismatch', 'status_mismatch', 'duplicate_remote')),
    kind                  TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    order_no              TEXT,                     -- NULL: the bill row names no merchant order
    provider_txn_id       TEXT,
    refund_no             TEXT,
    bill_amount_fen       BIGINT,
    local_amount_fen      BIGINT,
    bill_status           TEXT,
    local_status          TEXT,
    healed                BIGINT NOT NULL DEFAULT 0,
    note                  TEXT,
    duplicate_amount_fen  BIGINT,                   -- duplicate_remote: the repeating row's amount
    PRIMARY KEY (reconciliation_id, seq)
);
INSERT INTO reconciliation_discrepancy_new (reconciliation_id, seq, class, kind, order_no,
    provider_txn_id, refund_no, bill_amount_fen, local_amount_fen, bill_status, local_status,
    healed, note)
SELECT reconciliation_id, seq, class, kind, order_no, provider_txn_id, refund_no,
    bill_amount_fen, local_amount_fen, bill_status, local_status, healed, note
FROM reconciliation_discrepancy;
DROP TABLE reconciliation_discrepancy;
ALTER TABLE reconciliation_discrepancy_new RENAME TO reconciliation_discrepancy;

CREATE TABLE reconciliation_bill_row_new (
    run_key            TEXT NOT NULL,
    seq                BIGINT NOT NULL,
    kind               TEXT NOT NULL,
    order_no           TEXT,                        -- NULL: the bill row names no merchant order
    provider_txn_id    TEXT NOT NULL,
    refund_no          TEXT,
    amount_fen         BIGINT NOT NULL,
    status             TEXT NOT NULL,
    occurred_at        BIGINT NOT NULL,
    PRIMARY KEY (run_key, seq)
);
INSERT INTO reconciliation_bill_row_new
SELECT run_key, seq, kind, order_no, provider_txn_id, refund_no, amount_fen, status, occurred_at
FROM reconciliation_bill_row;
DROP TABLE reconciliation_bill_row;
ALTER TABLE reconciliation_bill_row_new RENAME TO reconciliation_bill_row;
CREATE INDEX reconciliation_bill_row_txn ON reconciliation_bill_row (run_key, kind, provider_txn_id);
CREATE INDEX reconciliation_bill_row_refund ON reconciliation_bill_row (run_key, kind, refund_no);
