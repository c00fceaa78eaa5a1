//! Reconciling: the files against the applied definitions, applied under the
//! apply lock unless it would delete every definition (or `--no-apply`).

use super::state::{self, ReconcileStatus, Shared};
use super::{APPLY_LOCK_WAIT, DaemonError, Options};
use crate::error::chain;
use crate::memory::release_freed_memory;
use crate::ops::{self, apply::Origin};
use crate::plan::{self, Action, Kind};
use crate::source::{FsTemplates, SourceError, load_tree};
use crate::store::Store;
use crate::validate::validate;
use std::time::Instant;

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
pub(crate) async fn reconcile(
    opts: &Options,
    store: &dyn Store,
    shared: &Shared,
) -> ReconcileStatus {
    let started = Instant::now();
    let mut status = ReconcileStatus {
        at: Some(opts.clock.now()),
        ..ReconcileStatus::default()
    };
    let result = reconcile_inner(opts, store, shared, &mut status).await;
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
        s.drift_undone += status.drift_undone;
        s.last_reconcile = status.clone();
    }
    release_freed_memory().await;
    status
}

/// How many of the plan's changes set back drift: a change of a definition
/// whose file did not change since the last reconcile that left the database
/// as the files said (`before`; none known at the first reconcile).
fn drift_in(plan: &plan::Plan, files: &state::Digests, before: Option<&state::Digests>) -> u64 {
    let Some(before) = before else {
        return 0;
    };
    let undone = plan.changes.iter().filter(|c| {
        let key = (c.kind, c.name.to_string());
        match c.action {
            // A row no file defined, then or now: added outside the files.
            Action::Delete => !before.contains_key(&key),
            Action::Create | Action::Update => {
                before.get(&key).is_some_and(|d| files.get(&key) == Some(d))
            }
        }
    });
    undone.count() as u64
}

/// Remembers the files' digests once the database says what they say.
fn files_applied(shared: &Shared, files: state::Digests) {
    *shared
        .files_before
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(files);
}

async fn reconcile_inner(
    opts: &Options,
    store: &dyn Store,
    shared: &Shared,
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
    let files: state::Digests = desired
        .iter()
        .map(|d| ((d.kind, d.name.to_string()), d.digest()))
        .collect();
    if r.plan.is_empty() {
        files_applied(shared, files);
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
    let unkept = ops::apply::under_lock(store, &opts.holder, APPLY_LOCK_WAIT, async || {
        let origin = Origin {
            user: opts.holder.clone(),
            git_commit: opts.git_commit.clone(),
            at: opts.clock.now(),
        };
        ops::apply::apply(store, &r.plan, &Default::default(), origin).await
    })
    .await?;
    if let Some(e) = unkept {
        tracing::warn!(error = %chain(&e), "keeping the indexes or statistics of custom_data keys failed");
    }
    status.drift_undone = {
        let before = shared
            .files_before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        drift_in(&r.plan, &files, before.as_ref())
    };
    files_applied(shared, files);
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
