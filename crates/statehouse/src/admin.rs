//! Operator commands that act directly on the configured database and key file, on the
//! server host (they work while a server runs: SQLite in WAL mode and PostgreSQL both allow
//! it): master key rotation, overwrite permission.

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};
use statehouse_core::access::{Principal, Role};
use statehouse_core::clock::parse_duration;
use statehouse_core::crypto::MasterKey;

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
    /// Generate a new master key and re-wrap every data key with it. Servers that share the
    /// key file pick the new key up by themselves; replicas with their own copy of the file
    /// need the new file.
    Rotate,
}

/// `state allow-overwrite`: opens the one-shot window in the database directly (the API has
/// no such operation; it is an operator's decision on the server host).
pub async fn allow_overwrite(config: &Config, state: &StateRef, duration: &str) -> Result<()> {
    let window = parse_duration(duration)?;
    let instance = instance::open(config).await?;
    let services = &instance.services;
    let until = services.now().plus_millis(window.as_millis() as i64);
    let opened = services
        .allow_overwrite(
            &Principal::local_operator(),
            &state.workspace,
            &state.name,
            Some(until),
        )
        .await;
    // Its audit entry is committed with the change; seal it before exiting.
    services.flush_journal().await;
    opened?;
    eprintln!(
        "the next write to {:?} that breaks serial/lineage protection is accepted until {} (once, recorded as forced)",
        state.name,
        until.to_rfc3339()
    );
    Ok(())
}

pub async fn key(config: &Config, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Rotate => {
            let instance = instance::open(config).await?;
            let services = &instance.services;
            let file = &instance.key_file;
            let old = file.load()?;
            let rotated = old.with_new_primary(MasterKey::generate());
            file.save(&rotated)?;
            eprintln!(
                "new master key {} written to {} (old key kept until every data key is re-wrapped)",
                rotated.primary().id(),
                file.path().display()
            );
            let mut moved = services.rewrap_all_keys().await?;
            // Servers re-read the key file before sealing; let writes sealed just before the
            // switch land, then sweep again before dropping the old key.
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            moved += services.rewrap_all_keys().await?;
            file.save(&rotated.only_primary())?;
            let straggler = services
                .store
                .keys_not_under(rotated.primary().id(), 1)
                .await?;
            if !straggler.is_empty() {
                file.save(&rotated)?;
                bail!(
                    "a write with the old key landed during rotation; the old key was kept. Run `statehouse key rotate` again"
                );
            }
            eprintln!(
                "re-wrapped {moved} data keys; the old master key is retired. Back up {} now \
                 (older database backups still need the old key file)",
                file.path().display()
            );
        }
    }
    Ok(())
}
