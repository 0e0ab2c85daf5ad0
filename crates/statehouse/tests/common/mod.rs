//! Helpers for tests that run the real `statehouse` binary and real clients against it.
//!
//! - [`Server`] starts `statehouse serve` on `127.0.0.1:0` in a temp data dir (SQLite, or a fresh
//!   schema on the test PostgreSQL), reads the address and admin token it prints, waits for
//!   `/readyz` and kills the process on drop.
//! - [`Terraform`] runs the Terraform 1.0.3 binary from `STATEHOUSE_TERRAFORM` in a working dir
//!   with a clean, per-test environment.
//!
//! The test command (`scripts/test.sh`) installs Terraform and starts PostgreSQL; tests that need
//! them fail with a pointer to it when they are missing, unless `STATEHOUSE_SKIP_E2E=1`.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

/// Generates `sqlite::NAME` and `postgres::NAME` tests calling `NAME(Store)`.
#[allow(unused_macros)] // some test crates run on one store only
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Store::Sqlite);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name(super::Store::Postgres);
                }
            )*
        }
    };
}

pub mod browser;
pub mod certs;
pub mod pg_cluster;
pub mod prometheus;
pub mod s3;
pub mod ui;

use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_statehouse");

const HOW_TO: &str = "run the suite through `bash scripts/test.sh` (it installs Terraform 1.0.3 into .tools/ \
     and starts a throwaway PostgreSQL 15), or set STATEHOUSE_SKIP_E2E=1 to skip the end-to-end tests";

/// How long a server may take to print its address and become ready.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one Terraform command may run before it is killed and the test fails.
const TERRAFORM_TIMEOUT: Duration = Duration::from_secs(600);

// ---- environment -------------------------------------------------------------------------------

/// The database behind a server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// True when the end-to-end tests are switched off on purpose.
pub fn skip_e2e() -> bool {
    if std::env::var("STATEHOUSE_SKIP_E2E").is_ok_and(|v| v == "1") {
        eprintln!("STATEHOUSE_SKIP_E2E=1: skipping this end-to-end test");
        true
    } else {
        false
    }
}

fn required_env(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!("{name} is not set ({what}): {HOW_TO}"),
    }
}

/// `STATEHOUSE_TEST_PG_URL`: a PostgreSQL superuser URL for throwaway schemas.
pub fn pg_url() -> String {
    required_env(
        "STATEHOUSE_TEST_PG_URL",
        "URL of the test PostgreSQL, e.g. postgres://postgres@127.0.0.1:55432/postgres",
    )
}

/// `STATEHOUSE_TERRAFORM`: the Terraform 1.0.3 binary, checked once per test process.
pub fn terraform_bin() -> PathBuf {
    static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let path = PathBuf::from(required_env(
            "STATEHOUSE_TERRAFORM",
            "path of the Terraform 1.0.3 binary",
        ));
        let out = Command::new(&path)
            .arg("version")
            .env("CHECKPOINT_DISABLE", "1")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run STATEHOUSE_TERRAFORM={}: {e}; {HOW_TO}",
                    path.display()
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.lines().next() != Some("Terraform v1.0.3") {
            return Err(format!(
                "STATEHOUSE_TERRAFORM={} is not Terraform 1.0.3 (it says {:?}); {HOW_TO}",
                path.display(),
                text.lines().next().unwrap_or("")
            ));
        }
        Ok(path)
    });
    match checked {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// A name unique across test processes and runs: lowercase letters, digits and `_`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!(
        "{prefix}_{}_{}_{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        random & 0xffff_ffff
    )
}

/// Appends `sslmode=disable` (for lib/pq clients such as Terraform's `pg` backend, which
/// default to requiring TLS) unless the URL already says otherwise.
pub fn pg_url_without_tls(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// `url` with its database name replaced by `database` (query parameters kept).
pub fn pg_url_for_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// Runs `work` on a connection to the test PostgreSQL at `url`, then closes it.
fn with_pg<T>(
    url: &str,
    work: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, String>,
) -> Result<T, String> {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| format!("connecting to {url}: {e}"))?;
        let result = work(&mut conn).await;
        let _ = conn.close().await;
        result
    })
}

/// Runs SQL statements on the test PostgreSQL (for setup and cleanup).
pub fn pg_execute(url: &str, sql: &str) -> Result<(), String> {
    with_pg(url, async |conn| {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(conn)
            .await
            .map(drop)
            .map_err(|e| format!("{sql}: {e}"))
    })
}

