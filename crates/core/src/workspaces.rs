//! Workspace management as users see it: list what you may see, create, rename, change
//! policies, delete when empty.

use serde_json::json;

use crate::access::{Principal, Role};
use crate::audit::AuditRecord;
use crate::model::{Workspace, WorkspaceSettings};
use crate::names::WorkspaceName;
use crate::service::{DEFAULT_WORKSPACE, Services, new_id};
use crate::{Error, Result};

/// Shortest duration accepted for a retention age or a stale-lock threshold.
const MIN_POLICY_MILLIS: i64 = 60_000;

/// A change to a workspace; `None` fields stay as they are. For the optional policies,
/// `Some(None)` turns the policy off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceChange {
    pub name: Option<String>,
    pub serial_protection: Option<bool>,
    pub keep_versions: Option<Option<i64>>,
    pub keep_versions_for_millis: Option<Option<i64>>,
    pub stale_lock_after_millis: Option<Option<i64>>,
    pub lock_wait_millis: Option<Option<i64>>,
}

impl WorkspaceChange {
    /// The workspace as it would be after the change, validated; nothing is stored.
    fn apply_to(&self, mut ws: Workspace) -> Result<Workspace> {
        if let Some(name) = &self.name {
            ws.name = WorkspaceName::parse(name)?.as_str().to_owned();
        }
        if let Some(on) = self.serial_protection {
            ws.serial_protection = on;
        }
        if let Some(keep) = self.keep_versions {
            if keep.is_some_and(|n| n < 1) {
                return Err(Error::BadRequest(
                    "keep_versions must be at least 1 (or null to keep every version)".into(),
                ));
            }
            ws.settings.keep_versions = keep;
        }
        if let Some(age) = self.keep_versions_for_millis {
            check_policy_duration(age, "keep_versions_for")?;
            ws.settings.keep_versions_for_millis = age;
        }
        if let Some(after) = self.stale_lock_after_millis {
            check_policy_duration(after, "stale_lock_after")?;
            ws.settings.stale_lock_after_millis = after;
        }
        if let Some(wait) = self.lock_wait_millis {
            let longest =
                i64::try_from(crate::lock_queue::MAX_LOCK_WAIT.as_millis()).unwrap_or(i64::MAX);
            if wait.is_some_and(|w| !(1_000..=longest).contains(&w)) {
                return Err(Error::BadRequest(
                    "lock_wait must be between 1 second and 1 hour (or null: a LOCK does not wait)"
                        .into(),
                ));
            }
            ws.settings.lock_wait_millis = wait;
        }
        Ok(ws)
    }
}

fn check_policy_duration(millis: Option<i64>, what: &str) -> Result<()> {
    if millis.is_some_and(|m| m < MIN_POLICY_MILLIS) {
        return Err(Error::BadRequest(format!(
            "{what} must be at least one minute (or null to turn it off)"
        )));
    }
    Ok(())
}

impl Services {
    /// The workspaces the principal has a role in, with that role, in name order.
    pub async fn list_workspaces(&self, who: &Principal) -> Result<Vec<(Workspace, Role)>> {
        let all = self.store.list_workspaces().await?;
        Ok(all
            .into_iter()
            .filter_map(|ws| who.role_in(&ws.id).map(|role| (ws, role)))
            .collect())
    }

    /// A workspace's name by id, for text the system writes itself (events, notifications):
    /// no principal is involved. `None` when there is no such workspace.
    pub async fn workspace_name(&self, workspace_id: &str) -> Result<Option<String>> {
        let all = self.store.list_workspaces().await?;
        Ok(all
            .into_iter()
            .find(|w| w.id == workspace_id)
            .map(|w| w.name))
    }

    /// One workspace and the principal's role in it (any role).
    pub async fn workspace_for(&self, who: &Principal, ws: &str) -> Result<(Workspace, Role)> {
        self.authorize(who, ws, Role::Outputs, "seeing a workspace")
            .await
    }

