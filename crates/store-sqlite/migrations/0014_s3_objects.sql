-- Objects of the S3 endpoint (a bucket is a workspace). An object's bytes are either a blob
-- (sealed chunks, shared by every object copied from it) or a state's version: a Pulumi stack
-- file is its state's current version (version_no NULL), and a copy of it (`.bak`, a history
-- checkpoint, a backup) pins the version it copied, so those copies cost no bytes.
CREATE TABLE s3_blobs (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    size         INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE s3_chunks (
    id           TEXT PRIMARY KEY,
    blob_id      TEXT NOT NULL REFERENCES s3_blobs(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    key_id       TEXT NOT NULL,
    wrapped_key  BLOB NOT NULL,
    -- last, so reading a chunk's metadata never touches its overflow pages
    body         BLOB NOT NULL,
    UNIQUE (blob_id, seq)
);
CREATE INDEX s3_chunks_key ON s3_chunks(key_id);

CREATE TABLE s3_objects (
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    blob_id       TEXT REFERENCES s3_blobs(id),
    state_id      TEXT REFERENCES states(id) ON DELETE CASCADE,
    version_no    INTEGER,
    size          INTEGER NOT NULL,
    etag          TEXT NOT NULL,
    content_type  TEXT,
    meta          TEXT NOT NULL,
    last_modified INTEGER NOT NULL,
    written_by    TEXT NOT NULL,
    PRIMARY KEY (workspace_id, key),
    CHECK ((blob_id IS NULL) <> (state_id IS NULL))
);
CREATE INDEX s3_objects_blob ON s3_objects(blob_id);
CREATE INDEX s3_objects_state ON s3_objects(state_id, version_no);

CREATE TABLE s3_uploads (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    content_type TEXT,
    meta         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL
);
CREATE INDEX s3_uploads_key ON s3_uploads(workspace_id, key);

CREATE TABLE s3_upload_parts (
    upload_id TEXT NOT NULL REFERENCES s3_uploads(id) ON DELETE CASCADE,
    part_no   INTEGER NOT NULL,
    blob_id   TEXT NOT NULL REFERENCES s3_blobs(id),
    size      INTEGER NOT NULL,
    etag      TEXT NOT NULL,
    meta      TEXT NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_no)
);
CREATE INDEX s3_upload_parts_blob ON s3_upload_parts(blob_id);
