//! One decision's writes, committed together or not at all.
//!
//! Every use case has one shape: read the facts it needs, decide with the
//! policy crate, then hand the store a [`Commit`] holding everything the
//! decision writes: state changes, audit records, review and callback
//! items, outbox events and the triggering message's dedupe [`Marker`]. The
//! store writes it in one transaction. When a fact it was decided on moved
//! meanwhile, nothing is written and the use case reads and decides again
//! ([`Committed::Conflict`]); when the trigger was already handled, nothing
//! is written either ([`Committed::Duplicate`]). A retried trigger therefore
//! ends exactly where one clean run ends.

use chrono::{DateTime, Utc};
use optline_policy::consent::ConsentAction;
use serde::{Deserialize, Serialize};

use crate::{
    AuditHead, AuditRecord, ConsentEvent, Contact, ContactId, DeliveryUpdate, EpisodeOutcome,
    EventId, NewAuditRecord, PersonIdentifier, ReviewItem, RevocationRequest, Step, StepId,
    StepStatus,
};

/// How a partition's consent ledger stood when it was read (its state
/// item): an event appended to it is conditional on its revision being
/// unchanged, so a decision made on the facts read never overtakes a
/// later event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LedgerRead {
    /// The state item's revision (`None`: nothing recorded yet).
    pub revision: Option<u64>,
    /// Facts held in its digest.
    pub facts: usize,
    /// The digest overflowed: readers fold the events themselves.
    pub overflow: bool,
}

/// A contact's audit chain as read: where the next record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRead {
    /// The contact (the chain's subject).
    pub contact: ContactId,
    /// Its last record (`seq` 0 and the genesis hash when empty).
    pub head: AuditHead,
}

/// A triggering message's dedupe marker: written with the decision it
/// caused; a commit whose marker already exists writes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The trigger's stable key: its source and id
    /// (`twilio-inbound:SM…`, `ehr:source:MSH-10`, `consent-api:key`).
    pub key: String,
    /// When it was handled.
    pub at: DateTime<Utc>,
    /// The answer given to the first delivery, replayed to a retry (for
    /// APIs whose callers retry with an idempotency key).
    pub answer: Option<String>,
}

/// What a step had to be for a step write to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepExpect {
    /// No step with its id exists.
    Absent,
    /// The step exists in one of these states.
    In(Vec<StepStatus>),
}

/// An event for other systems, written in the same commit as the fact it
/// announces and drained from the table's stream to EventBridge. Its id is
/// stable, so consumers can drop a repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// Stable id (derived from the fact it announces).
    pub id: String,
    /// EventBridge detail-type, e.g. `optline.episode.outcome`.
    pub detail_type: String,
    /// When the fact was committed.
    pub at: DateTime<Utc>,
    /// The event's detail (JSON; never a full phone number or a body).
    pub detail: serde_json::Value,
}

impl OutboxEvent {
    /// The announcement of an episode outcome.
    pub fn outcome(outcome: &EpisodeOutcome) -> Self {
        Self {
            id: format!("outcome:{}:{}", outcome.subject, outcome.kind),
            detail_type: OUTCOME_DETAIL_TYPE.to_owned(),
            at: outcome.at,
            detail: serde_json::to_value(outcome).unwrap_or_default(),
        }
    }
}

impl OutboxEvent {
    /// The announcement of a consent change: a grant, a revocation (by
    /// SMS, staff, portal, the EHR or a carrier), a lapse. The number is
    /// masked; the contact id is the EHR's patient id.
    pub fn consent_change(event: &ConsentEvent) -> Self {
        Self {
            id: format!("consent:{}", event.id.as_str()),
            detail_type: CONSENT_DETAIL_TYPE.to_owned(),
            at: event.recorded_at,
            detail: serde_json::json!({
                "event_id": event.id,
                "contact_id": event.contact_id,
                "contact_ids": event.contact_id.iter().collect::<Vec<_>>(),
                "phone": event.phone.masked(),
                "action": event.action,
                "scope": event.scope,
                "program": event.program,
                "categories": event.categories,
                "channel": event.channel,
                "at": event.at,
                "source_system": event.source_system,
                "reverses": event.reverses,
            }),
        }
    }

    /// The announcement of a text that did not reach its recipient.
    pub fn delivery_failure(step: &StepId, update: &DeliveryUpdate) -> Self {
        Self {
            id: format!("delivery:{}:{}", update.carrier_message_id, update.status),
            detail_type: DELIVERY_FAILURE_DETAIL_TYPE.to_owned(),
            at: update.at,
            detail: serde_json::json!({
                "step_id": step,
                "carrier_message_id": update.carrier_message_id,
                "status": update.status,
                "error_code": update.error_code,
                "at": update.at,
            }),
        }
    }
}

