//! Command-line arguments many commands share, declared once.

use clap::Args;

/// `--workspace NAME`, `default` when left out.
#[derive(Args, Debug, Clone)]
pub struct WorkspaceArg {
    /// The workspace.
    #[arg(
        id = "workspace",
        long = "workspace",
        default_value = "default",
        value_name = "NAME"
    )]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks a command's definition only when it is used: check every subcommand at once
    /// (two arguments sharing an id, as a flattened argument can, panic here, not in a user's
    /// shell).
    #[test]
    fn every_command_is_well_formed() {
        crate::Cli::command().debug_assert();
    }
}
