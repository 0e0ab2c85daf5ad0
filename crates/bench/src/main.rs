//! `statehouse-bench`: runs the real `statehouse` release binary and prints figures as a
//! Markdown report (it never asserts timings).
//!
//! 1. The server alone, driven by a Rust client: GET and POST latency of 1 MB states, LOCK+UNLOCK
//!    pairs per second, peak memory of a 50 MB write, with `GET /healthz` and a static server
//!    as the HTTP floors and `sqlite3` / `pgbench` running the store's lock statements as the
//!    database floor; with `--baseline`, a second binary measured side by side.
//! 2. Terraform 1.0.3: `state push` / `state pull` of 1 MB and 50 MB states through statehouse
//!    and through Terraform's own `pg` backend on the same PostgreSQL (the baseline).
//!
//! Each section on SQLite and on PostgreSQL. Build the server first:
//! `cargo build --release -p statehouse`, then
//! `cargo run --release -p statehouse-bench -- [--quick] [--only server|terraform]`.
//!
//! Only when asked: `--only search` (resource search, in process), `--only backup`
//! (PostgreSQL backups against `pg_dump | zstd`, see `backup.rs`) and `--only s3` (Pulumi's
//! checkpoint cycle against moto's S3 server, see `s3.rs`).

mod backup;
mod components;
mod dbfloor;
mod floor;
mod http;
mod latency;
mod locks;
mod machine;
mod memory;
mod pg;
mod report;
mod report_server;
mod s3;
mod search;
mod server;
mod sigv4;
mod state;
mod stats;
mod targets;
mod terraform;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use crate::server::{Server, Store};

#[derive(Debug, Parser)]
#[command(
    name = "statehouse-bench",
    about = "Benchmarks the statehouse binary and prints a Markdown report"
)]
struct Cli {
    /// Run one section only.
    #[arg(long, value_enum)]
    only: Option<Section>,
    /// Stores to run on, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    stores: Vec<StoreKind>,
    /// Fewer repetitions (a smoke run; figures are noisier).
    #[arg(long)]
    quick: bool,
    /// The statehouse binary [default: target/release/statehouse of this workspace].
    #[arg(long)]
    statehouse: Option<PathBuf>,
    /// A second statehouse binary (e.g. the previous commit's build): every server measurement
    /// also runs with it, taking turns with --statehouse, each on its own fresh store, and the
    /// report shows both side by side.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The Terraform 1.0.3 binary [default: .tools/terraform of this workspace].
    #[arg(long, env = "STATEHOUSE_TERRAFORM")]
    terraform: Option<PathBuf>,
    /// PostgreSQL URL (a superuser: throwaway schemas are created and dropped).
    #[arg(long, env = "STATEHOUSE_TEST_PG_URL")]
    pg_url: Option<String>,
    /// Repetitions of each Terraform command [default: 5, 3 with --quick], or rounds of the
    /// backup measurements [default: 3, 1 with --quick].
    #[arg(long)]
    reps: Option<usize>,
    /// `--only backup`: the database backed up (on the server of --pg-url).
    #[arg(long, default_value = "bench")]
    database: String,
    /// `--only backup`: first (re)create --database with `pgbench -i -s <SCALE>` (150 ≈ 2.2 GB).
    #[arg(long)]
    init_scale: Option<u32>,
    /// `--only backup`: where the dumps and the backup target directory go [default: the
    /// system's temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Internal: run one backup or restore job (from the environment) and report its peak
    /// memory; the backup section re-executes this binary with it.
    #[arg(long, hide = true)]
    backup_child: bool,
    /// Extra environment for every statehouse server, KEY=VALUE (repeatable), e.g.
    /// `--server-env STATEHOUSE_LOG=warn` to see what request logging costs.
    #[arg(long, value_parser = parse_key_value)]
    server_env: Vec<(String, String)>,
    /// What the generated states are made of (the 50 MB memory figure is measured with both).
    #[arg(long, value_enum, default_value = "resources")]
    payload: state::Payload,
    /// Concurrent clients of the main LOCK+UNLOCK measurement, one state each (it is also
    /// measured with 2).
    #[arg(long, default_value_t = 8)]
    lock_workers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Server,
    Terraform,
    /// Resource search on 10,000 states / 1,000,000 instances, seeded through the store (only
    /// when asked: seeding takes minutes).
    Search,
    /// PostgreSQL backups and restores against `pg_dump | zstd` on --database (only when
    /// asked: a 2 GB database takes minutes).
    Backup,
    /// The S3 endpoint as Pulumi uses it, beside moto's S3 server (only when asked).
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    Sqlite,
    Postgres,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.backup_child {
        return backup::run_child();
    }
    if cli.only == Some(Section::Search) {
        return run_search(&cli);
    }
    if cli.only == Some(Section::Backup) {
        return run_backup(&cli);
    }
    if cli.only == Some(Section::S3) {
        return run_s3(&cli);
    }
    let statehouse = cli
        .statehouse
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/statehouse"));
    let statehouse = statehouse.canonicalize().with_context(|| {
        format!(
            "no statehouse binary at {} (build it with `cargo build --release -p statehouse`, or pass --statehouse)",
            statehouse.display()
        )
    })?;

