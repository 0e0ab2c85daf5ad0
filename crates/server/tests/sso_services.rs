//! `Services::sso_login`: users a provider vouched for are created on their first sign-in,
//! found again by their provider account (issuer and subject), their roles follow their groups
//! at every sign-in, and the refusals (disabled users, users made any other way, another
//! provider account of the same name, names no user can have) say why. Password sign-in can
//! be turned off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::TestServer;
use statehouse_core::Error;
use statehouse_core::access::{Principal, Role};
use statehouse_core::accounts::{AuthSettings, SessionSecret};
use statehouse_core::audit::AuditQuery;
use statehouse_core::service::UserChange;
use statehouse_core::sso::{ExternalIdentity, GroupMapping};

fn mapping() -> GroupMapping {
    GroupMapping {
        admin_groups: vec!["ops".into()],
        workspace_roles: BTreeMap::from([
            (
                "platform".to_owned(),
                BTreeMap::from([("default".to_owned(), Role::Editor)]),
            ),
            (
                "readers".to_owned(),
                BTreeMap::from([
                    ("default".to_owned(), Role::Viewer),
                    ("no-such-workspace".to_owned(), Role::Viewer),
                ]),
            ),
        ]),
    }
}

fn identity(name: &str, groups: &[&str]) -> ExternalIdentity {
    ExternalIdentity {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        provider: "https://idp.example".into(),
        subject: format!("sub-{}", name.to_lowercase()),
    }
}

async fn roles_of(s: &TestServer, name: &str) -> BTreeMap<String, Role> {
    s.services
        .user_memberships(&Principal::local_operator(), name)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.workspace_name, m.role))
        .collect()
}

#[tokio::test]
async fn first_sign_in_creates_the_user_and_groups_give_roles_every_time() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    let logged_in = s
        .services
        .sso_login(
            &identity("Carol", &["readers", "platform"]),
            &mapping(),
            Some("10.0.0.1"),
        )
        .await
        .unwrap();
    assert_eq!(logged_in.user.name, "carol");
    assert!(!logged_in.user.has_password());
    assert!(!logged_in.user.instance_admin);
    // The session works like a password login's.
    let (who, _) = s
        .services
        .authenticate_session(&SessionSecret::from_cookie(logged_in.secret.expose()))
        .await
        .unwrap();
    assert_eq!(who.actor(), "carol");
    assert_eq!(
        roles_of(&s, "carol").await,
        BTreeMap::from([("default".to_owned(), Role::Editor)]),
        "the highest role of the groups; a missing workspace is skipped"
    );
    // A role given by hand in a workspace the mapping does not name stays.
    s.services
        .set_member(&op, "other", "carol", Role::Admin)
        .await
        .unwrap();
    // In the admin group: instance admin. Out of every mapped group: no role in `default`.
    s.services
        .sso_login(&identity("carol", &["ops"]), &mapping(), None)
        .await
        .unwrap();
    let carol = s.services.user(&op, "carol").await.unwrap();
    assert!(carol.instance_admin);
    assert_eq!(
        roles_of(&s, "carol").await,
        BTreeMap::from([("other".to_owned(), Role::Admin)])
    );
    // Out of the admin group: the flag stays while carol is the only enabled instance admin,
    // and goes once there is another.
    s.services
        .sso_login(&identity("carol", &["readers"]), &mapping(), None)
        .await
        .unwrap();
    assert!(s.services.user(&op, "carol").await.unwrap().instance_admin);
    s.services
        .create_user(&op, "root", Some(common::PASSWORD), true)
        .await
        .unwrap();
    s.services
        .sso_login(&identity("carol", &["readers"]), &mapping(), None)
        .await
        .unwrap();
    let carol = s.services.user(&op, "carol").await.unwrap();
    assert!(!carol.instance_admin);
    assert_eq!(roles_of(&s, "carol").await["default"], Role::Viewer);
    // The audit log records the method and what changed.
    let query = AuditQuery {
        action: Some("login.succeeded".into()),
        target: Some("carol".into()),
        limit: 100,
        ..AuditQuery::default()
    };
    let entries = s.services.audit_entries(&op, query).await.unwrap();
    assert_eq!(entries.len(), 4);
    let first = &entries[0];
    let detail = first.record.detail.as_deref().unwrap();
    assert!(detail.contains("\"method\":\"oidc\""), "{detail}");
    assert!(detail.contains("user created"), "{detail}");
    assert_eq!(first.record.source_ip.as_deref(), Some("10.0.0.1"));
}

