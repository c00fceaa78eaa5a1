//! The daemon: watch the definitions, reconcile on change and on a periodic
//! resync, fire automatic triggers on schedule, deliver, serve HTTP, and stop
//! gracefully. On PostgreSQL several daemons share a database: one leader
//! (an advisory lock on a dedicated connection) reconciles and schedules; every
//! replica delivers.

pub(crate) mod http;
mod leader;
mod prometheus;
mod reconcile;
mod scheduler;
pub mod state;
#[cfg(test)]
mod tests;
mod watch;

use crate::clock::Clock;
use crate::config::DeliveryConfig;
use crate::deliver::DeliverError;
use crate::deliver::worker::Worker;
use crate::error::chain;
use crate::ops;
use crate::source::SourceError;
use crate::store::{Store, StoreError};
use chrono::Utc;
use state::Shared;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use crate::memory::release_freed_memory;
pub(crate) use prometheus::count_run;
use prometheus::install_metrics;
pub(crate) use reconcile::reconcile;
use scheduler::{Scheduled, schedule_pass};

/// The environment the daemon reads secrets and settings from.
pub use crate::deliver::worker::Env;

/// Why a reconcile, a schedule pass or the daemon itself failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("reading the definitions stopped")]
    Files(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    #[error(
        "refusing to delete every applied definition ({applied}): {dir} defines none of them. \
         Is --dir the right folder? Delete them with `segd apply --allow-delete-all`"
    )]
    DeletesAll { applied: usize, dir: String },
    #[error("cannot set up the metrics")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub struct Options {
    pub dir: PathBuf,
    pub database_url: String,
    pub listen: SocketAddr,
    pub resync: Duration,
    pub once: bool,
    pub no_apply: bool,
    pub delivery: DeliveryConfig,
    /// `SEGD_API_TOKEN`.
    pub api_token: Option<String>,
    /// Who this daemon is, for locks, claims and history.
    pub holder: String,
    pub git_commit: Option<String>,
    /// What the scheduler, the status and manual runs read the time from.
    pub clock: Arc<dyn Clock>,
    /// How long segment size samples are kept.
    pub size_retention: Duration,
}

/// How long segment size samples are kept unless configured: 90 days.
pub const DEFAULT_SIZE_RETENTION: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// How the leader samples segment sizes: a segment is measured again an hour
/// after its last sample (a new or changed one at the reconcile after it is
/// applied), at most 200 segments or 5 seconds of measuring a pass, while
/// segments are due a pass after a pause as long as the last one took (at
/// least [`SAMPLE_PAUSE`]): the sampler never holds more than half of a core
/// and a database connection (see [`ops::sizes`]).
const SAMPLING: ops::sizes::Limits = ops::sizes::Limits {
    segments: 200,
    time: Duration::from_secs(5),
    refresh: Duration::from_secs(60 * 60),
};

/// The shortest pause between two sampling passes while segments are due.
const SAMPLE_PAUSE: Duration = Duration::from_secs(1);

/// What a one-shot run found: its exit code and what to print.
#[derive(Debug, Default)]
pub struct OnceReport {
    pub ok: bool,
    /// What the pass found, one line each (drift, degraded definitions,
    /// undecodable rows), for the command line to print.
    pub findings: Vec<String>,
}

/// How long in-flight deliveries may take to finish after a shutdown request:
/// longer than a webhook's default timeout (15 s), so a drain normally ends
/// by itself, its outcomes written and its unstarted rows released.
const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// How long a reconcile waits for an apply lock another process holds (a
/// `segd apply` in progress); the next reconcile tries again.
const APPLY_LOCK_WAIT: Duration = Duration::from_secs(5);

/// How often the daemon refreshes SQLite's planner statistics (at start, then
/// this often): a refresh costs milliseconds when no table changed much.
const OPTIMIZE_EVERY: Duration = Duration::from_secs(60 * 60);

/// One delivery pass over every due row; stops between batches once `stop` is set.
async fn deliver_pass(worker: &Worker<'_>, stop: &CancellationToken) {
    match worker.drain(None, |_| {}, &|| stop.is_cancelled()).await {
        Ok(t) if t.sent + t.retrying + t.failed + t.dead > 0 => {
            tracing::info!(
                sent = t.sent,
                retrying = t.retrying,
                failed = t.failed,
                dead = t.dead,
                "delivered"
            );
            release_freed_memory().await;
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %chain(&e), "delivery pass failed"),
    }
}

/// Refreshes the planner statistics that are missing or stale (SQLite; on
/// PostgreSQL autovacuum does it). A failure only leaves queries slower.
async fn optimize(store: &dyn Store) {
    let started = Instant::now();
    match store.optimize().await {
        Ok(()) => tracing::debug!(
            took_ms = started.elapsed().as_millis(),
            "planner statistics refreshed"
        ),
        Err(e) => tracing::warn!(error = %chain(&e), "refreshing the planner statistics failed"),
    }
}

