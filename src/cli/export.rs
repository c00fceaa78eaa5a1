use super::context::{database_url, file_settings, with_store};
use super::{CliError, Global, exit};
use crate::plan::Kind;
use crate::store::Store;
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The folder to write segments.d/ and communications.d/ into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
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

pub async fn run(global: &Global, args: ExportArgs) -> Result<ExitCode, CliError> {
    let settings = file_settings(global)?;
    with_store(&database_url(global, &settings), async |store| {
        export(store, &args).await
    })
    .await
}

async fn export(store: &dyn Store, args: &ExportArgs) -> Result<ExitCode, CliError> {
    let applied = store.applied().await?;
    let mut written = std::collections::BTreeSet::new();
    for a in &applied.rows {
        let mut rel = target(a.def.kind, a.def.name.as_str(), &a.def.source);
        if !written.insert(rel.clone()) {
            rel = target(a.def.kind, a.def.name.as_str(), "");
            written.insert(rel.clone());
        }
        write(&args.out, &rel, &a.def.spec)?;
        for (path, text) in &a.def.templates {
            // Validation only accepts relative paths that stay inside the tree.
            if !path.starts_with('/') && !path.split('/').any(|p| p == "..") {
                write(&args.out, path, text)?;
            }
        }
    }
    eprintln!(
        "Exported {} definition(s) to {}.",
        applied.rows.len(),
        args.out.display()
    );
    Ok(exit::ok())
}

fn write(root: &Path, rel: &str, text: &str) -> Result<(), CliError> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| CliError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(&path, text).map_err(|source| CliError::Write { path, source })
}
