//! What the store keeps for the master key: where every sealed record's wrapped data key is
//! (by [`SealedKind`], for rotation and the key check), and the check value of each master
//! key id it has seen.

use async_trait::async_trait;

use crate::Result;
use crate::sealed::{KeyCheck, KeyFilter, SealedKind, WrappedKeyRef};

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Up to `limit` wrapped data keys of `kind` matching `filter`, in row order.
    async fn wrapped_keys(
        &self,
        kind: SealedKind,
        filter: KeyFilter<'_>,
        limit: i64,
    ) -> Result<Vec<WrappedKeyRef>>;
    /// Replaces one wrapped data key if its row still holds `old`'s key id and wrapped bytes
    /// (compare and set); the ciphertext is untouched.
    async fn replace_wrapped_key(
        &self,
        old: &WrappedKeyRef,
        new_key_id: &str,
        new_wrapped: &[u8],
    ) -> Result<bool>;
    /// Every master key id some sealed record of any kind is wrapped under, sorted.
    async fn key_ids_in_use(&self) -> Result<Vec<String>>;

    /// The recorded check values, by key id.
    async fn key_checks(&self) -> Result<Vec<KeyCheck>>;
    /// Records a key id's check value unless one is recorded already (then false: the first
    /// one stays, and the caller compares with it).
    async fn record_key_check(&self, check: &KeyCheck) -> Result<bool>;
}
