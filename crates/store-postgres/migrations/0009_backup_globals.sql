-- Whole-server backups also store the server's globals (roles, memberships, tablespaces):
-- a run is either one database's dump or those globals, and every run of one whole-server run
-- shares its `server_run` id, so the whole server can be restored from them.
ALTER TABLE backups ADD COLUMN kind TEXT NOT NULL DEFAULT 'database';
ALTER TABLE backups ADD COLUMN server_run TEXT;
CREATE INDEX backups_server_run ON backups(server_run) WHERE server_run IS NOT NULL;
