//! What a new user meets first, with the real binary in a working directory of its own:
//! - the zero-config default (a relative `./statehouse-data`) backs itself up, by
//!   `statehouse self-backup` and on the schedule, on both stores;
//! - a command run where no store is fails, says where it looked and how to point it, and
//!   creates nothing (no data directory, no key, no PostgreSQL schema);
//! - a first start that cannot listen does not use up the one-time admin token;
//! - an unknown key in the configuration file stops statehouse, naming the key and the file; an
//!   unknown `STATEHOUSE_*` variable is warned about;
//! - the SQLite database and its WAL files are private (0600).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{BIN, Store, describe, pg_execute, pg_url, skip_e2e, unique_name};

on_both_stores!(
    the_zero_config_default_backs_itself_up,
    commands_where_no_store_is_create_nothing
);

/// `statehouse` in `cwd` with only `env` of the `STATEHOUSE_*` variables.
fn command(cwd: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STATEHOUSE_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd).envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

fn run(cwd: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    command(cwd, env)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(cwd: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let out = run(cwd, env, args);
    assert!(
        out.status.success(),
        "statehouse {args:?}:\n{}",
        describe(&out)
    );
    out
}

/// The PostgreSQL settings of a store in a schema of its own (none: SQLite, the default).
fn store_env(store: Store) -> (Vec<(String, String)>, Option<String>) {
    match store {
        Store::Sqlite => (Vec::new(), None),
        Store::Postgres => {
            let schema = unique_name("first");
            (
                vec![
                    ("STATEHOUSE_DATABASE_URL".to_owned(), pg_url()),
                    ("STATEHOUSE_POSTGRES__SCHEMA".to_owned(), schema.clone()),
                ],
                Some(schema),
            )
        }
    }
}

struct DropSchema(Option<String>);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Some(schema) = &self.0 {
            let _ = pg_execute(
                &pg_url(),
                &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
            );
        }
    }
}

fn self_backups_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("statehouse"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.retain(|p| p.to_string_lossy().ends_with(".zst.age"));
    found.sort();
    found
}