/// How a person reaches a patient a step could not text.
fn fallback_channel(step: &Step, reasons: &[String]) -> Option<&'static str> {
    let why = |prefixes: &[&str]| {
        reasons
            .iter()
            .any(|r| prefixes.iter().any(|p| r.starts_with(p)))
    };
    // No consent, an opt-out, a lapsed grant, a number that cannot take a
    // text, or a send that ran out of time (quiet hours, an outage): the
    // message still matters. Caps, audiences and template problems are not
    // the patient's need: they get no task.
    let owed = why(&[
        "consent.legal_basis",
        "consent.revocation",
        "consent.revoke_all",
        "segment.consent_scope",
        "decision.expiry",
        // Carrier codes (Twilio's, as delivery reports record them): an
        // opt-out at the carrier, a number that is not a mobile, a landline
        // or unreachable carrier, a handset that does not exist.
        "carrier.21610",
        "carrier.21614",
        "carrier.30006",
        "carrier.30005",
    ]);
    if !owed {
        return None;
    }
    Some(match step.category.as_str() {
        "appointments" | "referrals" => "callback",
        "billing" => "letter",
        _ => "portal_message",
    })
}

/// The fallback task of a step that ends without a text for a reason the
/// patient's need outlives (no consent, an opt-out, a landline, a send
/// that ran out of time): a work item in the staff queue (`fallback`,
/// assign and close) and its announcement (`optline.fallback.task`), both
/// committed with the step's end. `None` when no one needs to act.
pub fn fallback_task(
    step: &Step,
    reasons: &[String],
    at: DateTime<Utc>,
) -> Option<(ReviewItem, OutboxEvent)> {
    let channel = fallback_channel(step, reasons)?;
    let id = format!("fallback-{}", step.id.as_str());
    let what = step.purpose.replace('_', " ");
    let how = match channel {
        "callback" => "call the patient",
        "letter" => "send a letter",
        _ => "send a secure portal message (the patient verifies their identity to read it)",
    };
    let item = ReviewItem {
        id: id.clone(),
        kind: "fallback".to_owned(),
        at,
        phone_masked: String::new(),
        contact_ids: vec![step.contact_id.clone()],
        body: format!("{what} ({}) was not texted: {how}", step.category),
        rule: reasons.first().cloned().unwrap_or_default(),
        action_taken: format!(
            "step ended without a text ({}); fallback: {channel}",
            reasons.join(", ")
        ),
        assigned_to: None,
        resolution: None,
    };
    let event = OutboxEvent {
        id: format!("fallback:{}", step.id.as_str()),
        detail_type: FALLBACK_DETAIL_TYPE.to_owned(),
        at,
        detail: serde_json::json!({
            "task_id": id,
            "step_id": step.id,
            "contact_id": step.contact_id,
            "program": step.program,
            "category": step.category,
            "purpose": step.purpose,
            "fallback": channel,
            // For a portal message: the step's own portal link (an opaque
            // link the template's lint allowed: no PHI), to be opened only
            // after the patient verifies their identity (a step-up).
            "portal_link": (channel == "portal_message").then(|| step.variables.get("link").cloned()).flatten(),
            "identity_verification": (channel == "portal_message").then_some("step_up"),
            "reasons": reasons,
            "at": at,
        }),
    };
    Some((item, event))
}

/// The detail-type of fallback tasks.
pub const FALLBACK_DETAIL_TYPE: &str = "optline.fallback.task";

/// The detail-type of episode outcome events.
pub const OUTCOME_DETAIL_TYPE: &str = "optline.episode.outcome";

/// The detail-type of consent change events.
pub const CONSENT_DETAIL_TYPE: &str = "optline.consent.changed";

/// The detail-type of delivery failure events.
pub const DELIVERY_FAILURE_DETAIL_TYPE: &str = "optline.delivery.failed";

/// A text owed to a person whatever their consent says (the one opt-out
/// confirmation, a HELP answer), committed with the decision that owes it
/// and sent afterwards through the compliance lane, at most once, and only
/// until `not_after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneText {
    /// Stable key (the inbound message it answers).
    pub key: String,
    /// The recipient.
    pub to: optline_policy::phone::E164,
    /// The text.
    pub body: String,
    /// The program whose sender answers.
    pub program: String,
    /// What it is (`opt_out_confirmation`, `help`, `opt_in_confirmation`,
    /// `acknowledgement`).
    pub purpose: String,
    /// The contacts whose chains record what became of it.
    pub contacts: Vec<ContactId>,
    /// When it was owed.
    pub at: DateTime<Utc>,
    /// After this it is no longer sent (an opt-out confirmation is
    /// presumed compliant within five minutes of the opt-out).
    pub not_after: DateTime<Utc>,
}

