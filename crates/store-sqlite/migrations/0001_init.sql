-- statehouse schema, SQLite. Timestamps are Unix milliseconds (UTC); ids are UUID text.

CREATE TABLE instance_flags (
    name   TEXT PRIMARY KEY,
    set_at INTEGER NOT NULL
);

CREATE TABLE workspaces (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    serial_protection INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    workspace_id TEXT REFERENCES workspaces(id),
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE states (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    name               TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    deleted_at         INTEGER,
    deleted_by         TEXT,
    current_version_id TEXT,
    overwrite_until    INTEGER,
    lock_id            TEXT,
    lock_info          TEXT,
    lock_token_id      TEXT,
    lock_holder        TEXT,
    locked_at          INTEGER
);
-- One live state per name; deleted ones keep their rows until purged.
CREATE UNIQUE INDEX states_live_name ON states(workspace_id, name) WHERE deleted_at IS NULL;

CREATE TABLE state_versions (
    id               TEXT PRIMARY KEY,
    state_id         TEXT NOT NULL REFERENCES states(id) ON DELETE CASCADE,
    version_no       INTEGER NOT NULL,
    serial           INTEGER NOT NULL,
    lineage          TEXT NOT NULL,
    md5              TEXT NOT NULL,
    size             INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    client_version   TEXT,
    forced           INTEGER NOT NULL DEFAULT 0,
    client_encrypted INTEGER NOT NULL DEFAULT 0,
    key_id           TEXT NOT NULL,
    wrapped_key      BLOB NOT NULL,
    -- last, so reading metadata never touches the body's overflow pages
    body             BLOB NOT NULL,
    UNIQUE (state_id, version_no)
);
CREATE INDEX state_versions_key ON state_versions(key_id);
