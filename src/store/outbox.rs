//! Trigger runs and the delivery outbox, as the store takes and returns them
//! (the operations are in `sql::runs`).

use crate::segment::Query;
use chrono::{DateTime, Utc};

/// Runs of one communication also take turns inside the process, before they
/// take a connection: on PostgreSQL a run waiting for its transaction lock
/// holds a pooled connection, and many concurrent triggers of one
/// communication (the HTTP API) would otherwise hold them all. Striped by a
/// hash of the name: two communications share a turn only on a collision.
static ENQUEUE_TURNS: [tokio::sync::Mutex<()>; 64] =
    [const { tokio::sync::Mutex::const_new(()) }; 64];

pub(super) fn enqueue_turn(communication: &str) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    communication.hash(&mut h);
    let i = usize::try_from(h.finish() % ENQUEUE_TURNS.len() as u64).unwrap_or(0);
    &ENQUEUE_TURNS[i]
}

/// A trigger run as recorded in `segd_trigger_runs`.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: String,
    pub communication: String,
    pub channel: &'static str,
    pub occurrence: String,
    pub kind: RunKind,
    pub occurred_at: DateTime<Utc>,
    pub late: bool,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Manual,
    Scheduled,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Manual => "manual",
            RunKind::Scheduled => "scheduled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Enqueued,
    /// Over `max_recipients`: nothing enqueued.
    Held,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Enqueued => "enqueued",
            RunStatus::Held => "held",
        }
    }
}

/// What a run writes: its deliveries, and what it counts besides.
pub struct Enqueue<'a> {
    /// The run's `customer_id, invoice_id` pairs: the store writes an outbox
    /// row for each (for each customer, listing its invoices, when
    /// `one_per_recipient`).
    pub candidates: &'a Query,
    /// A payment reminder writes one row per recipient.
    pub one_per_recipient: bool,
    /// One row: how many members the channel cannot reach (no email address).
    pub unreachable: Option<&'a Query>,
    /// Over this many recipients, the run is held and writes nothing.
    pub max_recipients: Option<u64>,
    /// Sent with `--allow-over-limit`: the communication's held runs are
    /// marked as released by this one.
    pub release_held: bool,
    /// When the run started (and, writing everything at once, finished).
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunResult {
    pub status: RunStatus,
    /// The customers the run reaches (the unreachable ones not counted).
    pub recipients: u64,
    pub enqueued: u64,
    /// Members the channel cannot reach (no email address): not enqueued.
    pub unreachable: u64,
    /// Held runs this one released.
    pub released: u64,
}

/// Where a run's outbox rows are, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunRows {
    /// Waiting for a sender (never tried, or re-queued).
    pub pending: u64,
    /// Claimed by a sender.
    pub sending: u64,
    pub sent: u64,
    /// Failed, to be tried again later.
    pub retrying: u64,
    pub failed: u64,
    pub dead: u64,
}

impl RunRows {
    /// Rows still to be sent now (waiting or being sent); retries wait for their time.
    pub fn unsettled(&self) -> u64 {
        self.pending + self.sending
    }
}

/// A row of `segd deliveries runs`: a run and where its deliveries are.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub id: String,
    pub communication: String,
    pub occurrence: String,
    pub kind: String,
    /// `enqueued`, `held` or `failed`.
    pub status: String,
    /// The run that sent a held run's occurrence with `--allow-over-limit`.
    pub released_by: Option<String>,
    pub started_at: DateTime<Utc>,
    /// The customers it reaches (the unreachable ones not counted).
    pub recipients: u64,
    pub enqueued: u64,
    /// Members without an email address, not enqueued.
    pub unreachable: u64,
    pub rows: RunRows,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub communication: Option<String>,
    pub run_id: Option<String>,
    pub limit: Option<i64>,
}

/// A claimed outbox row.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub key: String,
    pub communication: String,
    pub customer_id: String,
    pub invoice_ids: Vec<String>,
    pub occurred_at: DateTime<Utc>,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// How an attempt ends for the row.
#[derive(Debug, Clone)]
pub enum Mark {
    Sent,
    Retry { at: DateTime<Utc>, error: String },
    Failed { error: String },
    Dead { error: String },
}

/// Where an outbox row is (its `status` column; the SQL names them too, as
/// partial indexes hold their literals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Sent,
    Failed,
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Failed,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A row of `segd deliveries`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Delivery {
    pub id: i64,
    pub idempotency_key: String,
    pub communication: String,
    pub channel: String,
    pub customer_id: String,
    pub invoice_ids: Vec<String>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// What `deliveries retry` did with one id or idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    Requeued,
    /// The delivery is in this status, neither failed nor dead.
    NotRetryable(DeliveryStatus),
    /// No delivery has this id or key.
    Missing,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub communication: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub run_id: Option<String>,
    /// One row, by id.
    pub id: Option<i64>,
    /// Only rows with a smaller id (the next page of a newest-first list).
    pub before: Option<i64>,
    /// Only rows of runs started at or after `since`, and before `until`.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    /// Newest first (by id) rather than oldest first.
    pub newest_first: bool,
}

/// A row's invoice ids, in order: the outbox stores them as a JSON array in
/// whatever order the run's aggregate met them (sorting there costs a large run
/// a tenth of its time).
pub(super) fn invoice_ids(json: &str) -> Vec<String> {
    let mut ids: Vec<String> = serde_json::from_str(json).unwrap_or_default();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::invoice_ids;

    #[test]
    fn a_rows_invoice_ids_read_in_order_whatever_order_they_were_stored_in() {
        assert_eq!(
            invoice_ids(r#"["inv_3","inv_1","inv_2"]"#),
            ["inv_1", "inv_2", "inv_3"]
        );
        assert_eq!(invoice_ids(r#"["inv_1"]"#), ["inv_1"]);
        assert!(invoice_ids("not json").is_empty());
    }
}
