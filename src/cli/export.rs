use super::context::{database_url, file_settings, with_store};
use super::{CliError, Global, exit};
use crate::ops::export::export;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The folder to write segments.d/ and communications.d/ into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub async fn run(global: &Global, args: ExportArgs) -> Result<ExitCode, CliError> {
    let settings = file_settings(global)?;
    with_store(&database_url(global, &settings), async |store| {
        let n = export(store, &args.out).await?;
        eprintln!("Exported {n} definition(s) to {}.", args.out.display());
        Ok(exit::ok())
    })
    .await
}
