//! Email templates: Jinja syntax (minijinja), the variables SPEC §3 exposes, and
//! the one bounded renderer that validation and delivery both use.

use super::reader::Reader;
use crate::diag::{Diagnostic, Severity, SourceText};
use minijinja::value::{Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value, filters};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The work one render may do: minijinja instructions executed (its "fuel").
/// A reminder listing a thousand invoices uses about 25,000.
pub const RENDER_FUEL: u64 = 1_000_000;
/// The most text one render may produce, in bytes (1 MiB).
pub const RENDER_MAX_OUTPUT: usize = 1 << 20;
/// The most items one `range()` may produce.
pub const RENDER_MAX_RANGE: usize = 10_000;
/// The deepest nesting of loops, conditions and macro calls during a render.
pub const RENDER_MAX_DEPTH: usize = 100;
/// The most data all built-in filter and function calls and all `{{ … }}` of
/// one render may take, give and print (captured text included), counted as
/// bytes of text plus one per other value (64 MiB): each call and each
/// `{{ … }}` also stays within [`RENDER_MAX_OUTPUT`] and [`RENDER_MAX_RANGE`].
pub const RENDER_MAX_FILTER_WORK: usize = 64 << 20;

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

/// Why a render produced no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// Over one of the bounds above, which no data makes right: never retried.
    #[error("template render exceeded its {0}")]
    Limit(String),
    #[error("{0}")]
    Failed(String),
}

/// An environment with the bounds above; `undefined` is strict for deliveries.
/// Fuel counts template instructions only, while a built-in filter or function
/// loops in Rust within one instruction: each is re-registered behind
/// [`guarded`], which measures its arguments and result first.
fn bounded_env(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(RENDER_MAX_DEPTH);
    let work = Arc::new(AtomicUsize::new(0));
    for (name, f) in [
        ("dict", Value::from_function(minijinja::functions::dict)),
        ("debug", Value::from_function(minijinja::functions::debug)),
        (
            "namespace",
            Value::from_function(minijinja::functions::namespace),
        ),
    ] {
        env.add_function(name, guarded(&work, name, f));
    }
    env.add_function(
        "range",
        guarded(
            &work,
            "range",
            Value::from_function(|lower: isize, upper: Option<isize>, step: Option<isize>| {
                let span = upper.map_or(lower, |u| u.saturating_sub(lower));
                let items = span.unsigned_abs() / step.map_or(1, |s| s.unsigned_abs().max(1));
                if items > RENDER_MAX_RANGE {
                    return Err(limit_error(range_limit()));
                }
                minijinja::functions::range(lower, upper, step)
            }),
        ),
    );
    for (name, f) in builtin_filters() {
        env.add_filter(name, guarded(&work, name, f));
    }
    // Every `{{ … }}` is measured and counted too: text captured by `set` and
    // `filter` blocks and macro calls never reaches the capped output.
    env.set_formatter(move |out, state, value| {
        charge(&work, measure(value, RENDER_MAX_OUTPUT)?)?;
        minijinja::escape_formatter(out, state, value)
    });
    env
}

/// minijinja's built-in filters, to be re-registered behind [`guarded`].
fn builtin_filters() -> Vec<(&'static str, Value)> {
    macro_rules! builtins {
        ($($name:literal => $f:path),* $(,)?) => {
            vec![$(($name, Value::from_function($f))),*]
        };
    }
    builtins![
        "safe" => filters::safe, "escape" => filters::escape, "e" => filters::escape,
        "lower" => filters::lower, "upper" => filters::upper, "title" => filters::title,
        "capitalize" => filters::capitalize, "replace" => filters::replace,
        "length" => filters::length, "count" => filters::length,
        "dictsort" => filters::dictsort, "items" => filters::items,
        "reverse" => filters::reverse, "trim" => filters::trim, "join" => filters::join,
        "split" => filters::split, "lines" => filters::lines,
        "default" => filters::default, "d" => filters::default, "round" => filters::round,
        "abs" => filters::abs, "int" => filters::int, "float" => filters::float,
        "attr" => filters::attr, "first" => filters::first, "last" => filters::last,
        "min" => filters::min, "max" => filters::max, "sort" => filters::sort,
        "list" => filters::list, "string" => filters::string, "bool" => filters::bool,
        "batch" => filters::batch, "slice" => filters::slice, "sum" => filters::sum,
        "indent" => filters::indent, "select" => filters::select,
        "reject" => filters::reject, "selectattr" => filters::selectattr,
        "rejectattr" => filters::rejectattr, "map" => filters::map,
        "groupby" => filters::groupby, "unique" => filters::unique,
        "chain" => filters::chain, "zip" => filters::zip, "pprint" => filters::pprint,
        "format" => filters::format,
    ]
}

