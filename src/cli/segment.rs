use super::context::{database_url, file_settings, valid_tree, with_store};
use super::{CliError, Global, exit};
use crate::model::{Name, Segment, parse_time};
use crate::segment::{Select, compile};
use crate::store::{Member, Store, StoreError};
use chrono::{DateTime, Datelike as _, Utc};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write as _;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct SegmentArgs {
    #[command(subcommand)]
    pub command: SegmentCommand,
}

#[derive(Debug, Subcommand)]
pub enum SegmentCommand {
    /// The customers in a segment at an instant, streamed.
    Members(MembersArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// The definitions on disk.
    Files,
    /// The applied definitions.
    Db,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One customer id per line.
    Ids,
    /// A JSON array of {id, name, email}.
    Json,
    /// CSV with a header: id,name,email.
    Csv,
}

#[derive(Debug, Args)]
pub struct MembersArgs {
    /// The segment's name.
    pub name: String,
    /// Evaluate at this instant: a date (00:00 UTC) or an RFC 3339 time, from 1970 to 9999; default now.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// Read the segment from the files on disk or from the applied definitions.
    #[arg(long, value_enum, default_value_t = From::Files)]
    pub from: From,
    #[arg(long, value_enum, default_value_t = Format::Ids)]
    pub format: Format,
    /// Print only the number of members.
    #[arg(long)]
    pub count: bool,
    /// Print the plan the database would run the query with (of the count
    /// with --count), and run nothing.
    #[arg(long)]
    pub explain: bool,
}

/// `--at`: a date or RFC 3339 time from 1970-01-01 to 9999-12-31.
pub fn parse_at(s: &str) -> Result<DateTime<Utc>, String> {
    let t = parse_time(s).map_err(str::to_string)?;
    if !(1970..=9999).contains(&t.year()) {
        return Err("a time from 1970-01-01 to 9999-12-31 (UTC)".into());
    }
    Ok(t)
}

pub async fn run(global: &Global, args: SegmentArgs) -> Result<ExitCode, CliError> {
    let SegmentCommand::Members(args) = args.command;
    members(global, args).await
}

async fn members(global: &Global, args: MembersArgs) -> Result<ExitCode, CliError> {
    let Ok(name) = Name::parse(&args.name) else {
        return Err(CliError::NotASegmentName(args.name));
    };
    let (settings, from_files) = match args.from {
        From::Files => {
            let o = valid_tree(global)?;
            let seg = o.definitions.segments.get(&name).map(|s| s.def.clone());
            (o.settings, Some(seg))
        }
        From::Db => (file_settings(global)?, None),
    };
    with_store(&database_url(global, &settings), async |store| {
        print_members(&args, &name, from_files, store).await
    })
    .await
}

async fn print_members(
    args: &MembersArgs,
    name: &Name,
    from_files: Option<Option<Segment>>,
    store: &dyn Store,
) -> Result<ExitCode, CliError> {
    let segment: Option<Segment> = match from_files {
        Some(seg) => seg,
        None => store
            .applied()
            .await?
            .segment(name.as_str())
            .map_err(StoreError::from)?
            .cloned(),
    };
    let Some(segment) = segment else {
        let place = match args.from {
            From::Files => "in the definitions",
            From::Db => "among the applied definitions",
        };
        return Err(CliError::NoSegment {
            name: name.to_string(),
            place,
        });
    };
    let at = args.at.unwrap_or_else(Utc::now);
    let dialect = store.dialect();
    let select = match (args.count, args.format) {
        (true, _) => Select::Count,
        (false, Format::Ids) => Select::Ids,
        (false, Format::Json | Format::Csv) => Select::Rows,
    };
    let query = compile(&segment, dialect, at, select);
    if args.explain {
        let plan = store.explain(&query).await?;
        for step in &plan {
            out!("{step}")?;
        }
        return Ok(exit::ok());
    }
    if args.count {
        outln!("{}", store.count(&query).await?)?;
        return Ok(exit::ok());
    }
    let mut out = super::out::Stream::new();
    let result = match args.format {
        Format::Ids => store.members(&query, |m| writeln!(out, "{}", m.id)).await,
        Format::Json => {
            let mut first = true;
            let _ = out.write_all(b"[");
            let r = store
                .members(&query, |m: Member| {
                    let sep = if first { "\n  " } else { ",\n  " };
                    first = false;
                    let line = serde_json::to_string(&m).map_err(std::io::Error::other)?;
                    write!(out, "{sep}{line}")
                })
                .await;
            let _ = out.write_all(if first { b"]\n" } else { b"\n]\n" });
            r
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            let _ = w.write_record(["id", "name", "email"]);
            let r = store
                .members(&query, |m| {
                    w.write_record([
                        m.id.as_str(),
                        m.name.as_deref().unwrap_or(""),
                        m.email.as_deref().unwrap_or(""),
                    ])
                    .map_err(std::io::Error::other)
                })
                .await;
            let _ = w.flush();
            r
        }
    };
    out.finish()?;
    result?;
    Ok(exit::ok())
}
