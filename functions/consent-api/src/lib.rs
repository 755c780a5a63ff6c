//! # consent-api
//!
//! Contacts and their consent ledger over HTTP:
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
//! Every call is authenticated (IAM in the cloud, a bearer token locally); an
//! unauthenticated call gets 401 and stores nothing.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{error, json, json_body, port_error, ApiAuth};
use optline_policy::consent::{revocation_deadline, ConsentAction, ConsentKind, ConsentScope};
use optline_policy::phone::E164;
use optline_policy::UsState;
use optline_ports::{
    verify_chain, CaptureChannel, ConsentEvent, Contact, ContactId, EventId, Evidence,
    NewAuditRecord, RevocationRequest, Store,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// `POST /contacts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// Contact id (e.g. the EHR patient id).
    pub id: String,
    /// Phone in any common written form.
    pub phone: String,
    /// Program; the default program when absent.
    #[serde(default)]
    pub program: Option<String>,
    /// IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Address state (two letters).
    #[serde(default)]
    pub address_state: Option<String>,
    /// Minor flag.
    #[serde(default)]
    pub minor: bool,
    /// Date of birth (`YYYY-MM-DD`).
    #[serde(default)]
    pub date_of_birth: Option<chrono::NaiveDate>,
}

/// `POST /contacts/{id}/preferences`: `{"categories": {"appointments": true, "billing": false}, ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPreferences {
    /// Category -> wanted.
    pub categories: std::collections::BTreeMap<String, bool>,
    /// How they were captured.
    pub channel: CaptureChannel,
    /// Who recorded them.
    pub actor: String,
    /// The exact text shown (required when any category is turned on).
    #[serde(default)]
    pub disclosure_text: Option<String>,
    /// Disclosure version label.
    #[serde(default)]
    pub disclosure_version: Option<String>,
    /// Evidence.
    #[serde(default)]
    pub evidence: Evidence,
}

/// `POST /contacts/{id}/revocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRevocation {
    /// How it was received (`staff`, `portal`, `ivr`, `paper`, ...).
    pub channel: CaptureChannel,
    /// Who took it.
    pub actor: String,
    /// When it was received; defaults to now.
    #[serde(default)]
    pub received_at: Option<DateTime<Utc>>,
    /// Categories; empty means every category of the program.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Source system and its record id.
    #[serde(default)]
    pub source_system: Option<String>,
    /// The source system's record id.
    #[serde(default)]
    pub source_record_id: Option<String>,
}

/// `POST /revocations/{id}/complete`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRevocation {
    /// Who confirms it.
    pub actor: String,
}

/// `POST /contacts/{id}/consent`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    /// `grant` or `revoke`.
    pub action: ConsentAction,
    /// Categories; empty means all.
    #[serde(default)]
    pub categories: Vec<String>,
    /// `express` or `express_written`.
    #[serde(default)]
    pub kind: ConsentKind,
    /// How it was captured.
    pub channel: CaptureChannel,
    /// Who recorded it.
    pub actor: String,
    /// When it took effect; defaults to now.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// Source system.
    #[serde(default)]
    pub source_system: Option<String>,
    /// Record id in the source system.
    #[serde(default)]
    pub source_record_id: Option<String>,
    /// The exact disclosure text shown (required for a grant).
    #[serde(default)]
    pub disclosure_text: Option<String>,
    /// Disclosure version label.
    #[serde(default)]
    pub disclosure_version: Option<String>,
    /// Evidence.
    #[serde(default)]
    pub evidence: Evidence,
    /// Recorded from a guardian.
    #[serde(default)]
    pub guardian: bool,
    /// The grant lapses at this instant.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Idempotency: the caller's id for this event.
    #[serde(default)]
    pub event_id: Option<String>,
}

/// One consent event with its exact disclosure text.
#[derive(Debug, Serialize)]
pub struct ProvenEvent {
    /// The event.
    #[serde(flatten)]
    pub event: ConsentEvent,
    /// The exact text shown, fetched by its SHA-256.
    pub disclosure_text: Option<String>,
}

