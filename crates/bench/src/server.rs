//! A running `statehouse serve` (the real release binary) on `127.0.0.1:0` in a temp data dir,
//! on SQLite or on a fresh schema of a PostgreSQL. Its stdout and stderr are drained for its
//! whole life (the tail is kept for error messages); it is killed on drop, and its PostgreSQL
//! schema dropped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::runtime::Runtime;

use crate::pg;

/// How long a server may take to print its address and token and answer `/readyz`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of the server's output is kept for error messages.
const LOG_TAIL: usize = 64 * 1024;

/// Extra `KEY=VALUE` settings for every server of this run (`--server-env`).
static EXTRA_ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Sets the extra server environment once, before the first server starts.
pub fn set_extra_env(env: Vec<(String, String)>) {
    let _ = EXTRA_ENV.set(env);
}

/// Where a server keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    /// A PostgreSQL URL; each server gets a fresh schema in it.
    Postgres(String),
}

impl Store {
    pub fn label(&self) -> &'static str {
        match self {
            Store::Sqlite => "SQLite",
            Store::Postgres(_) => "PostgreSQL",
        }
    }
}

/// The last [`LOG_TAIL`] bytes a process printed.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    fn push(&self, bytes: &[u8]) {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(bytes);
            if v.len() > 2 * LOG_TAIL {
                let cut = v.len() - LOG_TAIL;
                v.drain(..cut);
            }
        }
    }

    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// What the server printed at startup.
#[derive(Default)]
struct Startup {
    url: Option<String>,
    token: Option<String>,
    s3_url: Option<String>,
}

/// A running `statehouse serve`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    /// The instance admin token printed on first start.
    pub token: String,
    /// The S3 endpoint, `http://127.0.0.1:PORT` (empty when the binary has none).
    pub s3_url: String,
    pub store: Store,
    /// The PostgreSQL schema this server lives in, dropped on drop.
    schema: Option<String>,
    log: Tail,
    /// Removed on drop; `None` once handed over by [`Server::stop_keeping_store`].
    data_dir: Option<tempfile::TempDir>,
}

/// The store of a stopped server (its data dir, its PostgreSQL schema), for measuring the
/// database alone; removed (the schema dropped) on drop.
pub struct KeptStore {
    pub store: Store,
    data_dir: tempfile::TempDir,
    schema: Option<String>,
}

impl KeptStore {
    /// The SQLite database file (`statehouse.db` in the data dir).
    pub fn sqlite_file(&self) -> std::path::PathBuf {
        self.data_dir.path().join("statehouse.db")
    }

