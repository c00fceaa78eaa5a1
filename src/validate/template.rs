//! Email templates: Jinja syntax (minijinja) and the variables SPEC §3 exposes.

use super::reader::Reader;
use crate::diag::{Diagnostic, Severity, SourceText};
use std::ops::Range;

/// Reads template files by their path below `--dir`.
pub trait TemplateSource {
    /// The text of the template, and the path to show in diagnostics; `Err` says why not.
    fn read(&self, path: &str) -> Result<(String, String), String>;
}

/// The variables a template sees, with the attributes known on each.
pub const TEMPLATE_VARIABLES: &[(&str, &[&str])] = &[
    (
        "customer",
        &[
            "id",
            "name",
            "email",
            "country",
            "custom_data",
            "created_at",
        ],
    ),
    ("invoices", &[]),
    (
        "communication",
        &["name", "description", "event", "channel", "segment"],
    ),
    ("segment", &["name", "description"]),
];

/// A problem in a template, located within its text.
struct Problem {
    span: Range<usize>,
    message: String,
    help: Option<String>,
}

fn check(source: &str) -> Vec<Problem> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let tmpl = match env.template_from_str(source) {
        Ok(t) => t,
        Err(e) => {
            let span = e
                .range()
                .unwrap_or_else(|| line_span(source, e.line().unwrap_or(1)));
            return vec![Problem {
                span,
                message: format!(
                    "template syntax error: {}",
                    e.detail().unwrap_or("invalid template")
                ),
                help: None,
            }];
        }
    };
    let mut problems = Vec::new();
    let mut vars: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    vars.sort();
    let top: Vec<&str> = TEMPLATE_VARIABLES.iter().map(|(n, _)| *n).collect();
    for var in vars {
        let mut parts = var.splitn(2, '.');
        let head = parts.next().unwrap_or_default();
        let attr = parts.next();
        let span = find(source, &var)
            .or_else(|| find(source, head))
            .unwrap_or(0..0);
        match TEMPLATE_VARIABLES.iter().find(|(n, _)| *n == head) {
            None => {
                let help = match super::did_you_mean(head, &top) {
                    Some(m) => format!(
                        "did you mean `{m}`? templates see {}",
                        super::reader::list(&top)
                    ),
                    None => format!("templates see {}", super::reader::list(&top)),
                };
                problems.push(Problem {
                    span,
                    message: format!("unknown template variable `{head}`"),
                    help: Some(help),
                });
            }
            Some((_, attrs)) if !attrs.is_empty() => {
                if let Some(a) = attr.and_then(|a| a.split('.').next())
                    && !attrs.contains(&a)
                {
                    let help = match super::did_you_mean(a, attrs) {
                        Some(m) => format!("did you mean `{head}.{m}`?"),
                        None => format!("`{head}` has {}", super::reader::list(attrs)),
                    };
                    problems.push(Problem {
                        span,
                        message: format!("unknown template variable `{head}.{a}`"),
                        help: Some(help),
                    });
                }
            }
            Some(_) => {}
        }
    }
    problems
}

fn find(source: &str, needle: &str) -> Option<Range<usize>> {
    source.find(needle).map(|i| i..i + needle.len())
}

fn line_span(source: &str, line: usize) -> Range<usize> {
    let start: usize = source
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    start..start
}

/// Checks a template written inline in a definition (`subject`, `body`); problems
/// are reported at the value's span.
pub fn check_inline(r: &mut Reader<'_>, span: Range<usize>, source: &str, what: &str) -> bool {
    let problems = check(source);
    for p in &problems {
        let msg = format!("in {what}: {}", p.message);
        match &p.help {
            Some(h) => r.error_help(span.clone(), msg, h.clone()),
            None => r.error(span.clone(), msg),
        }
    }
    problems.is_empty()
}

/// Checks a template file; problems are reported in that file.
pub fn check_file(display: &str, source: &str, diags: &mut Vec<Diagnostic>) -> bool {
    let problems = check(source);
    let src = SourceText::new(display, source);
    for p in &problems {
        let mut d = src.diagnostic(Severity::Error, p.span.clone(), p.message.clone());
        d.help = p.help.clone();
        diags.push(d);
    }
    problems.is_empty()
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn known_variables_pass() {
        let ok = "Hi {{ customer.name }} {% for invoice in invoices %}{{ invoice.number }}{% endfor %}\
                  {% set n = invoices | length %}{{ n }} {{ communication.name }} {{ segment.name }}";
        assert!(check(ok).is_empty());
    }

    #[test]
    fn unknown_variables_and_attributes_fail() {
        let p = check("Hi {{ client }} {{ customer.nme }}");
        let msgs: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "unknown template variable `client`",
                "unknown template variable `customer.nme`"
            ]
        );
        assert_eq!(p[1].help.as_deref(), Some("did you mean `customer.name`?"));
    }

    #[test]
    fn syntax_errors_are_located() {
        let p = check("line one\n{% for x in %}");
        assert_eq!(p.len(), 1);
        assert!(p[0].span.start >= 9, "{:?}", p[0].span);
    }
}
