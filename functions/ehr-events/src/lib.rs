//! # ehr-events
//!
//! Verified EHR events in, planned steps out. This version accepts a FHIR R4
//! `Appointment` (`application/fhir+json`) on `POST /ehr/fhir/Appointment`:
//! a `booked` appointment plans a reminder 72 hours before its start that
//! expires at the start; a `cancelled` or `noshow` one cancels the reminder
//! if it has not been sent. Step ids derive from the appointment id, so a
//! replayed event changes nothing.
//!
//! Every request is verified first: a configured source by its HMAC
//! signature or bearer token ([`verify`]), anything else by the deployment's
//! API authentication.

pub mod events;
pub mod hl7;
pub mod verify;

use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{body_bytes, error, json, json_reason, port_error, ApiAuth};
use optline_library::Library;
use optline_policy::decision::Urgency;
use optline_policy::template::lint::LintConfig;
use optline_policy::template::review::ReviewPolicy;
use optline_ports::{ContactId, EpisodeOutcome, Step, StepId, StepStatus, Store};
use serde::Deserialize;

/// How long before the appointment the reminder is due, unless the
/// program says otherwise (`reminder_lead_hours`).
pub const REMINDER_LEAD: Duration = Duration::hours(72);

/// What the function needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Caller authentication when the request names no source.
    pub auth: ApiAuth,
    /// Source systems and how each proves itself.
    pub sources: verify::EhrSources,
    /// Where episode outcomes (completed, fulfilled, no-show) are announced.
    pub outcomes: Option<Arc<dyn optline_ports::OutcomeEvents>>,
    /// Programs, with their appointment cadence.
    pub config: Arc<optline_config::Config>,
}

/// A program's appointment cadence: (reminder lead, follow-up lead; `None`
/// plans no follow-up).
fn cadence(deps: &Deps, program: &str) -> (Duration, Option<Duration>) {
    match deps.config.program(Some(program)) {
        Some(p) => (
            Duration::hours(i64::from(p.reminder_lead_hours)),
            (p.follow_up_lead_hours > 0)
                .then(|| Duration::hours(i64::from(p.follow_up_lead_hours))),
        ),
        None => (REMINDER_LEAD, Some(FOLLOW_UP_LEAD)),
    }
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// The parts of a FHIR R4 Appointment this function reads.
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

/// Whether `incoming` is known to be older than or the same as `stored`.
fn stale(incoming: Option<&str>, stored: Option<&str>) -> bool {
    matches!((incoming, stored), (Some(i), Some(s)) if i <= s)
}

/// Whether `incoming` is known to be newer than `stored`.
fn newer(incoming: Option<&str>, stored: Option<&str>) -> bool {
    matches!((incoming, stored), (Some(i), Some(s)) if i > s)
}

/// An Appointment participant.
#[derive(Debug, Deserialize)]
pub struct FhirParticipant {
    /// The participant's actor.
    pub actor: Option<FhirReference>,
}

/// A FHIR Reference.
#[derive(Debug, Deserialize)]
pub struct FhirReference {
    /// `Patient/123` or an absolute URL ending so.
    pub reference: Option<String>,
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

/// Routes one request.
pub async fn handle(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let body = match body_bytes(&request) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match verify::verify(&deps.sources, request.headers(), body, now) {
        Ok(verify::Verified::Source(_)) => {}
        Ok(verify::Verified::NoSource) => {
            if let Err(denied) = deps.auth.check(&request) {
                return denied;
            }
        }
        Err(reason) => return error(StatusCode::UNAUTHORIZED, reason),
    }
    let path = request.uri().path().trim_end_matches('/').to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/ehr/fhir/Appointment" | "/ehr/fhir") => {
            appointment(&request, deps, now).await
        }
        (&Method::POST, "/ehr/events") => normalized(body, deps, now).await,
        (&Method::POST, "/ehr/hl7") => hl7_message(body, deps, now).await,
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

async fn appointment(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media != "application/fhir+json" && media != "application/json" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/fhir+json",
        );
    }
    let bytes = match body_bytes(request) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &json_reason(&e)),
    };
    match value.get("resourceType").and_then(|t| t.as_str()) {
        Some("Appointment") => appointment_resource(value, deps, now).await,
        Some("Bundle") => notification_bundle(value, deps, now).await,
        _ => error(
            StatusCode::BAD_REQUEST,
            "resourceType must be Appointment or a subscription notification Bundle",
        ),
    }
}

