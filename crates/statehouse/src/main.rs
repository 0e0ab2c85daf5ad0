//! statehouse: one self-hosted binary that keeps a team's infrastructure state safe.

/// `println!` for people: control characters made visible, a closed stdout returned as an
/// error (see `output::stdout_line`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout_line(format_args!($($arg)*))
    };
}

/// `print!` for people (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout_text(format_args!($($arg)*))
    };
}

/// `eprintln!` for people: control characters made visible, a closed stderr ignored.
macro_rules! errln {
    () => {
        $crate::output::stderr_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::stderr_line(format_args!($($arg)*))
    };
}

/// `eprint!` for people (prompts).
macro_rules! errprint {
    ($($arg:tt)*) => {
        $crate::output::stderr_text(format_args!($($arg)*))
    };
}

mod admin;
mod args;
mod audit;
mod backups;
mod client;
mod config;
mod config_keys;
mod config_metrics;
mod config_oidc;
mod config_paths;
mod config_tls;
mod database_commands;
mod database_options;
mod database_views;
mod databases;
mod doctor;
mod import;
mod instance;
mod logging;
mod notifiers;
mod oidc;
mod open_files;
mod output;
mod progress;
mod restores;
mod s3_keys;
mod search;
mod self_backup;
mod serve;
mod settings_input;
mod states;
mod targets;
mod tokens;
mod users;
mod workspaces;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::client::Client;

