//! Grants, revocations, preferences and revocation requests: each call
//! reads the contact's ledger and chain, then commits its events, their
//! audit records and any request in one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use optline_policy::consent::{revocation_deadline, ConsentAction, ConsentKind, ConsentScope};
use optline_ports::{
    CaptureChannel, ChainRead, Commit, Committed, ConsentEvent, Contact, EventId, Evidence, Marker,
    NewAuditRecord, Partition, RevocationRequest, Write, COMMIT_ATTEMPTS,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::contacts::contact;
use crate::{Consent, ConsentError};

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

/// `POST /contacts/{id}/preferences`: `{"categories": {"appointments": true, "billing": false}, ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPreferences {
    /// Category -> wanted.
    pub categories: BTreeMap<String, bool>,
    /// How they were captured.
    pub channel: CaptureChannel,
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

/// What recording an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The event.
    pub event: ConsentEvent,
    /// `false` when the same event was recorded before (a retry).
    pub created: bool,
}

/// A call's idempotency key (the request's `Idempotency-Key`), hashed into
/// ids and markers so any text the caller uses is safe in a key.
fn key_digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
        .chars()
        .take(24)
        .collect()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn consent_record(contact: &Contact, event: &ConsentEvent, now: DateTime<Utc>) -> NewAuditRecord {
    NewAuditRecord {
        evidence: event.evidence(),
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
        arm: None,
        detail: Some(
            format!(
                "{:?} via {:?} channel, categories [{}]",
                event.action,
                event.channel,
                event.categories.join(", ")
            )
            .to_lowercase(),
        ),
    }
}

/// Commits `events` on the contact's ledger, a record each on its chain,
/// and `extra`, under `marker`: one transaction, read again after a
/// conflict.
async fn commit_events(
    consent: Consent<'_>,
    contact: &Contact,
    events: &[(ConsentEvent, Option<String>)],
    extra: &[Write],
    marker: Option<Marker>,
    now: DateTime<Utc>,
) -> Result<Committed, ConsentError> {
    let partition = Partition::Contact(contact.id.clone());
    for _ in 0..COMMIT_ATTEMPTS {
        let ledger = consent.store.ledger(&partition).await?;
        let heads = consent
            .store
            .chain_heads(std::slice::from_ref(&contact.id))
            .await?;
        let mut commit = Commit {
            marker: marker.clone(),
            writes: Vec::new(),
        };
        for (event, disclosure) in events {
            commit.push(Write::Consent {
                event: event.clone(),
                disclosure: disclosure.clone(),
                ledger: ledger.read,
            });
        }
        if let Some(head) = heads.get(&contact.id) {
            commit.push(Write::Audit {
                chain: ChainRead {
                    contact: contact.id.clone(),
                    head: head.clone(),
                },
                records: events
                    .iter()
                    .map(|(event, _)| consent_record(contact, event, now))
                    .collect(),
            });
        }
        commit.writes.extend(extra.iter().cloned());
        match consent.store.commit(commit).await? {
            Committed::Conflict(reason) => {
                // An event id taken meanwhile is the caller's to resolve.
                for (event, _) in events {
                    if consent
                        .store
                        .consent_event(&partition, &event.id)
                        .await?
                        .is_some()
                    {
                        return Ok(Committed::Conflict(reason));
                    }
                }
            }
            done => return Ok(done),
        }
    }
    Err(ConsentError::Busy)
}

/// Whether a stored event is the one a retried call would record: the same
/// in everything the caller said (times the caller left to now aside).
fn same_event(stored: &ConsentEvent, event: &ConsentEvent, at_given: bool) -> bool {
    let normalize = |e: &ConsentEvent| ConsentEvent {
        recorded_at: stored.recorded_at,
        at: if at_given { e.at } else { stored.at },
        ..e.clone()
    };
    normalize(event) == normalize(stored)
}

/// Records a grant or revocation with its evidence. A grant needs the exact
/// disclosure text shown. An `event_id` makes the call idempotent: the same
/// event again answers `created: false`; a different event under that id
/// is refused, and nothing is written.
pub async fn record_consent(
    consent: Consent<'_>,
    contact_id: &str,
    input: NewConsent,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Recorded, ConsentError> {
    let contact = contact(consent, contact_id).await?;
    if input.action == ConsentAction::Grant
        && input
            .disclosure_text
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return Err(ConsentError::Unprocessable(
            "a grant needs the exact disclosure text shown to the person".to_owned(),
        ));
    }
    if actor.trim().is_empty() {
        return Err(ConsentError::Invalid(
            "the person recording it is unknown".to_owned(),
        ));
    }
    let event_id = match input.event_id.as_deref() {
        Some(raw) => EventId::parse(raw).map_err(|e| ConsentError::Invalid(e.to_string()))?,
        None => EventId::generate("consent"),
    };
    let at_given = input.at.is_some();
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
        actor: actor.to_owned(),
        source_system: input.source_system,
        source_record_id: input.source_record_id,
        disclosure_sha256: input.disclosure_text.as_deref().map(sha256_hex),
        disclosure_version: input.disclosure_version,
        evidence: input.evidence,
        reverses: None,
        guardian: input.guardian,
        expires_at: input.expires_at,
    };
    let partition = Partition::Contact(contact.id.clone());
    for _ in 0..COMMIT_ATTEMPTS {
        if let Some(stored) = consent.store.consent_event(&partition, &event.id).await? {
            return if same_event(&stored, &event, at_given) {
                Ok(Recorded {
                    event: stored,
                    created: false,
                })
            } else {
                Err(ConsentError::Conflict(
                    "event_id is already recorded with different content; nothing was written"
                        .to_owned(),
                ))
            };
        }
        let events = [(event.clone(), input.disclosure_text.clone())];
        match commit_events(consent, &contact, &events, &[], None, now).await? {
            Committed::Done(_) => {
                return Ok(Recorded {
                    event,
                    created: true,
                })
            }
            // Taken meanwhile: the next pass compares it.
            Committed::Duplicate(_) | Committed::Conflict(_) => {}
        }
    }
    Err(ConsentError::Busy)
}

