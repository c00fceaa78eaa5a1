//! Membership impact of a plan, measured in the database: what `plan` and
//! `apply` show under each segment and communication they change.

use crate::model::{Delivery, Name, Segment};
use crate::plan::{Action, Applied, Decoded, Definition, Impact, Impacts, Kind, Plan, Undecodable};
use crate::segment::compile_impact;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

async fn measure(
    store: &dyn Store,
    before: Option<&Segment>,
    after: &Segment,
    at: DateTime<Utc>,
) -> Result<Impact, StoreError> {
    let q = compile_impact(before, after, store.dialect(), at);
    let counts = store.counts(&q.counts).await?;
    let get = |i: usize| counts.get(i).copied().unwrap_or(0);
    let sample_entering = store.member_ids(&q.entering).await?;
    let sample_leaving = store.member_ids(&q.leaving).await?;
    Ok(Impact {
        before: get(0),
        after: get(1),
        entering: get(2),
        leaving: get(3),
        sample_entering,
        sample_leaving,
        communications: Vec::new(),
        unreachable: Some(get(4)),
    })
}

/// At most this many changes have their membership measured in one plan (each
/// is a query over every customer); the plan says when it measured fewer.
const MAX_MEASURED: usize = 200;

/// What measuring a plan's impact could not do, for the edge to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A definition that does not read back, measured as if absent.
    Undecodable(Undecodable),
    /// More changes than [`MAX_MEASURED`]: only the first were measured.
    Unmeasured { changes: usize, measured: usize },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::Undecodable(e) => write!(f, "warning: {e}"),
            Warning::Unmeasured { changes, measured } => write!(
                f,
                "note: {changes} definitions change; membership impact is measured for the first {measured}"
            ),
        }
    }
}

/// A plan's impacts, and what measuring them could not do.
#[derive(Debug, Default)]
pub struct Measured {
    pub impacts: Impacts,
    pub warnings: Vec<Warning>,
}

/// The definition read back, or a warning naming it (it is measured as if absent).
fn decoded(d: &Definition, warnings: &mut Vec<Warning>) -> Option<Decoded> {
    d.decode()
        .map_err(|e| warnings.push(Warning::Undecodable(e)))
        .ok()
}

/// The segment a communication definition names, and whether it sends email.
fn segment_of(d: &Definition, warnings: &mut Vec<Warning>) -> Option<(Name, bool)> {
    match decoded(d, warnings)? {
        Decoded::Communication(c) => {
            let email = matches!(c.delivery, Delivery::Email(_));
            Some((c.segment, email))
        }
        Decoded::Segment(_) => None,
    }
}

/// Impacts of every created or changed segment, and of every created or changed
/// communication whose audience changes. Only those segments are evaluated.
/// Definitions that do not read back are measured as if absent, and named
/// among the warnings.
pub async fn impacts(
    store: &dyn Store,
    plan: &Plan,
    applied: &[Applied],
    desired: &[Definition],
    at: DateTime<Utc>,
) -> Result<Measured, StoreError> {
    let mut warnings = Vec::new();
    let applied_segment: BTreeMap<&str, &Definition> = applied
        .iter()
        .filter(|a| a.def.kind == Kind::Segment)
        .map(|a| (a.def.name.as_str(), &a.def))
        .collect();
    let desired_segment: BTreeMap<&str, &Definition> = desired
        .iter()
        .filter(|d| d.kind == Kind::Segment)
        .map(|d| (d.name.as_str(), d))
        .collect();
    // The desired communications of each segment (and whether any sends
    // email), read once a segment is measured.
    let mut reached_by: Option<BTreeMap<Name, (Vec<String>, bool)>> = None;
    let mut out = Impacts::new();
    let measurable = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .count();
    if measurable > MAX_MEASURED {
        warnings.push(Warning::Unmeasured {
            changes: measurable,
            measured: MAX_MEASURED,
        });
    }
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .take(MAX_MEASURED)
    {
        let Some(after) = &c.after else { continue };
        // For a communication: its segments before and after, and whether it
        // sends email (a segment's email senders are found below).
        let (before_def, after_def, sends_email) = match c.kind {
            Kind::Segment => (c.before.as_ref(), Some(after), false),
            Kind::Communication => {
                let old_seg = c
                    .before
                    .as_ref()
                    .and_then(|d| segment_of(d, &mut warnings))
                    .map(|(s, _)| s);
                let new_seg = segment_of(after, &mut warnings);
                let sends_email = new_seg.as_ref().is_some_and(|(_, email)| *email);
                let before = old_seg.and_then(|s| applied_segment.get(s.as_str()).copied());
                let after = new_seg.and_then(|(s, _)| {
                    desired_segment
                        .get(s.as_str())
                        .or_else(|| applied_segment.get(s.as_str()))
                        .copied()
                });
                (before, after, sends_email)
            }
        };
        let spec = |d: Option<&Definition>| d.map(|d| d.spec.clone());
        if c.action == Action::Update && spec(before_def) == spec(after_def) {
            continue;
        }
        let mut segment = |d: Option<&Definition>| match d.and_then(|d| decoded(d, &mut warnings)) {
            Some(Decoded::Segment(s)) => Some(s),
            _ => None,
        };
        let Some(after_seg) = segment(after_def) else {
            continue;
        };
        let before_seg = segment(before_def);
        let mut impact = measure(store, before_seg.as_ref(), &after_seg, at).await?;
        let by_email = if c.kind == Kind::Segment {
            let reached_by = reached_by.get_or_insert_with(|| {
                let mut by: BTreeMap<Name, (Vec<String>, bool)> = BTreeMap::new();
                for d in desired.iter().filter(|d| d.kind == Kind::Communication) {
                    if let Some((seg, email)) = segment_of(d, &mut warnings) {
                        let entry = by.entry(seg).or_default();
                        entry.0.push(d.name.to_string());
                        entry.1 |= email;
                    }
                }
                by
            });
            let (names, email) = reached_by.get(&after.name).cloned().unwrap_or_default();
            impact.communications = names;
            email
        } else {
            sends_email
        };
        if !by_email {
            impact.unreachable = None;
        }
        out.insert((c.kind, c.name.clone()), impact);
    }
    Ok(Measured {
        impacts: out,
        warnings,
    })
}

/// Updates whose membership changes by more than `max_pct` percent.
pub fn over_limit(plan: &Plan, impacts: &Impacts, max_pct: f64) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.action == Action::Update)
        .filter_map(|c| {
            let i = impacts.get(&(c.kind, c.name.clone()))?;
            let pct = i.change_pct();
            let over = pct.is_none_or(|p| p > max_pct);
            over.then(|| {
                let shown = pct.map_or("from none".to_string(), |p| format!("{p:.1}%"));
                format!(
                    "{} `{}`: members {} → {} ({shown})",
                    c.kind.as_str(),
                    c.name,
                    i.before,
                    i.after
                )
            })
        })
        .collect()
}
