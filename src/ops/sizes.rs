//! Sampling segment sizes: each applied segment's member count, with the
//! members of the small ones (see [`crate::store::sizes`]), measured a bounded
//! slice at a time; then the samples older than the retention are forgotten.
//!
//! A pass measures only the segments that are due — never sampled, changed
//! since their last sample, or sampled longer than the refresh period ago
//! (new and changed ones first, then the oldest sample) — and stops after
//! [`Limits::segments`] segments or [`Limits::time`], whichever comes first:
//! with 10,000 definitions and a million customers, measuring every segment
//! takes minutes, and nothing needs it done at once. Each segment's samples
//! carry their own time (the console reads them per segment).

use crate::model::Segment;
use crate::plan::{Applied, Decoded, Kind};
use crate::segment::{Select, compile};
use crate::store::sizes::{MEMBERS_TRACKED, SizeSample};
use crate::store::{Store, StoreError};
use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use futures_util::TryStreamExt as _;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How much one pass may do, and how old a sample may grow.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most segments one pass measures (also one transaction's worth).
    pub segments: usize,
    /// A pass measures no new segment once this long has passed.
    pub time: Duration,
    /// A segment's sample older than this is measured again.
    pub refresh: Duration,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampled {
    /// Segments measured.
    pub segments: usize,
    /// Segments still due after this pass (the next pass takes them).
    pub due: usize,
    /// Size rows older than the retention, forgotten.
    pub pruned: u64,
}

/// What the sampler knows between passes, by segment.
#[derive(Debug, Default)]
pub struct Sampler {
    /// Read from the store at the first pass (the hashes are then the
    /// current ones: a definition changed while no daemon ran is measured
    /// again at its refresh).
    last: Option<HashMap<String, Seen>>,
    /// The segments that did not read back, with their definition's hash:
    /// not due again until that changes.
    undecodable: HashMap<String, String>,
}

/// A segment's last sample.
#[derive(Debug)]
struct Seen {
    at: DateTime<Utc>,
    /// Its definition's hash then.
    hash: String,
    members: u64,
}

impl Sampler {
    /// Forgets what it knew (another daemon may sample meanwhile): the next
    /// pass reads the latest samples back.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// Measures the segments due at `at`, within `limits`, records their
    /// sizes, and forgets the samples older than `retention`. A segment that
    /// does not read back is skipped (the scheduler and the status report it).
    pub async fn pass(
        &mut self,
        store: &dyn Store,
        at: DateTime<Utc>,
        retention: Duration,
        limits: Limits,
    ) -> Result<Sampled, StoreError> {
        let started = Instant::now();
        // Names and hashes only; the specs of the segments measured are read
        // below. (Reading every applied definition at each pass, while it
        // works through 8,000 segments, grew an idle daemon by 10 MB.)
        let hashes: HashMap<String, String> = store
            .applied_hashes(Kind::Segment)
            .await?
            .into_iter()
            .collect();
        // Taken while the pass runs: a failed pass reads the samples back.
        let mut last = match self.last.take() {
            Some(last) => last,
            None => {
                let latest = store.latest_sizes().await?;
                latest
                    .into_iter()
                    .filter_map(|(name, size)| {
                        let hash = hashes.get(&name)?.clone();
                        let (at, members) = (size.at, size.members);
                        Some((name, Seen { at, hash, members }))
                    })
                    .collect()
            }
        };
        let undecodable = &mut self.undecodable;
        // (Those applied no more, or changed, are forgotten.)
        undecodable.retain(|name, hash| hashes.get(name) == Some(hash));
        let due = due(&hashes, &last, undecodable, at, limits.refresh);
        // At most a pass's worth, read and decoded (decoding all 8,000
        // segments of a tree at every pass kept a daemon that had just
        // started busy for a minute).
        let chosen: Vec<String> = due
            .iter()
            .take(limits.segments)
            .map(|(name, _)| name.to_string())
            .collect();
        let specs = store.applied_named(Kind::Segment, &chosen).await?;
        let specs: HashMap<&str, &Applied> =
            specs.iter().map(|a| (a.def.name.as_str(), a)).collect();
        let mut batch = Vec::new();
        let mut taken = 0;
        for (name, before) in due.iter().take(limits.segments) {
            // At least one segment a pass, so that every pass gets on.
            if !batch.is_empty() && started.elapsed() >= limits.time {
                break;
            }
            taken += 1;
            // (None: no longer applied.)
            let Some(a) = specs.get(name) else {
                continue;
            };
            let Ok(Decoded::Segment(segment)) = a.decoded() else {
                undecodable.insert(name.to_string(), a.hash.clone());
                continue;
            };
            batch.push((measure(store, segment, at, *before).await?, a.hash.clone()));
        }
        let left = due.len() - taken;
        let samples: Vec<SizeSample> = batch.iter().map(|(s, _)| s.clone()).collect();
        if !samples.is_empty() {
            store.record_sizes(at, &samples).await?;
        }
        // The time as recorded (to the second).
        let recorded = at.trunc_subsecs(0);
        for (sample, hash) in batch {
            let seen = Seen {
                at: recorded,
                hash,
                members: sample.members,
            };
            last.insert(sample.segment, seen);
        }
        last.retain(|name, _| hashes.contains_key(name));
        let before = TimeDelta::from_std(retention)
            .ok()
            .and_then(|d| at.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let pruned = store.prune_sizes(before).await?;
        self.last = Some(last);
        Ok(Sampled {
            segments: samples.len(),
            due: left,
            pruned,
        })
    }
}

/// The segments due at `at` (but those that did not read back, as long as
/// they do not change), with their size at the last sample: never measured or
/// changed since, by name, then those measured `refresh` or longer ago, the
/// oldest first. `hashes`: each applied segment's definition hash, by name.
fn due<'a>(
    hashes: &'a HashMap<String, String>,
    last: &HashMap<String, Seen>,
    undecodable: &HashMap<String, String>,
    at: DateTime<Utc>,
    refresh: Duration,
) -> Vec<(&'a str, Option<u64>)> {
    let stale_before = TimeDelta::from_std(refresh)
        .ok()
        .and_then(|d| at.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    // (Its last sample's time, none when it has none or changed since.)
    type Due<'a> = (Option<DateTime<Utc>>, &'a str, Option<u64>);
    let mut due: Vec<Due<'a>> = hashes
        .iter()
        .filter_map(|(name, hash)| {
            if undecodable.get(name) == Some(hash) {
                return None;
            }
            let seen = last.get(name);
            let when = match seen {
                Some(s) if s.hash == *hash => {
                    if s.at > stale_before {
                        return None;
                    }
                    Some(s.at)
                }
                _ => None,
            };
            Some((when, name.as_str(), seen.map(|s| s.members)))
        })
        .collect();
    due.sort_unstable_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)));
    due.into_iter()
        .map(|(_, name, before)| (name, before))
        .collect()
}