/// Where an owed lane text stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneStatus {
    /// Waiting to be sent.
    Pending,
    /// Claimed by an invocation; the carrier call may be under way.
    Sending,
    /// Accepted by the carrier.
    Sent,
    /// Not sent: its deadline passed first.
    Skipped,
    /// A claim whose invocation died mid-send, or a carrier answer that
    /// proves nothing: never sent again.
    Unknown,
    /// The carrier refused it for good.
    Refused,
}

impl LaneStatus {
    /// The snake_case name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Unknown => "unknown",
            Self::Refused => "refused",
        }
    }
}

/// One write of a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new contact and its phone index entry.
    CreateContact(Contact),
    /// A contact as it now stands (only while it still reads `previous`);
    /// a changed number moves its phone index entry.
    UpdateContact {
        /// The contact now.
        contact: Contact,
        /// The contact as read.
        previous: Contact,
    },
    /// An identifier naming a contact: new, or already naming the same one
    /// (another contact holding it is a conflict).
    ContactIdentifier {
        /// The identifier.
        identifier: PersonIdentifier,
        /// The contact it names.
        contact: ContactId,
    },
    /// A consent event appended to its partition's ledger (the contact's,
    /// or the number's for a phone-scoped event), with the disclosure text
    /// stored once by its SHA-256. Conditional on the ledger being as read
    /// and on the event id being new.
    Consent {
        /// The event.
        event: ConsentEvent,
        /// The exact disclosure text, when the event has one.
        disclosure: Option<String>,
        /// The partition's ledger as read.
        ledger: LedgerRead,
    },
    /// Records appended to one contact's audit chain, conditional on its
    /// head being as read.
    Audit {
        /// The chain as read.
        chain: ChainRead,
        /// The records, in order.
        records: Vec<NewAuditRecord>,
    },
    /// A review or staff callback item (new).
    Review(ReviewItem),
    /// An episode outcome (new: the first of its kind wins).
    Outcome(EpisodeOutcome),
    /// A step written whole: planned, rescheduled, cancelled.
    Step {
        /// The step as it should be.
        step: Step,
        /// What it had to be.
        expect: StepExpect,
    },
    /// A source's identifier bound to the one value it names (an
    /// appointment to its patient): written when absent, kept when equal,
    /// and the commit fails when it names another.
    Binding {
        /// What is bound (`appt#<source>#<appointment id>`).
        key: String,
        /// What it is bound to (the patient's id).
        value: String,
    },
    /// A claimed step's end (failed or suppressed; not a send, whose
    /// records dispatch writes with it), conditional on it still being
    /// claimed.
    EndClaimedStep {
        /// The step.
        step: StepId,
        /// How it ended.
        outcome: crate::StepOutcome,
    },
    /// A delivery report on a sent step, conditional on the step's
    /// delivery state being as read.
    Delivery {
        /// The step.
        step: StepId,
        /// The report.
        update: DeliveryUpdate,
        /// The delivery state read (`None`: none yet).
        expected: Option<String>,
    },
    /// A review item as a person left it (assigned or resolved), only
    /// while it exists and is unresolved.
    UpdateReview(ReviewItem),
    /// A revocation request (new).
    RevocationRequest(RevocationRequest),
    /// A revocation request marked complete (only while open).
    CompleteRevocation {
        /// The request as it now stands (completed).
        request: RevocationRequest,
    },
    /// An event for other systems.
    Outbox(OutboxEvent),
    /// A text owed through the compliance lane (new).
    Lane(LaneText),
    /// An owed lane text ended: sent, skipped (late) or of unknown outcome.
    LaneEnd {
        /// Its key.
        key: String,
        /// How it ended.
        status: LaneStatus,
        /// The carrier's message id, when sent.
        carrier_message_id: Option<String>,
        /// Whether it was claimed (sending) rather than still pending.
        claimed: bool,
    },
    /// Marks a carrier message id as seen (new), e.g. a status callback
    /// for a message optline does not know, kept for a later lookup.
    CarrierAttempt {
        /// The attempt key (derived from the step id).
        attempt: String,
        /// The carrier's message id.
        carrier_message_id: String,
        /// Its latest status.
        status: String,
    },
    /// A fact's counts for the rollups (new; a repeat of its id changes
    /// nothing: the counter counts each id once).
    Tally(crate::Tally),
    /// An experiment as it now stands: new at revision 0, else only while
    /// it is still at the revision before this one.
    Experiment(crate::Experiment),
    /// A template version's pause as it now stands: new at revision 0,
    /// else only while it is still at the revision before this one.
    Pause(crate::TemplatePause),
}