/// Routes one request.
pub async fn handle(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    if let Err(denied) = deps.auth.check(&request) {
        return denied;
    }
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (request.method().clone(), segments.as_slice()) {
        (Method::POST, ["contacts"]) => create_contact(&request, deps, now).await,
        (Method::GET, ["contacts", id]) => get_contact(id, deps).await,
        (Method::POST, ["contacts", id, "consent"]) => {
            record_consent(&request, id, deps, now).await
        }
        (Method::GET, ["contacts", id, "consent"]) => proof_of_consent(id, deps).await,
        (Method::GET, ["contacts", id, "audit"]) => audit_chain(id, deps).await,
        (Method::POST, ["contacts", id, "preferences"]) => {
            preferences(&request, id, deps, now).await
        }
        (Method::POST, ["contacts", id, "revocations"]) => {
            revocation(&request, id, deps, now).await
        }
        (Method::GET, ["revocations"]) => list_revocations(&request, deps, now).await,
        (Method::POST, ["revocations", id, "complete"]) => {
            complete_revocation(&request, id, deps, now).await
        }
        (Method::GET, ["reviews"]) => match deps.store.reviews().await {
            Ok(items) => json(StatusCode::OK, &serde_json::json!({ "reviews": items })),
            Err(e) => port_error(&e),
        },
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

async fn create_contact(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let input: NewContact = match json_body(request) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = match ContactId::parse(&input.id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let phone = match E164::parse(&input.phone) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Some(zone) = &input.time_zone {
        if zone.parse::<chrono_tz::Tz>().is_err() {
            return error(
                StatusCode::BAD_REQUEST,
                "time_zone is not an IANA time zone",
            );
        }
    }
    let address_state = match input
        .address_state
        .as_deref()
        .map(UsState::parse)
        .transpose()
    {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let contact = Contact {
        id,
        phone,
        program: input
            .program
            .unwrap_or_else(|| deps.default_program.clone()),
        time_zone: input.time_zone,
        address_state,
        minor: input.minor,
        date_of_birth: input.date_of_birth,
        created_at: now,
    };
    match deps.store.create_contact(&contact).await {
        Ok(()) => json(StatusCode::CREATED, &contact_view(&contact)),
        Err(e) => port_error(&e),
    }
}

/// A contact as the API shows it: the phone masked.
fn contact_view(contact: &Contact) -> serde_json::Value {
    serde_json::json!({
        "id": contact.id,
        "phone": contact.phone.masked(),
        "program": contact.program,
        "time_zone": contact.time_zone,
        "address_state": contact.address_state,
        "minor": contact.minor,
        "date_of_birth": contact.date_of_birth,
        "created_at": contact.created_at,
    })
}

async fn load_contact(id: &str, deps: &Deps) -> Result<Contact, Response<Body>> {
    let id = ContactId::parse(id).map_err(|e| error(StatusCode::BAD_REQUEST, &e.to_string()))?;
    match deps.store.contact(&id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, "no such contact")),
        Err(e) => Err(port_error(&e)),
    }
}

async fn get_contact(id: &str, deps: &Deps) -> Response<Body> {
    match load_contact(id, deps).await {
        Ok(c) => json(StatusCode::OK, &contact_view(&c)),
        Err(r) => r,
    }
}

async fn record_consent(
    request: &Request,
    id: &str,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Response<Body> {
    let input: NewConsent = match json_body(request) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let contact = match load_contact(id, deps).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if input.action == ConsentAction::Grant
        && input
            .disclosure_text
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a grant needs the exact disclosure text shown to the person",
        );
    }
    if input.actor.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "actor is required");
    }
    let event_id = match input.event_id.as_deref() {
        Some(raw) => match EventId::parse(raw) {
            Ok(id) => id,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        },
        None => EventId::generate("consent"),
    };
    let sha = input
        .disclosure_text
        .as_deref()
        .map(|text| hex::encode(Sha256::digest(text.as_bytes())));
    let event = ConsentEvent {
        id: event_id,
        contact_id: Some(contact.id.clone()),
        phone: contact.phone.clone(),
        action: input.action,
        scope: ConsentScope::Contact,
        program: Some(contact.program.clone()),
        categories: input.categories,
        kind: input.kind,
        at: input.at.unwrap_or(now).min(now),
        recorded_at: now,
        channel: input.channel,
        actor: input.actor,
        source_system: input.source_system,
        source_record_id: input.source_record_id,
        disclosure_sha256: sha.clone(),
        disclosure_version: input.disclosure_version,
        evidence: input.evidence,
        reverses: None,
        guardian: input.guardian,
        expires_at: input.expires_at,
    };
    let created = match append_with_audit(
        deps,
        &contact,
        &event,
        input.disclosure_text.as_deref(),
        now,
    )
    .await
    {
        Ok(created) => created,
        Err(r) => return r,
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json(
        status,
        &serde_json::json!({
            "event_id": event.id,
            "disclosure_sha256": sha,
            "created": created,
        }),
    )
}

