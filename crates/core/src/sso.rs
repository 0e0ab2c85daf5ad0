//! Single sign-on: who an identity provider says a user is, and the roles its groups give.
//!
//! The provider is trusted for the user name and the groups it hands out (the operator chose
//! it). The mapping is authoritative for what it names, and only for that:
//!
//! - **instance admin**: when `admin_groups` is not empty, a user is instance admin exactly
//!   when one of its groups is listed, on every sign-in (leaving the group takes the flag
//!   away at the next sign-in). When it is empty, the flag is left as an admin set it.
//! - **workspace roles**: for each workspace the mapping names, the user's role there becomes
//!   the highest role its groups give, and a user none of whose groups map to that workspace
//!   loses its role there. Workspaces the mapping does not name keep the roles given by hand.

use std::collections::BTreeMap;

use crate::access::Role;

/// Group → workspace → role, and the groups whose members are instance admins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMapping {
    pub admin_groups: Vec<String>,
    /// Group name → workspace name → role.
    pub workspace_roles: BTreeMap<String, BTreeMap<String, Role>>,
}

/// What a provider said about a signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The value of the user-name claim, as sent (checked by the user-name rules).
    pub name: String,
    /// The groups claim (empty when the provider sent none).
    pub groups: Vec<String>,
    /// The provider (its issuer URL), for the audit log.
    pub provider: String,
    /// The provider's subject identifier (`sub`): with the provider, it names the account.
    pub subject: String,
}

impl ExternalIdentity {
    /// The provider account, as stored on the user single sign-on created for it:
    /// `issuer#sub` (a subject is unique only within its issuer).
    pub fn account(&self) -> String {
        format!("{}#{}", self.provider, self.subject)
    }
}

/// The roles a set of groups gives under a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRoles {
    /// `Some(flag)`: set the instance admin flag so; `None`: leave it.
    pub instance_admin: Option<bool>,
    /// Workspace name → role to hold there (`None`: no role there).
    pub workspaces: BTreeMap<String, Option<Role>>,
}

impl GroupMapping {
    /// The roles `groups` give: see the module documentation.
    pub fn roles_for(&self, groups: &[String]) -> MappedRoles {
        let member = |g: &String| groups.iter().any(|mine| mine == g);
        let instance_admin =
            (!self.admin_groups.is_empty()).then(|| self.admin_groups.iter().any(member));
        let mut workspaces: BTreeMap<String, Option<Role>> = BTreeMap::new();
        for (group, roles) in &self.workspace_roles {
            let mine = member(group);
            for (workspace, role) in roles {
                let entry = workspaces.entry(workspace.clone()).or_insert(None);
                if mine && entry.is_none_or(|held| held < *role) {
                    *entry = Some(*role);
                }
            }
        }
        MappedRoles {
            instance_admin,
            workspaces,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> GroupMapping {
        let mut workspace_roles = BTreeMap::new();
        workspace_roles.insert(
            "platform".to_owned(),
            BTreeMap::from([
                ("default".to_owned(), Role::Editor),
                ("infra".to_owned(), Role::Viewer),
            ]),
        );
        workspace_roles.insert(
            "readers".to_owned(),
            BTreeMap::from([("default".to_owned(), Role::Viewer)]),
        );
        workspace_roles.insert(
            "infra-admins".to_owned(),
            BTreeMap::from([("infra".to_owned(), Role::Admin)]),
        );
        GroupMapping {
            admin_groups: vec!["ops".to_owned()],
            workspace_roles,
        }
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_highest_role_of_the_groups_wins_and_unnamed_groups_remove_roles() {
        let roles = mapping().roles_for(&groups(&["readers", "platform", "unrelated"]));
        assert_eq!(roles.instance_admin, Some(false));
        assert_eq!(roles.workspaces["default"], Some(Role::Editor));
        assert_eq!(roles.workspaces["infra"], Some(Role::Viewer));

        let roles = mapping().roles_for(&groups(&["infra-admins", "platform", "ops"]));
        assert_eq!(roles.instance_admin, Some(true));
        assert_eq!(roles.workspaces["infra"], Some(Role::Admin));

        // No group: every mapped workspace loses its role; nothing else is named.
        let roles = mapping().roles_for(&[]);
        assert_eq!(roles.workspaces.len(), 2);
        assert!(roles.workspaces.values().all(Option::is_none));
    }

    #[test]
    fn group_names_match_exactly_and_no_admin_groups_leaves_the_flag() {
        let roles = mapping().roles_for(&groups(&["OPS", "Readers"]));
        assert_eq!(roles.instance_admin, Some(false));
        assert!(roles.workspaces.values().all(Option::is_none));
        let roles = GroupMapping::default().roles_for(&groups(&["ops"]));
        assert_eq!(roles.instance_admin, None);
        assert!(roles.workspaces.is_empty());
    }
}
