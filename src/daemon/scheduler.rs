//! The scheduling pass: each enabled automatic communication whose occurrence
//! is due runs once (a unique run id makes a second replica's try a no-op).

use super::Env;
use super::prometheus::count_run;
use super::state::NextTrigger;
use crate::clock::Clock;
use crate::error::chain;
use crate::model::Trigger;
use crate::plan::Undecodable;
use crate::schedule;
use crate::store::{Store, StoreError};
use crate::trigger::{Occasion, TriggerError, enqueue, load_target, prepare};
use chrono::Utc;

/// What a scheduling pass found.
pub(super) struct Scheduled {
    /// The next occurrence of each automatic communication, soonest first.
    pub(super) next: Vec<NextTrigger>,
    /// Applied communications that do not read back (not scheduled), and
    /// segments of automatic communications that do not (their runs fail).
    pub(super) undecodable: Vec<Undecodable>,
}

/// Fires every automatic communication whose occurrence is due; returns the
/// next occurrence of each.
pub(super) async fn schedule_pass(
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
            run_scheduled(store, &name, due.at, late, env, clock).await;
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

#[tracing::instrument(name = "trigger_run", skip(store, env, clock))]
async fn run_scheduled(
    store: &dyn Store,
    name: &str,
    at: chrono::DateTime<Utc>,
    late: bool,
    env: &Env,
    clock: &dyn Clock,
) {
    let target = match load_target(store, name).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %chain(&e), "cannot run the scheduled occurrence");
            return;
        }
    };
    let prepared = prepare(&target, Occasion::Scheduled { at, late });
    match enqueue(store, &prepared, false, env, clock.now()).await {
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