/// The test PostgreSQL's address as a Unix socket URL (`postgres:///db?host=<dir>&port=…`),
/// for tests of socket connections.
pub fn pg_socket_url(url: &str) -> Result<String, String> {
    let (dirs, port, database, user): (String, String, String, String) =
        with_pg(url, async |conn| {
            sqlx::query_as(
                "SELECT current_setting('unix_socket_directories'), current_setting('port'), \
                 current_database()::text, current_user::text",
            )
            .fetch_one(conn)
            .await
            .map_err(|e| format!("reading the socket directory: {e}"))
        })?;
    let dir = dirs.split(',').next().unwrap_or_default().trim().to_owned();
    if !dir.starts_with('/') {
        return Err(format!("no socket directory in {dirs:?}"));
    }
    Ok(format!(
        "postgres:///{database}?host={dir}&port={port}&user={user}"
    ))
}

/// A database of its own on the test PostgreSQL, dropped with this value. Advisory locks (which
/// Terraform's `pg` backend uses) are per database, so tests running at once do not meet.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl PgDatabase {
    pub fn create(prefix: &str) -> PgDatabase {
        let admin_url = pg_url();
        let name = unique_name(prefix);
        pg_execute(&admin_url, &format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
        PgDatabase {
            url: pg_url_for_database(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = pg_execute(&self.admin_url, &sql) {
            eprintln!("cleanup: {e}");
        }
    }
}

// ---- output collection -------------------------------------------------------------------------

/// Text read from a child's pipe by a background thread, so the pipe never fills.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn drain(&self, mut from: impl Read + Send + 'static) -> JoinHandle<()> {
        let sink = self.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut v) = sink.0.lock() {
                            v.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        })
    }
}

// ---- the server --------------------------------------------------------------------------------

/// A running `statehouse serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    /// The S3 endpoint's base URL (`http://127.0.0.1:port`).
    pub s3_url: String,
    /// The instance admin token printed on first start.
    pub admin_token: String,
    pub store: Store,
    /// The PostgreSQL schema this server lives in (dropped with the server).
    pg_schema: Option<String>,
    env: Vec<(String, String)>,
    log: Captured,
    _data_dir: Option<tempfile::TempDir>,
    remote_cli_dir: tempfile::TempDir,
}

impl Server {
    /// A server whose outbound policy allows this host and temporary directories (explicitly,
    /// as an operator would in `[outbound]`): the tests' databases, storage servers and
    /// receivers run here.
    pub fn start(store: Store) -> Server {
        Server::start_allowing(store, &[])
    }

    /// [`Server::start`] with more settings (e.g. `STATEHOUSE_OUTBOUND__ALLOW_OWN_STORE`).
    pub fn start_allowing(store: Store, more_env: &[(&str, &str)]) -> Server {
        let temp = std::env::temp_dir().display().to_string();
        let mut env = vec![
            ("STATEHOUSE_OUTBOUND__ALLOW_LOOPBACK", "true"),
            ("STATEHOUSE_OUTBOUND__ALLOW_UNIX_SOCKETS", "true"),
            ("STATEHOUSE_OUTBOUND__LOCAL_TARGET_ROOTS", temp.as_str()),
        ];
        env.extend_from_slice(more_env);
        Server::start_with(store, &env)
    }

