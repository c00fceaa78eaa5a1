//! The daemon: watch the definitions, reconcile on change and on a periodic
//! resync, fire automatic triggers on schedule, deliver, serve HTTP, and stop
//! gracefully. On PostgreSQL several daemons share a database: one leader
//! (an advisory lock on a dedicated connection) reconciles and schedules; every
//! replica delivers.

mod http;
mod leader;
mod memory;
pub mod state;
#[cfg(test)]
mod tests;
mod watch;

use crate::clock::Clock;
use crate::config::DeliveryConfig;
use crate::deliver::DeliverError;
use crate::deliver::worker::Worker;
use crate::error::chain;
use crate::model::Trigger;
use crate::ops::{self, apply::Origin};
use crate::plan::{self, Action, Kind, Undecodable};
use crate::schedule;
use crate::source::{FsTemplates, SourceError, load_tree};
use crate::store::{Store, StoreError};
use crate::trigger::{Occasion, TriggerError, enqueue, load_target, prepare};
use crate::validate::validate;
use chrono::Utc;
use state::{NextTrigger, ReconcileStatus, Shared};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub type Env = dyn Fn(&str) -> Option<String> + Send + Sync;

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
}

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

fn degraded_keys(outcome: &crate::validate::Outcome) -> Vec<(Kind, String, Option<String>)> {
    outcome
        .degraded
        .iter()
        .map(|d| (d.kind, d.file.clone(), d.name.clone()))
        .collect()
}

/// One reconcile: the valid definitions are applied, invalid ones keep their
/// last applied version and are reported as degraded. Never runs concurrently
/// with itself (one task owns it).
#[tracing::instrument(name = "reconcile", skip_all)]
async fn reconcile(opts: &Options, store: &dyn Store, shared: &Shared) -> ReconcileStatus {
    let started = Instant::now();
    let mut status = ReconcileStatus {
        at: Some(opts.clock.now()),
        ..ReconcileStatus::default()
    };
    let result = reconcile_inner(opts, store, &mut status).await;
    status.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    metrics::histogram!("segd_reconcile_duration_seconds").record(started.elapsed().as_secs_f64());
    match result {
        Ok(()) => {
            status.ok = true;
            metrics::counter!("segd_reconciles_total", "result" => "ok").increment(1);
        }
        Err(e) => {
            let e = chain(&e);
            tracing::error!(error = %e, "reconcile failed");
            metrics::counter!("segd_reconciles_total", "result" => "error").increment(1);
            metrics::counter!("segd_apply_errors_total").increment(1);
            status.error = Some(e);
        }
    }
    metrics::gauge!("segd_degraded_definitions").set(status.degraded.len() as f64);
    metrics::gauge!("segd_drift_definitions").set(status.drift.len() as f64);
    {
        let mut s = shared.status.write().await;
        s.reconciles += 1;
        s.last_reconcile = status.clone();
    }
    release_freed_memory().await;
    status
}

/// After a burst (a reconcile reads and plans every definition; a delivery pass
/// renders and sends thousands of messages) the memory it freed goes back to
/// the system, so an idle daemon stays small.
async fn release_freed_memory() {
    let _ = tokio::task::spawn_blocking(memory::release_freed).await;
}

