//! Membership impact of a plan, measured in the database (SPEC §5 `plan`).

use super::segment::dialect;
use crate::model::Segment;
use crate::plan::{Action, Applied, Impact, Impacts, Kind, Plan};
use crate::segment::compile_impact;
use crate::store::{AnyStore, StoreError};
use crate::validate::stored_segment;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The segment a canonical communication definition names.
fn comm_segment(spec: &str) -> Option<String> {
    let t: toml::Table = toml::from_str(spec).ok()?;
    t.get("communication")?
        .get("segment")?
        .as_str()
        .map(str::to_string)
}

async fn measure(
    store: &AnyStore,
    before: Option<&Segment>,
    after: &Segment,
    at: DateTime<Utc>,
) -> Result<Impact, StoreError> {
    let q = compile_impact(before, after, dialect(store), at);
    let counts = store.counts(&q.counts).await?;
    let get = |i: usize| counts.get(i).copied().unwrap_or(0);
    let mut sample_entering = Vec::new();
    store
        .members(&q.entering, |m| {
            sample_entering.push(m.id);
            Ok(())
        })
        .await?;
    let mut sample_leaving = Vec::new();
    store
        .members(&q.leaving, |m| {
            sample_leaving.push(m.id);
            Ok(())
        })
        .await?;
    Ok(Impact {
        before: get(0),
        after: get(1),
        entering: get(2),
        leaving: get(3),
        sample_entering,
        sample_leaving,
        communications: Vec::new(),
    })
}

/// At most this many changes have their membership measured in one plan (each
/// is a query over every customer); the plan says when it measured fewer.
const MAX_MEASURED: usize = 200;

/// Impacts of every created or changed segment, and of every created or changed
/// communication whose audience changes. Only those segments are evaluated.
pub async fn impacts(
    store: &AnyStore,
    plan: &Plan,
    applied: &[Applied],
    desired: &[crate::plan::Definition],
    at: DateTime<Utc>,
) -> Result<Impacts, StoreError> {
    let applied_spec: BTreeMap<(Kind, &str), &str> = applied
        .iter()
        .map(|a| ((a.def.kind, a.def.name.as_str()), a.def.spec.as_str()))
        .collect();
    let desired_spec: BTreeMap<(Kind, &str), &str> = desired
        .iter()
        .map(|d| ((d.kind, d.name.as_str()), d.spec.as_str()))
        .collect();
    let mut out = Impacts::new();
    let measurable = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .count();
    if measurable > MAX_MEASURED {
        eprintln!(
            "note: {measurable} definitions change; membership impact is measured for the first {MAX_MEASURED}"
        );
    }
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Delete)
        .take(MAX_MEASURED)
    {
        let Some(after) = &c.after else { continue };
        let (before_spec, after_spec) = match c.kind {
            Kind::Segment => (
                c.before.as_ref().map(|b| b.spec.clone()),
                Some(after.spec.clone()),
            ),
            Kind::Communication => {
                let new_seg = comm_segment(&after.spec);
                let old_seg = c.before.as_ref().and_then(|b| comm_segment(&b.spec));
                let before = old_seg.and_then(|s| {
                    applied_spec
                        .get(&(Kind::Segment, s.as_str()))
                        .map(|x| x.to_string())
                });
                let after = new_seg.and_then(|s| {
                    desired_spec
                        .get(&(Kind::Segment, s.as_str()))
                        .or_else(|| applied_spec.get(&(Kind::Segment, s.as_str())))
                        .map(|x| x.to_string())
                });
                (before, after)
            }
        };
        if c.action == Action::Update && before_spec == after_spec {
            continue;
        }
        let Some(after_seg) = after_spec.as_deref().and_then(stored_segment) else {
            continue;
        };
        let before_seg = before_spec.as_deref().and_then(stored_segment);
        let mut impact = measure(store, before_seg.as_ref(), &after_seg, at).await?;
        if c.kind == Kind::Segment {
            impact.communications = desired
                .iter()
                .filter(|d| {
                    d.kind == Kind::Communication
                        && comm_segment(&d.spec).as_deref() == Some(&c.name)
                })
                .map(|d| d.name.clone())
                .collect();
        }
        out.insert((c.kind, c.name.clone()), impact);
    }
    Ok(out)
}

/// `--max-change`: a percentage from 0 to 1000000 (a plain number, `5` or `12.5`).
pub fn parse_pct(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1_000_000.0).contains(p))
        .ok_or_else(|| "a percentage from 0 to 1000000, like 5 or 12.5".to_string())
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
