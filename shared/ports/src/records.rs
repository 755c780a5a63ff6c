//! The records optline keeps. Ids are newtypes built at the edge.

use chrono::{DateTime, Utc};
use optline_policy::consent::{ConsentAction, ConsentFact, ConsentKind, ConsentScope};
use optline_policy::decision::Urgency;
use optline_policy::phone::E164;
use optline_policy::{MessageClass, UsState};
use serde::{Deserialize, Serialize};

use crate::PortError;

macro_rules! id_newtype {
    ($name:ident, $what:literal, $read:ident) => {
        #[doc = concat!("The id of ", $what, ": 1 to 128 characters of `A-Za-z0-9._:-`.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates an id.
            pub fn parse(raw: &str) -> Result<Self, PortError> {
                let ok = !raw.is_empty()
                    && raw.len() <= 128
                    && raw.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
                    });
                if ok {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(PortError::Invalid(
                        concat!("malformed ", $what, " id").to_owned(),
                    ))
                }
            }

            /// A fresh random id with a readable prefix.
            pub fn generate(prefix: &str) -> Self {
                Self(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = PortError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::$read(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(ContactId, "a contact", subject);
id_newtype!(StepId, "a step", parse);
id_newtype!(EventId, "a consent event", parse);

/// What starts the subject of a template's audit trail. `/` is outside
/// what an id can hold, so no contact id can spell a template trail (nor
/// its keys).
const TEMPLATE_TRAIL: &str = "template/";

impl ContactId {
    /// The subject of a template's audit trail, `template/<id>`: an audit
    /// chain that belongs to no contact.
    pub fn template_trail(template: &str) -> Result<Self, PortError> {
        Self::parse(template)
            .map(|id| Self(format!("{TEMPLATE_TRAIL}{}", id.0)))
            .map_err(|_| PortError::Invalid("malformed template id".to_owned()))
    }

    /// The template whose trail this subject is, if it is one.
    pub fn trail_template(&self) -> Option<&str> {
        self.0.strip_prefix(TEMPLATE_TRAIL)
    }

    /// An audit subject as stored or named by an operator: a contact id,
    /// or a template trail (`template/<id>`). Ids from requests go through
    /// [`ContactId::parse`], which refuses the trail form.
    pub fn subject(raw: &str) -> Result<Self, PortError> {
        match raw.strip_prefix(TEMPLATE_TRAIL) {
            Some(template) => Self::template_trail(template),
            None => Self::parse(raw),
        }
    }
}

/// A person optline may text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Contact id (e.g. the EHR's patient id).
    pub id: ContactId,
    /// Phone in E.164; several contacts may share one.
    pub phone: E164,
    /// Program (brand) the contact belongs to.
    pub program: String,
    /// Stated IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Address state.
    #[serde(default)]
    pub address_state: Option<UsState>,
    /// The contact is a minor (as stated by the source system).
    #[serde(default)]
    pub minor: bool,
    /// Date of birth, when known: a contact under 18 at the time of a send
    /// is treated as a minor whatever `minor` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_of_birth: Option<chrono::NaiveDate>,
    /// Where the number came from, with its evidence. The treatment basis
    /// and the FCC healthcare exemption rest on the patient having given
    /// the number; unstated, neither applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_provenance: Option<PhoneProvenance>,
    /// Preferred language (BCP 47, e.g. `es`), from the EHR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The source systems' identifiers for this person (MRNs and the like).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<PersonIdentifier>,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
}

/// A source system's identifier for a person (FHIR `Identifier`, HL7 CX).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PersonIdentifier {
    /// The namespace (a FHIR system URI, or an HL7 assigning authority).
    pub system: String,
    /// The value in it.
    pub value: String,
}

/// How a contact's number reached optline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberSource {
    /// The patient wrote it on an intake or registration form.
    PatientIntake,
    /// The patient entered it on a web form or in the portal.
    WebForm,
    /// Staff entered it (at the desk, on the phone).
    Staff,
    /// The EHR's demographics (a feed, not the patient's own word).
    EhrDemographics,
    /// A carrier or a number lookup.
    Carrier,
}

/// Where a contact's number came from, with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneProvenance {
    /// How it reached optline.
    pub source: NumberSource,
    /// The source attests that the patient gave this number for their care
    /// (staff who took it from the patient; an EHR field that records it).
    #[serde(default)]
    pub given_by_patient: bool,
    /// The evidence: a form id, a staff note, an EHR field (never PHI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// When it was given.
    pub at: DateTime<Utc>,
}