#[derive(Parser)]
#[command(
    name = "statehouse",
    version,
    about = "Self-hosted home for Terraform/OpenTofu state: locking with visible holders, every write versioned, encrypted at rest",
    long_about = None,
    after_help = "`workspace`, `state` (except `state allow-overwrite`), `search`, `user`, `token`, `audit`, `db`, \
                  `backup`, `target` and `notifier` commands talk to the REST API: of the server given by --server / STATEHOUSE_SERVER with the token from \
                  --token / STATEHOUSE_TOKEN, or, without --server, in-process on the locally configured database as \
                  the local operator (no token needed: whoever may read the data directory and master key may do \
                  everything). `serve`, `migrate`, `key`, `import` and `state allow-overwrite` act on the local \
                  database only; run them on the server host. Only `serve`, `migrate` and `restore-self` create a \
                  new store (data directory, database, master key); other commands that find none say where they \
                  looked.\n\n\
                  Configuration comes from defaults, then the TOML file given by --config / STATEHOUSE_CONFIG, then \
                  STATEHOUSE_* environment variables (see the README); an unknown key in the file is refused. \
                  Relative paths are taken from the working directory.\n\n\
                  Exit status: 0 success (also when the output was closed early, as by `| head`), 1 refused or \
                  invalid (including 4xx answers, and a backup, restore, verification or test that failed), 2 usage \
                  error, 3 server unreachable or failing (connection, TLS, 5xx)."
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "STATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// statehouse server for `workspace`, `state`, `search`, `user`, `token`, `audit`, `db`,
    /// `backup`, `target` and `notifier` commands, e.g. https://statehouse.example.com.
    /// Without it they act on the local database.
    #[arg(long, global = true, env = "STATEHOUSE_SERVER", value_name = "URL")]
    server: Option<String>,
    /// API token for --server, sent as a Bearer token. Prefer STATEHOUSE_TOKEN: other users
    /// of this machine can see command-line arguments.
    #[arg(
        long,
        global = true,
        env = "STATEHOUSE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first; first start creates the data directory,
    /// the master key and the `default` workspace, and prints a one-time admin token). It serves
    /// Prometheus metrics at `/metrics`: settings `metrics.*` (STATEHOUSE_METRICS__ENABLED,
    /// __LISTEN for a listener of its own, __TOKEN_FILE for a bearer token, __STATE_LABELS).
    Serve,
    /// [local only] Apply database migrations and exit (creates the store and the master key
    /// file when there are none yet).
    Migrate,
    /// [local only] Check this host's configuration and say what to fix: settings, listen
    /// addresses, TLS files, the master key file (readable, private, the store's), the database
    /// (reachable, writable, migrations, clock skew) and every storage target (a probe object
    /// written and deleted). Creates and migrates nothing; exits non-zero when a check fails.
    Doctor,
    /// Create, list and revoke API tokens: user, workspace service and instance tokens (local
    /// or --server).
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Create, list and revoke S3 access keys of a workspace, for S3 clients such as Pulumi's
    /// DIY backend (local or --server).
    #[command(subcommand)]
    S3Key(s3_keys::S3KeyCommand),
    /// Users: create, list, show, set passwords, instance admin flag, disable/enable, grant
    /// and revoke workspace roles (local or --server).
    #[command(subcommand)]
    User(users::UserCommand),
    /// Create, list, configure, rename and delete workspaces (local or --server).
    #[command(subcommand)]
    Workspace(workspaces::WorkspaceCommand),
    /// States and versions: list, show, download, diff, outputs, rollback, keep, force-unlock,
    /// delete, restore, purge (local or --server; `allow-overwrite` local only).
    #[command(subcommand)]
    State(states::StateCommand),
    /// Find resource instances by identifier, type, name, module or provider across every
    /// state you may read (local or --server).
    Search(search::SearchArgs),
    /// [local only] Master key operations: rotate, forget-retired, generate.
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// List, export or verify the tamper-evident audit log (local or --server).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// [local only] Single sign-on: seal the OIDC client secret under the master key.
    #[command(subcommand)]
    Oidc(oidc::OidcCommand),
    /// [local only] Import states from another backend: Terraform's `pg` backend, Pulumi's
    /// `postgres://` backend, or a bucket of Pulumi's S3 backend.
    #[command(subcommand)]
    Import(ImportCommand),
    /// PostgreSQL databases to back up: add, list, show, change, delete, check, backup (now,
    /// with progress), restore, verify, readonly-role, health (local or --server).
    #[command(subcommand)]
    Db(Box<databases::DbCommand>),
    /// Stored PostgreSQL backups: list, show, download, delete; and the workspace's backup
    /// encryption (local or --server).
    #[command(subcommand)]
    Backup(backups::BackupCommand),
    /// Storage targets for backups (local directory, S3 and compatible, Azure Blob, GCS,
    /// SFTP, WebDAV, FTP, Google Drive): add, list, show, change, delete, test (local or
    /// --server).
    #[command(subcommand)]
    Target(targets::TargetCommand),
    /// Notifiers for backup and database events (email, Slack, Discord, Telegram, Teams,
    /// Mattermost, ntfy, webhooks): add, list, show, change, delete, test (local or --server).
    #[command(subcommand)]
    Notifier(notifiers::NotifierCommand),
    /// [local only] Back up statehouse's own store now into the self-backup directory (the
    /// server also does it on the `self_backup.cron` schedule, default daily 03:15 UTC).
    SelfBackup,
    /// [local only] Bring the store back from a self-backup plus the master key file: into an
    /// empty data directory (SQLite) or STATEHOUSE_DATABASE_URL (PostgreSQL).
    RestoreSelf(self_backup::RestoreSelfArgs),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Copy every workspace row of Terraform's `pg` backend into statehouse states, in one go.
    TfPg(import::TfPgArgs),
    /// Copy every object of Pulumi's `postgres://` DIY backend into a workspace, as if Pulumi
    /// had PUT it to the S3 endpoint: stack files become versions of `pulumi/<project>/<stack>`,
    /// the rest (meta.yaml, history, backups) objects. Lock files are not imported.
    PulumiPg(import::PulumiPgArgs),
    /// Copy a Pulumi DIY backend's bucket (AWS S3 or any S3-compatible server) into a
    /// workspace, the same way as `pulumi-pg`. Lock files are not imported.
    S3(import::S3Args),
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let remote = Remote::from(&cli, &matches);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, remote)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `statehouse … | head`: the reader has what it wanted.
        Err(e) if output::is_closed_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {}", error_chain(&e));
            std::process::ExitCode::from(client::exit_code(&e))
        }
    }
}

/// The error and its causes, `: `-separated, each said once: a cause whose text ends what is
/// already said (a store error repeats its own message as its source) is left out.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.ends_with(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// The global `--server` / `--token` options and where they came from.
struct Remote {
    server: Option<String>,
    token: Option<String>,
    server_source: Option<ValueSource>,
    token_source: Option<ValueSource>,
}

impl Remote {
    fn from(cli: &Cli, matches: &ArgMatches) -> Remote {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Remote {
            server: given(&cli.server),
            token: given(&cli.token),
            server_source: global_source(matches, "server"),
            token_source: global_source(matches, "token"),
        }
    }

