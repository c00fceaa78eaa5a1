use super::{CliError, exit};
use crate::schema::{SchemaKind, schema};
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file kind: segment, communication or settings (segd.toml).
    #[arg(value_enum)]
    pub kind: SchemaKind,
}

pub fn run(args: SchemaArgs) -> Result<ExitCode, CliError> {
    outln!("{:#}", schema(args.kind))?;
    Ok(exit::ok())
}
