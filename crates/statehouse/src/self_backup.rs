//! statehouse's own backups: the schedule's setup (for `serve`), `statehouse self-backup` (one
//! now) and `statehouse restore-self` (bring an instance back from a backup plus the master
//! key file).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use statehouse_backup::PgConnection;
use statehouse_backup::pg_tools::PgToolSearch;
use statehouse_backup::schedule::{Schedule, ScheduleSpec};
use statehouse_backup::self_backup::{
    RestoreDestination, SelfBackupPolicy, SelfSource, latest_in, restore_self,
};
use statehouse_backup::service::{BackupOptions, BackupService, SelfBackupSetup};
use statehouse_backup::targets::{LocalSpec, TargetSpec};
use statehouse_core::crypto::KeyFile;
use statehouse_core::service::Services;

use crate::config::{Config, redact_url};
use crate::instance;

/// The self-backup schedule as configured; `None` when switched off.
pub fn setup(config: &Config) -> Result<Option<SelfBackupSetup>> {
    let c = &config.self_backup;
    if !c.enabled {
        return Ok(None);
    }
    let schedule = ScheduleSpec {
        schedule: Schedule::Cron {
            expression: c.cron.clone(),
        },
        timezone: c.timezone.clone(),
    };
    schedule
        .validate()
        .context("invalid self_backup.cron / self_backup.timezone")?;
    Ok(Some(SelfBackupSetup {
        source: source(config)?,
        target: TargetSpec::Local(LocalSpec {
            path: config.self_backup_dir().display().to_string(),
        }),
        policy: SelfBackupPolicy {
            schedule,
            keep_last: c.keep_last.max(1),
        },
    }))
}

fn source(config: &Config) -> Result<SelfSource> {
    match config.database_url.as_deref() {
        Some(url) if config.is_postgres() => {
            // pg_dump gets one host: each host of a multi-host URL as a URL of its own.
            let info = statehouse_store_postgres::conninfo::parse(url)
                .with_context(|| format!("reading {}", redact_url(url)))?;
            let mut hosts = info
                .urls
                .iter()
                .map(|one| PgConnection::from_url(one))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("reading {}", redact_url(url)))?;
            let connection = hosts.remove(0);
            Ok(SelfSource::Postgres {
                connection,
                other_hosts: hosts,
                schema: config.postgres.schema.clone(),
            })
        }
        _ => match config.sqlite_file() {
            Some(path) => Ok(SelfSource::Sqlite { path }),
            None => bail!(
                "self-backups need a SQLite file or PostgreSQL; STATEHOUSE_DATABASE_URL {} is neither",
                config
                    .database_url
                    .as_deref()
                    .map(redact_url)
                    .unwrap_or_default()
            ),
        },
    }
}

/// `statehouse self-backup`: one backup of the store now, into the self-backup directory.
pub async fn run_now(config: &Config) -> Result<()> {
    let instance = instance::open(config, instance::Access::Existing).await?;
    let path = take(config, &instance.services).await?;
    instance.services.flush_journal().await;
    outln!("{}", path.display())?;
    Ok(())
}

/// Takes one self-backup now (as configured) and returns the file it wrote.
pub async fn take(config: &Config, services: &Services) -> Result<PathBuf> {
    let Some(setup) = setup(config)? else {
        bail!("self-backups are switched off (self_backup.enabled = false)");
    };
    let backups = BackupService::new(
        services.clone(),
        BackupOptions {
            outbound: config.outbound_policy(),
            ..BackupOptions::default()
        },
    )?;
    let meta = backups.self_backup_now(&setup).await?;
    errln!(
        "backed up statehouse's store ({} bytes stored, sha256 {}, master key {}); restore with \
         `statehouse restore-self --from <file>` and the master key file",
        meta.stored_bytes,
        meta.sha256,
        services.cipher.sealing_key_id()?
    );
    Ok(config.self_backup_dir().join(&meta.object))
}

#[derive(Args)]
pub struct RestoreSelfArgs {
    /// The backup file (`statehouse-<time>-<id>.sqlite.zst.age` or `.dump.zst.age`).
    #[arg(
        long,
        conflicts_with = "latest_in",
        required_unless_present = "latest_in"
    )]
    from: Option<PathBuf>,
    /// Or the newest backup in this directory (e.g. the self-backup directory).
    #[arg(long, value_name = "DIR")]
    latest_in: Option<PathBuf>,
}

/// `statehouse restore-self`: the store comes back from a self-backup, decrypted with the
/// master key file. SQLite: into the data directory, which must not hold a database yet.
/// PostgreSQL: into STATEHOUSE_DATABASE_URL (its schema, cleaned first).
pub async fn restore(config: &Config, args: RestoreSelfArgs) -> Result<()> {
    let file = match (&args.from, &args.latest_in) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => latest_in(dir)
            .with_context(|| format!("no statehouse self-backup in {}", dir.display()))?,
        (None, None) => bail!("give --from FILE or --latest-in DIR"),
    };
    let key_file = KeyFile::new(config.master_key_path());
    if !key_file.path().exists() {
        bail!(
            "the master key file {} is missing: restore it first (self-backups are encrypted with a key derived from it)",
            key_file.path().display()
        );
    }
    let ring = key_file.load()?;
    let destination = match source(config)? {
        SelfSource::Sqlite { path } => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            RestoreDestination::Sqlite { path }
        }
        SelfSource::Postgres {
            connection,
            other_hosts,
            ..
        } => RestoreDestination::Postgres {
            connection: statehouse_backup::self_backup::primary_host(&connection, &other_hosts)
                .await?
                .clone(),
        },
    };
    let bytes = match restore_self(&file, &ring, &destination, &PgToolSearch::system()).await {
        Ok(bytes) => bytes,
        Err(e @ statehouse_backup::pipeline::BackupError::Decode(_)) => {
            let made_under = made_under_key(&file)
                .map(|id| format!(" It was made under master key {id}."))
                .unwrap_or_default();
            let ids: Vec<&str> = ring.all().map(|k| k.id()).collect();
            return Err(anyhow::Error::new(e).context(format!(
                "restoring from {}: none of the master keys in {} ({}) opens it.{made_under} A key replaced by \
                 `statehouse key rotate` stays in the key file as a `retired` line until \
                 `statehouse key forget-retired`; restore that version of the key file to open older self-backups",
                file.display(),
                key_file.path().display(),
                ids.join(", ")
            )));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("restoring from {}", file.display())));
        }
    };
    // Opening the store applies any newer migrations, checks the key file against it and
    // proves it is readable; data sealed under a retired key moves to the current one.
    let instance = instance::open(config, instance::Access::CreateIfMissing)
        .await
        .context("the restored store does not open")?;
    let moved = instance.services.rewrap_all_keys().await?;
    if moved > 0 {
        errln!(
            "re-wrapped {moved} sealed records under master key {}",
            instance.services.cipher.sealing_key_id()?
        );
    }
    errln!(
        "restored statehouse's store from {} ({bytes} bytes); start it with `statehouse serve`",
        file.display()
    );
    Ok(())
}

/// The master key a self-backup was made under, from its metadata file (`<file>.json`).
fn made_under_key(file: &std::path::Path) -> Option<String> {
    let mut sidecar = file.as_os_str().to_owned();
    sidecar.push(".json");
    let metadata: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar).ok()?).ok()?;
    let described = metadata["database"].as_str()?;
    let id = described.split("master key ").nth(1)?;
    Some(id.trim_end_matches(')').to_owned())
}
