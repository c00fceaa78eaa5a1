use super::context::{database_url, delivery_config, env_var, file_settings, holder, with_store};
use super::{CliError, Global, exit};
use crate::clock::{Clock, System};
use crate::deliver::worker::{Tally, Worker};
use crate::model::Delivery;
use crate::segment::UNREACHABLE_SAMPLE;
use crate::store::Store;
use crate::store::outbox::{RunFilter, RunRows, RunStatus};
use crate::trigger::{
    Occasion, Prepared, Target, TriggerError, enqueue, load_target, prepare, preview,
};
use clap::Args;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The communication to run now (manual or automatic alike).
    pub name: String,
    /// List who would be reached; write and send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Send even when the run reaches more customers than `max_recipients`.
    #[arg(long)]
    pub allow_over_limit: bool,
}

pub async fn run(global: &Global, args: TriggerArgs) -> Result<ExitCode, CliError> {
    let settings = file_settings(global)?;
    let config = delivery_config(global, &settings)?;
    with_store(&database_url(global, &settings), async |store| {
        trigger(global, &args, config, store).await
    })
    .await
}

async fn trigger(
    global: &Global,
    args: &TriggerArgs,
    config: crate::config::DeliveryConfig,
    store: &dyn Store,
) -> Result<ExitCode, CliError> {
    let target = load_target(store, &args.name)
        .await
        .map_err(|e| defined_in_files(global, e))?;
    let clock: Arc<dyn Clock> = Arc::new(System);
    let prepared = prepare(&target, Occasion::manual(&*clock));
    let name = args.name.as_str();
    if args.dry_run {
        return dry_run(args, &target, &prepared, store).await;
    }
    let lease = config.lease;
    let result = enqueue(
        store,
        &prepared,
        args.allow_over_limit,
        &env_var,
        clock.now(),
    )
    .await?;
    if result.status == RunStatus::Held {
        eprintln!(
            "held: `{name}` would reach {} customers, more than max_recipients = {}; nothing was sent. \
             Review the segment, then run `segd trigger {name} --allow-over-limit`.",
            result.recipients,
            target.communication.max_recipients.unwrap_or_default(),
        );
        return Ok(exit::problem());
    }
    if result.released > 0 {
        eprintln!(
            "released {} held run(s) of `{name}`: this run sends them (`segd deliveries runs` shows them as released)",
            result.released
        );
    }
    let worker = Worker::new(store, config, holder(), &env_var, clock)?;
    let bar = progress(global, result.enqueued);
    let tally = worker
        .drain(
            Some(&prepared.run.id),
            |t: &Tally| {
                if let Some(b) = &bar {
                    b.set_position(t.sent + t.retrying + t.failed + t.dead);
                }
            },
            &|| false,
        )
        .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    tally?;
    // Another sender (a daemon's workers) may have claimed part of the run:
    // count the run's own rows, once they settle (at most one lease).
    let rows = settled(store, &prepared.run.id, lease).await?;
    let unreachable = match target.communication.delivery {
        Delivery::Email(_) => format!(", {} unreachable (no email address)", result.unreachable),
        Delivery::Webhook(_) => String::new(),
    };
    outln!(
        "{name}: {} recipient(s), {} enqueued{unreachable}, {} sent, {} failed, {} retrying, {} dead (run {})",
        result.recipients,
        result.enqueued,
        rows.sent,
        rows.failed,
        rows.retrying,
        rows.dead,
        prepared.run.id
    )?;
    if rows.unsettled() > 0 {
        eprintln!(
            "{} still being sent by another sender; see `segd deliveries runs --communication {name}`",
            rows.unsettled()
        );
    }
    Ok(
        if rows.failed + rows.retrying + rows.dead + rows.unsettled() == 0 {
            exit::ok()
        } else {
            exit::problem()
        },
    )
}

/// How often a run's rows are counted while another sender sends them.
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The run's rows by status once none is waiting or being sent, or as they are
/// after `lease` (the longest another sender holds a row without renewing it).
async fn settled(
    store: &dyn Store,
    run_id: &str,
    lease: std::time::Duration,
) -> Result<RunRows, CliError> {
    let deadline = tokio::time::Instant::now() + lease;
    let filter = RunFilter {
        run_id: Some(run_id.to_string()),
        ..RunFilter::default()
    };
    loop {
        let rows = store
            .runs(&filter)
            .await?
            .first()
            .map(|r| r.rows)
            .unwrap_or_default();
        if rows.unsettled() == 0 || tokio::time::Instant::now() >= deadline {
            return Ok(rows);
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Lists who the run would reach (stdout), then says how many, who it cannot
/// reach and whether `max_recipients` would hold it (stderr).
async fn dry_run(
    args: &TriggerArgs,
    target: &Target,
    prepared: &Prepared<'_>,
    store: &dyn Store,
) -> Result<ExitCode, CliError> {
    let name = args.name.as_str();
    let mut out = super::out::Stream::new();
    let mut last: Option<String> = None;
    let mut customers = 0u64;
    let found = preview(store, prepared, |m| {
        if last.as_deref() == Some(m.id.as_str()) {
            return Ok(());
        }
        customers += 1;
        let line = format!(
            "{}\t{}\t{}",
            m.id,
            m.name.as_deref().unwrap_or(""),
            m.email.as_deref().unwrap_or("")
        );
        last = Some(m.id);
        writeln!(out, "{line}")
    })
    .await;
    out.finish()?;
    let found = found?;
    eprintln!(
        "dry run: `{name}` would reach {customers} customer(s) about {} invoice(s); nothing was written or sent",
        found.messages
    );
    if found.unreachable > 0 {
        let more = if found.unreachable > UNREACHABLE_SAMPLE {
            ", …"
        } else {
            ""
        };
        let ids: Vec<&str> = found
            .unreachable_sample
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        eprintln!(
            "{} unreachable (no email address), not counted: {}{more}",
            found.unreachable,
            ids.join(", ")
        );
    }
    if let Some(max) = target.communication.max_recipients
        && customers > max
        && !args.allow_over_limit
    {
        eprintln!(
            "warning: the run would be held: {customers} customers is more than max_recipients = {max}; \
             send it anyway with `segd trigger {name} --allow-over-limit`"
        );
    }
    Ok(exit::ok())
}

fn progress(global: &Global, len: u64) -> Option<indicatif::ProgressBar> {
    (!global.quiet && std::io::stderr().is_terminal() && len > 0).then(|| {
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("delivering");
        bar
    })
}

/// An unknown communication that the definitions in `--dir` define (valid
/// or not) is one not applied yet: the error says where it is defined.
fn defined_in_files(global: &Global, e: TriggerError) -> TriggerError {
    match e {
        TriggerError::Unknown {
            name,
            nearest,
            defined_in: None,
        } => {
            // No definitions there (a folder holding none) is no hint.
            let defined_in = crate::source::load_tree(&global.dir).ok().and_then(|tree| {
                let outcome = crate::validate::validate(
                    &tree,
                    &crate::source::FsTemplates::of(&global.dir, &tree),
                );
                outcome.communication_file(&name).map(str::to_string)
            });
            TriggerError::Unknown {
                name,
                nearest,
                defined_in,
            }
        }
        other => other,
    }
}
