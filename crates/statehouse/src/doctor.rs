//! `statehouse doctor`: checks a configuration where it runs — settings, listen addresses, TLS
//! files, the master key file, the database (reachable, writable, migrations, clock) and the
//! storage targets — and prints, per finding, what to fix. It creates and migrates nothing;
//! testing a storage target writes and deletes a probe object there and is audited (as
//! `target test` is), and opening a current store records the key's check value (as any start
//! does).

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use anyhow::Result;
use statehouse_backup::service::{BackupOptions, BackupService};
use statehouse_core::access::Principal;
use statehouse_core::clock::{Clock, SystemClock};
use statehouse_core::crypto::KeyFile;
use statehouse_core::store_probe::StoreProbe;

use crate::config::Config;
use crate::instance;

/// Clocks further apart than this are warned about (lock ages, schedules, S3 signatures).
const SKEW_WARN_MILLIS: i64 = 1_000;
/// Clocks further apart than this are a problem (S3 clients are refused beyond 15 minutes;
/// lock ages and backup schedules are off by as much).
const SKEW_FAIL_MILLIS: i64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Finding {
    level: Level,
    topic: &'static str,
    message: String,
    fix: Option<String>,
}

#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn ok(&mut self, topic: &'static str, message: impl Into<String>) {
        self.push(Level::Ok, topic, message.into(), None);
    }

    fn warn(&mut self, topic: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Level::Warn, topic, message.into(), Some(fix.into()));
    }

    fn fail(&mut self, topic: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Level::Fail, topic, message.into(), Some(fix.into()));
    }

    fn push(&mut self, level: Level, topic: &'static str, message: String, fix: Option<String>) {
        let finding = Finding {
            level,
            topic,
            message,
            fix,
        };
        print_finding(&finding);
        self.0.push(finding);
    }

    fn count(&self, level: Level) -> usize {
        self.0.iter().filter(|f| f.level == level).count()
    }
}

fn print_finding(f: &Finding) {
    let tag = match f.level {
        Level::Ok => "ok  ",
        Level::Warn => "warn",
        Level::Fail => "FAIL",
    };
    let _ = crate::output::stdout_line(format_args!("{tag}  {}: {}", f.topic, f.message));
    if let Some(fix) = &f.fix {
        let _ = crate::output::stdout_line(format_args!("      fix: {fix}"));
    }
}

/// Runs every check; `Ok(false)` when any failed (the command then exits non-zero).
pub async fn run(config: &Config, unknown_vars: &[String]) -> Result<bool> {
    let mut report = Report::default();
    check_settings(config, unknown_vars, &mut report);
    check_listeners(config, &mut report).await;
    check_tls(config, &mut report);
    let key_ok = check_master_key(config, &mut report);
    let probe = check_database(config, &mut report).await;
    check_read_replica(config, &mut report).await;
    if let Some(probe) = probe
        && key_ok
        && probe.holds_store
        && probe.pending().is_empty()
        && probe.unknown().is_empty()
    {
        check_key_and_targets(config, &mut report).await;
    }
    let (fails, warns) = (report.count(Level::Fail), report.count(Level::Warn));
    let _ = crate::output::stdout_line(format_args!(
        "{} problem{}, {} warning{}",
        fails,
        if fails == 1 { "" } else { "s" },
        warns,
        if warns == 1 { "" } else { "s" },
    ));
    Ok(fails == 0)
}

fn check_settings(config: &Config, unknown_vars: &[String], report: &mut Report) {
    if unknown_vars.is_empty() {
        report.ok("settings", "every STATEHOUSE_* variable names a setting");
    }
    for name in unknown_vars {
        report.warn(
            "settings",
            format!("{name} is not a statehouse setting and is ignored"),
            "fix its name (see the Configuration section of the README) or unset it",
        );
    }
    let checks: [(&'static str, Result<()>); 4] = [
        ("http", config.http.limits().map(drop)),
        ("trusted_proxies", config.trusted_proxies().map(drop)),
        ("metrics", config.metrics.token().map(drop)),
        ("auth", config.auth_settings().map(drop)),
    ];
    for (topic, result) in checks {
        match result {
            Ok(()) => {}
            Err(e) => report.fail(topic, format!("{e:#}"), "correct the setting named above"),
        }
    }
}

/// Each address statehouse would listen on: free, or held by a server that answers
/// `/healthz` (a running statehouse), or held by something else.
async fn check_listeners(config: &Config, report: &mut Report) {
    let mut addresses = vec![("listen", "STATEHOUSE_LISTEN", config.listen.clone())];
    if !matches!(config.s3_listen.as_str(), "off" | "") {
        addresses.push((
            "s3_listen",
            "STATEHOUSE_S3_LISTEN",
            config.s3_listen.clone(),
        ));
    }
    if config.metrics.enabled && !config.metrics.listen.trim().is_empty() {
        addresses.push((
            "metrics.listen",
            "STATEHOUSE_METRICS__LISTEN",
            config.metrics.listen.trim().to_owned(),
        ));
    }
    for (key, var, address) in addresses {
        let topic = "listen";
        let resolved = match address.to_socket_addrs() {
            Ok(mut all) => all.next(),
            Err(e) => {
                report.fail(
                    topic,
                    format!("{key} = {address:?} is not an address: {e}"),
                    format!("write host:port, e.g. 0.0.0.0:8080 ({var})"),
                );
                continue;
            }
        };
        let Some(addr) = resolved else {
            report.fail(
                topic,
                format!("{key} = {address:?} resolves to nothing"),
                format!("write host:port ({var})"),
            );
            continue;
        };
        match TcpListener::bind(addr) {
            Ok(_) => report.ok(topic, format!("{key} {addr} is free")),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if answers_healthz(addr).await {
                    report.ok(
                        topic,
                        format!("{key} {addr} is in use by a server answering /healthz (a running statehouse)"),
                    );
                } else {
                    report.fail(
                        topic,
                        format!("{key} {addr} is in use by another program"),
                        format!("stop it (`ss -ltnp` shows which) or choose another port ({var})"),
                    );
                }
            }
            Err(e) => report.fail(
                topic,
                format!("cannot listen on {key} {addr}: {e}"),
                format!(
                    "ports below 1024 need privileges: use a higher port or a proxy; or an address of this host ({var})"
                ),
            ),
        }
    }
}