/// A FHIR subscription notification: R4B/R5 (`Bundle.type` `history` or
/// `subscription-notification`, first entry a `SubscriptionStatus`) or the
/// R4 backport (first entry a `Parameters`). Handshakes and heartbeats are
/// acknowledged; an event notification's Appointment entries are each
/// handled as if posted alone. Id-only payloads (no resource) are refused:
/// configure the subscription for full-resource content.
async fn notification_bundle(
    bundle: serde_json::Value,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Response<Body> {
    let kind = bundle
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    if !matches!(kind, "history" | "subscription-notification") {
        return error(
            StatusCode::BAD_REQUEST,
            "Bundle.type must be history or subscription-notification",
        );
    }
    let entries = bundle
        .get("entry")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    let Some(status) = entries.first().and_then(|e| e.get("resource")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "a notification Bundle starts with its SubscriptionStatus or Parameters",
        );
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
        return error(
            StatusCode::BAD_REQUEST,
            "the first entry must be a SubscriptionStatus or Parameters giving the notification type",
        );
    };
    if notification_type != "event-notification" {
        // handshake, heartbeat, query-status, query-event: nothing to plan.
        return json(
            StatusCode::OK,
            &serde_json::json!({ "accepted": true, "notification": notification_type, "results": [] }),
        );
    }
    let mut results = Vec::new();
    let mut failed = false;
    for entry in entries.iter().skip(1) {
        let Some(resource) = entry.get("resource").cloned() else {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "id-only notifications are not supported: use full-resource content",
            );
        };
        if resource.get("resourceType").and_then(|t| t.as_str()) != Some("Appointment") {
            continue;
        }
        let response = appointment_resource(resource, deps, now).await;
        failed |= !response.status().is_success();
        let bytes: &[u8] = response.body().as_ref();
        results.push(serde_json::json!({
            "status": response.status().as_u16(),
            "answer": serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_default(),
        }));
    }
    json(
        if failed {
            StatusCode::MULTI_STATUS
        } else {
            StatusCode::OK
        },
        &serde_json::json!({ "accepted": !failed, "notification": notification_type, "results": results }),
    )
}

