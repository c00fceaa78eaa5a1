//! `segd completions SHELL` and `segd man`: generated from the clap
//! definitions, so they always match the commands.

use super::{Cli, CliError, exit};
use clap::{Args, CommandFactory as _};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode, CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "segd", &mut script);
    out!("{}", String::from_utf8_lossy(&script))?;
    Ok(exit::ok())
}

pub fn man() -> Result<ExitCode, CliError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    out!("{}", String::from_utf8_lossy(&page))?;
    Ok(exit::ok())
}