/// Appends a consent event and, when it is new, its audit record.
async fn append_with_audit(
    deps: &Deps,
    contact: &Contact,
    event: &ConsentEvent,
    disclosure_text: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool, Response<Body>> {
    let created = deps
        .store
        .append_consent(event, disclosure_text)
        .await
        .map_err(|e| port_error(&e))?;
    if created {
        let record = NewAuditRecord {
            contact_id: contact.id.clone(),
            at: now,
            kind: "consent".to_owned(),
            action: match event.action {
                ConsentAction::Grant => "grant",
                ConsentAction::Revoke => "revoke",
            }
            .to_owned(),
            step_id: None,
            rules: Vec::new(),
            reasons: Vec::new(),
            legal_basis: None,
            consent_event_id: Some(event.id.as_str().to_owned()),
            template: None,
            carrier_message_id: None,
            detail: Some(
                format!(
                    "{:?} via {:?} channel, categories [{}]",
                    event.action,
                    event.channel,
                    event.categories.join(", ")
                )
                .to_lowercase(),
            ),
        };
        deps.store
            .append_audit(record)
            .await
            .map_err(|e| port_error(&e))?;
    }
    Ok(created)
}

fn staff_event(
    contact: &Contact,
    action: ConsentAction,
    categories: Vec<String>,
    channel: CaptureChannel,
    actor: String,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ConsentEvent {
    ConsentEvent {
        id: EventId::generate("consent"),
        contact_id: Some(contact.id.clone()),
        phone: contact.phone.clone(),
        action,
        scope: ConsentScope::Contact,
        program: Some(contact.program.clone()),
        categories,
        kind: ConsentKind::Express,
        at,
        recorded_at: now,
        channel,
        actor,
        source_system: None,
        source_record_id: None,
        disclosure_sha256: None,
        disclosure_version: None,
        evidence: Evidence::default(),
        reverses: None,
        guardian: false,
        expires_at: None,
    }
}

async fn preferences(
    request: &Request,
    id: &str,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Response<Body> {
    let input: NewPreferences = match json_body(request) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if input.actor.trim().is_empty() || input.categories.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "actor and at least one category are required",
        );
    }
    let wants_any = input.categories.values().any(|on| *on);
    if wants_any
        && input
            .disclosure_text
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "turning a category on is a grant: it needs the exact disclosure text shown",
        );
    }
    let contact = match load_contact(id, deps).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let sha = input
        .disclosure_text
        .as_deref()
        .map(|text| hex::encode(Sha256::digest(text.as_bytes())));
    let mut recorded = Vec::new();
    // Revocations first: if the request both turns some off and some on, the
    // "off" ones are never delayed by a failure on the "on" ones.
    let mut ordered: Vec<(&String, &bool)> = input.categories.iter().collect();
    ordered.sort_by_key(|(_, on)| **on);
    for (category, on) in ordered {
        let action = if *on {
            ConsentAction::Grant
        } else {
            ConsentAction::Revoke
        };
        let mut event = staff_event(
            &contact,
            action,
            vec![category.clone()],
            input.channel,
            input.actor.clone(),
            now,
            now,
        );
        event.evidence = input.evidence.clone();
        if *on {
            event.disclosure_sha256 = sha.clone();
            event.disclosure_version = input.disclosure_version.clone();
        }
        let text = if *on {
            input.disclosure_text.as_deref()
        } else {
            None
        };
        if let Err(r) = append_with_audit(deps, &contact, &event, text, now).await {
            return r;
        }
        recorded.push(
            serde_json::json!({ "category": category, "action": action, "event_id": event.id }),
        );
    }
    json(
        StatusCode::CREATED,
        &serde_json::json!({ "recorded": recorded }),
    )
}

