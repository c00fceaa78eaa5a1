//! Email templates: Jinja syntax (minijinja) and the variables SPEC §3 exposes,
//! checked with the one bounded renderer ([`render`]) that delivery uses too.

use super::reader::Reader;
use crate::diag::{Diagnostic, Severity, SourceText};
use minijinja::{UndefinedBehavior, Value};
use std::ops::Range;

mod render;

pub use render::{
    RENDER_FUEL, RENDER_MAX_DEPTH, RENDER_MAX_FILTER_WORK, RENDER_MAX_OUTPUT, RENDER_MAX_RANGE,
    RenderError, render,
};
use render::{bounded_env, render_with};

/// Reads template files by their path below `--dir`.
pub trait TemplateSource {
    /// The text of the template, and the path to show in diagnostics; `Err` says why not.
    fn read(&self, path: &str) -> Result<(String, String), String>;

    /// Whether each template is rendered once against sample data to check its
    /// bounds: files being validated are; stored definitions, checked when they
    /// were applied, are not (their deliveries render within the bounds).
    fn renders_samples(&self) -> bool {
        true
    }
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

/// A made-up customer with five invoices, shaped as deliveries see them.
fn sample_context() -> Value {
    let invoices: Vec<Value> = (1..=5)
        .map(|i| {
            minijinja::context! {
                id => format!("inv_{i}"),
                number => format!("INV-000{i}"),
                status => "overdue",
                amount_cents => 12_500 * i,
                currency => "EUR",
                due_date => "2026-11-01",
                created_at => "2026-10-01T09:00:00Z",
            }
        })
        .collect();
    minijinja::context! {
        customer => minijinja::context! {
            id => "cus_sample",
            name => "Sample Customer",
            email => "billing@customer.test",
            country => "DE",
            custom_data => minijinja::context! {},
            created_at => "2025-01-01T00:00:00Z",
        },
        invoices => invoices,
        communication => minijinja::context! {
            name => "sample",
            description => "sample",
            event => "payment_reminder",
            channel => "email",
            segment => "sample",
        },
        segment => minijinja::context! { name => "sample", description => "sample" },
    }
}

/// Renders a template once against [`sample_context`] within the same bounds as a
/// delivery; only going over a bound is a problem here (the sample's made-up data,
/// e.g. its empty `custom_data`, may fail where real data would not).
fn check_bounds(source: &str) -> Result<(), String> {
    match render_with(UndefinedBehavior::Chainable, source, &sample_context()) {
        Err(RenderError::Limit(l)) => {
            Err(format!("template render exceeded its {l} on sample data"))
        }
        _ => Ok(()),
    }
}

fn check(source: &str) -> Vec<Problem> {
    let env = bounded_env(UndefinedBehavior::Strict);
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
    // minijinja's global functions (`range`, `dict`, `namespace`, …).
    let functions: Vec<&str> = env.globals().map(|(name, _)| name).collect();
    for var in vars {
        let mut parts = var.splitn(2, '.');
        let head = parts.next().unwrap_or_default();
        let attr = parts.next();
        if functions.contains(&head) {
            continue;
        }
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

/// Checks a template written inline in a definition (`subject`, `body`); problems are reported at the value's span.
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

/// Renders the template (`what`, already checked) once against sample data when
/// `templates` asks for it; going over a bound is an error at `span`.
pub fn bounds_at(
    r: &mut Reader<'_>,
    templates: &dyn TemplateSource,
    span: Range<usize>,
    source: &str,
    what: &str,
) -> bool {
    if !templates.renders_samples() {
        return true;
    }
    match check_bounds(source) {
        Ok(()) => true,
        Err(why) => {
            r.error_help(
                span,
                format!("in {what}: {why}"),
                "deliveries render within the same bounds, and would fail for good",
            );
            false
        }
    }
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
mod tests;
