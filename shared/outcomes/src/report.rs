//! One report over the rollups, for the ops CLI (`optline-ops report`)
//! and the console's overview: the KPIs overall, per program and per
//! template version × arm, and by day; as a table, JSON, CSV or printable
//! HTML with charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use optline_ports::{metric, Rollup};
use serde::Serialize;

use crate::kpi::{kpis, Kpis};
use crate::svg::{self, escape, Series};

/// What to report on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRequest {
    /// First day (UTC), inclusive.
    pub from: NaiveDate,
    /// Last day (UTC), inclusive.
    pub to: NaiveDate,
    /// One program, or all.
    pub program: Option<String>,
    /// USD per segment (the carrier's price plus fees).
    pub price_per_segment: f64,
    /// Each program's no-show rate before texting, when known.
    pub no_show_baselines: BTreeMap<String, f64>,
}

/// Reads what a report needs (the rollups of its days; the off-SMS
/// revocation requests open past their deadline at `now`) and builds it.
pub async fn gather(
    store: &dyn optline_ports::Store,
    request: &ReportRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Report, optline_ports::PortError> {
    let rollups = store.rollups(request.from, request.to).await?;
    let overdue = store
        .revocation_requests()
        .await?
        .iter()
        .filter(|r| r.completed_at.is_none() && r.deadline < now)
        .count();
    Ok(build(&rollups, request, overdue))
}

/// The default price of one SMS segment (USD): a US 10DLC message part
/// before carrier surcharges; deployers pass their own.
pub const DEFAULT_PRICE_PER_SEGMENT: f64 = 0.0083;

/// How a report is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned text.
    Table,
    /// JSON.
    Json,
    /// CSV, one row per template version × arm.
    Csv,
    /// A printable HTML page with charts.
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "html" => Ok(Self::Html),
            other => Err(format!(
                "unknown format {other:?}: table, json, csv or html"
            )),
        }
    }
}

/// One group's KPIs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The program.
    pub program: String,
    /// The template version (`-`: facts with no version, e.g. a STOP
    /// with no text before it).
    pub template: String,
    /// The experiment arm (`-`: none).
    pub arm: String,
    /// Its KPIs.
    pub kpis: Kpis,
}

/// One day's main counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Counts by metric name (sent, delivered, suppressed, ...).
    pub counts: BTreeMap<String, u64>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The program, when one.
    pub program: Option<String>,
    /// USD per segment used for cost.
    pub price_per_segment: f64,
    /// Everything.
    pub overall: Kpis,
    /// Per program.
    pub programs: Vec<Group>,
    /// Per program × template version × arm.
    pub versions: Vec<Group>,
    /// By day.
    pub days: Vec<Day>,
    /// Off-SMS revocation requests open past their deadline now.
    pub revocations_past_deadline: usize,
    /// Consent coverage per category now, when the census was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::coverage::Coverage>,
}

const DAILY: [&str; 8] = [
    metric::SENT,
    metric::DELIVERED,
    metric::UNDELIVERED,
    metric::SUPPRESSED,
    metric::DEFERRED,
    metric::OPT_OUTS,
    "outcome.confirmed",
    "outcome.completed",
];

