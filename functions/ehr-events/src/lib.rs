//! # ehr-events
//!
//! Verified EHR events in: an adapter over [`optline_episodes`]. Every
//! request is verified first: a configured source by its HMAC signature or
//! bearer token ([`verify`]); a request naming no source must carry the
//! token of a person in the operations or admin group (a manual event),
//! verified against the Cognito pool. Then:
//!
//! - `POST /ehr/fhir/Appointment`, `POST /ehr/fhir`: a FHIR R4 Appointment
//!   or a subscription notification Bundle (JSON answers);
//! - `POST /ehr/events`: the normalized JSON event (JSON answers);
//! - `POST /ehr/hl7`: an HL7 v2.5 SIU message, answered with an ACK.
//!
//! The answer says what became of the plan (`created`, `rescheduled`,
//! `rebooked`, `unchanged`, `stale`, `cancelled`); a refusal says why (400
//! malformed, 409 no published template, 422 unknown patient or a past
//! appointment, 503 retry), and nothing is written.

pub mod verify;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{
    body_bytes, error, json, json_reason, person, port_error, require, Group, Verifier,
};
use optline_config::Config;
use optline_consent::ehr::Synced;
use optline_episodes::intake::fhir::{self, FhirDocument, NotificationEntry};
use optline_episodes::intake::hl7;
use optline_episodes::intake::normalized::{self, NormalizedCommand};
use optline_episodes::intake::patient;
use optline_episodes::patients;
use optline_episodes::{apply_appointment, apply_task, Applied, EpisodeError, Episodes};
use optline_policy::template::lint::LintConfig;
use optline_ports::Store;

/// What the function needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Verifies a person posting an event by hand (no source named).
    pub people: Arc<Verifier>,
    /// Source systems and how each proves itself.
    pub sources: verify::EhrSources,
    /// Programs, with their appointment cadence.
    pub config: Arc<Config>,
    /// Lint lists.
    pub lint: Arc<LintConfig>,
    /// The templates new steps pin, kept for 30 s across events.
    pub templates: Arc<optline_library::LatestTemplates>,
    /// Reads resources an id-only notification names from the source's
    /// FHIR server (`None`: no source has one configured).
    pub fhir: Option<Arc<dyn optline_ports::FhirReader>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

impl Deps {
    fn episodes<'a>(&'a self, origin: &'a str) -> Episodes<'a> {
        Episodes {
            store: self.store.as_ref(),
            config: &self.config,
            lint: &self.lint,
            origin,
            templates: &self.templates,
        }
    }
}

/// [`handle`] with sources that rotate: a request refused for its source
/// (401) makes the function read the sources again with `reload` (at most
/// every [`optline_api::reload::RELOAD_AT_MOST_EVERY`]) and, when they
/// changed, handle the same request once more. A new or rotated source then
/// works on its first request, without a cold start.
pub async fn handle_reloading<F, Fut>(
    deps: &optline_api::reload::Reloadable<Deps>,
    request: Request,
    now: DateTime<Utc>,
    reload: F,
) -> Response<Body>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<verify::EhrSources, String>>,
{
    let rebuild = |current: std::sync::Arc<Deps>| async move {
        match reload().await {
            Ok(sources) if sources != current.sources => {
                tracing::info!("ehr sources changed: re-read after a refused request");
                Some(Deps {
                    sources,
                    ..(*current).clone()
                })
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read the ehr sources after a refused request");
                None
            }
        }
    };
    deps.handle(
        request,
        now,
        StatusCode::UNAUTHORIZED,
        |request, deps: std::sync::Arc<Deps>| async move { handle(request, &deps, now).await },
        rebuild,
    )
    .await
}