#[tokio::test]
async fn refusals_say_why() {
    let s = TestServer::start().await;
    let op = Principal::local_operator();
    // A name no user can have.
    let err = s
        .services
        .sso_login(&identity("Bad Name!", &[]), &mapping(), None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("cannot be a statehouse user name")),
        "{err}"
    );
    // A local account (it has a password), and the first-start admin, are not taken over.
    s.user("dave", &[]).await;
    let err = s
        .services
        .sso_login(&identity("dave", &["ops"]), &mapping(), None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("not created by single sign-on")),
        "{err}"
    );
    assert!(!s.services.user(&op, "dave").await.unwrap().instance_admin);
    // Nor is a passwordless user made by hand (`user add`, e.g. for tokens only).
    s.services
        .create_user(&op, "tokens-only", None, false)
        .await
        .unwrap();
    let err = s
        .services
        .sso_login(&identity("tokens-only", &["ops"]), &mapping(), None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("not created by single sign-on")),
        "{err}"
    );
    assert!(
        !s.services
            .user(&op, "tokens-only")
            .await
            .unwrap()
            .instance_admin
    );
    // A user single sign-on made is found by its provider account, not its name: another
    // account (another subject, or the same subject at another issuer) with that name is
    // refused, and a rename at the provider keeps the same user.
    s.services
        .sso_login(&identity("hana", &[]), &mapping(), None)
        .await
        .unwrap();
    for (provider, subject) in [
        ("https://idp.example", "sub-someone-else"),
        ("https://other-idp.example", "sub-hana"),
    ] {
        let impostor = ExternalIdentity {
            provider: provider.into(),
            subject: subject.into(),
            ..identity("hana", &["ops"])
        };
        let err = s
            .services
            .sso_login(&impostor, &mapping(), None)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, Error::Forbidden(m) if m.contains("belongs to another")),
            "{err}"
        );
    }
    assert!(!s.services.user(&op, "hana").await.unwrap().instance_admin);
    let renamed = ExternalIdentity {
        subject: "sub-hana".into(),
        ..identity("hana.new", &[])
    };
    let again = s
        .services
        .sso_login(&renamed, &mapping(), None)
        .await
        .unwrap();
    assert_eq!(
        again.user.name, "hana",
        "the same user, under its statehouse name"
    );
    // The first-start admin has no password yet, and is still not taken over.
    s.services
        .create_user(&op, "admin", None, true)
        .await
        .unwrap();
    let err = s
        .services
        .sso_login(&identity("admin", &[]), &mapping(), None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Forbidden(_)));
    // A disabled user.
    s.services
        .sso_login(&identity("erin", &[]), &mapping(), None)
        .await
        .unwrap();
    s.services
        .update_user(
            &op,
            "erin",
            UserChange {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = s
        .services
        .sso_login(&identity("erin", &[]), &mapping(), None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("disabled")),
        "{err}"
    );
}

#[tokio::test]
async fn password_sign_in_can_be_turned_off() {
    let s = TestServer::start().await;
    s.user("frank", &[]).await;
    let off = s.services.clone().with_auth_settings(AuthSettings {
        password_login: false,
        ..AuthSettings::default()
    });
    let err = off
        .login("frank", common::PASSWORD, None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("local_login")),
        "{err}"
    );
    // Single sign-on still signs users in.
    off.sso_login(&identity("grace", &[]), &GroupMapping::default(), None)
        .await
        .unwrap();
    // The first-run setup stays open to instance admins only (the way in before the
    // provider works), and signs them in.
    let op = Principal::local_operator();
    s.services
        .create_user(&op, "boot", None, true)
        .await
        .unwrap();
    s.services
        .create_user(&op, "plain", None, false)
        .await
        .unwrap();
    let boot_token = s.user_token("boot", None, None).await;
    let plain_token = s.user_token("plain", None, None).await;
    let err = off
        .set_first_password(&plain_token, "a new password here", None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("instance admins")),
        "{err}"
    );
    let logged_in = off
        .set_first_password(&boot_token, "a new password here", None)
        .await
        .unwrap();
    assert_eq!(logged_in.user.name, "boot");
    // And with it on, the same password works.
    s.services
        .login("frank", common::PASSWORD, None)
        .await
        .unwrap();
}
