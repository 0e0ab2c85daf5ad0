//! Users, memberships, sessions, token use and login throttling.

use std::str::FromStr;

use async_trait::async_trait;

use statehouse_core::access::{Role, Token};
use statehouse_core::accounts::{Membership, Session, User};
use statehouse_core::clock::Timestamp;
use statehouse_core::store::accounts::{AccountStore, LoginFailures};
use statehouse_core::{Error, Result};

use crate::SqlStore;
use crate::engine::{Engine, Row, Tx};
use crate::error::DbError;
use crate::query::sql;

fn user_from(row: &impl Row) -> Result<User> {
    Ok(User {
        id: row.get("id")?,
        name: row.get("name")?,
        password_hash: row.get("password_hash")?,
        instance_admin: row.get("instance_admin")?,
        created_at: row.get("created_at")?,
        disabled_at: row.get("disabled_at")?,
        sso_subject: row.get("sso_subject")?,
    })
}

fn membership_from(row: &impl Row) -> Result<Membership> {
    let role: String = row.get("role")?;
    Ok(Membership {
        user_id: row.get("user_id")?,
        user_name: row.get("user_name")?,
        workspace_id: row.get("workspace_id")?,
        workspace_name: row.get("workspace_name")?,
        role: parse_role(&role)?,
        granted_at: row.get("granted_at")?,
    })
}

fn session_from(row: &impl Row) -> Result<Session> {
    Ok(Session {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        secret_hash: row.get("secret_hash")?,
        created_at: row.get("created_at")?,
        last_seen_at: row.get("last_seen_at")?,
        expires_at: row.get("expires_at")?,
        source_ip: row.get("source_ip")?,
    })
}

/// A `tokens` row (`SELECT *`). Also what the token methods of the main store read.
pub(crate) fn token_from(row: &impl Row) -> Result<Token> {
    let role: String = row.get("role")?;
    Ok(Token {
        id: row.get("id")?,
        name: row.get("name")?,
        user_id: row.get("user_id")?,
        workspace_id: row.get("workspace_id")?,
        role: parse_role(&role)?,
        secret_hash: row.get("secret_hash")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        revoked_at: row.get("revoked_at")?,
        last_used_at: row.get("last_used_at")?,
        s3_access_key_id: row.get("s3_access_key_id")?,
    })
}

pub(crate) fn parse_role(role: &str) -> Result<Role> {
    Role::from_str(role).map_err(|_| Error::Internal(format!("stored role {role:?} is unknown")))
}

/// A missing user or workspace behind a foreign key is the caller's mistake, not a store failure.
fn missing(what: &str) -> impl FnOnce(DbError) -> Error + '_ {
    move |e| {
        if e.is_foreign_key() {
            Error::NotFound(format!("{what} does not exist"))
        } else {
            e.into()
        }
    }
}

/// Memberships with their user's and workspace's names, then `$filter`.
macro_rules! memberships_where {
    ($filter:literal) => {
        concat!(
            "SELECT m.user_id, u.name AS user_name, m.workspace_id, w.name AS workspace_name, \
             m.role, m.granted_at FROM memberships m JOIN users u ON u.id = m.user_id \
             JOIN workspaces w ON w.id = m.workspace_id ",
            $filter
        )
    };
}

