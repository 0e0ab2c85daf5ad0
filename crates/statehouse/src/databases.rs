//! `statehouse db …`: PostgreSQL databases whose backups statehouse runs, through the API —
//! register, list, change, check, back up now, restore, verify, health.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::WorkspaceArg;
use crate::client::{Client, Paging};
use crate::database_options::DatabaseOptions;
use crate::output::Output;

const ADD_HELP: &str = "\
Schedules (times are HH:MM, 24-hour, in --timezone, default UTC):
  hourly | hourly:MM            every hour (at MM minutes past)
  daily HH:MM                   every day
  weekly DAY HH:MM              DAY: mon, tue, wed, thu, fri, sat, sun
  monthly DAY|last HH:MM        DAY: 1-28, or last for the month's last day
  --cron \"m h dom mon dow\"      anything else, e.g. --cron \"30 2 * * 1-5\"
Without a schedule, backups run only with `statehouse db backup`.

Retention: a backup is kept while any --keep-* rule keeps it; --max-total-size then deletes
the oldest until the rest fit. The newest successful backup is never deleted.

Examples:
  statehouse db add shop --url postgres://backup@db.example.com/shop --password-stdin \\
      --target s3 --schedule \"daily 02:30\" --timezone Europe/Berlin --keep-daily 14 --keep-monthly 12
  statehouse db add cluster --host db.example.com --user postgres --database postgres \\
      --whole-server --exclude 'scratch_*' --target nas --schedule hourly:15 --keep-last 48
  statehouse db check shop && statehouse db backup shop";

/// Connection and backup settings shared by `db add` and `db change`.
#[derive(Subcommand)]
pub enum DbCommand {
    /// Register a PostgreSQL database for backups (workspace admins): where it is, where
    /// backups go, when they run and how long they are kept.
    #[command(after_help = ADD_HELP)]
    Add(AddArgs),
    /// List the workspace's databases: schedule, next backup, health.
    List(ListArgs),
    /// Show one database's settings and health (never its password).
    Show(ShowArgs),
    /// Change a database (workspace admins): what is given replaces its value, the rest is
    /// kept; retention rules are changed one by one. A new host or port needs the password
    /// again (--password-stdin, or in --url) or --no-password.
    #[command(after_help = ADD_HELP)]
    Change(ChangeArgs),
    /// Unregister a database (workspace admins); refused while it has backups (delete them
    /// with `statehouse backup delete` first).
    Delete(DeleteArgs),
    /// Check a database now: reachable, server version, the pg_dump to be used, the databases
    /// a whole-server backup would take, privilege warnings, uptime. Exits non-zero when it
    /// cannot be reached.
    Check(CheckArgs),
    /// Back a database up now (workspace editors) and wait, with a progress bar; prints the
    /// finished backups (with --whole-server: the server's globals — roles, memberships,
    /// tablespaces — and one per database). Exits non-zero when a backup failed, with the
    /// reason.
    Backup(BackupArgs),
    /// Restore a backup (workspace admins) into its database (default), another database of
    /// the same server (--into, created when missing) or another server (--url), with a
    /// progress bar; a globals backup onto its server; or a whole server (--whole-server).
    /// Exits non-zero when the restore fails.
    ///
    /// By default existing objects are dropped first (pg_restore --clean --if-exists) and
    /// ownership is not restored (--no-owner), except by --whole-server, which restores the
    /// roles first. A database that has objects, or a server that has roles, is overwritten
    /// only with --force (on a terminal you are asked, shown the database and server).
    /// Backups the server cannot decrypt need --identity or --passphrase-stdin.
    Restore(crate::restores::RestoreArgs),
    /// Verify a backup now (workspace editors): a scratch restore with row counts when a
    /// verification server is set, else decrypt + checksum + pg_restore --list (or the
    /// checksum only when the server cannot decrypt). Exits non-zero when it fails.
    Verify(VerifyArgs),
    /// Create a read-only login role for backups on the database's server (workspace
    /// admins), and by default connect as it from now on. Its password is printed once, alone
    /// on the last line of stdout.
    ReadonlyRole(ReadonlyRoleArgs),
    /// A database's uptime (last 24 h, 7 d, 30 d) and its recent health checks, newest first.
    Health(HealthArgs),
}

#[derive(Args)]
pub struct AddArgs {
    /// A name for it in statehouse (letters, digits, `-`, `_`, `.`).
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    /// The storage target backups go to (see `statehouse target add`).
    #[arg(long)]
    pub target: String,
    #[command(flatten)]
    pub options: DatabaseOptions,
    /// Register it switched off (no scheduled backups or health checks).
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    #[command(flatten)]
    pub paging: Paging,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct ShowArgs {
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct ChangeArgs {
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    /// A new name.
    #[arg(long, value_name = "NEW_NAME")]
    pub rename: Option<String>,
    /// Another storage target for new backups (stored ones stay where they are).
    #[arg(long)]
    pub target: Option<String>,
    #[command(flatten)]
    pub options: DatabaseOptions,
    /// Remove the schedule: backups run only when asked.
    #[arg(long, conflicts_with_all = ["schedule", "cron"])]
    pub no_schedule: bool,
    /// Remove the stored password.
    #[arg(long, conflicts_with = "password_stdin")]
    pub no_password: bool,
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Switch off scheduled backups and health checks (manual backups still work).
    #[arg(long)]
    pub disable: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct DeleteArgs {
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
}

#[derive(Args)]
pub struct CheckArgs {
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct BackupArgs {
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    /// Queue the backup for the server's workers and return at once.
    #[arg(long)]
    pub no_wait: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The backup's id.
    pub backup_id: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct ReadonlyRoleArgs {
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    /// The new role's name.
    #[arg(long, value_name = "ROLE", default_value = "statehouse_backup")]
    pub role: String,
    /// A connection allowed to create roles and grant, used for this call only:
    /// postgres://ADMIN:PASSWORD@HOST/DATABASE. Prefer --admin-url-stdin.
    #[arg(long, value_name = "URL", required_unless_present = "admin_url_stdin")]
    pub admin_url: Option<String>,
    /// Read the admin connection URL from stdin.
    #[arg(long, conflicts_with = "admin_url")]
    pub admin_url_stdin: bool,
    /// Keep connecting as the current role (only create the new one).
    #[arg(long)]
    pub keep_connection: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args)]
pub struct HealthArgs {
    pub name: String,
    #[command(flatten)]
    pub workspace: WorkspaceArg,
    /// Checks to show (default 20).
    #[arg(long, default_value_t = 20)]
    pub limit: i64,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(client: &Client, cmd: DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Add(args) => crate::database_commands::add(client, args).await,
        DbCommand::List(args) => crate::database_commands::list(client, args).await,
        DbCommand::Show(args) => crate::database_commands::show(client, args).await,
        DbCommand::Change(args) => crate::database_commands::change(client, args).await,
        DbCommand::Delete(args) => crate::database_commands::delete(client, args).await,
        DbCommand::Check(args) => crate::database_commands::check(client, args).await,
        DbCommand::Backup(args) => crate::database_commands::backup(client, args).await,
        DbCommand::Restore(args) => crate::restores::run(client, args).await,
        DbCommand::Verify(args) => crate::database_commands::verify(client, args).await,
        DbCommand::ReadonlyRole(args) => {
            crate::database_commands::readonly_role(client, args).await
        }
        DbCommand::Health(args) => crate::database_commands::health(client, args).await,
    }
}
