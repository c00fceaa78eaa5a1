use super::context::{
    database_url, file_settings, git_commit, holder, report, valid_tree, with_store,
};
use super::impact::{impacts, over_limit, parse_pct};
use super::segment::parse_at;
use super::{Global, exit};
use crate::plan::{self, Impacts, Plan, render};
use crate::source::{Capped, read_capped};
use crate::store::{ApplyRecord, Store};
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

pub async fn run(global: &Global, args: ApplyArgs) -> anyhow::Result<ExitCode> {
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
                anyhow::anyhow!("cannot read the plan {}: {why}", path.display())
            })?;
            let doc: render::PlanDocument = serde_json::from_slice(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a segd plan: {e}", path.display()))?;
            if doc.format_version != render::FORMAT_VERSION {
                anyhow::bail!(
                    "{} is a plan of format {}, this segd reads format {}",
                    path.display(),
                    doc.format_version,
                    render::FORMAT_VERSION
                );
            }
            (Some(doc.into_plan()), file_settings(global)?, None)
        }
        None => match valid_tree(global)? {
            Ok(o) => (
                None,
                o.settings,
                Some(plan::desired(&o.definitions, &o.templates)),
            ),
            Err(code) => return Ok(code),
        },
    };
    with_store(&database_url(global, &settings), async |store| {
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
) -> anyhow::Result<ExitCode> {
    let lock = match store.lock(&holder(), args.lock_timeout).await {
        Ok(lock) => lock,
        Err(e) => return Ok(report(&e)),
    };
    let result = locked(global, args, store, saved, desired).await;
    store.unlock(lock).await;
    result
}

/// The part of an apply that runs under the apply lock.
async fn locked(
    global: &Global,
    args: &ApplyArgs,
    store: &dyn Store,
    saved: Option<(Plan, Impacts)>,
    desired: Option<Vec<plan::Definition>>,
) -> anyhow::Result<ExitCode> {
    let (plan, impacts) = match (saved, desired) {
        (Some(p), _) => p,
        (None, desired) => {
            let desired = desired.unwrap_or_default();
            let applied = match store.applied().await {
                Ok(applied) => applied,
                Err(e) => return Ok(report(&e)),
            };
            let plan = plan::diff(&desired, &applied);
            let at = args.at.unwrap_or_else(chrono::Utc::now);
            match impacts(store, &plan, &applied.rows, &desired, at).await {
                Ok(i) => (plan, i),
                Err(e) => return Ok(report(&e)),
            }
        }
    };
    let color = global.color.stdout();
    if plan.is_empty() {
        println!("No changes. The database matches the definitions.");
        return Ok(exit::ok());
    }
    print!("{}", render::text(&plan, &impacts, color));
    if let Some(max) = args.max_change {
        let over = over_limit(&plan, &impacts, max);
        if !over.is_empty() {
            for o in &over {
                eprintln!("error: {o} changes by more than --max-change {max}%");
            }
            eprintln!("error: nothing was changed");
            return Ok(exit::problem());
        }
    }
    let blocked = plan.blocked(&args.allow_delete);
    if !blocked.is_empty() {
        for c in &blocked {
            eprintln!(
                "error: {} `{}` is protected; deleting it needs `--allow-delete {}`",
                c.kind.as_str(),
                c.name,
                c.name
            );
        }
        eprintln!("error: nothing was changed");
        return Ok(exit::problem());
    }
    if args.plan.is_none() && !args.auto_approve {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "error: refusing to apply without confirmation: pass --auto-approve, or run on a terminal"
            );
            return Ok(exit::usage());
        }
        print!("\nApply these changes? Only 'yes' will be accepted: ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("Apply cancelled; nothing was changed.");
            return Ok(exit::problem());
        }
    }
    let record = ApplyRecord {
        user: holder(),
        git_commit: git_commit(&global.dir),
        summary: render::summary_line(&plan),
        plan: render::json(&plan, &impacts),
    };
    match store.apply(&plan, &record).await {
        Ok(()) => {
            if let Err(e) = store.index_custom_data(&plan).await {
                eprintln!("warning: indexing custom_data keys failed: {e}");
            }
            println!(
                "Apply complete: {} created, {} updated, {} deleted.",
                plan.count(plan::Action::Create),
                plan.count(plan::Action::Update),
                plan.count(plan::Action::Delete)
            );
            Ok(exit::ok())
        }
        Err(e) => {
            let code = report(&e);
            eprintln!("error: the apply was rolled back; nothing was changed");
            Ok(code)
        }
    }
}
