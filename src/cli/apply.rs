use super::context::{database_url, file_settings, git_commit, holder, valid_tree, with_new_store};
use super::plan::{over_max_change, parse_pct, shown};
use super::segment::parse_at;
use super::{CliError, Global, exit};
use crate::ops::impact::impacts;
use crate::ops::{self, apply::Origin};
use crate::plan::{self, Impacts, Plan, render};
use crate::source::{Capped, read_capped};
use crate::store::Store;
use clap::Args;
use std::io::{BufRead as _, IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `segd plan --out FILE`; refused if the database changed since.
    #[arg(value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Apply without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Allow deleting this protected definition (repeatable).
    #[arg(long, value_name = "NAME")]
    pub allow_delete: Vec<String>,
    /// Allow a plan that deletes every applied definition (what a plan made
    /// from the wrong folder does).
    #[arg(long)]
    pub allow_delete_all: bool,
    /// How long to wait for another apply holding the lock (e.g. `0s`, `30s`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_wait)]
    pub lock_timeout: std::time::Duration,
    /// Measure membership at this instant (a date or RFC 3339 time), from 1970 to 9999; default now.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Refuse (exit 1) when an updated segment would grow or shrink by more than PCT percent.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub max_change: Option<f64>,
}

/// The most a saved plan may hold (`plan --out` writes no larger one).
pub const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    crate::model::Duration::parse_allow_zero(s)
        .map(crate::model::Duration::std)
        .map_err(|e| e.to_string())
}

pub async fn run(global: &Global, args: ApplyArgs) -> Result<ExitCode, CliError> {
    // A saved plan needs no definitions; otherwise they must all be valid.
    let (saved, settings, desired) = match &args.plan {
        Some(path) => {
            let text = read_capped(path, MAX_PLAN_BYTES).map_err(|e| {
                let why = match e {
                    Capped::NotRegular(kind) => format!("it is {kind}, not a regular file"),
                    Capped::TooLarge => format!("it is larger than {} MiB", MAX_PLAN_BYTES >> 20),
                    Capped::Moved(to) => format!("it moved to {}", to.display()),
                    Capped::Io(e) => e.to_string(),
                };
                CliError::ReadPlan {
                    path: path.clone(),
                    why,
                }
            })?;
            let doc: render::PlanDocument =
                serde_json::from_slice(&text).map_err(|source| CliError::NotAPlan {
                    path: path.clone(),
                    source,
                })?;
            if doc.format_version != render::FORMAT_VERSION {
                return Err(CliError::PlanFormat {
                    path: path.clone(),
                    found: doc.format_version,
                    reads: render::FORMAT_VERSION,
                });
            }
            (Some(doc.into_plan()), file_settings(global)?, None)
        }
        None => {
            let o = valid_tree(global)?;
            let desired = plan::desired(&o.definitions, &o.templates);
            (None, o.settings, Some(desired))
        }
    };
    with_new_store(&database_url(global, &settings), async |store| {
        under_lock(global, &args, store, saved, desired).await
    })
    .await
}

/// Takes the apply lock, applies, and releases the lock whatever happened.
async fn under_lock(
    global: &Global,
    args: &ApplyArgs,
    store: &dyn Store,
    saved: Option<(Plan, Impacts)>,
    desired: Option<Vec<plan::Definition>>,
) -> Result<ExitCode, CliError> {
    ops::apply::under_lock(store, &holder(), args.lock_timeout, async || {
        locked(global, args, store, saved, desired).await
    })
    .await
}

/// The part of an apply that runs under the apply lock.
async fn locked(
    global: &Global,
    args: &ApplyArgs,
    store: &dyn Store,
    saved: Option<(Plan, Impacts)>,
    desired: Option<Vec<plan::Definition>>,
) -> Result<ExitCode, CliError> {
    let (plan, impacts, applied) = match (saved, desired) {
        // A stale saved plan (an empty one too) is refused before it is shown.
        (Some(p), _) if !p.0.made_against.holds_for(&store.version().await?) => {
            return Err(crate::store::StoreError::StalePlan.into());
        }
        (Some((plan, impacts)), _) => {
            // Current: the applied state is the one the plan was made against.
            let applied = match plan.count(plan::Action::Delete) {
                0 => 0,
                _ => store.applied().await?.rows.len(),
            };
            (plan, impacts, applied)
        }
        (None, desired) => {
            let desired = desired.unwrap_or_default();
            let applied = store.applied().await?;
            let plan = plan::diff(&desired, &applied);
            let at = args.at.unwrap_or_else(chrono::Utc::now);
            let impacts = shown(impacts(store, &plan, &applied.rows, &desired, at).await?);
            (plan, impacts, applied.rows.len())
        }
    };
    let color = global.color.stdout();
    if plan.is_empty() {
        outln!("No changes. The database matches the definitions.")?;
        return Ok(exit::ok());
    }
    out!("{}", render::text(&plan, &impacts, color))?;
    let over = over_max_change(&plan, &impacts, args.max_change);
    if !over.is_empty() {
        return Err(CliError::Refused(over));
    }
    let mut refused: Vec<String> = plan
        .blocked(&args.allow_delete)
        .iter()
        .map(|c| {
            format!(
                "{} `{}` is protected; deleting it needs `--allow-delete {}`",
                c.kind.as_str(),
                c.name,
                c.name
            )
        })
        .collect();
    if plan.deletes_all(applied, 0) && !args.allow_delete_all {
        refused.push(format!(
            "the plan deletes every applied definition ({applied}): is --dir the right folder? Pass --allow-delete-all if that is meant"
        ));
    }
    if !refused.is_empty() {
        return Err(CliError::Refused(refused));
    }
    if args.plan.is_none() && !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::NeedsConfirmation);
        }
        out!("\nApply these changes? Only 'yes' will be accepted: ")?;
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            return Err(CliError::Cancelled);
        }
    }
    let origin = Origin {
        user: holder(),
        git_commit: git_commit(&global.dir),
        at: chrono::Utc::now(),
    };
    let unkept = ops::apply::apply(store, &plan, &impacts, origin)
        .await
        .map_err(CliError::ApplyFailed)?;
    if let Some(e) = unkept {
        eprintln!(
            "warning: keeping the indexes or statistics of custom_data keys failed: {}",
            crate::error::chain(&e)
        );
    }
    outln!(
        "Apply complete: {} created, {} updated, {} deleted.",
        plan.count(plan::Action::Create),
        plan.count(plan::Action::Update),
        plan.count(plan::Action::Delete)
    )?;
    Ok(exit::ok())
}
