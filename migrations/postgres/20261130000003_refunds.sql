-- Refunds (design.md §4–§6). A refund paygate starts is `processing` from before the provider
-- hears of it until the provider says it went back (`succeeded`) or will not (`failed`); a
-- refund made at the merchant portal is learned from a notification or a query
-- (origin = 'provider'). Money: integer fen; times: epoch milliseconds (UTC).
CREATE TABLE refund (
    refund_id          TEXT PRIMARY KEY,            -- paygate's RF… number
    order_no           TEXT NOT NULL REFERENCES payment_order (order_no),
    provider           TEXT NOT NULL,
    out_refund_no      TEXT NOT NULL,               -- the number the provider knows it by
    provider_refund_id TEXT,                        -- WeChat's refund_id
    amount_fen         BIGINT NOT NULL CHECK (amount_fen > 0),
    currency           TEXT NOT NULL,
    reason             TEXT,                        -- neutral text shown to the buyer
    status             TEXT NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed')),
    origin             TEXT NOT NULL CHECK (origin IN ('paygate', 'provider')),
    failure            TEXT,                        -- closed | abnormal | refused:<code>
    next_query_at      BIGINT,                      -- processing: when the refund job asks next
    query_attempts     BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    succeeded_at       BIGINT,
    failed_at          BIGINT,
    CONSTRAINT refund_out_refund_no_unique UNIQUE (provider, out_refund_no)
);
CREATE INDEX refund_order ON refund (order_no);
CREATE INDEX refund_processing ON refund (status, next_query_at);

-- What paygate's refunds still in flight hold back from the refundable amount: reserved in
-- the transaction that creates the refund row, released when it succeeds or fails, so that
-- concurrent refunds can never together exceed the payment.
ALTER TABLE payment_order ADD COLUMN refund_pending_fen BIGINT NOT NULL DEFAULT 0;
