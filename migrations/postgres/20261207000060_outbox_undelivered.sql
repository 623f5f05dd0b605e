-- The console's operations page names the oldest event not yet delivered. With every event
-- delivered, PostgreSQL walked the primary key through the whole feed looking for one (33 ms at
-- 300,000 events); this index holds only the undelivered ones, so the answer is one probe.
CREATE INDEX outbox_event_undelivered_id ON outbox_event (event_id) WHERE delivered_at IS NULL;
