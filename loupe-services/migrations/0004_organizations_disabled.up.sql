-- The instance's operator can disable an organization (`loupe admin org
-- disable`): its users cannot sign in, and its access tokens, refresh
-- tokens and API keys are refused, until it is enabled again. Nothing of it
-- is deleted.
ALTER TABLE organizations ADD COLUMN disabled SMALLINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