impl PhoneProvenance {
    /// Whether the number counts as given by the patient (FCC 15-72 ¶141;
    /// HIPAA treatment communications): the patient's own intake or web
    /// form, or a source that attests the patient gave it. EHR
    /// demographics and carrier data alone do not.
    pub fn given_by_patient(&self) -> bool {
        match self.source {
            NumberSource::PatientIntake | NumberSource::WebForm => true,
            NumberSource::Staff | NumberSource::EhrDemographics => self.given_by_patient,
            NumberSource::Carrier => false,
        }
    }
}

impl Contact {
    /// Whether the number was given by the patient, as its provenance
    /// records; unstated is no.
    pub fn phone_given_by_patient(&self) -> bool {
        self.phone_provenance
            .as_ref()
            .is_some_and(PhoneProvenance::given_by_patient)
    }

    /// Whether the contact is a minor at `now` (flag, or under 18 by birth date).
    pub fn is_minor(&self, now: DateTime<Utc>) -> bool {
        self.minor
            || self.date_of_birth.is_some_and(|dob| {
                let today = now.date_naive();
                today.years_since(dob).is_none_or(|years| years < 18)
            })
    }
}

/// How consent was captured (compliance-rules §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureChannel {
    /// A web form.
    WebForm,
    /// A paper form.
    Paper,
    /// Interactive voice response.
    Ivr,
    /// An SMS keyword reply.
    SmsKeyword,
    /// Imported from the EHR.
    EhrImport,
    /// Recorded by staff (phone call, front desk).
    Staff,
    /// The patient portal.
    Portal,
    /// A carrier signal (e.g. Twilio 21610).
    Carrier,
}

impl CaptureChannel {
    /// The snake_case name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebForm => "web_form",
            Self::Paper => "paper",
            Self::Ivr => "ivr",
            Self::SmsKeyword => "sms_keyword",
            Self::EhrImport => "ehr_import",
            Self::Staff => "staff",
            Self::Portal => "portal",
            Self::Carrier => "carrier",
        }
    }
}

/// Evidence attached to a consent event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Evidence {
    /// Client IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Client user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Form id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_id: Option<String>,
    /// The carrier's message id for SMS keywords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_message_id: Option<String>,
}

/// An append-only consent event: a grant or a revocation with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    /// Event id.
    pub id: EventId,
    /// Contact (absent for a phone-scoped event).
    #[serde(default)]
    pub contact_id: Option<ContactId>,
    /// Phone number the event is about.
    pub phone: E164,
    /// Grant or revoke.
    pub action: ConsentAction,
    /// Contact or phone scope.
    pub scope: ConsentScope,
    /// Program; `None` means every program.
    #[serde(default)]
    pub program: Option<String>,
    /// Categories; empty means all.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Express or express written.
    #[serde(default)]
    pub kind: ConsentKind,
    /// When it took effect.
    pub at: DateTime<Utc>,
    /// When optline recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Capture channel.
    pub channel: CaptureChannel,
    /// Who recorded it (user, system or `patient`).
    pub actor: String,
    /// Source system and its record id.
    #[serde(default)]
    pub source_system: Option<String>,
    /// The source system's record id.
    #[serde(default)]
    pub source_record_id: Option<String>,
    /// SHA-256 (hex) of the exact disclosure text shown.
    #[serde(default)]
    pub disclosure_sha256: Option<String>,
    /// Disclosure version label.
    #[serde(default)]
    pub disclosure_version: Option<String>,
    /// Evidence.
    #[serde(default)]
    pub evidence: Evidence,
    /// For a re-opt-in: the revocation it reverses.
    #[serde(default)]
    pub reverses: Option<EventId>,
    /// Recorded from a parent or guardian.
    #[serde(default)]
    pub guardian: bool,
    /// The grant lapses at this instant.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl ConsentEvent {
    /// A phone-scoped revocation that a carrier reported (Twilio 21610, the
    /// SNS opt-out list): it covers every contact sharing the number.
    #[allow(
        clippy::too_many_arguments,
        reason = "each field is evidence the record must carry"
    )]
    pub fn carrier_revocation(
        id: EventId,
        phone: E164,
        contact_id: Option<ContactId>,
        program: Option<String>,
        source_system: &str,
        source_record_id: &str,
        carrier_message_id: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            contact_id,
            phone,
            action: ConsentAction::Revoke,
            scope: ConsentScope::Phone,
            program,
            categories: Vec::new(),
            kind: ConsentKind::Express,
            at,
            recorded_at: at,
            channel: CaptureChannel::Carrier,
            actor: "carrier".to_owned(),
            source_system: Some(source_system.to_owned()),
            source_record_id: Some(source_record_id.to_owned()),
            disclosure_sha256: None,
            disclosure_version: None,
            evidence: Evidence {
                carrier_message_id,
                ..Evidence::default()
            },
            reverses: None,
            guardian: false,
            expires_at: None,
        }
    }

    /// SHA-256 (hex) of the event's whole body as recorded: what an audit
    /// record that relies on it carries as evidence.
    pub fn body_sha256(&self) -> String {
        crate::content_sha256(self)
    }

    /// The evidence an audit record about this event carries.
    pub fn evidence(&self) -> std::collections::BTreeMap<String, String> {
        let mut evidence =
            std::collections::BTreeMap::from([("consent_event".to_owned(), self.body_sha256())]);
        if let Some(sha) = &self.disclosure_sha256 {
            evidence.insert("disclosure".to_owned(), sha.clone());
        }
        evidence
    }

    /// The part of the event the policy engine folds, with the hashes
    /// that let a decision cite the event's whole body.
    pub fn ledger_fact(&self) -> LedgerFact {
        LedgerFact {
            fact: self.fact(),
            body_sha256: Some(self.body_sha256()),
            disclosure_sha256: self.disclosure_sha256.clone(),
        }
    }

    /// The part of the event the policy engine folds.
    pub fn fact(&self) -> ConsentFact {
        ConsentFact {
            id: self.id.as_str().to_owned(),
            action: self.action,
            scope: self.scope,
            program: self.program.clone(),
            categories: self.categories.clone(),
            kind: self.kind,
            at: self.at,
            reverses: self.reverses.as_ref().map(|r| r.as_str().to_owned()),
            guardian: self.guardian,
            expires_at: self.expires_at,
        }
    }
}