async fn reconcile_inner(
    opts: &Options,
    store: &dyn Store,
    status: &mut ReconcileStatus,
) -> Result<(), DaemonError> {
    // The files (read, validated, made canonical on every core) and the
    // applied definitions (read from the database) at the same time.
    let started = Instant::now();
    let dir = opts.dir.clone();
    let files = tokio::task::spawn_blocking(move || {
        let tree = load_tree(&dir)?;
        let outcome = validate(&tree, &FsTemplates::of(&dir, &tree));
        let desired = plan::desired(&outcome.definitions, &outcome.templates);
        Ok::<_, SourceError>((outcome, desired, started.elapsed()))
    });
    let (files, applied) = tokio::join!(files, async {
        let applied = store.applied().await;
        (applied, started.elapsed())
    });
    let (outcome, desired, files_took) = files??;
    let (applied, applied_took) = applied;
    let applied = applied?;
    for d in &outcome.degraded {
        tracing::warn!(
            file = %d.file,
            name = d.name.as_deref().unwrap_or("?"),
            errors = %d.errors.join("; "),
            "degraded {} {} ({}): invalid, keeps its last applied version",
            d.kind.as_str(),
            d.name.as_deref().unwrap_or("?"),
            d.file
        );
    }
    status.degraded = outcome.degraded.clone();
    let r = plan::reconcile(&desired, &applied, &degraded_keys(&outcome));
    tracing::debug!(
        files_ms = files_took.as_millis(),
        database_ms = applied_took.as_millis(),
        planned_ms = started.elapsed().as_millis(),
        "reconcile read the files and the database, and planned"
    );
    status.protected_deletes_blocked = r.blocked.iter().map(|(_, n)| n.clone()).collect();
    for (kind, name) in &r.blocked {
        tracing::warn!(
            "{} {name} was removed from the files but is protected: delete it with `segd apply --allow-delete {name}`",
            kind.as_str()
        );
    }
    if r.plan.is_empty() {
        return Ok(());
    }
    // Warnings (a schedule firing every second, …) are said when they can
    // take effect: when the files change what is applied.
    for d in outcome.diagnostics.iter().filter(|d| !d.is_error()) {
        tracing::warn!("{}:{}:{}: {}", d.file, d.line, d.column, d.message);
    }
    let names = |a: Action| -> Vec<String> {
        r.plan
            .changes
            .iter()
            .filter(|c| c.action == a)
            .map(|c| format!("{} {}", c.kind.as_str(), c.name))
            .collect()
    };
    if opts.no_apply {
        status.drift = r
            .plan
            .changes
            .iter()
            .map(|c| format!("{} {} ({})", c.kind.as_str(), c.name, c.action.as_str()))
            .collect();
        for d in &status.drift {
            tracing::warn!("drift: {d} differs from the files (--no-apply: not changed)");
        }
        return Ok(());
    }
    // The daemon never empties the database on its own: that is what a
    // wrong --dir (or an emptied checkout) would do.
    if r.plan
        .deletes_all(applied.rows.len(), r.kept.len() + r.blocked.len())
    {
        return Err(DaemonError::DeletesAll {
            applied: applied.rows.len(),
            dir: opts.dir.display().to_string(),
        });
    }
    let origin = Origin {
        user: opts.holder.clone(),
        git_commit: opts.git_commit.clone(),
    };
    let unindexed = ops::apply::under_lock(store, &opts.holder, APPLY_LOCK_WAIT, async || {
        ops::apply::apply(store, &r.plan, &Default::default(), origin).await
    })
    .await?;
    if let Some(e) = unindexed {
        tracing::warn!(error = %chain(&e), "indexing custom_data keys failed");
    }
    status.created = names(Action::Create);
    status.updated = names(Action::Update);
    status.deleted = names(Action::Delete);
    for (a, n) in [
        ("create", status.created.len()),
        ("update", status.updated.len()),
        ("delete", status.deleted.len()),
    ] {
        metrics::counter!("segd_reconcile_changes_total", "action" => a).increment(n as u64);
    }
    tracing::info!(
        created = ?status.created,
        updated = ?status.updated,
        deleted = ?status.deleted,
        "applied {}",
        plan::render::summary_line(&r.plan)
    );
    Ok(())
}

/// What a scheduling pass found.
struct Scheduled {
    /// The next occurrence of each automatic communication, soonest first.
    next: Vec<NextTrigger>,
    /// Applied communications that do not read back (not scheduled), and
    /// segments of automatic communications that do not (their runs fail).
    undecodable: Vec<Undecodable>,
}

/// Fires every automatic communication whose occurrence is due; returns the
/// next occurrence of each.
async fn schedule_pass(
    store: &dyn Store,
    env: &Env,
    clock: &dyn Clock,
) -> Result<Scheduled, StoreError> {
    let now = clock.now();
    let applied = store.applied().await?;
    let mut next = Vec::new();
    let mut undecodable = Vec::new();
    for comm in applied.communications() {
        let comm = match comm {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "not scheduled");
                undecodable.push(e);
                continue;
            }
        };
        let Trigger::Automatic {
            schedule: sched,
            timezone,
        } = &comm.trigger
        else {
            continue;
        };
        if !comm.enabled {
            continue;
        }
        // Its runs fail (and say so) until the segment is applied again.
        if let Err(e) = applied.segment(comm.segment.as_str()) {
            tracing::error!(error = %e, "{} cannot run", comm.name);
            undecodable.push(e);
        }
        let name = comm.name.to_string();
        let anchor = match store.last_occurrence(&name).await? {
            Some(t) => t,
            None => store
                .applied_at("communication", &name)
                .await?
                .unwrap_or(now),
        };
        let mut from = anchor;
        if let Some(due) = schedule::due(sched, *timezone, anchor, now) {
            from = due.at;
            let late = due.missed > 0 || now - due.at > chrono::TimeDelta::seconds(60);
            run_scheduled(store, &name, due.at, late, env).await;
        }
        if let Some(at) = schedule::next_after(sched, *timezone, from.max(now)) {
            next.push(NextTrigger {
                communication: name,
                at,
            });
        }
    }
    next.sort_by_key(|n| n.at);
    Ok(Scheduled { next, undecodable })
}

