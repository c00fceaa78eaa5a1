//! Reading a definitions tree from disk (SPEC §1). The only file-system code of
//! validation: everything after this works on the texts it returns.

use crate::config::DEFAULT_MAX_FILE_BYTES;
use crate::validate::{SourceFile, TemplateSource, Tree, Unreadable, file_settings};
use rayon::prelude::*;
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use std::fs::FileType;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: FileError,
    },
    #[error("--dir {0}: no such directory")]
    NoDir(String),
    #[error("--dir {0} holds neither segments.d/ nor communications.d/")]
    NoDefinitions(String),
}

/// Why a file of the tree is not read. The messages name the file (and the link
/// that leads out of the tree), never its content.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("no such file")]
    NotFound,
    #[error("`{link}` is a link to `{target}`, outside the definitions folder")]
    Outside { link: String, target: String },
    #[error("`{link}` is a link to `{target}`, which does not exist")]
    Dangling { link: String, target: String },
    #[error("`{path}` is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
    #[error("`{path}` is larger than {limit} bytes (`max_file_bytes` in segd.toml)")]
    TooLarge { path: String, limit: u64 },
    #[error("the file is not valid UTF-8")]
    NotUtf8,
    #[error(transparent)]
    Io(io::Error),
}

impl FileError {
    /// The error, reported at the file `path` below `--dir`, shown as `display`.
    fn at(&self, path: &str, display: String) -> Unreadable {
        Unreadable {
            path: path.to_string(),
            display,
            why: self.to_string(),
            help: self.help(),
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> &'static str {
        match self {
            Self::NotUtf8 => "save it as UTF-8",
            Self::TooLarge { .. } => "split it, or raise `max_file_bytes` (at most 64 MiB)",
            Self::NotFound | Self::Io(_) => "paths are relative to `--dir`",
            Self::Outside { .. } | Self::Dangling { .. } | Self::NotRegular { .. } => {
                "segd reads only regular files inside `--dir` (a link may point to one)"
            }
        }
    }
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

/// The definitions folder as given (for the paths shown) and resolved (for the
/// check that a file stays inside it).
struct Root<'a> {
    dir: &'a Path,
    resolved: PathBuf,
    /// The most a file may hold.
    limit: u64,
}

impl<'a> Root<'a> {
    fn new(dir: &'a Path, limit: u64) -> Result<Self, SourceError> {
        match dir.canonicalize() {
            Ok(resolved) if resolved.is_dir() => Ok(Self {
                dir,
                resolved,
                limit,
            }),
            _ => Err(SourceError::NoDir(dir.display().to_string())),
        }
    }

    /// The text of the file at `rel` below the folder: only a regular file that
    /// resolves inside the folder (through links or not), of at most `limit`
    /// bytes. Never blocks on a FIFO or a device.
    fn read(&self, rel: &str) -> Result<String, FileError> {
        let real = self.resolve(rel)?;
        let bytes = read_resolved(&real, &self.resolved, self.limit).map_err(|e| match e {
            Capped::NotRegular(kind) => FileError::NotRegular {
                path: display_path(self.dir, rel),
                kind,
            },
            Capped::TooLarge => FileError::TooLarge {
                path: display_path(self.dir, rel),
                limit: self.limit,
            },
            Capped::Moved(target) => FileError::Outside {
                link: display_path(self.dir, rel),
                target: target.to_string_lossy().into_owned(),
            },
            Capped::Io(e) => FileError::Io(e),
        })?;
        String::from_utf8(bytes).map_err(|_| FileError::NotUtf8)
    }

    /// Where `rel` leads, when that is inside the folder.
    fn resolve(&self, rel: &str) -> Result<PathBuf, FileError> {
        let path = self.resolved.join(rel);
        let real = match path.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(match self.link_out(rel, |p| !p.exists()) {
                    Some((link, target)) => FileError::Dangling { link, target },
                    None => FileError::NotFound,
                });
            }
            Err(e) => return Err(FileError::Io(e)),
        };
        if !real.starts_with(&self.resolved) {
            let (link, target) = self
                .link_out(rel, |p| {
                    p.canonicalize()
                        .is_ok_and(|r| !r.starts_with(&self.resolved))
                })
                .unwrap_or_else(|| {
                    (
                        display_path(self.dir, rel),
                        real.to_string_lossy().into_owned(),
                    )
                });
            return Err(FileError::Outside { link, target });
        }
        Ok(real)
    }

    /// The first link on the way to `rel` whose target `bad` picks, shown as
    /// the link's path and what it points to.
    fn link_out(&self, rel: &str, bad: impl Fn(&Path) -> bool) -> Option<(String, String)> {
        let mut prefix = PathBuf::new();
        for part in Path::new(rel).components() {
            prefix.push(part);
            let path = self.resolved.join(&prefix);
            let is_link = path.symlink_metadata().is_ok_and(|m| m.is_symlink());
            if is_link && bad(&path) {
                let target = std::fs::read_link(&path).ok()?;
                return Some((
                    display_path(self.dir, &prefix.to_string_lossy()),
                    target.to_string_lossy().into_owned(),
                ));
            }
        }
        None
    }
}