    /// A server with these environment variables besides the listen address, data directory and
    /// store (nothing else of this process's `STATEHOUSE_*` environment reaches it): settings
    /// such as `STATEHOUSE_HTTP__…`, or `STATEHOUSE_DATABASE_URL` for a PostgreSQL of the
    /// test's own, whose data it then owns. The outbound policy keeps its defaults.
    pub fn start_with(store: Store, extra_env: &[(&str, &str)]) -> Server {
        let own_database = extra_env
            .iter()
            .any(|(k, _)| *k == "STATEHOUSE_DATABASE_URL");
        let data_dir = tempfile::Builder::new()
            .prefix("statehouse-e2e-")
            .tempdir()
            .expect("temp data dir");
        let mut env = vec![
            ("STATEHOUSE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            ("STATEHOUSE_S3_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "STATEHOUSE_DATA_DIR".to_owned(),
                data_dir.path().display().to_string(),
            ),
        ];
        let pg_schema = (store == Store::Postgres && !own_database).then(|| unique_name("e2e"));
        if let Some(schema) = &pg_schema {
            env.push(("STATEHOUSE_DATABASE_URL".to_owned(), pg_url()));
            env.push(("STATEHOUSE_POSTGRES__SCHEMA".to_owned(), schema.clone()));
        }
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        if std::env::var_os("RUST_LOG").is_none() {
            env.push(("RUST_LOG".to_owned(), "info".to_owned()));
        }

        let (child, log, lines_rx) = spawn_serve(&env);
        let mut server = Server {
            child,
            url: String::new(),
            s3_url: String::new(),
            admin_token: String::new(),
            store,
            pg_schema,
            env,
            log,
            _data_dir: Some(data_dir),
            remote_cli_dir: empty_dir(),
        };
        server.await_startup(&lines_rx, true);
        // Keep draining stdout after startup.
        thread::spawn(move || while lines_rx.recv().is_ok() {});
        server.await_ready();
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself (after a signal), failing after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for statehouse") {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "statehouse did not exit within {timeout:?}\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no drain, no cleanup — as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same database, data directory and key (after `kill9`).
    pub fn restart(&mut self) {
        self.kill9();
        let (child, log, lines_rx) = spawn_serve(&self.env);
        self.child = child;
        self.log = log;
        self.url.clear();
        self.s3_url.clear();
        self.await_startup(&lines_rx, false);
        thread::spawn(move || while lines_rx.recv().is_ok() {});
        self.await_ready();
    }

    /// A second `statehouse serve` process on the same database and key file (a replica).
    /// It owns nothing: the first server keeps and cleans up the data.
    pub fn peer(&self) -> Server {
        let (child, log, lines_rx) = spawn_serve(&self.env);
        let mut peer = Server {
            child,
            url: String::new(),
            s3_url: String::new(),
            admin_token: self.admin_token.clone(),
            store: self.store,
            pg_schema: None,
            env: self.env.clone(),
            log,
            _data_dir: None,
            remote_cli_dir: empty_dir(),
        };
        peer.await_startup(&lines_rx, false);
        thread::spawn(move || while lines_rx.recv().is_ok() {});
        peer.await_ready();
        peer
    }

    /// The environment the server runs with (CLI commands use the same).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// A `statehouse` command with this server's environment, to run and check by hand.
    pub fn command(&self) -> Command {
        statehouse_command(&self.env)
    }

    /// The PostgreSQL schema of this server, if it runs on PostgreSQL.
    pub fn pg_schema(&self) -> Option<&str> {
        self.pg_schema.as_deref()
    }

    /// The working directory of remote CLI commands: empty, and it must stay so (a remote
    /// command that opened a local database would create `./statehouse-data` here).
    pub fn remote_cli_dir(&self) -> &Path {
        self.remote_cli_dir.path()
    }

    /// Runs SQL on the server's database behind its back, as someone with database access
    /// (or an older statehouse version) would.
    pub fn execute_sql(&self, sql: &str) {
        match self.store {
            Store::Postgres => {
                let schema = self.pg_schema().unwrap();
                pg_execute(
                    &pg_url(),
                    &format!("SET search_path TO \"{schema}\"; {sql}"),
                )
                .unwrap();
            }
            Store::Sqlite => {
                use sqlx::Connection;
                let path = self.data_dir().unwrap().join("statehouse.db");
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let url = format!("sqlite://{}", path.display());
                    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    conn.close().await.unwrap();
                });
            }
        }
    }

    /// The data directory (SQLite database and master key file).
    pub fn data_dir(&self) -> Option<&Path> {
        self._data_dir.as_ref().map(|d| d.path())
    }

    fn await_startup(&mut self, lines: &Receiver<String>, expect_token: bool) {
        let deadline = Instant::now() + START_TIMEOUT;
        // The S3 endpoint's line follows the others (unless the test turned it off).
        let s3_expected = !self
            .env
            .iter()
            .any(|(k, v)| k == "STATEHOUSE_S3_LISTEN" && v == "off");
        while self.url.is_empty()
            || (expect_token && self.admin_token.is_empty())
            || (s3_expected && self.s3_url.is_empty())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(rest) = after(&line, "statehouse listening on ") {
                        self.url = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .trim_end_matches('/')
                            .to_owned();
                    }
                    if let Some(rest) = after(&line, "S3 endpoint (Pulumi): ") {
                        self.s3_url = rest.split_whitespace().next().unwrap_or("").to_owned();
                    }
                    if let Some(rest) = after(&line, "admin token (shown once):") {
                        self.admin_token = rest.split_whitespace().next().unwrap_or("").to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    thread::sleep(Duration::from_millis(200));
                    panic!(
                        "statehouse serve closed its stdout before printing {}; exit: {:?}\n{}",
                        self.missing_startup_lines(),
                        self.child.try_wait().ok().flatten(),
                        self.log_text()
                    );
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                thread::sleep(Duration::from_millis(200));
                panic!(
                    "statehouse serve exited ({status}) before printing {}\n{}",
                    self.missing_startup_lines(),
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "statehouse serve did not print {} within {START_TIMEOUT:?}\n{}",
                    self.missing_startup_lines(),
                    self.log_text()
                );
            }
        }
        assert!(
            self.url.starts_with("http://127.0.0.1:") || self.url.starts_with("https://127.0.0.1:"),
            "unexpected listening address {:?}\n{}",
            self.url,
            self.log_text()
        );
        assert!(
            self.admin_token.starts_with("sht_"),
            "admin token {:?} does not start with sht_\n{}",
            self.admin_token,
            self.log_text()
        );
    }

    fn missing_startup_lines(&self) -> &'static str {
        match (self.url.is_empty(), self.admin_token.is_empty()) {
            (true, true) => {
                "`statehouse listening on http://…` and `admin token (shown once): sht_…`"
            }
            (true, false) => "`statehouse listening on http://…`",
            (false, false) => "`S3 endpoint (Pulumi): http://…`",
            _ => "`admin token (shown once): sht_…`",
        }
    }

    fn await_ready(&mut self) {
        // Over HTTPS the test's own CA is not the harness's business: readiness only.
        let client = match self.url.starts_with("https://") {
            true => reqwest::blocking::Client::builder()
                .danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTPS client"),
            false => http_client(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match client.get(format!("{}/readyz", self.url)).send() {
                Ok(r) if r.status() == 200 => return,
                Ok(r) => last = format!("status {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "statehouse serve exited ({status}) before /readyz answered\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "GET /readyz did not answer 200 within {START_TIMEOUT:?} (last: {last})\n{}",
            self.log_text()
        );
    }

    /// What the server printed so far, stdout and stderr.
    /// Everything the store keeps on disk, to search for plaintext: the SQLite files (WAL
    /// included), or a data-only `pg_dump` of the server's schema.
    pub fn stored_bytes(&self) -> Vec<(String, Vec<u8>)> {
        match self.store {
            Store::Sqlite => std::fs::read_dir(self.data_dir().expect("a data directory"))
                .expect("reading the data directory")
                .map(|e| e.expect("a directory entry").path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("statehouse.db"))
                })
                .map(|p| {
                    let bytes = std::fs::read(&p).expect("reading a database file");
                    (p.display().to_string(), bytes)
                })
                .collect(),
            Store::Postgres => {
                let schema = self.pg_schema().expect("the server's schema");
                let out = Command::new("/usr/lib/postgresql/15/bin/pg_dump")
                    .args(["--dbname", &pg_url(), "--schema", schema, "--data-only"])
                    .output()
                    .expect("running pg_dump");
                assert!(out.status.success(), "pg_dump: {}", describe(&out));
                assert!(out.stdout.len() > 1000, "dump is suspiciously small");
                vec![("pg_dump".into(), out.stdout)]
            }
        }
    }

    pub fn log_text(&self) -> String {
        format!(
            "---- statehouse serve ({:?}) output ----\n{}---- end of server output ----",
            self.store,
            self.log.text()
        )
    }

    /// Waits up to ten seconds for `needle` in the server's output (it reaches the test through
    /// a pipe, a little after the request that caused it was answered).
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log.text().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// The Terraform `http` backend address of a state.
    pub fn tf_address(&self, workspace: &str, state: &str) -> String {
        format!("{}/tf/{workspace}/{state}", self.url)
    }

    /// Runs a `statehouse` CLI command against this server's database; fails the test unless
    /// it succeeds.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_via(Via::Local, args)
    }

    /// Runs a `statehouse` CLI command the given way; fails the test unless it succeeds.
    pub fn cli_via(&self, via: Via<'_>, args: &[&str]) -> Output {
        let out = self.cli_output(via, args);
        assert!(
            out.status.success(),
            "statehouse {args:?} ({via:?}) failed ({})\nstdout:\n{}\nstderr:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        out
    }

    /// Runs a `statehouse` CLI command the given way and returns what it did, success or not.
    /// Remote commands run with an environment of their own (only `STATEHOUSE_SERVER` and
    /// `STATEHOUSE_TOKEN`) in an empty working directory, so they cannot touch the server's data.
    pub fn cli_output(&self, via: Via<'_>, args: &[&str]) -> Output {
        self.cli_command(via)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BIN} {args:?}: {e}"))
    }

    /// Like [`Server::cli_output`], with `input` on stdin (a password, for instance).
    pub fn cli_with_input(&self, via: Via<'_>, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cli_command(via)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN} {args:?}: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).expect("writing stdin");
        drop(stdin);
        child.wait_with_output().expect("waiting for the CLI")
    }

    /// The `statehouse` command for this server, the given way (arguments not yet added).
    fn cli_command(&self, via: Via<'_>) -> Command {
        match via {
            Via::Local => statehouse_command(&self.env),
            Via::Remote { token } => {
                let mut env = vec![("STATEHOUSE_SERVER".to_owned(), self.url.clone())];
                if let Some(token) = token {
                    env.push(("STATEHOUSE_TOKEN".to_owned(), token.to_owned()));
                }
                let mut command = statehouse_command(&env);
                command.current_dir(self.remote_cli_dir());
                command
            }
        }
    }

    /// `statehouse token create`: returns the new token's secret.
    pub fn create_token(&self, workspace: &str, role: &str, name: &str) -> String {
        let out = self.cli(&[
            "token",
            "create",
            "--workspace",
            workspace,
            "--role",
            role,
            "--name",
            name,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let token = stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_owned();
        assert!(
            token.starts_with("sht_") && !token.contains(char::is_whitespace),
            "`statehouse token create` did not print the token alone on its last line:\n{stdout}"
        );
        token
    }

    pub fn create_workspace(&self, name: &str) {
        self.cli(&["workspace", "create", name]);
    }

    /// A raw request to the Terraform backend with a bearer token.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        token: &str,
        body: Vec<u8>,
    ) -> reqwest::blocking::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        http_client()
            .request(method.clone(), url)
            .bearer_auth(token)
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", self.log_text()))
    }

    /// The current body of a state as JSON, read over the Terraform backend.
    pub fn state_json(&self, workspace: &str, state: &str, token: &str) -> serde_json::Value {
        let url = self.tf_address(workspace, state);
        let response = self.request("GET", &url, token, Vec::new());
        let status = response.status();
        let body = response.bytes().expect("state body");
        assert_eq!(
            status,
            200,
            "GET {url}: {}\n{}",
            String::from_utf8_lossy(&body),
            self.log_text()
        );
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "GET {url} did not return JSON ({e}): {:?}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            )
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{}", self.log_text());
        }
        if let Some(schema) = &self.pg_schema {
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            if let Err(e) = pg_execute(&pg_url(), &sql) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Spawns `statehouse serve`; stdout goes line by line through a channel (to find the address
/// and token) and into the log, stderr only into the log.
fn spawn_serve(env: &[(String, String)]) -> (Child, Captured, Receiver<String>) {
    let mut child = statehouse_command(env)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN} serve: {e}"));
    let log = Captured::default();
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped stdout");
    let stdout_log = log.clone();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Ok(mut v) = stdout_log.0.lock() {
                        v.extend_from_slice(line.as_bytes());
                    }
                    let _ = lines_tx.send(line.trim_end().to_owned());
                }
            }
        }
    });
    let stderr = child.stderr.take().expect("piped stderr");
    log.drain(stderr);
    (child, log, lines_rx)
}

