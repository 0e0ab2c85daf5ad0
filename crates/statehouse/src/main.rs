//! statehouse: one self-hosted binary that keeps a team's infrastructure state safe.

mod admin;
mod config;
mod import;
mod instance;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "statehouse",
    version,
    about = "Self-hosted home for Terraform/OpenTofu state: locking with visible holders, every write versioned, encrypted at rest",
    long_about = None,
    after_help = "Configuration comes from defaults, then the TOML file given by --config / STATEHOUSE_CONFIG, then \
                  STATEHOUSE_* environment variables (see the README). Commands other than `serve` act directly on the \
                  configured database and work while a server runs."
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "STATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first; first start creates the data directory,
    /// the master key and the `default` workspace, and prints a one-time admin token).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Create, list and configure workspaces.
    #[command(subcommand)]
    Workspace(admin::WorkspaceCommand),
    /// Inspect states and versions, allow an overwrite, restore or purge deleted states.
    #[command(subcommand)]
    State(admin::StateCommand),
    /// Verify or export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Master key operations.
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// Import states from another backend.
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Copy every workspace row of Terraform's `pg` backend into statehouse states, in one go.
    TfPg(import::TfPgArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve::run(config).await,
        Command::Migrate => {
            instance::open(&config).await?;
            eprintln!("database is migrated");
            Ok(())
        }
        Command::Token(cmd) => admin::token(&config, cmd).await,
        Command::Workspace(cmd) => admin::workspace(&config, cmd).await,
        Command::State(cmd) => admin::state(&config, cmd).await,
        Command::Audit(cmd) => admin::audit(&config, cmd).await,
        Command::Key(cmd) => admin::key(&config, cmd).await,
        Command::Import(ImportCommand::TfPg(args)) => import::tf_pg(&config, args).await,
    }
}
