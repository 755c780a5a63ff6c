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
//! `portal.verification_failed` (with `subject`: what the patient tried to
//! read) makes a callback task: a patient who cannot verify their identity
//! in the portal is called instead.
//!
//! `appointment.cancelled`, `document.completed`, `results.viewed`,
//! `billing.paid` and `referral.completed` cancel the matching step if it has
//! not gone out. Steps are keyed by type and `subject`, so a replayed event
//! plans nothing new; `version` (an RFC 3339 instant or an integer) orders
//! changes to one subject, as `meta.lastUpdated` does for FHIR.

use chrono::{DateTime, Duration, Utc};
use optline_ports::ContactId;
use serde::Deserialize;

use crate::{AppointmentEvent, AppointmentStatus, EpisodeError, Start, TaskEvent};

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

/// What a normalized event asks for.
#[derive(Debug)]
pub enum NormalizedCommand {
    /// An appointment booked or cancelled.
    Appointment(AppointmentEvent),
    /// A form, result, statement or referral to remind of, or done.
    Task(TaskEvent),
    /// `portal.verification_failed`: the patient could not verify their
    /// identity to read what the portal holds for `subject`; a person calls
    /// them instead.
    VerificationFailed {
        /// The patient.
        patient: ContactId,
        /// What they tried to read (the step's subject).
        subject: String,
        /// The source's event id (the dedupe marker).
        marker: String,
    },
}

/// Reads a normalized event from its JSON body.
pub fn read(body: &[u8]) -> Result<NormalizedCommand, EpisodeError> {
    let event: NormalizedEvent = serde_json::from_slice(body)
        .map_err(|e| EpisodeError::Invalid(crate::intake::json_reason(&e)))?;
    if event.kind == "portal.verification_failed" {
        let patient =
            ContactId::parse(&event.patient).map_err(|e| EpisodeError::Invalid(e.to_string()))?;
        if !crate::source_id_ok(&event.subject) || !crate::source_id_ok(&event.id) {
            return Err(EpisodeError::Invalid(
                "id and subject must be 1 to 64 characters of A-Za-z0-9._:-".to_owned(),
            ));
        }
        return Ok(NormalizedCommand::VerificationFailed {
            patient,
            subject: event.subject,
            marker: format!("event:{}", event.id),
        });
    }
    let Some(effect) = effect(&event.kind) else {
        return Err(EpisodeError::Invalid("unknown event type".to_owned()));
    };
    let version =
        version_key(event.version.as_ref()).map_err(|r| EpisodeError::Invalid(r.to_owned()))?;
    let patient =
        ContactId::parse(&event.patient).map_err(|e| EpisodeError::Invalid(e.to_string()))?;
    let prefix = match effect {
        Effect::Plan { prefix, .. } | Effect::Cancel { prefix } => prefix,
    };
    if !crate::source_id_ok(&event.subject) {
        return Err(EpisodeError::Invalid(
            "subject must be 1 to 64 characters of A-Za-z0-9._:-".to_owned(),
        ));
    }
    let source = format!("event:{}", event.id);
    let marker = format!("event:{}", event.id);
    if prefix == "appt" {
        let status = match effect {
            Effect::Cancel { .. } => AppointmentStatus::Cancelled,
            Effect::Plan { .. } => match event.start {
                Some(start) => AppointmentStatus::Booked(Start::At(start)),
                None => {
                    return Err(EpisodeError::Invalid(
                        "appointment.booked needs start".to_owned(),
                    ))
                }
            },
        };
        return Ok(NormalizedCommand::Appointment(AppointmentEvent {
            appointment_id: event.subject,
            patient,
            status,
            source,
            version,
            marker,
        }));
    }
    if let Effect::Plan { .. } = effect {
        let Some(link) = event.link.as_deref() else {
            return Err(EpisodeError::Invalid(
                "this event type needs a portal link".to_owned(),
            ));
        };
        if !link.starts_with("https://") {
            return Err(EpisodeError::Invalid(
                "link must be an https URL".to_owned(),
            ));
        }
    }
    Ok(NormalizedCommand::Task(TaskEvent {
        effect,
        kind: event.kind,
        subject: event.subject,
        patient,
        link: event.link,
        due_at: event.due_at,
        expires_at: event.expires_at,
        version,
        source,
        marker,
    }))
}
