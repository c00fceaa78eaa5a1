//! Typed reads from a parsed TOML document that keep spans and report every
//! problem as a diagnostic instead of stopping at the first.

use crate::diag::{Diagnostic, SECRET_PREFIXES, Severity, SourceText};
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub type Value<'i> = Spanned<DeValue<'i>>;

/// The most diagnostics one file reports; the rest are counted, in one
/// diagnostic more. Each shows its line, and each costs a pass over the file
/// to the place it names: a list of 40,000 unknown values on one line of
/// 780 kB had validation take 7 GB in 20 s, on its way to 18 GB of output.
const MOST_SHOWN: usize = 100;

/// One file being read: its text and the diagnostics found so far.
pub struct Reader<'a> {
    pub src: SourceText<'a>,
    pub diags: &'a mut Vec<Diagnostic>,
    /// How many diagnostics the vector held before this file's.
    first: usize,
    /// The diagnostics past [`MOST_SHOWN`]: where the first is, how many
    /// there are, and how many of them are errors.
    hidden: Option<(Range<usize>, usize, usize)>,
}

impl<'a> Reader<'a> {
    pub fn new(file: &'a str, text: &'a str, diags: &'a mut Vec<Diagnostic>) -> Self {
        let first = diags.len();
        Self {
            src: SourceText::new(file, text),
            diags,
            first,
            hidden: None,
        }
    }

    /// Whether this file has no error, shown or hidden.
    pub fn clean(&self) -> bool {
        self.diags[self.first..].iter().all(|d| !d.is_error())
            && self
                .hidden
                .as_ref()
                .is_none_or(|(_, _, errors)| *errors == 0)
    }

    /// Adds a diagnostic, unless the file has shown [`MOST_SHOWN`]: then it
    /// is only counted.
    fn add(
        &mut self,
        severity: Severity,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Option<&mut Diagnostic> {
        if self.diags.len() - self.first >= MOST_SHOWN {
            let (_, n, errors) = self.hidden.get_or_insert((span, 0, 0));
            *n += 1;
            *errors += usize::from(severity == Severity::Error);
            return None;
        }
        self.diags
            .push(self.src.diagnostic(severity, span, message));
        self.diags.last_mut()
    }

    /// Parses the document, reporting every TOML syntax error.
    pub fn parse(&mut self) -> Option<DeTable<'a>> {
        let text = self.src.text;
        match DeTable::parse(text) {
            Ok(t) => Some(t.into_inner()),
            Err(_) => {
                let (_, errors) = DeTable::parse_recoverable(text);
                for e in errors {
                    let span = e.span().unwrap_or(0..0);
                    let msg = e.message().trim().to_string();
                    self.error(span, format!("invalid TOML: {msg}"));
                }
                None
            }
        }
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.add(Severity::Error, span, message);
    }

