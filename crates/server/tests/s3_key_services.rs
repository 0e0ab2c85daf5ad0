//! `Services` for S3 access keys: the credentials the S3 listener asks for (usable keys only,
//! with the reason otherwise, from memory for up to a second, last use once a minute), the
//! separation from API tokens both ways, who may create which key, and master key rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::TestServer;
use statehouse_core::Error;
use statehouse_core::access::{Credential, Principal, Role, TokenKind};
use statehouse_core::audit::{AuditQuery, Outcome};
use statehouse_core::crypto::{Cipher, KeyFile, MasterKey};
use statehouse_core::s3_keys::{S3KeyInfo, S3Secret};
use statehouse_core::service::{S3KeyOwner, S3KeyRequest, Services, UserChange};

fn request(owner: S3KeyOwner, role: Option<Role>, name: &str) -> S3KeyRequest {
    S3KeyRequest {
        workspace: "default".into(),
        name: name.into(),
        owner,
        role,
        expires_in_millis: None,
    }
}

async fn service_key(s: &TestServer, role: Role, name: &str) -> (S3KeyInfo, S3Secret) {
    s.services
        .create_s3_key(
            &Principal::local_operator(),
            request(S3KeyOwner::Service, Some(role), name),
        )
        .await
        .unwrap()
}

fn unauthorized(result: Result<Option<impl std::fmt::Debug>, Error>) -> String {
    match result {
        Err(Error::Unauthorized(why)) => why,
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn credentials_of_a_usable_key_until_it_is_revoked() {
    let s = TestServer::start().await;
    let default = s.services.workspace("default").await.unwrap().id;
    let (key, secret) = service_key(&s, Role::Editor, "pulumi-ci").await;
    assert!(key.access_key_id.starts_with("SHK") && key.access_key_id.len() == 20);
    assert_eq!(key.token.kind, TokenKind::Service);

    let creds = s
        .services
        .s3_key_credentials(&key.access_key_id, Some("10.1.2.3".into()))
        .await
        .unwrap()
        .expect("a usable key");
    assert_eq!(creds.secret.as_str(), secret.expose());
    let who = &creds.principal;
    assert_eq!(
        who.token_name, "pulumi-ci",
        "shown as writer and lock holder"
    );
    assert_eq!(who.token_id, key.token.id);
    assert_eq!(who.credential, Credential::Token(TokenKind::Service));
    assert_eq!(who.role_in(&default), Some(Role::Editor));
    assert_eq!(who.source_ip.as_deref(), Some("10.1.2.3"));
    assert!(!who.instance_admin);
    assert!(
        !format!("{creds:?}").contains(secret.expose()),
        "never debugged"
    );

    s.services
        .revoke_s3_key(&Principal::local_operator(), "default", &key.access_key_id)
        .await
        .unwrap();
    let why = unauthorized(
        s.services
            .s3_key_credentials(&key.access_key_id, None)
            .await,
    );
    assert!(why.contains("revoked"), "{why}");
    assert!(matches!(
        s.services
            .revoke_s3_key(&Principal::local_operator(), "default", &key.access_key_id)
            .await,
        Err(Error::Conflict(_))
    ));

    // Unknown ids, of our shape or not: no such key.
    for id in ["SHK00000000000000000", "AKIAIOSFODNN7EXAMPLE", "", "SHK\0"] {
        assert!(
            s.services
                .s3_key_credentials(id, None)
                .await
                .unwrap()
                .is_none(),
            "{id:?}"
        );
    }
    s.services.flush_journal().await;
}

#[tokio::test]
async fn expired_keys_and_disabled_users_are_refused_with_the_reason() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    let (expiring, _) = s
        .services
        .create_s3_key(
            &op,
            S3KeyRequest {
                expires_in_millis: Some(60_000),
                ..request(S3KeyOwner::Service, Some(Role::Viewer), "short")
            },
        )
        .await
        .unwrap();
    assert!(
        s.services
            .s3_key_credentials(&expiring.access_key_id, None)
            .await
            .unwrap()
            .is_some()
    );
    s.clock.advance_millis(60_000);
    let why = unauthorized(
        s.services
            .s3_key_credentials(&expiring.access_key_id, None)
            .await,
    );
    assert!(why.contains("expired"), "{why}");

    // A user key acts with its user's roles in the workspace, capped by its role.
    let default = s.services.workspace("default").await.unwrap().id;
    s.user("alice", &[("default", Role::Admin), ("other", Role::Admin)])
        .await;
    let (alices, secret) = s
        .services
        .create_s3_key(
            &op,
            request(
                S3KeyOwner::User("alice".into()),
                Some(Role::Editor),
                "laptop",
            ),
        )
        .await
        .unwrap();
    assert_eq!(alices.token.kind, TokenKind::User);
    assert_eq!(alices.token.user.as_deref(), Some("alice"));
    let creds = s
        .services
        .s3_key_credentials(&alices.access_key_id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.secret.as_str(), secret.expose());
    assert_eq!(creds.principal.actor(), "alice");
    assert_eq!(creds.principal.token_name, "laptop");
    assert_eq!(
        creds.principal.role_in(&default),
        Some(Role::Editor),
        "capped"
    );
    let other = s.services.workspace("other").await.unwrap().id;
    assert_eq!(
        creds.principal.role_in(&other),
        None,
        "narrowed to its workspace"
    );

    s.services
        .update_user(
            &op,
            "alice",
            UserChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let why = unauthorized(
        s.services
            .s3_key_credentials(&alices.access_key_id, None)
            .await,
    );
    assert!(why.contains("disabled"), "{why}");
}

#[tokio::test]
async fn s3_keys_and_api_tokens_never_stand_in_for_each_other() {
    let s = TestServer::start().await;
    let (key, secret) = service_key(&s, Role::Admin, "k").await;
    for presented in [
        key.access_key_id.clone(),
        secret.expose().to_owned(),
        format!("{}:{}", key.access_key_id, secret.expose()),
        format!("s3-key:{}", key.access_key_id),
    ] {
        assert!(
            matches!(
                s.services.authenticate(&presented).await,
                Err(Error::Unauthorized(_))
            ),
            "{presented:?} is no bearer token"
        );
    }
    let token = s.token(Some("default"), Role::Admin).await;
    assert!(
        s.services
            .s3_key_credentials(&token, None)
            .await
            .unwrap()
            .is_none(),
        "an API token is no access key id"
    );
    // API token listings leave S3 keys out; the S3 key list has them.
    let op = Principal::local_operator();
    let tokens = s
        .services
        .tokens_visible_to(&op, Some("default"))
        .await
        .unwrap();
    assert!(tokens.iter().all(|t| t.id != key.token.id));
    let keys = s.services.list_s3_keys(&op, "default").await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].access_key_id, key.access_key_id);
}

