ALTER TABLE organizations DROP COLUMN disabled;
