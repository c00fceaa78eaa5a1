//! Inline SVG charts of a segment's size over time, drawn on the server from
//! numbers only (no text from the database reaches them).

use crate::store::sizes::Size;
use chrono::{DateTime, Utc};

/// A line of `sizes` between `from` and `to`, `width` × `height` pixels,
/// with a dot on the latest sample (a sample taken just now is at the right
/// edge: one sample alone would be a line of no length); `None` without
/// samples.
pub fn line(
    sizes: &[Size],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    width: u32,
    height: u32,
) -> Option<String> {
    let last = sizes.last()?;
    let span = (to - from).num_seconds().max(1) as f64;
    let max = sizes.iter().map(|s| s.members).max().unwrap_or(0).max(1) as f64;
    let (w, h) = (f64::from(width), f64::from(height));
    let point = |s: &Size| {
        let x = ((s.at - from).num_seconds() as f64 / span).clamp(0.0, 1.0) * w;
        let y = h - 1.0 - (s.members as f64 / max) * (h - 2.0);
        (x, y)
    };
    let mut points: Vec<(f64, f64)> = sizes.iter().map(point).collect();
    // The dot whole inside the chart.
    let (cx, cy) = point(last);
    let (cx, cy) = (cx.clamp(2.5, w - 2.5), cy.clamp(2.5, h - 2.5));
    if sizes.len() == 1 {
        // One sample: a flat line up to now.
        let end = Size {
            at: to,
            members: last.members,
        };
        points.push(point(&end));
    }
    let points: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    Some(format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{n} samples, latest {latest}, highest {max}\">\
         <polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{points}\"/>\
         <circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"2.5\" fill=\"currentColor\"/></svg>",
        n = sizes.len(),
        latest = last.members,
        max = max as u64,
        points = points.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_spans_the_period_and_the_largest_size() {
        let t = |h: i64| DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::hours(h);
        let sizes = [
            Size {
                at: t(0),
                members: 0,
            },
            Size {
                at: t(10),
                members: 10,
            },
        ];
        let svg = line(&sizes, t(0), t(10), 100, 20).unwrap_or_default();
        assert!(svg.contains("points=\"0.0,19.0 100.0,1.0\""), "{svg}");
        assert!(svg.contains("<circle cx=\"97.5\" cy=\"2.5\""), "{svg}");
        assert!(line(&[], t(0), t(1), 100, 20).is_none());
    }

    #[test]
    fn one_sample_taken_now_shows_as_a_dot() {
        let now = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::days(30);
        let sizes = [Size {
            at: now,
            members: 5,
        }];
        let from = now - chrono::TimeDelta::days(30);
        let svg = line(&sizes, from, now, 100, 20).unwrap_or_default();
        assert!(
            svg.contains("<circle cx=\"97.5\" cy=\"2.5\" r=\"2.5\""),
            "{svg}"
        );
    }
}
