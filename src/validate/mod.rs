//! Definition files → validated model, with every diagnostic collected.
//!
//! Pure: the caller hands in file contents and a way to read templates; nothing
//! here touches the file system or prints.

mod communication;
mod reader;
mod segment;
mod settings;
pub mod template;

use crate::config::FileSettings;
use crate::diag::{self, Diagnostic, Severity, SourceText};
use crate::model::{Definitions, Name, Sourced};
use crate::plan::Kind;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};

pub use template::{TEMPLATE_VARIABLES, TemplateSource};

/// One definition file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path below `--dir`, with `/` separators (what the database records).
    pub path: String,
    /// The path as shown to the user (`--dir` joined with `path`).
    pub display: String,
    pub text: String,
}

/// The files of a definitions tree.
#[derive(Debug, Clone)]
pub struct Tree {
    pub segments: Vec<SourceFile>,
    pub communications: Vec<SourceFile>,
    pub settings: Option<SourceFile>,
    /// Definition files that could not be read as text.
    pub unreadable: Vec<Unreadable>,
    /// When the files were read: a schedule must fire within 5 years of it
    /// (`None`, the default: no schedule's dates are judged). The edge that
    /// reads the files hands in its clock's time; validation reads no clock.
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The most a definition file or template may hold (`max_file_bytes`).
    pub max_file_bytes: u64,
}

/// An empty tree with the default file cap, judging no schedule's dates.
impl Default for Tree {
    fn default() -> Self {
        Self {
            segments: Vec::new(),
            communications: Vec::new(),
            settings: None,
            unreadable: Vec::new(),
            read_at: None,
            max_file_bytes: crate::config::DEFAULT_MAX_FILE_BYTES,
        }
    }
}

/// A definition file (or a whole definitions folder) that was not read, and
/// why (never what it holds).
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The path below `--dir`, with `/` separators (`segments.d` for the whole
    /// folder).
    pub path: String,
    /// The path as shown to the user.
    pub display: String,
    pub why: String,
    pub help: &'static str,
}

/// What validation found: the valid definitions and every diagnostic.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Every definition that is valid and whose references are valid.
    pub definitions: Definitions,
    pub settings: FileSettings,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    pub files_checked: usize,
    /// The text of every template read, by its path below `--dir`.
    pub templates: BTreeMap<String, String>,
    /// Definition files left out of `definitions` (invalid, or naming an invalid
    /// segment): a daemon keeps their last applied version.
    pub degraded: Vec<Degraded>,
}

/// A definition file that is not reconciled, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Degraded {
    pub kind: Kind,
    /// The name it declares, when it could be read.
    pub name: Option<String>,
    /// The path below `--dir` (a folder, `segments.d` or `communications.d`,
    /// when the whole folder could not be read: it stands for every file in it).
    pub file: String,
    /// The errors found in it (or why it is left out).
    pub errors: Vec<String>,
}

impl Outcome {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_valid(&self) -> bool {
        self.errors() == 0
    }

    /// The file defining communication `name`, valid or not.
    pub fn communication_file(&self, name: &str) -> Option<&str> {
        let valid = self
            .definitions
            .communications
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, c)| c.source.as_str());
        valid.or_else(|| {
            self.degraded
                .iter()
                .find(|d| {
                    d.kind == crate::plan::Kind::Communication && d.name.as_deref() == Some(name)
                })
                .map(|d| d.file.as_str())
        })
    }
}

/// A definition parsed from one file, with where its name was written.
struct Parsed<T> {
    file: usize,
    name: Name,
    name_span: std::ops::Range<usize>,
    def: Option<T>,
}

/// Remembers the templates validation reads, so they become part of the desired state.
struct Recording<'a> {
    inner: &'a dyn TemplateSource,
    read: std::cell::RefCell<BTreeMap<String, String>>,
}

impl TemplateSource for Recording<'_> {
    fn read(&self, path: &str) -> Result<(String, String), String> {
        let (display, text) = self.inner.read(path)?;
        self.read
            .borrow_mut()
            .insert(path.to_string(), text.clone());
        Ok((display, text))
    }

    fn renders_samples(&self) -> bool {
        self.inner.renders_samples()
    }
}