/// At start, what the custom_data keys of the applied segments need (see
/// [`ops::apply::keep_custom_data`]: an older segd applied some without
/// it), under the apply lock; nothing with `--no-apply`. A failure is
/// logged: it only leaves queries slower.
async fn keep_custom_data(opts: &Options, store: &dyn Store) {
    if opts.no_apply {
        return;
    }
    let kept = ops::apply::under_lock(store, &opts.holder, APPLY_LOCK_WAIT, async || {
        ops::apply::keep_custom_data(store).await
    })
    .await;
    if let Err(e) = kept {
        tracing::warn!(error = %chain(&e), "keeping the indexes or statistics of custom_data keys failed");
    }
}

/// One sampling pass of the segments due now (see [`SAMPLING`]): the pause
/// before the next pass when segments are left due. A failure is logged, and
/// the next resync tries again.
async fn sample_sizes(
    sampler: &mut ops::sizes::Sampler,
    store: &dyn Store,
    clock: &dyn Clock,
    retention: Duration,
    limits: ops::sizes::Limits,
) -> Option<Duration> {
    let started = Instant::now();
    match sampler.pass(store, clock.now(), retention, limits).await {
        Ok(s) => {
            if s.segments > 0 || s.pruned > 0 {
                tracing::info!(
                    segments = s.segments,
                    due = s.due,
                    pruned = s.pruned,
                    took_ms = started.elapsed().as_millis(),
                    "segment sizes sampled"
                );
                // A pass is a burst (its queries' rows, the specs it read):
                // without this an idle daemon that had sampled thousands of
                // segments stayed 10 MB above one that had not.
                release_freed_memory().await;
            }
            (s.due > 0).then(|| started.elapsed().max(SAMPLE_PAUSE))
        }
        Err(e) => {
            tracing::warn!(error = %chain(&e), "sampling the segment sizes failed");
            None
        }
    }
}

