//! Operator commands that act directly on the configured database and key file, on the
//! server host (they work while a server runs: SQLite in WAL mode and PostgreSQL both allow
//! it): master key rotation, overwrite permission.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use statehouse_core::access::{Principal, Role};
use statehouse_core::clock::parse_duration;
use statehouse_core::crypto::MasterKey;
use statehouse_core::sealed::KeyCheck;

use crate::config::Config;
use crate::instance;
use crate::states::StateRef;

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Outputs,
    Viewer,
    Editor,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Outputs => Role::Outputs,
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a new master key and re-wrap every sealed record with it (state versions,
    /// webhook secrets, S3 key secrets, backup target, notifier and database secrets,
    /// workspace backup keys and passphrases). The old key stays in the file as a `retired` line, only to restore
    /// self-backups made before now; a fresh self-backup is taken at once. Servers that share
    /// the key file pick the new key up by themselves; replicas with their own copy of the
    /// file need the new file.
    Rotate,
    /// Remove the `retired` keys from the master key file, once no sealed record uses them.
    /// Self-backups made before their rotation can no longer be restored afterwards.
    ForgetRetired,
    /// Write a new master key file (mode 0600) and touch nothing else: for deployments that
    /// hand the key to statehouse as a secret (Kubernetes Secret, Docker secret) before its
    /// first start. Refuses to overwrite an existing file.
    Generate {
        /// Where to write the key file.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

/// How long servers get to follow a changed key file (they look at it on every operation and
/// verify a new key against the store within a second).
const KEY_FILE_SETTLE: Duration = Duration::from_secs(2);

/// `state allow-overwrite`: opens the one-shot window in the database directly (the API has
/// no such operation; it is an operator's decision on the server host).
pub async fn allow_overwrite(config: &Config, state: &StateRef, duration: &str) -> Result<()> {
    let window = parse_duration(duration)?;
    let instance = instance::open(config, instance::Access::Existing).await?;
    let services = &instance.services;
    let until = services.now().plus_millis(window.as_millis() as i64);
    let opened = services
        .allow_overwrite(
            &Principal::local_operator(),
            &state.workspace.name,
            &state.name,
            Some(until),
        )
        .await;
    // Its audit entry is committed with the change; seal it before exiting.
    services.flush_journal().await;
    opened?;
    errln!(
        "the next write to {:?} that breaks serial/lineage protection is accepted until {} (once, recorded as forced)",
        state.name,
        until.to_rfc3339()
    );
    Ok(())
}

pub async fn key(config: &Config, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Rotate => rotate(config).await,
        KeyCommand::ForgetRetired => forget_retired(config).await,
        KeyCommand::Generate { out } => generate(&out),
    }
}

fn generate(out: &std::path::Path) -> Result<()> {
    if out.exists() {
        bail!(
            "{} exists: a master key file is never overwritten (it may be the only key to your data); choose another path",
            out.display()
        );
    }
    let (ring, _) = statehouse_core::crypto::KeyFile::new(out).load_or_create()?;
    crate::output::stderr_line(format_args!(
        "wrote master key {} to {} — back it up, separately from the database",
        ring.primary().id(),
        out.display()
    ));
    Ok(())
}

async fn rotate(config: &Config) -> Result<()> {
    let instance = instance::open(config, instance::Access::Existing).await?;
    let services = &instance.services;
    let file = &instance.key_file;
    let before = services.cipher.keyring()?;
    let new = MasterKey::generate();
    // The store knows the new key before any server meets it in the file: they verify it
    // against this record before sealing anything with it.
    services
        .record_key_check(&KeyCheck {
            key_id: new.id().to_owned(),
            check_value: new.check_value()?,
            recorded_at: services.now(),
        })
        .await?;
    let rotated = before.with_new_primary(new);
    file.save(&rotated)?;
    services.verify_master_keys().await?;
    let new_id = rotated.primary().id().to_owned();
    errln!(
        "new master key {new_id} written to {}; re-wrapping every sealed record",
        file.path().display()
    );
    let mut moved = services.rewrap_all_keys().await?;
    // A server that had not followed the file yet may have sealed with the old key meanwhile:
    // let them catch up, sweep again, then retire the old keys (they still open what a late
    // writer sealed with them, so nothing becomes unreadable).
    tokio::time::sleep(KEY_FILE_SETTLE).await;
    moved += services.rewrap_all_keys().await?;
    file.save(&rotated.retire_all_but_primary())?;
    let old: Vec<String> = before.keys().iter().map(|k| k.id().to_owned()).collect();
    let mut still_used = Vec::new();
    for _ in 0..3 {
        still_used.clear();
        for id in &old {
            if services.key_in_use(id).await? {
                still_used.push(id.clone());
            }
        }
        if still_used.is_empty() {
            break;
        }
        tokio::time::sleep(KEY_FILE_SETTLE).await;
        moved += services.rewrap_all_keys().await?;
    }
    errln!(
        "re-wrapped {moved} sealed records under master key {new_id}. The old master key {} stays in {} as \
         a `retired` line: it seals nothing, and only opens self-backups made before now (remove it with \
         `statehouse key forget-retired` once you no longer need those)",
        old.join(", "),
        file.path().display()
    );
    if !still_used.is_empty() {
        crate::output::warn(&format!(
            "records written during the rotation are still under master key {}; run `statehouse key rotate` \
             again when the servers are quiet",
            still_used.join(", ")
        ));
    }
    if config.self_backup.enabled {
        match crate::self_backup::take(config, services).await {
            Ok(path) => errln!("took a self-backup under the new key: {}", path.display()),
            Err(e) => crate::output::warn(&format!(
                "the self-backup under the new key failed ({e:#}); run `statehouse self-backup`"
            )),
        }
    }
    errln!("back up {} now", file.path().display());
    services.flush_journal().await;
    Ok(())
}

async fn forget_retired(config: &Config) -> Result<()> {
    let instance = instance::open(config, instance::Access::Existing).await?;
    let services = &instance.services;
    let file = &instance.key_file;
    let ring = file.load()?;
    let retired: Vec<String> = ring.retired().iter().map(|k| k.id().to_owned()).collect();
    if retired.is_empty() {
        errln!("{} holds no retired master key", file.path().display());
        return Ok(());
    }
    for id in &retired {
        if services.key_in_use(id).await? {
            bail!(
                "retired master key {id} still wraps sealed records (written while a rotation ran?); run \
                 `statehouse key rotate` again first"
            );
        }
    }
    file.save(&ring.without_retired())?;
    errln!(
        "removed retired master key {} from {}: self-backups made before it was replaced can no longer be \
         restored. Back up the key file now",
        retired.join(", "),
        file.path().display()
    );
    Ok(())
}