async fn revocation(
    request: &Request,
    id: &str,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Response<Body> {
    let input: NewRevocation = match json_body(request) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if input.actor.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "actor is required");
    }
    let contact = match load_contact(id, deps).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let received = input.received_at.unwrap_or(now).min(now);
    // Effective from when it was received: the ledger never lets a send
    // through that the person had already refused.
    let mut event = staff_event(
        &contact,
        ConsentAction::Revoke,
        input.categories,
        input.channel,
        input.actor.clone(),
        received,
        now,
    );
    event.source_system = input.source_system;
    event.source_record_id = input.source_record_id;
    if let Err(r) = append_with_audit(deps, &contact, &event, None, now).await {
        return r;
    }
    let request_record = RevocationRequest {
        id: EventId::generate("revreq"),
        contact_id: contact.id.clone(),
        event_id: event.id.clone(),
        channel: input.channel,
        actor: input.actor,
        received_at: received,
        deadline: revocation_deadline(received),
        completed_at: None,
        completed_by: None,
    };
    if let Err(e) = deps.store.put_revocation_request(&request_record).await {
        return port_error(&e);
    }
    json(StatusCode::CREATED, &request_view(&request_record, now))
}

fn request_view(request: &RevocationRequest, now: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "id": request.id,
        "contact_id": request.contact_id,
        "event_id": request.event_id,
        "channel": request.channel,
        "actor": request.actor,
        "received_at": request.received_at,
        "deadline": request.deadline,
        "completed_at": request.completed_at,
        "completed_by": request.completed_by,
        "status": if request.completed_at.is_some() { "completed" } else { "pending" },
        "breached": request.breached(now),
    })
}

async fn list_revocations(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let wanted = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("status=")))
        .unwrap_or("pending");
    if !matches!(wanted, "pending" | "breached" | "all") {
        return error(
            StatusCode::BAD_REQUEST,
            "status must be pending, breached or all",
        );
    }
    let requests = match deps.store.revocation_requests().await {
        Ok(r) => r,
        Err(e) => return port_error(&e),
    };
    let shown: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| match wanted {
            "pending" => r.completed_at.is_none(),
            "breached" => r.breached(now),
            _ => true,
        })
        .map(|r| request_view(r, now))
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": wanted, "revocations": shown }),
    )
}

async fn complete_revocation(
    request: &Request,
    id: &str,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Response<Body> {
    let input: CompleteRevocation = match json_body(request) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = match EventId::parse(id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match deps
        .store
        .complete_revocation_request(&id, &input.actor, now)
        .await
    {
        Ok(true) => json(
            StatusCode::OK,
            &serde_json::json!({ "id": id, "completed": true }),
        ),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such revocation request"),
        Err(e) => port_error(&e),
    }
}

async fn proof_of_consent(id: &str, deps: &Deps) -> Response<Body> {
    let contact = match load_contact(id, deps).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let events = match deps.store.consent_events(&contact.id, &contact.phone).await {
        Ok(e) => e,
        Err(e) => return port_error(&e),
    };
    let mut proven = Vec::with_capacity(events.len());
    for event in events {
        let text = match &event.disclosure_sha256 {
            Some(sha) => match deps.store.disclosure(sha).await {
                Ok(t) => t,
                Err(e) => return port_error(&e),
            },
            None => None,
        };
        proven.push(ProvenEvent {
            event,
            disclosure_text: text,
        });
    }
    let chain = match deps.store.audit_chain(&contact.id).await {
        Ok(c) => c,
        Err(e) => return port_error(&e),
    };
    let decisions: Vec<_> = chain
        .iter()
        .filter(|r| r.content.kind == "decision")
        .collect();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "contact": contact_view(&contact),
            "consent_events": proven,
            "messages": decisions,
        }),
    )
}

async fn audit_chain(id: &str, deps: &Deps) -> Response<Body> {
    let contact = match load_contact(id, deps).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match deps.store.audit_chain(&contact.id).await {
        Ok(chain) => {
            let verified = verify_chain(&chain);
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "contact_id": contact.id,
                    "verified": verified.is_ok(),
                    "break": verified.err(),
                    "records": chain,
                }),
            )
        }
        Err(e) => port_error(&e),
    }
}
