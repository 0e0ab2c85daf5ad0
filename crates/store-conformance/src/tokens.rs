//! API tokens: created, looked up by secret hash, listed per workspace, revoked once.

use std::sync::Arc;

use statehouse_core::access::{Role, Token};
use statehouse_core::clock::Timestamp;
use statehouse_core::model::NewToken;
use statehouse_core::store::Store;

use crate::{T0, at, expect_conflict, ok, workspace};

pub(crate) fn new_token(
    id: &str,
    workspace_id: Option<&str>,
    role: Role,
    created_at: Timestamp,
) -> NewToken {
    NewToken {
        id: id.to_owned(),
        name: format!("{id} name"),
        user_id: None,
        workspace_id: workspace_id.map(str::to_owned),
        role,
        secret_hash: format!("hash-of-{id}"),
        created_at,
        expires_at: None,
    }
}

pub(crate) fn token_from(t: &NewToken) -> Token {
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
        s3_access_key_id: None,
    }
}

pub async fn token_create_and_lookup_by_hash(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    let mut expiring = new_token("t-editor", Some(&ws.id), Role::Editor, at(5));
    expiring.expires_at = Some(at(86_400_000));
    let cases = [
        new_token("t-admin", None, Role::Admin, at(1)),
        new_token("t-viewer", Some(&ws.id), Role::Viewer, at(2)),
        expiring,
    ];
    for t in &cases {
        let returned = ok(store.create_token(t).await, "create_token");
        assert_eq!(
            returned,
            token_from(t),
            "create_token returns the stored token"
        );
    }
    for t in &cases {
        assert_eq!(
            ok(store.token_by_hash(&t.secret_hash).await, "token_by_hash"),
            Some(token_from(t)),
            "token {:?} reads back exactly (role, workspace, expiry)",
            t.id
        );
    }
    assert_eq!(
        ok(store.token_by_hash("no-such-hash").await, "token_by_hash"),
        None
    );
}

pub async fn token_duplicate_hash_conflicts(store: Arc<dyn Store>) {
    let t = new_token("t1", None, Role::Admin, T0);
    ok(store.create_token(&t).await, "create_token");
    let mut same_hash = new_token("t2", None, Role::Viewer, T0);
    same_hash.secret_hash = t.secret_hash.clone();
    expect_conflict(
        store.create_token(&same_hash).await,
        "a second token with the same secret hash",
    );
    assert_eq!(
        ok(store.token_by_hash(&t.secret_hash).await, "token_by_hash"),
        Some(token_from(&t))
    );
}

pub async fn tokens_list_all_and_per_workspace(store: Arc<dyn Store>) {
    let a = workspace(&*store, "a").await;
    let b = workspace(&*store, "b").await;
    assert!(ok(store.list_tokens(None).await, "list_tokens").is_empty());
    // Created out of order: the list is by creation time.
    let tokens = [
        new_token("t3", Some(&a.id), Role::Editor, at(30)),
        new_token("t1", None, Role::Admin, at(10)),
        new_token("t4", Some(&b.id), Role::Viewer, at(40)),
        new_token("t2", Some(&a.id), Role::Viewer, at(20)),
    ];
    for t in &tokens {
        ok(store.create_token(t).await, "create_token");
    }
    assert!(ok(store.revoke_token("t2", at(50)).await, "revoke_token"));
    let ids = |list: Vec<Token>| list.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ok(store.list_tokens(None).await, "list_tokens(None)")),
        ["t1", "t2", "t3", "t4"],
        "all tokens (revoked ones too), oldest first"
    );
    assert_eq!(
        ids(ok(store.list_tokens(Some(&a.id)).await, "list_tokens(a)")),
        ["t2", "t3"],
        "only workspace a's tokens (not instance tokens), revoked ones too"
    );
    assert_eq!(
        ids(ok(store.list_tokens(Some(&b.id)).await, "list_tokens(b)")),
        ["t4"]
    );
    let listed = ok(store.list_tokens(None).await, "list_tokens");
    let t2 = listed.iter().find(|t| t.id == "t2").unwrap();
    assert_eq!(t2.revoked_at, Some(at(50)), "revocation shows in the list");
    assert_eq!(
        listed[0],
        token_from(&tokens[1]),
        "listed tokens carry all fields"
    );
}

pub async fn token_revoke_once(store: Arc<dyn Store>) {
    let t = new_token("t1", None, Role::Admin, T0);
    ok(store.create_token(&t).await, "create_token");
    assert!(
        ok(store.revoke_token("t1", at(10)).await, "revoke_token"),
        "first revoke reports true"
    );
    assert!(
        !ok(store.revoke_token("t1", at(20)).await, "revoke_token"),
        "second revoke reports false"
    );
    assert!(
        !ok(store.revoke_token("nope", at(20)).await, "revoke_token"),
        "revoking an unknown token reports false"
    );
    let read = ok(store.token_by_hash(&t.secret_hash).await, "token_by_hash").unwrap();
    assert_eq!(
        read.revoked_at,
        Some(at(10)),
        "the first revocation time is kept"
    );
    assert!(!read.is_usable_at(at(11)));
}
