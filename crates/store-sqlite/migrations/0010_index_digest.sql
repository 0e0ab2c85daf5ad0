-- The digest of the fingerprints a state's search index rows were last made from: a write
-- whose resources have the same digest leaves the rows alone without reading them. NULL (every
-- state before this migration, and a state whose current version is not indexed) means
-- "compare row by row".
ALTER TABLE states ADD COLUMN index_digest INTEGER;
