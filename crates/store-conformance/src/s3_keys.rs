//! S3 access keys: token rows with an access key id and a sealed secret. Found by access key
//! id with their sealed bytes exactly as stored, listed per workspace apart from API tokens,
//! never found as bearer tokens, revoked like tokens.

use std::sync::Arc;

use statehouse_core::access::{Role, Token};
use statehouse_core::s3_keys::{NewS3Key, StoredS3Key, unpresentable_hash};
use statehouse_core::store::Store;

use crate::tokens::{new_token, token_from};
use crate::{at, expect_conflict, ok, sealed, workspace};

/// An S3 key `id` in a workspace, with the access key id `SHK` followed by `id` padded out.
pub(crate) fn new_s3_key(id: &str, workspace_id: &str, role: Role, created: i64) -> NewS3Key {
    let access_key_id = format!("SHK{:0>17}", id.to_uppercase().replace('-', ""));
    let mut token = new_token(id, Some(workspace_id), role, at(created));
    token.secret_hash = unpresentable_hash(&access_key_id);
    NewS3Key {
        token,
        access_key_id,
        secret: sealed(id),
    }
}

pub(crate) fn stored_key(key: &NewS3Key) -> StoredS3Key {
    StoredS3Key {
        token: Token {
            s3_access_key_id: Some(key.access_key_id.clone()),
            ..token_from(&key.token)
        },
        secret: key.secret.clone(),
    }
}

pub(crate) async fn create_s3_key(store: &dyn Store, key: &NewS3Key) -> Token {
    ok(store.create_s3_key(key).await, "create_s3_key")
}

pub async fn s3_key_create_and_lookup_by_access_key_id(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let mut expiring = new_s3_key("k2", &ws.id, Role::Viewer, 2);
    expiring.token.expires_at = Some(at(86_400_000));
    for key in [new_s3_key("k1", &ws.id, Role::Editor, 1), expiring] {
        let returned = create_s3_key(&*store, &key).await;
        assert_eq!(returned, stored_key(&key).token, "create returns the row");
        assert_eq!(
            ok(store.s3_key(&key.access_key_id).await, "s3_key"),
            Some(stored_key(&key)),
            "{}: token fields and sealed bytes (binary) read back exactly",
            key.access_key_id
        );
        assert_eq!(
            ok(store.token_by_id(&key.token.id).await, "token_by_id"),
            Some(stored_key(&key).token),
            "an S3 key is a token, found by id"
        );
        assert_eq!(
            ok(
                store.token_by_hash(&key.token.secret_hash).await,
                "token_by_hash"
            ),
            None,
            "an S3 key is never found as a bearer token, even by its stored hash"
        );
    }
    assert_eq!(
        ok(store.s3_key("SHK00000000000000000").await, "s3_key"),
        None
    );
}

pub async fn s3_key_access_key_ids_are_unique(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let first = new_s3_key("k1", &ws.id, Role::Editor, 1);
    create_s3_key(&*store, &first).await;
    let mut same_id = new_s3_key("k2", &ws.id, Role::Viewer, 2);
    same_id.access_key_id = first.access_key_id.clone();
    expect_conflict(
        store.create_s3_key(&same_id).await,
        "a second S3 key with the same access key id",
    );
    assert_eq!(
        ok(store.s3_key(&first.access_key_id).await, "s3_key"),
        Some(stored_key(&first)),
        "the first key is untouched"
    );
    assert_eq!(
        ok(store.token_by_id("k2").await, "token_by_id"),
        None,
        "nothing of the refused key is stored"
    );
}

pub async fn s3_keys_are_listed_per_workspace_apart_from_api_tokens(store: Arc<dyn Store>) {
    let a = workspace(&*store, "a").await;
    let b = workspace(&*store, "b").await;
    // Created out of order: lists go by creation time.
    let keys = [
        new_s3_key("k3", &a.id, Role::Editor, 30),
        new_s3_key("k1", &a.id, Role::Admin, 10),
        new_s3_key("k2", &b.id, Role::Viewer, 20),
    ];
    for key in &keys {
        create_s3_key(&*store, key).await;
    }
    ok(
        store
            .create_token(&new_token("t1", Some(&a.id), Role::Editor, at(5)))
            .await,
        "create_token",
    );
    assert!(ok(store.revoke_token("k3", at(40)).await, "revoke_token"));
    let ids = |list: Vec<Token>| list.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let in_a = ok(store.list_s3_keys(&a.id).await, "list_s3_keys(a)");
    assert_eq!(
        ids(in_a.clone()),
        ["k1", "k3"],
        "a's keys, revoked ones too"
    );
    assert_eq!(
        in_a[0],
        stored_key(&keys[1]).token,
        "listed with all fields"
    );
    assert_eq!(in_a[1].revoked_at, Some(at(40)), "revocation shows");
    assert_eq!(
        ids(ok(store.list_s3_keys(&b.id).await, "list_s3_keys(b)")),
        ["k2"]
    );
    assert_eq!(
        ids(ok(store.list_tokens(Some(&a.id)).await, "list_tokens(a)")),
        ["t1"],
        "API token lists leave S3 keys out"
    );
    assert_eq!(
        ids(ok(store.list_tokens(None).await, "list_tokens")),
        ["t1"]
    );
    let revoked = ok(store.s3_key(&keys[0].access_key_id).await, "s3_key");
    assert_eq!(revoked.map(|k| k.token.revoked_at), Some(Some(at(40))));
    assert!(
        !ok(store.revoke_token("k3", at(50)).await, "revoke_token"),
        "revoked once"
    );
    ok(store.touch_token("k1", at(60)).await, "touch_token");
    let touched = ok(store.s3_key(&keys[1].access_key_id).await, "s3_key");
    assert_eq!(
        touched.map(|k| k.token.last_used_at),
        Some(Some(at(60))),
        "last use is recorded like a token's"
    );
}
