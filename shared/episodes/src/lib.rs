//! # optline-episodes
//!
//! Episodes: a per-contact workflow (an appointment, an outstanding form,
//! a result, a statement, a referral) and its steps, one planned text each.
//!
//! - [`intake`] reads the EHR's formats (FHIR R4, HL7 v2.5 SIU, the
//!   normalized JSON event) into [`AppointmentEvent`]s and [`TaskEvent`]s.
//! - [`apply_appointment`] and [`apply_task`] are the use cases: read the
//!   steps and the contact, decide (plan, reschedule, re-book, cancel,
//!   ignore a stale change, conclude), and commit every write of that
//!   decision once, with the outcome's outbox event and the message's
//!   dedupe marker.
//! - [`sweep`] finds due steps through the due index, applies each
//!   program's audience rules ([`facts`]) and hands the winners to the
//!   dispatch queue.

pub mod facts;
pub mod intake;
pub mod patients;
mod plan;
pub mod sweep;

use chrono::{DateTime, FixedOffset};
use optline_config::Config;
use optline_policy::template::lint::LintConfig;
use optline_ports::{ContactId, PortError, Step, StepId, Store};

pub use facts::{request_for, select, select_with, StepFacts};
pub use intake::normalized::Effect;
pub use plan::{apply_appointment, apply_task, FOLLOW_UP_LEAD, REMINDER_LEAD};
pub use sweep::{sweep, SweepReport, SWEEP_LIMIT};

/// What the episodes context needs.
#[derive(Clone, Copy)]
pub struct Episodes<'a> {
    /// The table.
    pub store: &'a dyn Store,
    /// Programs and their cadence.
    pub config: &'a Config,
    /// Lint lists (templates pinned by new steps must pass them).
    pub lint: &'a LintConfig,
    /// The verified source system the events come from (a configured
    /// source's name, or [`API_ORIGIN`]): its ids are its own, so subjects,
    /// step ids and dedupe markers carry it.
    pub origin: &'a str,
    /// The templates new steps pin, kept briefly across events.
    pub templates: &'a optline_library::LatestTemplates,
}

/// The origin of events authenticated by the API rather than by a
/// configured source.
pub const API_ORIGIN: &str = "api";

/// The longest source id (an appointment, form, result, statement or
/// referral id) a subject holds: FHIR's own limit on a resource id.
pub const SOURCE_ID_MAX: usize = 64;

/// Whether a source's id can name a subject: 1 to [`SOURCE_ID_MAX`]
/// characters of `A-Za-z0-9._:-`.
pub fn source_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= SOURCE_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The subject of an episode: `<prefix>-<source id>-<tag>`, the tag being
/// the first 12 hex digits of SHA-256 over the origin, the patient and the
/// source's id. Two sources, or two patients, with the same id never share
/// a subject (nor its steps, `<subject>-reminder` and `<subject>-followup`).
pub fn subject_of(prefix: &str, origin: &str, patient: &ContactId, id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(
        format!(
            "optline-subject\n{prefix}\n{origin}\n{}\n{id}",
            patient.as_str()
        )
        .as_bytes(),
    );
    format!("{prefix}-{id}-{}", &hex::encode(digest)[..12])
}

impl std::fmt::Debug for Episodes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Episodes").finish_non_exhaustive()
    }
}

/// When an appointment starts, as the source wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// An instant with its offset.
    At(DateTime<FixedOffset>),
    /// An HL7 DTM, which may lack an offset (read in the patient's zone).
    Hl7(String),
}

/// What happened to an appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppointmentStatus {
    /// Booked (or moved, or modified) to start at this time.
    Booked(Start),
    /// Cancelled (or entered in error).
    Cancelled,
    /// The patient did not come: the outcome, and nothing more is sent.
    NoShow,
    /// The appointment took place: the outcome.
    Fulfilled,
    /// A status that plans nothing (proposed, pending, arrived, ...).
    NothingToPlan,
}

/// An appointment change from any EHR format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentEvent {
    /// The source's appointment id (steps are `<subject>-reminder` and
    /// `<subject>-followup`, the subject from [`subject_of`]).
    pub appointment_id: String,
    /// The patient (contact).
    pub patient: ContactId,
    /// What happened.
    pub status: AppointmentStatus,
    /// Where it came from (`fhir:Appointment/…`, `hl7:SIU^S12/…`, `event:…`).
    pub source: String,
    /// The source's version, ordering changes (`None`: unknown).
    pub version: Option<String>,
    /// The message's dedupe key.
    pub marker: String,
}

/// A task-like episode change from a normalized event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// Plan or cancel.
    pub effect: Effect,
    /// The event type (`document.outstanding`, `billing.paid`, ...).
    pub kind: String,
    /// The form, result, statement or referral.
    pub subject: String,
    /// The patient.
    pub patient: ContactId,
    /// The portal link (plans).
    pub link: Option<String>,
    /// When to send.
    pub due_at: Option<DateTime<chrono::Utc>>,
    /// When the text becomes worthless.
    pub expires_at: Option<DateTime<chrono::Utc>>,
    /// The source's version.
    pub version: Option<String>,
    /// Where it came from.
    pub source: String,
    /// The message's dedupe key.
    pub marker: String,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A step was planned or its plan considered: `created`,
    /// `rescheduled`, `rebooked`, `unchanged`, `stale` or `cancelled` (a
    /// cancellation already won), with the step as it now stands.
    Planned {
        /// What happened to the plan.
        result: &'static str,
        /// The step.
        step: Box<Step>,
    },
    /// Steps were cancelled (or a cancellation was recorded before its
    /// booking arrived, or the change was stale).
    Cancelled {
        /// The steps cancelled now.
        cancelled: Vec<StepId>,
        /// The cancellation arrived before its booking.
        before_booking: bool,
        /// The change was older than the plan.
        stale: bool,
    },
    /// Accepted; there is nothing to plan.
    NothingToPlan,
}

/// Why an event was not applied. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum EpisodeError {
    /// The event is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The event is well formed but cannot be applied.
    #[error("{0}")]
    Unprocessable(String),
    /// The patient is not a known contact.
    #[error("the patient is not a known contact")]
    UnknownContact,
    /// No published version of the template the event needs.
    #[error("no published {0} template: load or publish one first")]
    NoTemplate(String),
    /// The steps kept changing under the decision.
    #[error("the episode kept changing; retry")]
    Busy,
    /// The event contradicts what its source said before (an appointment
    /// naming another patient).
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Port(#[from] PortError),
}
