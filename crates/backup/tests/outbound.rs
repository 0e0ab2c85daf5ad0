//! PostgreSQL connections under the outbound policy, against the real test PostgreSQL and the
//! real `pg_dump`: a checked name reaches exactly its checked addresses (sessions and libpq
//! tools alike); a refused one starts no tool and touches nothing; statehouse's own store keeps
//! its contents to itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use age::secrecy::SecretString;
use common::*;
use statehouse_backup::{
    Encryption, PgConnection, create_readonly_role, discover_databases, dump_to, server_version,
};
use statehouse_outbound::{OutboundPolicy, StoreLocation};

fn recipient() -> Encryption {
    Encryption::Recipients(vec![age::x25519::Identity::generate().to_public()])
}

#[tokio::test]
async fn a_checked_name_reaches_postgres_at_its_checked_addresses() {
    let Some(admin) = test_url() else { return };
    let source = TestDb::create(&admin, "ob_name");
    fill(&source);
    // The test server listens on 127.0.0.1 only; `localhost` may resolve to ::1 first, which
    // refuses, and then to 127.0.0.1: sessions and pg_dump must both get through.
    let url = source.url.replacen("127.0.0.1", "localhost", 1);
    assert!(url.contains("@localhost:"), "{url}");
    let policy = Arc::new(OutboundPolicy::default().allowing_loopback());
    let connection = PgConnection::from_url(&url).unwrap().checked_by(policy);
    server_version(&connection).await.unwrap();
    let (pg_dump, _) = pg_dump_for(&admin).await;
    let mut options = dump_options(pg_dump, &url, recipient());
    options.connection = connection;
    let mut object = Vec::new();
    let outcome = dump_to(&options, &mut object).await.unwrap();
    assert!(outcome.dump_bytes > 0 && !object.is_empty());
}

#[tokio::test]
async fn a_refused_connection_starts_no_tool_and_touches_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    // A stand-in pg_dump that leaves a mark if it is ever started.
    let marker = tmp.path().join("started");
    let pg_dump = tmp.path().join("pg_dump");
    std::fs::write(
        &pg_dump,
        format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&pg_dump, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket_dir = tmp.path().join("socket");
    std::fs::create_dir(&socket_dir).unwrap();
    let socket = std::os::unix::net::UnixListener::bind(socket_dir.join(".s.PGSQL.5432")).unwrap();
    socket.set_nonblocking(true).unwrap();

    let strict = Arc::new(OutboundPolicy::default());
    let mut connections: Vec<PgConnection> = [
        "127.1",
        "2130706433",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "localhost",
        "169.254.169.254",
    ]
    .iter()
    .map(|host| {
        PgConnection::from_url(&format!("postgres://postgres:pw@{host}:{port}/shop"))
            .unwrap()
            .checked_by(strict.clone())
    })
    .collect();
    let mut through_socket = PgConnection::from_url("postgres://postgres@localhost/shop")
        .unwrap()
        .checked_by(strict.clone());
    through_socket.host = socket_dir.display().to_string();
    connections.push(through_socket);

    for connection in connections {
        let what = connection.describe();
        let err = server_version(&connection).await.unwrap_err().to_string();
        assert!(
            err.starts_with("refused by the outbound policy: databases may not connect to"),
            "{what}: {err}"
        );
        let mut options = dump_options(pg_dump.clone(), "postgres://x@h/shop", recipient());
        options.connection = connection.clone();
        let err = dump_to(&options, &mut Vec::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("refused by the outbound policy"),
            "{what}: {err}"
        );
        let err = create_readonly_role(
            &connection,
            "reader",
            &SecretString::from("reader-pa55".to_owned()),
            &["shop".to_owned()],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("refused by the outbound policy"),
            "{what}: {err}"
        );
    }
    assert!(!marker.exists(), "pg_dump was started");
    assert!(
        listener.accept().is_err() && socket.accept().is_err(),
        "a listener on this host was contacted"
    );
}

#[tokio::test]
async fn the_own_store_keeps_its_contents_to_itself() {
    let Some(admin) = test_url() else { return };
    let store = TestDb::create(&admin, "ob_store");
    fill(&store);
    let other = TestDb::create(&admin, "ob_other");
    let location = StoreLocation::from_postgres_url(&store.url).unwrap();
    let policy = Arc::new(
        OutboundPolicy::default()
            .allowing_loopback()
            .with_own_store(vec![location]),
    );
    let checked = |url: &str| {
        PgConnection::from_url(url)
            .unwrap()
            .checked_by(policy.clone())
    };
    // Reading the version (what a check or a restore's preparation does) is fine.
    server_version(&checked(&store.url)).await.unwrap();
    let (pg_dump, _) = pg_dump_for(&admin).await;
    let mut options = dump_options(pg_dump.clone(), &store.url, recipient());
    options.connection = checked(&store.url);
    let err = dump_to(&options, &mut Vec::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("statehouse's own store") && err.contains("outbound.allow_own_store = true"),
        "{err}"
    );
    let err = create_readonly_role(
        &checked(&admin),
        "ob_reader_never_created",
        &SecretString::from("reader-pa55".to_owned()),
        std::slice::from_ref(&store.name),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("statehouse's own store"), "{err}");
    // Whole-server mode leaves it out and keeps the rest.
    let found = discover_databases(&checked(&admin), &[], &[])
        .await
        .unwrap();
    assert!(!found.contains(&store.name), "{found:?}");
    assert!(found.contains(&other.name), "{found:?}");
    // Another database of the same server dumps.
    let mut options = dump_options(pg_dump, &other.url, recipient());
    options.connection = checked(&other.url);
    dump_to(&options, &mut Vec::new()).await.unwrap();
}