/// One FHIR R4 Appointment.
async fn appointment_resource(
    value: serde_json::Value,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Response<Body> {
    let appt: FhirAppointment = match serde_json::from_value(value) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, &json_reason(&e)),
    };
    let Some(appt_id) = appt.id.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "Appointment.id is required");
    };
    let Some(patient) = appt
        .participant
        .iter()
        .filter_map(|p| p.actor.as_ref()?.reference.as_deref())
        .find_map(|r| contained_patient(&appt.contained, r).or_else(|| patient_id(r)))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "Appointment.participant has no Patient reference",
        );
    };
    let contact_id = match ContactId::parse(patient) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let step_id = match StepId::parse(&format!("appt-{appt_id}-reminder")) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };

    let version = fhir_version(appt.meta.as_ref());
    // The appointment's final status is the episode's outcome.
    if matches!(appt.status.as_str(), "fulfilled" | "noshow") {
        let outcome = EpisodeOutcome {
            subject: format!("appt-{appt_id}"),
            kind: appt.status.clone(),
            at: now,
            contact_id: contact_id.clone(),
            step_id: Some(step_id.clone()),
            source: format!("fhir:Appointment/{appt_id}"),
            after_first_text_seconds: None,
        };
        if let Err(e) = record_outcome(deps, outcome).await {
            return port_error(&e);
        }
    }
    match appt.status.as_str() {
        "booked" => {}
        "cancelled" | "noshow" | "entered-in-error" => {
            return cancel(deps, &step_id, &contact_id, version, now).await;
        }
        "proposed" | "pending" | "arrived" | "fulfilled" | "checked-in" | "waitlist" => {
            return json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "accepted": true, "planned": [] }),
            );
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "Appointment.status is not a FHIR R4 status",
            )
        }
    }

    let Some(start) = appt.start.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "a booked Appointment needs start");
    };
    let start: DateTime<FixedOffset> = match DateTime::parse_from_rfc3339(start) {
        Ok(s) => s,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Appointment.start must be an instant with an offset",
            )
        }
    };
    let contact = match known_contact(deps, &contact_id).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let start_utc = start.with_timezone(&Utc);
    if start_utc <= now {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the appointment has already started",
        );
    }
    let (date, time) = display_time(&contact, start);
    let planned = Planned {
        step_id,
        template: "appointment_reminder",
        variables: [("date".to_owned(), date), ("time".to_owned(), time)]
            .into_iter()
            .collect(),
        subject: format!("appt-{appt_id}"),
        due_at: (start_utc - cadence(deps, &contact.program).0).max(now),
        expires_at: Some(start_utc),
        source_event: format!("fhir:Appointment/{appt_id}"),
        source_version: version,
        audience: optline_ports::Audience::Everyone,
    };
    plan_appointment(deps, &contact, planned, now).await
}

/// The appointment's date and time as the patient will read them: in their
/// zone, else at the source's offset.
fn display_time(
    contact: &optline_ports::Contact,
    start: DateTime<FixedOffset>,
) -> (String, String) {
    let local = contact
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .map(|tz| start.with_timezone(&tz).fixed_offset())
        .unwrap_or(start);
    (
        local.format("%a %b %-d").to_string(),
        local.format("%-I:%M %p").to_string(),
    )
}

/// An HL7 answer: the ACK as `application/hl7-v2`.
fn hl7_answer(status: StatusCode, ack: String) -> Response<Body> {
    let mut response = Response::new(Body::from(ack));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/hl7-v2"),
    );
    response
}

/// The `error` of a JSON answer.
fn error_text(response: &Response<Body>) -> String {
    let bytes: &[u8] = response.body().as_ref();
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "not processed".to_owned())
}

