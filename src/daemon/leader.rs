//! Leadership: where several daemons share a database (PostgreSQL), the one
//! holding the store's election leads; when it dies its session closes and
//! another replica takes over within seconds. A database only one process uses
//! (SQLite) has no election: its daemon always leads.

use super::state::Shared;
use crate::store::{Election, Store};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_secs(2);

pub struct Leadership {
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Waits for the election task, which steps down and closes its session.
    pub async fn release(self) {
        let _ = self.task.await;
    }
}

pub fn start(
    store: &dyn Store,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Option<Leadership> {
    let Some(mut election) = store.election() else {
        shared.leader.store(true, Ordering::SeqCst);
        metrics::gauge!("segd_leader").set(1.0);
        return None;
    };
    let task = tokio::spawn(async move {
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match election.connect().await {
                Ok(()) => {
                    hold(&mut *election, &shared, &shutdown).await;
                    shared.leader.store(false, Ordering::SeqCst);
                    metrics::gauge!("segd_leader").set(0.0);
                    election.step_down().await;
                }
                Err(e) => tracing::warn!(error = %e, "leader election: cannot connect"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
    Some(Leadership { task })
}

/// Tries for the lead and, once held, keeps checking the session; returns on
/// shutdown or when the session fails.
async fn hold(election: &mut dyn Election, shared: &Shared, shutdown: &CancellationToken) {
    loop {
        if !shared.is_leader() {
            match election.try_lead().await {
                Ok(true) => {
                    shared.leader.store(true, Ordering::SeqCst);
                    metrics::gauge!("segd_leader").set(1.0);
                    tracing::info!("became the leader: reconciling and scheduling");
                    shared.reconcile_now.notify_one();
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "leader election failed");
                    return;
                }
            }
        } else if let Err(e) = election.check().await {
            tracing::warn!(error = %e, "lost the leader connection; stepping down");
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
