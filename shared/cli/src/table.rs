//! Plain-text layout for the human-readable forms: aligned `label  value`
//! fields and the rule table every decision carries.

use optline_policy::{RuleOutcome, Verdict};

/// Labelled values printed one per line with the values aligned.
#[derive(Debug, Default)]
pub struct Fields {
    rows: Vec<(String, String)>,
}

impl Fields {
    /// Starts an empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one row.
    pub fn add(&mut self, label: &str, value: impl Into<String>) -> &mut Self {
        self.rows.push((label.to_owned(), value.into()));
        self
    }

    /// The rows, one per line, each ending in a newline.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (label, value) in &self.rows {
            out.push_str(format!("{label:<width$}  {value}").trim_end());
            out.push('\n');
        }
        out
    }
}

/// The snake_case name of a verdict, as in the JSON.
pub fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Defer => "defer",
        Verdict::Fail => "fail",
        Verdict::NotApplicable => "not_applicable",
    }
}

/// The rules consulted, as a table: rule id, version, verdict, detail.
pub fn rule_table(rules: &[RuleOutcome]) -> String {
    let header = ["RULE", "VERSION", "VERDICT", "DETAIL"];
    let rows: Vec<[&str; 4]> = rules
        .iter()
        .map(|r| {
            [
                r.id.as_ref(),
                r.version.as_ref(),
                verdict_name(r.verdict),
                r.detail.as_ref(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `yes` or `no`.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
