//! Template versions paused by an opt-out spike, as stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One change in a pause's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: `opt-out guard` or a person (`Name <cognito:…>`).
    pub by: String,
    /// `paused` or `resumed`.
    pub action: String,
    /// Why, with the figures.
    pub detail: String,
}

/// A template version's pause: paused automatically when its opt-outs
/// spike, resumed only by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplatePause {
    /// The version (`id@version`).
    pub template: String,
    /// Whether it is paused now.
    pub paused: bool,
    /// Its history, oldest first.
    pub history: Vec<PauseEvent>,
    /// Revision, for conditional updates (0: new).
    #[serde(default)]
    pub revision: u64,
}

impl TemplatePause {
    /// When it was last resumed, if ever.
    pub fn resumed_at(&self) -> Option<DateTime<Utc>> {
        self.history
            .iter()
            .rev()
            .find(|e| e.action == "resumed")
            .map(|e| e.at)
    }
}