/// A consent fact as a ledger's digest keeps it: the part the policy folds,
/// and the hashes of the event's body and of its disclosure text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerFact {
    /// The part the policy folds.
    #[serde(flatten)]
    pub fact: ConsentFact,
    /// SHA-256 of the event's whole body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    /// SHA-256 of its disclosure text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure_sha256: Option<String>,
}

/// Where a step is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Waiting for its due time (in the due index).
    Pending,
    /// Handed to the dispatch queue.
    Queued,
    /// Claimed by a dispatcher; the carrier call may be under way.
    Sending,
    /// Accepted by the carrier.
    Sent,
    /// Not sent, by decision.
    Suppressed,
    /// Not sent: the carrier refused it permanently.
    Failed,
    /// Withdrawn by its episode (e.g. the appointment was cancelled).
    Cancelled,
}

impl StepStatus {
    /// The snake_case name stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Suppressed => "suppressed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One planned text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Step id (deterministic from its source event, so replays are no-ops).
    pub id: StepId,
    /// Recipient contact.
    pub contact_id: ContactId,
    /// Program sending it.
    pub program: String,
    /// Consent category.
    pub category: String,
    /// Message class of the template version.
    pub class: MessageClass,
    /// Purpose, e.g. `appointment_reminder`.
    pub purpose: String,
    /// Template id.
    pub template_id: String,
    /// Template version pinned at planning time.
    pub template_version: u32,
    /// Template variables (typed by the template).
    #[serde(default)]
    pub variables: std::collections::BTreeMap<String, String>,
    /// Subject for frequency caps (episode id).
    pub subject: String,
    /// When it becomes due.
    pub due_at: DateTime<Utc>,
    /// When it becomes worthless.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Defer or drop when late.
    #[serde(default)]
    pub urgency: Urgency,
    /// The message relies on the FCC healthcare exemption.
    #[serde(default)]
    pub healthcare_exempt: bool,
    /// Current status.
    pub status: StepStatus,
    /// Source event that created it.
    #[serde(default)]
    pub source_event: Option<String>,
    /// Who the step is for within its episode.
    #[serde(default)]
    pub audience: Audience,
    /// The source's version of what the step was planned from (FHIR
    /// `meta.lastUpdated`, an HL7 message time, an event's version): a
    /// change older than this is stale and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    /// As sent: the experiment arm whose version it carried
    /// (`experiment/arm`), when the template family was under an experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// As sent: the message parts (segments) billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
}