/// Makes the self-backup due now (as if its scheduled time had come), in the store's own
/// job clock.
fn self_backup_due_now(cwd: &Path, schema: Option<&str>) {
    let upsert = "INSERT INTO job_clock (name, next_run_at) VALUES ('self-backup', 0) \
                  ON CONFLICT (name) DO UPDATE SET next_run_at = 0";
    match schema {
        Some(schema) => pg_execute(
            &pg_url(),
            &format!("SET search_path TO \"{schema}\"; {upsert}"),
        )
        .unwrap(),
        None => {
            use sqlx::Connection;
            let path = cwd.join("statehouse-data/statehouse.db");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                sqlx::query(upsert).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            });
        }
    }
}

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn the_zero_config_default_backs_itself_up(store: Store) {
    if skip_e2e() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let (env, schema) = store_env(store);
    let _cleanup = DropSchema(schema.clone());
    ok(cwd.path(), &env, &["migrate"]);
    let data = cwd.path().join("statehouse-data");
    assert!(data.join("master.key").is_file());
    #[cfg(unix)]
    if store == Store::Sqlite {
        use std::os::unix::fs::PermissionsExt;
        for file in [
            "statehouse.db",
            "statehouse.db-wal",
            "statehouse.db-shm",
            "master.key",
        ] {
            let path = data.join(file);
            if path.exists() {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{file}");
            }
        }
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data directory");
    }

    // One now.
    let out = ok(cwd.path(), &env, &["self-backup"]);
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let backups = data.join("self-backups");
    assert!(
        Path::new(&printed).is_absolute() && printed.starts_with(&backups.display().to_string()),
        "the printed file is absolute, under {}: {printed}",
        backups.display()
    );
    assert!(Path::new(&printed).is_file(), "{printed}");
    assert_eq!(self_backups_in(&backups).len(), 1);

    // One on the schedule, by the server.
    self_backup_due_now(cwd.path(), schema.as_deref());
    let mut serve_env = env.clone();
    serve_env.push(("STATEHOUSE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()));
    serve_env.push(("STATEHOUSE_S3_LISTEN".to_owned(), "127.0.0.1:0".to_owned()));
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = Running(
        command(cwd.path(), &serve_env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut server = server;
    while self_backups_in(&backups).len() < 2 {
        let log_text = || std::fs::read_to_string(log.path()).unwrap_or_default();
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "statehouse serve exited:\n{}",
            log_text()
        );
        assert!(
            Instant::now() < deadline,
            "no scheduled self-backup within 90 s:\n{}",
            log_text()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let log_text = std::fs::read_to_string(log.path()).unwrap_or_default();
    assert!(!log_text.contains("absolute"), "{log_text}");
}

fn commands_where_no_store_is_create_nothing(store: Store) {
    if skip_e2e() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let (env, schema) = store_env(store);
    let _cleanup = DropSchema(schema.clone());
    let commands: &[&[&str]] = &[
        &["workspace", "list"],
        &["state", "list"],
        &["db", "list"],
        &["audit", "verify"],
        &["self-backup"],
        &["key", "rotate"],
        &["key", "forget-retired"],
        &[
            "state",
            "allow-overwrite",
            "--workspace",
            "default",
            "net",
            "--for",
            "10m",
        ],
    ];
    let looked = match store {
        Store::Sqlite => cwd.path().join("statehouse-data").display().to_string(),
        Store::Postgres => "STATEHOUSE_DATABASE_URL".to_owned(),
    };
    for args in commands {
        let out = run(cwd.path(), &env, args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "statehouse {args:?}\n{}",
            describe(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no statehouse store")
                && stderr.contains(&looked)
                && stderr.contains("--config")
                && stderr.contains("STATEHOUSE_DATA_DIR"),
            "statehouse {args:?} says where it looked and how to point it: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().flatten().collect();
        assert!(left.is_empty(), "statehouse {args:?} created {left:?}");
    }
    if let Some(schema) = &schema {
        let exists = run_sql_text(&format!(
            "SELECT count(*)::text FROM pg_namespace WHERE nspname = '{schema}'"
        ));
        assert_eq!(exists, "0", "no schema was created");
    }
    // `migrate` creates it; then the same commands work.
    ok(cwd.path(), &env, &["migrate"]);
    ok(cwd.path(), &env, &["workspace", "list"]);
}

fn run_sql_text(sql: &str) -> String {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        value
    })
}

/// Starts `statehouse serve` and returns the lines it printed on stdout until it printed one
/// containing `until` or exited.
fn serve_lines(
    cwd: &Path,
    env: &[(String, String)],
    until: &str,
) -> (Vec<String>, Option<std::process::ExitStatus>, Running) {
    let mut child = command(cwd, env)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut child = Running(child);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains(until);
                lines.push(line);
                if done {
                    return (lines, None, child);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().unwrap();
                return (lines, Some(status), child);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(
                    Instant::now() < deadline,
                    "serve printed {lines:?} and hung"
                );
            }
        }
    }
}

#[test]
fn a_failed_first_start_keeps_the_admin_token_for_the_next() {
    if skip_e2e() {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = vec![
        (
            "STATEHOUSE_LISTEN".to_owned(),
            taken.local_addr().unwrap().to_string(),
        ),
        ("STATEHOUSE_S3_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    let (lines, status, _) = serve_lines(cwd.path(), &busy, "listening");
    assert!(status.is_some_and(|s| !s.success()), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("admin token")),
        "no token is shown by a start that fails: {lines:?}"
    );
    drop(taken);

    let free = vec![
        ("STATEHOUSE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("STATEHOUSE_S3_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
    ];
    let (lines, status, _running) = serve_lines(cwd.path(), &free, "listening");
    assert_eq!(status, None, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("admin token (shown once): sht_")),
        "the next start shows the token: {lines:?}"
    );
}

#[test]
fn unknown_configuration_keys_are_refused_and_unknown_variables_warned_about() {
    let cwd = tempfile::tempdir().unwrap();
    let config = cwd.path().join("statehouse.toml");
    for (text, key) in [
        ("listn = \"127.0.0.1:9\"\n", "`listn`"),
        ("[postgres]\npool_mx = 3\n", "`postgres.pool_mx`"),
        ("[self_backup]\nkeep = 3\n", "`self_backup.keep`"),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = run(cwd.path(), &[], &["--config", "statehouse.toml", "migrate"]);
        assert_eq!(out.status.code(), Some(1), "{text}\n{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(key) && stderr.contains(&config.display().to_string()),
            "names the key and the file: {stderr}"
        );
        assert!(
            !cwd.path().join("statehouse-data").exists(),
            "nothing is created with a bad configuration"
        );
    }
    std::fs::write(&config, "[self_backup]\nkeep_last = 3\n").unwrap();
    let env = [("STATEHOUSE_LISTN".to_owned(), "127.0.0.1:9".to_owned())];
    let out = run(
        cwd.path(),
        &env,
        &["--config", "statehouse.toml", "migrate"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("STATEHOUSE_LISTN"),
        "{stderr}"
    );
    let quiet = [
        ("STATEHOUSE_LOG".to_owned(), "info".to_owned()),
        ("STATEHOUSE_SERVER".to_owned(), String::new()),
    ];
    let out = run(cwd.path(), &quiet, &["workspace", "list"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        describe(&out)
    );
}
