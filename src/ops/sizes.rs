//! Sampling segment sizes: every applied segment's member count at one time,
//! with the members of the small ones (see [`crate::store::sizes`]), recorded
//! in batches; then the samples older than the retention are forgotten.

use crate::model::Segment;
use crate::plan::{Decoded, Kind};
use crate::segment::{Select, compile};
use crate::store::sizes::{MEMBERS_TRACKED, SizeSample};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;

/// How many segments one transaction records.
const SEGMENTS_PER_BATCH: usize = 200;

/// What a sample did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampled {
    pub segments: usize,
    /// Size rows older than the retention, forgotten.
    pub pruned: u64,
}

/// Measures every applied segment at `at` and records the sizes; forgets the
/// samples older than `retention`. A segment that does not read back is
/// skipped (the scheduler and the status report it).
pub async fn sample(
    store: &dyn Store,
    at: DateTime<Utc>,
    retention: std::time::Duration,
) -> Result<Sampled, StoreError> {
    let applied = store.applied().await?;
    let mut batch = Vec::with_capacity(SEGMENTS_PER_BATCH);
    let mut segments = 0;
    for a in applied.rows.iter().filter(|a| a.def.kind == Kind::Segment) {
        let Ok(Decoded::Segment(segment)) = a.decoded() else {
            continue;
        };
        batch.push(measure(store, segment, at).await?);
        segments += 1;
        if batch.len() == SEGMENTS_PER_BATCH {
            store.record_sizes(at, &batch).await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        store.record_sizes(at, &batch).await?;
    }
    let before = chrono::TimeDelta::from_std(retention)
        .ok()
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let pruned = store.prune_sizes(before).await?;
    Ok(Sampled { segments, pruned })
}

/// One segment's size at `at`: its ids while there are at most
/// [`MEMBERS_TRACKED`], else a count (the stream is dropped at the first id
/// over the cap).
async fn measure(
    store: &dyn Store,
    segment: &Segment,
    at: DateTime<Utc>,
) -> Result<SizeSample, StoreError> {
    let dialect = store.dialect();
    let ids_query = compile(segment, dialect, at, Select::Ids);
    let mut ids = Vec::new();
    let mut over = false;
    {
        let mut rows = store.member_stream(&ids_query);
        while let Some(m) = rows.try_next().await? {
            if ids.len() as u64 == MEMBERS_TRACKED {
                over = true;
                break;
            }
            ids.push(m.id);
        }
    }
    let name = segment.name.to_string();
    if over {
        let members = store
            .count(&compile(segment, dialect, at, Select::Count))
            .await?;
        return Ok(SizeSample {
            segment: name,
            members,
            ids: None,
        });
    }
    Ok(SizeSample {
        segment: name,
        members: ids.len() as u64,
        ids: Some(ids),
    })
}