/// `POST /ehr/hl7`: see [`hl7`].
async fn hl7_message(body: &[u8], deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let reject = |message: Option<&hl7::Message>, reason: &str| {
        hl7_answer(
            StatusCode::BAD_REQUEST,
            hl7::ack(message, "AR", Some(reason), now),
        )
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return reject(None, "the message is not UTF-8");
    };
    let message = match hl7::Message::parse(text) {
        Ok(m) => m,
        Err(e) => return reject(None, &e.0),
    };
    let siu = match hl7::siu(&message) {
        Ok(s) => s,
        Err(e) => return reject(Some(&message), &e.0),
    };
    let (Ok(contact_id), Ok(step_id)) = (
        ContactId::parse(&siu.patient_id),
        StepId::parse(&format!("appt-{}-reminder", siu.appointment_id)),
    ) else {
        return reject(
            Some(&message),
            "PID-3 or the appointment id has characters outside A-Za-z0-9._:-",
        );
    };
    let answered = |response: Response<Body>| {
        if response.status().is_success() {
            hl7_answer(StatusCode::OK, hl7::ack(Some(&message), "AA", None, now))
        } else {
            hl7_answer(
                response.status(),
                hl7::ack(Some(&message), "AE", Some(&error_text(&response)), now),
            )
        }
    };
    if siu.trigger == "S26" {
        // The patient did not arrive: the appointment's final status.
        let outcome = EpisodeOutcome {
            subject: format!("appt-{}", siu.appointment_id),
            kind: "noshow".to_owned(),
            at: now,
            contact_id: contact_id.clone(),
            step_id: Some(step_id.clone()),
            source: format!("hl7:SIU^S26/{}", siu.control_id),
            after_first_text_seconds: None,
        };
        if let Err(e) = record_outcome(deps, outcome).await {
            return answered(port_error(&e));
        }
    }
    if matches!(siu.trigger.as_str(), "S15" | "S26") {
        return answered(cancel(deps, &step_id, &contact_id, siu.version, now).await);
    }
    let contact = match deps.store.contact(&contact_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return hl7_answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                hl7::ack(
                    Some(&message),
                    "AE",
                    Some("the patient is not a known contact"),
                    now,
                ),
            )
        }
        Err(e) => return answered(port_error(&e)),
    };
    let zone = contact
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok());
    let Some(raw_start) = siu.start.as_deref() else {
        return reject(Some(&message), "AIS-4 or SCH-11.4 must give the start");
    };
    let start = match hl7::parse_dtm(raw_start, zone) {
        Ok(s) => s,
        Err(e) => return reject(Some(&message), &e.0),
    };
    let start_utc = start.with_timezone(&Utc);
    if start_utc <= now {
        return hl7_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            hl7::ack(
                Some(&message),
                "AE",
                Some("the appointment has already started"),
                now,
            ),
        );
    }
    let (date, time) = display_time(&contact, start);
    let planned = Planned {
        step_id,
        template: "appointment_reminder",
        variables: [("date".to_owned(), date), ("time".to_owned(), time)]
            .into_iter()
            .collect(),
        subject: format!("appt-{}", siu.appointment_id),
        due_at: (start_utc - cadence(deps, &contact.program).0).max(now),
        expires_at: Some(start_utc),
        source_event: format!("hl7:SIU^{}/{}", siu.trigger, siu.control_id),
        source_version: siu.version,
        audience: optline_ports::Audience::Everyone,
    };
    answered(plan_appointment(deps, &contact, planned, now).await)
}

/// How long before the appointment the non-responder follow-up is due,
/// unless the program says otherwise (`follow_up_lead_hours`).
pub const FOLLOW_UP_LEAD: Duration = Duration::hours(24);

/// An appointment's texts: the reminder (T-72 h, with the confirm and
/// reschedule prompt) and, for people who have not answered it, one
/// follow-up at T-24 h. Both expire at the appointment. The answer is the
/// reminder's.
async fn plan_appointment(
    deps: &Deps,
    contact: &optline_ports::Contact,
    reminder: Planned,
    now: DateTime<Utc>,
) -> Response<Body> {
    let follow_up_due = match cadence(deps, &contact.program).1 {
        Some(lead) => reminder.expires_at.map(|start| (start - lead).max(now)),
        None => None,
    };
    let follow_up = match (
        follow_up_due,
        StepId::parse(&format!("{}-followup", reminder.subject)),
    ) {
        (Some(due), Ok(id)) if due > reminder.due_at => Some(Planned {
            step_id: id,
            template: "appointment_follow_up",
            due_at: due,
            audience: optline_ports::Audience::NonResponders,
            ..reminder.clone()
        }),
        _ => None,
    };
    let response = match reminder.into_step(deps, contact, now).await {
        Ok(step) => plan(deps, step).await,
        Err(response) => return response,
    };
    if response.status().is_success() {
        if let Some(follow_up) = follow_up {
            match follow_up.into_step(deps, contact, now).await {
                Ok(step) => {
                    let answer = plan(deps, step).await;
                    if !answer.status().is_success() {
                        return answer;
                    }
                }
                Err(answer) => return answer,
            }
        }
    }
    response
}

