-- A payment is looked up by (provider, provider_txn_id) on every callback: that lookup must fit
-- only the unique index. Beside it, (provider, paid_at) fitted the same `provider = $1` prefix,
-- and PostgreSQL's generic plan of the prepared lookup, made while the table's statistics still
-- said it was nearly empty, chose it and filtered on provider_txn_id: each duplicate callback
-- then read every payment of the provider (seen under load: 10 k/s → 1.9 k/s once a few
-- thousand payments existed; the plan lasts until the next ANALYZE). Reconciliation reads a
-- day's payments in (paid_at, payment_id) order, which this index gives directly, the provider
-- checked per row.
DROP INDEX payment_provider_paid_at;
CREATE INDEX payment_paid_at ON payment (paid_at, payment_id);