/// One segment's size at `at`: its ids while there are at most
/// [`MEMBERS_TRACKED`], else a count. A segment not sampled yet or over the
/// cap at its last sample (`before`) is counted first, in one query (its ids
/// are read only if it is under the cap); one under the cap is read id by id
/// first, the stream dropped at the first id over the cap, and only then
/// counted. (The ids of a large segment in order cost as much as its count:
/// reading them first measured it twice.)
async fn measure(
    store: &dyn Store,
    segment: &Segment,
    at: DateTime<Utc>,
    before: Option<u64>,
) -> Result<SizeSample, StoreError> {
    let dialect = store.dialect();
    let name = segment.name.to_string();
    let count = async || {
        store
            .count(&compile(segment, dialect, at, Select::Count))
            .await
    };
    if before.is_none_or(|n| n > MEMBERS_TRACKED) {
        let members = count().await?;
        if members > MEMBERS_TRACKED {
            return Ok(SizeSample {
                segment: name,
                members,
                ids: None,
            });
        }
        if members == 0 {
            return Ok(SizeSample {
                segment: name,
                members,
                ids: Some(Vec::new()),
            });
        }
    }
    let ids_query = compile(segment, dialect, at, Select::Ids);
    let mut ids = Vec::new();
    {
        let mut rows = store.member_stream(&ids_query);
        while let Some(m) = rows.try_next().await? {
            if ids.len() as u64 == MEMBERS_TRACKED {
                drop(rows);
                return Ok(SizeSample {
                    segment: name,
                    members: count().await?,
                    ids: None,
                });
            }
            ids.push(m.id);
        }
    }
    Ok(SizeSample {
        segment: name,
        members: ids.len() as u64,
        ids: Some(ids),
    })
}
