use super::context::{database_url, delivery_config, env_var, file_settings, holder, with_store};
use super::{CliError, Global, exit};
use crate::deliver::worker::{Tally, Worker};
use crate::store::Store;
use crate::store::outbox::RunStatus;
use crate::trigger::{Occasion, TriggerError, enqueue, load_target, prepare, preview};
use clap::Args;
use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;

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
    if !target.communication.enabled {
        return Err(TriggerError::Disabled(args.name.clone()).into());
    }
    let prepared = prepare(&target, Occasion::Manual);
    if args.dry_run {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut last: Option<String> = None;
        let mut customers = 0u64;
        let messages = preview(store, &prepared, |m| {
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
        let _ = out.flush();
        eprintln!(
            "dry run: `{}` would reach {customers} customer(s) about {} invoice(s); nothing was written or sent",
            args.name, messages?
        );
        return Ok(exit::ok());
    }
    let result = enqueue(store, &prepared, args.allow_over_limit, &env_var).await?;
    if result.status == RunStatus::Held {
        eprintln!(
            "held: `{}` would reach {} customers, more than max_recipients = {}; nothing was sent. \
             Review the segment, then run `segd trigger {} --allow-over-limit`.",
            args.name,
            result.recipients,
            target.communication.max_recipients.unwrap_or_default(),
            args.name
        );
        return Ok(exit::problem());
    }
    let worker = Worker::new(store, config, holder(), &env_var)?;
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
    let tally = tally?;
    println!(
        "{}: {} recipient(s), {} enqueued, {} sent, {} failed, {} retrying, {} dead (run {})",
        args.name,
        result.recipients,
        result.enqueued,
        tally.sent,
        tally.failed,
        tally.retrying,
        tally.dead,
        prepared.run.id
    );
    Ok(if tally.failed + tally.retrying + tally.dead == 0 {
        exit::ok()
    } else {
        exit::problem()
    })
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