/// The writes of one decision.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Commit {
    /// The trigger's dedupe marker, if it has one.
    pub marker: Option<Marker>,
    /// The writes.
    pub writes: Vec<Write>,
}

impl Commit {
    /// A commit keyed by its trigger.
    pub fn for_trigger(marker: Marker) -> Self {
        Self {
            marker: Some(marker),
            writes: Vec::new(),
        }
    }

    /// Adds a write. A consent event and a failed delivery are announced
    /// to other systems in the same commit ([`OutboxEvent::consent_change`],
    /// [`OutboxEvent::delivery_failure`]): no change is committed without
    /// its announcement, nor announced without being committed.
    pub fn push(&mut self, write: Write) {
        let announce = match &write {
            Write::Consent { event, .. } => Some(OutboxEvent::consent_change(event)),
            Write::Delivery { step, update, .. }
                if matches!(update.status.as_str(), "failed" | "undelivered") =>
            {
                Some(OutboxEvent::delivery_failure(step, update))
            }
            _ => None,
        };
        // Every opt-out is counted, with its commit; a use case that knows
        // the text last sent attributes it ([`Commit::attribute_opt_outs`]).
        let opt_out = match &write {
            Write::Consent { event, .. } if event.action == ConsentAction::Revoke => {
                Some(opt_out_tally(event, None))
            }
            _ => None,
        };
        self.writes.push(write);
        if let Some(event) = announce {
            self.writes.push(Write::Outbox(event));
        }
        if let Some(tally) = opt_out {
            self.writes.push(Write::Tally(tally));
        }
    }

    /// Counts this commit's opt-outs against `last_send`, the text last
    /// sent to the person before it (its program, version and arm, and
    /// whether the opt-out came within 24 hours or 7 days of it).
    pub fn attribute_opt_outs(&mut self, last_send: Option<&crate::SendHistoryEntry>) {
        let events: Vec<ConsentEvent> = self
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Consent { event, .. } if event.action == ConsentAction::Revoke => {
                    Some(event.clone())
                }
                _ => None,
            })
            .collect();
        for event in events {
            let tally = opt_out_tally(&event, last_send);
            for write in &mut self.writes {
                if let Write::Tally(existing) = write {
                    if existing.id == tally.id {
                        *existing = tally.clone();
                    }
                }
            }
        }
    }

    /// Names the contacts a phone-scoped consent event reaches (everyone
    /// sharing the number) on its announcement, so other systems can update
    /// each patient's record.
    pub fn announce_contacts(&mut self, event_id: &EventId, contacts: &[ContactId]) {
        let id = format!("consent:{}", event_id.as_str());
        for write in &mut self.writes {
            if let Write::Outbox(event) = write {
                if event.id == id {
                    if let Some(detail) = event.detail.as_object_mut() {
                        detail.insert(
                            "contact_ids".to_owned(),
                            serde_json::to_value(contacts).unwrap_or_default(),
                        );
                    }
                }
            }
        }
    }

    /// Whether it writes anything beyond its marker.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// The tally of an opt-out, with its arrival time (the counter measures
/// the time to its commit).
fn opt_out_tally(
    event: &ConsentEvent,
    last_send: Option<&crate::SendHistoryEntry>,
) -> crate::Tally {
    let program = event.program.as_deref().unwrap_or(crate::NO_KEY);
    let mut tally = crate::Tally::opt_out(event, last_send, program);
    tally.received_at = Some(event.recorded_at);
    tally
}

/// What became of a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Everything was written; the audit records as placed in their chains.
    Done(Vec<AuditRecord>),
    /// The marker already existed: the trigger was handled before; nothing
    /// was written. Carries the answer stored with the marker.
    Duplicate(Option<String>),
    /// A fact the decision rests on moved (or a write met a concurrent
    /// one): nothing was written; read and decide again.
    Conflict(String),
}

/// How many times a use case reads, decides and commits again after a
/// conflict before it gives up (and its trigger is retried).
pub const COMMIT_ATTEMPTS: usize = 6;