    /// Creates a workspace (instance admins). Audited as `workspace.create`.
    pub async fn create_workspace_as(&self, who: &Principal, name: &str) -> Result<Workspace> {
        let record = AuditRecord::by(who, "workspace.create", self.now())
            .workspace(name)
            .target(name);
        let result = async {
            who.require_instance_admin("creating a workspace")?;
            self.create_workspace(name).await
        }
        .await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    /// Renames a workspace or changes its policies (workspace admins). Audited as
    /// `workspace.update`.
    pub async fn change_workspace(
        &self,
        who: &Principal,
        ws: &str,
        change: &WorkspaceChange,
    ) -> Result<Workspace> {
        let record = AuditRecord::by(who, "workspace.update", self.now())
            .workspace(ws)
            .target(ws)
            .detail(json!({
                "name": change.name,
                "serial_protection": change.serial_protection,
                "keep_versions": change.keep_versions,
                "keep_versions_for_ms": change.keep_versions_for_millis,
                "stale_lock_after_ms": change.stale_lock_after_millis,
            }));
        let result = self.change_workspace_unaudited(who, ws, change).await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    async fn change_workspace_unaudited(
        &self,
        who: &Principal,
        ws: &str,
        change: &WorkspaceChange,
    ) -> Result<Workspace> {
        let (current, _) = self
            .authorize(who, ws, Role::Admin, "changing a workspace")
            .await?;
        if change.name.is_some() && current.name == DEFAULT_WORKSPACE {
            return Err(Error::BadRequest(format!(
                "the {DEFAULT_WORKSPACE:?} workspace cannot be renamed: statehouse recreates it on start"
            )));
        }
        let old_name = current.name.clone();
        let updated = change.apply_to(current)?;
        if !self.store.update_workspace(&updated).await? {
            return Err(Error::NotFound(format!(
                "workspace {old_name:?} was deleted meanwhile"
            )));
        }
        // This process stops resolving the old name now; other replicas within the cache TTL.
        self.workspaces.forget(&old_name);
        self.workspaces.forget(&updated.name);
        Ok(updated)
    }

    /// Deletes a workspace that has no states left (instance admins). Its tokens go with it.
    /// Audited as `workspace.delete`.
    pub async fn delete_workspace(&self, who: &Principal, ws: &str) -> Result<()> {
        let record = AuditRecord::by(who, "workspace.delete", self.now())
            .workspace(ws)
            .target(ws);
        let result = self.delete_workspace_unaudited(who, ws).await;
        self.conclude(result, record, |_, r| (r, None)).await
    }

    async fn delete_workspace_unaudited(&self, who: &Principal, ws: &str) -> Result<()> {
        who.require_instance_admin("deleting a workspace")?;
        let workspace = self.workspace(ws).await?;
        if workspace.name == DEFAULT_WORKSPACE {
            return Err(Error::BadRequest(format!(
                "the {DEFAULT_WORKSPACE:?} workspace cannot be deleted: statehouse recreates it on start"
            )));
        }
        let deleted = self.store.delete_workspace(&workspace.id).await;
        self.workspaces.forget(&workspace.name);
        if !deleted? {
            return Err(Error::NotFound(format!(
                "workspace {:?} does not exist",
                workspace.name
            )));
        }
        Ok(())
    }
}

impl Services {
    /// Creates the `default` workspace if it does not exist (safe to race with replicas).
    pub async fn ensure_default_workspace(&self) -> Result<()> {
        if self
            .store
            .workspace_by_name(DEFAULT_WORKSPACE)
            .await?
            .is_some()
        {
            return Ok(());
        }
        match self.create_workspace(DEFAULT_WORKSPACE).await {
            Ok(_) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn create_workspace(&self, name: &str) -> Result<Workspace> {
        let name = WorkspaceName::parse(name)?;
        let ws = Workspace {
            id: new_id(),
            name: name.as_str().to_owned(),
            serial_protection: true,
            created_at: self.now(),
            settings: WorkspaceSettings::DEFAULT,
        };
        self.store.create_workspace(&ws).await?;
        Ok(ws)
    }

    pub async fn workspace(&self, name: &str) -> Result<Workspace> {
        let name = WorkspaceName::parse(name)?;
        let now = self.now();
        if let Some(ws) = self.workspaces.get(name.as_str(), now) {
            return Ok(ws);
        }
        let ws = self.store.workspace_by_name(name.as_str()).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "workspace {:?} does not exist; create it with `statehouse workspace create {name}`",
                name.as_str()
            ))
        })?;
        self.workspaces.put(ws.name.clone(), ws.clone(), now);
        Ok(ws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::model::WorkspaceSettings;

    fn ws() -> Workspace {
        Workspace {
            id: "w".into(),
            name: "prod".into(),
            serial_protection: true,
            created_at: Timestamp(0),
            settings: WorkspaceSettings::DEFAULT,
        }
    }

    #[test]
    fn changes_apply_and_validate() {
        let change = WorkspaceChange {
            name: Some("production".into()),
            keep_versions: Some(Some(10)),
            stale_lock_after_millis: Some(None),
            ..Default::default()
        };
        let after = change.apply_to(ws()).ok();
        assert_eq!(after.as_ref().map(|w| w.name.as_str()), Some("production"));
        assert_eq!(
            after.map(|w| w.settings),
            Some(WorkspaceSettings {
                keep_versions: Some(10),
                keep_versions_for_millis: None,
                stale_lock_after_millis: None,
                lock_wait_millis: None,
            })
        );
        for bad in [
            WorkspaceChange {
                keep_versions: Some(Some(0)),
                ..Default::default()
            },
            WorkspaceChange {
                keep_versions_for_millis: Some(Some(59_999)),
                ..Default::default()
            },
            WorkspaceChange {
                stale_lock_after_millis: Some(Some(1)),
                ..Default::default()
            },
            WorkspaceChange {
                lock_wait_millis: Some(Some(999)),
                ..Default::default()
            },
            WorkspaceChange {
                lock_wait_millis: Some(Some(3_600_001)),
                ..Default::default()
            },
            WorkspaceChange {
                name: Some("bad name!".into()),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(bad.apply_to(ws()), Err(Error::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