/// Why a capped read did not read a file.
#[derive(Debug)]
pub enum Capped {
    /// What the file is instead (`a FIFO`, `a folder`, …).
    NotRegular(&'static str),
    TooLarge,
    /// The file opened is not below the folder it was resolved in (a folder
    /// on its path was swapped for a link after it was resolved): where it is.
    Moved(PathBuf),
    Io(io::Error),
}

/// Reads a file given by the user outside the tree (a saved plan), through
/// links: a regular file or a pipe (`segd apply <(…)`), never more than
/// `limit` + 1 bytes of it. A FIFO with no writer reads as empty.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, Capped> {
    // Opened without blocking (a FIFO with no writer, a device), then a pipe
    // is read blocking, until its writer is done.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(Capped::Io)?;
    let ft = file.metadata().map_err(Capped::Io)?.file_type();
    if ft.is_fifo() {
        let flags = fcntl_getfl(&file).map_err(|e| Capped::Io(e.into()))?;
        fcntl_setfl(&file, flags - OFlags::NONBLOCK).map_err(|e| Capped::Io(e.into()))?;
    } else {
        check_regular(ft)?;
    }
    read_to_cap(file, limit)
}

/// Reads the regular file at `path`, resolved (no link in it) inside the
/// folder `root`, of at most `limit` bytes. It is opened without blocking and
/// without following a link put in its last part, and read no further than
/// `limit` + 1 bytes: a FIFO or device swapped in is refused, not waited on.
/// Where `/proc` is mounted (Linux), the file opened is checked to still lie
/// below `root`, so a folder on the path swapped for a link out of the tree
/// after it was resolved is refused too.
fn read_resolved(path: &Path, root: &Path, limit: u64) -> Result<Vec<u8>, Capped> {
    let meta = std::fs::metadata(path).map_err(Capped::Io)?;
    check_regular(meta.file_type())?;
    if meta.len() > limit {
        return Err(Capped::TooLarge);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(Capped::Io)?;
    if let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        && !opened.starts_with(root)
    {
        return Err(Capped::Moved(opened));
    }
    check_regular(file.metadata().map_err(Capped::Io)?.file_type())?;
    read_to_cap(file, limit)
}

/// At most `limit` bytes of `file`; more is [`Capped::TooLarge`].
fn read_to_cap(file: std::fs::File, limit: u64) -> Result<Vec<u8>, Capped> {
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(Capped::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Capped::TooLarge);
    }
    Ok(bytes)
}

fn check_regular(ft: FileType) -> Result<(), Capped> {
    let kind = if ft.is_file() {
        return Ok(());
    } else if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a file"
    };
    Err(Capped::NotRegular(kind))
}

/// Loads `segd.toml`, `segments.d/` and `communications.d/` below `dir`; the
/// definition files are capped at `max_file_bytes` from `segd.toml` (itself
/// capped at the default).
pub fn load_tree(dir: &Path) -> Result<Tree, SourceError> {
    let mut root = Root::new(dir, DEFAULT_MAX_FILE_BYTES)?;
    let settings = read_settings(&root)?;
    root.limit = settings
        .as_ref()
        .and_then(|f| file_settings(f).max_file_bytes)
        .unwrap_or(DEFAULT_MAX_FILE_BYTES);
    let mut unreadable = Vec::new();
    let segments = load_folder(&root, "segments.d", &mut unreadable)?;
    let communications = load_folder(&root, "communications.d", &mut unreadable)?;
    if segments.is_none() && communications.is_none() {
        return Err(SourceError::NoDefinitions(dir.display().to_string()));
    }
    Ok(Tree {
        segments: segments.unwrap_or_default(),
        communications: communications.unwrap_or_default(),
        settings,
        unreadable,
        read_at: Some(chrono::Utc::now()),
        max_file_bytes: root.limit,
    })
}

/// `segd.toml` below `dir` (`None` when there is none), for the commands that
/// need only the settings.
pub fn load_settings(dir: &Path) -> Result<Option<SourceFile>, SourceError> {
    read_settings(&Root::new(dir, DEFAULT_MAX_FILE_BYTES)?)
}

