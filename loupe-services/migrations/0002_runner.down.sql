DROP INDEX runs_creator_status;
DROP INDEX runs_datasource_status;
DROP INDEX runs_claim;
ALTER TABLE runs DROP COLUMN cache_hits;
ALTER TABLE runs DROP COLUMN cancel_requested;
ALTER TABLE runs DROP COLUMN not_before;
ALTER TABLE runs DROP COLUMN lease_until;
ALTER TABLE runs DROP COLUMN attempt_token;
ALTER TABLE runs DROP COLUMN claimed_by;
