//! What several commands share: reading and validating the tree, resolving the
//! database URL and opening the store.

use super::{CliError, Global};
use crate::diag;
use crate::source::{FsTemplates, load_settings, load_tree};
use crate::store::{Store, connect, connect_existing};
use crate::validate::{Outcome, validate};
use std::io::Write as _;
use std::process::ExitCode;

/// Reads and validates the tree; when invalid, prints the diagnostics to stderr
/// and fails with [`CliError::InvalidDefinitions`].
pub fn valid_tree(global: &Global) -> Result<Outcome, CliError> {
    let tree = load_tree(&global.dir)?;
    let outcome = validate(&tree, &FsTemplates::of(&global.dir, &tree));
    let errors = outcome.errors();
    if errors > 0 || (!global.quiet && !outcome.diagnostics.is_empty()) {
        std::io::stderr()
            .write_all(diag::render_text(&outcome.diagnostics, global.color.stderr()).as_bytes())?;
    }
    if errors > 0 {
        return Err(CliError::InvalidDefinitions(errors));
    }
    Ok(outcome)
}

/// The settings file's view of the tree, for commands that do not need valid
/// definitions; when segd.toml is invalid, prints its diagnostics to stderr.
pub fn file_settings(global: &Global) -> Result<crate::config::FileSettings, CliError> {
    let only_settings = crate::validate::Tree {
        settings: load_settings(&global.dir)?,
        ..Default::default()
    };
    let mut diags = Vec::new();
    let settings = match &only_settings.settings {
        Some(_) => {
            let outcome = validate(
                &only_settings,
                &FsTemplates::of(&global.dir, &only_settings),
            );
            diags = outcome.diagnostics;
            outcome.settings
        }
        None => Default::default(),
    };
    if diags.iter().any(diag::Diagnostic::is_error) {
        std::io::stderr().write_all(diag::render_text(&diags, global.color.stderr()).as_bytes())?;
        return Err(CliError::InvalidSettings);
    }
    Ok(settings)
}

pub fn database_url(global: &Global, settings: &crate::config::FileSettings) -> String {
    crate::config::database_url(
        settings,
        std::env::var("SEGD_DATABASE_URL").ok(),
        global.database_url.clone(),
    )
}

/// Opens the store, which must exist (a command that only reads it never
/// creates one), runs `f` on it, and closes it cleanly (so SQLite folds its
/// write-ahead log back into the database file).
pub async fn with_store(
    url: &str,
    f: impl AsyncFnOnce(&dyn Store) -> Result<ExitCode, CliError>,
) -> Result<ExitCode, CliError> {
    run_closing(connect_existing(url).await?, f).await
}

/// [`with_store`] for the commands meant to create the database when it is
/// missing (`apply`, `db migrate`).
pub async fn with_new_store(
    url: &str,
    f: impl AsyncFnOnce(&dyn Store) -> Result<ExitCode, CliError>,
) -> Result<ExitCode, CliError> {
    run_closing(connect(url).await?, f).await
}

/// Runs `f` on the store and closes it.
pub async fn run_closing(
    store: Box<dyn Store>,
    f: impl AsyncFnOnce(&dyn Store) -> Result<ExitCode, CliError>,
) -> Result<ExitCode, CliError> {
    let result = f(&*store).await;
    store.close().await;
    result
}

/// Who is running this, for the apply lock and history: `user@host (pid N)`.
pub fn holder() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host} (pid {})", std::process::id())
}

/// The git commit checked out in `dir`, when it is a git checkout.
pub fn git_commit(dir: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The process environment, for settings and secrets.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Delivery settings from `segd.toml` and the environment.
pub fn delivery_config(
    global: &Global,
    settings: &crate::config::FileSettings,
) -> Result<crate::config::DeliveryConfig, CliError> {
    let config =
        crate::config::delivery(settings, &global.dir, &env_var).map_err(CliError::Setting)?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(config)
}