fn read_settings(root: &Root<'_>) -> Result<Option<SourceFile>, SourceError> {
    let dir = root.dir;
    Ok(match root.read("segd.toml") {
        Ok(text) => Some(SourceFile {
            path: "segd.toml".into(),
            display: display_path(dir, "segd.toml"),
            text,
        }),
        Err(FileError::NotFound) => None,
        Err(source) => {
            return Err(SourceError::Read {
                path: display_path(dir, "segd.toml"),
                source,
            });
        }
    })
}

/// Every definition file below `dir/folder`, recursively, sorted by path
/// (`None` when there is no such folder); files that cannot be read as text,
/// or the folder itself, go to `unreadable` (validation reports them at the
/// file, and the rest is still checked).
fn load_folder(
    root: &Root<'_>,
    folder: &str,
    unreadable: &mut Vec<Unreadable>,
) -> Result<Option<Vec<SourceFile>>, SourceError> {
    // The folder itself may be a link, as long as it stays inside the tree.
    let real = match root.resolve(folder) {
        Ok(real) => real,
        Err(FileError::NotFound) => return Ok(None),
        Err(e) => {
            unreadable.push(e.at(folder, display_path(root.dir, folder)));
            return Ok(Some(Vec::new()));
        }
    };
    let mut rels = Vec::new();
    collect(&real, folder, &mut rels)?;
    rels.sort();
    // Thousands of small files: read on every core, kept in path order.
    let read: Vec<_> = rels.par_iter().map(|rel| (rel, root.read(rel))).collect();
    let mut files = Vec::new();
    for (rel, text) in read {
        let display = display_path(root.dir, rel);
        match text {
            Ok(text) => files.push(SourceFile {
                path: rel.clone(),
                display,
                text,
            }),
            Err(e) => unreadable.push(e.at(rel, display)),
        }
    }
    Ok(Some(files))
}

fn collect(path: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), SourceError> {
    let listing_error = |source| SourceError::Read {
        path: path.display().to_string(),
        source: FileError::Io(source),
    };
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(listing_error(source)),
    };
    for entry in entries {
        let entry = entry.map_err(listing_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = format!("{rel}/{name}");
        // Folders are entered only when they are real folders (a symlinked
        // folder could loop); anything else with a definition's name is read,
        // and reading refuses what is not a regular file inside the tree.
        match entry.file_type() {
            Ok(ft) if ft.is_dir() && !name.starts_with('.') => {
                collect(&entry.path(), &child_rel, out)?
            }
            Ok(ft) if !ft.is_dir() && is_definition_file(&name) => out.push(child_rel),
            _ => {}
        }
    }
    Ok(())
}

/// Templates read from below `--dir`, with the same rules as definition files.
pub struct FsTemplates {
    pub dir: PathBuf,
    pub max_file_bytes: u64,
}

impl FsTemplates {
    /// The templates of a tree read from `dir`, with its `max_file_bytes`.
    pub fn of(dir: &Path, tree: &Tree) -> Self {
        Self {
            dir: dir.to_path_buf(),
            max_file_bytes: tree.max_file_bytes,
        }
    }
}

impl TemplateSource for FsTemplates {
    fn read(&self, path: &str) -> Result<(String, String), String> {
        let root = Root::new(&self.dir, self.max_file_bytes).map_err(|e| e.to_string())?;
        let text = root.read(path).map_err(|e| e.to_string())?;
        Ok((display_path(&self.dir, path), text))
    }
}

#[cfg(test)]
mod tests {
    use super::{Capped, is_definition_file, read_resolved};

    #[test]
    fn a_folder_swapped_for_a_link_out_after_resolving_is_refused() {
        let tree = tempfile::tempdir().expect("tree");
        let outside = tempfile::tempdir().expect("outside");
        std::fs::write(outside.path().join("x.toml"), "secret").expect("write");
        let root = tree.path().canonicalize().expect("root");
        // `segments.d/x.toml` was resolved while segments.d was a real folder;
        // by the time it is opened, segments.d is a link out of the tree.
        std::os::unix::fs::symlink(outside.path(), root.join("segments.d")).expect("link");
        let got = read_resolved(&root.join("segments.d/x.toml"), &root, 1024);
        assert!(matches!(got, Err(Capped::Moved(_))), "{got:?}");
        std::fs::write(root.join("in.toml"), "ok").expect("write");
        let got = read_resolved(&root.join("in.toml"), &root, 1024);
        assert_eq!(got.ok().as_deref(), Some(&b"ok"[..]));
    }

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
