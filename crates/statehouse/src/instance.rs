//! Opening a statehouse instance: store (SQLite or PostgreSQL, migrated), master key (verified
//! against the store), services.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use statehouse_core::clock::SystemClock;
use statehouse_core::crypto::{Cipher, KeyFile};
use statehouse_core::service::Services;
use statehouse_core::store::Store;
use statehouse_store_postgres::PgSettings;

use crate::config::{Config, redact_url};

pub struct Instance {
    pub services: Services,
    pub key_file: KeyFile,
    /// The master key file was created by this start.
    pub key_created: bool,
}

/// Whether opening may create a store that is not there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `serve`, `migrate`, `restore-self`: a missing data directory, database and master key
    /// are created.
    CreateIfMissing,
    /// Every other command: a missing store is an error that says where statehouse looked (a
    /// command run in the wrong directory must not start a new, empty instance there).
    Existing,
}

pub async fn open_store(config: &Config, access: Access) -> Result<Arc<dyn Store>> {
    let create = access == Access::CreateIfMissing;
    let url = config
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty());
    if !config.is_postgres()
        && let Some(file) = config.sqlite_file()
        && !create
        && !file.exists()
    {
        bail!("{}", no_store(config, &format!("at {}", file.display())));
    }
    let store: Arc<dyn Store> = match url {
        None => {
            create_private_dir(&config.data_dir)?;
            let path = config.sqlite_path();
            Arc::new(
                statehouse_store_sqlite::open(&path)
                    .await
                    .with_context(|| format!("opening SQLite database {}", path.display()))?,
            )
        }
        Some(url) if url.starts_with("sqlite:") => Arc::new(
            statehouse_store_sqlite::open_url(url)
                .await
                .with_context(|| format!("opening SQLite database {url}"))?,
        ),
        Some(url) if config.is_postgres() => {
            let settings = pg_settings(config, url, create);
            match statehouse_store_postgres::connect(&settings).await {
                Ok(store) => Arc::new(store),
                Err(statehouse_core::Error::NotFound(what)) => bail!("{}", no_store(config, &what)),
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("connecting to PostgreSQL at {}", redact_url(url))));
                }
            }
        }
        Some(other) => bail!(
            "unsupported STATEHOUSE_DATABASE_URL {:?}: use postgres://… (PostgreSQL) or sqlite:… (SQLite), or leave it unset",
            redact_url(other)
        ),
    };
    Ok(store)
}

/// The PostgreSQL settings of `config` for the database at `url`.
pub fn pg_settings(config: &Config, url: &str, create_if_missing: bool) -> PgSettings {
    let pg = &config.postgres;
    PgSettings {
        url: url.to_owned(),
        pool_min: pg.pool_min,
        pool_max: pg.pool_max,
        acquire_timeout: pg.acquire_timeout.0,
        idle_timeout: Some(pg.idle_timeout.0).filter(|d| !d.is_zero()),
        statement_timeout: Some(pg.statement_timeout.0).filter(|d| !d.is_zero()),
        idle_in_transaction_session_timeout: Some(pg.idle_in_transaction_session_timeout.0)
            .filter(|d| !d.is_zero()),
        lock_timeout: Some(pg.lock_timeout.0).filter(|d| !d.is_zero()),
        schema: pg.schema.clone(),
        create_if_missing,
        read_url: pg.read_url.clone().filter(|u| !u.trim().is_empty()),
        read_max_lag: pg.read_max_lag.0,
    }
}

/// "There is no store here": where statehouse looked and how to point it elsewhere.
fn no_store(config: &Config, looked: &str) -> String {
    let source = if config
        .database_url
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty())
    {
        "from STATEHOUSE_DATABASE_URL / database_url".to_owned()
    } else {
        format!("data directory {}", config.data_dir.display())
    };
    format!(
        "no statehouse store {looked} ({source}). Run the command where the server's data is, or point it \
         there with --config FILE, STATEHOUSE_DATA_DIR or STATEHOUSE_DATABASE_URL; only `statehouse serve`, \
         `statehouse migrate` and `statehouse restore-self` create a new store"
    )
}

/// Opens the store and the master key, verified against the store (a key that does not match
/// what the store recorded under its id, or does not open its data, stops here). A key file
/// is created only with [`Access::CreateIfMissing`] and for a database that holds no encrypted
/// data yet.
pub async fn open(config: &Config, access: Access) -> Result<Instance> {
    let store = open_store(config, access).await?;
    let key_file = KeyFile::new(config.master_key_path());
    let key_created = if key_file.path().exists() {
        false
    } else {
        if let Some(used) = store.key_ids_in_use().await?.first() {
            bail!(
                "master key file {} is missing, but the database holds data encrypted with master key {used}. \
                 Restore the key file from your backup, or point STATEHOUSE_MASTER_KEY_FILE at it",
                key_file.path().display()
            );
        }
        if access == Access::Existing {
            bail!(
                "master key file {} is missing. Point STATEHOUSE_MASTER_KEY_FILE (or --config) at the server's key \
                 file; only `statehouse serve` and `statehouse migrate` create a new one",
                key_file.path().display()
            );
        }
        key_file.load_or_create()?;
        true
    };
    if let Some(mode) = key_file.loose_permissions() {
        warn(&format!(
            "master key file {} has mode {mode:04o}: other users of this machine may read it, and with it every \
             state. Run `chmod 600 {}` (a file owned by root may be 0640 for the service's group, as a Kubernetes Secret with fsGroup is)",
            key_file.path().display(),
            key_file.path().display()
        ));
    }
    let cipher = Cipher::from_file(key_file.clone())?;
    let services = Services::new(store, Arc::new(cipher), Arc::new(SystemClock))
        .with_auth_settings(config.auth_settings()?);
    services.verify_master_keys().await?;
    services.ensure_default_workspace().await?;
    Ok(Instance {
        services,
        key_file,
        key_created,
    })
}

/// A warning at start: logged by the server, printed by CLI commands.
fn warn(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        crate::output::warn(message);
    }
}

fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
}
