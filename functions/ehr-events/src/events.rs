//! The normalized JSON event, for systems that speak neither FHIR nor HL7:
//! `POST /ehr/events` with `application/json`.
//!
//! ```json
//! {"id": "evt-9001", "version": "2026-11-30T12:00:00Z", "type": "document.outstanding",
//!  "patient": "pat-1001", "subject": "form-778",
//!  "link": "https://portal.example/t/8f2k", "expires_at": "2026-12-10T15:00:00Z"}
//! ```
//!
//! | type | plans | template | expires by default |
//! |---|---|---|---|
//! | `appointment.booked` (needs `start`) | a reminder 72 h before `start` | `appointment_reminder` | at `start` |
//! | `document.outstanding` | an intake-form reminder | `intake_form` | 7 days |
//! | `results.ready` | a generic portal alert (never the result) | `results_ready` | 7 days |
//! | `billing.due` | a statement reminder | `billing_reminder` | 30 days |
//! | `referral.pending` | a referral-document request | `referral_follow_up` | 14 days |
//!
//! `appointment.cancelled`, `document.completed`, `results.viewed`,
//! `billing.paid` and `referral.completed` cancel the matching step if it has
//! not gone out. Steps are keyed by type and `subject`, so a replayed event
//! plans nothing new; `version` (an RFC 3339 instant or an integer) orders
//! changes to one subject, as `meta.lastUpdated` does for FHIR.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// One normalized event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizedEvent {
    /// The source's event id.
    pub id: String,
    /// Orders changes to one subject: an RFC 3339 instant or an integer.
    #[serde(default)]
    pub version: Option<serde_json::Value>,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: String,
    /// The patient (contact id).
    pub patient: String,
    /// The appointment, form, result, statement or referral.
    pub subject: String,
    /// An https link into the secure portal (documents, results, billing,
    /// referrals).
    #[serde(default)]
    pub link: Option<String>,
    /// The appointment's start (appointment.booked).
    #[serde(default)]
    pub start: Option<DateTime<chrono::FixedOffset>>,
    /// When to send; now when absent.
    #[serde(default)]
    pub due_at: Option<DateTime<Utc>>,
    /// When the text becomes worthless.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// What an event type does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Plan a step from `template`, keyed `<prefix>-<subject>-<suffix>`,
    /// expiring after `lifetime` unless the event says when.
    Plan {
        /// Template id.
        template: &'static str,
        /// Step id prefix.
        prefix: &'static str,
        /// Default lifetime.
        lifetime: Duration,
    },
    /// Cancel the step with this prefix.
    Cancel {
        /// Step id prefix.
        prefix: &'static str,
    },
}

/// The effect of an event type; `None` for a type this version does not know.
pub fn effect(kind: &str) -> Option<Effect> {
    let plan = |template, prefix, days| Effect::Plan {
        template,
        prefix,
        lifetime: Duration::days(days),
    };
    Some(match kind {
        "appointment.booked" => plan("appointment_reminder", "appt", 0),
        "document.outstanding" => plan("intake_form", "doc", 7),
        "results.ready" => plan("results_ready", "results", 7),
        "billing.due" => plan("billing_reminder", "bill", 30),
        "referral.pending" => plan("referral_follow_up", "referral", 14),
        "appointment.cancelled" => Effect::Cancel { prefix: "appt" },
        "document.completed" => Effect::Cancel { prefix: "doc" },
        "results.viewed" => Effect::Cancel { prefix: "results" },
        "billing.paid" => Effect::Cancel { prefix: "bill" },
        "referral.completed" => Effect::Cancel { prefix: "referral" },
        _ => return None,
    })
}

/// The step id for a subject: `<prefix>-<subject>-reminder`.
pub fn step_key(prefix: &str, subject: &str) -> String {
    format!("{prefix}-{subject}-reminder")
}

/// A sortable version: an instant as `t<UTC micros>`, an integer zero-padded.
pub fn version_key(version: Option<&serde_json::Value>) -> Result<Option<String>, &'static str> {
    match version {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map(|v| Some(format!("v{v:020}")))
            .ok_or("version must be a non-negative integer or an RFC 3339 instant"),
        Some(serde_json::Value::String(s)) => {
            if let Ok(at) = DateTime::parse_from_rfc3339(s) {
                Ok(Some(format!(
                    "t{}",
                    at.with_timezone(&Utc)
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                )))
            } else if let Ok(v) = s.parse::<u64>() {
                Ok(Some(format!("v{v:020}")))
            } else {
                Err("version must be a non-negative integer or an RFC 3339 instant")
            }
        }
        Some(_) => Err("version must be a non-negative integer or an RFC 3339 instant"),
    }
}
