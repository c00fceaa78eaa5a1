//! Plans as text (Terraform-like, with unified diffs of the canonical
//! definitions) and as a versioned JSON document, which is also the saved-plan
//! file format.

use super::{Action, Change, Definition, Impact, Impacts, Kind, Plan, Version};
use crate::diag::Paint;
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};
use std::fmt::Write as _;

pub const FORMAT_VERSION: u32 = 1;

/// The JSON form of a plan (`plan --format json`, `plan --out FILE`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanDocument {
    pub format_version: u32,
    /// The applied state the plan was made against.
    pub fingerprint: Version,
    pub summary: Summary,
    pub changes: Vec<ChangeDocument>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    /// Names of protected definitions the plan deletes.
    pub protected_deletes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeDocument {
    pub action: Action,
    pub kind: Kind,
    pub name: String,
    pub before: Option<Definition>,
    pub after: Option<Definition>,
    /// Unified diff of the canonical definitions (informational).
    #[serde(default)]
    pub diff: String,
    /// Membership before → after, for segments and the communications they reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
}

impl PlanDocument {
    pub fn new(plan: &Plan, impacts: &Impacts) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            fingerprint: plan.made_against.clone(),
            summary: Summary {
                create: plan.count(Action::Create),
                update: plan.count(Action::Update),
                delete: plan.count(Action::Delete),
                protected_deletes: plan
                    .changes
                    .iter()
                    .filter(|c| c.deletes_protected())
                    .map(|c| c.name.clone())
                    .collect(),
            },
            changes: plan
                .changes
                .iter()
                .map(|c| ChangeDocument {
                    action: c.action,
                    kind: c.kind,
                    name: c.name.clone(),
                    before: c.before.clone(),
                    after: c.after.clone(),
                    diff: unified_diff(c),
                    impact: impacts.get(&(c.kind, c.name.clone())).cloned(),
                })
                .collect(),
        }
    }

    /// The plan and the impacts measured when it was made.
    pub fn into_plan(self) -> (Plan, Impacts) {
        let mut impacts = Impacts::new();
        let changes = self
            .changes
            .into_iter()
            .map(|c| {
                if let Some(i) = c.impact {
                    impacts.insert((c.kind, c.name.clone()), i);
                }
                Change {
                    action: c.action,
                    kind: c.kind,
                    name: c.name,
                    before: c.before,
                    after: c.after,
                }
            })
            .collect();
        let plan = Plan {
            made_against: self.fingerprint,
            changes,
        };
        (plan, impacts)
    }
}

fn spec(d: &Option<Definition>) -> String {
    d.as_ref().map(Definition::display_text).unwrap_or_default()
}

pub fn unified_diff(c: &Change) -> String {
    let (before, after) = (spec(&c.before), spec(&c.after));
    TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(
            c.before.as_ref().map_or("/dev/null", |d| d.source.as_str()),
            c.after.as_ref().map_or("/dev/null", |d| d.source.as_str()),
        )
        .to_string()
}

pub fn summary_line(plan: &Plan) -> String {
    format!(
        "Plan: {} to create, {} to update, {} to delete.",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete)
    )
}

/// The plan for people: each change with a diff of its canonical definition.
pub fn text(plan: &Plan, impacts: &Impacts, color: bool) -> String {
    let p = Paint(color);
    if plan.is_empty() {
        return "No changes. The database matches the definitions.\n".to_string();
    }
    let mut out = String::from("segd will perform the following actions:\n\n");
    for c in &plan.changes {
        let (sym, code) = match c.action {
            Action::Create => ("+", "32"),
            Action::Update => ("~", "33"),
            Action::Delete => ("-", "31"),
        };
        let source = match (&c.before, &c.after) {
            (Some(b), Some(a)) if b.source != a.source => format!("{} → {}", b.source, a.source),
            (_, Some(a)) => a.source.clone(),
            (Some(b), None) => format!("was {}", b.source),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} {} \"{}\" ({source})",
            p.paint(code, sym),
            c.kind.as_str(),
            p.paint("1", &c.name)
        );
        if let Some(i) = impacts.get(&(c.kind, c.name.clone())) {
            let _ = writeln!(out, "      {}", p.paint("36", &impact_line(i)));
        }
        match c.action {
            Action::Create => {
                for line in spec(&c.after).lines() {
                    let _ = writeln!(out, "      {}", p.paint("32", &format!("+ {line}")));
                }
            }
            Action::Update => {
                let (before, after) = (spec(&c.before), spec(&c.after));
                let diff = TextDiff::from_lines(&before, &after);
                for group in diff.grouped_ops(2) {
                    let _ = writeln!(out, "      {}", p.paint("36", "@@"));
                    for op in group {
                        for change in diff.iter_changes(&op) {
                            let line = change.value().trim_end_matches('\n');
                            let (mark, code) = match change.tag() {
                                ChangeTag::Delete => ("-", "31"),
                                ChangeTag::Insert => ("+", "32"),
                                ChangeTag::Equal => (" ", "0"),
                            };
                            let _ =
                                writeln!(out, "      {}", p.paint(code, &format!("{mark} {line}")));
                        }
                    }
                }
                if spec(&c.before) == spec(&c.after) {
                    let _ = writeln!(out, "      (definition unchanged; stored metadata differs)");
                }
            }
            Action::Delete => {
                if c.deletes_protected() {
                    let _ = writeln!(
                        out,
                        "      {}",
                        p.paint(
                            "31",
                            &format!("! protected: deleting it needs `--allow-delete {}`", c.name)
                        )
                    );
                }
            }
        }
        out.push('\n');
    }
    out.push_str(&summary_line(plan));
    out.push('\n');
    out
}

/// `members: 3 → 6 (+4 entering: cus_1, …; -1 leaving: cus_9)`.
pub fn impact_line(i: &Impact) -> String {
    let samples = |n: u64, ids: &[String]| {
        if ids.is_empty() {
            String::new()
        } else {
            let more = if n as usize > ids.len() { ", …" } else { "" };
            format!(": {}{more}", ids.join(", "))
        }
    };
    let reach = if i.communications.is_empty() {
        String::new()
    } else {
        format!("; reached by {}", i.communications.join(", "))
    };
    let unreachable = match i.unreachable {
        Some(n) if n > 0 => format!("; {n} unreachable by email (no email address)"),
        _ => String::new(),
    };
    format!(
        "members: {} → {} (+{} entering{}; -{} leaving{}){reach}{unreachable}",
        i.before,
        i.after,
        i.entering,
        samples(i.entering, &i.sample_entering),
        i.leaving,
        samples(i.leaving, &i.sample_leaving)
    )
}

pub fn json(plan: &Plan, impacts: &Impacts) -> String {
    let doc = PlanDocument::new(plan, impacts);
    // Serialising plain data cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}