/// Routes one request.
pub async fn handle(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let body = match body_bytes(&request) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let origin = match verify::verify(&deps.sources, request.headers(), body, now) {
        Ok(verify::Verified::Source(name)) => name,
        Ok(verify::Verified::NoSource) => {
            let who = match person(&deps.people, &request).await {
                Ok(p) => p,
                Err(denied) => return denied,
            };
            if let Err(denied) = require(&who, &[Group::Operations, Group::Admin]) {
                return denied;
            }
            optline_episodes::API_ORIGIN.to_owned()
        }
        Err(reason) => return error(StatusCode::UNAUTHORIZED, reason),
    };
    let episodes = deps.episodes(&origin);
    let path = request.uri().path().trim_end_matches('/').to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/ehr/fhir/Appointment" | "/ehr/fhir/Patient" | "/ehr/fhir") => {
            fhir_document(&request, body, episodes, deps.fhir.clone(), now).await
        }
        (&Method::POST, "/ehr/events") => normalized_event(body, episodes, now).await,
        (&Method::POST, "/ehr/hl7") => hl7_message(body, episodes, now).await,
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// The status and text of a refusal.
fn refusal(e: &EpisodeError) -> (StatusCode, String) {
    let status = match e {
        EpisodeError::Invalid(_) => StatusCode::BAD_REQUEST,
        EpisodeError::Unprocessable(_) | EpisodeError::UnknownContact => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        EpisodeError::NoTemplate(_) | EpisodeError::Conflict(_) => StatusCode::CONFLICT,
        EpisodeError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        EpisodeError::Port(optline_ports::PortError::Conflict(reason)) => {
            return (StatusCode::CONFLICT, reason.clone())
        }
        EpisodeError::Port(optline_ports::PortError::Invalid(reason)) => {
            return (StatusCode::UNPROCESSABLE_ENTITY, reason.clone())
        }
        EpisodeError::Port(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; try again".to_owned(),
            )
        }
    };
    (status, e.to_string())
}

/// What an applied event answers in JSON.
fn answer(result: Result<Applied, EpisodeError>) -> Response<Body> {
    match result {
        Ok(Applied::Planned { result, step }) => json(
            if result == "created" {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            &serde_json::json!({
                "accepted": true,
                "result": result,
                "planned": [{ "step_id": step.id, "due_at": step.due_at, "expires_at": step.expires_at }],
                "created": result == "created",
            }),
        ),
        Ok(Applied::Cancelled {
            cancelled,
            before_booking,
            stale,
        }) => {
            let mut body = serde_json::Map::new();
            body.insert("accepted".to_owned(), serde_json::Value::Bool(true));
            body.insert("cancelled".to_owned(), serde_json::json!(cancelled));
            if before_booking {
                body.insert("before_booking".to_owned(), serde_json::Value::Bool(true));
            }
            if stale {
                body.insert("result".to_owned(), "stale".into());
            }
            json(StatusCode::OK, &body)
        }
        Ok(Applied::NothingToPlan) => json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "accepted": true, "planned": [] }),
        ),
        Err(EpisodeError::Port(p)) => port_error(&p),
        Err(e) => {
            let (status, reason) = refusal(&e);
            error(status, &reason)
        }
    }
}

async fn fhir_document(
    request: &Request,
    body: &[u8],
    episodes: Episodes<'_>,
    fhir_reader: Option<Arc<dyn optline_ports::FhirReader>>,
    now: DateTime<Utc>,
) -> Response<Body> {
    let media = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if media != "application/fhir+json" && media != "application/json" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/fhir+json",
        );
    }
    let value: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &json_reason(&e)),
    };
    match fhir::read_document(value) {
        Ok(FhirDocument::Appointment(value)) => {
            answer(appointment_resource(*value, episodes, now).await)
        }
        Ok(FhirDocument::Patient(value)) => {
            patient_answer(patient_resource(&value, episodes, now).await)
        }
        Ok(FhirDocument::Notice(kind)) => json(
            StatusCode::OK,
            &serde_json::json!({ "accepted": true, "notification": kind, "results": [] }),
        ),
        Ok(FhirDocument::Notification(entries)) => {
            let mut results = Vec::new();
            let mut failed = false;
            for entry in entries {
                let resource = match entry {
                    NotificationEntry::Resource(value) => Ok(value),
                    NotificationEntry::Reference { resource_type, id } => match &fhir_reader {
                        Some(reader) => reader
                            .read(episodes.origin, &resource_type, &id)
                            .await
                            .map_err(EpisodeError::Port),
                        None => Err(EpisodeError::Unprocessable(
                            "an id-only notification needs the source's FHIR server configured (fhir in the EHR sources secret); or send full-resource content".to_owned(),
                        )),
                    },
                };
                let response = match resource {
                    Ok(value)
                        if value.get("resourceType").and_then(|t| t.as_str())
                            == Some("Patient") =>
                    {
                        patient_answer(patient_resource(&value, episodes, now).await)
                    }
                    Ok(value) => answer(appointment_resource(value, episodes, now).await),
                    Err(e) => answer(Err(e)),
                };
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
                &serde_json::json!({ "accepted": !failed, "notification": "event-notification", "results": results }),
            )
        }
        Err(e) => answer(Err(e)),
    }
}

