-- Workspace policies (version retention, stale-lock threshold), versions spared by retention,
-- and which lock was last flagged stale (so each lock raises `lock.stale` once).

ALTER TABLE workspaces ADD COLUMN keep_versions INTEGER;
ALTER TABLE workspaces ADD COLUMN keep_versions_for_ms INTEGER;
ALTER TABLE workspaces ADD COLUMN stale_lock_after_ms INTEGER DEFAULT 7200000;

ALTER TABLE state_versions ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;

ALTER TABLE states ADD COLUMN stale_flagged_lock_id TEXT;
-- Listing locked states and finding stale locks without scanning every state.
CREATE INDEX states_locked ON states(workspace_id, locked_at) WHERE lock_id IS NOT NULL;
