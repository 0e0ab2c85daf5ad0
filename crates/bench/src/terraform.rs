//! Section 2: the real Terraform 1.0.3 client, `terraform state push` and `terraform state
//! pull` of big states, through statehouse (http backend) and through Terraform's own `pg`
//! backend on the same PostgreSQL (the baseline).
//!
//! Every repetition pushes into an empty state (a fresh state name on the http backend, a fresh
//! workspace on the pg backend), then pulls it back. Backends take turns within each repetition
//! so that a change in the machine's load hits them alike.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http::MB;
use crate::pg;
use crate::server::Server;
use crate::state::{Payload, StateTemplate};

/// The state sizes measured.
pub const SIZES: [usize; 2] = [MB, 50 * MB];

/// The timings of one backend at one size.
pub struct Row {
    pub backend: String,
    /// The pg backend: the baseline of the ratios.
    pub baseline: bool,
    pub size: usize,
    pub file_bytes: usize,
    pub push: Vec<Duration>,
    pub pull: Vec<Duration>,
}

/// A Terraform working directory bound to one backend.
struct Workdir {
    label: String,
    bin: PathBuf,
    dir: tempfile::TempDir,
    kind: Kind,
}

enum Kind {
    /// statehouse: addresses and credentials through TF_HTTP_* variables.
    Http { server_url: String, token: String },
    /// Terraform's pg backend: one fresh workspace per repetition.
    Pg,
}

impl Workdir {
    fn http(bin: &Path, server: &Server) -> Result<Workdir> {
        let w = Workdir {
            label: format!("statehouse ({})", server.store.label()),
            bin: bin.to_owned(),
            dir: tempdir()?,
            kind: Kind::Http {
                server_url: server.url.clone(),
                token: server.token.clone(),
            },
        };
        w.write_config("terraform {\n  backend \"http\" {}\n}\n")?;
        w.run_ok(
            &["init", "-input=false", "-no-color"],
            Some("bench/tf/init"),
        )?;
        Ok(w)
    }

    fn pg(bin: &Path, url: &str, schema: &str) -> Result<Workdir> {
        let w = Workdir {
            label: "Terraform pg backend (baseline)".into(),
            bin: bin.to_owned(),
            dir: tempdir()?,
            kind: Kind::Pg,
        };
        w.write_config(&format!(
            "terraform {{\n  backend \"pg\" {{\n    conn_str    = \"{}\"\n    schema_name = \"{schema}\"\n  }}\n}}\n",
            pg::without_tls(url)
        ))?;
        w.run_ok(&["init", "-input=false", "-no-color"], None)?;
        Ok(w)
    }

    fn write_config(&self, hcl: &str) -> Result<()> {
        std::fs::write(self.dir.path().join("main.tf"), hcl).context("writing main.tf")?;
        std::fs::write(self.dir.path().join(".terraformrc-bench"), "")
            .context("writing the CLI config")
    }

    /// Terraform with a clean environment; `state` is the http backend's state name.
    fn command(&self, args: &[&str], state: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.bin);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("TF_") || k.starts_with("STATEHOUSE_") {
                cmd.env_remove(&key);
            }
        }
        let dir = self.dir.path();
        cmd.args(args)
            .current_dir(dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_INPUT", "0")
            .env("TF_DATA_DIR", dir.join(".terraform"))
            .env("TF_CLI_CONFIG_FILE", dir.join(".terraformrc-bench"))
            .stdin(Stdio::null());
        if let (Kind::Http { server_url, token }, Some(state)) = (&self.kind, state) {
            let address = format!("{server_url}/tf/default/{state}");
            cmd.env("TF_HTTP_ADDRESS", &address)
                .env("TF_HTTP_LOCK_ADDRESS", &address)
                .env("TF_HTTP_UNLOCK_ADDRESS", &address)
                .env("TF_HTTP_USERNAME", "bench")
                .env("TF_HTTP_PASSWORD", token);
        }
        cmd
    }

    /// Runs to completion with stdout into `stdout_to` (or a log file); the wall time.
    fn run_timed(
        &self,
        args: &[&str],
        state: Option<&str>,
        stdout_to: Option<&Path>,
    ) -> Result<Duration> {
        let dir = self.dir.path();
        let out_path = stdout_to.map_or_else(|| dir.join("stdout.log"), Path::to_owned);
        let err_path = dir.join("stderr.log");
        let stdout = File::create(&out_path).context("creating the stdout file")?;
        let stderr = File::create(&err_path).context("creating the stderr file")?;
        let mut cmd = self.command(args, state);
        cmd.stdout(stdout).stderr(stderr);
        let started = Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("running {}", self.bin.display()))?;
        let took = started.elapsed();
        if !status.success() {
            let err = std::fs::read_to_string(&err_path).unwrap_or_default();
            let out = if stdout_to.is_none() {
                std::fs::read_to_string(&out_path).unwrap_or_default()
            } else {
                String::new()
            };
            bail!(
                "[{}] terraform {args:?} failed ({status}) in {}\n{out}\n{err}",
                self.label,
                dir.display()
            );
        }
        Ok(took)
    }

    fn run_ok(&self, args: &[&str], state: Option<&str>) -> Result<()> {
        self.run_timed(args, state, None).map(|_| ())
    }

    /// Prepares an empty state for repetition `name`; returns the http state name if any.
    fn fresh_state(&self, name: &str) -> Result<Option<String>> {
        match self.kind {
            Kind::Http { .. } => Ok(Some(format!("bench/tf/{name}"))),
            Kind::Pg => {
                self.run_ok(&["workspace", "new", "-no-color", name], None)?;
                Ok(None)
            }
        }
    }
}

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("statehouse-bench-tf-")
        .tempdir()
        .context("creating a Terraform working dir")
}