/// Runs the daemon until `shutdown` is cancelled (or, with `--once`, one pass).
pub async fn run(
    opts: Options,
    store: Box<dyn Store>,
    env: Arc<Env>,
    shutdown: CancellationToken,
) -> Result<OnceReport, DaemonError> {
    // A large block (a plan document, a page of a large apply) goes back to
    // the system when freed, not into a heap that an idle daemon keeps.
    crate::memory::map_large_blocks();
    let store: Arc<dyn Store> = Arc::from(store);
    let shared = Arc::new(Shared::new(opts.no_apply, opts.clock.now()));
    let worker_store = store.clone();
    let worker = Worker::new(
        &*worker_store,
        opts.delivery.clone(),
        opts.holder.clone(),
        &*env,
        opts.clock.clone(),
    )?;
    keep_custom_data(&opts, &*store).await;

    if opts.once {
        shared.leader.store(true, Ordering::SeqCst);
        optimize(&*store).await;
        let status = reconcile(&opts, &*store, &shared).await;
        let mut findings: Vec<String> =
            status.drift.iter().map(|d| format!("drift: {d}")).collect();
        findings.extend(status.degraded.iter().map(|d| {
            format!(
                "degraded: {} {} ({}): {}",
                d.kind.as_str(),
                d.name.as_deref().unwrap_or("?"),
                d.file,
                d.errors.join("; ")
            )
        }));
        let undecodable = match schedule_pass(&*store, &*env, &*opts.clock).await {
            Ok(s) => s.undecodable,
            Err(e) => {
                tracing::error!(error = %chain(&e), "scheduling failed");
                Vec::new()
            }
        };
        findings.extend(undecodable.iter().map(|e| format!("undecodable: {e}")));
        deliver_pass(&worker, &shutdown).await;
        let ok = status.ok && status.degraded.is_empty() && undecodable.is_empty();
        return Ok(OnceReport { ok, findings });
    }

    let metrics = install_metrics()?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: opts.listen,
            source,
        })?;
    tracing::info!(listen = %opts.listen, "serving the console at / and /healthz /readyz /metrics /v1/status");
    let api = Arc::new(http::Api {
        shared: shared.clone(),
        store: store.clone(),
        metrics,
        token: opts.api_token.clone(),
        env: env.clone(),
        clock: opts.clock.clone(),
    });
    let server_stop = shutdown.clone();
    let console = Arc::new(crate::console::Console::new(
        shared.clone(),
        store.clone(),
        opts.api_token.clone(),
        env.clone(),
        opts.clock.clone(),
    ));
    let app = http::router(api, crate::console::router(console));
    let server = tokio::spawn(http::serve(listener, app, server_stop));

    let _watcher = match watch::start(
        &opts.dir,
        Duration::from_millis(100),
        shared.reconcile_now.clone(),
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the definitions; relying on the periodic resync");
            None
        }
    };

    let leader = leader::start(&*store, shared.clone(), shutdown.clone());

    // Reconcile and schedule (leader only); one task, so reconciles never overlap.
    let control = {
        let store = store.clone();
        let shared = shared.clone();
        let env = env.clone();
        let shutdown = shutdown.clone();
        let opts = &opts;
        async move {
            let clock = &*opts.clock;
            let mut next_resync = tokio::time::Instant::now();
            // When the scheduler must look again: after each reconcile, and at the
            // earliest next occurrence itself (the pass reads every definition, so
            // it does not run on every tick; waking at the occurrence, not on a
            // fixed nap, keeps a seconds-field cron from skipping occurrences).
            let mut schedule_at: Option<chrono::DateTime<Utc>> = None;
            loop {
                if shared.is_leader() {
                    if tokio::time::Instant::now() >= next_resync {
                        reconcile(opts, &*store, &shared).await;
                        shared.ready.store(true, Ordering::SeqCst);
                        shared.reconciled.notify_one();
                        next_resync = tokio::time::Instant::now() + opts.resync;
                        schedule_at = None;
                    }
                    if schedule_at.is_none_or(|at| at <= clock.now()) {
                        match schedule_pass(&*store, &*env, &*opts.clock).await {
                            Ok(Scheduled { next, undecodable }) => {
                                schedule_at =
                                    Some(next.first().map_or(
                                        clock.now() + chrono::TimeDelta::minutes(1),
                                        |n| n.at,
                                    ));
                                let mut status = shared.status.write().await;
                                status.next_triggers = next;
                                status.undecodable = undecodable;
                                drop(status);
                                shared.deliver_now.notify_one();
                            }
                            Err(e) => {
                                tracing::error!(error = %chain(&e), "scheduling failed");
                                schedule_at = Some(clock.now() + chrono::TimeDelta::seconds(5));
                            }
                        }
                    }
                } else {
                    // A follower only refreshes its readiness now and then.
                    shared
                        .ready
                        .store(store.version().await.is_ok(), Ordering::SeqCst);
                }
                let nap = if shared.is_leader() {
                    let until_schedule = schedule_at
                        .and_then(|at| (at - clock.now()).to_std().ok())
                        .unwrap_or(Duration::ZERO);
                    next_resync
                        .saturating_duration_since(tokio::time::Instant::now())
                        .min(until_schedule)
                } else {
                    Duration::from_secs(1)
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    // A file changed, or this daemon was just elected: reconcile now.
                    _ = shared.reconcile_now.notified() => next_resync = tokio::time::Instant::now(),
                    _ = tokio::time::sleep(nap) => {}
                }
            }
        }
    };

    let deliver = {
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let worker = &worker;
        async move {
            loop {
                // A shutdown lets the batch in flight finish, within a grace period.
                tokio::select! {
                    _ = deliver_pass(worker, &shutdown) => {}
                    _ = async { shutdown.cancelled().await; tokio::time::sleep(DRAIN_GRACE).await } => {
                        tracing::warn!("deliveries still in flight after the grace period; their leases will expire");
                    }
                }
                if shutdown.is_cancelled() {
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = shared.deliver_now.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };

    // SQLite's statistics, on a connection of the pool: `optimize` checks every
    // table, not only those that connection queried. Nothing on PostgreSQL.
    let statistics = {
        let store = store.clone();
        let shutdown = shutdown.clone();
        async move {
            if !store.keeps_statistics() {
                return;
            }
            loop {
                optimize(&*store).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(OPTIMIZE_EVERY) => {}
                }
            }
        }
    };

    // Segment sizes (leader only), apart from the control loop so that
    // measuring segments never delays a reconcile: a pass at each reconcile,
    // and, after one that left segments due, a pass after a pause.
    let sizes = {
        let store = store.clone();
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let opts = &opts;
        async move {
            let mut sampler = ops::sizes::Sampler::default();
            let mut behind: Option<Duration> = None;
            loop {
                let pause = behind.unwrap_or_default();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = shared.reconciled.notified() => {}
                    _ = tokio::time::sleep(pause), if behind.is_some() => {}
                }
                if !shared.is_leader() {
                    sampler.forget();
                    behind = None;
                    continue;
                }
                behind = sample_sizes(
                    &mut sampler,
                    &*store,
                    &*opts.clock,
                    opts.size_retention,
                    SAMPLING,
                )
                .await;
            }
        }
    };

    tokio::join!(control, deliver, statistics, sizes);
    if let Some(l) = leader {
        l.release().await;
    }
    let _ = server.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(OnceReport {
        ok: true,
        findings: Vec::new(),
    })
}
