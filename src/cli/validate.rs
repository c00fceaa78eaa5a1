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
    let tree = match load_tree(&global.dir) {
        Ok(tree) => tree,
        Err(e) => {
            // A program reading the output gets a document saying why.
            let why = crate::error::chain(&e);
            match args.format {
                Format::Text => {}
                Format::Json => out!("{}", diag::render_json_unchecked(&why))?,
                Format::Github => out!("{}", diag::render_github_unchecked(&why))?,
            }
            return Err(e.into());
        }
    };
    let templates = FsTemplates::of(&global.dir, &tree);
    let outcome = crate::validate::validate(&tree, &templates);
    let out = match args.format {
        Format::Text => {
            let color = global.color.stdout();
            let mut s = diag::render_text(&outcome.diagnostics, color);
            let errors = outcome.errors();
            let warnings = outcome.diagnostics.len() - errors;
            if !global.quiet || errors > 0 {
                let verdict = if errors == 0 {
                    diag::Paint(color).paint("1;32", "valid")
                } else {
                    diag::Paint(color).paint("1;31", "invalid")
                };
                s.push_str(&format!(
                    "{verdict}: {} segment(s), {} communication(s) in {} file(s); {errors} error(s), {warnings} warning(s)\n",
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
