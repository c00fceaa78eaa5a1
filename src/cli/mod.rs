//! The command line: flags parsed once into options, one file per subcommand,
//! each calling one library operation.

#[macro_use]
mod out;

mod apply;
mod context;
mod daemon;
mod db;
mod deliveries;
mod demo_data;
mod error;
mod export;
mod forecast;
mod impact;
mod manual;
mod phases;
mod plan;
mod schema;
mod segment;
mod trigger;
mod validate;

pub use error::{CliError, report};

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "segd",
    version,
    about = "Declarative GitOps reconciler for customer segments and billing communications"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Its `Debug` shows `--database-url` through [`crate::config::redact_url`].
#[derive(Args)]
pub struct Global {
    /// The folder holding segd.toml, segments.d/, communications.d/ and templates/.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Database URL (sqlite://FILE or postgres://…); overrides SEGD_DATABASE_URL and segd.toml.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When to colour output (NO_COLOR is honoured under `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

impl std::fmt::Debug for Global {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let database_url = self.database_url.as_deref().map(crate::config::redact_url);
        f.debug_struct("Global")
            .field("dir", &self.dir)
            .field("database_url", &database_url)
            .field("verbose", &self.verbose)
            .field("quiet", &self.quiet)
            .field("color", &self.color)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour stdout.
    pub fn stdout(self) -> bool {
        self.on(std::io::stdout().is_terminal())
    }

    /// Whether to colour stderr.
    pub fn stderr(self) -> bool {
        self.on(std::io::stderr().is_terminal())
    }

    fn on(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && terminal
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every definition and cross-reference; needs no database.
    Validate(validate::ValidateArgs),
    /// Show what apply would change in the database.
    Plan(plan::PlanArgs),
    /// Apply the definitions (or a saved plan) in one transaction.
    Apply(apply::ApplyArgs),
    /// Segment queries: members at an instant.
    Segment(segment::SegmentArgs),
    /// Run a communication now: evaluate, enqueue, deliver, report counts.
    Trigger(trigger::TriggerArgs),
    /// Dry run of the scheduler: each automatic occurrence and how many messages it would send.
    Forecast(forecast::ForecastArgs),
    /// The delivery outbox; `deliveries retry ID…` re-queues dead ones.
    Deliveries(deliveries::DeliveriesArgs),
    /// Write the applied definitions as TOML files.
    Export(export::ExportArgs),
    /// Watch, reconcile, schedule, deliver and serve the HTTP API.
    Daemon(daemon::DaemonArgs),
    /// Database maintenance.
    Db(db::DbArgs),
    /// Fill the billing tables with realistic, deterministic demo data.
    DemoData(demo_data::DemoDataArgs),
    /// Print the JSON Schema of a definition file kind, for editors.
    Schema(schema::SchemaArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(manual::CompletionsArgs),
    /// Print the man page (roff), e.g. `segd man > segd.1`.
    Man,
}

/// Runs a parsed command line: the exit code of what the command found, or the
/// error that stopped it (see [`CliError::exit_code`]).
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Validate(args) => validate::run(global, args),
        Command::Plan(args) => plan::run(global, args).await,
        Command::Apply(args) => apply::run(global, args).await,
        Command::Export(args) => export::run(global, args).await,
        Command::Segment(args) => segment::run(global, args).await,
        Command::Trigger(args) => trigger::run(global, args).await,
        Command::Deliveries(args) => deliveries::run(global, args).await,
        Command::Forecast(args) => forecast::run(global, args).await,
        Command::Db(args) => db::run(global, args).await,
        Command::Daemon(args) => daemon::run(global, args).await,
        Command::DemoData(args) => demo_data::run(global, args).await,
        Command::Schema(args) => schema::run(args),
        Command::Completions(args) => manual::completions(args),
        Command::Man => manual::man(),
    }
}

/// SPEC §5 exit codes.
pub mod exit {
    use std::process::ExitCode;
    pub fn ok() -> ExitCode {
        ExitCode::SUCCESS
    }
    /// The command ran and found a problem.
    pub fn problem() -> ExitCode {
        ExitCode::from(1)
    }
    /// Usage or environment error.
    pub fn usage() -> ExitCode {
        ExitCode::from(2)
    }
    /// Stdout was closed by its reader: 128 + SIGPIPE, as a shell reports a
    /// tool the signal ended.
    pub fn closed_pipe() -> ExitCode {
        ExitCode::from(141)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn debug_hides_the_database_password() {
        let cli = super::Cli::parse_from([
            "segd",
            "--database-url",
            "postgres://u:pw-marker@h/d?password=q-marker",
            "db",
            "migrate",
        ]);
        let shown = format!("{cli:?}");
        assert!(
            !shown.contains("marker") && shown.contains("u:***@h"),
            "{shown}"
        );
    }
}
