//! The applied side of a plan: the stored rows, decoded on first use, and the
//! version of the applied state a plan is made against.

use super::{Decoded, Definition, Kind, Undecodable};
use crate::model::{Communication, CustomDataKey, Segment};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A row of `segd_definitions`, as read back (its hash may have drifted),
/// decoded into the model when first asked for, once.
#[derive(Debug, Clone)]
pub struct Applied {
    pub def: Definition,
    pub hash: String,
    decoded: std::sync::OnceLock<Result<Decoded, Undecodable>>,
}

impl Applied {
    pub fn new(def: Definition, hash: String) -> Self {
        Self {
            def,
            hash,
            decoded: std::sync::OnceLock::new(),
        }
    }

    /// The definition in the model (decoded on first use).
    pub fn decoded(&self) -> Result<&Decoded, Undecodable> {
        self.decoded
            .get_or_init(|| self.def.decode())
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl PartialEq for Applied {
    fn eq(&self, other: &Self) -> bool {
        self.def == other.def && self.hash == other.hash
    }
}

/// A version of the applied definitions, `lineage:revision`: the store's
/// lineage and a revision every change of the applied rows (out-of-band edits
/// too) increments. A plan records the one it was made against, and applies
/// only while it is still the store's.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(String);

impl Version {
    /// The version of a plan made when its database did not exist yet (against
    /// an empty one): it still holds for a database nothing was ever applied
    /// to, whatever its lineage.
    pub fn new_database() -> Self {
        Version("new:0".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a plan made against this version still holds for the applied
    /// state at `current`.
    pub fn holds_for(&self, current: &Version) -> bool {
        self == current || (*self == Self::new_database() && current.0.ends_with(":0"))
    }
}

impl From<String> for Version {
    fn from(s: String) -> Self {
        Version(s)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The applied definitions, and which version of them they are: the store's
/// lineage and revision (every change of the applied rows, out-of-band edits
/// too, makes a new version). A plan records the version it was made against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppliedState {
    pub rows: Vec<Applied>,
    pub version: Version,
}

impl AppliedState {
    fn find(&self, kind: Kind, name: &str) -> Option<&Applied> {
        self.of_kind(kind).find(|a| a.def.name == name)
    }

    /// The custom_data keys the applied segments compare (a row that does
    /// not decode compares none).
    pub fn custom_data_keys(&self) -> BTreeSet<CustomDataKey> {
        self.of_kind(Kind::Segment)
            .filter_map(|a| match a.decoded() {
                Ok(Decoded::Segment(seg)) => Some(seg),
                Ok(Decoded::Communication(_)) | Err(_) => None,
            })
            .flat_map(|seg| seg.filters.iter().flat_map(|f| f.custom_data.keys()))
            .cloned()
            .collect()
    }

    /// The applied rows of one kind, in the order read.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Applied> {
        self.rows.iter().filter(move |a| a.def.kind == kind)
    }

    /// The names of the applied definitions of one kind (what a did-you-mean
    /// chooses from), in the order read.
    pub fn names(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.of_kind(kind).map(|a| a.def.name.as_str())
    }

    /// The applied segment `name`, if there is one.
    pub fn segment(&self, name: &str) -> Result<Option<&Segment>, Undecodable> {
        match self.find(Kind::Segment, name).map(Applied::decoded) {
            Some(Ok(Decoded::Segment(s))) => Ok(Some(s)),
            Some(Err(e)) => Err(e),
            Some(Ok(Decoded::Communication(_))) | None => Ok(None),
        }
    }

    /// The applied communication `name`, if there is one.
    pub fn communication(&self, name: &str) -> Result<Option<&Communication>, Undecodable> {
        match self.find(Kind::Communication, name).map(Applied::decoded) {
            Some(Ok(Decoded::Communication(c))) => Ok(Some(c)),
            Some(Err(e)) => Err(e),
            Some(Ok(Decoded::Segment(_))) | None => Ok(None),
        }
    }

    /// Every applied communication, in name order, or why it does not read back.
    pub fn communications(&self) -> impl Iterator<Item = Result<&Communication, Undecodable>> {
        self.of_kind(Kind::Communication)
            .filter_map(|a| match a.decoded() {
                Ok(Decoded::Communication(c)) => Some(Ok(c)),
                Ok(Decoded::Segment(_)) => None,
                Err(e) => Some(Err(e)),
            })
    }
}
