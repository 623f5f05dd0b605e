-- Issue 21's alerts: when each job last succeeded, whichever instance ran it. Kept on the lease
-- row (one per job) so `/metrics` reads it at every scrape without scanning `job_run`, which
-- grows by a row per run. Filled from the runs already recorded (an outcome that is not the
-- error object `{"error": …}` is a success), so an upgrade does not look like jobs that never ran.
ALTER TABLE job_lease ADD COLUMN last_success_at BIGINT;

UPDATE job_lease SET last_success_at = (
    SELECT MAX(r.finished_at) FROM job_run r
    WHERE r.job = job_lease.job AND r.finished_at IS NOT NULL
      AND r.outcome IS NOT NULL AND r.outcome NOT LIKE '{"error"%'
);
