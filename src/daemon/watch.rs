//! Watching the definition folders: editor save patterns and a `git checkout`
//! of many files arrive as one debounced batch, which wakes one reconcile.

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer_opt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub type Watcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

/// Whether a changed path can change the definitions.
fn relevant(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut parts = rel.components();
    match parts.next().and_then(|c| c.as_os_str().to_str()) {
        Some("segments.d" | "communications.d" | "templates") => true,
        Some("segd.toml") => parts.next().is_none(),
        _ => false,
    }
}

/// Starts watching `dir`; each debounced batch touching definitions calls `wake`.
pub fn start(dir: &Path, debounce: Duration, wake: Arc<Notify>) -> notify::Result<Watcher> {
    let root: PathBuf = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let filter_root = root.clone();
    let handler = move |res: DebounceEventResult| {
        if let Ok(events) = res
            && events.iter().any(|e| {
                // notify 8 also reports opens and reads (inotify IN_OPEN,
                // IN_CLOSE_NOWRITE): the reconcile's own reads must not wake it.
                !e.kind.is_access() && e.paths.iter().any(|p| relevant(&filter_root, p))
            })
        {
            wake.notify_one();
        }
    };
    // Links are not followed: a folder link out of the tree (`templates/usr ->
    // /usr`) would otherwise put a watch on every folder below its target.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut debouncer = new_debouncer_opt::<_, notify::RecommendedWatcher, _>(
        debounce,
        None,
        handler,
        RecommendedCache::new(),
        config,
    )?;
    debouncer.watch(&root, RecursiveMode::Recursive)?;
    Ok(debouncer)
}

#[cfg(test)]
mod tests {
    use super::relevant;
    use std::path::Path;

    #[test]
    fn only_definition_paths_matter() {
        let root = Path::new("/defs");
        assert!(relevant(root, Path::new("/defs/segments.d/a.toml")));
        assert!(relevant(root, Path::new("/defs/communications.d/x/y.toml")));
        assert!(relevant(root, Path::new("/defs/templates/r.txt")));
        assert!(relevant(root, Path::new("/defs/segd.toml")));
        assert!(!relevant(root, Path::new("/defs/segd.db-wal")));
        assert!(!relevant(root, Path::new("/defs/outbox/x.eml")));
        assert!(!relevant(root, Path::new("/elsewhere/segments.d/a.toml")));
    }
}
