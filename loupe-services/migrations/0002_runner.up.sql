-- The run queue: leases, retries, cancellation and cache hits.
--
-- A runner claims a queued run by setting claimed_by, a fresh
-- attempt_token and lease_until, and keeps the lease alive while it works.
-- A run whose lease ran out is claimed again by another runner. Only the
-- holder of the current attempt_token can finish a run, so exactly one
-- result is committed per run however many attempts ran.

ALTER TABLE runs ADD COLUMN claimed_by TEXT;
ALTER TABLE runs ADD COLUMN attempt_token TEXT;
ALTER TABLE runs ADD COLUMN lease_until BIGINT;
-- A retried run waits in the queue until then (backoff).
ALTER TABLE runs ADD COLUMN not_before BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancel_requested SMALLINT NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1));
-- How many starts were answered with this run's result.
ALTER TABLE runs ADD COLUMN cache_hits INTEGER NOT NULL DEFAULT 0 CHECK (cache_hits >= 0);

CREATE INDEX runs_claim ON runs (status, not_before, priority, queued_at);
CREATE INDEX runs_datasource_status ON runs (datasource_id, status);
CREATE INDEX runs_creator_status ON runs (created_by, status);
