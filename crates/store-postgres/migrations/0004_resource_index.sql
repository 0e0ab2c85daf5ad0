-- The resource search index: one row per resource instance of each state's current version,
-- replaced inside the transaction that writes the version. Text columns use the "C" collation
-- (byte order), so a prefix is a B-tree range scan. Every search index ends in `id`, which
-- orders hits and makes cursors exact.

ALTER TABLE state_versions ADD COLUMN resource_count BIGINT;

CREATE TABLE resource_index (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state_id            TEXT NOT NULL REFERENCES states(id) ON DELETE CASCADE,
    address             TEXT NOT NULL,
    mode                TEXT COLLATE "C" NOT NULL,
    type                TEXT COLLATE "C" NOT NULL,
    name                TEXT COLLATE "C" NOT NULL,
    module              TEXT COLLATE "C" NOT NULL,
    provider            TEXT COLLATE "C" NOT NULL,
    index_key           TEXT,
    attr_id             TEXT COLLATE "C",
    attr_arn            TEXT COLLATE "C",
    attr_name           TEXT COLLATE "C",
    attr_self_link      TEXT COLLATE "C",
    -- digest of the fields above: a write rewrites only the rows whose digest changed
    fingerprint         BIGINT NOT NULL,
    appeared_version_no BIGINT NOT NULL,
    appeared_at         BIGINT NOT NULL
);
CREATE INDEX resource_index_state ON resource_index(state_id);
CREATE INDEX resource_index_type ON resource_index(type, id);
CREATE INDEX resource_index_name ON resource_index(name, id);
CREATE INDEX resource_index_module ON resource_index(module, id);
CREATE INDEX resource_index_provider ON resource_index(provider, id);
CREATE INDEX resource_index_attr_id ON resource_index(attr_id, id) WHERE attr_id IS NOT NULL;
CREATE INDEX resource_index_attr_arn ON resource_index(attr_arn, id) WHERE attr_arn IS NOT NULL;
CREATE INDEX resource_index_attr_name ON resource_index(attr_name, id) WHERE attr_name IS NOT NULL;
CREATE INDEX resource_index_attr_self_link ON resource_index(attr_self_link, id) WHERE attr_self_link IS NOT NULL;

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
