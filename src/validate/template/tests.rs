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
