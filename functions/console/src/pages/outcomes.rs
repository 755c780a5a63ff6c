//! Outcomes: the last week's KPIs on the overview, the report
//! (`/console/report`), and the experiments with their results
//! (`/console/experiments`). All of it comes from the rollups, through the
//! same use cases as `optline-ops report` and the templates API.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use lambda_http::http::StatusCode;
use optline_identity::Person;
use optline_outcomes::{experiments, headline, Report, ReportRequest, DEFAULT_PRICE_PER_SEGMENT};

use super::{ok, Page};
use crate::html::{esc, table};
use crate::{refusal, Deps};

/// The longest report the console draws (a year).
const MAX_DAYS: i64 = 366;

async fn report_of(
    deps: &Deps,
    from: NaiveDate,
    to: NaiveDate,
    program: Option<String>,
    now: DateTime<Utc>,
) -> Result<Report, optline_ports::PortError> {
    let request = ReportRequest {
        from,
        to,
        program,
        price_per_segment: DEFAULT_PRICE_PER_SEGMENT,
        no_show_baselines: deps.no_show_baselines.clone(),
    };
    optline_outcomes::gather(deps.store.as_ref(), &request, now).await
}

fn kpis(report: &Report) -> String {
    let mut out = String::from(r#"<dl class="kpis" id="kpis">"#);
    for (name, value) in headline(&report.overall) {
        out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", esc(name), esc(&value)));
    }
    out.push_str("</dl>");
    out
}

/// The overview's section: the last seven days.
pub(crate) async fn overview_section(deps: &Deps, now: DateTime<Utc>) -> String {
    let to = now.date_naive();
    let from = to - Duration::days(6);
    match report_of(deps, from, to, None, now).await {
        Ok(report) => {
            let mut out = format!(
                r#"<h2>Last 7 days</h2><p><a href="/console/report?from={from}&amp;to={to}">Full report</a> · <a href="/console/experiments">Experiments</a></p>{}"#,
                kpis(&report)
            );
            if let Some(chart) = report.charts().into_iter().next() {
                out.push_str(&format!(r#"<figure id="sends-by-day">{chart}</figure>"#));
            }
            let rows: Vec<Vec<String>> = report
                .overall
                .suppressed_by_reason
                .iter()
                .map(|(reason, n)| vec![esc(reason), n.to_string()])
                .collect();
            out.push_str("<h3>Suppressed, by reason</h3>");
            out.push_str(&table("suppressed-by-reason", &["reason", "steps"], &rows));
            out
        }
        Err(e) => {
            tracing::error!(error = %e, "rollups unavailable");
            "<h2>Last 7 days</h2><p>The figures are unavailable; try again.</p>".to_owned()
        }
    }
}

/// `GET /console/report?from=YYYY-MM-DD&to=YYYY-MM-DD[&program=][&coverage=1]`
/// (`coverage=1` adds the consent coverage census, which reads every
/// contact).
pub async fn report_page(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    query: (Option<&str>, Option<&str>, Option<&str>, Option<&str>),
    now: DateTime<Utc>,
) -> Page {
    let today = now.date_naive();
    let parse = |raw: Option<&str>, default: NaiveDate| match raw {
        None | Some("") => Ok(default),
        Some(d) => d.parse::<NaiveDate>().map_err(|_| ()),
    };
    let (Ok(from), Ok(to)) = (
        parse(query.0, today - Duration::days(29)),
        parse(query.1, today),
    ) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            Some(who),
            csrf,
            "Dates are YYYY-MM-DD.",
        );
    };
    if to < from || (to - from).num_days() > MAX_DAYS {
        return refusal(
            StatusCode::BAD_REQUEST,
            Some(who),
            csrf,
            "The end is on or after the start, at most a year later.",
        );
    }
    let program = query.2.filter(|p| !p.is_empty()).map(str::to_owned);
    let census = query.3 == Some("1");
    let report = match report_of(deps, from, to, program, now).await {
        Ok(mut r) if census => {
            let store = deps.store.as_ref();
            let taken = match optline_outcomes::coverage::categories(store).await {
                Ok(categories) => {
                    optline_outcomes::coverage::coverage(
                        store,
                        &categories,
                        r.program.as_deref(),
                        now,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match taken {
                Ok(c) => {
                    r.coverage = Some(c);
                    r
                }
                Err(e) => {
                    tracing::error!(error = %e, "coverage census failed");
                    r
                }
            }
        }
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "rollups unavailable");
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(who),
                csrf,
                "Storage is unavailable; try again.",
            );
        }
    };
    let mut body = format!(
        r#"<form method="get" action="/console/report"><label>From <input type="date" name="from" value="{from}"></label> <label>To <input type="date" name="to" value="{to}"></label> <button>Show</button></form><p>Days are UTC. Definitions: docs/outcomes.md. Off-SMS revocations overdue now: <strong id="overdue">{}</strong>.</p>{}"#,
        report.revocations_past_deadline,
        kpis(&report)
    );
    match &report.coverage {
        Some(coverage) => body.push_str(&optline_outcomes::report::coverage_html(coverage)),
        None => body.push_str(&format!(
            r#"<p><a id="take-census" href="/console/report?from={from}&amp;to={to}&amp;coverage=1">Consent coverage now</a> (reads every contact)</p>"#
        )),
    }
    for chart in report.charts() {
        body.push_str(&format!("<figure>{chart}</figure>"));
    }
    let pct = |r: Option<f64>| r.map_or_else(|| "n/a".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let rows: Vec<Vec<String>> = report
        .versions
        .iter()
        .map(|g| {
            vec![
                esc(&g.program),
                esc(&g.template),
                esc(&g.arm),
                g.kpis.sent.to_string(),
                pct(g.kpis.delivery_rate),
                pct(g.kpis.confirmation_rate),
                pct(g.kpis.completion_rate),
                g.kpis.opt_outs.to_string(),
                g.kpis
                    .opt_out_rate_per_1000
                    .map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}")),
            ]
        })
        .collect();
    body.push_str("<h2>By template version</h2>");
    body.push_str(&table(
        "versions",
        &[
            "program",
            "template",
            "arm",
            "sent",
            "delivered",
            "confirmed",
            "completed",
            "opt-outs",
            "per 1,000",
        ],
        &rows,
    ));
    ok(who, csrf, "Report", &body)
}

/// `GET /console/experiments`: each experiment, its arms and results.
pub async fn experiments_page(deps: &Deps, who: &Person, csrf: &str, now: DateTime<Utc>) -> Page {
    let store = deps.store.as_ref();
    let all = match store.experiments().await {
        Ok(all) => all,
        Err(e) => {
            tracing::error!(error = %e, "experiments unavailable");
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(who),
                csrf,
                "Storage is unavailable; try again.",
            );
        }
    };
    let mut body = String::from(
        "<p>Experiments are started and stopped by compliance through the templates API; the opt-out guardrail stops a worse arm on its own.</p>",
    );
    if all.is_empty() {
        body.push_str("<p>No experiments yet.</p>");
    }
    for experiment in &all {
        body.push_str(&format!(
            r#"<h2 id="experiment-{id}">{id} on {t} ({state})</h2>"#,
            id = esc(&experiment.id),
            t = esc(&experiment.template_id),
            state = if experiment.running {
                "running"
            } else {
                "stopped"
            }
        ));
        let Ok(results) = experiments::results(store, experiment, now).await else {
            body.push_str("<p>Results unavailable.</p>");
            continue;
        };
        let rows: Vec<Vec<String>> = results
            .arms
            .iter()
            .map(|a| {
                vec![
                    esc(&a.name),
                    a.version
                        .map_or_else(|| "planned".to_owned(), |v| format!("v{v}")),
                    a.episodes.to_string(),
                    format!(
                        "{:.1}% [{:.1}, {:.1}]",
                        a.rate * 100.0,
                        a.interval.0 * 100.0,
                        a.interval.1 * 100.0
                    ),
                    a.probability_best
                        .map_or_else(|| "-".to_owned(), |p| format!("{p:.3}")),
                    format!("{} / {}", a.opt_outs, a.sends),
                    match &a.stopped {
                        Some(stop) => esc(&format!("stopped by {}: {}", stop.by, stop.reason)),
                        None if a.running => "running".to_owned(),
                        None => "stopped".to_owned(),
                    },
                ]
            })
            .collect();
        body.push_str(&table(
            &format!("arms-{}", experiment.id),
            &[
                "arm",
                "version",
                "episodes",
                "rate [95%]",
                "P(best)",
                "opt-outs / sends",
                "state",
            ],
            &rows,
        ));
        body.push_str(&format!(
            "<p>Call: {}</p>",
            esc(&match results.call {
                optline_policy::experiment::Call::NotEnoughData { min_sample } => {
                    format!("not enough data yet ({min_sample} episodes per arm first)")
                }
                optline_policy::experiment::Call::Leading { arm, probability } => format!(
                    "{} leads (P(best) {probability:.3})",
                    experiment.arms.get(arm).map_or("?", |a| a.name.as_str())
                ),
                optline_policy::experiment::Call::Winner { arm, probability } => format!(
                    "{} is best (P(best) {probability:.3})",
                    experiment.arms.get(arm).map_or("?", |a| a.name.as_str())
                ),
            })
        ));
    }
    ok(who, csrf, "Experiments", &body)
}
