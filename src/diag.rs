//! Diagnostics: located messages about definition files, collected as data and
//! rendered once (text with source snippets, JSON, or GitHub annotations).

use serde::Serialize;
use std::fmt::Write as _;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about one place in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file as the user named it (`--dir` joined with the path below it).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The source line, shown under the message; `None` where it could leak a secret.
    #[serde(skip)]
    pub snippet: Option<Snippet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub text: String,
    /// Columns (0-based, in characters) to underline within `text`.
    pub underline: Range<usize>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A source text with the means to turn byte offsets into lines and columns.
#[derive(Debug, Clone)]
pub struct SourceText<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> SourceText<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Self { file, text }
    }

    /// A diagnostic at `span` (byte offsets into the text).
    pub fn diagnostic(
        &self,
        severity: Severity,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let start = floor_char_boundary(self.text, span.start.min(self.text.len()));
        let end = floor_char_boundary(self.text, span.end.clamp(start, self.text.len()));
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let line = self.text[..start].matches('\n').count() + 1;
        let col0 = self.text[line_start..start].chars().count();
        let under_end = if end > start {
            col0 + self.text[start..end.min(line_end)].chars().count()
        } else {
            col0
        };
        Diagnostic {
            file: self.file.to_string(),
            line,
            column: col0 + 1,
            severity,
            message: message.into(),
            help: None,
            // A line that may hold a secret is never shown, whatever the error.
            snippet: (!may_hold_secret(line_text))
                .then(|| clipped(line_text, col0..under_end.max(col0 + 1))),
        }
    }
}

/// The most characters of a line a snippet shows.
const SNIPPET_CHARS: usize = 120;

/// `line` with `underline` (columns), or, where the line is longer than
/// [`SNIPPET_CHARS`], the part of it from a little before the underline on,
/// marked `…` where it is cut.
fn clipped(line: &str, underline: Range<usize>) -> Snippet {
    let len = line.chars().count();
    if len <= SNIPPET_CHARS {
        return Snippet {
            text: line.to_string(),
            underline,
        };
    }
    let start = underline.start.min(len).saturating_sub(SNIPPET_CHARS / 3);
    let end = (start + SNIPPET_CHARS).min(len);
    let (before, after) = (
        if start > 0 { "…" } else { "" },
        if end < len { "…" } else { "" },
    );
    let shift = usize::from(start > 0);
    let text: String = line.chars().skip(start).take(end - start).collect();
    let from = underline.start.clamp(start, end) - start + shift;
    let to = underline.end.clamp(start, end) - start + shift;
    Snippet {
        text: format!("{before}{text}{after}"),
        underline: from..to.max(from + 1),
    }
}

/// How the secrets a definition may not hold begin (signing secrets, API
/// keys): validation refuses such a value, and no diagnostic shows its line.
pub const SECRET_PREFIXES: [&str; 3] = ["whsec_", "sk_live_", "sk_test_"];

/// A [`SECRET_PREFIXES`] value, a secret-sounding key, or a URL with
/// credentials (user info, or a query parameter
/// [`crate::config::is_secret_name`] names).
fn may_hold_secret(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    // Each part of each key on the line: `a.b = …`, `t = { k = …, … }`.
    let secret_key = lower.split(['{', ',']).any(|item| {
        item.split_once('=').is_some_and(|(key, _)| {
            key.split('.')
                .any(|part| crate::config::is_secret_name(part.trim().trim_matches(['"', '\''])))
        })
    });
    let prefixed = SECRET_PREFIXES.iter().any(|p| lower.contains(p));
    if secret_key || prefixed {
        return true;
    }
    // `scheme://user:pass@host`: user info before the host; `?password=…`.
    lower.match_indices("://").any(|(i, _)| {
        let url = lower[i + 3..]
            .split([' ', '"', '\'', '#'])
            .next()
            .unwrap_or_default();
        let authority = url.split(['/', '?']).next().unwrap_or_default();
        authority.contains('@')
            || url.split_once('?').is_some_and(|(_, query)| {
                query
                    .split('&')
                    .any(|p| crate::config::is_secret_name(p.split('=').next().unwrap_or_default()))
            })
    })
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Sorts diagnostics by file, position and severity, so output is stable.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.severity, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.severity, &b.message))
    });
}

/// ANSI colour for text, or nothing when `.0` is false.
pub struct Paint(pub bool);

impl Paint {
    /// `s` in the SGR style `code` (e.g. `1;31`: bold red).
    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// `path:line:col: error: message`, a source snippet, and a help line;
/// coloured as rustc colours its diagnostics when `color`.
pub fn render_text(diags: &[Diagnostic], color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    for d in diags {
        let (level, style) = match d.severity {
            Severity::Error => ("error", "1;31"),
            Severity::Warning => ("warning", "1;33"),
        };
        let _ = writeln!(
            out,
            "{}: {}: {}",
            p.paint("1", &format!("{}:{}:{}", d.file, d.line, d.column)),
            p.paint(style, level),
            p.paint("1", &d.message)
        );
        if let Some(s) = &d.snippet {
            let num = d.line.to_string();
            let pad = " ".repeat(num.len());
            let carets = "^".repeat(s.underline.len().max(1));
            let bar = p.paint("1;34", &format!("{pad} |"));
            let _ = writeln!(out, "{bar}");
            let _ = writeln!(out, "{} {}", p.paint("1;34", &format!("{num} |")), s.text);
            let _ = writeln!(
                out,
                "{bar} {}{}",
                " ".repeat(s.underline.start),
                p.paint(style, &carets)
            );
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "  {} {h}", p.paint("1;34", "= help:"));
        }
    }
    out
}