fn add(into: &mut BTreeMap<String, u64>, counts: &BTreeMap<String, u64>) {
    for (k, v) in counts {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// The report of `rollups` (read for `request`'s days).
pub fn build(
    rollups: &[Rollup],
    request: &ReportRequest,
    revocations_past_deadline: usize,
) -> Report {
    let mut all = BTreeMap::new();
    let mut programs: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut versions: BTreeMap<(String, String, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, BTreeMap<String, u64>> = BTreeMap::new();
    for rollup in rollups {
        let Some(key) = &rollup.key else { continue };
        if key.day < request.from || key.day > request.to {
            continue;
        }
        if request.program.as_ref().is_some_and(|p| *p != key.program) {
            continue;
        }
        add(&mut all, &rollup.counts);
        add(
            programs.entry(key.program.clone()).or_default(),
            &rollup.counts,
        );
        add(
            versions
                .entry((key.program.clone(), key.template.clone(), key.arm.clone()))
                .or_default(),
            &rollup.counts,
        );
        let day = days.entry(key.day).or_default();
        for name in DAILY {
            *day.entry(name.to_owned()).or_default() +=
                rollup.counts.get(name).copied().unwrap_or(0);
        }
    }
    // Every day of the range, so charts show the quiet days too.
    let mut day = request.from;
    while day <= request.to {
        days.entry(day)
            .or_insert_with(|| DAILY.iter().map(|m| ((*m).to_owned(), 0)).collect());
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    let price = request.price_per_segment;
    let baseline = |program: &str| request.no_show_baselines.get(program).copied();
    let single = request.program.as_deref().or_else(|| {
        (programs.len() == 1)
            .then(|| programs.keys().next().map(String::as_str))
            .flatten()
    });
    Report {
        from: request.from,
        to: request.to,
        program: request.program.clone(),
        price_per_segment: price,
        overall: kpis(&all, price, single.and_then(baseline)),
        programs: programs
            .iter()
            .map(|(p, t)| Group {
                program: p.clone(),
                template: optline_ports::NO_KEY.to_owned(),
                arm: optline_ports::NO_KEY.to_owned(),
                kpis: kpis(t, price, baseline(p)),
            })
            .collect(),
        versions: versions
            .iter()
            .map(|((p, template, arm), t)| Group {
                program: p.clone(),
                template: template.clone(),
                arm: arm.clone(),
                kpis: kpis(t, price, baseline(p)),
            })
            .collect(),
        days: days
            .into_iter()
            .map(|(day, counts)| Day { day, counts })
            .collect(),
        revocations_past_deadline,
        coverage: None,
    }
}

fn pct(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn num(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

/// A duration for people: `45 s`, `12 min`, `3.5 h`, `2.1 d`.
fn duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "n/a".to_owned(),
        Some(s) if s < 120.0 => format!("{s:.0} s"),
        Some(s) if s < 7200.0 => format!("{:.0} min", s / 60.0),
        Some(s) if s < 172_800.0 => format!("{:.1} h", s / 3600.0),
        Some(s) => format!("{:.1} d", s / 86_400.0),
    }
}

/// The coverage census as an HTML table (`#coverage`).
pub fn coverage_html(coverage: &crate::coverage::Coverage) -> String {
    let mut out = format!(
        "<h2>Consent coverage now</h2><p>{} contacts; consent in force per category (the contact's ledger and its number's).</p><table id=\"coverage\"><thead><tr><th>category</th><th>in force</th><th>rate</th><th>revoked</th><th>lapsed</th><th>none</th></tr></thead><tbody>",
        coverage.contacts
    );
    for (category, c) in &coverage.by_category {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(category),
            c.covered,
            pct(c.rate()),
            c.revoked,
            c.lapsed,
            c.none
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The headline KPIs, as (name, value) lines.
pub fn headline(k: &Kpis) -> Vec<(&'static str, String)> {
    vec![
        (
            "texts sent",
            format!(
                "{} ({} segment{})",
                k.sent,
                k.segments,
                if k.segments == 1 { "" } else { "s" }
            ),
        ),
        ("delivery rate", pct(k.delivery_rate)),
        ("suppressed", k.suppressed.to_string()),
        ("deferred", k.deferred.to_string()),
        ("response rate", pct(k.response_rate)),
        (
            "confirmation rate",
            format!("{} of {} episodes", pct(k.confirmation_rate), k.episodes),
        ),
        ("completion rate", pct(k.completion_rate)),
        (
            "time to completion",
            format!(
                "median {}, p90 {}",
                duration(k.time_to_complete.median_seconds),
                duration(k.time_to_complete.p90_seconds)
            ),
        ),
        (
            "no-show rate",
            format!(
                "{} (baseline {})",
                pct(k.no_show_rate),
                k.no_show_baseline
                    .map_or_else(|| "not set".to_owned(), |b| pct(Some(b)))
            ),
        ),
        (
            "opt-outs",
            format!(
                "{} ({} within 24 h, {} within 7 d of a text: {} per 1,000 texts)",
                k.opt_outs,
                k.opt_outs_24h,
                k.opt_outs_7d,
                num(k.opt_out_rate_per_1000, 2)
            ),
        ),
        (
            "opt-out to suppression",
            format!(
                "median {}, p90 {}",
                duration(k.opt_out_commit.median_seconds),
                duration(k.opt_out_commit.p90_seconds)
            ),
        ),
        (
            "opt-out to confirmation",
            format!(
                "median {}, p90 {} ({} skipped past the deadline)",
                duration(k.opt_out_confirmation.median_seconds),
                duration(k.opt_out_confirmation.p90_seconds),
                k.lane_skipped
            ),
        ),
        (
            "off-SMS revocations",
            format!(
                "{} of {} completed on time",
                k.revocations_on_time, k.revocations_completed
            ),
        ),
        ("cost", format!("${:.2}", k.cost_usd)),
    ]
}

impl Report {
    /// The report written out in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default(),
            Format::Csv => self.csv(),
            Format::Html => self.html(),
        }
    }

    fn title(&self) -> String {
        format!(
            "optline report {} to {}{}",
            self.from,
            self.to,
            self.program
                .as_ref()
                .map(|p| format!(", program {p}"))
                .unwrap_or_default()
        )
    }

    fn table(&self) -> String {
        let mut out = format!("{}\n\n", self.title());
        for (name, value) in headline(&self.overall) {
            let _ = writeln!(out, "  {name:<24} {value}");
        }
        let _ = writeln!(
            out,
            "  {:<24} {}\n",
            "revocations overdue now", self.revocations_past_deadline
        );
        let _ = writeln!(
            out,
            "{:<14} {:<28} {:<16} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
            "program",
            "template",
            "arm",
            "sent",
            "delivered",
            "confirm",
            "complete",
            "opt-outs",
            "per 1,000",
            "median TTC"
        );
        for g in &self.versions {
            let k = &g.kpis;
            let _ = writeln!(
                out,
                "{:<14} {:<28} {:<16} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10}",
                g.program,
                g.template,
                g.arm,
                k.sent,
                pct(k.delivery_rate),
                pct(k.confirmation_rate),
                pct(k.completion_rate),
                k.opt_outs,
                num(k.opt_out_rate_per_1000, 2),
                duration(k.time_to_complete.median_seconds)
            );
        }
        if let Some(coverage) = &self.coverage {
            let _ = writeln!(
                out,
                "\nconsent coverage now ({} contacts)",
                coverage.contacts
            );
            for (category, c) in &coverage.by_category {
                let _ = writeln!(
                    out,
                    "  {category:<24} {:>7} in force ({}), {} revoked, {} lapsed, {} none",
                    c.covered,
                    pct(c.rate()),
                    c.revoked,
                    c.lapsed,
                    c.none
                );
            }
        }
        if !self.overall.suppressed_by_reason.is_empty() {
            out.push_str("\nsuppressed by reason\n");
            for (reason, n) in &self.overall.suppressed_by_reason {
                let _ = writeln!(out, "  {reason:<40} {n:>7}");
            }
        }
        out
    }

    fn csv(&self) -> String {
        let header = "program,template,arm,sent,segments,episodes,delivered,undelivered,delivery_rate,suppressed,deferred,replies,response_rate,confirmed,confirmation_rate,completed,completion_rate,no_shows,no_show_rate,opt_outs,opt_outs_24h,opt_outs_7d,opt_out_rate_per_1000,median_time_to_complete_s,p90_time_to_complete_s,cost_usd";
        let mut out = format!("{header}\r\n");
        let field = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_owned()
            }
        };
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
        for g in &self.versions {
            let k = &g.kpis;
            let row = [
                field(&g.program),
                field(&g.template),
                field(&g.arm),
                k.sent.to_string(),
                k.segments.to_string(),
                k.episodes.to_string(),
                k.delivered.to_string(),
                k.undelivered.to_string(),
                opt(k.delivery_rate),
                k.suppressed.to_string(),
                k.deferred.to_string(),
                k.replies.to_string(),
                opt(k.response_rate),
                k.confirmed.to_string(),
                opt(k.confirmation_rate),
                k.completed.to_string(),
                opt(k.completion_rate),
                k.no_shows.to_string(),
                opt(k.no_show_rate),
                k.opt_outs.to_string(),
                k.opt_outs_24h.to_string(),
                k.opt_outs_7d.to_string(),
                opt(k.opt_out_rate_per_1000),
                opt(k.time_to_complete.median_seconds),
                opt(k.time_to_complete.p90_seconds),
                format!("{:.4}", k.cost_usd),
            ];
            out.push_str(&row.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// The charts of the report (SVG), for the HTML page and the console.
    pub fn charts(&self) -> Vec<String> {
        let labels: Vec<String> = self
            .days
            .iter()
            .map(|d| d.day.format("%m-%d").to_string())
            .collect();
        let series = |name: &'static str, metric: &str, color: &'static str| Series {
            name,
            color,
            values: self
                .days
                .iter()
                .map(|d| d.counts.get(metric).copied().unwrap_or(0) as f64)
                .collect(),
        };
        let mut charts = vec![
            svg::stacked_columns(
                "Texts by day: sent, suppressed, deferred",
                &labels,
                &[
                    series("sent", metric::SENT, "#2b6cb0"),
                    series("suppressed", metric::SUPPRESSED, "#c05621"),
                    series("deferred", metric::DEFERRED, "#a0aec0"),
                ],
            ),
            svg::stacked_columns(
                "Outcomes by day: confirmations, completions, opt-outs",
                &labels,
                &[
                    series("confirmed", "outcome.confirmed", "#2f855a"),
                    series("completed", "outcome.completed", "#68d391"),
                    series("opt-outs", metric::OPT_OUTS, "#c53030"),
                ],
            ),
        ];
        let rates: Vec<(String, f64)> = self
            .versions
            .iter()
            .filter(|g| g.kpis.sent > 0)
            .map(|g| {
                let arm = if g.arm == optline_ports::NO_KEY {
                    String::new()
                } else {
                    format!(" [{}]", g.arm)
                };
                (
                    format!("{}{arm}", g.template),
                    g.kpis.opt_out_rate_per_1000.unwrap_or(0.0),
                )
            })
            .collect();
        if !rates.is_empty() {
            charts.push(svg::bars(
                "Opt-outs within 7 days per 1,000 texts, by version",
                &rates,
                "",
                "#c53030",
            ));
        }
        let reasons: Vec<(String, f64)> = self
            .overall
            .suppressed_by_reason
            .iter()
            .map(|(r, n)| (r.clone(), *n as f64))
            .collect();
        if !reasons.is_empty() {
            charts.push(svg::bars("Suppressions by reason", &reasons, "", "#c05621"));
        }
        charts
    }

    fn html(&self) -> String {
        let title = escape(&self.title());
        let mut out = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}table{{border-collapse:collapse;width:100%;font-size:.85rem}}td,th{{border-bottom:1px solid #ddd;padding:.25rem .4rem;text-align:right}}td:nth-child(-n+3),th:nth-child(-n+3){{text-align:left}}dl{{display:grid;grid-template-columns:16rem 1fr;gap:.2rem}}dt{{font-weight:600}}figure{{margin:1.5rem 0;break-inside:avoid}}@media print{{body{{margin:0}}}}</style></head><body><h1>{title}</h1><dl>"
        );
        for (name, value) in headline(&self.overall) {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(&value));
        }
        let _ = write!(
            out,
            "<dt>revocations overdue now</dt><dd>{}</dd></dl>",
            self.revocations_past_deadline
        );
        if let Some(coverage) = &self.coverage {
            out.push_str(&coverage_html(coverage));
        }
        for chart in self.charts() {
            let _ = write!(out, "<figure>{chart}</figure>");
        }
        out.push_str("<h2>By template version</h2><table><thead><tr><th>program</th><th>template</th><th>arm</th><th>sent</th><th>delivered</th><th>confirmed</th><th>completed</th><th>opt-outs</th><th>per 1,000</th><th>median to complete</th><th>cost</th></tr></thead><tbody>");
        for g in &self.versions {
            let k = &g.kpis;
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>${:.2}</td></tr>",
                escape(&g.program),
                escape(&g.template),
                escape(&g.arm),
                k.sent,
                pct(k.delivery_rate),
                pct(k.confirmation_rate),
                pct(k.completion_rate),
                k.opt_outs,
                num(k.opt_out_rate_per_1000, 2),
                duration(k.time_to_complete.median_seconds),
                k.cost_usd
            );
        }
        out.push_str(
            "</tbody></table><p>Definitions: docs/outcomes.md. Days are UTC.</p></body></html>",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
    use super::*;
    use optline_ports::RollupKey;

    fn rollup(day: &str, program: &str, template: &str, counts: &[(&str, u64)]) -> Rollup {
        Rollup {
            key: Some(RollupKey {
                program: program.to_owned(),
                template: template.to_owned(),
                arm: "-".to_owned(),
                day: day.parse().unwrap(),
            }),
            counts: counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    fn request(program: Option<&str>) -> ReportRequest {
        ReportRequest {
            from: "2026-11-01".parse().unwrap(),
            to: "2026-11-03".parse().unwrap(),
            program: program.map(str::to_owned),
            price_per_segment: 0.01,
            no_show_baselines: BTreeMap::from([("clinic".to_owned(), 0.2)]),
        }
    }

    #[test]
    fn a_report_sums_its_days_and_keeps_to_its_range_and_program() {
        let rollups = vec![
            rollup(
                "2026-11-01",
                "clinic",
                "reminder@1",
                &[("sent", 10), ("segments", 12)],
            ),
            rollup(
                "2026-11-02",
                "clinic",
                "reminder@1",
                &[("sent", 5), ("opt_outs_7d", 1)],
            ),
            rollup("2026-11-02", "clinic", "reminder@2", &[("sent", 7)]),
            rollup("2026-11-02", "lab", "result@1", &[("sent", 100)]),
            rollup("2026-10-31", "clinic", "reminder@1", &[("sent", 1000)]),
        ];
        let report = build(&rollups, &request(Some("clinic")), 2);
        assert_eq!(report.overall.sent, 22);
        assert_eq!(report.versions.len(), 2);
        assert_eq!(report.versions[0].kpis.sent, 15);
        assert_eq!(report.days.len(), 3);
        assert_eq!(report.days[2].counts["sent"], 0);
        assert_eq!(report.overall.no_show_baseline, Some(0.2));
        assert!((report.overall.cost_usd - 0.12).abs() < 1e-9);
        let all = build(&rollups, &request(None), 0);
        assert_eq!(all.overall.sent, 122);
        assert_eq!(all.programs.len(), 2);
        assert_eq!(all.overall.no_show_baseline, None);

        let csv = report.render(Format::Csv);
        assert_eq!(csv.lines().count(), 3);
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("clinic,reminder@1,-,15,12,"));
        let html = report.render(Format::Html);
        assert!(html.contains("<svg") && html.contains("reminder@2"));
        let json: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
        assert_eq!(json["overall"]["sent"], 22);
        assert!(report
            .render(Format::Table)
            .contains("revocations overdue now"));
        assert!("pdf".parse::<Format>().is_err());
    }
}
