-- One check value per master key id (HMAC-SHA256 of a fixed label under the key): a key file
-- whose key under a known id was damaged or replaced is refused before it seals anything.
CREATE TABLE master_key_checks (
    key_id      TEXT PRIMARY KEY,
    check_value BLOB NOT NULL,
    recorded_at INTEGER NOT NULL
);
