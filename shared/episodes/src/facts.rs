//! What deciding on steps reads, read for many steps at once, and the
//! program's audience (segment) rules applied to a step.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use optline_config::{Config, ProgramConfig};
use optline_policy::audience::{self, Candidate, Selection, Stage, AUDIENCE_VERSION};
use optline_policy::decision::{Recipient, SendRequest};
use optline_policy::{RuleOutcome, Verdict};
use optline_ports::{
    Audience, AuditHead, Contact, ContactFacts, ContactId, PortError, Step, Store,
};

/// The request a step would make, before its template is rendered: the
/// step's own category and class, the contact as recipient.
pub fn request_for(
    step: &Step,
    contact: &Contact,
    program: Option<&ProgramConfig>,
    now: DateTime<Utc>,
) -> SendRequest {
    SendRequest {
        program: step.program.clone(),
        category: step.category.clone(),
        class: step.class,
        purpose: step.purpose.clone(),
        healthcare_exempt: step.healthcare_exempt,
        subject: step.subject.clone(),
        workflow: Some(step.subject.clone()),
        workflow_limit: Some(3),
        body: None,
        provider_name: program.map(|p| p.name.clone()),
        provider_contact: program.map(|p| p.support_contact.clone()),
        recipient: Recipient {
            phone: contact.phone.clone(),
            time_zone: contact.time_zone.clone(),
            address_state: contact.address_state.clone(),
            minor: contact.is_minor(now),
            // From the number's recorded provenance: an unstated fact
            // never widens the legal basis.
            phone_given_by_patient: contact.phone_given_by_patient(),
        },
        expires_at: step.expires_at,
        urgency: step.urgency,
    }
}

/// What deciding on a set of steps reads, read for all of them at once.
#[derive(Debug, Default, Clone)]
pub struct StepFacts {
    /// The facts of the steps' contacts (absent: no such contact).
    pub contacts: HashMap<ContactId, ContactFacts>,
    /// The first answer of each episode with a follow-up for non-responders.
    pub answers: HashMap<String, String>,
}

impl StepFacts {
    /// Reads the contacts' facts of `steps` (two calls per 50 contacts) and
    /// the answers of the episodes of their follow-ups for non-responders
    /// (one call per 20 episodes; none when there are none).
    pub async fn read(
        store: &dyn Store,
        steps: &[&Step],
        now: DateTime<Utc>,
    ) -> Result<Self, PortError> {
        let mut contacts: Vec<ContactId> = steps.iter().map(|s| s.contact_id.clone()).collect();
        contacts.sort();
        contacts.dedup();
        let mut subjects: Vec<String> = steps
            .iter()
            .filter(|s| s.audience == Audience::NonResponders)
            .map(|s| s.subject.clone())
            .collect();
        subjects.sort();
        subjects.dedup();
        Ok(Self {
            contacts: if contacts.is_empty() {
                HashMap::new()
            } else {
                store.contact_facts(&contacts, now).await?
            },
            answers: if subjects.is_empty() {
                HashMap::new()
            } else {
                store.episode_answers(&subjects).await?
            },
        })
    }

    /// The episode's answer, for a follow-up for non-responders.
    pub fn answer(&self, step: &Step) -> Option<&str> {
        if step.audience != Audience::NonResponders {
            return None;
        }
        self.answers.get(&step.subject).map(String::as_str)
    }

    /// Takes in what a later read found.
    pub fn extend(&mut self, fresh: StepFacts) {
        self.contacts.extend(fresh.contacts);
        self.answers.extend(fresh.answers);
    }
}

/// A step whose contact does not exist is outside every audience.
fn unknown_contact() -> Selection {
    Selection {
        included: false,
        reasons: vec!["segment.contact".to_owned()],
        rules: vec![RuleOutcome::new(
            "segment.contact",
            AUDIENCE_VERSION,
            Verdict::Fail,
            "the step's contact does not exist",
        )],
    }
}

/// Applies the audience rules to `step` at `now`, reading the contact's
/// facts and the episode's answers; also gives the contact's audit head as
/// read with them.
pub async fn select(
    store: &dyn Store,
    config: &Config,
    step: &Step,
    now: DateTime<Utc>,
) -> Result<(Selection, Option<AuditHead>), PortError> {
    let mut read = StepFacts::read(store, &[step], now).await?;
    let selection = select_with(
        config,
        step,
        read.contacts.get(&step.contact_id),
        read.answer(step),
        now,
    );
    let head = read
        .contacts
        .remove(&step.contact_id)
        .and_then(|f| f.audit_head);
    Ok((selection, head))
}

/// Applies the audience rules to `step` at `now` with the contact's facts
/// (`None`: no such contact; consent of the contact and of its number) and
/// the episode's answer.
pub fn select_with(
    config: &Config,
    step: &Step,
    facts: Option<&ContactFacts>,
    answered: Option<&str>,
    now: DateTime<Utc>,
) -> Selection {
    let Some(facts) = facts else {
        return unknown_contact();
    };
    let program = config.program(Some(&step.program));
    let request = request_for(step, &facts.contact, program, now);
    let rules = program.map(|p| p.audience.clone()).unwrap_or_default();
    audience::select(
        &rules,
        &Candidate {
            request: &request,
            due_at: step.due_at,
            non_responders_only: step.audience == Audience::NonResponders,
            answered,
            stage: Stage::Sweep {
                consent: &facts.consent,
            },
        },
        now,
    )
}
