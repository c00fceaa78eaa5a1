//! Segment size samples (migration 0009): sizes per segment and sample, and
//! the members of each small segment's two latest samples.

pub(super) const INSERT_SIZE: &str = "INSERT INTO segd_segment_sizes (segment, sampled_at, members) VALUES ($1, $2, $3) \
     ON CONFLICT (segment, sampled_at) DO UPDATE SET members = excluded.members";

/// Keeps a segment's members of the sample before `$2` and of `$2` only.
pub(super) const FORGET_OLDER_MEMBERS: &str = "DELETE FROM segd_segment_members WHERE segment = $1 AND (sampled_at = $2 \
     OR sampled_at < (SELECT MAX(sampled_at) FROM segd_segment_members WHERE segment = $1 AND sampled_at < $2))";

/// The ids of sample `$2` of segment `$1` that sample `$3` does not hold.
pub(super) const ONLY_IN: &str = "SELECT a.customer_id FROM segd_segment_members a WHERE a.segment = $1 AND a.sampled_at = $2 \
     AND NOT EXISTS (SELECT 1 FROM segd_segment_members b WHERE b.segment = $1 AND b.sampled_at = $3 \
     AND b.customer_id = a.customer_id) ORDER BY a.customer_id";

/// How many ids one statement inserts.
pub(super) const IDS_PER_INSERT: usize = 5_000;

/// A segment's sizes since `$2`, newest first, at most `$3`.
pub(super) const HISTORY: &str = "SELECT sampled_at, members FROM segd_segment_sizes WHERE segment = $1 \
     AND sampled_at >= $2 ORDER BY sampled_at DESC LIMIT $3";

/// Every segment's latest sample (segments are sampled apart, each at its
/// own times). Reads every size row: the daemon's sampler reads it once.
pub(super) const LATEST: &str = "SELECT s.segment, s.sampled_at, s.members FROM segd_segment_sizes s \
     JOIN (SELECT segment, MAX(sampled_at) AS at FROM segd_segment_sizes GROUP BY segment) m \
     ON m.segment = s.segment AND m.at = s.sampled_at ORDER BY s.segment";

/// A segment's two latest samples.
pub(super) const LATEST_TWO: &str = "SELECT sampled_at, members FROM segd_segment_sizes WHERE segment = $1 \
     ORDER BY sampled_at DESC LIMIT 2";

/// How many members sample `$2` of segment `$1` kept.
pub(super) const KEPT: &str =
    "SELECT COUNT(*) FROM segd_segment_members WHERE segment = $1 AND sampled_at = $2";