/// `f` (the filter or function `name`) behind the bounds: its arguments and
/// result must each stay within [`RENDER_MAX_RANGE`] items per sequence and
/// [`RENDER_MAX_OUTPUT`] in size, its text result too before it is built, and
/// all calls of a render within [`RENDER_MAX_FILTER_WORK`] in all.
fn guarded(
    work: &Arc<AtomicUsize>,
    name: &'static str,
    f: Value,
) -> impl Fn(&State, Rest<Value>) -> Result<Value, Error> + Send + Sync + 'static {
    let work = Arc::clone(work);
    move |state: &State, args: Rest<Value>| {
        let mut size = 0;
        for arg in args.iter() {
            size += measure(arg, RENDER_MAX_OUTPUT.saturating_sub(size))?;
        }
        if grown(name, &args)? > RENDER_MAX_OUTPUT {
            return Err(limit_error(output_limit()));
        }
        let rv = f.call(state, &args)?;
        size += measure(&rv, RENDER_MAX_OUTPUT)?;
        charge(&work, size)?;
        Ok(rv)
    }
}

/// Counts `size` against the render's [`RENDER_MAX_FILTER_WORK`].
fn charge(work: &AtomicUsize, size: usize) -> Result<(), Error> {
    if work.fetch_add(size, Ordering::Relaxed).saturating_add(size) > RENDER_MAX_FILTER_WORK {
        return Err(limit_error(filter_work_limit()));
    }
    Ok(())
}

/// The result size of the built-ins whose result can outgrow their arguments
/// (`replace`, `indent`, `slice`), known before calling them; 0 for the others.
fn grown(name: &str, args: &[Value]) -> Result<usize, Error> {
    let text = args.first().and_then(Value::as_str).unwrap_or_default();
    let arg = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or_default();
    let count = |i: usize| {
        args.get(i)
            .and_then(Value::as_i64)
            .map_or(0, |n| usize::try_from(n).unwrap_or(0))
    };
    Ok(match name {
        "replace" => {
            let hits = match arg(1) {
                "" => text.chars().count() + 1,
                from => text.matches(from).count(),
            };
            text.len().saturating_add(hits.saturating_mul(arg(2).len()))
        }
        "indent" => {
            let width = args
                .get(1)
                .and_then(Value::as_str)
                .map_or(count(1), str::len);
            let lines = text.lines().count() + 1;
            text.len().saturating_add(lines.saturating_mul(width))
        }
        "slice" if count(1) > RENDER_MAX_RANGE => return Err(limit_error(range_limit())),
        _ => 0,
    })
}

/// The size of `v`: bytes of text plus one per other value, looking into
/// sequences and maps; refuses one over `budget` or with a sequence or map of
/// more than [`RENDER_MAX_RANGE`] items, without looking further than that.
fn measure(v: &Value, budget: usize) -> Result<usize, Error> {
    let mut size = 0;
    let mut stack = vec![v.clone()];
    while let Some(v) = stack.pop() {
        size += match v.as_str() {
            Some(s) => s.len().max(1),
            None => 1,
        };
        if size > budget {
            return Err(limit_error(output_limit()));
        }
        if matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
        ) {
            if v.len().is_some_and(|n| n > RENDER_MAX_RANGE) {
                return Err(limit_error(range_limit()));
            }
            let Ok(items) = v.try_iter() else { continue };
            for (i, item) in items.enumerate() {
                if i >= RENDER_MAX_RANGE || i + stack.len() > budget {
                    return Err(limit_error(range_limit()));
                }
                if v.kind() == ValueKind::Map {
                    stack.push(v.get_item(&item).unwrap_or_default());
                }
                stack.push(item);
            }
        }
    }
    Ok(size)
}

