use super::context::{database_url, file_settings, with_store};
use super::segment::parse_at;
use super::{CliError, Global, exit};
use crate::forecast::Simulation;
use crate::model::Event;
use crate::model::Trigger;
use crate::plan::Kind;
use crate::schedule::next_after;
use crate::store::Store;
use crate::trigger::{Occasion, candidates, find_target, prepare, unreachable};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// How many days ahead, from 1 to 3650.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// From this instant (a date or RFC 3339 time), from 1970 to 9999; default now.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// At most this many occurrences per communication are evaluated.
const MAX_OCCURRENCES: usize = 500;

#[derive(serde::Serialize)]
struct Row {
    communication: String,
    at: DateTime<Utc>,
    local: String,
    recipients: u64,
    messages: u64,
    /// Members without an email address (an email communication).
    unreachable: u64,
    /// Over `max_recipients`: the occurrence would be held and send nothing.
    held: bool,
    #[serde(skip)]
    max_recipients: Option<u64>,
}

pub async fn run(global: &Global, args: ForecastArgs) -> Result<ExitCode, CliError> {
    let settings = file_settings(global)?;
    with_store(&database_url(global, &settings), async |store| {
        forecast(&args, store).await
    })
    .await
}

async fn forecast(args: &ForecastArgs, store: &dyn Store) -> Result<ExitCode, CliError> {
    let from = args.at.unwrap_or_else(Utc::now);
    // `--at` ends in 9999 and `--days` at 3650: both ends are representable.
    let (Some(until), Some(start)) = (
        from.checked_add_signed(chrono::TimeDelta::days(i64::from(args.days))),
        from.checked_sub_signed(chrono::TimeDelta::seconds(1)),
    ) else {
        return Err(CliError::OutsideCalendar {
            from,
            days: args.days,
        });
    };
    let applied = store.applied().await?;
    let mut rows = Vec::new();
    for name in applied.names(Kind::Communication) {
        let target = match find_target(&applied, name) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("warning: {e}");
                continue;
            }
        };
        let Trigger::Automatic { schedule, timezone } = &target.communication.trigger else {
            continue;
        };
        if !target.communication.enabled {
            continue;
        }
        let c = &target.communication;
        let mut sim = Simulation::new(
            c.event == Event::PaymentReminder,
            c.min_interval.map(|d| d.std()),
            c.max_recipients,
        );
        let mut at = start;
        for _ in 0..MAX_OCCURRENCES {
            let Some(next) = next_after(schedule, *timezone, at).filter(|n| *n <= until) else {
                break;
            };
            at = next;
            let prepared = prepare(&target, Occasion::Scheduled { at, late: false });
            let outcome = sim.occurrence(at, &candidates(store, &prepared).await?);
            let unreachable = unreachable(store, &prepared).await?;
            rows.push(Row {
                communication: name.to_string(),
                at,
                local: at
                    .with_timezone(timezone)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string(),
                recipients: outcome.recipients,
                messages: outcome.messages,
                unreachable,
                held: outcome.held,
                max_recipients: c.max_recipients,
            });
        }
    }
    rows.sort_by(|a, b| (a.at, &a.communication).cmp(&(b.at, &b.communication)));
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&rows)?)?,
        Format::Text => {
            if rows.is_empty() {
                outln!("No automatic occurrence in the next {} day(s).", args.days)?;
            }
            for r in &rows {
                let unreachable = if r.unreachable > 0 {
                    format!(", {} unreachable (no email address)", r.unreachable)
                } else {
                    String::new()
                };
                let held = match r.max_recipients {
                    Some(max) if r.held => format!(" — held: more than max_recipients = {max}"),
                    _ => String::new(),
                };
                outln!(
                    "{}  {:<28} {:<24} {} message(s) to {} customer(s){unreachable}{held}",
                    r.at.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.communication,
                    r.local,
                    r.messages,
                    r.recipients
                )?;
            }
        }
    }
    Ok(exit::ok())
}
