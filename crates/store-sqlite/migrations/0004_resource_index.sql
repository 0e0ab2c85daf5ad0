-- The resource search index: one row per resource instance of each state's current version,
-- replaced inside the transaction that writes the version. Text compares byte-wise (BINARY),
-- so a prefix is a range scan. Every search index ends in the rowid (`id`), which orders hits
-- and makes cursors exact.

ALTER TABLE state_versions ADD COLUMN resource_count INTEGER;

CREATE TABLE resource_index (
    id                  INTEGER PRIMARY KEY,
    state_id            TEXT NOT NULL REFERENCES states(id) ON DELETE CASCADE,
    address             TEXT NOT NULL,
    mode                TEXT NOT NULL,
    type                TEXT NOT NULL,
    name                TEXT NOT NULL,
    module              TEXT NOT NULL,
    provider            TEXT NOT NULL,
    index_key           TEXT,
    attr_id             TEXT,
    attr_arn            TEXT,
    attr_name           TEXT,
    attr_self_link      TEXT,
    -- digest of the fields above: a write rewrites only the rows whose digest changed
    fingerprint         INTEGER NOT NULL,
    appeared_version_no INTEGER NOT NULL,
    appeared_at         INTEGER NOT NULL
);
CREATE INDEX resource_index_state ON resource_index(state_id);
CREATE INDEX resource_index_type ON resource_index(type);
CREATE INDEX resource_index_name ON resource_index(name);
CREATE INDEX resource_index_module ON resource_index(module);
CREATE INDEX resource_index_provider ON resource_index(provider);
CREATE INDEX resource_index_attr_id ON resource_index(attr_id) WHERE attr_id IS NOT NULL;
CREATE INDEX resource_index_attr_arn ON resource_index(attr_arn) WHERE attr_arn IS NOT NULL;
CREATE INDEX resource_index_attr_name ON resource_index(attr_name) WHERE attr_name IS NOT NULL;
CREATE INDEX resource_index_attr_self_link ON resource_index(attr_self_link) WHERE attr_self_link IS NOT NULL;

-- States whose current version has no index rows, and why.
CREATE TABLE resource_index_missing (
    state_id TEXT PRIMARY KEY REFERENCES states(id) ON DELETE CASCADE,
    reason   TEXT NOT NULL
);
-- States written before this migration are indexed by their next write; until then search
-- says they are missing.
INSERT INTO resource_index_missing (state_id, reason)
SELECT s.id, CASE WHEN v.client_encrypted THEN 'client-encrypted' ELSE 'written-before-index' END
FROM states s JOIN state_versions v ON v.id = s.current_version_id;
