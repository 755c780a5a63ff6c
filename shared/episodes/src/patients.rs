//! Patients the EHR names: their demographics kept as contacts
//! ([`optline_consent::ehr`]), and an Appointment that names its patient
//! only by an identifier pointed at the contact that identifier names.

use chrono::{DateTime, Utc};
use optline_consent::ehr::{sync_from_ehr, EhrDemographics, Synced};
use optline_consent::{Consent, ConsentError};

use crate::intake::fhir;
use crate::{EpisodeError, Episodes};

fn episode_error(e: ConsentError) -> EpisodeError {
    match e {
        ConsentError::Invalid(r) => EpisodeError::Invalid(r),
        ConsentError::Unprocessable(r) => EpisodeError::Unprocessable(r),
        ConsentError::NotFound(_) => EpisodeError::UnknownContact,
        ConsentError::Conflict(r) => EpisodeError::Conflict(r),
        ConsentError::Busy => EpisodeError::Busy,
        ConsentError::Port(p) => EpisodeError::Port(p),
    }
}

fn consent<'a>(episodes: &Episodes<'a>) -> Consent<'a> {
    Consent {
        store: episodes.store,
        default_program: &episodes.config.default_program,
    }
}

/// Creates or updates the contact the EHR's demographics describe, as the
/// event's verified source.
pub async fn sync_patient(
    episodes: Episodes<'_>,
    demographics: &EhrDemographics,
    now: DateTime<Utc>,
) -> Result<Synced, EpisodeError> {
    sync_from_ehr(consent(&episodes), demographics, episodes.origin, now)
        .await
        .map_err(episode_error)
}

/// Resolves an Appointment's identifier-only patient to its contact, in
/// place. An identifier no contact holds is refused: the EHR sends the
/// Patient first (or in the same notification).
pub async fn resolve_patient(
    episodes: Episodes<'_>,
    appointment: &mut serde_json::Value,
) -> Result<(), EpisodeError> {
    let Some(identifier) = fhir::patient_identifier(appointment) else {
        return Ok(());
    };
    match episodes.store.contact_by_identifier(&identifier).await? {
        Some(contact) => {
            fhir::resolve_patient(appointment, &contact);
            Ok(())
        }
        None => Err(EpisodeError::Unprocessable(
            "the appointment names its patient by an identifier no contact holds: send the Patient first".to_owned(),
        )),
    }
}

/// The answer for a synced patient.
pub fn synced_view(synced: &Synced) -> serde_json::Value {
    match synced {
        Synced::Created(c) => {
            serde_json::json!({"contact_id": c.id, "result": "created", "phone": c.phone.masked()})
        }
        Synced::Updated {
            contact,
            number_changed,
        } => {
            serde_json::json!({"contact_id": contact.id, "result": "updated", "number_changed": number_changed, "phone": contact.phone.masked()})
        }
        Synced::Unchanged(c) => {
            serde_json::json!({"contact_id": c.id, "result": "unchanged", "phone": c.phone.masked()})
        }
        Synced::NoNumber => serde_json::json!({"result": "no_number"}),
    }
}

/// A patient who could not verify their identity in the portal: a
/// callback task in the staff queue and its `optline.fallback.task` event,
/// once per source event (its marker), as the event's source.
pub async fn verification_failed(
    episodes: Episodes<'_>,
    patient: &optline_ports::ContactId,
    subject: &str,
    marker: &str,
    now: DateTime<Utc>,
) -> Result<bool, EpisodeError> {
    use optline_ports::{Commit, Committed, Marker, OutboxEvent, ReviewItem, Write};
    if episodes.store.contact(patient).await?.is_none() {
        return Err(EpisodeError::UnknownContact);
    }
    let id = format!("callback-verify-{}", crate::intake::identity(marker));
    let mut commit = Commit {
        marker: Some(Marker {
            key: format!("ehr:{}:{marker}", episodes.origin),
            at: now,
            answer: None,
        }),
        writes: Vec::new(),
    };
    commit.push(Write::Review(ReviewItem {
        id: id.clone(),
        kind: "fallback".to_owned(),
        at: now,
        phone_masked: String::new(),
        contact_ids: vec![patient.clone()],
        body: format!(
            "the patient could not verify their identity in the portal to read {subject}: call the patient"
        ),
        rule: "portal.verification_failed".to_owned(),
        action_taken: "fallback: callback".to_owned(),
        assigned_to: None,
        resolution: None,
    }));
    commit.push(Write::Outbox(OutboxEvent {
        id: format!("fallback:{id}"),
        detail_type: optline_ports::FALLBACK_DETAIL_TYPE.to_owned(),
        at: now,
        detail: serde_json::json!({
            "task_id": id,
            "step_id": subject,
            "contact_id": patient,
            "program": episodes.config.default_program,
            "category": "portal",
            "purpose": "identity_verification",
            "fallback": "callback",
            "portal_link": null,
            "identity_verification": null,
            "reasons": ["portal.verification_failed"],
            "at": now,
        }),
    }));
    match episodes.store.commit(commit).await? {
        Committed::Done(_) => Ok(true),
        Committed::Duplicate(_) => Ok(false),
        Committed::Conflict(reason) => Err(EpisodeError::Conflict(reason)),
    }
}
