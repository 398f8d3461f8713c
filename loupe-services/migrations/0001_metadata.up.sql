-- Loupe metadata, first schema. One set of migrations serves SQLite and
-- PostgreSQL: only types both accept are used (BYTEA and DOUBLE PRECISION
-- are BLOB and REAL to SQLite), and one set of queries runs on both.
-- Conventions:
--   ids are TEXT (UUIDv7, time-ordered); times are BIGINT microseconds
--   since the Unix epoch, UTC; flags are SMALLINT 0/1; JSON documents are
--   TEXT; `revision` counts updates, for lost-update protection.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug        TEXT NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 100),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email          TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash  TEXT,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    disabled       SMALLINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    failed_logins  INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until   BIGINT,
    last_login_at  BIGINT,
    revision       BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (org_id, email)
);

-- One-time tokens: invitations and password resets, stored hashed.
CREATE TABLE user_tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('invite', 'reset')),
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX user_tokens_user ON user_tokens (user_id);

CREATE TABLE user_groups (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE datasources (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind               TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 50),
    options            TEXT NOT NULL,
    -- Secret options, encrypted as one document (AEAD, datasource id as
    -- associated data) under the operator key named by secret_key_id.
    secret_ciphertext  BYTEA,
    secret_nonce       BYTEA,
    secret_key_id      TEXT,
    secret_format      SMALLINT,
    paused             SMALLINT NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    revision           BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (org_id, name),
    CHECK ((secret_ciphertext IS NULL) = (secret_key_id IS NULL))
);

CREATE TABLE datasource_grants (
    group_id       TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    datasource_id  TEXT NOT NULL REFERENCES datasources (id) ON DELETE CASCADE,
    access         TEXT NOT NULL CHECK (access IN ('run', 'view')),
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (group_id, datasource_id)
);
CREATE INDEX datasource_grants_datasource ON datasource_grants (datasource_id);

-- A datasource that queries use cannot be deleted (RESTRICT): its queries
-- must be moved or deleted first, never silently.
CREATE TABLE queries (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    datasource_id    TEXT NOT NULL REFERENCES datasources (id) ON DELETE RESTRICT,
    owner_id         TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    current_version  INTEGER NOT NULL CHECK (current_version >= 1),
    sql              TEXT NOT NULL CHECK (length(sql) BETWEEN 1 AND 1048576),
    parameters       TEXT NOT NULL,
    shared           SMALLINT NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),
    archived         SMALLINT NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    revision         BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX queries_org_updated ON queries (org_id, updated_at);
CREATE INDEX queries_org_owner ON queries (org_id, owner_id);
CREATE INDEX queries_datasource ON queries (datasource_id);

CREATE TABLE query_tags (
    query_id  TEXT NOT NULL REFERENCES queries (id) ON DELETE CASCADE,
    tag       TEXT NOT NULL CHECK (length(tag) BETWEEN 1 AND 50),
    PRIMARY KEY (query_id, tag)
);
CREATE INDEX query_tags_tag ON query_tags (tag);

-- Every change of SQL or parameters keeps the version it replaced.
CREATE TABLE query_versions (
    query_id    TEXT NOT NULL REFERENCES queries (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version >= 1),
    sql         TEXT NOT NULL,
    parameters  TEXT NOT NULL,
    author_id   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (query_id, version)
);