    /// The PostgreSQL schema holding the tables, on PostgreSQL.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

impl Drop for KeptStore {
    fn drop(&mut self) {
        if let (Store::Postgres(url), Some(schema)) = (&self.store, &self.schema) {
            pg::drop_schema(url, schema);
        }
    }
}

impl Server {
    /// Starts the binary `bin` and waits until it answers `/readyz`.
    pub fn start(rt: &Runtime, bin: &Path, store: &Store) -> Result<Server> {
        let data_dir = tempfile::Builder::new()
            .prefix("statehouse-bench-")
            .tempdir()
            .context("creating a temp data dir")?;
        let mut cmd = Command::new(bin);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STATEHOUSE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("STATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("STATEHOUSE_S3_LISTEN", "127.0.0.1:0")
            .env("STATEHOUSE_DATA_DIR", data_dir.path());
        let mut schema = None;
        if let Store::Postgres(url) = store {
            let name = pg::unique_name("bench_sh");
            cmd.env("STATEHOUSE_DATABASE_URL", url)
                .env("STATEHOUSE_POSTGRES__SCHEMA", &name);
            schema = Some(name);
        }
        if let Some(extra) = EXTRA_ENV.get() {
            cmd.envs(extra.iter().map(|(k, v)| (k, v)));
        }
        let mut child = cmd
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;

        let log = Tail::default();
        let startup = Arc::new(Mutex::new(Startup::default()));
        if let Some(out) = child.stdout.take() {
            drain_lines(out, log.clone(), startup.clone());
        }
        if let Some(err) = child.stderr.take() {
            drain_lines(err, log.clone(), startup.clone());
        }
        // From here on, an error drops the server, which kills the process.
        let mut server = Server {
            child,
            url: String::new(),
            token: String::new(),
            s3_url: String::new(),
            store: store.clone(),
            schema,
            log,
            data_dir: Some(data_dir),
        };
        server.await_startup_lines(&startup)?;
        rt.block_on(server.await_ready())?;
        // Printed before the server accepts requests (a binary without the S3 endpoint, such
        // as an older --baseline, prints none).
        if let Ok(s) = startup.lock()
            && let Some(s3_url) = &s.s3_url
        {
            server.s3_url = s3_url.trim_end_matches('/').to_owned();
        }
        eprintln!(
            "  {} serve ({}) pid {} at {}",
            bin.file_name().unwrap_or_default().to_string_lossy(),
            store.label(),
            server.pid(),
            server.url
        );
        Ok(server)
    }

    fn await_startup_lines(&mut self, startup: &Mutex<Startup>) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(s) = startup.lock()
                && let (Some(url), Some(token)) = (&s.url, &s.token)
            {
                self.url = url.trim_end_matches('/').to_owned();
                self.token = token.clone();
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                thread::sleep(Duration::from_millis(200));
                bail!(
                    "statehouse serve exited ({status}) before printing its address and admin token\n{}",
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "statehouse serve did not print `statehouse listening on http://…` and \
                     `admin token (shown once): sht_…` within {START_TIMEOUT:?}\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        if !self.token.starts_with("sht_") {
            bail!("admin token {:?} does not start with sht_", self.token);
        }
        Ok(())
    }

    async fn await_ready(&mut self) -> Result<()> {
        let client = crate::http::client()?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match client.get(format!("{}/readyz", self.url)).send().await {
                Ok(r) if r.status() == 200 => return Ok(()),
                Ok(r) => last = format!("status {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "statehouse serve exited ({status}) before /readyz answered\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "GET /readyz did not answer 200 within {START_TIMEOUT:?} (last: {last})\n{}",
            self.log_text()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL, as a crash would) and keeps its store for the caller.
    pub fn stop_keeping_store(mut self) -> Result<KeptStore> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = self
            .data_dir
            .take()
            .context("the server's data dir was already handed over")?;
        Ok(KeptStore {
            store: self.store.clone(),
            data_dir,
            schema: self.schema.take(),
        })
    }

    /// The Terraform `http` backend address of a state in the `default` workspace.
    pub fn tf_address(&self, state: &str) -> String {
        format!("{}/tf/default/{state}", self.url)
    }

    /// The tail of what the server printed.
    pub fn log_text(&self) -> String {
        format!(
            "---- statehouse serve ({}) output, last lines ----\n{}\n---- end ----",
            self.store.label(),
            self.log.text()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (Store::Postgres(url), Some(schema)) = (&self.store, &self.schema) {
            pg::drop_schema(url, schema);
        }
    }
}

/// Reads a pipe to its end on a thread: keeps a tail and notes the startup lines.
fn drain_lines(pipe: impl Read + Send + 'static, log: Tail, startup: Arc<Mutex<Startup>>) {
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, pipe);
        let mut line = Vec::new();
        let mut looking = true;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            log.push(&line);
            if looking {
                let text = String::from_utf8_lossy(&line);
                if let Ok(mut s) = startup.lock() {
                    if let Some(url) = after(&text, "statehouse listening on ") {
                        s.url = Some(url.to_owned());
                    }
                    if let Some(token) = after(&text, "admin token (shown once): ") {
                        s.token = Some(token.to_owned());
                    }
                    if let Some(s3_url) = after(&text, "S3 endpoint (Pulumi): ") {
                        s.s3_url = Some(s3_url.to_owned());
                    }
                    looking = s.url.is_none() || s.token.is_none() || s.s3_url.is_none();
                }
            }
        }
    });
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| line[i + marker.len()..].trim())
}

/// `VmRSS` and `VmHWM` of a process, in bytes, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in {path}"))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("cannot parse {line:?}"))?;
        Ok(kb * 1024)
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// CPU time (user + system) a process used so far, from `/proc/PID/stat` (`self` for this one).
pub fn cpu_time(pid: &str) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3, `state`.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("cannot parse {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("cannot parse field {} of {path}", i + 3))
    };
    // utime and stime are fields 14 and 15, in clock ticks (USER_HZ = 100 on Linux).
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 10))
}

/// Context switches (voluntary + involuntary) of all of a process's threads so far.
pub fn context_switches(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/task");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        for line in text.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok(total)
}
