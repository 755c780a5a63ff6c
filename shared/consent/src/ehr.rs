//! Contacts kept in step with the EHR's demographics (FHIR `Patient`, HL7
//! PID): created when the EHR names a patient optline has not seen, their
//! number, language, birth date and identifiers updated when the EHR's
//! change. One commit per change: the contact, its identifier index
//! entries, and its audit record.
//!
//! **A changed number is a new number.** Consent the patient gave for the
//! old number does not follow it to its next owner (phone-scoped events stay
//! with the number), and does not move to the new number without the
//! patient's word: the contact's own grants lapse with a recorded event
//! (`number_changed`), so the new number is texted only after new consent.
//! A number from the EHR's demographics is recorded as such: not given by
//! the patient to optline, so no legal basis rests on it alone.

use chrono::{DateTime, NaiveDate, Utc};
use optline_policy::consent::{ConsentAction, ConsentKind, ConsentScope};
use optline_policy::phone::E164;
use optline_ports::{
    CaptureChannel, ChainRead, Commit, Committed, ConsentEvent, Contact, ContactId, EventId,
    Evidence, NewAuditRecord, NumberSource, Partition, PersonIdentifier, PhoneProvenance, Write,
    COMMIT_ATTEMPTS,
};

use crate::{Consent, ConsentError};

/// Most identifiers kept per contact.
pub const MAX_IDENTIFIERS: usize = 10;

/// What the EHR says about a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhrDemographics {
    /// The patient id, which is the contact id (`Patient.id`, PID-3.1).
    pub patient_id: String,
    /// The chosen number, as the EHR wrote it (`None`: the EHR has none
    /// optline could text).
    pub phone: Option<String>,
    /// How the EHR labels that number (`mobile`, `home`, `PRN/CP`, …).
    pub phone_use: Option<String>,
    /// Preferred language (BCP 47).
    pub language: Option<String>,
    /// Date of birth.
    pub birth_date: Option<NaiveDate>,
    /// The source's identifiers for the patient.
    pub identifiers: Vec<PersonIdentifier>,
    /// Where it came from, for the record (`fhir:Patient/123`,
    /// `hl7:ADT^A08:MSG0001`): no PHI.
    pub reference: String,
}

/// What syncing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// A new contact.
    Created(Contact),
    /// The contact changed (the number too, when `number_changed`).
    Updated {
        /// The contact now.
        contact: Contact,
        /// Whether its number changed (its own grants lapsed).
        number_changed: bool,
    },
    /// Nothing new.
    Unchanged(Contact),
    /// The EHR gave no number optline could use, and the patient is not a
    /// contact yet: nothing to create (nothing written).
    NoNumber,
}