-- Schedules keep a query from being deleted (RESTRICT): delete them first.
CREATE TABLE schedules (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    query_id     TEXT NOT NULL REFERENCES queries (id) ON DELETE RESTRICT,
    owner_id     TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    cron         TEXT NOT NULL CHECK (length(cron) BETWEEN 9 AND 200),
    timezone     TEXT NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
    parameters   TEXT NOT NULL,
    enabled      SMALLINT NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    next_run_at  BIGINT,
    last_run_at  BIGINT,
    last_status  TEXT CHECK (last_status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    revision     BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX schedules_due ON schedules (enabled, next_run_at);
CREATE INDEX schedules_query ON schedules (query_id);
CREATE INDEX schedules_org ON schedules (org_id, updated_at);

-- Runs are history: deleting their query deletes them (with their results,
-- which the service removes from the result store first).
CREATE TABLE runs (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    query_id         TEXT REFERENCES queries (id) ON DELETE CASCADE,
    query_version    INTEGER,
    datasource_id    TEXT NOT NULL REFERENCES datasources (id) ON DELETE CASCADE,
    sql              TEXT NOT NULL,
    parameters       TEXT NOT NULL,
    cache_key        TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    priority         SMALLINT NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    queued_at        BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    row_count        BIGINT CHECK (row_count >= 0),
    byte_count       BIGINT CHECK (byte_count >= 0),
    truncated        TEXT,
    result_location  TEXT,
    error_code       TEXT,
    error_message    TEXT,
    created_by       TEXT REFERENCES users (id) ON DELETE SET NULL,
    schedule_id      TEXT REFERENCES schedules (id) ON DELETE SET NULL,
    CHECK ((query_id IS NULL) = (query_version IS NULL))
);
CREATE INDEX runs_org_queued ON runs (org_id, queued_at);
CREATE INDEX runs_query_finished ON runs (query_id, finished_at);
CREATE INDEX runs_cache ON runs (cache_key, status);
CREATE INDEX runs_status ON runs (status, priority, queued_at);
CREATE INDEX runs_schedule ON runs (schedule_id);

CREATE TABLE visualizations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    query_id    TEXT NOT NULL REFERENCES queries (id) ON DELETE CASCADE,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    type        TEXT NOT NULL CHECK (type IN ('table', 'line', 'bar', 'area', 'scatter', 'pie', 'counter', 'pivot')),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    options     TEXT NOT NULL,
    revision    BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX visualizations_query ON visualizations (query_id);
CREATE INDEX visualizations_org ON visualizations (org_id, updated_at);

CREATE TABLE dashboards (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug        TEXT NOT NULL CHECK (length(slug) BETWEEN 1 AND 100),
    parameters  TEXT NOT NULL,
    shared      SMALLINT NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),
    revision    BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (org_id, slug)
);
CREATE INDEX dashboards_org ON dashboards (org_id, updated_at);

CREATE TABLE dashboard_tags (
    dashboard_id  TEXT NOT NULL REFERENCES dashboards (id) ON DELETE CASCADE,
    tag           TEXT NOT NULL CHECK (length(tag) BETWEEN 1 AND 50),
    PRIMARY KEY (dashboard_id, tag)
);
CREATE INDEX dashboard_tags_tag ON dashboard_tags (tag);

-- A widget shows a visualization or text. Deleting a visualization removes
-- the widgets that show it.
CREATE TABLE dashboard_widgets (
    id                  TEXT PRIMARY KEY,
    dashboard_id        TEXT NOT NULL REFERENCES dashboards (id) ON DELETE CASCADE,
    kind                TEXT NOT NULL CHECK (kind IN ('visualization', 'text')),
    visualization_id    TEXT REFERENCES visualizations (id) ON DELETE CASCADE,
    text                TEXT CHECK (length(text) <= 100000),
    x                   INTEGER NOT NULL CHECK (x >= 0),
    y                   INTEGER NOT NULL CHECK (y >= 0),
    w                   INTEGER NOT NULL CHECK (w BETWEEN 1 AND 24),
    h                   INTEGER NOT NULL CHECK (h BETWEEN 1 AND 1000),
    parameter_mappings  TEXT NOT NULL,
    position            INTEGER NOT NULL,
    CHECK ((kind = 'visualization' AND visualization_id IS NOT NULL AND text IS NULL)
        OR (kind = 'text' AND visualization_id IS NULL AND text IS NOT NULL)),
    CHECK (x + w <= 24)
);
CREATE INDEX dashboard_widgets_dashboard ON dashboard_widgets (dashboard_id);
CREATE INDEX dashboard_widgets_visualization ON dashboard_widgets (visualization_id);

CREATE TABLE canvases (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    shared      SMALLINT NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),
    revision    BIGINT NOT NULL DEFAULT 1 CHECK (revision >= 1),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX canvases_org ON canvases (org_id, updated_at);

-- Nodes point at what they show; a deleted target leaves the node with
-- no target (SET NULL), which the canvas shows as missing.
CREATE TABLE canvas_nodes (
    canvas_id         TEXT NOT NULL REFERENCES canvases (id) ON DELETE CASCADE,
    node_id           TEXT NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    kind              TEXT NOT NULL CHECK (kind IN ('text', 'query', 'visualization', 'dashboard')),
    text              TEXT CHECK (length(text) <= 100000),
    query_id          TEXT REFERENCES queries (id) ON DELETE SET NULL,
    visualization_id  TEXT REFERENCES visualizations (id) ON DELETE SET NULL,
    dashboard_id      TEXT REFERENCES dashboards (id) ON DELETE SET NULL,
    x                 DOUBLE PRECISION NOT NULL,
    y                 DOUBLE PRECISION NOT NULL,
    w                 DOUBLE PRECISION NOT NULL CHECK (w > 0),
    h                 DOUBLE PRECISION NOT NULL CHECK (h > 0),
    PRIMARY KEY (canvas_id, node_id)
);

CREATE TABLE canvas_edges (
    canvas_id  TEXT NOT NULL,
    edge_id    TEXT NOT NULL CHECK (length(edge_id) BETWEEN 1 AND 64),
    from_node  TEXT NOT NULL,
    to_node    TEXT NOT NULL,
    label      TEXT CHECK (length(label) <= 200),
    PRIMARY KEY (canvas_id, edge_id),
    FOREIGN KEY (canvas_id, from_node) REFERENCES canvas_nodes (canvas_id, node_id) ON DELETE CASCADE,
    FOREIGN KEY (canvas_id, to_node) REFERENCES canvas_nodes (canvas_id, node_id) ON DELETE CASCADE
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix        TEXT NOT NULL UNIQUE,
    key_hash      TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    last_used_at  BIGINT,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE refresh_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id    TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    replaced_by  TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Audit events outlive users and keys: actors are kept by id, unlinked.
CREATE TABLE audit_events (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    actor_user_id  TEXT,
    actor_key_id   TEXT,
    action         TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    resource_type  TEXT NOT NULL,
    resource_id    TEXT,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    ip             TEXT,
    detail         TEXT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX audit_events_org_time ON audit_events (org_id, created_at);
