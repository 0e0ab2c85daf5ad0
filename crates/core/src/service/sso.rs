//! Signing in a user an identity provider vouched for (OpenID Connect): the user is created on
//! its first sign-in, its roles follow its groups (see [`crate::sso`]), and a session opens
//! exactly as a password login opens one.

use serde_json::json;

use super::{LoggedIn, Services, new_id};
use crate::accounts::{User, parse_user_name};
use crate::audit::AuditRecord;
use crate::printable::escaped;
use crate::sso::{ExternalIdentity, GroupMapping};
use crate::{Error, Result};

impl Services {
    /// Signs in the user a provider vouched for. Audited as `login.succeeded` or
    /// `login.failed` with the method (`oidc`), the provider and its subject; role changes the
    /// groups made are in the success entry's detail.
    pub async fn sso_login(
        &self,
        identity: &ExternalIdentity,
        mapping: &GroupMapping,
        source_ip: Option<&str>,
    ) -> Result<LoggedIn> {
        let result = self.sso_login_unaudited(identity, mapping, source_ip).await;
        let name = identity.name.trim();
        let detail = |changes: serde_json::Value| {
            json!({
                "method": "oidc",
                "provider": identity.provider,
                "subject": identity.subject,
                "groups": identity.groups,
                "changes": changes,
            })
        };
        let source_ip = source_ip.map(str::to_owned);
        match result {
            Ok((logged_in, changes)) => {
                let record = AuditRecord::new(self.now(), &logged_in.user.name, "login.succeeded")
                    .source_ip(source_ip)
                    .target(logged_in.user.name.clone())
                    .detail(detail(json!(changes)));
                self.record(record).await?;
                Ok(logged_in)
            }
            Err(e) => {
                tracing::info!(user = escaped(name), source_ip, reason = %e, "single sign-on refused");
                let record = AuditRecord::new(self.now(), name, "login.failed")
                    .source_ip(source_ip)
                    .target(name)
                    .detail(detail(json!([])))
                    .refused_by(&e);
                self.record_later(record).await;
                Err(e)
            }
        }
    }

    /// The work of [`Services::sso_login`]; also returns what changed, in words.
    async fn sso_login_unaudited(
        &self,
        identity: &ExternalIdentity,
        mapping: &GroupMapping,
        source_ip: Option<&str>,
    ) -> Result<(LoggedIn, Vec<String>)> {
        let name = parse_user_name(&identity.name).map_err(|_| {
            Error::Forbidden(format!(
                "the identity provider's user name {:?} cannot be a statehouse user name (1-64 \
                 lower case letters, digits, '.', '_', '-' or '@', starting with a letter or \
                 digit): choose another claim with oidc.username_claim, or change the name there",
                escaped(&identity.name)
            ))
        })?;
        let mut changes = Vec::new();
        let subject = identity.account();
        // The user made for this provider account, whatever its name is now at the provider.
        let linked = self.store.user_by_sso_subject(&subject).await?;
        let mut user = match linked {
            Some(user) => user,
            None => match self.store.user_by_name(&name).await? {
                Some(user) => {
                    // A user made any other way (with a password, a token or `user add`) is
                    // not taken over by whoever the provider calls by its name.
                    return Err(Error::Forbidden(format!(
                        "user {name:?} exists but was not created by single sign-on for this \
                         provider account{}, so single sign-on does not sign it in; an instance \
                         admin can delete it to let single sign-on create it again",
                        if user.sso_subject.is_some() {
                            " (it belongs to another one)"
                        } else {
                            ""
                        }
                    )));
                }
                None => {
                    let user = User {
                        id: new_id(),
                        name: name.clone(),
                        password_hash: None,
                        instance_admin: false,
                        created_at: self.now(),
                        disabled_at: None,
                        sso_subject: Some(subject.clone()),
                    };
                    match self.store.create_user(&user).await {
                        Ok(()) => {
                            changes.push("user created".to_owned());
                            user
                        }
                        // Two first sign-ins at once: the other one created it.
                        Err(Error::Conflict(_)) => self
                            .store
                            .user_by_sso_subject(&subject)
                            .await?
                            .ok_or_else(|| {
                                Error::Forbidden(format!(
                                    "user {name:?} was just created by another sign-in; sign \
                                     in again"
                                ))
                            })?,
                        Err(e) => return Err(e),
                    }
                }
            },
        };
        if user.is_disabled() {
            return Err(Error::Forbidden(format!(
                "user {:?} is disabled; an instance admin can enable it",
                user.name
            )));
        }
        self.apply_group_roles(&mut user, identity, mapping, &mut changes)
            .await?;
        let logged_in = self.open_session(user, source_ip).await?;
        Ok((logged_in, changes))
    }

    /// Sets the instance admin flag and the mapped workspace roles the groups give.
    async fn apply_group_roles(
        &self,
        user: &mut User,
        identity: &ExternalIdentity,
        mapping: &GroupMapping,
        changes: &mut Vec<String>,
    ) -> Result<()> {
        let roles = mapping.roles_for(&identity.groups);
        if let Some(admin) = roles.instance_admin
            && admin != user.instance_admin
        {
            let keep_last_admin = !admin
                && matches!(
                    self.ensure_another_instance_admin(user).await,
                    Err(Error::Conflict(_))
                );
            if keep_last_admin {
                tracing::warn!(
                    user = user.name,
                    "single sign-on would take instance admin away from the only enabled instance admin; kept"
                );
            } else {
                user.instance_admin = admin;
                if !self.store.update_user(user).await? {
                    return Err(Error::NotFound(format!(
                        "user {:?} was deleted meanwhile",
                        user.name
                    )));
                }
                changes.push(format!(
                    "instance admin {}",
                    if admin { "on" } else { "off" }
                ));
            }
        }
        if !roles.workspaces.is_empty() {
            let held = self.store.user_memberships(&user.id).await?;
            let now = self.now();
            for (ws_name, role) in &roles.workspaces {
                let current = held.iter().find(|m| &m.workspace_name == ws_name);
                match (role, current) {
                    (Some(role), Some(m)) if m.role == *role => {}
                    (Some(role), _) => {
                        let workspace = match self.workspace(ws_name).await {
                            Ok(ws) => ws,
                            Err(Error::NotFound(_) | Error::BadRequest(_)) => {
                                tracing::warn!(
                                    workspace = ws_name,
                                    "oidc.workspace_roles names a workspace that does not exist; skipped"
                                );
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        self.store
                            .set_membership(&user.id, &workspace.id, *role, now)
                            .await?;
                        changes.push(format!("{role} in {ws_name}"));
                    }
                    (None, Some(m)) => {
                        self.store
                            .remove_membership(&user.id, &m.workspace_id)
                            .await?;
                        changes.push(format!("no role in {ws_name}"));
                    }
                    (None, None) => {}
                }
            }
        }
        self.forget_user(&user.id);
        Ok(())
    }
}