#[tokio::test]
async fn credentials_come_from_memory_for_a_second_and_use_is_recorded_once_a_minute() {
    let s = TestServer::start().await;
    let (key, _) = service_key(&s, Role::Editor, "k").await;
    let last_used = || async {
        s.store
            .token_by_id(&key.token.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    let first = s.services.now();
    s.services
        .s3_key_credentials(&key.access_key_id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last_used().await, Some(first));
    for _ in 0..59 {
        s.clock.advance_millis(1_000);
        s.services
            .s3_key_credentials(&key.access_key_id, None)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(last_used().await, Some(first), "no write within the minute");
    s.clock.advance_millis(1_000);
    s.services
        .s3_key_credentials(&key.access_key_id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last_used().await, Some(s.services.now()));

    // A revocation made by another process (straight in the store) applies within a second.
    s.store
        .revoke_token(&key.token.id, s.services.now())
        .await
        .unwrap();
    assert!(
        s.services
            .s3_key_credentials(&key.access_key_id, None)
            .await
            .is_ok(),
        "still trusted from memory"
    );
    s.clock.advance_millis(1_000);
    unauthorized(
        s.services
            .s3_key_credentials(&key.access_key_id, None)
            .await,
    );
}

#[tokio::test]
async fn who_may_create_list_and_revoke_which_key_is_as_for_tokens() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    s.user("alice", &[("default", Role::Editor)]).await;
    s.user("bob", &[("default", Role::Admin)]).await;
    let alice = s
        .services
        .authenticate(&s.user_token("alice", None, None).await)
        .await
        .unwrap();
    let bob = s
        .services
        .authenticate(&s.user_token("bob", None, None).await)
        .await
        .unwrap();
    let narrowed = s
        .services
        .authenticate(&s.user_token("alice", Some("default"), None).await)
        .await
        .unwrap();
    let editor = s
        .services
        .authenticate(&s.token(Some("default"), Role::Editor).await)
        .await
        .unwrap();

    // An editor makes keys of its own, not service keys; a narrowed token makes none.
    let (mine, _) = s
        .services
        .create_s3_key(
            &alice,
            request(S3KeyOwner::Me, Some(Role::Viewer), "alice-laptop"),
        )
        .await
        .unwrap();
    assert_eq!(mine.token.role, Role::Viewer);
    for (who, owner) in [
        (&alice, S3KeyOwner::Service),
        (&editor, S3KeyOwner::Service),
        (&alice, S3KeyOwner::User("bob".into())),
    ] {
        let refused = s
            .services
            .create_s3_key(who, request(owner.clone(), Some(Role::Editor), "nope"))
            .await;
        assert!(
            matches!(refused, Err(Error::Forbidden(_))),
            "{} {owner:?}: {refused:?}",
            who.describe()
        );
    }
    assert!(matches!(
        s.services
            .create_s3_key(&narrowed, request(S3KeyOwner::Me, None, "nope"))
            .await,
        Err(Error::Forbidden(_))
    ));
    assert!(
        matches!(
            s.services
                .create_s3_key(&editor, request(S3KeyOwner::Me, None, "nope"))
                .await,
            Err(Error::BadRequest(_))
        ),
        "a service token has no user to own a key"
    );
    assert!(
        matches!(
            s.services
                .create_s3_key(&bob, request(S3KeyOwner::Service, None, "no-role"))
                .await,
            Err(Error::BadRequest(_))
        ),
        "a service key needs a role"
    );
    s.clock.advance_millis(1);
    let (service, _) = s
        .services
        .create_s3_key(&bob, request(S3KeyOwner::Service, Some(Role::Editor), "ci"))
        .await
        .unwrap();

    // Alice sees her own key only; bob (workspace admin) his service keys, not alice's.
    let names = |keys: Vec<S3KeyInfo>| keys.into_iter().map(|k| k.token.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.services.list_s3_keys(&alice, "default").await.unwrap()),
        ["alice-laptop"]
    );
    assert_eq!(
        names(s.services.list_s3_keys(&bob, "default").await.unwrap()),
        ["ci"]
    );
    assert_eq!(
        names(s.services.list_s3_keys(&op, "default").await.unwrap()),
        ["alice-laptop", "ci"]
    );
    assert!(matches!(
        s.services.list_s3_keys(&alice, "other").await,
        Err(Error::NotFound(_))
    ));

    // Alice may not revoke the service key (forbidden by role), bob not alice's (not named).
    assert!(matches!(
        s.services
            .revoke_s3_key(&alice, "default", &service.access_key_id)
            .await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        s.services
            .revoke_s3_key(&bob, "default", &mine.access_key_id)
            .await,
        Err(Error::NotFound(_))
    ));
    // A key is named within its workspace only.
    assert!(matches!(
        s.services
            .revoke_s3_key(&op, "other", &mine.access_key_id)
            .await,
        Err(Error::NotFound(_))
    ));
    s.services
        .revoke_s3_key(&alice, "default", &mine.access_key_id)
        .await
        .unwrap();
    s.services
        .revoke_s3_key(&bob, "default", &service.access_key_id)
        .await
        .unwrap();

    // Every step is audited, the secret never.
    s.services.flush_journal().await;
    let entries = s
        .services
        .audit_entries(&op, AuditQuery::all_after(0, 1_000))
        .await
        .unwrap();
    let created: Vec<_> = entries
        .iter()
        .filter(|e| e.record.action == "s3_key.create" && e.record.outcome == Outcome::Success)
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(
        created[0].record.target.as_deref(),
        Some(mine.access_key_id.as_str())
    );
    assert_eq!(created[0].record.actor, "alice");
    let revoked = entries
        .iter()
        .filter(|e| e.record.action == "s3_key.revoke" && e.record.outcome == Outcome::Success)
        .count();
    assert_eq!(revoked, 2);
    assert!(
        entries
            .iter()
            .any(|e| e.record.action == "s3_key.create" && e.record.outcome == Outcome::Denied),
        "refusals are audited"
    );
}

#[tokio::test]
async fn master_key_rotation_keeps_s3_secrets_readable() {
    let s = TestServer::start().await;
    let (key, secret) = service_key(&s, Role::Editor, "rotating").await;
    let old = KeyFile::new(s.dir.path().join("master.key"))
        .load()
        .unwrap();
    let new_key = MasterKey::generate();

    // As `statehouse key rotate`: re-wrap everything under the new primary.
    let rotated = old.with_new_primary(new_key.clone());
    let rotating = Services::new(
        s.store.clone(),
        Arc::new(Cipher::fixed(rotated.clone())),
        s.clock.clone(),
    );
    assert!(rotating.rewrap_all_keys().await.unwrap() >= 1);
    assert!(!rotating.key_in_use(old.primary().id()).await.unwrap());

    // Then the old key is forgotten: only the new one opens the secret.
    let only_new = Services::new(
        s.store.clone(),
        Arc::new(Cipher::fixed(
            rotated.retire_all_but_primary().without_retired(),
        )),
        s.clock.clone(),
    );
    let creds = only_new
        .s3_key_credentials(&key.access_key_id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.secret.as_str(), secret.expose());
}