pub fn validate(tree: &Tree, templates: &dyn TemplateSource) -> Outcome {
    let mut diags = Vec::new();
    let templates = Recording {
        inner: templates,
        read: Default::default(),
    };

    let settings = match &tree.settings {
        Some(f) => settings::parse(f, &mut diags),
        None => FileSettings::default(),
    };
    for u in &tree.unreadable {
        let mut d =
            SourceText::new(&u.display, "").diagnostic(Severity::Error, 0..0, u.why.clone());
        d.help = Some(u.help.into());
        diags.push(d);
    }

    let mut declared_names: BTreeMap<(Kind, usize), String> = BTreeMap::new();
    let mut segments = Vec::new();
    // Segment files are parsed on every core (each on its own); what they
    // declare is then gathered in file order.
    let parsed: Vec<_> = tree
        .segments
        .par_iter()
        .map(|f| {
            let mut found = Vec::new();
            let parsed = segment::parse(f, &mut found);
            (parsed, found)
        })
        .collect();
    for (i, (parsed, found)) in parsed.into_iter().enumerate() {
        diags.extend(found);
        if let Some((name, name_span, def)) = parsed {
            declared_names.insert((Kind::Segment, i), name.to_string());
            segments.push(Parsed {
                file: i,
                name,
                name_span,
                def,
            });
        }
    }
    let mut communications = Vec::new();
    let mut references = Vec::new();
    for (i, f) in tree.communications.iter().enumerate() {
        if let Some(c) = communication::parse(f, &templates, tree.read_at, &mut diags) {
            declared_names.insert((Kind::Communication, i), c.name.to_string());
            references.push((i, c.name.clone(), c.segment));
            communications.push(Parsed {
                file: i,
                name: c.name,
                name_span: c.name_span,
                def: c.def,
            });
        }
    }

    let seg_ok = unique(&segments, &tree.segments, "segment", &mut diags);
    let comm_ok = unique(
        &communications,
        &tree.communications,
        "communication",
        &mut diags,
    );

    // A reference to a segment whose file is invalid is reported at that file,
    // not again at each communication using it.
    let declared: HashSet<Name> = segments.iter().map(|p| p.name.clone()).collect();
    let mut defs = Definitions::default();
    for (p, keep) in segments.into_iter().zip(seg_ok) {
        if let (true, Some(def)) = (keep, p.def) {
            let source = tree.segments[p.file].path.clone();
            defs.segments.insert(p.name, Sourced { source, def });
        }
    }
    for (file, name, segment) in references {
        let Some((segment, span)) = segment else {
            continue;
        };
        if declared.contains(&segment) {
            continue;
        }
        let file = &tree.communications[file];
        let mut d = SourceText::new(&file.display, &file.text).diagnostic(
            Severity::Error,
            span,
            format!("communication `{name}` names segment `{segment}`, which is not defined"),
        );
        let known: Vec<&str> = declared.iter().map(Name::as_str).collect();
        d.help = Some(match did_you_mean(segment.as_str(), &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "define it in a file under segments.d/".to_string(),
        });
        diags.push(d);
    }
    for (p, keep) in communications.into_iter().zip(comm_ok) {
        // Only communications whose segment is valid are reconciled.
        if let (true, Some(def)) = (keep, p.def)
            && defs.segments.contains_key(&def.segment)
        {
            let source = tree.communications[p.file].path.clone();
            defs.communications.insert(p.name, Sourced { source, def });
        }
    }

    let kept: HashSet<&str> = defs
        .segments
        .values()
        .map(|s| s.source.as_str())
        .chain(defs.communications.values().map(|c| c.source.as_str()))
        .collect();
    let mut errors_by_file: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for d in diags.iter().filter(|d| d.is_error()) {
        errors_by_file
            .entry(d.file.as_str())
            .or_default()
            .push(format!("{}:{}: {}", d.line, d.column, d.message));
    }
    let mut degraded = Vec::new();
    for (kind, files) in [
        (Kind::Segment, &tree.segments),
        (Kind::Communication, &tree.communications),
    ] {
        for (i, f) in files.iter().enumerate() {
            if kept.contains(f.path.as_str()) {
                continue;
            }
            let mut errors = errors_by_file
                .get(f.display.as_str())
                .cloned()
                .unwrap_or_default();
            if errors.is_empty() {
                errors.push("names a segment that is invalid".to_string());
            }
            degraded.push(Degraded {
                kind,
                name: declared_names.get(&(kind, i)).cloned(),
                file: f.path.clone(),
                errors,
            });
        }
    }
    // An unreadable file (or folder) is degraded too: what it defined keeps
    // its last applied version.
    for u in &tree.unreadable {
        let kind = match u.path.split('/').next() {
            Some("segments.d") => Kind::Segment,
            Some("communications.d") => Kind::Communication,
            _ => continue,
        };
        degraded.push(Degraded {
            kind,
            name: None,
            file: u.path.clone(),
            errors: vec![u.why.clone()],
        });
    }

    diag::sort(&mut diags);
    Outcome {
        definitions: defs,
        degraded,
        settings,
        diagnostics: diags,
        files_checked: tree.segments.len()
            + tree.communications.len()
            + tree.unreadable.len()
            + usize::from(tree.settings.is_some()),
        templates: templates.read.into_inner(),
    }
}

