//! A whole server backed up (its globals — roles, memberships, password hashes — and its
//! databases) and restored onto a second, freshly initialised PostgreSQL cluster with owners
//! and grants, through the real binary, on both stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;
#[macro_use]
mod common;

use backup_support::{FreshCluster, fails, items, json_of, pg_text, with_target_allowing};
use common::{Store, Via, pg_execute, pg_url, pg_url_for_database, skip_e2e, unique_name};

on_both_stores!(whole_server_restores_onto_a_fresh_cluster_with_owners_and_grants);

/// Roles and databases this test makes on the test PostgreSQL, dropped at the end
/// (databases first).
struct SourceCluster {
    databases: Vec<String>,
    roles: Vec<String>,
}

impl Drop for SourceCluster {
    fn drop(&mut self) {
        for db in &self.databases {
            let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
            if let Err(e) = pg_execute(&pg_url(), &sql) {
                eprintln!("cleanup: {e}");
            }
        }
        for role in &self.roles {
            if let Err(e) = pg_execute(&pg_url(), &format!("DROP ROLE IF EXISTS \"{role}\"")) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// `url` connecting as `user` (no password: the test clusters trust local connections).
fn as_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

fn whole_server_restores_onto_a_fresh_cluster_with_owners_and_grants(store: Store) {
    if skip_e2e() {
        return;
    }
    // On PostgreSQL the store lives in the very cluster this test backs up whole: the operator
    // allows that explicitly (the outbound policy refuses it by default).
    let (server, _dir) =
        with_target_allowing(store, &[("STATEHOUSE_OUTBOUND__ALLOW_OWN_STORE", "true")]);
    let u = unique_name("ws");
    let (owner, reader, admin) = (
        format!("{u}_owner"),
        format!("{u}_reader"),
        format!("{u}_admin"),
    );
    let (db_a, db_b) = (format!("{u}_a"), format!("{u}_b"));
    let _source = SourceCluster {
        databases: vec![db_a.clone(), db_b.clone()],
        roles: vec![owner.clone(), reader.clone(), admin.clone()],
    };
    let source_url = pg_url();
    // Roles with a membership and passwords; a database owned by a non-superuser role whose
    // table is granted to another role; a superuser whose password differs on the target.
    for sql in [
        format!(
            "CREATE ROLE {reader} NOLOGIN;
             CREATE ROLE {owner} LOGIN PASSWORD 'owner-secret' IN ROLE {reader};
             CREATE ROLE {admin} SUPERUSER LOGIN PASSWORD 'old-admin-secret';"
        ),
        format!("CREATE DATABASE {db_a} OWNER {owner}"),
        format!("CREATE DATABASE {db_b}"),
    ] {
        pg_execute(&source_url, &sql).unwrap();
    }
    let url_a = pg_url_for_database(&source_url, &db_a);
    pg_execute(
        &url_a,
        &format!(
            "SET ROLE {owner};
             CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g;
             GRANT SELECT ON items TO {reader};
             RESET ROLE;"
        ),
    )
    .unwrap();
    pg_execute(
        &pg_url_for_database(&source_url, &db_b),
        "CREATE TABLE items (id int PRIMARY KEY, name text);
         INSERT INTO items SELECT g, 'b ' || g FROM generate_series(1, 20) g;",
    )
    .unwrap();
    server.cli(&[
        "db",
        "add",
        "cluster",
        "--url",
        &source_url,
        "--whole-server",
        "--include",
        &format!("{u}_*"),
        "--target",
        "nas",
        "--no-health-checks",
    ]);
    let runs = json_of(&server.cli(&["db", "backup", "cluster", "--json"]));
    let runs = runs.as_array().unwrap().clone();
    assert_eq!(runs.len(), 3, "the globals and two databases: {runs:?}");
    let globals = runs.iter().find(|r| r["kind"] == "globals").unwrap();
    assert_eq!(globals["status"], "succeeded", "{globals}");
    assert_eq!(globals["detail"]["role_passwords"], true, "{globals}");
    let server_run = globals["server_run"].as_str().unwrap().to_owned();
    let listed = json_of(&server.cli(&["backup", "list", "--server-run", &server_run, "--json"]));
    assert_eq!(listed["items"].as_array().unwrap().len(), 3, "{listed}");
    let table = String::from_utf8_lossy(&server.cli(&["backup", "list"]).stdout).into_owned();
    assert!(table.contains("(globals)"), "{table}");
    let some_database = runs.iter().find(|r| r["db_name"] == db_a.as_str()).unwrap();
    let id = some_database["id"].as_str().unwrap().to_owned();

    // An empty, freshly initialised cluster, with a superuser of the same name as one of the
    // backup's but another password: statehouse connects as it.
    let fresh = FreshCluster::start();
    pg_execute(
        &fresh.url,
        &format!("CREATE ROLE {admin} SUPERUSER LOGIN PASSWORD 'new-admin-secret'"),
    )
    .unwrap();
    let admin_password = |url: &str| {
        pg_text(
            url,
            &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{admin}'"),
        )
    };
    let target_admin_password = admin_password(&fresh.url);
    let target = as_user(&fresh.url, &admin);
    let out = server.cli(&[
        "db",
        "restore",
        &id,
        "--whole-server",
        "--url",
        &target,
        "--json",
    ]);
    let restored = json_of(&out);
    assert_eq!(restored["server_run"], server_run.as_str(), "{restored}");
    assert_eq!(
        restored["databases"].as_array().unwrap().len(),
        2,
        "{restored}"
    );
    let existed = restored["globals"]["globals"]["already_existed"].to_string();
    assert!(existed.contains("role \\\"postgres\\\""), "{restored}");
    assert_eq!(
        restored["globals"]["globals"]["kept_password_of"],
        admin.as_str(),
        "{restored}"
    );

    // Owners, grants, memberships and password hashes came back; so did the data.
    let fresh_a = pg_url_for_database(&fresh.url, &db_a);
    assert_eq!(
        pg_text(
            &fresh.url,
            &format!("SELECT datdba::regrole::text FROM pg_database WHERE datname = '{db_a}'")
        ),
        owner
    );
    assert_eq!(
        pg_text(
            &fresh_a,
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'items'"
        ),
        owner
    );
    assert_eq!(
        pg_text(
            &fresh_a,
            &format!("SELECT has_table_privilege('{reader}', 'public.items', 'SELECT')::text")
        ),
        "true"
    );
    assert_eq!(
        pg_text(
            &fresh.url,
            &format!("SELECT pg_has_role('{owner}', '{reader}', 'MEMBER')::text")
        ),
        "true"
    );
    let owner_password = format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{owner}'");
    let source_hash = pg_text(&source_url, &owner_password);
    assert!(source_hash.starts_with("SCRAM-SHA-256$"), "{source_hash}");
    assert_eq!(pg_text(&fresh.url, &owner_password), source_hash);
    assert_eq!(
        admin_password(&fresh.url),
        target_admin_password,
        "the role statehouse connects as keeps its password on the target"
    );
    assert_eq!(items(&fresh_a), items(&url_a));
    assert_eq!(
        items(&pg_url_for_database(&fresh.url, &db_b)),
        items(&pg_url_for_database(&source_url, &db_b))
    );

    // Again: the databases have objects and the server has the roles now.
    let stderr = fails(
        &server.cli_output(
            Via::Local,
            &["db", "restore", &id, "--whole-server", "--url", &target],
        ),
        1,
    );
    assert!(
        stderr.contains("already has roles of its own")
            && stderr.contains(&format!("database \"{db_a}\""))
            && stderr.contains("--force"),
        "{stderr}"
    );
    server.cli(&[
        "db",
        "restore",
        &id,
        "--whole-server",
        "--url",
        &target,
        "--force",
    ]);
    assert_eq!(items(&fresh_a), items(&url_a));

    // Retention keeps whole runs: the globals go with their databases.
    server.cli(&["db", "change", "cluster", "--keep-last", "1"]);
    let newer = json_of(&server.cli(&["db", "backup", "cluster", "--json"]));
    let newer_run = newer[0]["server_run"].as_str().unwrap().to_owned();
    let left = json_of(&server.cli(&["backup", "list", "--database", "cluster", "--json"]));
    let left = left["items"].as_array().unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter().all(|b| b["server_run"] == newer_run.as_str()),
        "{left:?}"
    );
}
