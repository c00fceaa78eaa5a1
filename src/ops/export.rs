//! Writing the applied definitions back as files (`segd export`): each
//! definition's text as applied, at its recorded source when that is a plain
//! path in its kind's folder, and its templates beside it; `validate` then
//! `plan` on the result shows no changes.

use crate::plan::Kind;
use crate::store::{Store, StoreError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes every applied definition, and its templates, below `out`; returns
/// how many definitions it wrote.
pub async fn export(store: &dyn Store, out: &Path) -> Result<usize, ExportError> {
    let applied = store.applied().await?;
    let mut written = BTreeSet::new();
    for a in &applied.rows {
        let mut rel = target(a.def.kind, a.def.name.as_str(), &a.def.source);
        if !written.insert(rel.clone()) {
            rel = target(a.def.kind, a.def.name.as_str(), "");
            written.insert(rel.clone());
        }
        write(out, &rel, &a.def.spec)?;
        for (path, text) in &a.def.templates {
            // Validation only accepts relative paths that stay inside the tree.
            if !path.starts_with('/') && !path.split('/').any(|p| p == "..") {
                write(out, path, text)?;
            }
        }
    }
    Ok(applied.rows.len())
}

/// Where an applied definition is written: its recorded source when that is a
/// plain path in its kind's folder, else `<folder>/<name>.toml`.
fn target(kind: Kind, name: &str, source: &str) -> String {
    let folder = match kind {
        Kind::Segment => "segments.d",
        Kind::Communication => "communications.d",
    };
    let plain = source.starts_with(&format!("{folder}/"))
        && source.ends_with(".toml")
        && !source
            .split('/')
            .any(|p| p.is_empty() || p == ".." || p.starts_with('.'));
    if plain {
        source.to_string()
    } else {
        format!("{folder}/{name}.toml")
    }
}

fn write(root: &Path, rel: &str, text: &str) -> Result<(), ExportError> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ExportError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(&path, text).map_err(|source| ExportError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_goes_back_to_its_plain_source_or_to_its_name() {
        let cases = [
            (
                Kind::Segment,
                "segments.d/team/de.toml",
                "segments.d/team/de.toml",
            ),
            (
                Kind::Segment,
                "communications.d/de.toml",
                "segments.d/de.toml",
            ),
            (Kind::Segment, "segments.d/../de.toml", "segments.d/de.toml"),
            (
                Kind::Segment,
                "segments.d/.hidden.toml",
                "segments.d/de.toml",
            ),
            (Kind::Segment, "segments.d//de.toml", "segments.d/de.toml"),
            (Kind::Communication, "", "communications.d/de.toml"),
            (
                Kind::Communication,
                "communications.d/de.yaml",
                "communications.d/de.toml",
            ),
        ];
        for (kind, source, expected) in cases {
            assert_eq!(target(kind, "de", source), expected, "{source}");
        }
    }
}