/// Reports names defined more than once; returns, per entry, whether it is the first.
fn unique<T>(
    parsed: &[Parsed<T>],
    files: &[SourceFile],
    kind: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<bool> {
    let mut first: BTreeMap<&Name, usize> = BTreeMap::new();
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by(|&a, &b| files[parsed[a].file].path.cmp(&files[parsed[b].file].path));
    let mut keep = vec![false; parsed.len()];
    for i in order {
        let p = &parsed[i];
        match first.get(&p.name) {
            None => {
                first.insert(&p.name, i);
                keep[i] = true;
            }
            Some(&j) => {
                let f = &files[p.file];
                let other = &files[parsed[j].file];
                let other_line = SourceText::new(&other.display, &other.text)
                    .diagnostic(Severity::Error, parsed[j].name_span.clone(), "")
                    .line;
                let mut d = SourceText::new(&f.display, &f.text).diagnostic(
                    Severity::Error,
                    p.name_span.clone(),
                    format!("{kind} `{}` is defined more than once", p.name),
                );
                d.help = Some(format!(
                    "it is first defined at {}:{other_line}; names are unique among {kind}s",
                    other.display
                ));
                diags.push(d);
            }
        }
    }
    keep
}

/// The closest candidate within a small edit distance.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The settings a `segd.toml` holds, its diagnostics left to [`validate`].
pub fn file_settings(file: &SourceFile) -> FileSettings {
    settings::parse(file, &mut Vec::new())
}

/// Templates are not read (for definitions that name none, such as segments).
struct NoTemplates;

impl TemplateSource for NoTemplates {
    fn read(&self, _: &str) -> Result<(String, String), String> {
        Err("templates are not read here".into())
    }
}

/// Parses a stored canonical segment definition back into the model; the
/// error says why it no longer reads.
pub fn stored_segment(spec: &str) -> Result<crate::model::Segment, String> {
    let tree = Tree {
        segments: vec![stored_file(spec)],
        ..Tree::default()
    };
    let outcome = validate(&tree, &NoTemplates);
    match outcome.definitions.segments.into_values().next() {
        Some(s) => Ok(s.def),
        None => Err(reasons(&outcome.diagnostics)),
    }
}

/// A stored definition as the validator's input.
fn stored_file(spec: &str) -> SourceFile {
    SourceFile {
        path: "segd_definitions".into(),
        display: "segd_definitions".into(),
        text: spec.to_string(),
    }
}

/// The errors among `diags`, as `line:col: message`, for an unreadable stored definition.
fn reasons(diags: &[Diagnostic]) -> String {
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect();
    if errors.is_empty() {
        "it holds no definition".to_string()
    } else {
        errors.join("; ")
    }
}

/// Templates served from an applied definition's stored copies.
struct StoredTemplates<'a>(&'a BTreeMap<String, String>);

impl TemplateSource for StoredTemplates<'_> {
    fn read(&self, path: &str) -> Result<(String, String), String> {
        self.0
            .get(path)
            .map(|t| (path.to_string(), t.clone()))
            .ok_or_else(|| "not stored with the definition".to_string())
    }

    fn renders_samples(&self) -> bool {
        false
    }
}

/// Parses a stored canonical communication definition back into the model,
/// reading its templates from the stored copies; the error says why it no
/// longer reads.
pub fn stored_communication(
    spec: &str,
    templates: &BTreeMap<String, String>,
) -> Result<crate::model::Communication, String> {
    let mut diags = Vec::new();
    let parsed = communication::parse(
        &stored_file(spec),
        &StoredTemplates(templates),
        // Its schedule was judged when it was applied; only the files are
        // judged again (a date in 1970 or now would drop a rare schedule).
        None,
        &mut diags,
    );
    match parsed.and_then(|p| p.def) {
        Some(def) if !diags.iter().any(Diagnostic::is_error) => Ok(def),
        _ => Err(reasons(&diags)),
    }
}

#[cfg(test)]
mod tests;
