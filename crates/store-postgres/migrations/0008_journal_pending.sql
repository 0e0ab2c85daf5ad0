-- Journal entries of committed changes, waiting to be sealed into the audit chain and the event
-- stream (a change stores them in its own transaction; the journal writer seals them moments
-- later, in id order, and deletes them). `entry` is a JSON document (see core's store::pending).
CREATE TABLE journal_pending (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at    BIGINT NOT NULL,
    entry TEXT NOT NULL
);

-- Rows whose text held a NUL are stored with every text field escaped (see core's store::nul).
ALTER TABLE audit_entries ADD COLUMN nul_escaped BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE events ADD COLUMN nul_escaped BOOLEAN NOT NULL DEFAULT FALSE;