    /// Runs a command against the API client (the server when one is given, else this
    /// process), then stores the audit entries the client queued, whatever the outcome.
    async fn api(
        &self,
        config: &config::Config,
        command: impl AsyncFnOnce(&Client) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if self.server.is_none() && self.token_source == Some(ValueSource::CommandLine) {
            anyhow::bail!(
                "--token needs --server (or STATEHOUSE_SERVER); without a server, commands act on the local database as the operator"
            );
        }
        let client = Client::connect(config, self.server.as_deref(), self.token.as_deref()).await?;
        let result = command(&client).await;
        client.finish().await;
        result
    }

    /// Refuses a command that acts on the local database when a server is given: it would
    /// act on this machine's data directory, not on that server.
    fn local_only(&self, command: &str) -> anyhow::Result<()> {
        if self.server.is_none() {
            return Ok(());
        }
        let from = match self.server_source {
            Some(ValueSource::EnvVariable) => "STATEHOUSE_SERVER is set",
            _ => "--server is given",
        };
        anyhow::bail!(
            "`statehouse {command}` acts on the local database and key file, not through the API, but {from}. \
             Run it on the server host, without --server / STATEHOUSE_SERVER"
        )
    }
}

/// Where a global option's value came from (clap records it on the subcommand it was parsed
/// with).
fn global_source(matches: &ArgMatches, id: &str) -> Option<ValueSource> {
    let mut current = matches;
    let mut source = current.value_source(id);
    while let Some((_, sub)) = current.subcommand() {
        current = sub;
        if let Some(s) = current.value_source(id)
            && s != ValueSource::DefaultValue
        {
            source = Some(s);
        }
    }
    source
}

async fn run(cli: Cli, remote: Remote) -> anyhow::Result<()> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        // The server itself: a STATEHOUSE_SERVER meant for CLI commands does not concern it.
        Command::Serve => serve::run(config).await,
        Command::Doctor => {
            remote.local_only("doctor")?;
            let unknown = config::Config::unknown_env_vars()?;
            if !doctor::run(&config, &unknown).await? {
                anyhow::bail!("the checks above found problems");
            }
            Ok(())
        }
        Command::Migrate => {
            remote.local_only("migrate")?;
            instance::open(&config, instance::Access::CreateIfMissing).await?;
            errln!("database is migrated");
            Ok(())
        }
        Command::Token(cmd) => {
            remote
                .api(&config, async |client| tokens::run(client, cmd).await)
                .await
        }
        Command::S3Key(cmd) => {
            remote
                .api(&config, async |client| s3_keys::run(client, cmd).await)
                .await
        }
        Command::User(cmd) => {
            remote
                .api(&config, async |client| users::run(client, cmd).await)
                .await
        }
        Command::Workspace(cmd) => {
            remote
                .api(&config, async |client| workspaces::run(client, cmd).await)
                .await
        }
        Command::State(states::StateCommand::AllowOverwrite { state, duration }) => {
            remote.local_only("state allow-overwrite")?;
            admin::allow_overwrite(&config, &state, &duration).await
        }
        Command::State(cmd) => {
            remote
                .api(&config, async |client| states::run(client, cmd).await)
                .await
        }
        Command::Search(args) => {
            remote
                .api(&config, async |client| search::run(client, args).await)
                .await
        }
        Command::Audit(cmd) => {
            remote
                .api(&config, async |client| audit::run(client, cmd).await)
                .await
        }
        Command::Key(cmd) => {
            remote.local_only("key")?;
            admin::key(&config, cmd).await
        }
        Command::Db(cmd) => {
            remote
                .api(&config, async |client| databases::run(client, *cmd).await)
                .await
        }
        Command::Backup(cmd) => {
            remote
                .api(&config, async |client| backups::run(client, cmd).await)
                .await
        }
        Command::Target(cmd) => {
            remote
                .api(&config, async |client| targets::run(client, cmd).await)
                .await
        }
        Command::Notifier(cmd) => {
            remote
                .api(&config, async |client| notifiers::run(client, cmd).await)
                .await
        }
        Command::Oidc(cmd) => {
            remote.local_only("oidc")?;
            oidc::run(&config, cmd).await
        }
        Command::Import(cmd) => {
            remote.local_only("import")?;
            match cmd {
                ImportCommand::TfPg(args) => import::tf_pg(&config, args).await,
                ImportCommand::PulumiPg(args) => import::pulumi_pg(&config, args).await,
                ImportCommand::S3(args) => import::s3(&config, args).await,
            }
        }
        Command::SelfBackup => {
            remote.local_only("self-backup")?;
            self_backup::run_now(&config).await
        }
        Command::RestoreSelf(args) => {
            remote.local_only("restore-self")?;
            self_backup::restore(&config, args).await
        }
    }
}
