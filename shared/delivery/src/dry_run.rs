//! What a sweep at an instant would lead to, step by step, and why:
//! written nowhere.

use chrono::{DateTime, Utc};
use optline_policy::decision::Decision;
use optline_policy::Verdict;
use optline_ports::StepId;

use crate::assess::{assess, Assessment};
use crate::dispatch::{Deps, DispatchError};

/// One step in a dry run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRunStep {
    /// The step.
    pub step_id: StepId,
    /// Its contact.
    pub contact_id: String,
    /// Template id and version.
    pub template: String,
    /// `send`, `defer` or `suppress`.
    pub decision: &'static str,
    /// Until when, for a deferral.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Why not now (rule ids).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What a sweep at `at` would lead to, step by step, with counts per
/// decision and per reason. Nothing is claimed, queued, sent or written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRun {
    /// The instant assessed.
    pub at: DateTime<Utc>,
    /// Every due step.
    pub steps: Vec<DryRunStep>,
    /// Steps per decision.
    pub decisions: std::collections::BTreeMap<&'static str, usize>,
    /// Deferred or suppressed steps per reason.
    pub reasons: std::collections::BTreeMap<String, usize>,
}

/// Assesses every step due at `at` (up to `limit`) as the sweep (its
/// audience rules) and then dispatch (its decision) would.
pub async fn dry_run(
    deps: &Deps,
    at: DateTime<Utc>,
    limit: usize,
) -> Result<DryRun, DispatchError> {
    let due = deps.store.due_steps(at, limit).await?;
    let mut report = DryRun {
        at,
        steps: Vec::with_capacity(due.len()),
        decisions: std::collections::BTreeMap::new(),
        reasons: std::collections::BTreeMap::new(),
    };
    for step in &due {
        // The sweep's audience rules first: an excluded step is never queued.
        let (audience, _) =
            optline_episodes::select(deps.store.as_ref(), &deps.config, step, at).await?;
        let assessed = if audience.included {
            assess(step, deps, at).await?
        } else {
            Assessment::Refused {
                reasons: audience.reasons,
                rules: audience.rules,
            }
        };
        let (decision, until, reasons) = match assessed {
            Assessment::Refused { reasons, .. } => ("suppress", None, reasons),
            Assessment::Decided { decision, .. } => match decision {
                Decision::Send { .. } => ("send", None, Vec::new()),
                Decision::Defer { until, rules } => (
                    "defer",
                    until,
                    rules
                        .iter()
                        .filter(|r| r.verdict == Verdict::Defer || r.verdict == Verdict::Fail)
                        .map(|r| r.id.to_string())
                        .collect(),
                ),
                Decision::Suppress { reasons, .. } => ("suppress", None, reasons),
            },
        };
        *report.decisions.entry(decision).or_insert(0) += 1;
        for reason in &reasons {
            *report.reasons.entry(reason.clone()).or_insert(0) += 1;
        }
        report.steps.push(DryRunStep {
            step_id: step.id.clone(),
            contact_id: step.contact_id.as_str().to_owned(),
            template: format!("{}@{}", step.template_id, step.template_version),
            decision,
            until,
            reasons,
        });
    }
    Ok(report)
}
