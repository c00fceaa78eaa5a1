//! The command line's one error type: each command returns it, and `main`
//! renders it once and exits with its code (SPEC §5).

use super::exit;
use crate::daemon::DaemonError;
use crate::deliver::DeliverError;
use crate::demo::DemoError;
use crate::ops::export::ExportError;
use crate::source::SourceError;
use crate::store::StoreError;
use crate::store::billing::LoadError;
use crate::trigger::TriggerError;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Their diagnostics were printed.
    #[error("{0} invalid definition(s); nothing was changed")]
    InvalidDefinitions(usize),
    /// Its diagnostics were printed.
    #[error("invalid segd.toml")]
    InvalidSettings,
    /// A setting from the environment or segd.toml that cannot be used.
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the apply failed and was rolled back, nothing was changed")]
    ApplyFailed(#[source] StoreError),
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// Why an apply refused to change anything, one reason a line.
    #[error("{}\nnothing was changed", .0.join("\n"))]
    Refused(Vec<String>),
    /// Updated segments whose membership changes more than `--max-change`, one a line.
    #[error("{}", .0.join("\n"))]
    MaxChange(Vec<String>),
    #[error("refusing to apply without confirmation: pass --auto-approve, or run on a terminal")]
    NeedsConfirmation,
    #[error("apply cancelled; nothing was changed")]
    Cancelled,
    #[error("cannot read the plan {path}: {why}")]
    ReadPlan { path: PathBuf, why: String },
    #[error("{path} is not a segd plan")]
    NotAPlan {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is a plan of format {found}, this segd reads format {reads}")]
    PlanFormat {
        path: PathBuf,
        found: u32,
        reads: u32,
    },
    #[error(
        "--out {path}: the plan is {bytes} bytes, more than a saved plan may hold ({mib} MiB); apply without saving it"
    )]
    PlanTooLarge {
        path: PathBuf,
        bytes: usize,
        mib: u64,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("`{0}` is not a segment name")]
    NotASegmentName(String),
    #[error("no segment `{name}` {place}")]
    NoSegment { name: String, place: &'static str },
    #[error("--at {from} with --days {days}: outside the calendar")]
    OutsideCalendar {
        from: chrono::DateTime<chrono::Utc>,
        days: u32,
    },
    #[error("--today")]
    Today(#[source] DemoError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(
        "the billing tables are not empty ({customers} customers); nothing was changed. \
         Pass --replace to delete their rows and load the demo data instead."
    )]
    NotEmpty { customers: i64 },
    #[error("loading demo data failed")]
    DemoData(#[source] LoadError),
    #[error("cannot encode the output as JSON")]
    Json(#[from] serde_json::Error),
    #[error("reading or writing the terminal failed")]
    Io(#[source] std::io::Error),
    /// The reader of stdout went away: exit 141 without a word.
    #[error("stdout was closed")]
    ClosedPipe,
    /// `plan --detailed-exitcode`, where 2 means changes: any error exits 1.
    #[error(transparent)]
    Detailed(Box<CliError>),
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::ClosedPipe
        } else {
            CliError::Io(e)
        }
    }
}

impl CliError {
    /// SPEC §5: 1 when the command ran and found a problem, 2 for usage and
    /// environment errors.
    pub fn exit_code(&self) -> ExitCode {
        if let CliError::ClosedPipe = self {
            return exit::closed_pipe();
        }
        let problem = match self {
            CliError::InvalidDefinitions(_)
            | CliError::Refused(_)
            | CliError::MaxChange(_)
            | CliError::Cancelled
            | CliError::NoSegment { .. }
            | CliError::NotEmpty { .. }
            | CliError::Detailed(_) => true,
            CliError::Store(e)
            | CliError::ApplyFailed(e)
            | CliError::Trigger(TriggerError::Store(e))
            | CliError::Export(ExportError::Store(e)) => !e.is_environment(),
            CliError::Trigger(_) => true,
            _ => false,
        };
        if problem {
            exit::problem()
        } else {
            exit::usage()
        }
    }
}

/// Prints the error and its causes to stderr, each line as `error: …`.
/// A closed stdout is not reported: the reader chose to stop reading.
pub fn report(e: &CliError) {
    if let CliError::ClosedPipe = e {
        return;
    }
    for line in crate::error::chain(e).lines() {
        eprintln!("error: {line}");
    }
}
