-- A reconciliation in progress: written when it starts, deleted in the transaction that stores
-- its result (or when it fails). A row left behind is a run that died (a crash, a kill) with
-- its staged bill rows and discrepancy rows; the next reconciliation sweeps them.
CREATE TABLE reconciliation_work (
    reconciliation_id  TEXT PRIMARY KEY,
    started_at         BIGINT NOT NULL
);