async fn answers_healthz(addr: SocketAddr) -> bool {
    let host = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let Ok(client) = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return false;
    };
    for scheme in ["http", "https"] {
        if let Ok(r) = client
            .get(format!("{scheme}://{host}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            return true;
        }
    }
    false
}

fn check_tls(config: &Config, report: &mut Report) {
    match config.tls.files() {
        Ok(None) => report.ok(
            "tls",
            "off: plain HTTP (put statehouse behind an HTTPS proxy, or set tls.cert_file and tls.key_file)",
        ),
        Ok(Some(files)) => {
            let cert = files.cert_file.display().to_string();
            match statehouse_server::tls::Certificate::load(files) {
                Ok(_) => report.ok("tls", format!("{cert} and its key can be served")),
                Err(e) => report.fail(
                    "tls",
                    e,
                    "give the PEM certificate chain and its private key, readable by statehouse",
                ),
            }
        }
        Err(e) => report.fail("tls", format!("{e:#}"), "set both tls files, or neither"),
    }
}

/// The master key file: readable, well-formed, private. `false` when it cannot be used.
fn check_master_key(config: &Config, report: &mut Report) -> bool {
    let path = config.master_key_path();
    let file = KeyFile::new(&path);
    if !path.exists() {
        report.warn(
            "master key",
            format!("{} does not exist", path.display()),
            "on a new instance `statehouse serve` creates it; otherwise restore it from your backup or point master_key_file / STATEHOUSE_MASTER_KEY_FILE at it",
        );
        return false;
    }
    let ring = match file.load() {
        Ok(ring) => ring,
        Err(e) => {
            report.fail(
                "master key",
                e.to_string(),
                "make the file readable by the user statehouse runs as, or restore it from your backup",
            );
            return false;
        }
    };
    match file.loose_permissions() {
        Some(mode) => report.warn(
            "master key",
            format!(
                "{} has mode {mode:04o}: others may read it, and with it every state",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        ),
        None => report.ok(
            "master key",
            format!(
                "{}: key {} ({} retired)",
                path.display(),
                ring.primary().id(),
                ring.retired().len()
            ),
        ),
    }
    true
}

/// `postgres.read_url`: reachable, a standby, holding the store.
async fn check_read_replica(config: &Config, report: &mut Report) {
    let Some(url) = config
        .postgres
        .read_url
        .as_deref()
        .filter(|u| !u.trim().is_empty() && config.is_postgres())
    else {
        return;
    };
    let fallback = "until it is fixed, every read goes to the primary";
    match statehouse_store_postgres::probe(&instance::pg_settings(config, url, false)).await {
        Err(e) => report.warn(
            "read replica",
            e.to_string(),
            format!("check postgres.read_url (STATEHOUSE_POSTGRES__READ_URL); {fallback}"),
        ),
        Ok(probe) if !probe.read_only => report.warn(
            "read replica",
            format!("{} ({}) is not a standby", probe.place, probe.version),
            format!("point postgres.read_url at a streaming standby of the store's database; {fallback}"),
        ),
        Ok(probe) if !probe.holds_store => report.warn(
            "read replica",
            format!("{} ({}): no statehouse store there", probe.place, probe.version),
            format!("point postgres.read_url at a standby of the store's database (and the same postgres.schema); {fallback}"),
        ),
        Ok(probe) => report.ok(
            "read replica",
            format!("{} ({}): a standby holding the store", probe.place, probe.version),
        ),
    }
}

async fn check_database(config: &Config, report: &mut Report) -> Option<StoreProbe> {
    let url = config
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty());
    let probed = match url {
        Some(url) if config.is_postgres() => {
            statehouse_store_postgres::probe(&instance::pg_settings(config, url, false)).await
        }
        _ => match config.sqlite_file() {
            Some(path) => statehouse_store_sqlite::probe(&path).await,
            None => {
                report.ok("database", "in-memory SQLite: nothing to check");
                return None;
            }
        },
    };
    let probe = match probed {
        Ok(probe) => probe,
        Err(statehouse_core::Error::NotFound(what)) => {
            report.warn(
                "database",
                what,
                "on a new instance `statehouse serve` creates it; otherwise point data_dir / STATEHOUSE_DATA_DIR or database_url at the existing store",
            );
            return None;
        }
        Err(e) => {
            report.fail(
                "database",
                e.to_string(),
                "check database_url (STATEHOUSE_DATABASE_URL): host, port, user, password, that the server runs and that it accepts this host (pg_hba.conf)",
            );
            return None;
        }
    };
    if !probe.holds_store {
        report.warn(
            "database",
            format!("{} ({}): no statehouse store there yet", probe.place, probe.version),
            "`statehouse serve` or `statehouse migrate` creates it; if you expected data, check the database, schema (postgres.schema) or data directory",
        );
    } else if probe.read_only {
        report.fail(
            "database",
            format!("{} ({}) accepts no writes (a standby, or a read-only file)", probe.place, probe.version),
            "point database_url at the primary, or list every host with target_session_attrs=read-write; for a file, make it writable by the user statehouse runs as",
        );
    } else if !probe.unknown().is_empty() {
        report.fail(
            "database",
            format!(
                "{}: the store was migrated by a newer statehouse (migrations {:?} are unknown to this one)",
                probe.place,
                probe.unknown()
            ),
            "run the statehouse version that serves this store (a downgrade is not supported)",
        );
    } else if !probe.pending().is_empty() {
        report.warn(
            "database",
            format!(
                "{} ({}): {} migration(s) of this statehouse not applied yet",
                probe.place,
                probe.version,
                probe.pending().len()
            ),
            "the next `statehouse serve` (or `statehouse migrate`) applies them; upgrade every replica together",
        );
    } else {
        report.ok(
            "database",
            format!(
                "{} ({}): statehouse store, migrations current ({})",
                probe.place,
                probe.version,
                probe.applied.len()
            ),
        );
    }
    if let Some(server_now) = probe.server_now_millis {
        let skew = server_now - SystemClock.now().millis();
        let message = format!(
            "PostgreSQL's clock and this host's are {} ms apart",
            skew.abs()
        );
        let fix = "synchronise both hosts with NTP (chrony, systemd-timesyncd): lock ages, schedules and S3 signatures depend on it";
        match skew.abs() {
            s if s > SKEW_FAIL_MILLIS => report.fail("clock", message, fix),
            s if s > SKEW_WARN_MILLIS => report.warn("clock", message, fix),
            _ => report.ok("clock", message),
        }
    }
    Some(probe)
}