/// One category's preference as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreferenceRecorded {
    /// The category.
    pub category: String,
    /// Grant (on) or revoke (off).
    pub action: ConsentAction,
    /// The event.
    pub event_id: EventId,
}

/// Records per-category preferences as consent events, in one commit (so
/// turning some off never waits on turning others on). With an
/// idempotency key, a retried call answers what the first one did.
pub async fn preferences(
    consent: Consent<'_>,
    contact_id: &str,
    input: NewPreferences,
    actor: &str,
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<PreferenceRecorded>, ConsentError> {
    if actor.trim().is_empty() || input.categories.is_empty() {
        return Err(ConsentError::Invalid(
            "at least one category is required".to_owned(),
        ));
    }
    let wants_any = input.categories.values().any(|on| *on);
    if wants_any
        && input
            .disclosure_text
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return Err(ConsentError::Unprocessable(
            "turning a category on is a grant: it needs the exact disclosure text shown".to_owned(),
        ));
    }
    let contact = contact(consent, contact_id).await?;
    let sha = input.disclosure_text.as_deref().map(sha256_hex);
    let digest = idempotency_key.map(key_digest);
    let mut events = Vec::new();
    let mut recorded = Vec::new();
    // Revocations first in the ledger's order.
    let mut ordered: Vec<(&String, &bool)> = input.categories.iter().collect();
    ordered.sort_by_key(|(_, on)| **on);
    for (index, (category, on)) in ordered.into_iter().enumerate() {
        let action = if *on {
            ConsentAction::Grant
        } else {
            ConsentAction::Revoke
        };
        let id = match &digest {
            Some(d) => EventId::parse(&format!("pref-{d}-{index}"))
                .map_err(|e| ConsentError::Invalid(e.to_string()))?,
            None => EventId::generate("consent"),
        };
        let mut event = staff_event(
            &contact,
            id,
            action,
            vec![category.clone()],
            input.channel,
            actor.to_owned(),
            now,
            now,
        );
        event.evidence = input.evidence.clone();
        let text = if *on {
            event.disclosure_sha256 = sha.clone();
            event.disclosure_version = input.disclosure_version.clone();
            input.disclosure_text.clone()
        } else {
            None
        };
        recorded.push(PreferenceRecorded {
            category: category.clone(),
            action,
            event_id: event.id.clone(),
        });
        events.push((event, text));
    }
    let answer =
        serde_json::to_string(&recorded).map_err(|e| ConsentError::Invalid(e.to_string()))?;
    let marker = digest.as_ref().map(|d| Marker {
        key: format!("consent-api:preferences:{}:{d}", contact.id),
        at: now,
        answer: Some(answer),
    });
    match commit_events(consent, &contact, &events, &[], marker, now).await? {
        Committed::Done(_) => Ok(recorded),
        Committed::Duplicate(answer) => answer
            .and_then(|a| serde_json::from_str(&a).ok())
            .ok_or_else(|| {
                ConsentError::Conflict("the idempotency key was used before".to_owned())
            }),
        Committed::Conflict(_) => Err(ConsentError::Conflict(
            "an event id of this call is already recorded".to_owned(),
        )),
    }
}

