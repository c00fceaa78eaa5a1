//! Inline SVG charts of a segment's size over time, drawn on the server from
//! numbers only (no text from the database reaches them).

use crate::store::sizes::Size;
use chrono::{DateTime, Utc};

/// A line of `sizes` between `from` and `to`, `width` × `height` pixels;
/// `None` without samples.
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
        format!("{x:.1},{y:.1}")
    };
    let mut points: Vec<String> = sizes.iter().map(point).collect();
    if sizes.len() == 1 {
        // One sample: a flat line up to now.
        let end = Size {
            at: to,
            members: last.members,
        };
        points.push(point(&end));
    }
    Some(format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" \
         role=\"img\" aria-label=\"{n} samples, latest {latest}, highest {max}\">\
         <polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{points}\"/></svg>",
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
        assert!(line(&[], t(0), t(1), 100, 20).is_none());
    }
}
