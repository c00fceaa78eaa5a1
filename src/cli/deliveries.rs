use super::context::{database_url, file_settings, with_store};
use super::{CliError, Global, exit};
use crate::store::Store;
use crate::store::outbox::{DeliveryFilter, DeliveryStatus, Retried, RunFilter};
use clap::{Args, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    pub command: Option<DeliveriesCommand>,
    /// Only this communication's deliveries.
    #[arg(long, value_name = "NAME")]
    pub communication: Option<String>,
    /// Only deliveries in this status.
    #[arg(long, value_parser = ["pending", "sending", "sent", "failed", "dead"])]
    pub status: Option<String>,
    /// At most this many rows (1 to 1000000).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub limit: Option<i64>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Re-queue dead or failed deliveries, by id or idempotency key.
    Retry {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// List trigger runs, newest last: recipients, where their deliveries are,
    /// and the members without an email address (unreachable).
    Runs(RunsArgs),
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only this communication's runs.
    #[arg(long, value_name = "NAME")]
    pub communication: Option<String>,
    /// The latest this many runs (1 to 1000000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub limit: i64,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn run(global: &Global, args: DeliveriesArgs) -> Result<ExitCode, CliError> {
    let settings = file_settings(global)?;
    with_store(&database_url(global, &settings), async |store| {
        if let Some(DeliveriesCommand::Runs(a)) = &args.command {
            return runs(a, store).await;
        }
        if let Some(DeliveriesCommand::Retry { ids }) = &args.command {
            return retry(store, ids).await;
        }
        let filter = DeliveryFilter {
            communication: args.communication.clone(),
            status: args.status.as_deref().and_then(DeliveryStatus::parse),
            limit: args.limit,
            ..DeliveryFilter::default()
        };
        let rows = store.deliveries(&filter).await?;
        match args.format {
            Format::Json => outln!("{}", serde_json::to_string_pretty(&rows)?)?,
            Format::Text => {
                outln!("ID       STATUS   COMMUNICATION            CUSTOMER       ATTEMPTS  KEY / LAST ERROR")?;
                for r in &rows {
                    outln!(
                        "{:<8} {:<8} {:<24} {:<14} {:>8}  {}{}",
                        r.id,
                        r.status,
                        r.communication,
                        r.customer_id,
                        r.attempts,
                        r.idempotency_key,
                        r.last_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )?;
                }
            }
        }
        Ok(exit::ok())
    })
    .await
}

/// Re-queues each id, saying on stderr why one was not (as kubectl does per
/// item); exit 1 when any was not.
async fn retry(store: &dyn Store, ids: &[String]) -> Result<ExitCode, CliError> {
    let outcomes = store.retry_deliveries(ids).await?;
    let mut requeued = 0;
    for (id, outcome) in ids.iter().zip(&outcomes) {
        match outcome {
            Retried::Requeued => requeued += 1,
            Retried::Missing => eprintln!("error: no such delivery: {id}"),
            Retried::NotRetryable(status) => eprintln!(
                "error: delivery {id} is {}; only failed or dead deliveries are re-queued",
                status.as_str()
            ),
        }
    }
    outln!("re-queued {requeued} of {} deliveries", ids.len())?;
    Ok(if requeued == ids.len() {
        exit::ok()
    } else {
        exit::problem()
    })
}

async fn runs(args: &RunsArgs, store: &dyn Store) -> Result<ExitCode, CliError> {
    let filter = RunFilter {
        communication: args.communication.clone(),
        run_id: None,
        limit: Some(args.limit),
    };
    let runs = store.runs(&filter).await?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&runs)?)?,
        Format::Text => {
            outln!(
                "RUN                                                STATUS    RECIPIENTS  ENQUEUED  PENDING  SENT  FAILED  RETRYING  DEAD  UNREACHABLE"
            )?;
            for r in &runs {
                let status = if r.released_by.is_some() {
                    "released"
                } else {
                    r.status.as_str()
                };
                let rows = &r.rows;
                outln!(
                    "{:<50} {:<8} {:>11} {:>9} {:>8} {:>5} {:>7} {:>9} {:>5} {:>12}{}",
                    r.id,
                    status,
                    r.recipients,
                    r.enqueued,
                    rows.unsettled(),
                    rows.sent,
                    rows.failed,
                    rows.retrying,
                    rows.dead,
                    r.unreachable,
                    r.released_by
                        .as_deref()
                        .map(|by| format!("  (released by {by})"))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    Ok(exit::ok())
}