/// Records an episode outcome once, with the time since the episode's first
/// text, and announces it when it is new.
async fn record_outcome(
    deps: &Deps,
    mut outcome: EpisodeOutcome,
) -> Result<(), optline_ports::PortError> {
    let first_text = deps
        .store
        .contact_record(&outcome.contact_id, outcome.at - Duration::days(90))
        .await?
        .and_then(|r| {
            r.sends
                .iter()
                .filter(|s| s.subject == outcome.subject)
                .map(|s| s.at)
                .min()
        });
    outcome.after_first_text_seconds = first_text.map(|at| (outcome.at - at).num_seconds());
    if deps.store.record_outcome(&outcome).await? {
        announce(deps, &outcome).await;
    }
    Ok(())
}

/// Publishes a newly recorded outcome; a bus that is down is logged (the
/// outcome itself is recorded).
async fn announce(deps: &Deps, outcome: &EpisodeOutcome) {
    if let Some(events) = &deps.outcomes {
        if let Err(e) = events.publish(outcome).await {
            tracing::warn!(error = %e, kind = %outcome.kind, "outcome event not published");
        }
    }
}

/// The contact an event names, or the 422 / 5xx answer.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
async fn known_contact(
    deps: &Deps,
    id: &ContactId,
) -> Result<optline_ports::Contact, Response<Body>> {
    match deps.store.contact(id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the patient is not a known contact",
        )),
        Err(e) => Err(port_error(&e)),
    }
}

/// A step to plan, before its template version is pinned.
#[derive(Clone)]
struct Planned {
    step_id: StepId,
    template: &'static str,
    variables: std::collections::BTreeMap<String, String>,
    subject: String,
    due_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    source_event: String,
    source_version: Option<String>,
    audience: optline_ports::Audience,
}

impl Planned {
    /// Pins the newest published version of the template; a deployment
    /// without one cannot plan, and says so.
    async fn into_step(
        self,
        deps: &Deps,
        contact: &optline_ports::Contact,
        now: DateTime<Utc>,
    ) -> Result<Step, Response<Body>> {
        let Ok(lint) = LintConfig::embedded() else {
            return Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the embedded lint table is invalid",
            ));
        };
        let library = Library::new(deps.store.as_ref(), ReviewPolicy::default(), lint);
        let template = match library.latest_sendable(self.template, now).await {
            Ok(Some(stored)) => stored.version,
            Ok(None) => {
                return Err(error(
                    StatusCode::CONFLICT,
                    &format!(
                        "no published {} template: load or publish one first",
                        self.template
                    ),
                ))
            }
            Err(e) => return Err(port_error(&e)),
        };
        Ok(Step {
            id: self.step_id,
            contact_id: contact.id.clone(),
            program: contact.program.clone(),
            category: template.category.clone(),
            class: template.class,
            purpose: template.purpose.clone(),
            template_id: template.id.clone(),
            template_version: template.version,
            variables: self.variables,
            subject: self.subject,
            due_at: self.due_at,
            expires_at: self.expires_at,
            urgency: Urgency::TimeSensitive,
            healthcare_exempt: false,
            status: StepStatus::Pending,
            source_event: Some(self.source_event),
            source_version: self.source_version,
            audience: self.audience,
        })
    }
}

