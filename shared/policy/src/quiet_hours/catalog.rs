//! The quiet-hours table as `optline rules` lists it.

use super::table;
use crate::{CatalogRow, PolicyError};

/// Every row of the table as a [`CatalogRow`], in table order, for
/// `optline rules`.
pub fn catalog() -> Result<Vec<CatalogRow>, PolicyError> {
    let table = table()?;
    Ok(table
        .rules
        .iter()
        .map(|rule| {
            let r = &rule.raw;
            let mut summary = describe_days(&rule.days);
            if r.no_sunday {
                summary.push_str("; no Sundays");
            }
            if r.no_holidays {
                summary.push_str("; no federal holidays");
            }
            if r.waived_by_prior_consent {
                summary.push_str("; not when the recipient's prior consent is recorded");
            }
            CatalogRow {
                table: "quiet_hours",
                version: table.version.clone(),
                id: r.id.clone(),
                jurisdiction: r.jurisdiction.clone(),
                states: r.state.iter().cloned().collect(),
                classes: r.classes.clone(),
                summary,
                effective_from: r.effective_from,
                effective_from_basis: r.effective_from_basis.clone(),
                effective_until: r.effective_until,
                source: r.source.clone(),
                source_quality: r.source_quality.clone(),
                note: r.note.clone(),
            }
        })
        .collect())
}

/// "Mon-Sat 09:00-21:00, Sun 12:00-21:00" from a week of windows.
fn describe_days(days: &[Option<(u32, u32)>; 7]) -> String {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
    let window = |w: Option<(u32, u32)>| match w {
        Some((start, end)) => format!("{}-{}", hhmm(start), hhmm(end)),
        None => "closed".to_owned(),
    };
    let mut parts = Vec::new();
    let mut i = 0;
    while i < days.len() {
        let w = days.get(i).copied().flatten();
        let mut j = i;
        while days.get(j + 1).copied().flatten() == w && j + 1 < days.len() {
            j += 1;
        }
        let name = |k: usize| NAMES.get(k).copied().unwrap_or_default();
        let span = if i == 0 && j == 6 {
            "every day".to_owned()
        } else if i == j {
            name(i).to_owned()
        } else {
            format!("{}-{}", name(i), name(j))
        };
        parts.push(format!("{span} {}", window(w)));
        i = j + 1;
    }
    parts.join(", ")
}