/// The bound a render error (or one it wraps, e.g. from within `map`) went over.
fn bound_detail(e: &Error) -> Option<String> {
    let limits = [range_limit(), output_limit(), filter_work_limit()];
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(detail) = err.downcast_ref::<Error>().and_then(Error::detail)
            && let Some(l) = limits.iter().find(|l| l.as_str() == detail)
        {
            return Some(l.clone());
        }
        cur = err.source();
    }
    None
}

fn limit_error(detail: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, detail)
}

fn range_limit() -> String {
    format!("range limit ({RENDER_MAX_RANGE} items)")
}

fn output_limit() -> String {
    format!("output limit ({RENDER_MAX_OUTPUT} bytes)")
}

fn filter_work_limit() -> String {
    format!("filter work limit ({RENDER_MAX_FILTER_WORK} values and bytes)")
}

/// Text that stops accepting bytes past [`RENDER_MAX_OUTPUT`].
#[derive(Default)]
struct Capped {
    out: Vec<u8>,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > RENDER_MAX_OUTPUT {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `source` against `ctx` within the bounds above, strictly: an unknown
/// variable is an error. CPU-bound: callers on an async runtime run it on a
/// blocking thread.
pub fn render(source: &str, ctx: &Value) -> Result<String, RenderError> {
    render_with(UndefinedBehavior::Strict, source, ctx)
}

fn render_with(
    undefined: UndefinedBehavior,
    source: &str,
    ctx: &Value,
) -> Result<String, RenderError> {
    let env = bounded_env(undefined);
    let mut out = Capped::default();
    let result = env
        .template_from_str(source)
        .and_then(|t| t.render_captured_to(ctx, &mut out).map(drop));
    if let Err(e) = &result
        && let Some(l) = bound_detail(e)
    {
        return Err(RenderError::Limit(l));
    }
    match result {
        Ok(()) => String::from_utf8(out.out).map_err(|e| RenderError::Failed(e.to_string())),
        Err(_) if out.over => Err(RenderError::Limit(output_limit())),
        Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(RenderError::Limit(format!(
            "work limit (fuel {RENDER_FUEL})"
        ))),
        Err(e) if e.detail() == Some("recursion limit exceeded") => Err(RenderError::Limit(
            format!("depth limit ({RENDER_MAX_DEPTH})"),
        )),
        Err(e) => Err(RenderError::Failed(e.to_string())),
    }
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
mod tests {
    use super::{RENDER_FUEL, RenderError, check, check_bounds, render, sample_context};

    /// Ten nested loops of ten: 10^10 iterations unbounded.
    fn runaway() -> String {
        format!(
            "{}x{}",
            "{% for a in range(10) %}".repeat(10),
            "{% endfor %}".repeat(10)
        )
    }

    fn limit(source: &str) -> String {
        match render(source, &sample_context()) {
            Err(RenderError::Limit(l)) => l,
            other => panic!("{source}: {other:?}"),
        }
    }

    #[test]
    fn renders_stop_at_each_bound() {
        let started = std::time::Instant::now();
        assert_eq!(
            limit(&runaway()),
            format!("work limit (fuel {RENDER_FUEL})")
        );
        eprintln!("a runaway render stopped after {:?}", started.elapsed());
        assert_eq!(
            limit("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}"),
            "output limit (1048576 bytes)"
        );
        assert_eq!(
            limit("{{ range(20000) | length }}"),
            "range limit (10000 items)"
        );
        assert_eq!(
            limit("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            "depth limit (100)"
        );
        let ok = render(
            "{{ customer.name }}: {% for i in invoices %}{{ i.number }} {% endfor %}",
            &sample_context(),
        );
        assert_eq!(
            ok.as_deref(),
            Ok("Sample Customer: INV-0001 INV-0002 INV-0003 INV-0004 INV-0005 ")
        );
    }

    /// Built-in filters and functions work in Rust within one instruction, and
    /// captured text (`set` blocks, `filter` blocks, macro calls) never reaches
    /// the output: each of these used to run for minutes or take gigabytes.
    #[test]
    fn filters_and_captures_stop_at_the_bounds() {
        let started = std::time::Instant::now();
        for (source, bound) in [
            ("{{ ([0] * 10**15) | sum }}", "range limit (10000 items)"),
            (
                "{{ ([0] * 10**15) | list | length }}",
                "range limit (10000 items)",
            ),
            (
                "{{ (['x' * 100000000] * 100) | join }}",
                "output limit (1048576 bytes)",
            ),
            (
                "{{ ([[0] * 5000] * 5000) | join }}",
                "output limit (1048576 bytes)",
            ),
            (
                "{{ ([1] * 20000) | sort | first }}",
                "range limit (10000 items)",
            ),
            (
                "{{ ([1] * 20000) | unique | list }}",
                "range limit (10000 items)",
            ),
            (
                "{{ ('x' * 1000) | replace('x', 'y' * 2000) }}",
                "output limit (1048576 bytes)",
            ),
            (
                "{{ ('x\n' * 1000) | indent(2000) }}",
                "output limit (1048576 bytes)",
            ),
            (
                "{{ [1, 2] | slice(10**9) | list }}",
                "range limit (10000 items)",
            ),
            (
                "{% set s %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}{{ s }}",
                "output limit (1048576 bytes)",
            ),
            (
                "{% for i in range(10000) %}{% set s = 'x' * 1000000 %}{{ s | length }}{% endfor %}",
                "filter work limit (67108864 values and bytes)",
            ),
            (
                "{% set s %}{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}",
                "filter work limit (67108864 values and bytes)",
            ),
            (
                "{% set s %}{{ [[[0] * 5000] * 5000] * 5000 }}{% endset %}",
                "output limit (1048576 bytes)",
            ),
            (
                "{% filter upper %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endfilter %}",
                "output limit (1048576 bytes)",
            ),
            (
                "{% macro m() %}{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}{{ m() | length }}",
                "output limit (1048576 bytes)",
            ),
            (
                "{{ invoices | map(attribute='number') | map('replace', 'I', 'x' * 1000000) | join }}",
                "output limit (1048576 bytes)",
            ),
        ] {
            assert_eq!(limit(source), bound, "{source}");
        }
        eprintln!("the bypasses stopped after {:?}", started.elapsed());
        let ok = render(
            "{{ invoices | sort(attribute='number', reverse=true) | map(attribute='number') | join(', ') }} \
             {{ invoices | map(attribute='amount_cents') | sum }} {{ '%s!' | format(customer.name | upper) }}",
            &sample_context(),
        );
        assert_eq!(
            ok.as_deref(),
            Ok("INV-0005, INV-0004, INV-0003, INV-0002, INV-0001 187500 SAMPLE CUSTOMER!")
        );
    }

    #[test]
    fn the_sample_render_flags_only_bounds() {
        assert!(check_bounds(&runaway()).is_err());
        // Made-up data may miss a custom_data key real data has: not a problem.
        assert_eq!(
            check_bounds("{{ customer.custom_data.plan | upper }} {{ 1 / 0 }}"),
            Ok(())
        );
    }

    #[test]
    fn known_variables_pass() {
        let ok = "Hi {{ customer.name }} {% for invoice in invoices %}{{ invoice.number }}{% endfor %}\
                  {% for i in range(3) %}{{ i }}{% endfor %}\
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