/// `POST /ehr/events`: see [`events`].
async fn normalized(body: &[u8], deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let event: events::NormalizedEvent = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, &json_reason(&e)),
    };
    let Some(effect) = events::effect(&event.kind) else {
        return error(StatusCode::BAD_REQUEST, "unknown event type");
    };
    let version = match events::version_key(event.version.as_ref()) {
        Ok(v) => v,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason),
    };
    let contact_id = match ContactId::parse(&event.patient) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let prefix = match effect {
        events::Effect::Plan { prefix, .. } | events::Effect::Cancel { prefix } => prefix,
    };
    let step_id = match StepId::parse(&events::step_key(prefix, &event.subject)) {
        Ok(id) => id,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "subject must be 1 to 100 characters of A-Za-z0-9._:-",
            )
        }
    };
    let (template, lifetime) = match effect {
        events::Effect::Cancel { .. } => {
            // A completion is the episode's outcome; a cancellation is not.
            if !event.kind.ends_with(".cancelled") {
                let outcome = EpisodeOutcome {
                    subject: format!("{prefix}-{}", event.subject),
                    kind: "completed".to_owned(),
                    at: now,
                    contact_id: contact_id.clone(),
                    step_id: Some(step_id.clone()),
                    source: format!("event:{}", event.id),
                    after_first_text_seconds: None,
                };
                if let Err(e) = record_outcome(deps, outcome).await {
                    return port_error(&e);
                }
            }
            return cancel(deps, &step_id, &contact_id, version, now).await;
        }
        events::Effect::Plan {
            template, lifetime, ..
        } => (template, lifetime),
    };
    let contact = match known_contact(deps, &contact_id).await {
        Ok(c) => c,
        Err(response) => return response,
    };
    let mut variables = std::collections::BTreeMap::new();
    let (due_at, expires_at) = if template == "appointment_reminder" {
        let Some(start) = event.start else {
            return error(StatusCode::BAD_REQUEST, "appointment.booked needs start");
        };
        let start_utc = start.with_timezone(&Utc);
        if start_utc <= now {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the appointment has already started",
            );
        }
        let (date, time) = display_time(&contact, start);
        variables.insert("date".to_owned(), date);
        variables.insert("time".to_owned(), time);
        (
            (start_utc - cadence(deps, &contact.program).0).max(now),
            Some(start_utc),
        )
    } else {
        let Some(link) = event.link.as_deref() else {
            return error(
                StatusCode::BAD_REQUEST,
                "this event type needs a portal link",
            );
        };
        if !link.starts_with("https://") {
            return error(StatusCode::BAD_REQUEST, "link must be an https URL");
        }
        variables.insert("link".to_owned(), link.to_owned());
        let due = event.due_at.unwrap_or(now).max(now);
        (due, Some(event.expires_at.unwrap_or(due + lifetime)))
    };
    if expires_at.is_some_and(|e| e <= due_at) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the event has already expired",
        );
    }
    let planned = Planned {
        step_id,
        template,
        variables,
        subject: format!("{prefix}-{}", event.subject),
        due_at,
        expires_at,
        source_event: format!("event:{}", event.id),
        source_version: version,
        audience: optline_ports::Audience::Everyone,
    };
    if template == "appointment_reminder" {
        return plan_appointment(deps, &contact, planned, now).await;
    }
    match planned.into_step(deps, &contact, now).await {
        Ok(step) => plan(deps, step).await,
        Err(response) => response,
    }
}

/// Plans a step, or changes the plan already there: a booking creates it; a
/// newer booking with another time reschedules a pending one; a booking
/// after a cancellation brings it back only if the source says it is newer
/// (so a cancellation that arrived first still wins); anything already on
/// its way or done stays as it is.
async fn plan(deps: &Deps, step: Step) -> Response<Body> {
    let answer = |status: StatusCode, what: &str, step: &Step| {
        json(
            status,
            &serde_json::json!({
                "accepted": true,
                "result": what,
                "planned": [{ "step_id": step.id, "due_at": step.due_at, "expires_at": step.expires_at }],
                "created": what == "created",
            }),
        )
    };
    let existing = match deps.store.step(&step.id).await {
        Ok(s) => s,
        Err(e) => return port_error(&e),
    };
    let Some(current) = existing else {
        return match deps.store.put_step(&step).await {
            Ok(true) => answer(StatusCode::CREATED, "created", &step),
            Ok(false) => answer(StatusCode::OK, "unchanged", &step),
            Err(e) => port_error(&e),
        };
    };
    let incoming = step.source_version.as_deref();
    let stored = current.source_version.as_deref();
    let changed = current.due_at != step.due_at
        || current.expires_at != step.expires_at
        || current.variables != step.variables;
    let (when, what): (&[StepStatus], &str) = match current.status {
        StepStatus::Cancelled if newer(incoming, stored) => (&[StepStatus::Cancelled], "rebooked"),
        StepStatus::Cancelled => return answer(StatusCode::OK, "cancelled", &current),
        StepStatus::Pending if stale(incoming, stored) => {
            return answer(StatusCode::OK, "stale", &current)
        }
        StepStatus::Pending if changed => (&[StepStatus::Pending], "rescheduled"),
        _ => return answer(StatusCode::OK, "unchanged", &current),
    };
    match deps.store.replace_step(&step, when).await {
        Ok(true) => answer(StatusCode::OK, what, &step),
        Ok(false) => answer(StatusCode::OK, "unchanged", &current),
        Err(e) => port_error(&e),
    }
}

