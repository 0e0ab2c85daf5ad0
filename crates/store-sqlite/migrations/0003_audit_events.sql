-- Audit log (hash chain), event stream, outgoing webhooks and their deliveries.

-- One row: the chain's anchors and the event counter. Appends update it in their transaction.
CREATE TABLE audit_chain (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq       INTEGER NOT NULL,
    last_hash      TEXT NOT NULL,
    pruned_seq     INTEGER NOT NULL,
    pruned_hash    TEXT NOT NULL,
    last_event_seq INTEGER NOT NULL
);
INSERT INTO audit_chain (id, last_seq, last_hash, pruned_seq, pruned_hash, last_event_seq)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0,
        '0000000000000000000000000000000000000000000000000000000000000000', 0);

CREATE TABLE audit_entries (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    token_id   TEXT,
    token_name TEXT,
    source_ip  TEXT,
    action     TEXT NOT NULL,
    workspace  TEXT,
    target     TEXT,
    outcome    TEXT NOT NULL,
    reason     TEXT,
    -- JSON text, hashed exactly as stored
    detail     TEXT,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
-- Every append pays for each index: time (retention, since/until) and workspace (workspace
-- admins' queries) only; actor/target filters scan in sequence order.
CREATE INDEX audit_entries_at ON audit_entries(at);
CREATE INDEX audit_entries_workspace ON audit_entries(workspace, seq);

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    workspace_id TEXT,
    workspace    TEXT,
    subject      TEXT,
    actor        TEXT NOT NULL,
    payload      TEXT NOT NULL
);
CREATE INDEX events_at ON events(at);
CREATE INDEX events_workspace ON events(workspace_id, seq);

CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    url          TEXT NOT NULL,
    -- JSON array of event kinds / prefixes
    events       TEXT NOT NULL,
    enabled      INTEGER NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    key_id       TEXT NOT NULL,
    wrapped_key  BLOB NOT NULL,
    secret       BLOB NOT NULL
);
CREATE INDEX webhooks_workspace ON webhooks(workspace_id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_seq        INTEGER,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    lease_owner      TEXT,
    lease_until      INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    delivered_at     INTEGER,
    redelivery_of    TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
