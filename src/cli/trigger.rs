use super::context::{
    database_url, delivery_config, env_var, file_settings, holder, report, with_store,
};
use super::{Global, exit};
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

pub async fn run(global: &Global, args: TriggerArgs) -> anyhow::Result<ExitCode> {
    let settings = file_settings(global)?;
    let config = delivery_config(global, &settings)?;
    with_store(&database_url(global, &settings), async |store| {
        trigger(global, &args, config, store).await
    })
    .await
}

fn fail(e: TriggerError) -> ExitCode {
    match e {
        TriggerError::Store(e) => report(&e),
        other => {
            eprintln!("error: {other}");
            exit::problem()
        }
    }
}

async fn trigger(
    global: &Global,
    args: &TriggerArgs,
    config: crate::config::DeliveryConfig,
    store: &dyn Store,
) -> anyhow::Result<ExitCode> {
    let target = match load_target(store, &args.name).await {
        Ok(t) => t,
        Err(e) => return Ok(fail(e)),
    };
    if !target.communication.enabled {
        return Ok(fail(TriggerError::Disabled(args.name.clone())));
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
        return match messages {
            Ok(n) => {
                eprintln!(
                    "dry run: `{}` would reach {customers} customer(s) about {n} invoice(s); nothing was written or sent",
                    args.name
                );
                Ok(exit::ok())
            }
            Err(e) => Ok(report(&e)),
        };
    }
    let result = match enqueue(store, &prepared, args.allow_over_limit, &env_var).await {
        Ok(r) => r,
        Err(e) => return Ok(fail(e)),
    };
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
    let worker = match Worker::new(store, config, holder(), &env_var) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::usage());
        }
    };
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
    let tally = match tally {
        Ok(t) => t,
        Err(e) => return Ok(report(&e)),
    };
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