/// The JSON document of `validate --format json` (versioned).
pub fn render_json(diags: &[Diagnostic], checked: usize) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let doc = serde_json::json!({
        "version": 1,
        "valid": errors == 0,
        "files_checked": checked,
        "errors": errors,
        "warnings": diags.len() - errors,
        "diagnostics": diags,
    });
    format!("{doc:#}\n")
}

/// The `validate --format json` document when nothing could be checked (the
/// folder cannot be read): `error` says why.
pub fn render_json_unchecked(why: &str) -> String {
    let doc = serde_json::json!({
        "version": 1,
        "valid": false,
        "files_checked": 0,
        "errors": 1,
        "warnings": 0,
        "diagnostics": [],
        "error": why,
    });
    format!("{doc:#}\n")
}

/// The GitHub annotation when nothing could be checked: an error of no file.
pub fn render_github_unchecked(why: &str) -> String {
    format!("::error title=segd::{}\n", escape_data(why))
}

/// GitHub Actions workflow commands (`::error file=…,line=…,col=…::message`).
pub fn render_github(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut msg = d.message.clone();
        if let Some(h) = &d.help {
            msg.push_str("\nhelp: ");
            msg.push_str(h);
        }
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},title=segd::{}",
            escape_property(&d.file),
            d.line,
            d.column,
            escape_data(&msg)
        );
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_from_offsets() {
        let src = SourceText::new("a.toml", "x = 1\nyé = \"z\"\n");
        let d = src.diagnostic(Severity::Error, 12..15, "bad");
        assert_eq!((d.line, d.column), (2, 6));
        assert_eq!(d.snippet.as_ref().map(|s| s.underline.clone()), Some(5..8));
    }

    #[test]
    fn lines_that_may_hold_secrets_are_not_shown() {
        for line in [
            "webhook_secret = \"whsec_abc\"",
            "url = \"ftp://user:pass@host/x\"",
            "smtp_url = \"smtp://u:p@[::1/\"",
            "database_url = \"postgres://h:x/d?sslmode=require&SSLPassword=p\"",
            "token = 1",
            "pwd = \"x\"",
            "smtp_pass = \"x\"",
            "private_key = \"x\"",
            "hook.Api-Key = \"x\"",
            "headers = { accept = \"*/*\", Authorization = \"Bearer x\" }",
            "url = \"https://s3.test/o?X-Amz-Signature=abc\"",
            "payment_type = { in = [\"p0\", \"sk_live_abc\"] }",
            "name = \"SK_TEST_abc\"",
        ] {
            let d = SourceText::new("a.toml", line).diagnostic(Severity::Error, 0..1, "bad");
            assert!(d.snippet.is_none(), "{line}");
        }
        for line in [
            "secret_env = \"HOOK\"",
            "url = \"postgres://db/segd?sslkey=/k.pem&sslcert=/c.pem\"",
        ] {
            let d = SourceText::new("a.toml", line).diagnostic(Severity::Error, 0..1, "bad");
            assert!(d.snippet.is_some(), "{line}");
        }
    }

    #[test]
    fn offsets_past_the_end_do_not_panic() {
        let src = SourceText::new("a.toml", "é");
        let d = src.diagnostic(Severity::Error, 1..99, "bad");
        assert_eq!((d.line, d.column), (1, 1));
    }

    /// A line of at most [`SNIPPET_CHARS`] is shown whole; a longer one from
    /// 40 characters before the underline, 120 of them, `…` where cut.
    #[test]
    fn long_lines_are_cut_around_the_underline() {
        let short = "é".repeat(SNIPPET_CHARS);
        assert_eq!(clipped(&short, 3..5).text, short);
        let line: String = (0..1000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let s = clipped(&line, 500..504);
        assert_eq!(s.text, format!("…{}…", &line[460..580]));
        assert_eq!(s.underline, 41..45);
        // At the start, at the end, past the end, and an underline past the cut.
        assert_eq!(clipped(&line, 0..1).text, format!("{}…", &line[..120]));
        assert_eq!(clipped(&line, 999..1000).text, format!("…{}", &line[959..]));
        assert_eq!(clipped(&line, 999..1000).underline, 41..42);
        assert_eq!(clipped(&line, 5000..5001).underline, 41..42);
        assert_eq!(clipped(&line, 10..900).underline, 10..120);
    }

    proptest::proptest! {
        /// Any line and underline (of a column or more, as a diagnostic's
        /// is): the snippet is at most the window (and its two marks) and
        /// its underline starts within it or just past.
        #[test]
        fn any_line_is_cut_without_a_panic(
            line in "[aé\\t ]{0,400}",
            start in 0usize..500,
            len in 1usize..500,
        ) {
            let s = clipped(&line, start..start + len);
            let chars = s.text.chars().count();
            proptest::prop_assert!(chars <= SNIPPET_CHARS + 2 || s.text == line);
            proptest::prop_assert!(s.underline.start < s.underline.end);
            if s.text != line {
                proptest::prop_assert!(s.underline.start <= chars);
            }
        }
    }

    #[test]
    fn github_escapes_properties_and_data() {
        let src = SourceText::new("a,b:c.toml", "x");
        let mut d = src.diagnostic(Severity::Error, 0..1, "50% bad\nreally");
        d.help = Some("fix it".into());
        assert_eq!(
            render_github(&[d]),
            "::error file=a%2Cb%3Ac.toml,line=1,col=1,title=segd::50%25 bad%0Areally%0Ahelp: fix it\n"
        );
    }
}
