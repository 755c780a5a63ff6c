//! # consent-api
//!
//! Contacts and their consent ledger over HTTP: an adapter over
//! [`optline_consent`].
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/contacts` | create a contact (phone normalized to E.164) |
//! | GET | `/contacts/{id}` | read a contact |
//! | POST | `/contacts/{id}/consent` | record a grant or revocation with its evidence |
//! | GET | `/contacts/{id}/consent` | proof of consent: every event with its exact text, and every decision under it |
//! | GET | `/contacts/{id}/audit` | the contact's audit chain and whether it verifies |
//! | POST | `/contacts/{id}/preferences` | per-category preferences, recorded as consent events |
//! | POST | `/contacts/{id}/revocations` | a revocation received by phone, portal or staff: applied at once, tracked against its 10-business-day deadline |
//! | GET | `/revocations?status=pending\|breached\|all` | revocation requests and their deadlines |
//! | POST | `/revocations/{id}/complete` | staff confirm every downstream system honoured it |
//! | GET | `/reviews` | doubtful revocations and ambiguous replies waiting for a person |
//!
//! Every call is authenticated (IAM in the cloud, a bearer token locally);
//! an unauthenticated call gets 401 and stores nothing. Writes take an
//! `Idempotency-Key` header (a consent event's own `event_id` does the same):
//! a retried call ends where the first one did.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{error, json, json_body, port_error, ApiAuth};
use optline_consent::contacts::{self, Created};
use optline_consent::{proof, record, Consent, ConsentError};
use optline_ports::Store;

/// What the consent API needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Caller authentication.
    pub auth: ApiAuth,
    /// The program used when a request names none.
    pub default_program: String,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

impl Deps {
    fn consent(&self) -> Consent<'_> {
        Consent {
            store: self.store.as_ref(),
            default_program: &self.default_program,
        }
    }
}

/// The answer to a refused call.
fn refused(e: &ConsentError) -> Response<Body> {
    match e {
        ConsentError::Invalid(reason) => error(StatusCode::BAD_REQUEST, reason),
        ConsentError::Unprocessable(reason) => error(StatusCode::UNPROCESSABLE_ENTITY, reason),
        ConsentError::NotFound(reason) => error(StatusCode::NOT_FOUND, reason),
        ConsentError::Conflict(reason) => error(StatusCode::CONFLICT, reason),
        ConsentError::Busy => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        ConsentError::Port(p) => port_error(p),
    }
}

/// The request's `Idempotency-Key`, if any (at most 128 printable bytes).
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
fn idempotency_key(request: &Request) -> Result<Option<String>, Response<Body>> {
    match request.headers().get("idempotency-key") {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= 128 => Ok(Some(key.to_owned())),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1 to 128 visible characters",
            )),
        },
    }
}

macro_rules! body_or_answer {
    ($request:expr) => {
        match json_body($request) {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// Routes one request.
pub async fn handle(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    if let Err(denied) = deps.auth.check(&request) {
        return denied;
    }
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let consent = deps.consent();
    let key = match idempotency_key(&request) {
        Ok(k) => k,
        Err(r) => return r,
    };
    match (request.method().clone(), segments.as_slice()) {
        (Method::POST, ["contacts"]) => {
            match contacts::create_contact(consent, body_or_answer!(&request), now).await {
                Ok(Created::New(c)) => json(StatusCode::CREATED, &contacts::view(&c)),
                Ok(Created::Existing(c)) => json(StatusCode::OK, &contacts::view(&c)),
                Err(e) => refused(&e),
            }
        }
        (Method::GET, ["contacts", id]) => match contacts::contact(consent, id).await {
            Ok(c) => json(StatusCode::OK, &contacts::view(&c)),
            Err(e) => refused(&e),
        },
        (Method::POST, ["contacts", id, "consent"]) => {
            match record::record_consent(consent, id, body_or_answer!(&request), now).await {
                Ok(recorded) => json(
                    if recorded.created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    &serde_json::json!({
                        "event_id": recorded.event.id,
                        "disclosure_sha256": recorded.event.disclosure_sha256,
                        "created": recorded.created,
                    }),
                ),
                Err(e) => refused(&e),
            }
        }
        (Method::GET, ["contacts", id, "consent"]) => match proof::proof(consent, id).await {
            Ok(proof) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "contact": contacts::view(&proof.contact),
                    "consent_events": proof.events,
                    "messages": proof.decisions,
                }),
            ),
            Err(e) => refused(&e),
        },
        (Method::GET, ["contacts", id, "audit"]) => match proof::audit_chain(consent, id).await {
            Ok(chain) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "contact_id": chain.contact.id,
                    "verified": chain.broken.is_none(),
                    "break": chain.broken,
                    "records": chain.records,
                }),
            ),
            Err(e) => refused(&e),
        },
        (Method::POST, ["contacts", id, "preferences"]) => {
            let input = body_or_answer!(&request);
            match record::preferences(consent, id, input, key.as_deref(), now).await {
                Ok(recorded) => json(
                    StatusCode::CREATED,
                    &serde_json::json!({ "recorded": recorded }),
                ),
                Err(e) => refused(&e),
            }
        }
        (Method::POST, ["contacts", id, "revocations"]) => {
            let input = body_or_answer!(&request);
            match record::revocation(consent, id, input, key.as_deref(), now).await {
                Ok(r) => json(StatusCode::CREATED, &record::request_view(&r, now)),
                Err(e) => refused(&e),
            }
        }
        (Method::GET, ["revocations"]) => {
            let wanted = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("status=")))
                .unwrap_or("pending")
                .to_owned();
            match record::revocation_requests(consent, &wanted, now).await {
                Ok(requests) => {
                    let shown: Vec<serde_json::Value> = requests
                        .iter()
                        .map(|r| record::request_view(r, now))
                        .collect();
                    json(
                        StatusCode::OK,
                        &serde_json::json!({ "status": wanted, "revocations": shown }),
                    )
                }
                Err(e) => refused(&e),
            }
        }
        (Method::POST, ["revocations", id, "complete"]) => {
            let input = body_or_answer!(&request);
            match record::complete_revocation(consent, id, input, now).await {
                Ok(request) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "id": request.id, "completed": true }),
                ),
                Err(e) => refused(&e),
            }
        }
        (Method::GET, ["reviews"]) => match deps.store.reviews().await {
            Ok(items) => json(StatusCode::OK, &serde_json::json!({ "reviews": items })),
            Err(e) => port_error(&e),
        },
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}
