//! State locks: taking, releasing, force-unlocking, and flagging stale ones.
//!
//! LOCK and UNLOCK are the hottest statements: the common case (a free lock taken, a held lock
//! released by its holder) is one UPDATE, its journal entries stored in the same transaction.
//! On PostgreSQL that is one statement (the UPDATE and the journal INSERT in one CTE, one round
//! trip, committed on its own); SQLite has no data-modifying CTEs, but its write transaction is
//! local and cheap. Everything else — a missing state, a retried LOCK, a conflict — is decided
//! by [`rules`] in a transaction on the state row read for update.

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::clock::Timestamp;
use statehouse_core::model::{LockOutcome, LockRequest, StateRecord, UnlockOutcome, UnlockRequest};
use statehouse_core::rules;
use statehouse_core::store::locks::LockStore;
use statehouse_core::store::pending::{JournalEntries, Journaling};

use crate::SqlStore;
use crate::engine::{Dialect, Engine, Row, Tx};
use crate::pending::insert_pending;
use crate::query::{Sql, sql};
use crate::states::state_by_id;

const TAKE_FREE_LOCK: &str = "UPDATE states SET lock_id = $1, lock_info = $2, lock_token_id = $3, lock_holder = $4, locked_at = $5 \
     WHERE workspace_id = $6 AND name = $7 AND deleted_at IS NULL AND lock_id IS NULL";

/// [`TAKE_FREE_LOCK`] with its journal entries, as one PostgreSQL statement.
const TAKE_FREE_LOCK_LOGGED: &str = "WITH taken AS ( \
     UPDATE states SET lock_id = $1, lock_info = $2, lock_token_id = $3, lock_holder = $4, locked_at = $5 \
     WHERE workspace_id = $6 AND name = $7 AND deleted_at IS NULL AND lock_id IS NULL \
     RETURNING 1), \
     logged AS (INSERT INTO journal_pending (at, entry) SELECT $8, $9 FROM taken WHERE $10) \
     SELECT count(*) FROM taken";

const RELEASE_OWN_LOCK: &str = "UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
     locked_at = NULL WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL \
     AND lock_id = $3 AND lock_token_id = $4";

/// [`RELEASE_OWN_LOCK`] with its journal entries, as one PostgreSQL statement.
const RELEASE_OWN_LOCK_LOGGED: &str = "WITH released AS ( \
     UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
     locked_at = NULL WHERE workspace_id = $1 AND name = $2 AND deleted_at IS NULL \
     AND lock_id = $3 AND lock_token_id = $4 \
     RETURNING 1), \
     logged AS (INSERT INTO journal_pending (at, entry) SELECT $5, $6 FROM released WHERE $7) \
     SELECT count(*) FROM released";

fn logged<'a>(statement: Sql<'a>, entries: &JournalEntries) -> Sql<'a> {
    statement
        .bind(entries.at())
        .bind(entries.encode())
        .bind(!entries.is_empty())
}

