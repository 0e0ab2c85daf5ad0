-- PostgreSQL backups: storage targets, notifiers, registered databases (health kept on the row),
-- per-workspace backup settings, backup runs (a queue claimed under leases), verifications,
-- health checks, and the job clock shared by every server process.
--
-- Public settings are JSON text, kept exactly as written. Secret settings are one sealed JSON
-- object per row: key_id, wrapped_key and secret are all set or all NULL.

CREATE TABLE backup_targets (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    settings     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    key_id       TEXT,
    wrapped_key  BLOB,
    secret       BLOB,
    CHECK ((key_id IS NULL) = (wrapped_key IS NULL) AND (key_id IS NULL) = (secret IS NULL))
);
CREATE UNIQUE INDEX backup_targets_name ON backup_targets(workspace_id, name);

CREATE TABLE notifiers (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    settings     TEXT NOT NULL,
    -- JSON array of event kinds / prefixes
    events       TEXT NOT NULL,
    -- JSON array of database ids; NULL: every database
    database_ids TEXT,
    enabled      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    key_id       TEXT,
    wrapped_key  BLOB,
    secret       BLOB,
    CHECK ((key_id IS NULL) = (wrapped_key IS NULL) AND (key_id IS NULL) = (secret IS NULL))
);
CREATE UNIQUE INDEX notifiers_name ON notifiers(workspace_id, name);

CREATE TABLE backup_databases (
    id                    TEXT PRIMARY KEY,
    workspace_id          TEXT NOT NULL REFERENCES workspaces(id),
    name                  TEXT NOT NULL,
    settings              TEXT NOT NULL,
    target_id             TEXT NOT NULL REFERENCES backup_targets(id),
    enabled               INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    key_id                TEXT,
    wrapped_key           BLOB,
    secret                BLOB,
    health_status         TEXT NOT NULL DEFAULT 'unknown',
    health_failures       INTEGER NOT NULL DEFAULT 0,
    health_changed_at     INTEGER,
    health_last_check_at  INTEGER,
    health_last_error     TEXT,
    CHECK ((key_id IS NULL) = (wrapped_key IS NULL) AND (key_id IS NULL) = (secret IS NULL))
);
CREATE UNIQUE INDEX backup_databases_name ON backup_databases(workspace_id, name);
CREATE INDEX backup_databases_target ON backup_databases(target_id);

-- One row per workspace that has backup settings.
CREATE TABLE workspace_backup_settings (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
    settings     TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    key_id       TEXT,
    wrapped_key  BLOB,
    secret       BLOB,
    CHECK ((key_id IS NULL) = (wrapped_key IS NULL) AND (key_id IS NULL) = (secret IS NULL))
);

CREATE TABLE backups (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id),
    database_id    TEXT NOT NULL REFERENCES backup_databases(id),
    db_name        TEXT,
    target_id      TEXT NOT NULL REFERENCES backup_targets(id),
    object         TEXT,
    status         TEXT NOT NULL,
    run_trigger    TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    requested_by   TEXT NOT NULL,
    queued_at      INTEGER NOT NULL,
    not_before     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    lease_owner    TEXT,
    lease_until    INTEGER,
    stored_bytes   INTEGER,
    dump_bytes     INTEGER,
    sha256         TEXT,
    server_version TEXT,
    error          TEXT,
    -- JSON text
    detail         TEXT NOT NULL,
    -- the latest verification (all NULL until one is recorded)
    verified_at    INTEGER,
    verify_level   TEXT,
    verify_ok      INTEGER
);
-- Claiming due runs, oldest first; finding runs whose worker died.
CREATE INDEX backups_queued ON backups(not_before) WHERE status = 'queued';
CREATE INDEX backups_running ON backups(lease_until) WHERE status = 'running';
-- Listings, newest first.
CREATE INDEX backups_workspace ON backups(workspace_id, queued_at, id);
CREATE INDEX backups_database ON backups(database_id, queued_at, id);
CREATE INDEX backups_target ON backups(target_id);

CREATE TABLE backup_verifications (
    id        TEXT PRIMARY KEY,
    backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
    at        INTEGER NOT NULL,
    level     TEXT NOT NULL,
    ok        INTEGER NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX backup_verifications_backup ON backup_verifications(backup_id, at);

CREATE TABLE health_checks (
    id          INTEGER PRIMARY KEY,
    database_id TEXT NOT NULL REFERENCES backup_databases(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    latency_ms  INTEGER,
    error       TEXT
);
CREATE INDEX health_checks_database ON health_checks(database_id, at);
-- Pruning by age across databases.
CREATE INDEX health_checks_at ON health_checks(at);

-- When each recurring job (`backup:<database id>`, `health:<database id>`, `self-backup`, …)
-- next runs; processes advance it by compare-and-set.
CREATE TABLE job_clock (
    name        TEXT PRIMARY KEY,
    next_run_at INTEGER NOT NULL
);
