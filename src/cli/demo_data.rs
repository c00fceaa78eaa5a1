use super::context::{database_url, file_settings};
use super::{CliError, Global, exit};
use crate::demo::{DemoSpec, Generator};
use crate::store::billing::{Existing, LoadError, Progress};
use clap::Args;
use std::io::IsTerminal as _;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "\
The data is a pure function of --seed, --customers and --today: the same three give \
the same rows, on SQLite and on PostgreSQL alike. It fills the billing \
tables (connectors, customers, customer_connectors, payment_methods, invoices, \
monitors) in one transaction, so a failed run changes nothing; their secondary indexes \
are dropped for the load and rebuilt before the commit (on PostgreSQL, queries on these \
tables wait for the load to finish), and the tables are analyzed for the query planner.

When any of these tables already holds a row, demo-data refuses (exit 1) and changes \
nothing; with --replace it first deletes every row of these six tables (segd's own \
segd_* tables are never touched). Email addresses use reserved example domains, so \
communications triggered on demo data reach no real mailbox.")]
pub struct DemoDataArgs {
    /// How many customers to generate (with about 3 invoices, 1.2 payment methods,
    /// 0-2 connector links and some usage monitors each); at most 100000000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(0..=100_000_000)
    )]
    pub customers: u64,
    /// Seed of the generator.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// The date the data is relative to (due dates, ages); default today (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub today: Option<chrono::NaiveDate>,
    /// Delete every row of the six billing tables first, in the same transaction.
    #[arg(long)]
    pub replace: bool,
}

pub async fn run(global: &Global, args: DemoDataArgs) -> Result<ExitCode, CliError> {
    let spec = DemoSpec {
        seed: args.seed,
        customers: args.customers,
        today: args
            .today
            .unwrap_or_else(|| chrono::Utc::now().date_naive()),
    };
    let generator = Generator::new(spec).map_err(CliError::Today)?;
    let url = database_url(global, &file_settings(global)?);
    let store = crate::store::connect(&url).await?;

    let bar =
        (!global.quiet && std::io::stderr().is_terminal()).then(|| progress_bar(spec.customers));
    let started = std::time::Instant::now();
    let existing = if args.replace {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let result = store
        .load_demo(generator, existing, &mut |p| {
            if let Some(bar) = &bar {
                match p {
                    Progress::Customers(n) => bar.set_position(n),
                    Progress::Finishing => {
                        bar.set_message("rebuilding indexes, analyzing, committing")
                    }
                }
            }
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let rows = result.map_err(|e| match e {
        LoadError::NotEmpty { customers } => CliError::NotEmpty { customers },
        LoadError::Store(e) => CliError::Store(e),
    })?;
    outln!(
        "Loaded {} rows in {:.1} s: {rows} (seed {}, today {}).",
        rows.total(),
        started.elapsed().as_secs_f64(),
        spec.seed,
        spec.today
    )?;
    Ok(exit::ok())
}

fn progress_bar(customers: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(customers),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} customers, eta {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    // Keeps the spinner going while indexes are rebuilt at the end.
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
