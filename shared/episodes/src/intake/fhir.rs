//! FHIR R4 `Appointment` resources and subscription notifications, read
//! into [`AppointmentEvent`]s.
//!
//! - `booked` plans the reminder (and the non-responder follow-up);
//! - `cancelled`, `noshow` and `entered-in-error` cancel what is planned;
//! - `fulfilled` and `noshow` are the episode's outcome;
//! - `proposed`, `pending`, `arrived`, `checked-in` and `waitlist` plan
//!   nothing.
//!
//! `meta.lastUpdated` (or a numeric `meta.versionId`) orders changes.
//! Patient references may be relative, absolute, versioned or contained.
//! A notification Bundle is the R4B/R5 shape (`SubscriptionStatus` first)
//! or the R4 backport (`Parameters` first), with full-resource payloads.
//!
//! An Appointment is checked against FHIR R4's structure first: no element
//! R4 does not define (FHIR's JSON rules), no modifier extension optline
//! cannot understand, a status from the value set on every participant
//! (required, 1..1), `minutesDuration` a whole number of 0 or more.

use chrono::{DateTime, Utc};
use optline_ports::ContactId;
use serde::Deserialize;

use crate::{AppointmentEvent, AppointmentStatus, EpisodeError, Start};

/// The parts of a FHIR R4 Appointment this reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FhirAppointment {
    /// Must be `Appointment`.
    pub resource_type: String,
    /// Logical id.
    pub id: Option<String>,
    /// proposed | pending | booked | arrived | fulfilled | cancelled | noshow | entered-in-error | checked-in | waitlist
    pub status: String,
    /// Start with its offset.
    pub start: Option<String>,
    /// Participants; the patient is the one whose actor references `Patient/…`.
    #[serde(default)]
    pub participant: Vec<FhirParticipant>,
    /// Resource metadata: its version, for ordering changes.
    #[serde(default)]
    pub meta: Option<FhirMeta>,
    /// Contained resources (a `#id` patient reference points here).
    #[serde(default)]
    pub contained: Vec<serde_json::Value>,
}

/// FHIR `Meta`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FhirMeta {
    /// The server's version id.
    #[serde(default)]
    pub version_id: Option<String>,
    /// When the resource last changed.
    #[serde(default)]
    pub last_updated: Option<String>,
}

/// An Appointment participant.
#[derive(Debug, Deserialize)]
pub struct FhirParticipant {
    /// accepted | declined | tentative | needs-action.
    #[serde(default)]
    pub status: Option<String>,
    /// The participant's actor.
    pub actor: Option<FhirReference>,
}

/// A FHIR Reference.
#[derive(Debug, Deserialize)]
pub struct FhirReference {
    /// `Patient/123` or an absolute URL ending so.
    pub reference: Option<String>,
}

/// `meta` as strictly as it orders changes: `lastUpdated` a FHIR instant,
/// `versionId` a FHIR id, and a whole number when it is what orders (no
/// `lastUpdated`). Nothing is silently dropped.
fn check_meta(meta: Option<&FhirMeta>) -> Result<(), EpisodeError> {
    let Some(meta) = meta else {
        return Ok(());
    };
    let invalid = |reason: &str| Err(EpisodeError::Invalid(reason.to_owned()));
    if let Some(at) = meta.last_updated.as_deref() {
        if DateTime::parse_from_rfc3339(at).is_err() {
            return invalid("meta.lastUpdated must be a FHIR instant with an offset");
        }
    }
    if let Some(version) = meta.version_id.as_deref() {
        let id_ok = !version.is_empty()
            && version.len() <= 64
            && version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !id_ok {
            return invalid("meta.versionId must be a FHIR id (1 to 64 of A-Za-z0-9-.)");
        }
        if meta.last_updated.is_none() && version.parse::<u64>().is_err() {
            return invalid(
                "meta.versionId must be a whole number when meta.lastUpdated is absent: it orders the changes",
            );
        }
    }
    Ok(())
}

/// The elements FHIR R4 defines for `Appointment`. FHIR's JSON rules
/// refuse any other property; `_name` carries a primitive's extensions.
const APPOINTMENT_ELEMENTS: &[&str] = &[
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "identifier",
    "status",
    "cancelationReason",
    "serviceCategory",
    "serviceType",
    "specialty",
    "appointmentType",
    "reasonCode",
    "reasonReference",
    "priority",
    "description",
    "supportingInformation",
    "start",
    "end",
    "minutesDuration",
    "slot",
    "created",
    "comment",
    "patientInstruction",
    "basedOn",
    "participant",
    "requestedPeriod",
];