/// Checks the Terraform binary is version 1.0.3; returns its first `version` line.
pub fn check_version(bin: &Path) -> Result<String> {
    let out = Command::new(bin)
        .arg("version")
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "cannot run Terraform at {} (install it with `bash scripts/test.sh`, or pass --terraform)",
                bin.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("").to_owned();
    if first != "Terraform v1.0.3" {
        bail!(
            "{} says {first:?}, expected Terraform v1.0.3",
            bin.display()
        );
    }
    Ok(first)
}

/// Runs the Terraform section over the given statehouse servers and, with a PostgreSQL URL,
/// the pg backend baseline.
pub fn run(
    bin: &Path,
    servers: &[&Server],
    pg_url: Option<&str>,
    reps: usize,
    payload: Payload,
) -> Result<Vec<Row>> {
    let mut dirs = Vec::new();
    for server in servers {
        eprintln!("  terraform init: {}", server.store.label());
        dirs.push(Workdir::http(bin, server)?);
    }
    let pg_schema = pg_url.map(|_| pg::unique_name("bench_tfpg"));
    if let (Some(url), Some(schema)) = (pg_url, &pg_schema) {
        eprintln!("  terraform init: pg backend");
        dirs.push(Workdir::pg(bin, url, schema)?);
    }
    let result = measure(&dirs, reps, payload);
    if let (Some(url), Some(schema)) = (pg_url, &pg_schema) {
        pg::drop_schema(url, schema);
    }
    result
}

fn measure(dirs: &[Workdir], reps: usize, payload: Payload) -> Result<Vec<Row>> {
    let files = tempdir()?;
    let mut rows = Vec::new();
    for (size_index, size) in SIZES.into_iter().enumerate() {
        let label = format!("{}mb", size / MB);
        let file = files.path().join(format!("{label}.tfstate"));
        let body = StateTemplate::new(payload, size, &label)?.body(1);
        let file_bytes = body.len();
        std::fs::write(&file, &body).context("writing the state file")?;
        drop(body);
        let file_arg = file.to_str().context("temp path is not UTF-8")?;
        let first_row = rows.len();
        for w in dirs {
            rows.push(Row {
                backend: w.label.clone(),
                baseline: matches!(w.kind, Kind::Pg),
                size,
                file_bytes,
                push: Vec::new(),
                pull: Vec::new(),
            });
        }
        // Repetition 0 of the first size warms caches (Terraform binary, first-use paths) and
        // is not counted.
        let first = if size_index == 0 { 0 } else { 1 };
        for rep in first..=reps {
            for (i, w) in dirs.iter().enumerate() {
                let name = format!("s{label}_r{rep}_{}", std::process::id());
                let state = w.fresh_state(&name)?;
                let push = w.run_timed(
                    &["state", "push", "-no-color", file_arg],
                    state.as_deref(),
                    None,
                )?;
                let pulled_path = w.dir.path().join("pulled.json");
                let pull = w.run_timed(
                    &["state", "pull", "-no-color"],
                    state.as_deref(),
                    Some(&pulled_path),
                )?;
                let pulled = std::fs::metadata(&pulled_path)
                    .map(|m| m.len())
                    .unwrap_or(0);
                if pulled < (file_bytes as u64) * 9 / 10 {
                    bail!(
                        "[{}] terraform state pull wrote {pulled} bytes after pushing {file_bytes}",
                        w.label
                    );
                }
                let _ = std::fs::remove_file(&pulled_path);
                eprintln!(
                    "  {label} rep {rep}{} {}: push {:.3} s, pull {:.3} s",
                    if rep == 0 { " (warm-up)" } else { "" },
                    w.label,
                    push.as_secs_f64(),
                    pull.as_secs_f64()
                );
                if rep > 0 {
                    let row = &mut rows[first_row + i];
                    row.push.push(push);
                    row.pull.push(pull);
                }
            }
        }
    }
    Ok(rows)
}
