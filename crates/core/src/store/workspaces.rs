//! Workspaces: their names, serial protection and settings.

use async_trait::async_trait;

use crate::Result;
use crate::model::Workspace;

#[async_trait]
pub trait WorkspaceStore: Send + Sync {
    /// Fails with `Conflict` when the name is taken.
    async fn create_workspace(&self, workspace: &Workspace) -> Result<()>;
    async fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>>;
    async fn list_workspaces(&self) -> Result<Vec<Workspace>>;
    /// Stores the workspace's name, serial protection and settings (by id). False when there
    /// is no such workspace; `Conflict` when the new name is taken.
    async fn update_workspace(&self, workspace: &Workspace) -> Result<bool>;
    /// Deletes an empty workspace with its tokens and its backup settings. `Conflict` while it
    /// has states (live or soft-deleted), backup databases, backup targets or notifiers; false
    /// when there is no such workspace.
    async fn delete_workspace(&self, workspace_id: &str) -> Result<bool>;
}