/// `Appointment`'s primitive elements (which may have a `_name` sibling).
const APPOINTMENT_PRIMITIVES: &[&str] = &[
    "id",
    "implicitRules",
    "language",
    "status",
    "priority",
    "description",
    "start",
    "end",
    "minutesDuration",
    "created",
    "comment",
    "patientInstruction",
];

/// The elements of `Appointment.participant`.
const PARTICIPANT_ELEMENTS: &[&str] = &[
    "id",
    "extension",
    "modifierExtension",
    "type",
    "actor",
    "required",
    "_required",
    "status",
    "_status",
    "period",
];

/// `Appointment.participant.status` (required binding, ParticipationStatus).
const PARTICIPATION_STATUS: &[&str] = &["accepted", "declined", "tentative", "needs-action"];

/// An element name fit to quote in an error: a short FHIR-like name, or
/// nothing (a property name is schema, but never trusted).
fn element_name(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        format!(" ({name})")
    } else {
        String::new()
    }
}

/// FHIR R4's structural rules for an Appointment that a typed read would
/// let through: no element R4 does not define (nor a modifier extension
/// optline cannot understand), every participant with its required status
/// from the value set, and `minutesDuration` a whole number of 0 or more.
fn check_structure(value: &serde_json::Value) -> Result<(), EpisodeError> {
    let invalid = |reason: String| Err(EpisodeError::Invalid(reason));
    let Some(object) = value.as_object() else {
        return invalid("an Appointment is a JSON object".to_owned());
    };
    for key in object.keys() {
        let primitive_extension = key
            .strip_prefix('_')
            .is_some_and(|k| APPOINTMENT_PRIMITIVES.contains(&k));
        if !APPOINTMENT_ELEMENTS.contains(&key.as_str()) && !primitive_extension {
            return invalid(format!(
                "Appointment has an element FHIR R4 does not define{}",
                element_name(key)
            ));
        }
    }
    if object
        .get("modifierExtension")
        .and_then(|m| m.as_array())
        .is_some_and(|m| !m.is_empty())
    {
        return invalid(
            "Appointment carries a modifierExtension, which changes its meaning in a way optline does not understand".to_owned(),
        );
    }
    if let Some(minutes) = object.get("minutesDuration") {
        if minutes.as_u64().is_none_or(|m| m > 525_600) {
            return invalid(
                "Appointment.minutesDuration must be a whole number of minutes, 0 or more"
                    .to_owned(),
            );
        }
    }
    let participants = match object.get("participant") {
        None => return invalid("Appointment.participant is required (1..*)".to_owned()),
        Some(serde_json::Value::Array(list)) if !list.is_empty() => list,
        Some(_) => return invalid("Appointment.participant must be a non-empty array".to_owned()),
    };
    for (i, participant) in participants.iter().enumerate() {
        let Some(fields) = participant.as_object() else {
            return invalid(format!("Appointment.participant[{i}] must be an object"));
        };
        for key in fields.keys() {
            if !PARTICIPANT_ELEMENTS.contains(&key.as_str()) {
                return invalid(format!(
                    "Appointment.participant[{i}] has an element FHIR R4 does not define{}",
                    element_name(key)
                ));
            }
        }
        if fields
            .get("modifierExtension")
            .and_then(|m| m.as_array())
            .is_some_and(|m| !m.is_empty())
        {
            return invalid(format!(
                "Appointment.participant[{i}] carries a modifierExtension optline does not understand"
            ));
        }
        match fields.get("status").and_then(|s| s.as_str()) {
            Some(s) if PARTICIPATION_STATUS.contains(&s) => {}
            Some(_) => {
                return invalid(format!(
                    "Appointment.participant[{i}].status must be accepted, declined, tentative or needs-action"
                ))
            }
            None => {
                return invalid(format!(
                    "Appointment.participant[{i}].status is required (1..1)"
                ))
            }
        }
    }
    Ok(())
}

/// Most resources one subscription notification may carry (after its
/// status entry).
pub const MAX_NOTIFICATION_ENTRIES: usize = 20;

/// A sortable version of a resource: `meta.lastUpdated` as a UTC instant,
/// else a numeric `meta.versionId`, zero-padded.
pub fn fhir_version(meta: Option<&FhirMeta>) -> Option<String> {
    let meta = meta?;
    if let Some(at) = meta
        .last_updated
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        return Some(format!(
            "t{}",
            at.with_timezone(&Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        ));
    }
    meta.version_id
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|v| format!("v{v:020}"))
}