#[async_trait]
impl<E: Engine> AccountStore for SqlStore<E> {
    async fn create_user(&self, user: &User) -> Result<()> {
        sql(
            "INSERT INTO users (id, name, password_hash, instance_admin, created_at, disabled_at, \
             sso_subject) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.instance_admin)
        .bind(user.created_at)
        .bind(user.disabled_at)
        .bind(&user.sso_subject)
        .execute(&mut self.engine.writer().await?)
        .await
        .map_err(|e| {
            if e.is_unique() {
                Error::Conflict(format!("user {:?} already exists", user.name))
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row = sql("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let row = sql("SELECT * FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_sso_subject(&self, subject: &str) -> Result<Option<User>> {
        let row = sql("SELECT * FROM users WHERE sso_subject = $1")
            .bind(subject)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sql("SELECT * FROM users ORDER BY name")
            .fetch_all(&mut self.engine.read().await?)
            .await?;
        rows.iter().map(user_from).collect()
    }

    async fn update_user(&self, user: &User) -> Result<bool> {
        let done = sql(
            "UPDATE users SET password_hash = $1, instance_admin = $2, disabled_at = $3 WHERE id = $4",
        )
        .bind(&user.password_hash)
        .bind(user.instance_admin)
        .bind(user.disabled_at)
        .bind(&user.id)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(done == 1)
    }

    async fn delete_user(&self, id: &str) -> Result<bool> {
        // Memberships, tokens and sessions go with it (ON DELETE CASCADE).
        let done = sql("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done == 1)
    }

    async fn set_membership(
        &self,
        user_id: &str,
        workspace_id: &str,
        role: Role,
        at: Timestamp,
    ) -> Result<()> {
        sql("INSERT INTO memberships (user_id, workspace_id, role, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role, granted_at = excluded.granted_at")
        .bind(user_id)
        .bind(workspace_id)
        .bind(role.as_str())
        .bind(at)
        .execute(&mut self.engine.writer().await?)
        .await
        .map_err(missing("the user or the workspace"))?;
        Ok(())
    }

    async fn remove_membership(&self, user_id: &str, workspace_id: &str) -> Result<bool> {
        let done = sql("DELETE FROM memberships WHERE user_id = $1 AND workspace_id = $2")
            .bind(user_id)
            .bind(workspace_id)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done == 1)
    }

    async fn user_memberships(&self, user_id: &str) -> Result<Vec<Membership>> {
        let rows = sql(memberships_where!("WHERE m.user_id = $1 ORDER BY w.name"))
            .bind(user_id)
            .fetch_all(&mut self.engine.read().await?)
            .await?;
        rows.iter().map(membership_from).collect()
    }

    async fn workspace_members(&self, workspace_id: &str) -> Result<Vec<Membership>> {
        let rows = sql(memberships_where!(
            "WHERE m.workspace_id = $1 ORDER BY u.name"
        ))
        .bind(workspace_id)
        .fetch_all(&mut self.engine.read().await?)
        .await?;
        rows.iter().map(membership_from).collect()
    }

    async fn token_by_id(&self, id: &str) -> Result<Option<Token>> {
        let row = sql("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn user_tokens(&self, user_id: &str) -> Result<Vec<Token>> {
        let rows = sql("SELECT * FROM tokens WHERE user_id = $1 ORDER BY created_at, id")
            .bind(user_id)
            .fetch_all(&mut self.engine.read().await?)
            .await?;
        rows.iter().map(token_from).collect()
    }

    async fn touch_token(&self, id: &str, at: Timestamp) -> Result<()> {
        sql("UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
            .bind(at)
            .bind(id)
            .bind(at)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(())
    }

    async fn create_session(&self, s: &Session) -> Result<()> {
        sql("INSERT INTO sessions (id, user_id, secret_hash, created_at, last_seen_at, expires_at, source_ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.secret_hash)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(&s.source_ip)
        .execute(&mut self.engine.writer().await?)
        .await
        .map_err(missing("the session's user"))?;
        Ok(())
    }

    async fn session_by_hash(&self, secret_hash: &str) -> Result<Option<Session>> {
        let row = sql("SELECT * FROM sessions WHERE secret_hash = $1")
            .bind(secret_hash)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn touch_session(&self, id: &str, at: Timestamp) -> Result<()> {
        sql("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(at)
            .bind(id)
            .bind(at)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let done = sql("DELETE FROM sessions WHERE id = $1")
            .bind(id)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done == 1)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        let done = sql("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done)
    }

    async fn delete_expired_sessions(&self, now: Timestamp, idle_since: Timestamp) -> Result<u64> {
        let done = sql("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_since)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done)
    }

    async fn record_login_failure(
        &self,
        keys: &[String],
        at: Timestamp,
        forget_before: Timestamp,
    ) -> Result<()> {
        let mut tx = self.engine.begin().await?;
        sql("DELETE FROM login_failures WHERE at < $1")
            .bind(forget_before)
            .execute(&mut tx)
            .await?;
        for key in keys {
            sql("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(at)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn login_failures(&self, key: &str, since: Timestamp) -> Result<LoginFailures> {
        let row = sql(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE key = $1 AND at >= $2",
        )
        .bind(key)
        .bind(since)
        .fetch_one(&mut self.engine.read().await?)
        .await?;
        Ok(LoginFailures {
            count: row.get("n")?,
            oldest: row.get("oldest")?,
        })
    }

    async fn clear_login_failures(&self, key: &str) -> Result<()> {
        sql("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(())
    }
}
