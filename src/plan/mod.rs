//! The planner: desired definitions vs the applied ones → creates, updates and
//! deletes. Pure: the caller reads both sides; rendering is in [`render`].

mod applied;
mod definition;
pub mod render;

pub use applied::{Applied, AppliedState, Version};
pub use definition::{Decoded, Definition, Kind, Undecodable, desired, sha256_hex};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    pub name: String,
    /// The applied definition, for updates and deletes.
    pub before: Option<Definition>,
    /// The desired definition, for creates and updates.
    pub after: Option<Definition>,
}

impl Change {
    /// A delete of a definition the database remembers as protected.
    pub fn deletes_protected(&self) -> bool {
        self.action == Action::Delete && self.before.as_ref().is_some_and(|b| b.protect)
    }
}

/// How a change moves a segment's membership, measured at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    /// Members before the change (0 for a new segment).
    pub before: u64,
    pub after: u64,
    pub entering: u64,
    pub leaving: u64,
    pub sample_entering: Vec<String>,
    pub sample_leaving: Vec<String>,
    /// For a segment: the communications that reach it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communications: Vec<String>,
    /// Members after the change without an email address, whom an email
    /// communication cannot reach (set when one reaches the segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable: Option<u64>,
}

impl Impact {
    /// The relative change in percent; `None` when growing from nothing.
    pub fn change_pct(&self) -> Option<f64> {
        if self.before == 0 {
            return (self.after == 0).then_some(0.0);
        }
        Some((self.after as f64 - self.before as f64).abs() * 100.0 / self.before as f64)
    }
}

/// Impacts by changed definition.
pub type Impacts = BTreeMap<(Kind, String), Impact>;

/// Every change needed to make the database hold the desired definitions, and
/// the version of the applied state it was made against (`AppliedState::version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Saved plans call it their `fingerprint`.
    pub made_against: Version,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    /// Whether it deletes every one of the `applied` definitions (those of
    /// them it may not delete, `kept`, aside): what a plan made from the wrong
    /// folder does.
    pub fn deletes_all(&self, applied: usize, kept: usize) -> bool {
        let deletes = self.count(Action::Delete);
        deletes > 0 && deletes + kept >= applied
    }

    /// Protected deletes not allowed by `--allow-delete`.
    pub fn blocked<'a>(&'a self, allow_delete: &[String]) -> Vec<&'a Change> {
        self.changes
            .iter()
            .filter(|c| c.deletes_protected() && !allow_delete.contains(&c.name))
            .collect()
    }
}
/// Compares desired and applied definitions. Drift (an applied row whose spec,
/// hash, source or protection differs from the desired one) is an update.
pub fn diff(desired: &[Definition], applied: &AppliedState) -> Plan {
    let actual: BTreeMap<(Kind, &str), &Applied> = applied
        .rows
        .iter()
        .map(|a| ((a.def.kind, a.def.name.as_str()), a))
        .collect();
    let wanted: BTreeMap<(Kind, &str), &Definition> = desired
        .iter()
        .map(|d| ((d.kind, d.name.as_str()), d))
        .collect();
    let mut changes = Vec::new();
    for (key, d) in &wanted {
        match actual.get(key) {
            None => changes.push(Change {
                action: Action::Create,
                kind: d.kind,
                name: d.name.to_string(),
                before: None,
                after: Some((*d).clone()),
            }),
            Some(a) if a.def != **d || a.hash != a.def.digest() => changes.push(Change {
                action: Action::Update,
                kind: d.kind,
                name: d.name.to_string(),
                before: Some(a.def.clone()),
                after: Some((*d).clone()),
            }),
            Some(_) => {}
        }
    }
    for (key, a) in &actual {
        if !wanted.contains_key(key) {
            changes.push(Change {
                action: Action::Delete,
                kind: a.def.kind,
                name: a.def.name.to_string(),
                before: Some(a.def.clone()),
                after: None,
            });
        }
    }
    // Segments before the communications that use them; deletes in reverse.
    changes.sort_by_key(|c| {
        let order = match (c.action, c.kind) {
            (Action::Delete, Kind::Communication) => 2,
            (Action::Delete, Kind::Segment) => 3,
            (_, Kind::Segment) => 0,
            (_, Kind::Communication) => 1,
        };
        (order, c.name.clone())
    });
    Plan {
        changes,
        made_against: applied.version.clone(),
    }
}

/// A daemon's plan: like [`diff`], but it never deletes what a degraded file
/// defined (the last applied version stays) nor a protected definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconcile {
    pub plan: Plan,
    /// Applied definitions kept because their file is invalid.
    pub kept: Vec<(Kind, String)>,
    /// Protected definitions whose delete needs `segd apply --allow-delete`.
    pub blocked: Vec<(Kind, String)>,
}

