use super::{CliError, Global, exit};
use crate::diag;
use crate::source::{FsTemplates, load_tree};
use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Github,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Output format: text, json (one document) or github (workflow annotations).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(global: &Global, args: ValidateArgs) -> Result<ExitCode, CliError> {
    let tree = load_tree(&global.dir)?;
    let templates = FsTemplates::of(&global.dir, &tree);
    let outcome = crate::validate::validate(&tree, &templates);
    let out = match args.format {
        Format::Text => {
            let mut s = diag::render_text(&outcome.diagnostics);
            let errors = outcome.errors();
            let warnings = outcome.diagnostics.len() - errors;
            if !global.quiet || errors > 0 {
                s.push_str(&format!(
                    "{}: {} segment(s), {} communication(s) in {} file(s); {errors} error(s), {warnings} warning(s)\n",
                    if errors == 0 { "valid" } else { "invalid" },
                    outcome.definitions.segments.len(),
                    outcome.definitions.communications.len(),
                    outcome.files_checked,
                ));
            }
            s
        }
        Format::Json => diag::render_json(&outcome.diagnostics, outcome.files_checked),
        Format::Github => diag::render_github(&outcome.diagnostics),
    };
    out!("{out}")?;
    Ok(if outcome.is_valid() {
        exit::ok()
    } else {
        exit::problem()
    })
}
