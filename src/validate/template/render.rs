//! The one bounded renderer that validation and delivery both use: fuel,
//! output, range, depth and filter-work limits around minijinja.

use minijinja::value::{Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value, filters};
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
pub(super) fn bounded_env(undefined: UndefinedBehavior) -> Environment<'static> {
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

pub(super) fn render_with(
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