/// How a CLI command reaches statehouse.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// Without `--server`: in-process on the server's database, as the local operator.
    Local,
    /// Over HTTP to the server, with this token (or none).
    Remote { token: Option<&'a str> },
}

fn empty_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("statehouse-cli-cwd-")
        .tempdir()
        .expect("temp dir")
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| line[i + marker.len()..].trim())
}

/// `statehouse` with a clean environment: inherited `STATEHOUSE_*` settings (a developer's
/// own configuration) are removed, the test's are set.
fn statehouse_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STATEHOUSE_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

// ---- Terraform ---------------------------------------------------------------------------------

/// Runs Terraform in `dir` with the base environment plus `env`, failing the test after
/// [`TERRAFORM_TIMEOUT`].
pub fn tf(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut t = Terraform::new(dir);
    for (k, v) in env {
        t.set_env(k, v);
    }
    t.run(args)
}

/// A Terraform working directory with its environment.
pub struct Terraform {
    bin: PathBuf,
    pub dir: PathBuf,
    env: Vec<(OsString, OsString)>,
}

impl Terraform {
    /// `dir` must exist; Terraform's data dir and CLI config live inside it.
    pub fn new(dir: &Path) -> Terraform {
        let bin = terraform_bin();
        let cli_config = dir.join(".terraformrc-test");
        std::fs::write(&cli_config, "").expect("write empty Terraform CLI config");
        let mut t = Terraform {
            bin,
            dir: dir.to_owned(),
            env: Vec::new(),
        };
        t.set_env("TF_IN_AUTOMATION", "1");
        t.set_env("CHECKPOINT_DISABLE", "1");
        t.set_env("TF_DATA_DIR", &dir.join(".terraform").display().to_string());
        t.set_env("TF_CLI_CONFIG_FILE", &cli_config.display().to_string());
        t
    }

