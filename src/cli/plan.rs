use super::context::{database_url, open, report, valid_tree};
use super::{Global, exit};
use crate::plan::{self, render};
use crate::store::Store;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Output format: text, or json (one versioned document).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan, for `segd apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub async fn run(global: &Global, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let outcome = match valid_tree(global)? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let store = match open(&database_url(global, &outcome.settings)).await {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let applied = match store.applied().await {
        Ok(a) => a,
        Err(e) => return Ok(report(&e)),
    };
    let plan = plan::diff(&plan::desired(&outcome.definitions), &applied);
    if let Some(path) = &args.out {
        std::fs::write(path, render::json(&plan))
            .map_err(|e| anyhow::anyhow!("cannot write the plan to {}: {e}", path.display()))?;
    }
    match args.format {
        Format::Text => print!("{}", render::text(&plan, global.color.stdout())),
        Format::Json => print!("{}", render::json(&plan)),
    }
    if let Some(path) = &args.out
        && args.format == Format::Text
    {
        println!(
            "\nSaved the plan to {}; apply it with `segd apply {}`.",
            path.display(),
            path.display()
        );
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        exit::usage()
    } else {
        exit::ok()
    })
}
