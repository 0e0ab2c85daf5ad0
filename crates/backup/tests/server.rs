//! Server-side helpers against a real PostgreSQL: version and client tool, database discovery
//! for whole-server mode, and the health check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use statehouse_backup::pg_tools::{PgToolSearch, find_pg_tool_for_server};
use statehouse_backup::{PgConnection, check_health, discover_databases, server_version};

#[tokio::test]
async fn the_server_version_picks_a_matching_client_tool() {
    let Some(admin) = test_url() else { return };
    let connection = PgConnection::from_url(&admin).unwrap();
    let version = server_version(&connection).await.unwrap();
    assert_eq!(
        version.num.to_string(),
        psql(&admin, "SHOW server_version_num")
    );
    assert_eq!(version.text, psql(&admin, "SHOW server_version"));
    assert_eq!(version.major, version.num / 10_000);
    let (tool, same) = find_pg_tool_for_server("pg_restore", &connection, &PgToolSearch::system())
        .await
        .unwrap();
    assert_eq!(same, version);
    assert!(tool.major >= version.major);
    assert!(tool.path.ends_with("pg_restore"));

    let missing = connection.with_database("no_such_database_for_version");
    let err = server_version(&missing).await.unwrap_err().to_string();
    assert!(
        err.contains("no_such_database_for_version") && err.contains("does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn whole_server_mode_finds_connectable_non_template_databases_by_glob() {
    let Some(admin) = test_url() else { return };
    // A prefix of this run only, so other tests' databases never match.
    let prefix = unique("ds");
    let names = ["shop_eu", "shop_us", "shop_test", "crm", "t1", "t22"];
    let dbs: Vec<TestDb> = names
        .iter()
        .map(|n| {
            let db = TestDb {
                admin_url: admin.clone(),
                name: format!("{prefix}_{n}"),
                url: url_for(&admin, &format!("{prefix}_{n}")),
            };
            psql(&admin, &format!("CREATE DATABASE {}", db.name));
            db
        })
        .collect();
    let template = format!("{prefix}_template");
    let closed = format!("{prefix}_closed");
    let _flagged = Unflag {
        admin: admin.clone(),
        names: vec![template.clone(), closed.clone()],
    };
    psql(
        &admin,
        &format!("CREATE DATABASE {template} IS_TEMPLATE true"),
    );
    psql(
        &admin,
        &format!("CREATE DATABASE {closed} ALLOW_CONNECTIONS false"),
    );

    let connection = PgConnection::from_url(&admin).unwrap();
    let find = async |include: &[&str], exclude: &[&str]| {
        let with = |globs: &[&str]| -> Vec<String> {
            globs.iter().map(|g| format!("{prefix}_{g}")).collect()
        };
        let found = discover_databases(&connection, &with(include), &with(exclude))
            .await
            .unwrap();
        found
            .into_iter()
            .filter_map(|n| n.strip_prefix(&format!("{prefix}_")).map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        find(&["*"], &[]).await,
        ["crm", "shop_eu", "shop_test", "shop_us", "t1", "t22"]
    );
    assert_eq!(find(&["shop_*"], &["*_test"]).await, ["shop_eu", "shop_us"]);
    assert_eq!(find(&["t?"], &[]).await, ["t1"]);
    assert_eq!(find(&["t*", "crm"], &["t2?"]).await, ["crm", "t1"]);
    assert!(find(&["template", "closed"], &[]).await.is_empty());

    // No include globs: every database, still without templates and closed ones.
    let all = discover_databases(&connection, &[], &[]).await.unwrap();
    assert!(all.contains(&"postgres".to_owned()), "{all:?}");
    assert!(
        !all.iter().any(|n| n == "template0" || n == "template1"),
        "{all:?}"
    );
    assert!(
        !all.contains(&template) && !all.contains(&closed),
        "{all:?}"
    );
    for db in &dbs {
        assert!(all.contains(&db.name));
    }
}

/// Drops databases created as templates or closed to connections (also on panic).
struct Unflag {
    admin: String,
    names: Vec<String>,
}

impl Drop for Unflag {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = std::process::Command::new("psql")
                .args([
                    self.admin.as_str(),
                    "-X",
                    "-q",
                    "-c",
                    &format!("ALTER DATABASE {name} IS_TEMPLATE false"),
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name}"),
                ])
                .output();
        }
    }
}

#[tokio::test]
async fn the_health_check_measures_latency_or_says_why_it_failed() {
    let Some(admin) = test_url() else { return };
    let connection = PgConnection::from_url(&admin).unwrap();
    let latency = check_health(&connection, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(latency < Duration::from_secs(5));

    // Nothing listens on port 1.
    let closed = PgConnection::from_url("postgres://postgres@127.0.0.1:1/postgres").unwrap();
    let reason = check_health(&closed, Duration::from_secs(5))
        .await
        .unwrap_err();
    let refused = reason;
    assert!(
        refused.contains("could not connect to 127.0.0.1:1 "),
        "{refused}"
    );

    // A role that must log in with its password, given the wrong one.
    let role = password_role(&admin, "hc", "right-password");
    let wrong = PgConnection::from_url(&url_as(&admin, &role.name, "wrong-password")).unwrap();
    let reason = check_health(&wrong, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        reason.contains("password authentication failed") && reason.contains(&role.name),
        "{reason}"
    );
    assert!(!reason.contains("wrong-password"), "{reason}");
    let right = PgConnection::from_url(&url_as(&admin, &role.name, "right-password")).unwrap();
    check_health(&right, Duration::from_secs(5)).await.unwrap();

    // A port that accepts connections but never answers: the deadline decides.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let hanging =
        PgConnection::from_url(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).unwrap();
    let started = std::time::Instant::now();
    let reason = check_health(&hanging, Duration::from_millis(400))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    // A silent port reads like a closed one: the check does not tell them apart.
    assert_eq!(
        reason.replace(&format!(":{port}"), ":1"),
        refused,
        "{reason}"
    );
    hold.abort();
}