/// The patient id in a reference (relative `Patient/123` or absolute
/// `https://ehr.example/fhir/Patient/123`, optionally with `/_history/n`).
pub fn patient_id(reference: &str) -> Option<&str> {
    let trimmed = match reference.find("/_history/") {
        Some(i) => reference.get(..i)?,
        None => reference,
    };
    let mut parts = trimmed.rsplit('/');
    let id = parts.next()?;
    (parts.next()? == "Patient" && !id.is_empty()).then_some(id)
}

/// The patient behind a contained reference (`#p1`): the contained
/// Patient's first identifier value (its `id` is local to the resource).
fn contained_patient<'a>(contained: &'a [serde_json::Value], reference: &str) -> Option<&'a str> {
    let local = reference.strip_prefix('#')?;
    contained
        .iter()
        .find(|r| {
            r.get("resourceType").and_then(|t| t.as_str()) == Some("Patient")
                && r.get("id").and_then(|i| i.as_str()) == Some(local)
        })?
        .get("identifier")?
        .as_array()?
        .first()?
        .get("value")?
        .as_str()
}

/// What a posted FHIR document is. Resources stay JSON until their turn:
/// a notification's Patients are applied before its Appointments are read,
/// so an Appointment naming its patient by identifier finds them.
#[derive(Debug)]
pub enum FhirDocument {
    /// One Appointment (read with [`appointment`]).
    Appointment(Box<serde_json::Value>),
    /// One Patient (read with [`super::patient::from_fhir_patient`]).
    Patient(Box<serde_json::Value>),
    /// A notification that carries no event (handshake, heartbeat, query).
    Notice(String),
    /// An event notification's entries, Patients first.
    Notification(Vec<NotificationEntry>),
}

/// One focus of an event notification.
#[derive(Debug)]
pub enum NotificationEntry {
    /// A full resource (Patient or Appointment).
    Resource(serde_json::Value),
    /// An id-only entry: the resource to fetch from the source's server.
    Reference {
        /// `Appointment` or `Patient`.
        resource_type: String,
        /// Its logical id.
        id: String,
    },
}

/// The resource type and id an entry's `fullUrl` (or `request.url`)
/// names: `…/Appointment/123`, optionally with `/_history/n`.
fn referenced(entry: &serde_json::Value) -> Option<(String, String)> {
    let url = entry.get("fullUrl").and_then(|u| u.as_str()).or_else(|| {
        entry
            .get("request")
            .and_then(|r| r.get("url"))
            .and_then(|u| u.as_str())
    })?;
    let trimmed = match url.find("/_history/") {
        Some(i) => url.get(..i)?,
        None => url,
    };
    let mut parts = trimmed.rsplit('/');
    let id = parts.next()?;
    let kind = parts.next()?;
    (matches!(kind, "Appointment" | "Patient") && fhir_id(id))
        .then(|| (kind.to_owned(), id.to_owned()))
}

fn fhir_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Reads a posted FHIR JSON document: an Appointment, a Patient or a
/// subscription notification Bundle.
pub fn read_document(value: serde_json::Value) -> Result<FhirDocument, EpisodeError> {
    match value.get("resourceType").and_then(|t| t.as_str()) {
        Some("Appointment") => Ok(FhirDocument::Appointment(Box::new(value))),
        Some("Patient") => Ok(FhirDocument::Patient(Box::new(value))),
        Some("Bundle") => notification(&value),
        _ => Err(EpisodeError::Invalid(
            "resourceType must be Appointment, Patient or a subscription notification Bundle"
                .to_owned(),
        )),
    }
}