/// A step's final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// Final status.
    pub status: StepStatus,
    /// When it was reached.
    pub at: DateTime<Utc>,
    /// Carrier message id for a send.
    #[serde(default)]
    pub carrier_message_id: Option<String>,
    /// Reasons for a suppression or failure (rule ids, carrier codes).
    #[serde(default)]
    pub reasons: Vec<String>,
}

impl StepOutcome {
    /// An outcome with no carrier id (suppressed, failed, cancelled).
    pub fn ended(status: StepStatus, at: DateTime<Utc>, reasons: Vec<String>) -> Self {
        Self {
            status,
            at,
            carrier_message_id: None,
            reasons,
        }
    }
}

/// What a send claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the send; the step as claimed.
    Won(Box<Step>),
    /// Another invocation already sent or finished the step: do nothing.
    AlreadyDone,
    /// A claim exists without an outcome: a send under way, or one whose
    /// invocation died mid-send. `since` is when it was claimed.
    InFlight {
        /// When the claim was taken.
        since: Option<DateTime<Utc>>,
        /// The step.
        step: Box<Step>,
    },
    /// No such step.
    Missing,
}

/// A send counted for caps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendHistoryEntry {
    /// The step that was sent.
    #[serde(default)]
    pub step_id: Option<StepId>,
    /// Template id and version (`id@version`), for reply grammars.
    #[serde(default)]
    pub template: Option<String>,
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// Subject (episode).
    pub subject: String,
    /// Program.
    pub program: String,
    /// Relied on the healthcare exemption.
    pub healthcare_exempt: bool,
    /// The experiment arm it carried (`experiment/arm`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
}

impl SendHistoryEntry {
    /// The entry a step's send leaves, at `at`.
    pub fn for_step(step: &Step, at: DateTime<Utc>) -> Self {
        Self {
            step_id: Some(step.id.clone()),
            template: Some(format!("{}@{}", step.template_id, step.template_version)),
            at,
            subject: step.subject.clone(),
            program: step.program.clone(),
            healthcare_exempt: step.healthcare_exempt,
            arm: step.arm.clone(),
        }
    }
}

/// A text handed to a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSms {
    /// Recipient.
    pub to: E164,
    /// Rendered body.
    pub body: String,
    /// Message class (sets SNS's SMSType).
    pub class: MessageClass,
    /// Program, which picks the origination identity.
    pub program: String,
    /// The number to send from, when the program's pool chose one; else
    /// the program's configured sender.
    pub from: Option<String>,
    /// Idempotency key (the step id or the confirmation's key).
    pub idempotency_key: String,
}

/// A carrier's acceptance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierReceipt {
    /// Carrier name (`sns`, `twilio`).
    pub carrier: String,
    /// Carrier message id.
    pub message_id: String,
}

/// A carrier's refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("carrier refused the message: {code} ({reason})")]
pub struct SendFailure {
    /// Carrier or HTTP code (e.g. `21610`, `Throttling`).
    pub code: String,
    /// Human reason (never contains the number or body).
    pub reason: String,
    /// What the failure says about the text.
    pub kind: FailureKind,
    /// The recipient has opted out at the carrier (Twilio 21610).
    pub recipient_opted_out: bool,
}

impl SendFailure {
    /// Whether the text may be tried again later: the carrier proved it
    /// did not take it (throttling, a request never sent).
    pub fn retryable(&self) -> bool {
        self.kind == FailureKind::NotSent
    }
}

/// What a failed send says about the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The carrier did not take it and may take it later (throttling, a
    /// request that never left): safe to try again.
    NotSent,
    /// The carrier refused it for good (invalid number, opted out).
    Refused,
    /// It may or may not have gone out (a timeout, a lost answer, a
    /// carrier error after the request arrived): never sent again without
    /// proof that it did not.
    Unknown,
}

/// A revocation received by other means (phone call, portal, staff): the
/// ledger applies it at once, and the request tracks the FCC's 10-business-day
/// deadline until staff confirm every downstream system honoured it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRequest {
    /// Request id.
    pub id: EventId,
    /// Contact.
    pub contact_id: ContactId,
    /// The revocation event recorded in the ledger.
    pub event_id: EventId,
    /// How it was received.
    pub channel: CaptureChannel,
    /// Who took it.
    pub actor: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// When it must be honoured everywhere.
    pub deadline: DateTime<Utc>,
    /// When staff confirmed it was honoured everywhere.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// Who confirmed it.
    #[serde(default)]
    pub completed_by: Option<String>,
}

