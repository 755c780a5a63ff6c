//! Experiments among approved template versions, with an opt-out
//! guardrail (`docs/outcomes.md`).
//!
//! - An experiment names a template family and two to five arms, each a
//!   version that is published and approved now (never a draft), an
//!   optional persistent holdout (who get the control, the first arm's
//!   version, however the arms change, measured apart), a primary metric
//!   and the guardrail's settings.
//! - Dispatch asks [`arm_for`] which version a step carries: a stable hash
//!   of the contact and the experiment ([`optline_policy::experiment::assign`]);
//!   the send's audit record, send record and tally carry the arm.
//! - [`results`] reads the arms' rollups: each arm's rate of the primary
//!   metric per episode texted, with a 95% credible interval and the
//!   probability that it is best (Beta-Binomial), called only once every
//!   arm has its minimum sample; and each arm's opt-out guardrail.
//! - [`enforce_guardrails`] stops an arm whose opt-out rate is
//!   significantly worse (an always-valid sequential test, so it may look
//!   after every batch): one commit holding the experiment's new revision
//!   with its history entry, a review item for the compliance queue and the
//!   change's announcement.
//! - Starting and stopping are people's acts, by a verified person in the
//!   compliance group (checked by the function that takes the request).

use chrono::{DateTime, Utc};
use optline_library::Library;
use optline_policy::experiment::{self as stats, Assignment, Call, Guardrail};
use optline_ports::{
    metric, ArmStop, Commit, Committed, Experiment, ExperimentArm, ExperimentEvent,
    GuardrailSettings, OutboxEvent, PortError, PrimaryMetric, ReviewItem, Step, Store, Write,
};
use serde::{Deserialize, Serialize};

/// The detail-type of experiment changes.
pub const EXPERIMENT_DETAIL_TYPE: &str = "optline.experiment.changed";

/// Fewest and most arms.
const ARMS: std::ops::RangeInclusive<usize> = 2..=5;

/// The largest holdout: half the contacts.
const MAX_HOLDOUT_BASIS_POINTS: u16 = 5_000;

/// The probability of being best that makes a winner.
pub const WINNER_PROBABILITY: f64 = 0.95;

/// Why an experiment request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The request is not valid (a 400 or 422).
    #[error("{0}")]
    Invalid(String),
    /// No such experiment (404).
    #[error("no such experiment")]
    NotFound,
    /// It exists, or it moved (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// An arm as requested.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    /// Its name.
    pub name: String,
    /// The version it sends.
    pub version: u32,
}

/// An experiment as requested.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentSpec {
    /// Its id.
    pub id: String,
    /// The template family.
    pub template_id: String,
    /// The arms.
    pub arms: Vec<ArmSpec>,
    /// The holdout in basis points (default none).
    #[serde(default)]
    pub holdout_basis_points: u16,
    /// What the arms are compared on.
    pub primary_metric: PrimaryMetric,
    /// Episodes per arm before a call (default 200).
    #[serde(default)]
    pub min_sample_per_arm: Option<u64>,
    /// The guardrail's settings (default alpha 0.05, tau 0.01, 100 sends).
    #[serde(default)]
    pub guardrail: Option<GuardrailSettings>,
}

