//! API tokens (their secrets are stored hashed) and S3 access keys (tokens whose secret is
//! stored sealed, see [`crate::s3_keys`]).

use async_trait::async_trait;

use crate::Result;
use crate::access::Token;
use crate::clock::Timestamp;
use crate::model::NewToken;
use crate::s3_keys::{NewS3Key, StoredS3Key};

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn create_token(&self, token: &NewToken) -> Result<Token>;
    /// The API token with this secret hash (never an S3 key).
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>>;
    /// All API tokens (revoked too, S3 keys not); `Some(ws)`: only that workspace's.
    async fn list_tokens(&self, workspace_id: Option<&str>) -> Result<Vec<Token>>;
    /// False when there is no such unrevoked token (API token or S3 key).
    async fn revoke_token(&self, token_id: &str, at: Timestamp) -> Result<bool>;

    /// Stores an S3 key: its token row with the access key id and the sealed secret.
    /// `Conflict` when the access key id is taken.
    async fn create_s3_key(&self, key: &NewS3Key) -> Result<Token>;
    /// The S3 key with this access key id, with its sealed secret (revoked and expired ones
    /// too: the caller says why it does not work).
    async fn s3_key(&self, access_key_id: &str) -> Result<Option<StoredS3Key>>;
    /// A workspace's S3 keys (revoked too), oldest first, without their secrets.
    async fn list_s3_keys(&self, workspace_id: &str) -> Result<Vec<Token>>;
}