#[async_trait]
impl<E: Engine> LockStore for SqlStore<E> {
    async fn lock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &LockRequest,
        journal: Journaling<'_, LockOutcome>,
    ) -> Result<LockOutcome> {
        let take = |statement| {
            sql(statement)
                .bind(&req.id)
                .bind(&req.info)
                .bind(&req.token_id)
                .bind(&req.holder)
                .bind(req.at)
                .bind(workspace_id)
                .bind(name)
        };
        if E::DIALECT == Dialect::Postgres {
            let entries = journal(&LockOutcome::Acquired);
            let taken: i64 = logged(take(TAKE_FREE_LOCK_LOGGED), &entries)
                .scalar(&mut self.engine.writer().await?)
                .await?;
            if taken == 1 {
                return Ok(LockOutcome::Acquired);
            }
        }
        let mut tx = self.engine.begin().await?;
        if E::DIALECT == Dialect::Sqlite && take(TAKE_FREE_LOCK).execute(&mut tx).await? == 1 {
            insert_pending(&mut tx, &journal(&LockOutcome::Acquired)).await?;
            tx.commit().await?;
            return Ok(LockOutcome::Acquired);
        }
        let state = self
            .state_for_update_or_create(&mut tx, workspace_id, name, req.at)
            .await?;
        let outcome = rules::decide_lock(state.lock.as_ref(), &req.id, &req.token_id)?;
        if outcome == LockOutcome::Acquired {
            sql("UPDATE states SET lock_id = $1, lock_info = $2, lock_token_id = $3, lock_holder = $4, locked_at = $5 \
                 WHERE id = $6")
            .bind(&req.id)
            .bind(&req.info)
            .bind(&req.token_id)
            .bind(&req.holder)
            .bind(req.at)
            .bind(&state.id)
            .execute(&mut tx)
            .await?;
        }
        insert_pending(&mut tx, &journal(&outcome)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn unlock_state_journaled(
        &self,
        workspace_id: &str,
        name: &str,
        req: &UnlockRequest,
        journal: Journaling<'_, UnlockOutcome>,
    ) -> Result<UnlockOutcome> {
        let release = |statement, id| {
            sql(statement)
                .bind(workspace_id)
                .bind(name)
                .bind(id)
                .bind(&req.token_id)
        };
        if E::DIALECT == Dialect::Postgres
            && let Some(id) = &req.id
        {
            let entries = journal(&UnlockOutcome::Released);
            let released: i64 = logged(release(RELEASE_OWN_LOCK_LOGGED, id), &entries)
                .scalar(&mut self.engine.writer().await?)
                .await?;
            if released == 1 {
                return Ok(UnlockOutcome::Released);
            }
        }
        let mut tx = self.engine.begin().await?;
        if E::DIALECT == Dialect::Sqlite
            && let Some(id) = &req.id
            && release(RELEASE_OWN_LOCK, id).execute(&mut tx).await? == 1
        {
            insert_pending(&mut tx, &journal(&UnlockOutcome::Released)).await?;
            tx.commit().await?;
            return Ok(UnlockOutcome::Released);
        }
        let Some(state) = self
            .live_state_for_update(&mut tx, workspace_id, name)
            .await?
        else {
            let outcome = UnlockOutcome::NotLocked;
            insert_pending(&mut tx, &journal(&outcome)).await?;
            tx.commit().await?;
            return Ok(outcome);
        };
        let outcome = rules::decide_unlock(state.lock.as_ref(), req)?;
        if outcome != UnlockOutcome::NotLocked {
            sql("UPDATE states SET lock_id = NULL, lock_info = NULL, lock_token_id = NULL, lock_holder = NULL, \
                 locked_at = NULL WHERE id = $1")
            .bind(&state.id)
            .execute(&mut tx)
            .await?;
        }
        insert_pending(&mut tx, &journal(&outcome)).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn flag_stale_locks(
        &self,
        workspace_id: &str,
        locked_before: Timestamp,
    ) -> Result<Vec<StateRecord>> {
        let mut tx = self.engine.begin().await?;
        // One UPDATE claims each lock once: a concurrent replica's UPDATE waits on the row and
        // then no longer matches.
        let ids = sql(
            "UPDATE states SET stale_flagged_lock_id = lock_id \
             WHERE workspace_id = $1 AND deleted_at IS NULL AND lock_id IS NOT NULL AND locked_at < $2 \
             AND stale_flagged_lock_id IS DISTINCT FROM lock_id RETURNING id",
        )
        .bind(workspace_id)
        .bind(locked_before)
        .fetch_all(&mut tx)
        .await?;
        let mut flagged = Vec::with_capacity(ids.len());
        for row in ids {
            let id: String = row.get(0)?;
            flagged.push(state_by_id(&mut tx, &id).await?);
        }
        tx.commit().await?;
        Ok(flagged)
    }
}