async fn cancel(
    deps: &Deps,
    step_id: &StepId,
    contact_id: &ContactId,
    version: Option<String>,
    now: DateTime<Utc>,
) -> Response<Body> {
    // An appointment's non-responder follow-up goes with its reminder.
    let follow_up = step_id
        .as_str()
        .strip_suffix("-reminder")
        .filter(|base| base.starts_with("appt-"))
        .and_then(|base| StepId::parse(&format!("{base}-followup")).ok());
    if let Some(follow_up) = follow_up {
        let answer = cancel_one(deps, &follow_up, contact_id, version.clone(), now).await;
        if !answer.status().is_success() {
            return answer;
        }
    }
    cancel_one(deps, step_id, contact_id, version, now).await
}

async fn cancel_one(
    deps: &Deps,
    step_id: &StepId,
    contact_id: &ContactId,
    version: Option<String>,
    now: DateTime<Utc>,
) -> Response<Body> {
    let step = match deps.store.step(step_id).await {
        Ok(s) => s,
        Err(e) => return port_error(&e),
    };
    let Some(step) = step else {
        // Cancelled before the booking arrived: leave a cancelled step in
        // its place, so the late booking finds it and plans nothing.
        let tombstone = Step {
            id: step_id.clone(),
            contact_id: contact_id.clone(),
            program: String::new(),
            category: "appointments".to_owned(),
            class: optline_policy::MessageClass::Transactional,
            purpose: "appointment_reminder".to_owned(),
            template_id: "appointment_reminder".to_owned(),
            template_version: 0,
            variables: std::collections::BTreeMap::new(),
            subject: step_id.as_str().to_owned(),
            due_at: now,
            expires_at: Some(now),
            urgency: Urgency::TimeSensitive,
            healthcare_exempt: false,
            status: StepStatus::Cancelled,
            source_event: Some("cancelled before its booking arrived".to_owned()),
            source_version: version,
            audience: optline_ports::Audience::Everyone,
        };
        return match deps.store.put_step(&tombstone).await {
            Ok(_) => json(
                StatusCode::OK,
                &serde_json::json!({ "accepted": true, "cancelled": [step_id], "before_booking": true }),
            ),
            Err(e) => port_error(&e),
        };
    };
    if stale(version.as_deref(), step.source_version.as_deref()) {
        return json(
            StatusCode::OK,
            &serde_json::json!({ "accepted": true, "result": "stale", "cancelled": [] }),
        );
    }
    if !matches!(step.status, StepStatus::Pending | StepStatus::Queued) {
        return json(
            StatusCode::OK,
            &serde_json::json!({ "accepted": true, "cancelled": [] }),
        );
    }
    // The step keeps the cancellation's version, so an older booking that
    // arrives later cannot bring it back. A queued step's message finds it
    // no longer queued and sends nothing.
    let cancelled = Step {
        status: StepStatus::Cancelled,
        source_version: version.or(step.source_version.clone()),
        ..step
    };
    match deps
        .store
        .replace_step(&cancelled, &[StepStatus::Pending, StepStatus::Queued])
        .await
    {
        Ok(done) => json(
            StatusCode::OK,
            &serde_json::json!({ "accepted": true, "cancelled": if done { vec![step_id.clone()] } else { vec![] } }),
        ),
        Err(e) => port_error(&e),
    }
}

#[cfg(test)]
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
}