fn lapse_event(
    contact: &Contact,
    origin: &str,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<ConsentEvent, ConsentError> {
    let id = EventId::parse(&format!(
        "numchg-{}-{}",
        contact.id.as_str().chars().take(40).collect::<String>(),
        now.timestamp_millis()
    ))
    .map_err(|e| ConsentError::Invalid(e.to_string()))?;
    Ok(ConsentEvent {
        id,
        contact_id: Some(contact.id.clone()),
        phone: contact.phone.clone(),
        action: ConsentAction::Revoke,
        scope: ConsentScope::Contact,
        program: Some(contact.program.clone()),
        categories: Vec::new(),
        kind: ConsentKind::Express,
        at: now,
        recorded_at: now,
        channel: CaptureChannel::EhrImport,
        actor: format!("ehr:{origin}"),
        source_system: Some(origin.to_owned()),
        source_record_id: Some(format!("number_changed {reference}")),
        disclosure_sha256: None,
        disclosure_version: None,
        evidence: Evidence::default(),
        reverses: None,
        guardian: false,
        expires_at: None,
    })
}

/// Creates or updates the contact the EHR describes, as `origin` (the
/// verified source's name).
pub async fn sync_from_ehr(
    consent: Consent<'_>,
    input: &EhrDemographics,
    origin: &str,
    now: DateTime<Utc>,
) -> Result<Synced, ConsentError> {
    let id =
        ContactId::parse(&input.patient_id).map_err(|e| ConsentError::Invalid(e.to_string()))?;
    let phone = match input.phone.as_deref() {
        Some(raw) => Some(E164::parse(raw).map_err(|_| {
            ConsentError::Invalid("the patient's number is not a valid phone number".to_owned())
        })?),
        None => None,
    };
    let mut identifiers = input.identifiers.clone();
    identifiers.sort();
    identifiers.dedup();
    identifiers.truncate(MAX_IDENTIFIERS);
    let provenance = |phone: &E164| {
        let _ = phone;
        PhoneProvenance {
            source: NumberSource::EhrDemographics,
            given_by_patient: false,
            evidence: Some(format!(
                "{} ({})",
                input.reference,
                input.phone_use.as_deref().unwrap_or("use not stated")
            )),
            at: now,
        }
    };
    for _ in 0..COMMIT_ATTEMPTS {
        let existing = consent.store.contact(&id).await?;
        let mut commit = Commit::default();
        let (outcome, audit_detail, contact) = match &existing {
            None => {
                let Some(phone) = &phone else {
                    return Ok(Synced::NoNumber);
                };
                let contact = Contact {
                    id: id.clone(),
                    phone: phone.clone(),
                    program: consent.default_program.to_owned(),
                    time_zone: None,
                    address_state: None,
                    minor: false,
                    date_of_birth: input.birth_date,
                    phone_provenance: Some(provenance(phone)),
                    language: input.language.clone(),
                    identifiers: identifiers.clone(),
                    created_at: now,
                };
                commit.push(Write::CreateContact(contact.clone()));
                (
                    Synced::Created(contact.clone()),
                    format!("created from the EHR's demographics ({})", input.reference),
                    contact,
                )
            }
            Some(previous) => {
                let number_changed = phone.as_ref().is_some_and(|p| *p != previous.phone);
                let mut merged_ids = previous.identifiers.clone();
                merged_ids.extend(identifiers.iter().cloned());
                merged_ids.sort();
                merged_ids.dedup();
                merged_ids.truncate(MAX_IDENTIFIERS);
                let mut contact = Contact {
                    date_of_birth: input.birth_date.or(previous.date_of_birth),
                    language: input.language.clone().or_else(|| previous.language.clone()),
                    identifiers: merged_ids,
                    ..previous.clone()
                };
                if let (true, Some(phone)) = (number_changed, &phone) {
                    contact.phone = phone.clone();
                    contact.phone_provenance = Some(provenance(phone));
                }
                if contact == *previous {
                    return Ok(Synced::Unchanged(contact));
                }
                commit.push(Write::UpdateContact {
                    contact: contact.clone(),
                    previous: previous.clone(),
                });
                if number_changed {
                    // The grants the patient gave for the old number lapse.
                    let partition = Partition::Contact(contact.id.clone());
                    let ledger = consent.store.ledger(&partition).await?;
                    commit.push(Write::Consent {
                        event: lapse_event(previous, origin, &input.reference, now)?,
                        disclosure: None,
                        ledger: ledger.read,
                    });
                }
                (
                    Synced::Updated {
                        contact: contact.clone(),
                        number_changed,
                    },
                    if number_changed {
                        format!(
                            "number changed in the EHR ({}): the contact's consent for {} lapses; the new number {} needs the patient's own consent",
                            input.reference,
                            previous.phone.masked(),
                            contact.phone.masked()
                        )
                    } else {
                        format!("updated from the EHR's demographics ({})", input.reference)
                    },
                    contact,
                )
            }
        };
        for identifier in &identifiers {
            commit.push(Write::ContactIdentifier {
                identifier: identifier.clone(),
                contact: contact.id.clone(),
            });
        }
        let heads = consent
            .store
            .chain_heads(std::slice::from_ref(&contact.id))
            .await?;
        if let Some(head) = heads.get(&contact.id) {
            commit.push(Write::Audit {
                chain: ChainRead {
                    contact: contact.id.clone(),
                    head: head.clone(),
                },
                records: vec![NewAuditRecord {
                    evidence: Default::default(),
                    contact_id: contact.id.clone(),
                    at: now,
                    kind: "contact".to_owned(),
                    action: match &outcome {
                        Synced::Created(_) => "created_from_ehr",
                        _ => "updated_from_ehr",
                    }
                    .to_owned(),
                    step_id: None,
                    rules: Vec::new(),
                    reasons: Vec::new(),
                    legal_basis: None,
                    consent_event_id: None,
                    template: None,
                    carrier_message_id: None,
                    arm: None,
                    detail: Some(audit_detail),
                }],
            });
        }
        match consent.store.commit(commit).await? {
            Committed::Done(_) => return Ok(outcome),
            Committed::Duplicate(_) => return Ok(Synced::Unchanged(contact)),
            Committed::Conflict(reason) => {
                if reason.contains("identifier") {
                    return Err(ConsentError::Conflict(
                        "one of the patient's identifiers already names another contact".to_owned(),
                    ));
                }
            }
        }
    }
    Err(ConsentError::Busy)
}

/// The contact an identifier names, if any.
pub async fn by_identifier(
    consent: Consent<'_>,
    identifier: &PersonIdentifier,
) -> Result<Option<ContactId>, ConsentError> {
    Ok(consent.store.contact_by_identifier(identifier).await?)
}
