-- Sharing without leaking: user attributes and row-level security, public
-- links, signed embedding, and API keys scoped to one query.

-- A user's attributes: a JSON object of name -> value (text, number,
-- boolean, or a list of them), set by admins. Grants bind them to locked
-- parameters and row filters; PostgreSQL datasources can pass them on as
-- transaction settings.
ALTER TABLE users ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';

-- What a grant restricts its members to (JSON): `saved_only`, `locked`
-- (parameter -> attribute) and `row_filters` (table -> expression).
-- '{}' restricts nothing.
ALTER TABLE datasource_grants ADD COLUMN rules TEXT NOT NULL DEFAULT '{}';

-- Whether runs on the datasource carry the caller's attributes as
-- transaction-local settings (`loupe.user.<name>`), for the database's own
-- row-level security policies.
ALTER TABLE datasources ADD COLUMN user_settings SMALLINT NOT NULL DEFAULT 0 CHECK (user_settings IN (0, 1));
-- The key that signs those settings (`loupe.signature.<name>`), so that a
-- caller's own SQL cannot change them unnoticed: the database checks the
-- signature with the same key. Sealed with `settings-key:<id>`.
ALTER TABLE datasources ADD COLUMN settings_key TEXT;

-- The restrictions a run ran under. `context` is '' for an unrestricted
-- run, else a digest of the restrictions and the attribute values they
-- used: a restricted caller sees, joins and reuses only runs of the same
-- context. `restrictions` is what the runner hands the datasource (JSON:
-- settings and row filters), NULL when there are none.
ALTER TABLE runs ADD COLUMN context TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN restrictions TEXT;

-- Public links to a dashboard, a visualization or a saved query. The token
-- is shown once and stored as its SHA-256. A link acts with its sharer's
-- access; it serves stored results no older than `max_age_secs` and queues
-- at most one refresh per result and `refresh_secs`. `parameters` are the
-- fixed values; `options` the values a viewer may choose among, per
-- parameter (JSON).
CREATE TABLE shares (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('dashboard', 'visualization', 'query')),
    object_id       TEXT NOT NULL,
    token_hash      TEXT NOT NULL UNIQUE,
    created_by      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parameters      TEXT NOT NULL DEFAULT '{}',
    options         TEXT NOT NULL DEFAULT '{}',
    max_age_secs    BIGINT NOT NULL CHECK (max_age_secs > 0),
    expires_at      BIGINT,
    revoked_at      BIGINT,
    views           BIGINT NOT NULL DEFAULT 0 CHECK (views >= 0),
    last_viewed_at  BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX shares_object ON shares (org_id, kind, object_id);

-- When anonymous or embedded traffic last queued a refresh of a result:
-- `via` is a share's id or an embedding target, `cache_key` the run's. A
-- refresh is queued only by the request that moves `queued_at` forward.
CREATE TABLE share_refreshes (
    via        TEXT NOT NULL,
    cache_key  TEXT NOT NULL,
    queued_at  BIGINT NOT NULL,
    PRIMARY KEY (via, cache_key)
);

-- An organization's secrets for signing embedding tokens, sealed with
-- `embedding:<id>` as associated data. At most two are active (not
-- retired) at once, so a host application can move to a new one before the
-- old one stops working.
CREATE TABLE embedding_secrets (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    secret      TEXT NOT NULL,
    created_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
CREATE INDEX embedding_secrets_org ON embedding_secrets (org_id, created_at);

-- An API key may be scoped to one saved query: it then reads only that
-- query's latest results. (No foreign key, so that SQLite can drop the
-- column again: a key whose query is gone reads nothing.)
ALTER TABLE api_keys ADD COLUMN query_id TEXT;
