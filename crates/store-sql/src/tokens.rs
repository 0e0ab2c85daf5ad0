//! API tokens (their secrets are stored hashed) and S3 access keys (the same rows with an
//! access key id and a sealed secret; `s3_access_key_id IS NULL` tells API tokens apart).

use async_trait::async_trait;

use statehouse_core::Result;
use statehouse_core::access::Token;
use statehouse_core::clock::Timestamp;
use statehouse_core::crypto::SealedBody;
use statehouse_core::model::NewToken;
use statehouse_core::s3_keys::{NewS3Key, StoredS3Key};
use statehouse_core::store::tokens::TokenStore;

use crate::SqlStore;
use crate::accounts::token_from;
use crate::engine::{Engine, Row};
use crate::query::{Sql, sql};

#[async_trait]
impl<E: Engine> TokenStore for SqlStore<E> {
    async fn create_token(&self, t: &NewToken) -> Result<Token> {
        sql("INSERT INTO tokens (id, name, user_id, workspace_id, role, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.user_id)
        .bind(&t.workspace_id)
        .bind(t.role.as_str())
        .bind(&t.secret_hash)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(stored(t, None))
    }

    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>> {
        // S3 keys' hashes never match a presented secret's; the filter says so twice.
        let row = sql("SELECT * FROM tokens WHERE secret_hash = $1 AND s3_access_key_id IS NULL")
            .bind(secret_hash)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(token_from).transpose()
    }

    async fn list_tokens(&self, workspace_id: Option<&str>) -> Result<Vec<Token>> {
        // Ids compare bytewise on both engines (SQLite's default; "C" on PostgreSQL).
        let order = format!("ORDER BY created_at, id{}", self.bytewise());
        let query = match workspace_id {
            Some(ws) => Sql::built(format!(
                "SELECT * FROM tokens WHERE workspace_id = $1 AND s3_access_key_id IS NULL {order}"
            ))
            .bind(ws),
            None => Sql::built(format!(
                "SELECT * FROM tokens WHERE s3_access_key_id IS NULL {order}"
            )),
        };
        let rows = query.fetch_all(&mut self.engine.read().await?).await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool> {
        let done = sql("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(token_id)
            .execute(&mut self.engine.writer().await?)
            .await?;
        Ok(done == 1)
    }

    async fn create_s3_key(&self, key: &NewS3Key) -> Result<Token> {
        let t = &key.token;
        sql("INSERT INTO tokens (id, name, user_id, workspace_id, role, secret_hash, created_at, expires_at, \
             s3_access_key_id, key_id, wrapped_key, s3_secret) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.user_id)
        .bind(&t.workspace_id)
        .bind(t.role.as_str())
        .bind(&t.secret_hash)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(&key.access_key_id)
        .bind(&key.secret.key_id)
        .bind(&key.secret.wrapped_key)
        .bind(&key.secret.ciphertext)
        .execute(&mut self.engine.writer().await?)
        .await?;
        Ok(stored(t, Some(&key.access_key_id)))
    }

    async fn s3_key(&self, access_key_id: &str) -> Result<Option<StoredS3Key>> {
        let row = sql("SELECT * FROM tokens WHERE s3_access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&mut self.engine.read().await?)
            .await?;
        row.as_ref().map(s3_key_from).transpose()
    }

    async fn list_s3_keys(&self, workspace_id: &str) -> Result<Vec<Token>> {
        let rows = Sql::built(format!(
            "SELECT * FROM tokens WHERE workspace_id = $1 AND s3_access_key_id IS NOT NULL \
             ORDER BY created_at, id{}",
            self.bytewise()
        ))
        .bind(workspace_id)
        .fetch_all(&mut self.engine.read().await?)
        .await?;
        rows.iter().map(token_from).collect()
    }
}

/// The token a new row reads back as.
fn stored(t: &NewToken, s3_access_key_id: Option<&str>) -> Token {
    Token {
        id: t.id.clone(),
        name: t.name.clone(),
        user_id: t.user_id.clone(),
        workspace_id: t.workspace_id.clone(),
        role: t.role,
        secret_hash: t.secret_hash.clone(),
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: None,
        last_used_at: None,
        s3_access_key_id: s3_access_key_id.map(str::to_owned),
    }
}

fn s3_key_from(row: &impl Row) -> Result<StoredS3Key> {
    Ok(StoredS3Key {
        token: token_from(row)?,
        secret: SealedBody {
            key_id: row.get("key_id")?,
            wrapped_key: row.get("wrapped_key")?,
            ciphertext: row.get("s3_secret")?,
        },
    })
}