/// An Appointment: its identifier-only patient resolved, then read and
/// applied.
async fn appointment_resource(
    mut value: serde_json::Value,
    episodes: Episodes<'_>,
    now: DateTime<Utc>,
) -> Result<Applied, EpisodeError> {
    patients::resolve_patient(episodes, &mut value).await?;
    let event = fhir::appointment(value)?;
    apply_appointment(episodes, &event, now).await
}

/// A Patient: read and kept as a contact.
async fn patient_resource(
    value: &serde_json::Value,
    episodes: Episodes<'_>,
    now: DateTime<Utc>,
) -> Result<Synced, EpisodeError> {
    let demographics = patient::from_fhir_patient(value, now)?;
    patients::sync_patient(episodes, &demographics, now).await
}

fn patient_answer(result: Result<Synced, EpisodeError>) -> Response<Body> {
    match result {
        Ok(synced) => json(
            if matches!(synced, Synced::Created(_)) {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            &patients::synced_view(&synced),
        ),
        Err(EpisodeError::Port(p)) => port_error(&p),
        Err(e) => {
            let (status, reason) = refusal(&e);
            error(status, &reason)
        }
    }
}

async fn normalized_event(
    body: &[u8],
    episodes: Episodes<'_>,
    now: DateTime<Utc>,
) -> Response<Body> {
    let result = match normalized::read(body) {
        Ok(NormalizedCommand::Appointment(event)) => apply_appointment(episodes, &event, now).await,
        Ok(NormalizedCommand::Task(event)) => apply_task(episodes, &event, now).await,
        Ok(NormalizedCommand::VerificationFailed {
            patient,
            subject,
            marker,
        }) => {
            return match patients::verification_failed(episodes, &patient, &subject, &marker, now)
                .await
            {
                Ok(created) => json(
                    if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    &serde_json::json!({"accepted": true, "fallback": "callback", "created": created}),
                ),
                Err(e) => answer(Err(e)),
            };
        }
        Err(e) => Err(e),
    };
    answer(result)
}

/// An HL7 answer: the ACK as `application/hl7-v2`.
fn hl7_answer(status: StatusCode, ack: String) -> Response<Body> {
    let mut response = Response::new(Body::from(ack));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/hl7-v2"),
    );
    response
}

/// `POST /ehr/hl7`: one SIU message, answered with `AA`, `AE` (an error of
/// ours or of the data's meaning) or `AR` (a message we cannot use).
async fn hl7_message(body: &[u8], episodes: Episodes<'_>, now: DateTime<Utc>) -> Response<Body> {
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
    let kind = message
        .component("MSH", 9, 1)
        .unwrap_or_default()
        .to_owned();
    let trigger = format!("{kind}^{}", message.trigger().unwrap_or_default());
    let reference = format!(
        "hl7:{}:{}",
        trigger,
        message
            .field("MSH", 10)
            .unwrap_or_default()
            .chars()
            .take(40)
            .collect::<String>()
    );
    // The patient's demographics first: a booking for a patient the EHR
    // has not sent before finds them.
    let demographics = match patient::from_pid(&message, &reference) {
        Ok(d) => d,
        Err(e) => return reject(Some(&message), &e.to_string()),
    };
    // ADT: a patient registered or updated (A01, A04, A08, A28, A31…):
    // demographics only.
    let is_adt = kind == "ADT";
    if let Some(demographics) = &demographics {
        if demographics.phone.is_some() || is_adt {
            if let Err(e) = patients::sync_patient(episodes, demographics, now).await {
                let (status, reason) = refusal(&e);
                return hl7_answer(status, hl7::ack(Some(&message), "AE", Some(&reason), now));
            }
        }
    }
    if is_adt {
        return if demographics.is_some() {
            hl7_answer(StatusCode::OK, hl7::ack(Some(&message), "AA", None, now))
        } else {
            reject(Some(&message), "an ADT message needs a PID segment")
        };
    }
    let event = match hl7::read(&message) {
        Ok(event) => event,
        Err(e) => return reject(Some(&message), &e.0),
    };
    match apply_appointment(episodes, &event, now).await {
        Ok(_) => hl7_answer(StatusCode::OK, hl7::ack(Some(&message), "AA", None, now)),
        Err(EpisodeError::Invalid(reason)) => reject(Some(&message), &reason),
        Err(e) => {
            let (status, reason) = refusal(&e);
            hl7_answer(status, hl7::ack(Some(&message), "AE", Some(&reason), now))
        }
    }
}
