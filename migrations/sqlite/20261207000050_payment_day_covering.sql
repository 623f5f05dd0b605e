-- The console's overview sums a month of payments per Beijing day and provider (issue 21). The
-- day index (paid_at, payment_id) gave the rows in order but each sum then read the table row
-- for its provider and amount; with both at the end of the same index the sums read the index
-- only. Still no index with provider first (see 20261130000006): the callback's lookup by
-- (provider, provider_txn_id) keeps the unique index to itself.
DROP INDEX payment_paid_at;
CREATE INDEX payment_paid_at ON payment (paid_at, payment_id, provider, amount_fen);
