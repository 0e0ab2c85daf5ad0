-- Lock queueing (`lock_wait`): LOCK requests waiting for a state's lock, first come first
-- served across replicas. A waiter heartbeats `seen_at` while its client waits; releasing the
-- lock hands it to the oldest waiter still seen recently, in the same transaction, with the
-- waiter's audit record and event (`journal`, a pending-journal row's text). `states.lock_queue_len`
-- counts a state's waiters, so that the one-statement release (the common case) applies only
-- while nobody waits.
CREATE TABLE lock_waiters (
    id           TEXT PRIMARY KEY,
    state_id     TEXT NOT NULL REFERENCES states(id) ON DELETE CASCADE,
    lock_id      TEXT NOT NULL,
    lock_info    TEXT NOT NULL,
    token_id     TEXT NOT NULL,
    holder       TEXT NOT NULL,
    enqueued_at  BIGINT NOT NULL,
    seen_at      BIGINT NOT NULL,
    journal      TEXT NOT NULL
);
CREATE INDEX lock_waiters_queue ON lock_waiters (state_id, enqueued_at, id);

ALTER TABLE states ADD COLUMN lock_queue_len BIGINT NOT NULL DEFAULT 0;

-- How long a LOCK waits for a held lock when its address has no `lock_wait` (NULL: not at all).
ALTER TABLE workspaces ADD COLUMN lock_wait_ms BIGINT;