    pub fn set_env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes `main.tf` (replacing any earlier one).
    pub fn write_config(&self, hcl: &str) {
        std::fs::write(self.dir.join("main.tf"), hcl).expect("write main.tf");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("TF_") || k.starts_with("STATEHOUSE_") {
                cmd.env_remove(&key);
            }
        }
        cmd.args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs to completion (stdin closed) and returns what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run terraform {args:?}: {e}"));
        let stdout = Captured::default();
        let stderr = Captured::default();
        let t_out = stdout.drain(child.stdout.take().expect("piped stdout"));
        let t_err = stderr.drain(child.stderr.take().expect("piped stderr"));
        let status = wait_with_deadline(&mut child, TERRAFORM_TIMEOUT);
        let _ = t_out.join();
        let _ = t_err.join();
        let Some(status) = status else {
            panic!(
                "terraform {args:?} did not finish within {TERRAFORM_TIMEOUT:?}; killed\nstdout:\n{}\nstderr:\n{}",
                stdout.text(),
                stderr.text()
            )
        };
        Output {
            status,
            stdout: stdout.0.lock().map(|b| b.clone()).unwrap_or_default(),
            stderr: stderr.0.lock().map(|b| b.clone()).unwrap_or_default(),
        }
    }

    /// Runs and fails the test unless Terraform exits 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "terraform {args:?} failed ({}) in {}\n{}",
            out.status,
            self.dir.display(),
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and fails the test if Terraform exits 0; returns stdout + stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "terraform {args:?} succeeded but should have failed, in {}\n{}",
            self.dir.display(),
            describe(&out)
        );
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Starts Terraform with stdin a pipe kept open, for commands that stop at a prompt.
    pub fn spawn_interactive(&self, args: &[&str]) -> Interactive {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run terraform {args:?}: {e}"));
        let output = Captured::default();
        let stdin = child.stdin.take();
        let readers = vec![
            output.drain(child.stdout.take().expect("piped stdout")),
            output.drain(child.stderr.take().expect("piped stderr")),
        ];
        Interactive {
            child,
            stdin,
            output,
            readers,
            args: args.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// A running Terraform command waiting for input; killed on drop.
pub struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Captured,
    readers: Vec<JoinHandle<()>>,
    args: Vec<String>,
}

impl Interactive {
    /// Stdout and stderr so far, interleaved.
    pub fn output(&self) -> String {
        self.output.text()
    }

    /// Waits until the output contains `needle`; fails the test if the process exits first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                thread::sleep(Duration::from_millis(100));
                if self.output().contains(needle) {
                    return;
                }
                panic!(
                    "terraform {:?} exited ({status}) before printing {needle:?}\n{}",
                    self.args,
                    self.output()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "terraform {:?} did not print {needle:?} within {timeout:?}\n{}",
                    self.args,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to terraform's stdin");
    }

    /// Closes stdin and waits for the exit; returns the status and all output.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let status = wait_with_deadline(&mut self.child, TERRAFORM_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "terraform {:?} did not finish within {TERRAFORM_TIMEOUT:?}; killed\n{}",
                self.args,
                self.output()
            )
        });
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (status, self.output())
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for the child up to `timeout`; kills it and returns `None` past that.
fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Stdout and stderr of a finished command, for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
