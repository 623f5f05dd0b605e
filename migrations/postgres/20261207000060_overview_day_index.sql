-- The console's overview sums a month of payments and refunds per Beijing day and provider
-- (issue 21). Over (paid_at, …) the rows came in time order but grouped by a computed day, so
-- SQLite sorted every row of the month into a temporary B-tree before summing (~45 of the
-- first view's 55 ms at 90,000 payments). An index on the day itself, in the exact form the
-- statement groups and filters by (store/overview.rs), gives the groups already in order and
-- the sums read the index only (the time column is in it too: a plan reads an expression from
-- the index only when the columns it is computed from are there). The day comes first, never the provider: see
-- 20261130000006 for what a (provider, …) prefix did to the callback's lookup. Refunds are
-- summed when succeeded, so their index starts with the status: as a partial index on
-- `status = 'succeeded'` it lost to refund_processing (status, next_query_at), whose equality
-- on the status the planner preferred, and the sums sorted again (the test in
-- store/overview.rs saw it).
--
-- The covering columns 20261207000050 added to payment_paid_at did not help the sum and cost
-- every settlement's insert; reconciliation's day walk needs only (paid_at, payment_id).
DROP INDEX payment_paid_at;
CREATE INDEX payment_paid_at ON payment (paid_at, payment_id);
CREATE INDEX payment_day ON payment (((paid_at + 28800000) / 86400000), provider) INCLUDE (amount_fen, paid_at);
CREATE INDEX refund_day
    ON refund (status, ((succeeded_at + 28800000) / 86400000), provider) INCLUDE (amount_fen, succeeded_at);
