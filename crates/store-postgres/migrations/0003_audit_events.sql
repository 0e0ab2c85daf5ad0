-- Audit log (hash chain), event stream, outgoing webhooks and their deliveries.

-- One row: the chain's anchors and the event counter. Appends update it in their transaction.
CREATE TABLE audit_chain (
    id             SMALLINT PRIMARY KEY CHECK (id = 1),
    last_seq       BIGINT NOT NULL,
    last_hash      TEXT NOT NULL,
    pruned_seq     BIGINT NOT NULL,
    pruned_hash    TEXT NOT NULL,
    last_event_seq BIGINT NOT NULL
);
INSERT INTO audit_chain (id, last_seq, last_hash, pruned_seq, pruned_hash, last_event_seq)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0,
        '0000000000000000000000000000000000000000000000000000000000000000', 0);

CREATE TABLE audit_entries (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
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
    seq          BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
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
    enabled      BOOLEAN NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    key_id       TEXT NOT NULL,
    wrapped_key  BYTEA NOT NULL,
    secret       BYTEA NOT NULL
);
CREATE INDEX webhooks_workspace ON webhooks(workspace_id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_seq        BIGINT,
    kind             TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    delivered_at     BIGINT,
    redelivery_of    TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