    pub fn error_help(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        if let Some(d) = self.add(Severity::Error, span, message) {
            d.help = Some(help.into());
        }
    }

    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.add(Severity::Warning, span, message);
    }

    /// An error whose source line must not be shown, as it may hold a secret.
    pub fn secret_error(&mut self, span: Range<usize>, message: impl Into<String>) {
        if let Some(d) = self.add(Severity::Error, span, message) {
            d.snippet = None;
            d.help = Some(
                "keep secrets in the environment and name the variable (for webhooks: `secret_env`)"
                    .into(),
            );
        }
    }

    /// Reports keys of `table` not in `allowed`; `context` names the table.
    pub fn unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], context: &str) {
        for (k, _) in table.iter() {
            let key = k.get_ref().as_ref();
            if allowed.contains(&key) {
                continue;
            }
            let span = k.span();
            if crate::config::is_secret_name(key) {
                self.secret_error(
                    span,
                    format!("`{key}` looks like a secret: secrets never live in definition files"),
                );
                continue;
            }
            let msg = format!("unknown key `{key}` in {context}");
            match super::did_you_mean(key, allowed) {
                Some(s) => self.error_help(span, msg, format!("did you mean `{s}`?")),
                None => self.error_help(span, msg, format!("expected one of: {}", list(allowed))),
            }
        }
    }

    /// Checks that a value holds no secret; returns false when it does.
    pub fn no_secret(&mut self, v: &Value<'_>) -> bool {
        if let DeValue::String(s) = v.get_ref()
            && looks_like_secret(s)
        {
            self.secret_error(
                v.span(),
                "this value looks like a signing secret; secrets never live in definition files",
            );
            return false;
        }
        true
    }

    pub fn str<'v>(&mut self, v: &'v Value<'_>, what: &str) -> Option<&'v str> {
        if !self.no_secret(v) {
            return None;
        }
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.error(
                    v.span(),
                    format!("{what} must be a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, v: &Value<'_>, what: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.error_help(
                    v.span(),
                    format!("{what} must be a boolean, found {}", type_name(other)),
                    "write `true` or `false` without quotes",
                );
                None
            }
        }
    }

    pub fn int(&mut self, v: &Value<'_>, what: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(v.span(), format!("{what} is out of range"));
                    None
                }
            },
            other => {
                self.error(
                    v.span(),
                    format!("{what} must be a whole number, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A table (inline or not); reports anything else.
    pub fn table<'v, 'i>(&mut self, v: &'v Value<'i>, what: &str) -> Option<&'v DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.error(
                    v.span(),
                    format!("{what} must be a table, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A string that must be one of `allowed`.
    pub fn one_of<'v>(
        &mut self,
        v: &'v Value<'_>,
        what: &str,
        allowed: &[&str],
    ) -> Option<&'v str> {
        let s = self.str(v, what)?;
        if allowed.contains(&s) {
            return Some(s);
        }
        let msg = format!("unknown {what} `{s}`");
        match super::did_you_mean(s, allowed) {
            Some(m) => self.error_help(
                v.span(),
                msg,
                format!("did you mean `{m}`? expected one of: {}", list(allowed)),
            ),
            None => self.error_help(v.span(), msg, format!("expected one of: {}", list(allowed))),
        }
        None
    }
}

impl Reader<'_> {
    /// The file's main table (`[segment]` or `[communication]`, named by `kind`),
    /// its unknown keys reported, and the name it declares with that name's span.
    /// The `[kind]` table and its name. The name is `None` when it is missing
    /// or invalid (reported), so the rest of the file is still checked.
    pub fn header<'t, 'i>(
        &mut self,
        root: &'t DeTable<'i>,
        kind: &str,
        allowed: &[&str],
    ) -> Option<(&'t Value<'i>, &'t DeTable<'i>, Option<NameAt>)> {
        let Some(table_v) = get(root, kind) else {
            self.error_help(
                0..0,
                format!("missing `[{kind}]` table"),
                format!("a {kind} file starts with `[{kind}]` and `name = \"…\"`"),
            );
            return None;
        };
        let table = self.table(table_v, &format!("`{kind}`"))?;
        self.unknown_keys(table, allowed, &format!("`[{kind}]`"));
        let Some(v) = get(table, "name") else {
            self.error_help(
                table_v.span(),
                format!("`[{kind}]` needs a `name`"),
                format!("add `name = \"my-{kind}\"`"),
            );
            return Some((table_v, table, None));
        };
        let span = v.span();
        let name = self
            .str(v, "`name`")
            .and_then(|s| match crate::model::Name::parse(s) {
                Ok(n) => Some((n, span)),
                Err(e) => {
                    self.error_help(v.span(), format!("invalid {kind} name `{s}`"), e);
                    None
                }
            });
        Some((table_v, table, name))
    }
}

/// A name and where it was written.
pub type NameAt = (crate::model::Name, Range<usize>);

pub fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table.get(key)
}

/// The span of a key (falls back to the given span when absent).
pub fn key_span(table: &DeTable<'_>, key: &str, fallback: Range<usize>) -> Range<usize> {
    table.get_key_value(key).map_or(fallback, |(k, _)| k.span())
}

pub fn looks_like_secret(s: &str) -> bool {
    let s = s.trim();
    SECRET_PREFIXES.iter().any(|p| s.starts_with(p))
}

pub fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The diagnostics a file did not show, as one more where the first is.
impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let Some((span, n, errors)) = self.hidden.take() else {
            return;
        };
        let severity = if errors > 0 {
            Severity::Error
        } else {
            Severity::Warning
        };
        let problems = if n == 1 { "problem" } else { "problems" };
        let mut d = self.src.diagnostic(
            severity,
            span,
            format!("{n} more {problems} in this file ({errors} of them errors) are not shown"),
        );
        // The line of a hidden problem may be one whose line is never shown
        // (a secret's): the count shows none.
        d.snippet = None;
        d.help = Some(format!(
            "segd shows the first {MOST_SHOWN} problems of a file; mend those and validate again"
        ));
        self.diags.push(d);
    }
}