#[tracing::instrument(name = "trigger_run", skip(store, env))]
async fn run_scheduled(
    store: &dyn Store,
    name: &str,
    at: chrono::DateTime<Utc>,
    late: bool,
    env: &Env,
) {
    let target = match load_target(store, name).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %chain(&e), "cannot run the scheduled occurrence");
            return;
        }
    };
    let prepared = prepare(&target, Occasion::Scheduled { at, late });
    match enqueue(store, &prepared, false, env).await {
        Ok(r) => {
            count_run(name, r.status.as_str());
            tracing::info!(run = %prepared.run.id, late, recipients = r.recipients, enqueued = r.enqueued, unreachable = r.unreachable, status = r.status.as_str(), "scheduled run");
        }
        // Another replica, or an earlier life of this one, ran it already.
        Err(TriggerError::Store(e)) if e.is_unique_violation() => {
            tracing::debug!("occurrence already ran");
        }
        Err(e) => {
            count_run(name, "failed");
            tracing::error!(error = %chain(&e), "scheduled run failed");
        }
    }
}

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

fn install_metrics()
-> Result<metrics_exporter_prometheus::PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        )?
        .install_recorder()?;
    metrics::describe_counter!("segd_reconciles_total", "Reconciles, by result");
    metrics::describe_counter!("segd_apply_errors_total", "Reconciles whose apply failed");
    metrics::describe_gauge!(
        "segd_drift_definitions",
        "Definitions whose database state differs from the files (--no-apply)"
    );
    metrics::describe_gauge!(
        "segd_degraded_definitions",
        "Invalid definition files (their last applied version stays)"
    );
    metrics::describe_counter!(
        "segd_trigger_runs_total",
        "Trigger runs, by communication and status"
    );
    metrics::describe_counter!(
        "segd_deliveries_total",
        "Delivery attempts, by channel and result"
    );
    metrics::describe_gauge!("segd_outbox_deliveries", "Outbox rows, by status");
    metrics::describe_gauge!(
        "segd_leader",
        "1 while this daemon leads (reconciles and schedules)"
    );
    metrics::describe_histogram!("segd_reconcile_duration_seconds", "Time of one reconcile");
    metrics::describe_counter!(
        "segd_reconcile_changes_total",
        "Definitions created, updated or deleted by reconciles, by action"
    );
    metrics::describe_histogram!(
        "segd_delivery_duration_seconds",
        "Time of one delivery attempt"
    );
    metrics::counter!("segd_reconciles_total", "result" => "ok").increment(0);
    metrics::counter!("segd_apply_errors_total").increment(0);
    Ok(handle)
}

/// Counts a trigger run this daemon started (scheduled or through the API)
/// in `segd_trigger_runs_total`.
fn count_run(communication: &str, status: &str) {
    metrics::counter!(
        "segd_trigger_runs_total",
        "communication" => communication.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// Runs the daemon until `shutdown` is cancelled (or, with `--once`, one pass).
pub async fn run(
    opts: Options,
    store: Box<dyn Store>,
    env: Arc<Env>,
    shutdown: CancellationToken,
) -> Result<OnceReport, DaemonError> {
    let store: Arc<dyn Store> = Arc::from(store);
    let shared = Arc::new(Shared::new(opts.no_apply, opts.clock.now()));
    let worker_store = store.clone();
    let worker = Worker::new(
        &*worker_store,
        opts.delivery.clone(),
        opts.holder.clone(),
        &*env,
    )?;

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
    tracing::info!(listen = %opts.listen, "serving /healthz /readyz /metrics /v1/status");
    let api = Arc::new(http::Api {
        shared: shared.clone(),
        store: store.clone(),
        metrics,
        token: opts.api_token.clone(),
        env: env.clone(),
        clock: opts.clock.clone(),
    });
    let server_stop = shutdown.clone();
    let server = tokio::spawn(http::serve(listener, http::router(api), server_stop));

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

    tokio::join!(control, deliver, statistics);
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
