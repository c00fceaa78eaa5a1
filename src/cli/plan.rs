use super::context::{database_url, run_closing, valid_tree};
use super::phases::Phases;
use super::segment::parse_at;
use super::{CliError, Global, exit};
use crate::ops::impact::{Measured, impacts, over_limit};
use crate::plan::{self, render};
use crate::store::Store;
use crate::store::connect;
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

pub async fn run(global: &Global, args: PlanArgs) -> Result<ExitCode, CliError> {
    let mut phases = Phases::start(global.verbose > 0);
    let result = async {
        let outcome = valid_tree(global)?;
        phases.end("read definitions");
        let url = database_url(global, &outcome.settings);
        // Planning never creates the database: when its file is missing, the
        // plan is made against an empty one in memory, and says so.
        let missing = crate::store::missing_file(&url)?;
        let store = match &missing {
            Some(path) => {
                if !global.quiet {
                    eprintln!(
                    "note: the database {} does not exist yet; this is the plan against an empty one (`segd apply` creates it)",
                    path.display()
                    );
                }
                connect("sqlite::memory:").await?
            }
            None => connect(&url).await?,
        };
        phases.end("open database");
        run_closing(store, async |store| {
            plan(global, &args, &outcome, store, missing.is_some(), &mut phases).await
        })
        .await
    }
    .await;
    phases.report("plan");
    match result {
        // 2 means changes: an error must not read as changes.
        Err(e) if args.detailed_exitcode => Err(CliError::Detailed(Box::new(e))),
        other => other,
    }
}

async fn plan(
    global: &Global,
    args: &PlanArgs,
    outcome: &crate::validate::Outcome,
    store: &dyn Store,
    new_database: bool,
    phases: &mut Phases,
) -> Result<ExitCode, CliError> {
    let applied = store.applied().await?;
    phases.end("read applied");
    let desired = plan::desired(&outcome.definitions, &outcome.templates);
    let mut plan = plan::diff(&desired, &applied);
    phases.end("diff");
    if new_database {
        plan.made_against = plan::Version::new_database();
    }
    if plan.deletes_all(applied.rows.len(), 0) && !global.quiet {
        eprintln!(
            "warning: this plan deletes every applied definition ({}), as {} defines none of them: is --dir the right folder? `segd apply` refuses it without --allow-delete-all",
            applied.rows.len(),
            global.dir.display()
        );
    }
    let at = args.at.unwrap_or_else(Utc::now);
    let impacts = shown(impacts(store, &plan, &applied.rows, &desired, at).await?);
    phases.end("impact");
    if let Some(path) = &args.out {
        let json = render::json(&plan, &impacts);
        // A saved plan is always one `segd apply FILE` reads.
        if json.len() as u64 > super::apply::MAX_PLAN_BYTES {
            return Err(CliError::PlanTooLarge {
                path: path.clone(),
                bytes: json.len(),
                mib: super::apply::MAX_PLAN_BYTES >> 20,
            });
        }
        std::fs::write(path, json).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
    }
    match args.format {
        Format::Text => out!("{}", render::text(&plan, &impacts, global.color.stdout()))?,
        Format::Json => out!("{}", render::json(&plan, &impacts))?,
    }
    if let Some(path) = &args.out
        && args.format == Format::Text
    {
        outln!(
            "\nSaved the plan to {}; apply it with `segd apply {}`.",
            path.display(),
            path.display()
        )?;
    }
    let over = over_max_change(&plan, &impacts, args.max_change);
    if !over.is_empty() {
        return Err(CliError::MaxChange(over));
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        exit::usage()
    } else {
        exit::ok()
    })
}

/// `--max-change`: a percentage from 0 to 1000000 (a plain number, `5` or `12.5`).
pub(super) fn parse_pct(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1_000_000.0).contains(p))
        .ok_or_else(|| "a percentage from 0 to 1000000, like 5 or 12.5".to_string())
}

/// A plan's impacts, once what measuring them could not do is on stderr.
pub(super) fn shown(measured: Measured) -> plan::Impacts {
    for w in &measured.warnings {
        eprintln!("{w}");
    }
    measured.impacts
}

/// The updates over `--max-change` (none without it), one line each.
pub(super) fn over_max_change(
    plan: &plan::Plan,
    impacts: &plan::Impacts,
    max_change: Option<f64>,
) -> Vec<String> {
    max_change.map_or_else(Vec::new, |max| {
        over_limit(plan, impacts, max)
            .iter()
            .map(|o| format!("{o} changes by more than --max-change {max}%"))
            .collect()
    })
}
