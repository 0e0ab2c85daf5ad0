//! Users, memberships, sessions, token use and login throttling on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use statehouse_core::access::{Role, Token};
use statehouse_core::accounts::{Membership, Session, User};
use statehouse_core::clock::Timestamp;
use statehouse_core::store::accounts::{AccountStore, LoginFailures};
use statehouse_core::{Error, Result};

use crate::{SqliteStore, begin_write, commit, db_err, get, parse_role, token_from};

fn user_from(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: get(row, "id")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        instance_admin: get(row, "instance_admin")?,
        created_at: Timestamp(get(row, "created_at")?),
        disabled_at: get::<Option<i64>>(row, "disabled_at")?.map(Timestamp),
    })
}

fn membership_from(row: &SqliteRow) -> Result<Membership> {
    let role: String = get(row, "role")?;
    Ok(Membership {
        user_id: get(row, "user_id")?,
        user_name: get(row, "user_name")?,
        workspace_id: get(row, "workspace_id")?,
        workspace_name: get(row, "workspace_name")?,
        role: parse_role(&role)?,
        granted_at: Timestamp(get(row, "granted_at")?),
    })
}

fn session_from(row: &SqliteRow) -> Result<Session> {
    Ok(Session {
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        secret_hash: get(row, "secret_hash")?,
        created_at: Timestamp(get(row, "created_at")?),
        last_seen_at: Timestamp(get(row, "last_seen_at")?),
        expires_at: Timestamp(get(row, "expires_at")?),
        source_ip: get(row, "source_ip")?,
    })
}

/// A missing user or workspace behind a foreign key is the caller's mistake, not a store failure.
fn fk_err(e: sqlx::Error, what: &str) -> Error {
    if let sqlx::Error::Database(d) = &e
        && d.is_foreign_key_violation()
    {
        return Error::NotFound(format!("{what} does not exist"));
    }
    db_err(e)
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
impl AccountStore for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, name, password_hash, instance_admin, created_at, disabled_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.instance_admin)
        .bind(user.created_at.0)
        .bind(user.disabled_at.map(|t| t.0))
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(|e| match db_err(e) {
            Error::Conflict(_) => Error::Conflict(format!("user {:?} already exists", user.name)),
            other => other,
        })?;
        Ok(())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(user_from).collect()
    }

    async fn update_user(&self, user: &User) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = ?, instance_admin = ?, disabled_at = ? WHERE id = ?",
        )
        .bind(&user.password_hash)
        .bind(user.instance_admin)
        .bind(user.disabled_at.map(|t| t.0))
        .bind(&user.id)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &str) -> Result<bool> {
        // Memberships, tokens and sessions go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_membership(
        &self,
        user_id: &str,
        workspace_id: &str,
        role: Role,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO memberships (user_id, workspace_id, role, granted_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = excluded.role, granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(workspace_id)
        .bind(role.as_str())
        .bind(at.0)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(|e| fk_err(e, "the user or the workspace"))?;
        Ok(())
    }

    async fn remove_membership(&self, user_id: &str, workspace_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM memberships WHERE user_id = ? AND workspace_id = ?")
            .bind(user_id)
            .bind(workspace_id)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_memberships(&self, user_id: &str) -> Result<Vec<Membership>> {
        let rows = sqlx::query(memberships_where!("WHERE m.user_id = ? ORDER BY w.name"))
            .bind(user_id)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(membership_from).collect()
    }

    async fn workspace_members(&self, workspace_id: &str) -> Result<Vec<Membership>> {
        let rows = sqlx::query(memberships_where!(
            "WHERE m.workspace_id = ? ORDER BY u.name"
        ))
        .bind(workspace_id)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(membership_from).collect()
    }

    async fn token_by_id(&self, id: &str) -> Result<Option<Token>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(token_from).transpose()
    }

    async fn user_tokens(&self, user_id: &str) -> Result<Vec<Token>> {
        let rows = sqlx::query("SELECT * FROM tokens WHERE user_id = ? ORDER BY created_at, id")
            .bind(user_id)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(token_from).collect()
    }

    async fn touch_token(&self, id: &str, at: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE tokens SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
        )
        .bind(at.0)
        .bind(id)
        .bind(at.0)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn create_session(&self, s: &Session) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, secret_hash, created_at, last_seen_at, expires_at, source_ip) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.secret_hash)
        .bind(s.created_at.0)
        .bind(s.last_seen_at.0)
        .bind(s.expires_at.0)
        .bind(&s.source_ip)
        .execute(&mut *self.write.lock().await)
        .await
        .map_err(|e| fk_err(e, "the session's user"))?;
        Ok(())
    }

    async fn session_by_hash(&self, secret_hash: &str) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE secret_hash = ?")
            .bind(secret_hash)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(session_from).transpose()
    }

    async fn touch_session(&self, id: &str, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?")
            .bind(at.0)
            .bind(id)
            .bind(at.0)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn delete_expired_sessions(&self, now: Timestamp, idle_since: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?")
            .bind(now.0)
            .bind(idle_since.0)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn record_login_failure(
        &self,
        keys: &[String],
        at: Timestamp,
        forget_before: Timestamp,
    ) -> Result<()> {
        let mut conn = self.write.lock().await;
        let mut tx = begin_write(&mut conn).await?;
        sqlx::query("DELETE FROM login_failures WHERE at < ?")
            .bind(forget_before.0)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for key in keys {
            sqlx::query("INSERT INTO login_failures (key, at) VALUES (?, ?)")
                .bind(key)
                .bind(at.0)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        commit(tx).await
    }

    async fn login_failures(&self, key: &str, since: Timestamp) -> Result<LoginFailures> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE key = ? AND at >= ?",
        )
        .bind(key)
        .bind(since.0)
        .fetch_one(&self.read)
        .await
        .map_err(db_err)?;
        Ok(LoginFailures {
            count: row.try_get("n").map_err(db_err)?,
            oldest: row
                .try_get::<Option<i64>, _>("oldest")
                .map_err(db_err)?
                .map(Timestamp),
        })
    }

    async fn clear_login_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = ?")
            .bind(key)
            .execute(&mut *self.write.lock().await)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