fn notification(bundle: &serde_json::Value) -> Result<FhirDocument, EpisodeError> {
    let invalid = |reason: &str| EpisodeError::Invalid(reason.to_owned());
    let kind = bundle
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    if !matches!(kind, "history" | "subscription-notification") {
        return Err(invalid(
            "Bundle.type must be history or subscription-notification",
        ));
    }
    let entries = bundle
        .get("entry")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    // Every appointment costs reads and a commit: a notification carries a
    // few, never a bulk export.
    if entries.len() > MAX_NOTIFICATION_ENTRIES + 1 {
        return Err(EpisodeError::Invalid(format!(
            "a notification Bundle carries at most {MAX_NOTIFICATION_ENTRIES} resources; send more in several notifications"
        )));
    }
    let Some(status) = entries.first().and_then(|e| e.get("resource")) else {
        return Err(invalid(
            "a notification Bundle starts with its SubscriptionStatus or Parameters",
        ));
    };
    let notification_type = match status.get("resourceType").and_then(|t| t.as_str()) {
        Some("SubscriptionStatus") => status
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        Some("Parameters") => status
            .get("parameter")
            .and_then(|p| p.as_array())
            .and_then(|params| {
                params
                    .iter()
                    .find(|p| p.get("name").and_then(|n| n.as_str()) == Some("type"))
            })
            .and_then(|p| p.get("valueCode").and_then(|v| v.as_str()))
            .map(str::to_owned),
        _ => None,
    };
    let Some(notification_type) = notification_type else {
        return Err(invalid(
            "the first entry must be a SubscriptionStatus or Parameters giving the notification type",
        ));
    };
    if notification_type != "event-notification" {
        return Ok(FhirDocument::Notice(notification_type));
    }
    let mut patients = Vec::new();
    let mut appointments = Vec::new();
    for entry in entries.iter().skip(1) {
        match entry.get("resource") {
            Some(resource) => match resource.get("resourceType").and_then(|t| t.as_str()) {
                Some("Patient") => patients.push(NotificationEntry::Resource(resource.clone())),
                Some("Appointment") => {
                    appointments.push(NotificationEntry::Resource(resource.clone()))
                }
                _ => continue,
            },
            None => match referenced(entry) {
                Some((resource_type, id)) => {
                    let item = NotificationEntry::Reference { resource_type, id };
                    match &item {
                        NotificationEntry::Reference { resource_type, .. }
                            if resource_type == "Patient" =>
                        {
                            patients.push(item)
                        }
                        _ => appointments.push(item),
                    }
                }
                None => continue,
            },
        }
    }
    patients.extend(appointments);
    Ok(FhirDocument::Notification(patients))
}

/// The identifier an Appointment names its patient by, when no participant
/// references a Patient: a participant whose actor is a Reference of type
/// `Patient` (or untyped) carrying only `identifier` (system and value).
pub fn patient_identifier(
    appointment: &serde_json::Value,
) -> Option<optline_ports::PersonIdentifier> {
    let participants = appointment.get("participant")?.as_array()?;
    let has_reference = participants.iter().any(|p| {
        p.get("actor")
            .and_then(|a| a.get("reference"))
            .and_then(|r| r.as_str())
            .is_some_and(|r| patient_id(r).is_some() || r.starts_with('#'))
    });
    if has_reference {
        return None;
    }
    participants.iter().find_map(|p| {
        let actor = p.get("actor")?;
        if actor.get("reference").is_some() {
            return None;
        }
        if actor
            .get("type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t != "Patient")
        {
            return None;
        }
        let identifier = actor.get("identifier")?;
        let system = identifier.get("system")?.as_str()?.trim();
        let value = identifier.get("value")?.as_str()?.trim();
        (!system.is_empty() && !value.is_empty() && system.len() <= 128 && value.len() <= 128).then(
            || optline_ports::PersonIdentifier {
                system: system.to_owned(),
                value: value.to_owned(),
            },
        )
    })
}

/// Points the Appointment's identifier-only patient participant at the
/// contact the identifier resolved to.
pub fn resolve_patient(appointment: &mut serde_json::Value, contact: &ContactId) {
    let Some(wanted) = patient_identifier(appointment) else {
        return;
    };
    if let Some(participants) = appointment
        .get_mut("participant")
        .and_then(|p| p.as_array_mut())
    {
        for p in participants {
            let same = p
                .get("actor")
                .and_then(|a| a.get("identifier"))
                .is_some_and(|i| {
                    i.get("system").and_then(|s| s.as_str()).map(str::trim)
                        == Some(wanted.system.as_str())
                        && i.get("value").and_then(|s| s.as_str()).map(str::trim)
                            == Some(wanted.value.as_str())
                });
            if same {
                if let Some(actor) = p.get_mut("actor").and_then(|a| a.as_object_mut()) {
                    actor.insert(
                        "reference".to_owned(),
                        serde_json::Value::from(format!("Patient/{}", contact.as_str())),
                    );
                }
                return;
            }
        }
    }
}

/// One FHIR R4 Appointment.
pub fn appointment(value: serde_json::Value) -> Result<AppointmentEvent, EpisodeError> {
    let identity = crate::intake::identity(&value.to_string());
    check_structure(&value)?;
    let appt: FhirAppointment = serde_json::from_value(value)
        .map_err(|e| EpisodeError::Invalid(crate::intake::json_reason(&e)))?;
    let Some(appt_id) = appt.id.as_deref() else {
        return Err(EpisodeError::Invalid(
            "Appointment.id is required".to_owned(),
        ));
    };
    if !crate::source_id_ok(appt_id) {
        return Err(EpisodeError::Invalid(
            "Appointment.id must be 1 to 64 characters of A-Za-z0-9-.".to_owned(),
        ));
    }
    let Some(patient) = appt
        .participant
        .iter()
        .filter_map(|p| p.actor.as_ref()?.reference.as_deref())
        .find_map(|r| contained_patient(&appt.contained, r).or_else(|| patient_id(r)))
    else {
        return Err(EpisodeError::Invalid(
            "Appointment.participant has no Patient reference".to_owned(),
        ));
    };
    let patient = ContactId::parse(patient).map_err(|e| EpisodeError::Invalid(e.to_string()))?;
    check_meta(appt.meta.as_ref())?;
    let status = match appt.status.as_str() {
        "booked" => {
            let Some(start) = appt.start.as_deref() else {
                return Err(EpisodeError::Invalid(
                    "a booked Appointment needs start".to_owned(),
                ));
            };
            let start = DateTime::parse_from_rfc3339(start).map_err(|_| {
                EpisodeError::Invalid(
                    "Appointment.start must be an instant with an offset".to_owned(),
                )
            })?;
            AppointmentStatus::Booked(Start::At(start))
        }
        "cancelled" | "entered-in-error" => AppointmentStatus::Cancelled,
        "noshow" => AppointmentStatus::NoShow,
        "fulfilled" => AppointmentStatus::Fulfilled,
        "proposed" | "pending" | "arrived" | "checked-in" | "waitlist" => {
            AppointmentStatus::NothingToPlan
        }
        _ => {
            return Err(EpisodeError::Invalid(
                "Appointment.status is not a FHIR R4 status".to_owned(),
            ))
        }
    };
    Ok(AppointmentEvent {
        appointment_id: appt_id.to_owned(),
        patient,
        status,
        source: format!("fhir:Appointment/{appt_id}"),
        version: fhir_version(appt.meta.as_ref()),
        marker: format!("fhir:Appointment/{appt_id}:{identity}"),
    })
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step should stop the test loudly"
)]
mod tests {
    use super::*;