/// Records a revocation received off SMS (phone, portal, staff): applied
/// at once in the ledger, effective from when it was received, and
/// tracked against its 10-business-day deadline until staff confirm that
/// every downstream system honoured it; one commit.
pub async fn revocation(
    consent: Consent<'_>,
    contact_id: &str,
    input: NewRevocation,
    actor: &str,
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<RevocationRequest, ConsentError> {
    if actor.trim().is_empty() {
        return Err(ConsentError::Invalid(
            "the person recording it is unknown".to_owned(),
        ));
    }
    let contact = contact(consent, contact_id).await?;
    let received = input.received_at.unwrap_or(now).min(now);
    let digest = idempotency_key.map(key_digest);
    let (event_id, request_id) = match &digest {
        Some(d) => (
            EventId::parse(&format!("revoke-{d}")),
            EventId::parse(&format!("revreq-{d}")),
        ),
        None => (
            Ok(EventId::generate("consent")),
            Ok(EventId::generate("revreq")),
        ),
    };
    let event_id = event_id.map_err(|e| ConsentError::Invalid(e.to_string()))?;
    let request_id = request_id.map_err(|e| ConsentError::Invalid(e.to_string()))?;
    let mut event = staff_event(
        &contact,
        event_id,
        ConsentAction::Revoke,
        input.categories,
        input.channel,
        actor.to_owned(),
        received,
        now,
    );
    event.source_system = input.source_system;
    event.source_record_id = input.source_record_id;
    let request = RevocationRequest {
        id: request_id,
        contact_id: contact.id.clone(),
        event_id: event.id.clone(),
        channel: input.channel,
        actor: actor.to_owned(),
        received_at: received,
        deadline: revocation_deadline(received),
        completed_at: None,
        completed_by: None,
    };
    let marker = digest.as_ref().map(|d| Marker {
        key: format!("consent-api:revocation:{}:{d}", contact.id),
        at: now,
        answer: None,
    });
    let events = [(event, None)];
    let extra = [Write::RevocationRequest(request.clone())];
    match commit_events(consent, &contact, &events, &extra, marker, now).await? {
        Committed::Done(_) => Ok(request),
        Committed::Duplicate(_) => {
            consent
                .store
                .revocation_request(&request.id)
                .await?
                .ok_or(ConsentError::Conflict(
                    "the idempotency key was used for another call".to_owned(),
                ))
        }
        Committed::Conflict(_) => Err(ConsentError::Conflict(
            "the idempotency key was used for another call".to_owned(),
        )),
    }
}

/// Staff confirm that every downstream system honoured a revocation
/// request; recorded once on the request and in the contact's chain.
pub async fn complete_revocation(
    consent: Consent<'_>,
    id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<RevocationRequest, ConsentError> {
    if actor.trim().is_empty() {
        return Err(ConsentError::Invalid(
            "the person recording it is unknown".to_owned(),
        ));
    }
    let id = EventId::parse(id).map_err(|e| ConsentError::Invalid(e.to_string()))?;
    for _ in 0..COMMIT_ATTEMPTS {
        let Some(request) = consent.store.revocation_request(&id).await? else {
            return Err(ConsentError::NotFound("no such revocation request"));
        };
        if request.completed_at.is_some() {
            return Ok(request);
        }
        let completed = RevocationRequest {
            completed_at: Some(now),
            completed_by: Some(actor.to_owned()),
            ..request.clone()
        };
        let heads = consent
            .store
            .chain_heads(std::slice::from_ref(&request.contact_id))
            .await?;
        let program = consent
            .store
            .contact(&request.contact_id)
            .await?
            .map_or_else(|| optline_ports::NO_KEY.to_owned(), |c| c.program);
        let mut commit = Commit::default();
        commit.push(Write::CompleteRevocation {
            request: completed.clone(),
        });
        // Counted as done on time or late (10 business days).
        if let Some(tally) = optline_ports::Tally::revocation_completed(&completed, &program) {
            commit.push(Write::Tally(tally));
        }
        if let Some(head) = heads.get(&request.contact_id) {
            commit.push(Write::Audit {
                chain: ChainRead {
                    contact: request.contact_id.clone(),
                    head: head.clone(),
                },
                records: vec![NewAuditRecord {
                    evidence: Default::default(),
                    contact_id: request.contact_id.clone(),
                    at: now,
                    kind: "consent".to_owned(),
                    action: "revocation_completed".to_owned(),
                    step_id: None,
                    rules: Vec::new(),
                    reasons: Vec::new(),
                    legal_basis: None,
                    consent_event_id: Some(request.event_id.as_str().to_owned()),
                    template: None,
                    carrier_message_id: None,
                    arm: None,
                    detail: Some(format!(
                        "every downstream system confirmed by {actor}; deadline {}",
                        request.deadline.to_rfc3339()
                    )),
                }],
            });
        }
        if let Committed::Done(_) = consent.store.commit(commit).await? {
            return Ok(completed);
        }
    }
    Err(ConsentError::Busy)
}

/// Revocation requests with a status filter: `pending`, `breached`, `all`.
pub async fn revocation_requests(
    consent: Consent<'_>,
    status: &str,
    now: DateTime<Utc>,
) -> Result<Vec<RevocationRequest>, ConsentError> {
    if !matches!(status, "pending" | "breached" | "all") {
        return Err(ConsentError::Invalid(
            "status must be pending, breached or all".to_owned(),
        ));
    }
    Ok(consent
        .store
        .revocation_requests()
        .await?
        .into_iter()
        .filter(|r| match status {
            "pending" => r.completed_at.is_none(),
            "breached" => r.breached(now),
            _ => true,
        })
        .collect())
}

/// A revocation request as an API shows it.
pub fn request_view(request: &RevocationRequest, now: DateTime<Utc>) -> serde_json::Value {
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

#[allow(
    clippy::too_many_arguments,
    reason = "each field is evidence the event must carry"
)]
fn staff_event(
    contact: &Contact,
    id: EventId,
    action: ConsentAction,
    categories: Vec<String>,
    channel: CaptureChannel,
    actor: String,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ConsentEvent {
    ConsentEvent {
        id,
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
