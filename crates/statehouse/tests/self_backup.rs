//! statehouse protects itself: `statehouse self-backup` backs the store up (SQLite snapshot or
//! pg_dump of its schema, zstd, age with a passphrase derived from the master key), and
//! `statehouse restore-self` brings the instance back from that file plus the master key file
//! alone — on both stores; a foreign key file cannot decrypt it. A self-backup made before a
//! `key rotate` restores with the retired key kept in the key file (its data moves to the new
//! key), and after `key forget-retired` the refusal names the key it needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{BIN, Store, pg_execute, pg_socket_url, pg_url, skip_e2e, unique_name};

on_both_stores!(
    a_lost_store_comes_back_from_its_self_backup,
    self_backups_from_before_a_rotation_need_the_retired_key
);

fn run(env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STATEHOUSE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.args(args).output().unwrap()
}

fn ok(env: &[(String, String)], args: &[&str]) -> String {
    let out = run(env, args);
    assert!(
        out.status.success(),
        "statehouse {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn env_for(data: &Path, schema: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("STATEHOUSE_DATA_DIR".to_owned(), data.display().to_string())];
    if let Some(schema) = schema {
        env.push(("STATEHOUSE_DATABASE_URL".to_owned(), pg_url()));
        env.push(("STATEHOUSE_POSTGRES__SCHEMA".to_owned(), schema.to_owned()));
    }
    env
}

fn a_lost_store_comes_back_from_its_self_backup(store: Store) {
    if skip_e2e() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let schema = (store == Store::Postgres).then(|| unique_name("selfb"));
    let env = env_for(data.path(), schema.as_deref());
    ok(&env, &["migrate"]);
    ok(&env, &["workspace", "create", "team"]);

    let printed = ok(&env, &["self-backup"]);
    let file = Path::new(printed.trim()).to_owned();
    assert!(file.exists(), "{printed}");
    let suffix = if store == Store::Sqlite {
        ".sqlite.zst.age"
    } else {
        ".dump.zst.age"
    };
    assert!(file.display().to_string().ends_with(suffix), "{printed}");
    assert!(
        data.path().join("self-backups/statehouse").is_dir(),
        "default location beside the data"
    );
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", file.display())).unwrap())
            .unwrap();
    assert!(
        sidecar["restore_command"]
            .as_str()
            .unwrap()
            .contains("restore-self"),
        "{sidecar}"
    );

    // The store is lost; the backup directory and the master key file survive.
    match &schema {
        None => {
            for f in ["statehouse.db", "statehouse.db-wal", "statehouse.db-shm"] {
                let _ = std::fs::remove_file(data.path().join(f));
            }
        }
        Some(schema) => {
            pg_execute(&pg_url(), &format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
        }
    }

    // A foreign master key file cannot decrypt it, and nothing is restored.
    let stranger = tempfile::tempdir().unwrap();
    ok(&env_for(stranger.path(), None), &["migrate"]);
    let mut foreign = env.clone();
    foreign.push((
        "STATEHOUSE_MASTER_KEY_FILE".to_owned(),
        stranger.path().join("master.key").display().to_string(),
    ));
    let refused = run(
        &foreign,
        &["restore-self", "--from", &file.display().to_string()],
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("passphrase") || message.contains("decrypt"),
        "{message}"
    );
    if schema.is_none() {
        assert!(!data.path().join("statehouse.db").exists());
    }

    // With the right key file it comes back, whole.
    restore_latest_and_find(&env, data.path(), "team");
    // A second restore over the existing SQLite store is refused (never overwritten).
    if schema.is_none() {
        let again = run(
            &env,
            &["restore-self", "--from", &file.display().to_string()],
        );
        assert!(!again.status.success());
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("exists"),
            "{}",
            String::from_utf8_lossy(&again.stderr)
        );
    }
    if let Some(schema) = schema {
        let _ = pg_execute(
            &pg_url(),
            &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        );
    }
}

/// A store reached over a Unix socket (`?host=/dir`, as on a host running PostgreSQL beside
/// statehouse) backs itself up and comes back: pg_dump is pointed at the same socket.
#[test]
fn a_store_reached_over_a_unix_socket_backs_itself_up() {
    if skip_e2e() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let schema = unique_name("selfsock");
    let socket_url = pg_socket_url(&pg_url()).unwrap();
    let env = vec![
        (
            "STATEHOUSE_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        ("STATEHOUSE_DATABASE_URL".to_owned(), socket_url.clone()),
        ("STATEHOUSE_POSTGRES__SCHEMA".to_owned(), schema.clone()),
    ];
    ok(&env, &["migrate"]);
    ok(&env, &["workspace", "create", "over-socket"]);
    let printed = ok(&env, &["self-backup"]);
    assert!(printed.trim().ends_with(".dump.zst.age"), "{printed}");
    lose_store(data.path(), Some(&schema));
    restore_latest_and_find(&env, data.path(), "over-socket");
    let _ = pg_execute(
        &pg_url(),
        &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
    );
}

/// `restore-self --latest-in` the data directory's self-backups; the workspace `expected`
/// is back.
fn restore_latest_and_find(env: &[(String, String)], data: &Path, expected: &str) {
    ok(
        env,
        &[
            "restore-self",
            "--latest-in",
            &data.join("self-backups").display().to_string(),
        ],
    );
    let listed = ok(env, &["workspace", "list", "--json"]);
    assert!(listed.contains(&format!("\"{expected}\"")), "{listed}");
}

/// Removes the store (SQLite files or the PostgreSQL schema), keeping the key file and backups.
fn lose_store(data: &Path, schema: Option<&str>) {
    match schema {
        None => {
            for f in ["statehouse.db", "statehouse.db-wal", "statehouse.db-shm"] {
                let _ = std::fs::remove_file(data.join(f));
            }
        }
        Some(schema) => {
            pg_execute(&pg_url(), &format!("DROP SCHEMA \"{schema}\" CASCADE")).unwrap();
        }
    }
}

fn self_backups_from_before_a_rotation_need_the_retired_key(store: Store) {
    if skip_e2e() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let schema = (store == Store::Postgres).then(|| unique_name("selfrot"));
    let env = env_for(data.path(), schema.as_deref());
    ok(&env, &["migrate"]);
    ok(&env, &["workspace", "create", "before"]);
    // A sealed secret, so the restored store has data under the old key.
    ok(
        &env,
        &[
            "notifier",
            "add",
            "ops",
            "--kind",
            "slack",
            "--secret",
            "webhook_url=https://hooks.slack.com/services/T0/B0/rotation",
        ],
    );
    let old_backup = ok(&env, &["self-backup"]).trim().to_owned();
    let key_path = data.path().join("master.key");
    let first_key = |kind: &str| {
        std::fs::read_to_string(&key_path)
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix(kind)
                    .map(|r| r.split(' ').next().unwrap().to_owned())
            })
    };
    let old_key = first_key("key ").unwrap();

    let rotated = run(&env, &["key", "rotate"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let said = String::from_utf8_lossy(&rotated.stderr);
    assert!(
        said.contains("took a self-backup under the new key"),
        "{said}"
    );
    assert_eq!(first_key("retired ").as_deref(), Some(old_key.as_str()));
    ok(&env, &["workspace", "create", "after"]);

    // The store is lost; the self-backup from before the rotation comes back with the retired
    // key, and its data moves under the current key.
    lose_store(data.path(), schema.as_deref());
    let restored = run(&env, &["restore-self", "--from", &old_backup]);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(
        String::from_utf8_lossy(&restored.stderr).contains("re-wrapped"),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let listed = ok(&env, &["workspace", "list", "--json"]);
    assert!(
        listed.contains("\"before\"") && !listed.contains("\"after\""),
        "{listed}"
    );
    // Nothing needs the retired key any more: it can go, and the notifier still opens.
    ok(&env, &["key", "forget-retired"]);
    assert_eq!(first_key("retired "), None);
    let shown = ok(&env, &["notifier", "show", "ops", "--json"]);
    assert!(shown.contains("webhook_url"), "{shown}");

    // Without the retired key the old self-backup cannot be opened, and the refusal says why.
    lose_store(data.path(), schema.as_deref());
    let refused = run(&env, &["restore-self", "--from", &old_backup]);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains(&format!("made under master key {old_key}"))
            && message.contains("retired"),
        "{message}"
    );
    if let Some(schema) = schema {
        let _ = pg_execute(
            &pg_url(),
            &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        );
    }
}
