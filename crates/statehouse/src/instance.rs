//! Opening a statehouse instance: store (SQLite or PostgreSQL, migrated), master key, services.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use statehouse_core::clock::SystemClock;
use statehouse_core::crypto::{Cipher, KeyFile};
use statehouse_core::service::Services;
use statehouse_core::store::Store;
use statehouse_store_postgres::{PgSettings, PgStore};
use statehouse_store_sqlite::SqliteStore;

use crate::config::{Config, redact_url};

pub struct Instance {
    pub services: Services,
    pub key_file: KeyFile,
    /// The master key file was created by this start.
    pub key_created: bool,
}

pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match config
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        None => {
            create_private_dir(&config.data_dir)?;
            let path = config.sqlite_path();
            Arc::new(
                SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("opening SQLite database {}", path.display()))?,
            )
        }
        Some(url) if url.starts_with("sqlite:") => Arc::new(
            SqliteStore::open_url(url)
                .await
                .with_context(|| format!("opening SQLite database {url}"))?,
        ),
        Some(url) if config.is_postgres() => {
            let pg = &config.postgres;
            let settings = PgSettings {
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
            };
            Arc::new(
                PgStore::connect(&settings)
                    .await
                    .with_context(|| format!("connecting to PostgreSQL at {}", redact_url(url)))?,
            )
        }
        Some(other) => bail!(
            "unsupported STATEHOUSE_DATABASE_URL {:?}: use postgres://… (PostgreSQL) or sqlite:… (SQLite), or leave it unset",
            redact_url(other)
        ),
    };
    Ok(store)
}

/// Opens the store and the master key. A key file is created only for a database that holds
/// no encrypted data yet; otherwise a missing or foreign key file stops startup.
pub async fn open(config: &Config) -> Result<Instance> {
    let store = open_store(config).await?;
    let key_file = KeyFile::new(config.master_key_path());
    let key_created = if key_file.path().exists() {
        false
    } else {
        let existing = store.keys_not_under("", 1).await?;
        if !existing.is_empty() {
            bail!(
                "master key file {} is missing, but the database holds data encrypted with master key {}. \
                 Restore the key file from your backup, or point STATEHOUSE_MASTER_KEY_FILE at it",
                key_file.path().display(),
                existing[0].key_id
            );
        }
        key_file.load_or_create()?;
        true
    };
    let cipher = Cipher::from_file(key_file.clone())?;
    let ring = key_file.load()?;
    let known: Vec<&str> = ring.keys().iter().map(|k| k.id()).collect();
    if let Some(row) = store.keys_not_under(ring.primary().id(), 1).await?.first()
        && !known.contains(&row.key_id.as_str())
    {
        bail!(
            "master key file {} does not hold master key {}, which this database's data is encrypted with. \
                 Use the key file that belongs to this database (all replicas must share one)",
            key_file.path().display(),
            row.key_id
        );
    }
    let services = Services::new(store, Arc::new(cipher), Arc::new(SystemClock))
        .with_auth_settings(config.auth.settings()?);
    services.ensure_default_workspace().await?;
    Ok(Instance {
        services,
        key_file,
        key_created,
    })
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