impl RevocationRequest {
    /// Past its deadline without completion, or completed late.
    pub fn breached(&self, now: DateTime<Utc>) -> bool {
        match self.completed_at {
            Some(done) => done > self.deadline,
            None => now > self.deadline,
        }
    }
}

/// Something a person must look at: a doubtful revocation or an ambiguous reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewItem {
    /// Item id (derived from the carrier's message id).
    pub id: String,
    /// `doubtful_revocation` or `ambiguous_reply`.
    pub kind: String,
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// Masked phone number.
    pub phone_masked: String,
    /// Contacts sharing the number.
    pub contact_ids: Vec<ContactId>,
    /// The reply text (kept in the encrypted table for the reviewer; never logged).
    pub body: String,
    /// The classifier's rule.
    pub rule: String,
    /// What optline already did (e.g. "suppressed").
    pub action_taken: String,
    /// The person the item is assigned to (`Name <cognito:sub>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    /// How a person resolved it; `None` while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<ReviewResolution>,
}

/// A person's answer to a review item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewResolution {
    /// `opt_out_confirmed`, `restored`, `no_action` or `closed`.
    pub outcome: String,
    /// Why (required to restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who resolved it (`Name <cognito:sub>`), from their verified token.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A delivery report from a carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryUpdate {
    /// Carrier message id (`twilio:SM…`).
    pub carrier_message_id: String,
    /// queued, sent, delivered, undelivered, failed, …
    pub status: String,
    /// Carrier error code, if any.
    #[serde(default)]
    pub error_code: Option<String>,
    /// When it was reported.
    pub at: DateTime<Utc>,
}

/// A template version with its review lifecycle, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTemplate {
    /// The immutable content.
    pub version: optline_policy::template::TemplateVersion,
    /// Its review state, approvals and history.
    pub lifecycle: optline_policy::template::review::Lifecycle,
}

/// A contact with what dispatch reads about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    /// The contact.
    pub contact: Contact,
    /// Its contact-scoped consent events, oldest first.
    pub consent: Vec<ConsentEvent>,
    /// Its sends since the time asked for, newest first.
    pub sends: Vec<SendHistoryEntry>,
    /// Where its audit chain ended when this was read, if the store keeps
    /// that beside the contact.
    pub audit_head: Option<AuditHead>,
}

/// The last record of a contact's audit chain, as written beside the
/// contact with every append. A hint, not the truth: a write that trusts it
/// is conditional on the next record not existing yet, and falls back to
/// reading the chain when someone appended meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// The last record's sequence number.
    pub seq: u64,
    /// The last record's hash.
    pub hash: String,
}

impl AuditHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: crate::GENESIS_HASH.to_owned(),
        }
    }

    /// The head after `record`.
    pub fn of(record: &crate::AuditRecord) -> Self {
        Self {
            seq: record.seq,
            hash: record.hash.clone(),
        }
    }
}

/// Something that happened in an episode: the patient confirmed, asked to
/// reschedule, completed a form; the appointment was fulfilled or missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeOutcome {
    /// The episode (a step's `subject`, e.g. `appt-7001`).
    pub subject: String,
    /// `confirmed`, `reschedule_requested`, `completed`, `fulfilled`, `noshow`.
    pub kind: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The contact.
    pub contact_id: ContactId,
    /// The step whose text it answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<StepId>,
    /// Where it came from (a carrier message id, an EHR event).
    pub source: String,
    /// Seconds from the episode's first text to this outcome (time to
    /// confirmation or completion), when a text went out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_first_text_seconds: Option<i64>,
}

/// Who a step is for within its episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Everyone the step is planned for.
    #[default]
    Everyone,
    /// Only people who have not answered the episode yet (no confirm or
    /// reschedule outcome): the non-responder follow-up.
    NonResponders,
}

/// The kinds of episode outcome a store records (`EpisodeOutcome::kind`).
/// A fixed list, so that a batch read can name every outcome item of an
/// episode without a query.
pub const OUTCOME_KINDS: [&str; 5] = [
    "completed",
    "confirmed",
    "fulfilled",
    "noshow",
    "reschedule_requested",
];

/// How long a contact's recent sends are kept in its digest: the longest
/// rolling cap window (7 days) with a day to spare.
pub const RECENT_SENDS_DAYS: i64 = 8;