    #[test]
    fn patient_references_relative_absolute_and_versioned_are_read() {
        assert_eq!(patient_id("Patient/123"), Some("123"));
        assert_eq!(
            patient_id("https://ehr.example/fhir/Patient/abc"),
            Some("abc")
        );
        assert_eq!(patient_id("Patient/123/_history/2"), Some("123"));
        assert_eq!(patient_id("Practitioner/9"), None);
    }

    fn booked() -> serde_json::Value {
        serde_json::json!({
            "resourceType": "Appointment", "id": "a1", "status": "booked",
            "start": "2026-12-10T10:00:00-05:00", "minutesDuration": 30,
            "_start": {"extension": []},
            "participant": [
                {"actor": {"reference": "Patient/p-1"}, "status": "accepted"},
                {"actor": {"reference": "Practitioner/9"}, "status": "needs-action", "required": "required"}
            ]
        })
    }

    fn refused(value: serde_json::Value) -> String {
        match appointment(value) {
            Err(EpisodeError::Invalid(reason)) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn what_fhir_r4_forbids_is_refused_with_its_reason() {
        assert!(appointment(booked()).is_ok());
        let mut no_status = booked();
        if let Some(p) = no_status["participant"][0].as_object_mut() {
            p.remove("status");
        }
        assert_eq!(
            refused(no_status),
            "Appointment.participant[0].status is required (1..1)"
        );
        let mut bad_status = booked();
        bad_status["participant"][1]["status"] = serde_json::json!("maybe");
        assert!(refused(bad_status).contains("participant[1].status must be accepted"));
        let mut unknown = booked();
        unknown["patientName"] = serde_json::json!("someone");
        assert_eq!(
            refused(unknown),
            "Appointment has an element FHIR R4 does not define (patientName)"
        );
        let mut unknown_in_participant = booked();
        unknown_in_participant["participant"][0]["phone"] = serde_json::json!("x");
        assert!(refused(unknown_in_participant).contains("participant[0] has an element"));
        for minutes in [
            serde_json::json!(-15),
            serde_json::json!(1.5),
            serde_json::json!("30"),
        ] {
            let mut bad = booked();
            bad["minutesDuration"] = minutes;
            assert_eq!(
                refused(bad),
                "Appointment.minutesDuration must be a whole number of minutes, 0 or more"
            );
        }
        let mut zero = booked();
        zero["minutesDuration"] = serde_json::json!(0);
        assert!(appointment(zero).is_ok());
        let mut modifier = booked();
        modifier["modifierExtension"] =
            serde_json::json!([{"url": "https://x.example/not-really", "valueBoolean": true}]);
        assert!(refused(modifier).contains("modifierExtension"));
        let mut undefined_primitive = booked();
        undefined_primitive["_participant"] = serde_json::json!({});
        assert!(refused(undefined_primitive).contains("does not define"));
    }
}
