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
//! | GET | `/reviews?status=open\|all` | doubtful revocations, ambiguous replies and callbacks waiting for a person |
//! | POST | `/reviews/{id}/resolve` | `{"action": "confirm_opt_out" \| "restore" \| "no_action" \| "assign" \| "close", "reason": "..."}` |
//!
//! Every call carries a person's token from the deployment's Cognito user
//! pool, verified here ([`optline_identity`]): a call without a valid one
//! gets 401 and stores nothing, and one from a person outside the groups a
//! route names gets 403. The person a record names (who took the consent,
//! entered or completed a revocation, resolved a review) is the token's
//! subject and name, never a field of the body. Writes take an
//! `Idempotency-Key` header (a consent event's own `event_id` does the same):
//! a retried call ends where the first one did.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{error, json, json_body, person, port_error, require, Group, Verifier};
use optline_consent::contacts::{self, Created};
use optline_consent::{casework, proof, record, Consent, ConsentError};
use optline_ports::Store;

/// What the consent API needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Verifies the people calling (the deployment's Cognito user pool).
    pub people: Arc<Verifier>,
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

/// The groups that may take a route. Everyone signed in to one of them
/// may read a contact's proof; staff, operations and compliance write.
fn allowed(method: &Method, segments: &[&str]) -> &'static [Group] {
    const READ: &[Group] = &[
        Group::Staff,
        Group::Operations,
        Group::Compliance,
        Group::Legal,
        Group::Admin,
    ];
    const WRITE: &[Group] = &[
        Group::Staff,
        Group::Operations,
        Group::Compliance,
        Group::Admin,
    ];
    const CASEWORK: &[Group] = &[Group::Staff, Group::Compliance];
    match (method, segments.first().copied()) {
        (_, Some("reviews" | "revocations")) if method != Method::GET => CASEWORK,
        (&Method::GET, _) => READ,
        _ => WRITE,
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
    let person = match person(&deps.people, &request).await {
        Ok(p) => p,
        Err(denied) => return denied,
    };
    let actor = person.label();
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let consent = deps.consent();
    let key = match idempotency_key(&request) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let route = (request.method().clone(), segments.as_slice());
    if let Err(denied) = require(&person, allowed(&route.0, route.1)) {
        return denied;
    }
    match route {
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
            match record::record_consent(consent, id, body_or_answer!(&request), &actor, now).await
            {
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
            match record::preferences(consent, id, input, &actor, key.as_deref(), now).await {
                Ok(recorded) => json(
                    StatusCode::CREATED,
                    &serde_json::json!({ "recorded": recorded }),
                ),
                Err(e) => refused(&e),
            }
        }
        (Method::POST, ["contacts", id, "revocations"]) => {
            let input = body_or_answer!(&request);
            match record::revocation(consent, id, input, &actor, key.as_deref(), now).await {
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
            match record::complete_revocation(consent, id, &actor, now).await {
                Ok(request) => json(
                    StatusCode::OK,
                    &serde_json::json!({ "id": request.id, "completed": true }),
                ),
                Err(e) => refused(&e),
            }
        }
        (Method::GET, ["reviews"]) => {
            let all = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "status=all"));
            match casework::review_items(consent, !all).await {
                Ok(items) => json(StatusCode::OK, &serde_json::json!({ "reviews": items })),
                Err(e) => refused(&e),
            }
        }
        (Method::POST, ["reviews", id, "resolve"]) => {
            let action = body_or_answer!(&request);
            match casework::resolve_review(consent, id, action, &actor, now).await {
                Ok(item) => json(StatusCode::OK, &item),
                Err(e) => refused(&e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}
