-- Journal entries of committed changes, waiting to be sealed into the audit chain and the event
-- stream (a change stores them in its own transaction; the journal writer seals them moments
-- later, in id order, and deletes them). `entry` is a JSON document (see core's store::pending).
CREATE TABLE journal_pending (
    id    INTEGER PRIMARY KEY,
    at    INTEGER NOT NULL,
    entry TEXT NOT NULL
);

-- Rows whose text held a NUL are stored with every text field escaped (see core's store::nul).
ALTER TABLE audit_entries ADD COLUMN nul_escaped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN nul_escaped INTEGER NOT NULL DEFAULT 0;
