//! What the daemon knows about itself, shared by its loops and the HTTP API.

use crate::plan::Undecodable;
use crate::validate::Degraded;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, RwLock};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileStatus {
    pub at: Option<DateTime<Utc>>,
    pub ok: bool,
    pub duration_ms: u64,
    /// Changes applied by the last reconcile (or found, with `--no-apply`).
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    /// With `--no-apply`: definitions whose database state differs from the files.
    pub drift: Vec<String>,
    /// Definitions whose files are invalid: their last applied version stays.
    pub degraded: Vec<Degraded>,
    /// Protected definitions removed from the files: deleting them needs `apply --allow-delete`.
    pub protected_deletes_blocked: Vec<String>,
    pub error: Option<String>,
    /// Of the changes applied, those that set back drift (the console counts them).
    #[serde(skip)]
    pub drift_undone: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NextTrigger {
    pub communication: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub last_reconcile: ReconcileStatus,
    pub next_triggers: Vec<NextTrigger>,
    /// Applied definitions the scheduler found that no longer read back.
    pub undecodable: Vec<Undecodable>,
    pub reconciles: u64,
    /// Applied definitions changed outside the files (drift) that a reconcile
    /// of this daemon set back since it started.
    pub drift_undone: u64,
}

/// Shared between the daemon's tasks.
pub struct Shared {
    pub status: RwLock<Status>,
    pub ready: AtomicBool,
    pub leader: AtomicBool,
    /// Wakes the reconciler (a file changed).
    pub reconcile_now: std::sync::Arc<Notify>,
    /// Wakes the delivery loop (something was enqueued).
    pub deliver_now: Notify,
    /// Wakes the size sampler (a reconcile ended).
    pub reconciled: Notify,
    pub no_apply: bool,
    pub started_at: DateTime<Utc>,
    /// The digest of each definition the files held at the last reconcile
    /// that left the database as the files say: a change of a definition
    /// whose file has not changed since is drift being undone.
    pub files_before: std::sync::Mutex<Option<Digests>>,
}

/// Definitions' digests by kind and name.
pub type Digests = std::collections::HashMap<(crate::plan::Kind, String), String>;

impl Shared {
    pub fn new(no_apply: bool, started_at: DateTime<Utc>) -> Self {
        Self {
            status: RwLock::new(Status::default()),
            ready: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            reconcile_now: std::sync::Arc::new(Notify::new()),
            deliver_now: Notify::new(),
            reconciled: Notify::new(),
            no_apply,
            started_at,
            files_before: std::sync::Mutex::new(None),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
