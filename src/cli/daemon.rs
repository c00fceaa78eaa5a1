use super::context::{database_url, delivery_config, file_settings, git_commit, holder};
use super::{CliError, Global, exit};
use crate::daemon::{Env, Options, run as run_daemon};
use crate::demo::{DemoSpec, Generator};
use crate::model::Duration;
use crate::store::Store;
use crate::store::billing::{Existing, LoadError};
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Address of the HTTP API (default 127.0.0.1:8080; SEGD_LISTEN).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Periodic resync that also undoes drift, e.g. `60s` (SEGD_RESYNC).
    #[arg(long, value_name = "DURATION", value_parser = parse_resync)]
    pub resync: Option<Duration>,
    /// Reconcile and run due work once, then exit.
    #[arg(long)]
    pub once: bool,
    /// Only report drift; never change the database's definitions.
    #[arg(long)]
    pub no_apply: bool,
    /// On an empty database, first load demo billing data (10,000 customers).
    #[arg(long)]
    pub demo: bool,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// A resync period or a retention: a duration from 1s to 3650d.
fn parse_resync(s: &str) -> Result<Duration, String> {
    Duration::parse(s).map_err(|e| e.to_string())
}

fn init_tracing(global: &Global, format: LogFormat) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SEGD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("segd={default},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(global.color.stdout()).try_init(),
    };
}

fn setting<T>(
    flag: Option<T>,
    env: &str,
    file: Option<T>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, CliError> {
    if flag.is_some() {
        return Ok(flag);
    }
    match std::env::var(env).ok().filter(|v| !v.trim().is_empty()) {
        Some(v) => parse(v.trim())
            .map(Some)
            .map_err(|why| CliError::Setting(format!("{env}: invalid value `{v}`: {why}"))),
        None => Ok(file),
    }
}

pub async fn run(global: &Global, args: DaemonArgs) -> Result<ExitCode, CliError> {
    init_tracing(global, args.log_format);
    let settings = file_settings(global)?;
    let listen = setting(args.listen, "SEGD_LISTEN", settings.listen, |s| {
        s.parse()
            .map_err(|e: std::net::AddrParseError| e.to_string())
    })?
    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let resync = setting(args.resync, "SEGD_RESYNC", settings.resync, parse_resync)?
        .map_or(std::time::Duration::from_secs(60), Duration::std);
    let size_retention = setting(
        None,
        "SEGD_SIZE_RETENTION",
        settings.size_retention,
        parse_resync,
    )?
    .map_or(crate::daemon::DEFAULT_SIZE_RETENTION, Duration::std);
    let delivery = delivery_config(global, &settings)?;
    let url = database_url(global, &settings);
    let store = crate::store::connect(&url).await?;
    let mut env: Arc<Env> = Arc::new(|k: &str| std::env::var(k).ok());
    if args.demo {
        demo_data(&*store).await?;
        if std::env::var("SEGD_WEBHOOK_SECRET").is_err() {
            // The demo's webhook needs a signing secret; a real deployment sets its own.
            env = Arc::new(|k: &str| match k {
                "SEGD_WEBHOOK_SECRET" => {
                    Some("whsec_c2VnZC1kZW1vLXNlY3JldC1ub3QtZm9yLXByb2R1Y3Rpb24=".into())
                }
                _ => std::env::var(k).ok(),
            });
        }
        outln!(
            "segd demo: definitions in {}, database {}",
            global.dir.display(),
            crate::config::redact_url(&url)
        )?;
        outln!("  status:   http://{listen}/v1/status   (also /metrics, /healthz, /readyz)")?;
        outln!(
            "  outbox:   {} (emails are written there as .eml files)",
            delivery.outbox_dir.display()
        )?;
        outln!(
            "  try:      segd segment members overdue-eu --count   |   segd trigger invoice-email   |   segd forecast"
        )?;
    }
    let opts = Options {
        dir: global.dir.clone(),
        database_url: url,
        listen,
        resync,
        once: args.once,
        no_apply: args.no_apply,
        delivery,
        api_token: std::env::var("SEGD_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        holder: format!("daemon {}", holder()),
        git_commit: git_commit(&global.dir),
        clock: Arc::new(crate::clock::System),
        size_retention,
    };
    let shutdown = CancellationToken::new();
    if !args.once {
        spawn_signals(shutdown.clone());
    }
    let report = run_daemon(opts, store, env, shutdown).await?;
    for line in &report.findings {
        outln!("{line}")?;
    }
    Ok(if report.ok {
        exit::ok()
    } else {
        exit::problem()
    })
}

/// First SIGINT/SIGTERM: stop gracefully. A second one: exit at once.
fn spawn_signals(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        for n in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            if n == 0 {
                tracing::info!(
                    "stopping: finishing in-flight deliveries (a second signal exits at once)"
                );
                shutdown.cancel();
            } else {
                tracing::warn!("second signal: exiting at once");
                std::process::exit(130);
            }
        }
    });
}

async fn demo_data(store: &dyn Store) -> Result<(), CliError> {
    let spec = DemoSpec {
        seed: 1,
        customers: 10_000,
        today: chrono::Utc::now().date_naive(),
    };
    let generator = Generator::new(spec)?;
    match store
        .load_demo(generator, Existing::Refuse, &mut |_| {})
        .await
    {
        Ok(rows) => outln!("segd demo: loaded demo billing data: {rows}")?,
        Err(LoadError::NotEmpty { customers }) => {
            outln!("segd demo: the database already holds {customers} customers; using them")?
        }
        Err(e) => return Err(CliError::DemoData(e)),
    }
    Ok(())
}
