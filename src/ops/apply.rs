//! Applying a plan: under the apply lock, recorded in the history, then what
//! the planner needs for the custom_data keys its segments use.

use crate::plan::{Impacts, Plan, render};
use crate::store::{ApplyRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Runs `f` holding the apply lock (waiting up to `wait` for another holder),
/// and releases the lock whatever `f` returns.
pub async fn under_lock<T, E: From<StoreError>>(
    store: &dyn Store,
    holder: &str,
    wait: Duration,
    f: impl AsyncFnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let lock = store.lock(holder, wait).await?;
    let result = f().await;
    store.unlock(lock).await;
    result
}

/// Who applied, from where, and when.
pub struct Origin {
    pub user: String,
    pub git_commit: Option<String>,
    pub at: DateTime<Utc>,
}

/// Applies `plan` in one transaction (the caller holds the apply lock) and
/// records it, with its impacts, in the history; then keeps what the
/// custom_data keys of the applied segments need ([`keep_custom_data`]).
/// What could not be made is handed back as a warning: the apply stands, and
/// the segment evaluates without it.
pub async fn apply(
    store: &dyn Store,
    plan: &Plan,
    impacts: &Impacts,
    origin: Origin,
) -> Result<Option<StoreError>, StoreError> {
    let record = ApplyRecord {
        user: origin.user,
        git_commit: origin.git_commit,
        at: origin.at,
        summary: render::summary_line(plan),
        plan: render::json(plan, impacts),
    };
    store.apply(plan, &record).await?;
    Ok(keep_custom_data(store).await.err())
}

/// Keeps the indexes (SQLite) or statistics (PostgreSQL) of the custom_data
/// keys every applied segment compares ([`Store::keep_custom_data`]; the
/// caller holds the apply lock): also those of segments an older segd
/// applied without them, at the next apply or daemon start. What is kept
/// already costs a read of the catalog.
pub async fn keep_custom_data(store: &dyn Store) -> Result<(), StoreError> {
    let keys = store.applied().await?.custom_data_keys();
    store.keep_custom_data(&keys).await
}