fn valid_name(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check(spec: &ExperimentSpec) -> Result<(), ExperimentError> {
    let invalid = |m: &str| Err(ExperimentError::Invalid(m.to_owned()));
    if !valid_name(&spec.id, 40) {
        return invalid("id: 1 to 40 of a-z, 0-9 and -");
    }
    if !ARMS.contains(&spec.arms.len()) {
        return invalid("arms: two to five");
    }
    let mut names: Vec<&str> = spec.arms.iter().map(|a| a.name.as_str()).collect();
    let mut versions: Vec<u32> = spec.arms.iter().map(|a| a.version).collect();
    names.sort_unstable();
    names.dedup();
    versions.sort_unstable();
    versions.dedup();
    if names.len() != spec.arms.len() || versions.len() != spec.arms.len() {
        return invalid("arms: each needs its own name and its own version");
    }
    if spec
        .arms
        .iter()
        .any(|a| !valid_name(&a.name, 24) || a.name == "holdout")
    {
        return invalid("arm names: 1 to 24 of a-z, 0-9 and -, not \"holdout\"");
    }
    if spec.holdout_basis_points > MAX_HOLDOUT_BASIS_POINTS {
        return invalid("holdout_basis_points: at most 5000 (half)");
    }
    if spec.min_sample_per_arm == Some(0) {
        return invalid("min_sample_per_arm: at least 1");
    }
    if let Some(g) = &spec.guardrail {
        let alpha_ok = g.alpha > 0.0 && g.alpha <= 0.2;
        let tau_ok = g.tau > 0.0 && g.tau <= 0.5;
        if !alpha_ok || !tau_ok || g.min_sends == 0 {
            return invalid("guardrail: alpha in (0, 0.2], tau in (0, 0.5], min_sends at least 1");
        }
    }
    Ok(())
}

fn announcement(experiment: &Experiment, event: &ExperimentEvent) -> OutboxEvent {
    OutboxEvent {
        id: format!("experiment:{}:{}", experiment.id, experiment.revision),
        detail_type: EXPERIMENT_DETAIL_TYPE.to_owned(),
        at: event.at,
        detail: serde_json::json!({
            "experiment_id": experiment.id,
            "template_id": experiment.template_id,
            "action": event.action,
            "detail": event.detail,
            "by": event.by,
            "running": experiment.running,
            "arms": experiment.arms,
            "at": event.at,
        }),
    }
}

async fn commit_change(
    store: &dyn Store,
    experiment: &Experiment,
    event: &ExperimentEvent,
    review: Option<ReviewItem>,
) -> Result<(), ExperimentError> {
    let mut commit = Commit::default();
    commit.push(Write::Experiment(experiment.clone()));
    commit.push(Write::Outbox(announcement(experiment, event)));
    if let Some(item) = review {
        commit.push(Write::Review(item));
    }
    match store.commit(commit).await? {
        Committed::Done(_) => Ok(()),
        Committed::Duplicate(_) | Committed::Conflict(_) => Err(ExperimentError::Conflict(
            "the experiment changed meanwhile (or its id is taken); read it again".to_owned(),
        )),
    }
}

/// Starts an experiment for `by` (a person in the compliance group).
pub async fn start(
    library: &Library<'_>,
    store: &dyn Store,
    spec: ExperimentSpec,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Experiment, ExperimentError> {
    check(&spec)?;
    for arm in &spec.arms {
        if let Err((rule, why)) = library
            .sendable(&spec.template_id, arm.version, now)
            .await?
        {
            return Err(ExperimentError::Invalid(format!(
                "arm {}: {}@{} is not published and approved ({rule}: {why})",
                arm.name, spec.template_id, arm.version
            )));
        }
    }
    let running = store.experiments().await?;
    if running
        .iter()
        .any(|e| e.running && e.template_id == spec.template_id)
    {
        return Err(ExperimentError::Conflict(format!(
            "{} already has a running experiment",
            spec.template_id
        )));
    }
    let event = ExperimentEvent {
        at: now,
        by: by.to_owned(),
        action: "started".to_owned(),
        detail: format!(
            "arms {}; holdout {} bp; primary metric {:?}",
            spec.arms
                .iter()
                .map(|a| format!("{}={}@{}", a.name, spec.template_id, a.version))
                .collect::<Vec<_>>()
                .join(", "),
            spec.holdout_basis_points,
            spec.primary_metric
        ),
    };
    let experiment = Experiment {
        id: spec.id,
        template_id: spec.template_id,
        arms: spec
            .arms
            .into_iter()
            .map(|a| ExperimentArm {
                name: a.name,
                version: a.version,
                stopped: None,
            })
            .collect(),
        holdout_basis_points: spec.holdout_basis_points,
        primary_metric: spec.primary_metric,
        min_sample_per_arm: spec.min_sample_per_arm.unwrap_or(200),
        guardrail: spec.guardrail.unwrap_or_default(),
        running: true,
        started_at: now,
        history: vec![event.clone()],
        revision: 0,
    };
    commit_change(store, &experiment, &event, None).await?;
    Ok(experiment)
}

/// Stops a running experiment, by a person, with a reason.
pub async fn stop(
    store: &dyn Store,
    id: &str,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Experiment, ExperimentError> {
    if reason.trim().is_empty() || reason.len() > 500 {
        return Err(ExperimentError::Invalid(
            "reason: why it stops (1 to 500 characters)".to_owned(),
        ));
    }
    let mut experiment = store
        .experiment(id)
        .await?
        .ok_or(ExperimentError::NotFound)?;
    if !experiment.running {
        return Err(ExperimentError::Conflict(
            "the experiment has stopped".to_owned(),
        ));
    }
    let event = ExperimentEvent {
        at: now,
        by: by.to_owned(),
        action: "stopped".to_owned(),
        detail: reason.trim().to_owned(),
    };
    experiment.running = false;
    experiment.revision += 1;
    experiment.history.push(event.clone());
    commit_change(store, &experiment, &event, None).await?;
    Ok(experiment)
}

/// The version a step carries under the running experiments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArmChoice {
    /// Its family is under no experiment: the step as planned.
    Unchanged,
    /// The step carries `version`, tagged with `arm`.
    Arm {
        /// The arm's version.
        version: u32,
        /// `experiment/arm` (`experiment/holdout` for the holdout, who
        /// get the control: the first arm's version).
        arm: String,
    },
}

/// Which version `step` carries: a running experiment on its family
/// assigns its contact an arm (stable for the contact), or the holdout,
/// who get the control (the first arm's version) whatever happens to the
/// arms, measured apart.
pub fn arm_for(experiments: &[Experiment], step: &Step) -> ArmChoice {
    let Some(experiment) = experiments
        .iter()
        .find(|e| e.running && e.template_id == step.template_id)
    else {
        return ArmChoice::Unchanged;
    };
    match stats::assign(
        &experiment.id,
        step.contact_id.as_str(),
        &experiment.running_arms(),
        experiment.holdout_basis_points,
    ) {
        Assignment::Arm(i) => match experiment.arms.get(i) {
            Some(arm) => ArmChoice::Arm {
                version: arm.version,
                arm: experiment.arm_key(arm),
            },
            None => ArmChoice::Unchanged,
        },
        Assignment::Holdout => ArmChoice::Arm {
            version: experiment
                .arms
                .first()
                .map_or(step.template_version, |control| control.version),
            arm: format!("{}/holdout", experiment.id),
        },
        Assignment::NoArm => ArmChoice::Unchanged,
    }
}

/// One arm's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmOutcome {
    /// Its name (`holdout` for the holdout).
    pub name: String,
    /// Its version (the holdout: none).
    pub version: Option<u32>,
    /// Whether it still runs.
    pub running: bool,
    /// How it stopped.
    pub stopped: Option<ArmStop>,
    /// Episodes texted (trials).
    pub episodes: u64,
    /// Primary-metric successes.
    pub successes: u64,
    /// successes / episodes, its 95% credible interval, P(best).
    pub rate: f64,
    /// The interval.
    pub interval: (f64, f64),
    /// The probability it is best (arms only).
    pub probability_best: Option<f64>,
    /// Texts sent.
    pub sends: u64,
    /// Opt-outs within 7 days of its texts.
    pub opt_outs: u64,
    /// The guardrail's likelihood ratio and always-valid p-value.
    pub guardrail: Option<(f64, f64)>,
}

/// An experiment's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentResults {
    /// The experiment.
    pub experiment: Experiment,
    /// Each arm, then the holdout.
    pub arms: Vec<ArmOutcome>,
    /// What may be said.
    pub call: Call,
    /// Arms the guardrail would stop now.
    pub guardrail_stops: Vec<usize>,
}

