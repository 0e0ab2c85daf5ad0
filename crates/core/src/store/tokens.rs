//! API tokens (their secrets are stored hashed).

use async_trait::async_trait;

use crate::Result;
use crate::access::Token;
use crate::clock::Timestamp;
use crate::model::NewToken;

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn create_token(&self, token: &NewToken) -> Result<Token>;
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>>;
    /// All tokens (revoked too); `Some(ws)`: only that workspace's.
    async fn list_tokens(&self, workspace_id: Option<&str>) -> Result<Vec<Token>>;
    /// False when there is no such unrevoked token.
    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool>;
}
