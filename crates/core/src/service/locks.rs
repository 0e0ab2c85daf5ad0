//! Locks as clients take and give them back: LOCK with a LockInfo, UNLOCK by the holder's ID,
//! force-unlock without one. Each change commits with its audit entry and event.

use serde_json::json;

use super::Services;
use super::lock_info::{LockInfo, parse_lock_info, read_lock_info};
use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::events::kind;
use crate::model::{LockOutcome, LockRequest, UnlockOutcome, UnlockRequest, Workspace};
use crate::names::StateName;
use crate::store::pending::JournalEntries;
use crate::{Error, Result};

/// A LOCK as [`Services::lock_ask`] checked it.
pub(super) struct LockAsk {
    pub(super) name: StateName,
    pub(super) workspace: Workspace,
    pub(super) request: LockRequest,
    /// The LockInfo, parsed (for the `lock.acquired` event).
    pub(super) value: serde_json::Value,
}

impl Services {
    /// Takes the state's lock with the client's LockInfo JSON. Audited as `lock.acquire`;
    /// taking a free lock emits `lock.acquired`.
    pub async fn lock_state(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        info: &[u8],
    ) -> Result<LockOutcome> {
        let record = AuditRecord::by(who, "lock.acquire", self.now())
            .workspace(ws)
            .target(name);
        let result = self
            .lock_state_unaudited(who, ws, name, info, &record)
            .await;
        self.conclude_change(result, record).await
    }

    async fn lock_state_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        info: &[u8],
        record: &AuditRecord,
    ) -> Result<LockOutcome> {
        let ask = self.lock_ask(who, ws, name, info).await?;
        self.take_lock(who, &ask, record).await
    }

    /// A LOCK checked before it reaches the store: the name, the caller's right to lock, the
    /// LockInfo and its ID.
    pub(super) async fn lock_ask(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        info: &[u8],
    ) -> Result<LockAsk> {
        let name = StateName::parse(name)?;
        let (workspace, _) = self
            .authorize(who, ws, Role::Editor, "locking a state")
            .await?;
        let LockInfo { id, text, value } = read_lock_info(info)?;
        let id = id.ok_or_else(|| Error::BadRequest("lock info has no \"ID\"".into()))?;
        let request = LockRequest {
            id,
            info: text,
            token_id: who.token_id.clone(),
            holder: who.token_name.clone(),
            at: self.now(),
        };
        Ok(LockAsk {
            name,
            workspace,
            request,
            value,
        })
    }

    /// Takes the lock at once, or refuses with the holder's LockInfo.
    pub(super) async fn take_lock(
        &self,
        who: &Principal,
        ask: &LockAsk,
        record: &AuditRecord,
    ) -> Result<LockOutcome> {
        let LockAsk {
            name,
            workspace,
            request,
            value,
        } = ask;
        let journal = |outcome: &LockOutcome| {
            self.lock_entries(
                record,
                workspace,
                name.as_str(),
                who,
                &request.id,
                value,
                outcome,
            )
        };
        self.store
            .lock_state_journaled(&workspace.id, name.as_str(), request, &journal)
            .await
    }

    /// The entries of taking a lock: `lock.acquire` and, for a lock that was free, its event.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lock_entries(
        &self,
        record: &AuditRecord,
        workspace: &Workspace,
        name: &str,
        who: &Principal,
        lock_id: &str,
        info: &serde_json::Value,
        outcome: &LockOutcome,
    ) -> JournalEntries {
        let facts = json!({
            "lock_id": lock_id,
            "already_held": *outcome == LockOutcome::AlreadyHeld,
        });
        let event = (*outcome == LockOutcome::Acquired).then(|| {
            self.event(
                kind::LOCK_ACQUIRED,
                workspace,
                name,
                who,
                json!({"lock_id": lock_id, "info": info}),
            )
        });
        JournalEntries::of(record.clone().detail(facts), event)
    }

    /// Releases the lock. An empty body, or another token's lock, is a force-unlock (admin).
    /// Audited as `lock.release` or `lock.force_release` (failed when the state was not
    /// locked); emits `lock.released` or `lock.force_unlocked`.
    pub async fn unlock_state(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        info: &[u8],
    ) -> Result<UnlockOutcome> {
        let record = AuditRecord::by(who, "lock.release", self.now())
            .workspace(ws)
            .target(name);
        let result = self
            .unlock_state_unaudited(who, ws, name, info, &record)
            .await;
        self.conclude_change(result, record).await
    }

    /// The entries of an unlock: `lock.release` (or `lock.force_release`) and its event.
    pub(super) fn unlock_entries(
        &self,
        record: &AuditRecord,
        workspace: &Workspace,
        name: &str,
        who: &Principal,
        id: &Option<String>,
        outcome: &UnlockOutcome,
    ) -> JournalEntries {
        let r = record.clone();
        match outcome {
            UnlockOutcome::Released => {
                let event = self.event(
                    kind::LOCK_RELEASED,
                    workspace,
                    name,
                    who,
                    json!({"lock_id": id}),
                );
                JournalEntries::of(r.detail(json!({"lock_id": id})), Some(event))
            }
            UnlockOutcome::ForceReleased { previous } => {
                let facts = json!({
                    "lock_id": previous.id,
                    "holder": previous.holder,
                    "holder_token_id": previous.token_id,
                    "locked_at": previous.locked_at,
                });
                let event = self.event(
                    kind::LOCK_FORCE_UNLOCKED,
                    workspace,
                    name,
                    who,
                    facts.clone(),
                );
                let r = AuditRecord {
                    action: "lock.force_release".into(),
                    ..r
                };
                JournalEntries::of(r.detail(facts), Some(event))
            }
            // Nothing was released: the entry says so (the answer stays a success for
            // Terraform, whose retried UNLOCK must not fail).
            UnlockOutcome::NotLocked => {
                let r = AuditRecord {
                    action: unlock_action(id.as_deref()).into(),
                    ..r
                };
                let r = r
                    .detail(json!({"lock_id": id, "not_locked": true}))
                    .failed(NOTHING_TO_UNLOCK);
                JournalEntries::of(r, None)
            }
        }
    }

    async fn unlock_state_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        name: &str,
        info: &[u8],
        record: &AuditRecord,
    ) -> Result<UnlockOutcome> {
        let name = StateName::parse(name)?;
        let (workspace, role) = self
            .authorize(who, ws, Role::Editor, "unlocking a state")
            .await?;
        let id = if info.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            parse_lock_info(info)?.0
        };
        let request = UnlockRequest {
            id: id.clone(),
            token_id: who.token_id.clone(),
            is_admin: role >= Role::Admin,
            at: self.now(),
        };
        let journal = |outcome: &UnlockOutcome| {
            self.unlock_entries(record, &workspace, name.as_str(), who, &id, outcome)
        };
        let outcome = self
            .store
            .unlock_state_journaled(&workspace.id, name.as_str(), &request, &journal)
            .await?;
        if outcome != UnlockOutcome::NotLocked {
            self.lock_signals.released.notify_waiters();
        }
        Ok(outcome)
    }
}

/// Why an unlock of a state that is not locked released nothing (audited as a failure).
const NOTHING_TO_UNLOCK: &str = "the state is not locked: nothing was released";

/// The audited action of an unlock: without an ID it can only be a force-unlock.
fn unlock_action(id: Option<&str>) -> &'static str {
    match id {
        Some(_) => "lock.release",
        None => "lock.force_release",
    }
}