    let baseline = match &cli.baseline {
        Some(path) => Some(
            path.canonicalize()
                .with_context(|| format!("no baseline statehouse binary at {}", path.display()))?,
        ),
        None => None,
    };
    let mut bins = vec![http::Binary {
        role: "statehouse",
        path: statehouse.clone(),
    }];
    if let Some(path) = &baseline {
        bins.push(http::Binary {
            role: "baseline",
            path: path.clone(),
        });
    }

    server::set_extra_env(cli.server_env.clone());
    let mut stores = Vec::new();
    for kind in &cli.stores {
        match kind {
            StoreKind::Sqlite => stores.push(Store::Sqlite),
            StoreKind::Postgres => match &cli.pg_url {
                Some(url) => stores.push(Store::Postgres(url.clone())),
                None => bail!(
                    "--stores includes postgres but no PostgreSQL URL was given: pass --pg-url or set \
                     STATEHOUSE_TEST_PG_URL (e.g. start one with `scripts/pg-cluster.sh start /tmp/pgbench 55433`)"
                ),
            },
        }
    }
    stores.dedup();
    let run_server = cli.only.is_none() || cli.only == Some(Section::Server);
    let run_terraform = cli.only.is_none() || cli.only == Some(Section::Terraform);
    let terraform_bin = cli
        .terraform
        .clone()
        .unwrap_or_else(|| workspace_root().join(".tools/terraform"));
    let terraform_bin = terraform_bin.canonicalize().unwrap_or(terraform_bin);
    let terraform_version = if run_terraform {
        Some(terraform::check_version(&terraform_bin)?)
    } else {
        None
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    let mut report = report::Report {
        command: command_line(),
        statehouse: statehouse.clone(),
        statehouse_age: machine::age_secs(&statehouse),
        baseline: baseline
            .as_ref()
            .map(|path| (path.clone(), machine::age_secs(path))),
        commit: machine::git_commit(&workspace_root()),
        machine: machine::Machine::probe(),
        load_before: machine::loadavg(),
        load_after: String::new(),
        postgres: cli
            .pg_url
            .as_deref()
            .map(|u| format!("{} at `{}`", pg::describe(u), report::redact(u))),
        terraform: terraform_version.map(|v| (terraform_bin.clone(), v)),
        plan: http::Plan {
            lock_workers: cli.lock_workers.max(1),
            payload: cli.payload,
            ..http::Plan::new(cli.quick)
        },
        server_env: cli.server_env.clone(),
        components: Vec::new(),
        server: Vec::new(),
        tf_reps: 0,
        tf_rows: Vec::new(),
    };

    if run_server {
        eprintln!("section 1, component costs in process");
        for payload in [state::Payload::Resources, state::Payload::Random] {
            report
                .components
                .push(components::measure(payload, cli.quick)?);
        }
        for store in &stores {
            eprintln!("section 1, server alone: {}", store.label());
            report
                .server
                .push(http::run(&rt, &bins, store, &report.plan)?);
        }
    }

    if run_terraform {
        let reps = cli.reps.unwrap_or(if cli.quick { 3 } else { 5 }).max(1);
        report.tf_reps = reps;
        eprintln!("section 2, Terraform: {reps} repetitions of each command");
        let mut servers = Vec::new();
        for store in &stores {
            servers.push(Server::start(&rt, &statehouse, store)?);
        }
        let refs: Vec<&Server> = servers.iter().collect();
        let pg_url = stores.iter().find_map(|s| match s {
            Store::Postgres(url) => Some(url.as_str()),
            Store::Sqlite => None,
        });
        report.tf_rows = terraform::run(&terraform_bin, &refs, pg_url, reps, cli.payload)?;
    }

    report.load_after = machine::loadavg();
    print!("{}", report.render());
    Ok(())
}

/// Section 3 alone: in-process against the stores, no server binary needed.
fn run_search(cli: &Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let plan = search::Plan::new(cli.quick);
    let machine = machine::Machine::probe();
    let load_before = machine::loadavg();
    let mut results = Vec::new();
    for kind in &cli.stores {
        let store = store_of(cli, *kind)?;
        eprintln!("section 3, resource search: {}", store.label());
        results.push(rt.block_on(search::run(&store, &plan))?);
    }
    println!("# statehouse benchmark report: resource search\n");
    println!("Command: `{}`\n", report::redact(&command_line()));
    if let Some(commit) = machine::git_commit(&workspace_root()) {
        println!("- checkout: {commit}");
    }
    if let Some(url) = &cli.pg_url {
        println!("- {} at `{}`", pg::describe(url), report::redact(url));
    }
    println!(
        "- machine: {} CPUs ({}), {} RAM, Linux {}; temp dir {}",
        machine.nproc, machine.cpu, machine.memory, machine.kernel, machine.temp_fs
    );
    println!(
        "- load average before: {load_before}, after: {}\n",
        machine::loadavg()
    );
    print!("{}", search::render(&results));
    Ok(())
}

/// Section 4 alone: statehouse's backup library against the shell tools, no server binary.
fn run_backup(cli: &Cli) -> Result<()> {
    let Some(url) = cli.pg_url.clone() else {
        bail!(
            "--only backup needs a PostgreSQL URL (a superuser): pass --pg-url or set STATEHOUSE_TEST_PG_URL"
        );
    };
    let plan = backup::Plan {
        url: url.clone(),
        database: cli.database.clone(),
        init_scale: cli.init_scale,
        reps: cli.reps.unwrap_or(if cli.quick { 1 } else { 3 }).max(1),
        work_dir: cli.work_dir.clone().unwrap_or_else(std::env::temp_dir),
    };
    let machine = machine::Machine::probe();
    let load_before = machine::loadavg();
    let started = statehouse_core::clock::Clock::now(&statehouse_core::clock::SystemClock);
    let results = backup::run(&plan)?;
    println!("# statehouse benchmark report: PostgreSQL backups\n");
    println!("Command: `{}`\n", report::redact(&command_line()));
    println!("- run started {}", started.to_rfc3339());
    if let Some(commit) = machine::git_commit(&workspace_root()) {
        println!("- checkout: {commit}");
    }
    println!("- {} at `{}`", pg::describe(&url), report::redact(&url));
    println!(
        "- machine: {} CPUs ({}), {} RAM, Linux {}; temp dir {}; work dir {}",
        machine.nproc,
        machine.cpu,
        machine.memory,
        machine.kernel,
        machine.temp_fs,
        plan.work_dir.display()
    );
    println!(
        "- load average before: {load_before}, after: {}\n",
        machine::loadavg()
    );
    print!("{}", backup::render(&results));
    Ok(())
}

/// The S3 section alone: statehouse on each store, then moto.
fn run_s3(cli: &Cli) -> Result<()> {
    let statehouse = cli
        .statehouse
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/statehouse"));
    let statehouse = statehouse.canonicalize().with_context(|| {
        format!(
            "no statehouse binary at {} (build it with `cargo build --release -p statehouse`)",
            statehouse.display()
        )
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let plan = s3::Plan::new(cli.quick);
    let machine = machine::Machine::probe();
    let load_before = machine::loadavg();
    let mut figures = Vec::new();
    for kind in &cli.stores {
        let store = store_of(cli, *kind)?;
        eprintln!("S3 section: statehouse on {}", store.label());
        figures.push(s3::run_statehouse(&rt, &statehouse, &store, &plan)?);
    }
    eprintln!("S3 section: moto");
    figures.push(s3::run_moto(
        &rt,
        &workspace_root().join(".tools/venv"),
        &plan,
    )?);
    println!("# statehouse benchmark report: the S3 endpoint (Pulumi)\n");
    println!("Command: `{}`\n", report::redact(&command_line()));
    if let Some(commit) = machine::git_commit(&workspace_root()) {
        println!("- checkout: {commit}");
    }
    println!(
        "- machine: {} CPUs ({}), {} RAM, Linux {}; temp dir {}",
        machine.nproc, machine.cpu, machine.memory, machine.kernel, machine.temp_fs
    );
    println!(
        "- load average before: {load_before}, after: {}\n",
        machine::loadavg()
    );
    print!("{}", s3::render(&figures, &plan));
    Ok(())
}

/// The store a `--stores` entry names.
fn store_of(cli: &Cli, kind: StoreKind) -> Result<Store> {
    Ok(match kind {
        StoreKind::Sqlite => Store::Sqlite,
        StoreKind::Postgres => match &cli.pg_url {
            Some(url) => Store::Postgres(url.clone()),
            None => bail!(
                "--stores includes postgres but no PostgreSQL URL was given: pass --pg-url or set STATEHOUSE_TEST_PG_URL"
            ),
        },
    })
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// How this run was invoked, as a command to paste.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).map(|a| shell_quote(&a)).collect();
    let mut cmd = "cargo run --release -p statehouse-bench --".to_owned();
    for a in args {
        cmd.push(' ');
        cmd.push_str(&a);
    }
    cmd
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