/// With a current store: the master key verified against it, and each storage target tested.
async fn check_key_and_targets(config: &Config, report: &mut Report) {
    let instance = match instance::open(config, instance::Access::Existing).await {
        Ok(instance) => instance,
        Err(e) => {
            report.fail(
                "master key",
                format!("{e:#}"),
                "restore the key file that goes with this database from your backup",
            );
            return;
        }
    };
    report.ok("master key", "verified against the store");
    let Ok(backups) = BackupService::new(
        instance.services.clone(),
        BackupOptions {
            outbound: config.outbound_policy(),
            ..BackupOptions::default()
        },
    ) else {
        return;
    };
    let operator = Principal::local_operator();
    let workspaces = match instance.services.list_workspaces(&operator).await {
        Ok(list) => list,
        Err(e) => {
            report.fail("targets", e.to_string(), "see the database finding above");
            return;
        }
    };
    let mut tested = 0;
    for (workspace, _) in workspaces {
        let Ok(targets) = backups.list_targets(&operator, &workspace.name).await else {
            continue;
        };
        for target in targets {
            tested += 1;
            let label = format!("{}/{} ({})", workspace.name, target.name, target.kind);
            match backups
                .test_target(&operator, &workspace.name, &target.name)
                .await
            {
                Ok(outcome) if outcome.ok => report.ok(
                    "target",
                    format!(
                        "{label}: probe written, read and deleted in {} ms",
                        outcome.duration_ms
                    ),
                ),
                Ok(outcome) => report.fail(
                    "target",
                    format!("{label}: {}", outcome.error.unwrap_or_default()),
                    format!(
                        "correct it with `statehouse target change {} --workspace {}`",
                        target.name, workspace.name
                    ),
                ),
                Err(e) => report.fail("target", format!("{label}: {e}"), "see the message"),
            }
        }
    }
    if tested == 0 {
        report.ok("targets", "no storage targets configured");
    }
    instance.services.flush_journal().await;
}
