use super::context::{database_url, file_settings, with_new_store};
use super::{CliError, Global, exit};
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create or upgrade segd's schema, and after an upgrade refresh the planner
    /// statistics (every command also does this on start).
    Migrate,
}

pub async fn run(global: &Global, args: DbArgs) -> Result<ExitCode, CliError> {
    match args.command {
        DbCommand::Migrate => {
            let url = database_url(global, &file_settings(global)?);
            with_new_store(&url, async |_| {
                eprintln!(
                    "The database {} is up to date.",
                    crate::config::redact_url(&url)
                );
                Ok(exit::ok())
            })
            .await
        }
    }
}
