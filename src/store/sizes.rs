//! Segment size samples: each segment's member count when the daemon samples
//! it, and, for segments of at most [`MEMBERS_TRACKED`] members, who they were,
//! so that the console can say who entered and who left between two samples.

use chrono::{DateTime, Utc};

/// The largest segment whose members a sample keeps: above it, entering and
/// leaving are "too large to track" (a sample keeps at most two sets of ids
/// per segment, so this bounds what tracking stores).
pub const MEMBERS_TRACKED: u64 = 1_000;

/// The most samples one segment's history returns (the newest ones).
pub const HISTORY_ROWS: i64 = 5_000;

/// One segment's size at a sample, with its members' ids when there are at
/// most [`MEMBERS_TRACKED`] of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeSample {
    pub segment: String,
    pub members: u64,
    pub ids: Option<Vec<String>>,
}

/// A segment's size at a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Size {
    pub at: DateTime<Utc>,
    pub members: u64,
}

/// Who entered and who left a segment between its two latest samples
/// (`since` and `at`), ids in order, at most the limit asked for of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub since: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub entered: Vec<String>,
    pub left: Vec<String>,
    /// How many entered and left in all (more than the lists when cut).
    pub entered_total: u64,
    pub left_total: u64,
}
