-- Sign-in back-off per account and source address, in place of the
-- account lock. A lock that anyone could set with a few wrong passwords
-- was a way to keep any account (the admin's too) out, and its different
-- answer told which emails have accounts. Failures now slow down only the
-- address they come from: after a threshold of failures in a row, that
-- address waits an increasing, capped delay before its next attempt for
-- the account is even checked; the user signs in from elsewhere as usual.
CREATE TABLE login_backoffs (
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The client address the failures came from (`unknown` without one).
    source           TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
    failures         BIGINT NOT NULL CHECK (failures >= 1),
    last_failure_at  BIGINT NOT NULL,
    -- No attempt from this source is checked before then.
    blocked_until    BIGINT,
    PRIMARY KEY (user_id, source)
);

ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN failed_logins;
