-- Puts `body` back at the end of each state_versions row. Migrations 0004 and 0005 appended
-- `resource_count` and `kept` after it, and SQLite keeps a row's columns in order, with a
-- large value spilling onto overflow pages: reading those two columns walked every overflow
-- page of the body, so each metadata read (a GET's state lookup, version lists) cost time
-- proportional to the state's size. The table is copied once into the right column order.
-- Nothing references state_versions, so dropping the old table touches no other rows.
CREATE TABLE state_versions_reordered (
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
    resource_count   INTEGER,
    kept             INTEGER NOT NULL DEFAULT 0,
    key_id           TEXT NOT NULL,
    wrapped_key      BLOB NOT NULL,
    -- last, so reading metadata never touches the body's overflow pages (a new column goes
    -- in with a copy like this one, never with ADD COLUMN)
    body             BLOB NOT NULL,
    UNIQUE (state_id, version_no)
);
INSERT INTO state_versions_reordered (id, state_id, version_no, serial, lineage, md5, size,
    created_at, created_by, client_version, forced, client_encrypted, resource_count, kept,
    key_id, wrapped_key, body)
SELECT id, state_id, version_no, serial, lineage, md5, size, created_at, created_by,
    client_version, forced, client_encrypted, resource_count, kept, key_id, wrapped_key, body
FROM state_versions;
DROP TABLE state_versions;
ALTER TABLE state_versions_reordered RENAME TO state_versions;
CREATE INDEX state_versions_key ON state_versions(key_id);
