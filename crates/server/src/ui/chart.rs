//! Small server-rendered SVG charts: bars for a series over time (backup size, duration) and a
//! strip of health checks. Colours come from the stylesheet's classes, so the charts follow the
//! theme and the CSP (no inline style).

use std::fmt::Write;

/// One bar: its value and what its tooltip says.
pub struct Bar {
    pub value: f64,
    pub label: String,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;

/// A bar chart, oldest bar on the left; `unit` labels the top of the scale.
pub fn bars(title: &str, bars: &[Bar], unit: impl Fn(f64) -> String) -> String {
    let mut svg = String::new();
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"{}\">",
        HEIGHT + 16.0,
        escape(title)
    );
    if bars.is_empty() || max <= 0.0 {
        let _ = write!(
            svg,
            "<text class=\"chart-label\" x=\"8\" y=\"20\">no data yet</text></svg>"
        );
        return svg;
    }
    let slot = WIDTH / bars.len() as f64;
    let width = (slot * 0.8).max(1.0);
    for (i, bar) in bars.iter().enumerate() {
        let height = (bar.value / max * (HEIGHT - 4.0)).max(1.0);
        let _ = write!(
            svg,
            "<rect class=\"chart-bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{height:.1}\"><title>{}</title></rect>",
            i as f64 * slot + (slot - width) / 2.0,
            HEIGHT - height,
            escape(&bar.label)
        );
    }
    let _ = write!(
        svg,
        "<line class=\"chart-axis\" x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\"/>\
         <text class=\"chart-label\" x=\"4\" y=\"{}\">max {}</text></svg>",
        HEIGHT + 13.0,
        escape(&unit(max))
    );
    svg
}

/// One health check: up or down, and its tooltip.
pub struct Check {
    pub ok: bool,
    pub label: String,
}

/// A strip of checks, oldest on the left: green up, red down.
pub fn checks(title: &str, checks: &[Check]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} 24\" role=\"img\" aria-label=\"{}\">",
        escape(title)
    );
    if checks.is_empty() {
        let _ = write!(
            svg,
            "<text class=\"chart-label\" x=\"8\" y=\"16\">no checks yet</text></svg>"
        );
        return svg;
    }
    let slot = WIDTH / checks.len().max(1) as f64;
    for (i, check) in checks.iter().enumerate() {
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{:.1}\" y=\"2\" width=\"{:.1}\" height=\"20\"><title>{}</title></rect>",
            if check.ok { "check-up" } else { "check-down" },
            i as f64 * slot,
            (slot - 1.0).max(1.0),
            escape(&check.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bars(
            "size",
            &[
                Bar {
                    value: 50.0,
                    label: "a<b".into(),
                },
                Bar {
                    value: 100.0,
                    label: "c".into(),
                },
            ],
            |v| format!("{v} B"),
        );
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("height=\"116.0\""), "{svg}");
        assert!(svg.contains("height=\"58.0\""), "{svg}");
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        assert!(svg.contains("max 100 B"));
        assert!(bars("x", &[], |v| v.to_string()).contains("no data yet"));
    }

    #[test]
    fn checks_are_coloured_by_outcome() {
        let svg = checks(
            "health",
            &[
                Check {
                    ok: true,
                    label: "up".into(),
                },
                Check {
                    ok: false,
                    label: "down".into(),
                },
            ],
        );
        assert_eq!(svg.matches("check-up").count(), 1);
        assert_eq!(svg.matches("check-down").count(), 1);
    }
}
