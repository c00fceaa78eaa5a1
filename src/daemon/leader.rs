//! Leadership: on PostgreSQL, the daemon holding an advisory lock on a
//! dedicated connection leads; when it dies its connection closes, the lock is
//! released and another replica takes over within seconds. SQLite is one
//! process's database: its daemon always leads.

use super::state::Shared;
use crate::store::AnyStore;
use sqlx::Connection as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const LEADER_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('segd_leader'))";
const POLL: Duration = Duration::from_secs(2);

pub struct Leadership {
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Waits for the election task, which unlocks and closes its connection.
    pub async fn release(self) {
        let _ = self.task.await;
    }
}

pub fn start(
    store: &AnyStore,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> Option<Leadership> {
    // The store's own connection options: the URL is parsed (and checked) once.
    let options = match store {
        AnyStore::Sqlite(_) => {
            shared.leader.store(true, Ordering::SeqCst);
            metrics::gauge!("segd_leader").set(1.0);
            return None;
        }
        AnyStore::Postgres(pg) => pg.pool.connect_options(),
    };
    let task = tokio::spawn(async move {
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match sqlx::PgConnection::connect_with(&options).await {
                Ok(mut conn) => {
                    hold(&mut conn, &shared, &shutdown).await;
                    shared.leader.store(false, Ordering::SeqCst);
                    metrics::gauge!("segd_leader").set(0.0);
                    let _ = sqlx::query("SELECT pg_advisory_unlock_all()")
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
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

/// Tries for the lock and, once held, keeps checking the connection; returns on
/// shutdown or when the connection fails.
async fn hold(conn: &mut sqlx::PgConnection, shared: &Shared, shutdown: &CancellationToken) {
    loop {
        if !shared.is_leader() {
            match sqlx::query_scalar::<_, bool>(LEADER_LOCK)
                .fetch_one(&mut *conn)
                .await
            {
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
        } else if let Err(e) = sqlx::query("SELECT 1").execute(&mut *conn).await {
            tracing::warn!(error = %e, "lost the leader connection; stepping down");
            return;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