/// The results of `experiment` from its rollups, up to `now`.
pub async fn results(
    store: &dyn Store,
    experiment: &Experiment,
    now: DateTime<Utc>,
) -> Result<ExperimentResults, PortError> {
    let rollups = store
        .rollups(experiment.started_at.date_naive(), now.date_naive())
        .await?;
    let prefix = format!("{}/", experiment.id);
    let mut totals: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        std::collections::BTreeMap::new();
    for rollup in rollups {
        let Some(key) = rollup.key else { continue };
        let Some(arm) = key.arm.strip_prefix(&prefix) else {
            continue;
        };
        let into = totals.entry(arm.to_owned()).or_default();
        for (m, n) in rollup.counts {
            *into.entry(m).or_default() += n;
        }
    }
    let counts = |arm: &str| {
        let t = totals.get(arm);
        let n = |m: &str| t.and_then(|t| t.get(m)).copied().unwrap_or(0);
        let successes: u64 = experiment
            .primary_metric
            .outcome_metrics()
            .iter()
            .map(|m| n(m))
            .sum();
        (
            n(metric::EPISODES),
            successes,
            n(metric::SENT),
            n(metric::OPT_OUTS_7D),
        )
    };
    let arm_counts: Vec<(u64, u64, u64, u64)> =
        experiment.arms.iter().map(|a| counts(&a.name)).collect();
    let primary: Vec<(u64, u64)> = arm_counts
        .iter()
        .map(|(episodes, successes, _, _)| (*successes.min(episodes), *episodes))
        .collect();
    let results = stats::arm_results(&primary, 0.95);
    let call = stats::call(&results, experiment.min_sample_per_arm, WINNER_PROBABILITY);
    let opt_outs: Vec<(u64, u64)> = arm_counts.iter().map(|(_, _, s, o)| (*o, *s)).collect();
    let running = experiment.running_arms();
    // Each arm is tested against the others: with k arms running, each test
    // runs at alpha / (k - 1) (Bonferroni), so the chance of wrongly
    // stopping any arm stays within alpha.
    let comparisons = running
        .iter()
        .filter(|r| **r)
        .count()
        .saturating_sub(1)
        .max(1);
    let g = Guardrail {
        alpha: experiment.guardrail.alpha / comparisons as f64,
        tau: experiment.guardrail.tau,
        min_sends: experiment.guardrail.min_sends,
    };
    let verdicts = stats::guardrail(&opt_outs, &running, &g);
    let mut arms: Vec<ArmOutcome> = experiment
        .arms
        .iter()
        .zip(&arm_counts)
        .zip(results.iter().zip(&running))
        .enumerate()
        .map(|(i, ((arm, counts), (result, runs)))| {
            let (episodes, successes, sends, outs) = *counts;
            let verdict = verdicts.iter().find(|v| v.arm == i);
            ArmOutcome {
                name: arm.name.clone(),
                version: Some(arm.version),
                running: *runs,
                stopped: arm.stopped.clone(),
                episodes,
                successes,
                rate: result.rate,
                interval: result.interval,
                probability_best: Some(result.probability_best),
                sends,
                opt_outs: outs,
                guardrail: verdict.map(|v| (v.likelihood_ratio, v.always_valid_p)),
            }
        })
        .collect();
    if experiment.holdout_basis_points > 0 {
        let (episodes, successes, sends, outs) = counts("holdout");
        let s = successes.min(episodes);
        arms.push(ArmOutcome {
            name: "holdout".to_owned(),
            version: None,
            running: experiment.running,
            stopped: None,
            episodes,
            successes: s,
            rate: if episodes > 0 {
                s as f64 / episodes as f64
            } else {
                0.0
            },
            interval: stats::credible_interval(s, episodes, 0.95),
            probability_best: None,
            sends,
            opt_outs: outs,
            guardrail: None,
        });
    }
    Ok(ExperimentResults {
        experiment: experiment.clone(),
        arms,
        call,
        guardrail_stops: verdicts.iter().filter(|v| v.stop).map(|v| v.arm).collect(),
    })
}

