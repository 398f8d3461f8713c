-- Results that leave Loupe: destinations, alerts, subscriptions, and the
-- delivery log.
--
-- Exactly one delivery per alert transition and per subscription
-- occurrence, however many schedulers and runners there are: an alert's
-- state moves by compare-and-set on its `evaluations` counter, in the same
-- transaction that queues the transition's deliveries; a subscription's
-- occurrence is taken by compare-and-set on `next_run_at`, in the same
-- transaction that records the firing, and a firing turns into deliveries
-- once (its status moves from 'waiting' by compare-and-set). Unique keys
-- back both up.

-- Where notifications go. Settings are JSON (`kind` inside); secrets are
-- sealed with the destination's id as associated data.
CREATE TABLE destinations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind        TEXT NOT NULL CHECK (kind IN ('email', 'webhook', 'slack')),
    settings    TEXT NOT NULL,
    secrets     TEXT,
    created_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    revision    BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- A condition on a saved query's result, for fixed parameter values.
CREATE TABLE alerts (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id          TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    query_id          TEXT NOT NULL REFERENCES queries (id) ON DELETE CASCADE,
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    parameters        TEXT NOT NULL,
    condition         TEXT NOT NULL,
    destinations      TEXT NOT NULL,
    renotify_secs     BIGINT CHECK (renotify_secs IS NULL OR renotify_secs > 0),
    muted_until       BIGINT,
    enabled           SMALLINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    state             TEXT NOT NULL DEFAULT 'unknown' CHECK (state IN ('ok', 'triggered', 'unknown')),
    -- How many runs it was evaluated on: the compare-and-set counter.
    evaluations       BIGINT NOT NULL DEFAULT 0 CHECK (evaluations >= 0),
    last_run_id       TEXT,
    last_run_queued_at BIGINT,
    -- The value the last evaluation found (JSON), for `change` conditions
    -- and for the notification.
    last_value        TEXT,
    last_evaluated_at BIGINT,
    last_notified_at  BIGINT,
    revision          BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX alerts_query ON alerts (query_id, enabled);
CREATE INDEX alerts_org ON alerts (org_id, updated_at);

-- A schedule that delivers a query's result, a visualization or a
-- dashboard to destinations.
CREATE TABLE subscriptions (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id        TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    target_kind     TEXT NOT NULL CHECK (target_kind IN ('query', 'visualization', 'dashboard')),
    target_id       TEXT NOT NULL,
    cron            TEXT NOT NULL CHECK (length(cron) BETWEEN 9 AND 200),
    timezone        TEXT NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    parameters      TEXT NOT NULL,
    attachment      TEXT CHECK (attachment IS NULL OR attachment IN ('csv', 'xlsx', 'parquet')),
    destinations    TEXT NOT NULL,
    enabled         SMALLINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    next_run_at     BIGINT,
    last_run_at     BIGINT,
    -- Consecutive occurrences that failed; the owner hears of the first.
    failure_streak  BIGINT NOT NULL DEFAULT 0 CHECK (failure_streak >= 0),
    revision        BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX subscriptions_due ON subscriptions (enabled, next_run_at);
CREATE INDEX subscriptions_org ON subscriptions (org_id, updated_at);

-- One occurrence of a subscription: the runs it queued, until they end.
CREATE TABLE subscription_firings (
    id               TEXT PRIMARY KEY,
    subscription_id  TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    occurrence       BIGINT NOT NULL,
    runs             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('waiting', 'done')),
    created_at       BIGINT NOT NULL,
    UNIQUE (subscription_id, occurrence)
);
CREATE INDEX subscription_firings_waiting ON subscription_firings (status, created_at);

-- Every notification: what it is about, where it goes, each attempt.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    destination_id   TEXT REFERENCES destinations (id) ON DELETE SET NULL,
    -- What it is: an alert transition, a subscription occurrence, a
    -- subscription's failure notice, or a destination's test message.
    source_kind      TEXT NOT NULL CHECK (source_kind IN ('alert', 'subscription', 'failure', 'test')),
    source_id        TEXT NOT NULL,
    -- The alert's evaluation count or the subscription's occurrence (µs):
    -- with source and destination, what makes a delivery unique.
    occurrence       BIGINT NOT NULL,
    -- What to say (JSON): the alert's transition and value, the runs of a
    -- subscription's occurrence.
    content          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Each attempt's time and outcome (JSON array).
    attempt_log      TEXT NOT NULL DEFAULT '[]',
    last_error       TEXT,
    next_attempt_at  BIGINT NOT NULL,
    claimed_by       TEXT,
    lease_until      BIGINT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (source_kind, source_id, occurrence, destination_id)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_org ON deliveries (org_id, created_at);
CREATE INDEX deliveries_source ON deliveries (source_id, created_at);
