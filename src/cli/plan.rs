use super::context::{database_url, report, valid_tree, with_store};
use super::impact::{impacts, over_limit, parse_pct};
use super::segment::parse_at;
use super::{Global, exit};
use crate::plan::{self, render};
use crate::store::Store;
use chrono::{DateTime, Utc};
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
    /// Measure membership at this instant (a date or RFC 3339 time), from 1970 to 9999; default now.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// Fail (exit 1) when an updated segment would grow or shrink by more than PCT percent.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub max_change: Option<f64>,
}

pub async fn run(global: &Global, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let outcome = match valid_tree(global)? {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    with_store(&database_url(global, &outcome.settings), async |store| {
        plan(global, &args, &outcome, store).await
    })
    .await
}

async fn plan(
    global: &Global,
    args: &PlanArgs,
    outcome: &crate::validate::Outcome,
    store: &dyn Store,
) -> anyhow::Result<ExitCode> {
    let applied = match store.applied().await {
        Ok(a) => a,
        Err(e) => return Ok(report(&e)),
    };
    let desired = plan::desired(&outcome.definitions, &outcome.templates);
    let plan = plan::diff(&desired, &applied);
    let at = args.at.unwrap_or_else(Utc::now);
    let impacts = match impacts(store, &plan, &applied.rows, &desired, at).await {
        Ok(i) => i,
        Err(e) => return Ok(report(&e)),
    };
    if let Some(path) = &args.out {
        let json = render::json(&plan, &impacts);
        // A saved plan is always one `segd apply FILE` reads.
        if json.len() as u64 > super::apply::MAX_PLAN_BYTES {
            anyhow::bail!(
                "--out {}: the plan is {} bytes, more than a saved plan may hold ({} MiB); apply without saving it",
                path.display(),
                json.len(),
                super::apply::MAX_PLAN_BYTES >> 20
            );
        }
        std::fs::write(path, json)
            .map_err(|e| anyhow::anyhow!("cannot write the plan to {}: {e}", path.display()))?;
    }
    match args.format {
        Format::Text => print!("{}", render::text(&plan, &impacts, global.color.stdout())),
        Format::Json => print!("{}", render::json(&plan, &impacts)),
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
    if let Some(max) = args.max_change {
        let over = over_limit(&plan, &impacts, max);
        if !over.is_empty() {
            for o in &over {
                eprintln!("error: {o} changes by more than --max-change {max}%");
            }
            return Ok(exit::problem());
        }
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        exit::usage()
    } else {
        exit::ok()
    })
}
