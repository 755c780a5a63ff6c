//! Charts as SVG, drawn on the server: a compliance officer can print the
//! report, and the console needs no script to show it.

use std::fmt::Write as _;

/// Escapes text for XML and HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One series of a chart.
pub(crate) struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 40.0;
const TOP: f64 = 28.0;

/// A round axis maximum at or above `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// Stacked columns, one per label (days), with a legend.
pub(crate) fn stacked_columns(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = nice_max(totals.iter().copied().fold(0.0, f64::max));
    let plot_w = WIDTH - LEFT - 16.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / labels.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let mut svg = open(title);
    axis(&mut svg, max, plot_h);
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut y = TOP + plot_h;
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            let h = v / max * plot_h;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{}"><title>{} {}: {v}</title></rect>"#,
                s.color,
                escape(label),
                escape(s.name)
            );
        }
        // Every label when few, else about ten.
        let every = labels.len().div_ceil(10).max(1);
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                TOP + plot_h + 14.0,
                escape(label)
            );
        }
    }
    legend(&mut svg, series.iter().map(|s| (s.name, s.color)));
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars, one per row, with the value printed.
pub(crate) fn bars(title: &str, rows: &[(String, f64)], unit: &str, color: &str) -> String {
    let height = TOP + 22.0 * rows.len().max(1) as f64 + 16.0;
    let max = nice_max(rows.iter().map(|(_, v)| *v).fold(0.0, f64::max));
    let label_w = 220.0;
    let plot_w = WIDTH - label_w - 90.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {height}" width="100%"><title>{t}</title><text x="8" y="18" font-size="14" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = TOP + 22.0 * i as f64;
        let w = value / max * plot_w;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text><rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="16" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{value:.2} {}</text>"#,
            label_w - 6.0,
            y + 12.0,
            escape(label),
            label_w + w + 4.0,
            y + 12.0,
            escape(unit)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn open(title: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%"><title>{t}</title><text x="8" y="18" font-size="14" font-weight="bold">{t}</text>"#,
        t = escape(title)
    )
}

fn axis(svg: &mut String, max: f64, plot_h: f64) {
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            WIDTH - 16.0,
            LEFT - 4.0,
            y + 3.0,
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        );
    }
}

fn legend<'a>(svg: &mut String, items: impl Iterator<Item = (&'a str, &'a str)>) {
    let mut x = LEFT;
    for (name, color) in items {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
            HEIGHT - 14.0,
            x + 14.0,
            HEIGHT - 5.0,
            escape(name)
        );
        x += 24.0 + 7.0 * name.len() as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_and_escape_their_text() {
        let svg = stacked_columns(
            "Sends <daily>",
            &["2026-11-01".to_owned(), "2026-11-02".to_owned()],
            &[
                Series {
                    name: "sent",
                    color: "#2b6cb0",
                    values: vec![3.0, 5.0],
                },
                Series {
                    name: "suppressed",
                    color: "#c05621",
                    values: vec![1.0, 0.0],
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("Sends &lt;daily&gt;"));
        assert_eq!(svg.matches("<rect").count(), 4 + 2);
        let bars = bars(
            "Opt-outs",
            &[("a@1 & b".to_owned(), 2.5)],
            "per 1,000",
            "#900",
        );
        assert!(bars.contains("a@1 &amp; b") && bars.contains("2.50 per 1,000"));
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(230.0), 250.0);
    }
}
