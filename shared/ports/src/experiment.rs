//! Experiments among approved template versions, as stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What an experiment's arms are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimaryMetric {
    /// Confirmations per episode texted.
    Confirmation,
    /// Completions per episode texted.
    Completion,
}

impl PrimaryMetric {
    /// The rollup metric counted as a success.
    pub fn outcome_metrics(self) -> &'static [&'static str] {
        match self {
            Self::Confirmation => &["outcome.confirmed"],
            Self::Completion => &["outcome.completed", "outcome.fulfilled"],
        }
    }
}

/// How an arm stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmStop {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `guardrail` or a person (`Name <sub>`).
    pub by: String,
    /// Why.
    pub reason: String,
}

/// One arm: a published, approved version of the family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentArm {
    /// Its name (`a`, `short-copy`).
    pub name: String,
    /// The template version it sends.
    pub version: u32,
    /// Set when it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<ArmStop>,
}

/// The opt-out guardrail's settings (an always-valid sequential test on
/// each arm's opt-out rate; `docs/outcomes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuardrailSettings {
    /// The chance of stopping an arm that is not worse, over the whole
    /// experiment however often it is checked.
    pub alpha: f64,
    /// The size of difference in opt-out rates the test is tuned to
    /// (the normal mixture's standard deviation).
    pub tau: f64,
    /// Sends an arm (and the rest) needs before it may be stopped.
    pub min_sends: u64,
}

impl Default for GuardrailSettings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            tau: 0.01,
            min_sends: 100,
        }
    }
}

/// A change in an experiment's life, kept on it for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`Name <sub>`, or `guardrail`).
    pub by: String,
    /// `started`, `arm_stopped`, `stopped`.
    pub action: String,
    /// What and why.
    pub detail: String,
}

/// An experiment on one template family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Its id (`[a-z0-9-]`, at most 40).
    pub id: String,
    /// The template family (template id) whose sends it splits.
    pub template_id: String,
    /// Two or more arms.
    pub arms: Vec<ExperimentArm>,
    /// Contacts held out of the family's texts for the whole experiment,
    /// in basis points (0 to 5,000).
    #[serde(default)]
    pub holdout_basis_points: u16,
    /// What the arms are compared on.
    pub primary_metric: PrimaryMetric,
    /// Episodes per arm before any call.
    pub min_sample_per_arm: u64,
    /// The opt-out guardrail.
    pub guardrail: GuardrailSettings,
    /// Running until stopped.
    pub running: bool,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its history.
    pub history: Vec<ExperimentEvent>,
    /// Revision, for conditional updates.
    #[serde(default)]
    pub revision: u64,
}

impl Experiment {
    /// The arm key a send carries (`experiment/arm`).
    pub fn arm_key(&self, arm: &ExperimentArm) -> String {
        format!("{}/{}", self.id, arm.name)
    }

    /// Whether each arm still runs.
    pub fn running_arms(&self) -> Vec<bool> {
        self.arms
            .iter()
            .map(|a| self.running && a.stopped.is_none())
            .collect()
    }
}
