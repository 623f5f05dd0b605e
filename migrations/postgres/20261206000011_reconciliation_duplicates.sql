-- Issue 20 and 19: a transaction id the bill lists twice is a discrepancy of its own class,
-- `duplicate_remote`, which keeps both rows' amounts (`bill_amount_fen` the first row's,
-- `duplicate_amount_fen` the repeating row's); and a bill row without a merchant order number
-- (a payment that was never an order of paygate's) is staged and reported with no order_no.
ALTER TABLE reconciliation_discrepancy DROP CONSTRAINT reconciliation_discrepancy_class_check;
ALTER TABLE reconciliation_discrepancy ADD CONSTRAINT reconciliation_discrepancy_class_check
    CHECK (class IN ('missing_local', 'missing_remote', 'amount_mismatch', 'status_mismatch', 'duplicate_remote'));
ALTER TABLE reconciliation_discrepancy ALTER COLUMN order_no DROP NOT NULL;
ALTER TABLE reconciliation_discrepancy ADD COLUMN duplicate_amount_fen BIGINT;
ALTER TABLE reconciliation_bill_row ALTER COLUMN order_no DROP NOT NULL;