/// Checks every running experiment's guardrail and stops each arm it
/// finds significantly worse on opt-outs: one commit per experiment
/// (its new revision and history, a review item, the announcement).
/// Gives the arms stopped (`experiment/arm`).
pub async fn enforce_guardrails(
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Vec<String>, PortError> {
    let mut stopped = Vec::new();
    for experiment in store.experiments().await? {
        if !experiment.running {
            continue;
        }
        let found = results(store, &experiment, now).await?;
        if found.guardrail_stops.is_empty() {
            continue;
        }
        let mut next = experiment.clone();
        next.revision += 1;
        let mut details = Vec::new();
        for &i in &found.guardrail_stops {
            let (Some(arm), Some(outcome)) = (next.arms.get_mut(i), found.arms.get(i)) else {
                continue;
            };
            let (ratio, p) = outcome.guardrail.unwrap_or((f64::NAN, f64::NAN));
            let reason = format!(
                "opt-outs {} in {} sends ({:.2}%) against the other arms: always-valid p {p:.4} (likelihood ratio {ratio:.1}) under alpha {} shared by the arms",
                outcome.opt_outs,
                outcome.sends,
                outcome.opt_outs as f64 * 100.0 / outcome.sends.max(1) as f64,
                experiment.guardrail.alpha
            );
            arm.stopped = Some(ArmStop {
                at: now,
                by: "guardrail".to_owned(),
                reason: reason.clone(),
            });
            details.push(format!(
                "arm {} ({}@{}): {reason}",
                arm.name, experiment.template_id, arm.version
            ));
            stopped.push(format!("{}/{}", experiment.id, arm.name));
        }
        let event = ExperimentEvent {
            at: now,
            by: "guardrail".to_owned(),
            action: "arm_stopped".to_owned(),
            detail: details.join("; "),
        };
        next.history.push(event.clone());
        let review = ReviewItem {
            id: format!("guardrail-{}-{}", experiment.id, next.revision),
            kind: "experiment_guardrail".to_owned(),
            at: now,
            phone_masked: String::new(),
            contact_ids: Vec::new(),
            body: format!("experiment {} on {}", experiment.id, experiment.template_id),
            rule: "experiment.guardrail".to_owned(),
            action_taken: event.detail.clone(),
            assigned_to: None,
            resolution: None,
        };
        match commit_change(store, &next, &event, Some(review)).await {
            Ok(()) => {}
            // Another counter stopped it first: the next batch looks again.
            Err(ExperimentError::Conflict(_)) => {
                stopped.retain(|s| !s.starts_with(&format!("{}/", experiment.id)));
            }
            Err(ExperimentError::Port(e)) => return Err(e),
            Err(e) => return Err(PortError::Invalid(e.to_string())),
        }
    }
    Ok(stopped)
}

/// The running experiments as a warm container keeps them: checked at
/// most once per [`WarmList::TTL`](crate::warm::WarmList::TTL), one small
/// read of the experiments' change count, and read whole only when an
/// experiment changed. A start or stop (by a person or the guardrail)
/// reaches a warm dispatcher within the interval.
#[derive(Debug, Default)]
pub struct ExperimentCache(crate::warm::WarmList<Experiment>);

impl ExperimentCache {
    /// The running experiments.
    pub async fn running(&self, store: &dyn Store) -> Result<Vec<Experiment>, PortError> {
        self.0
            .get(
                || store.experiments_changed(),
                || async {
                    Ok(store
                        .experiments()
                        .await?
                        .into_iter()
                        .filter(|e| e.running)
                        .collect())
                },
                <[Experiment]>::to_vec,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
    use super::*;

    fn experiment() -> Experiment {
        Experiment {
            id: "wording".to_owned(),
            template_id: "appointment_reminder".to_owned(),
            arms: ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(i, n)| ExperimentArm {
                    name: (*n).to_owned(),
                    version: i as u32 + 1,
                    stopped: None,
                })
                .collect(),
            holdout_basis_points: 1000,
            primary_metric: PrimaryMetric::Confirmation,
            min_sample_per_arm: 100,
            guardrail: GuardrailSettings::default(),
            running: true,
            started_at: Utc::now(),
            history: Vec::new(),
            revision: 0,
        }
    }

    fn step(contact: &str, template: &str) -> Step {
        serde_json::from_value(serde_json::json!({
            "id": format!("s-{contact}"),
            "contact_id": contact,
            "program": "clinic",
            "category": "appointments",
            "class": "transactional",
            "purpose": "appointment_reminder",
            "template_id": template,
            "template_version": 3,
            "subject": "appt-1",
            "due_at": "2026-11-02T15:00:00Z",
            "status": "queued"
        }))
        .unwrap()
    }

    #[test]
    fn a_contact_keeps_its_arm_and_only_a_stopped_arms_contacts_move() {
        let mut e = experiment();
        let contacts: Vec<String> = (0..400).map(|i| format!("pat-{i}")).collect();
        let first: Vec<ArmChoice> = contacts
            .iter()
            .map(|c| arm_for(std::slice::from_ref(&e), &step(c, "appointment_reminder")))
            .collect();
        let again: Vec<ArmChoice> = contacts
            .iter()
            .map(|c| arm_for(std::slice::from_ref(&e), &step(c, "appointment_reminder")))
            .collect();
        assert_eq!(first, again, "stable across sends");
        let holdout = first
            .iter()
            .filter(|c| matches!(c, ArmChoice::Arm { arm, version: 1 } if arm == "wording/holdout"))
            .count();
        let holdout_any = first
            .iter()
            .filter(|c| matches!(c, ArmChoice::Arm { arm, .. } if arm == "wording/holdout"))
            .count();
        assert_eq!(
            holdout, holdout_any,
            "the holdout gets the control's version"
        );
        assert!(
            (20..=60).contains(&holdout),
            "about a tenth held out: {holdout}"
        );
        for name in ["a", "b", "c"] {
            let n = first
                .iter()
                .filter(|c| matches!(c, ArmChoice::Arm { arm, .. } if *arm == format!("wording/{name}")))
                .count();
            assert!(n > 80, "arm {name}: {n}");
        }
        e.arms[2].stopped = Some(ArmStop {
            at: Utc::now(),
            by: "guardrail".to_owned(),
            reason: "opt-outs".to_owned(),
        });
        for (c, before) in contacts.iter().zip(&first) {
            let after = arm_for(std::slice::from_ref(&e), &step(c, "appointment_reminder"));
            match before {
                ArmChoice::Arm { arm, .. } if arm == "wording/c" => {
                    assert!(matches!(&after, ArmChoice::Arm { arm, .. } if arm != "wording/c"));
                }
                other => assert_eq!(&after, other, "{c} stays put"),
            }
        }
        assert_eq!(
            arm_for(std::slice::from_ref(&e), &step("pat-1", "results_ready")),
            ArmChoice::Unchanged,
            "another family is not in the experiment"
        );
        e.running = false;
        assert_eq!(
            arm_for(
                std::slice::from_ref(&e),
                &step("pat-1", "appointment_reminder")
            ),
            ArmChoice::Unchanged
        );
    }

    #[test]
    fn a_request_names_two_to_five_distinct_arms_and_sane_settings() {
        let spec =
            |json: serde_json::Value| -> ExperimentSpec { serde_json::from_value(json).unwrap() };
        let good = serde_json::json!({
            "id": "wording", "template_id": "appointment_reminder",
            "arms": [{"name": "a", "version": 1}, {"name": "b", "version": 2}],
            "primary_metric": "confirmation"
        });
        assert!(check(&spec(good.clone())).is_ok());
        let mut one = good.clone();
        one["arms"] = serde_json::json!([{"name": "a", "version": 1}]);
        assert!(check(&spec(one)).is_err());
        let mut same = good.clone();
        same["arms"] =
            serde_json::json!([{"name": "a", "version": 1}, {"name": "b", "version": 1}]);
        assert!(check(&spec(same)).is_err());
        let mut holdout = good.clone();
        holdout["holdout_basis_points"] = 6000.into();
        assert!(check(&spec(holdout)).is_err());
        let mut named = good.clone();
        named["arms"][1]["name"] = "holdout".into();
        assert!(check(&spec(named)).is_err());
        let mut id = good.clone();
        id["id"] = "Wording#1".into();
        assert!(check(&spec(id)).is_err());
        let mut alpha = good;
        alpha["guardrail"] = serde_json::json!({"alpha": 0.5, "tau": 0.01, "min_sends": 100});
        assert!(check(&spec(alpha)).is_err());
        assert!(serde_json::from_value::<ExperimentSpec>(
            serde_json::json!({"id": "x", "extra": 1})
        )
        .is_err());
    }
}
