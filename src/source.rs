//! Reading a definitions tree from disk (SPEC §1). The only file-system code of
//! validation: everything after this works on the texts it returns.

use crate::validate::{SourceFile, TemplateSource, Tree};
use rayon::prelude::*;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("--dir {0}: no such directory")]
    NoDir(String),
}

/// Whether a file name is a definition: `*.toml`, not hidden, not an editor temp file.
pub fn is_definition_file(name: &str) -> bool {
    name.ends_with(".toml")
        && !name.starts_with('.')
        && !name.starts_with('#')
        && !name.ends_with('~')
}

/// The path as the user sees it: `--dir` joined with the path below it.
pub fn display_path(dir: &Path, rel: &str) -> String {
    if dir == Path::new(".") || dir.as_os_str().is_empty() {
        rel.to_string()
    } else {
        dir.join(rel).to_string_lossy().into_owned()
    }
}

/// Loads `segd.toml`, `segments.d/` and `communications.d/` below `dir`.
pub fn load_tree(dir: &Path) -> Result<Tree, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::NoDir(dir.display().to_string()));
    }
    let settings_path = dir.join("segd.toml");
    let settings = if settings_path.is_file() {
        Some(read_file(dir, "segd.toml")?)
    } else {
        None
    };
    let mut unreadable = Vec::new();
    let segments = load_folder(dir, "segments.d", &mut unreadable)?;
    let communications = load_folder(dir, "communications.d", &mut unreadable)?;
    Ok(Tree {
        segments,
        communications,
        settings,
        unreadable,
    })
}

fn read_file(dir: &Path, rel: &str) -> Result<SourceFile, SourceError> {
    let display = display_path(dir, rel);
    let text = std::fs::read_to_string(dir.join(rel)).map_err(|source| SourceError::Read {
        path: display.clone(),
        source,
    })?;
    Ok(SourceFile {
        path: rel.to_string(),
        display,
        text,
    })
}

/// Every definition file below `dir/folder`, recursively, sorted by path; files
/// that are not UTF-8 go to `unreadable` (validation reports them, and the rest
/// is still checked).
fn load_folder(
    dir: &Path,
    folder: &str,
    unreadable: &mut Vec<(String, String)>,
) -> Result<Vec<SourceFile>, SourceError> {
    let mut rels = Vec::new();
    collect(&dir.join(folder), folder, &mut rels)?;
    rels.sort();
    // Thousands of small files: read on every core, kept in path order.
    let read: Vec<Result<SourceFile, SourceError>> =
        rels.par_iter().map(|rel| read_file(dir, rel)).collect();
    let mut files = Vec::new();
    for file in read {
        match file {
            Ok(f) => files.push(f),
            Err(SourceError::Read { path, source })
                if source.kind() == io::ErrorKind::InvalidData =>
            {
                unreadable.push((path, "the file is not valid UTF-8".to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(files)
}

fn collect(path: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), SourceError> {
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SourceError::Read {
                path: path.display().to_string(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = format!("{rel}/{name}");
        // Folders are entered only when they are real folders (a symlinked
        // folder could loop); a symlinked file is read like a file.
        match entry.file_type() {
            Ok(ft) if ft.is_dir() && !name.starts_with('.') => {
                collect(&entry.path(), &child_rel, out)?
            }
            Ok(ft) if ft.is_file() && is_definition_file(&name) => out.push(child_rel),
            Ok(ft)
                if ft.is_symlink()
                    && is_definition_file(&name)
                    && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) =>
            {
                out.push(child_rel)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Templates read from below `--dir`.
pub struct FsTemplates {
    pub dir: PathBuf,
}

impl TemplateSource for FsTemplates {
    fn read(&self, path: &str) -> Result<(String, String), String> {
        let display = display_path(&self.dir, path);
        match std::fs::read_to_string(self.dir.join(path)) {
            Ok(text) => Ok((display, text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err("no such file".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_definition_file;

    #[test]
    fn ignores_hidden_and_temp_files() {
        assert!(is_definition_file("overdue.toml"));
        for n in [
            ".hidden.toml",
            ".#lock.toml",
            "x.toml~",
            ".x.toml.swp",
            "notes.txt",
            "d.toml.bak",
            "#x.toml#",
        ] {
            assert!(!is_definition_file(n), "{n}");
        }
    }
}
