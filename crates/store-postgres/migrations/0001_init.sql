-- statehouse schema, PostgreSQL. Mirrors the SQLite schema: timestamps are Unix milliseconds
-- (UTC) in BIGINT, ids are UUID text. Tables are created unqualified, so they land in the first
-- schema of search_path (the configured schema, see PgSettings::schema).
-- Names use the "C" collation so they sort by bytes, as on SQLite, whatever the database locale.

CREATE TABLE instance_flags (
    name   TEXT PRIMARY KEY,
    set_at BIGINT NOT NULL
);

CREATE TABLE workspaces (
    id                TEXT PRIMARY KEY,
    name              TEXT COLLATE "C" NOT NULL,
    serial_protection BOOLEAN NOT NULL DEFAULT TRUE,
    created_at        BIGINT NOT NULL,
    CONSTRAINT workspaces_name_unique UNIQUE (name)
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    workspace_id TEXT REFERENCES workspaces(id),
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    CONSTRAINT tokens_secret_hash_unique UNIQUE (secret_hash)
);
CREATE INDEX tokens_workspace ON tokens(workspace_id);

CREATE TABLE states (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    name               TEXT COLLATE "C" NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    deleted_at         BIGINT,
    deleted_by         TEXT,
    current_version_id TEXT,
    overwrite_until    BIGINT,
    lock_id            TEXT,
    lock_info          TEXT,
    lock_token_id      TEXT,
    lock_holder        TEXT,
    locked_at          BIGINT
);
-- One live state per name; deleted ones keep their rows until purged.
CREATE UNIQUE INDEX states_live_name ON states(workspace_id, name) WHERE deleted_at IS NULL;
CREATE INDEX states_deleted ON states(workspace_id, deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE state_versions (
    id               TEXT PRIMARY KEY,
    state_id         TEXT NOT NULL REFERENCES states(id) ON DELETE CASCADE,
    version_no       BIGINT NOT NULL,
    serial           BIGINT NOT NULL,
    lineage          TEXT NOT NULL,
    md5              TEXT NOT NULL,
    size             BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    client_version   TEXT,
    forced           BOOLEAN NOT NULL DEFAULT FALSE,
    client_encrypted BOOLEAN NOT NULL DEFAULT FALSE,
    key_id           TEXT NOT NULL,
    wrapped_key      BYTEA NOT NULL,
    -- last, so reading metadata never touches the body's TOAST chunks
    body             BYTEA NOT NULL,
    CONSTRAINT state_versions_number UNIQUE (state_id, version_no)
);
-- Bodies are already compressed and encrypted: store them out of line without trying pglz.
ALTER TABLE state_versions ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX state_versions_key ON state_versions(key_id);