/// `degraded` lists (kind, file below `--dir`, declared name) of left-out files;
/// a folder there stands for every file below it.
pub fn reconcile(
    desired: &[Definition],
    applied: &AppliedState,
    degraded: &[(Kind, String, Option<String>)],
) -> Reconcile {
    let mut plan = diff(desired, applied);
    let mut kept = Vec::new();
    let mut blocked = Vec::new();
    plan.changes.retain(|c| {
        if c.action != Action::Delete {
            return true;
        }
        let Some(before) = &c.before else { return true };
        let from_degraded = degraded.iter().any(|(kind, file, name)| {
            *kind == c.kind
                && (Path::new(&before.source).starts_with(file)
                    || name.as_deref() == Some(c.name.as_str()))
        });
        if from_degraded {
            kept.push((c.kind, c.name.clone()));
            false
        } else if before.protect {
            blocked.push((c.kind, c.name.clone()));
            false
        } else {
            true
        }
    });
    Reconcile {
        plan,
        kept,
        blocked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Name;

    #[test]
    fn a_plan_deleting_every_applied_definition_is_told() {
        let a = def(Kind::Segment, "a", "x");
        let b = def(Kind::Segment, "b", "y");
        let two = state(vec![applied(&a), applied(&b)]);
        let none = diff(&[], &two);
        assert!(none.deletes_all(2, 0));
        let one_left = diff(std::slice::from_ref(&a), &two);
        assert!(!one_left.deletes_all(2, 0));
        // The one left is one the daemon may not delete.
        assert!(one_left.deletes_all(2, 1));
        assert!(!diff(&[], &state(Vec::new())).deletes_all(0, 0));
    }

    fn def(kind: Kind, name: &str, spec: &str) -> Definition {
        Definition {
            kind,
            name: Name::parse(name).expect("a valid name"),
            spec: spec.into(),
            source: format!("{}s.d/{name}.toml", kind.as_str()),
            protect: false,
            templates: BTreeMap::new(),
        }
    }

    fn applied(d: &Definition) -> Applied {
        Applied::new(d.clone(), d.digest())
    }

    fn state(rows: Vec<Applied>) -> AppliedState {
        AppliedState {
            rows,
            version: Version::from("test:1".to_string()),
        }
    }

    #[test]
    fn applied_names_are_those_of_one_kind() {
        let applied = state(vec![
            applied(&def(Kind::Segment, "de", "x")),
            applied(&def(Kind::Communication, "nudge", "y")),
            applied(&def(Kind::Communication, "remind", "z")),
        ]);
        let names: Vec<&str> = applied.names(Kind::Communication).collect();
        assert_eq!(names, ["nudge", "remind"]);
        assert_eq!(applied.names(Kind::Segment).collect::<Vec<_>>(), ["de"]);
    }

    #[test]
    fn creates_updates_deletes_in_dependency_order() {
        let keep = def(Kind::Segment, "keep", "a");
        let old = def(Kind::Segment, "old", "x");
        let old_comm = def(Kind::Communication, "old-c", "y");
        let changed = def(Kind::Segment, "changed", "b");
        let desired = vec![
            keep.clone(),
            def(Kind::Communication, "new-c", "c"),
            def(Kind::Segment, "new", "d"),
            def(Kind::Segment, "changed", "b2"),
        ];
        let plan = diff(
            &desired,
            &state(vec![
                applied(&keep),
                applied(&old),
                applied(&old_comm),
                applied(&changed),
            ]),
        );
        let got: Vec<(Action, &str)> = plan
            .changes
            .iter()
            .map(|c| (c.action, c.name.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Action::Update, "changed"),
                (Action::Create, "new"),
                (Action::Create, "new-c"),
                (Action::Delete, "old-c"),
                (Action::Delete, "old"),
            ]
        );
    }

    #[test]
    fn no_changes_when_equal_and_drift_is_an_update() {
        let d = def(Kind::Segment, "s", "spec");
        assert!(diff(std::slice::from_ref(&d), &state(vec![applied(&d)])).is_empty());
        let mut drifted = applied(&d);
        drifted.hash = "edited".into();
        assert_eq!(
            diff(std::slice::from_ref(&d), &state(vec![drifted])).count(Action::Update),
            1
        );
    }

    #[test]
    fn protected_deletes_are_blocked_unless_allowed() {
        let mut d = def(Kind::Segment, "s", "spec");
        d.protect = true;
        let plan = diff(&[], &state(vec![applied(&d)]));
        assert_eq!(plan.blocked(&[]).len(), 1);
        assert!(plan.blocked(&["s".to_string()]).is_empty());
    }

    #[test]
    fn reconcile_keeps_degraded_and_protected_definitions() {
        let broken = def(Kind::Segment, "broken", "old");
        let mut guarded = def(Kind::Segment, "guarded", "g");
        guarded.protect = true;
        let gone = def(Kind::Segment, "gone", "x");
        let applied = state(vec![applied(&broken), applied(&guarded), applied(&gone)]);
        let degraded = [(Kind::Segment, broken.source.clone(), None)];
        let r = reconcile(&[], &applied, &degraded);
        let names: Vec<&str> = r.plan.changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["gone"]);
        assert_eq!(r.kept, [(Kind::Segment, "broken".to_string())]);
        assert_eq!(r.blocked, [(Kind::Segment, "guarded".to_string())]);
    }

    #[test]
    fn reconcile_keeps_every_definition_below_a_degraded_folder() {
        let mut a = def(Kind::Segment, "a", "x");
        a.source = "segments.d/team/a.toml".into();
        let mut b = def(Kind::Segment, "b", "x");
        b.source = "segments.dx/b.toml".into();
        let mut c = def(Kind::Communication, "c", "x");
        c.source = "communications.d/c.toml".into();
        let applied = state(vec![applied(&a), applied(&b), applied(&c)]);
        let degraded = [(Kind::Segment, "segments.d".to_string(), None)];
        let r = reconcile(&[], &applied, &degraded);
        let names: Vec<&str> = r.plan.changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["c", "b"],
            "only what lies below the folder, of its kind"
        );
        assert_eq!(r.kept, [(Kind::Segment, "a".to_string())]);
    }
}
