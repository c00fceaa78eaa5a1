//! Definitions as stored: their kind, canonical text and templates, how the
//! desired ones are made from the model and how a stored one reads back.

use crate::canonical;
use crate::model::{Body, Communication, Definitions, Delivery, Email, Name, Segment, Sourced};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Segment,
    Communication,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Communication => "communication",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "segment" => Some(Kind::Segment),
            "communication" => Some(Kind::Communication),
            _ => None,
        }
    }
}

/// A definition as stored: canonical spec text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub kind: Kind,
    pub name: Name,
    /// Canonical TOML.
    pub spec: String,
    /// Path below `--dir`.
    pub source: String,
    pub protect: bool,
    /// The email templates a communication uses, by path: part of what is
    /// reviewed and applied, so a template edit is a change too.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
}

impl Definition {
    /// The canonical spec followed by each template, for diffs.
    pub fn display_text(&self) -> String {
        let mut out = self.spec.clone();
        for (path, text) in &self.templates {
            out.push_str(&format!("\n# ---- template {path} ----\n{text}"));
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// The digest stored with the definition: spec and templates.
    pub fn digest(&self) -> String {
        sha256_hex(&self.display_text())
    }

    /// The definition read back into the model: the one place where canonical
    /// text becomes a segment or a communication again.
    pub fn decode(&self) -> Result<Decoded, Undecodable> {
        let decoded = match self.kind {
            Kind::Segment => crate::validate::stored_segment(&self.spec).map(Decoded::Segment),
            Kind::Communication => {
                crate::validate::stored_communication(&self.spec, &self.templates)
                    .map(Decoded::Communication)
            }
        };
        decoded.map_err(|error| Undecodable {
            kind: self.kind,
            name: self.name.to_string(),
            error,
        })
    }
}

/// A definition read back into the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Segment(Segment),
    Communication(Communication),
}

/// An applied definition that no longer reads back into the model (its row
/// was edited by hand, or a later segd judges it differently).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("the applied {} `{name}` does not read back: {error}; apply it again", .kind.as_str())]
pub struct Undecodable {
    pub kind: Kind,
    pub name: String,
    pub error: String,
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The desired definitions in canonical form; `templates` holds the text of
/// each template file by path (what validation read).
pub fn desired(defs: &Definitions, templates: &BTreeMap<String, String>) -> Vec<Definition> {
    let segments: Vec<&Sourced<Segment>> = defs.segments.values().collect();
    let communications: Vec<&Sourced<Communication>> = defs.communications.values().collect();
    let segments = segments.into_par_iter().map(|s| Definition {
        kind: Kind::Segment,
        name: s.def.name.clone(),
        spec: canonical::segment(&s.def),
        source: s.source.clone(),
        protect: s.def.protect,
        templates: BTreeMap::new(),
    });
    let communications = communications.into_par_iter().map(|c| Definition {
        kind: Kind::Communication,
        name: c.def.name.clone(),
        spec: canonical::communication(&c.def),
        source: c.source.clone(),
        protect: c.def.protect,
        templates: match &c.def.delivery {
            Delivery::Email(Email {
                body: Body::Template(path),
                ..
            }) => templates
                .get(path)
                .map(|t| BTreeMap::from([(path.clone(), t.clone())]))
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        },
    });
    segments.chain(communications).collect()
}
