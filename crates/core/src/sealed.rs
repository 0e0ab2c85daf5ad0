//! Every kind of record sealed under the master key, named in one place.
//!
//! Sealing needs a [`SealedKind`] (a [`crate::crypto::Binding`] holds one), and each kind names
//! the table and columns its wrapped data keys live in. Master key rotation, the key check at
//! start and `key forget-retired` walk [`SealedKind::ALL`]; the store crates' tests fail when a
//! table has a `wrapped_key` column that no kind names. Adding a sealed kind (as S3 access
//! keys were; an OIDC client secret next) is therefore one variant here, and nothing can be
//! left behind by a rotation.

use crate::crypto::Binding;

/// Which kind of record a sealed body belongs to: part of its binding (the associated data of
/// both seals), and of key rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SealedKind {
    /// A state version's body (`state_versions`; owner: the state, record: the version).
    State,
    /// A webhook's signing secret (`webhooks`; owner: the workspace).
    Webhook,
    /// A backup storage target's secret settings (`backup_targets`).
    Target,
    /// A notifier's secret settings (`notifiers`).
    Notifier,
    /// A registered database's password (`backup_databases`).
    Database,
    /// A workspace's backup encryption and verification secrets (`workspace_backup_settings`;
    /// the record is the workspace itself).
    WorkspaceBackupSettings,
    /// A chunk of an S3 object's bytes (`s3_chunks`; owner: the workspace, record: the chunk,
    /// so that a chunk can move between blobs when a multipart upload completes).
    S3Chunk,
    /// An S3 access key's secret (`tokens`, only the rows with an access key id; owner and
    /// record: the token itself).
    S3Key,
}

impl SealedKind {
    /// Every kind; what rotation and the key check walk.
    pub const ALL: [SealedKind; 8] = [
        SealedKind::State,
        SealedKind::Webhook,
        SealedKind::Target,
        SealedKind::Notifier,
        SealedKind::Database,
        SealedKind::WorkspaceBackupSettings,
        SealedKind::S3Chunk,
        SealedKind::S3Key,
    ];

    /// The kind's name in bindings (changing one makes its stored records unreadable).
    pub fn as_str(self) -> &'static str {
        match self {
            SealedKind::State => "state",
            SealedKind::Webhook => "webhook",
            SealedKind::Target => "backup-target",
            SealedKind::Notifier => "notifier",
            SealedKind::Database => "database",
            SealedKind::WorkspaceBackupSettings => "workspace-backup-settings",
            SealedKind::S3Chunk => "s3-chunk",
            SealedKind::S3Key => "s3-key",
        }
    }

    /// The table holding this kind's `key_id` and `wrapped_key` columns.
    pub fn table(self) -> &'static str {
        match self {
            SealedKind::State => "state_versions",
            SealedKind::Webhook => "webhooks",
            SealedKind::Target => "backup_targets",
            SealedKind::Notifier => "notifiers",
            SealedKind::Database => "backup_databases",
            SealedKind::WorkspaceBackupSettings => "workspace_backup_settings",
            SealedKind::S3Chunk => "s3_chunks",
            // API tokens share the table; their `key_id` is NULL, which rotation skips.
            SealedKind::S3Key => "tokens",
        }
    }

    /// The column naming a row's owner (the binding's `owner_id`).
    pub fn owner_column(self) -> &'static str {
        match self {
            SealedKind::State => "state_id",
            // The token is its own owner: a token's workspace column may be NULL.
            SealedKind::S3Key => "id",
            _ => "workspace_id",
        }
    }

    /// The column naming the row itself (the binding's `record_id`).
    pub fn row_column(self) -> &'static str {
        match self {
            SealedKind::WorkspaceBackupSettings => "workspace_id",
            _ => "id",
        }
    }

    /// Where a record of this kind is bound when sealed.
    pub fn binding<'a>(self, owner_id: &'a str, record_id: &'a str) -> Binding<'a> {
        Binding {
            kind: self,
            owner_id,
            record_id,
        }
    }
}

/// One sealed record's wrapped data key, wherever it is stored (key rotation and checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKeyRef {
    pub kind: SealedKind,
    pub owner_id: String,
    pub row_id: String,
    /// The master key that wrapped the data key.
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
}

impl WrappedKeyRef {
    pub fn binding(&self) -> Binding<'_> {
        self.kind.binding(&self.owner_id, &self.row_id)
    }
}

/// Which wrapped data keys a query is after.
#[derive(Debug, Clone, Copy)]
pub enum KeyFilter<'a> {
    /// Wrapped under this master key.
    Under(&'a str),
    /// Wrapped under any other master key.
    NotUnder(&'a str),
}

/// The check value a store records for a master key id ([`crate::crypto::MasterKey::check_value`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    pub key_id: String,
    pub check_value: Vec<u8>,
    pub recorded_at: crate::clock::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_names_and_tables() {
        let names: std::collections::HashSet<_> =
            SealedKind::ALL.iter().map(|k| k.as_str()).collect();
        let tables: std::collections::HashSet<_> =
            SealedKind::ALL.iter().map(|k| k.table()).collect();
        assert_eq!(names.len(), SealedKind::ALL.len());
        assert_eq!(tables.len(), SealedKind::ALL.len());
    }
}
