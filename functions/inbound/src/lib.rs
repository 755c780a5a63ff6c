//! # inbound
//!
//! Carrier replies in. `POST /twilio/inbound` takes Twilio's inbound SMS
//! webhook exactly as Twilio posts it (`application/x-www-form-urlencoded`,
//! signed with `X-Twilio-Signature` over the public URL and the sorted
//! parameters). A bad or missing signature gets 403 and nothing is stored.
//!
//! Every reply is classified by the policy crate. An opt-out, at any tier, is
//! written to the ledger before anything else happens, as a phone-scoped
//! revocation whose id derives from Twilio's `MessageSid` (so a retried
//! webhook writes it once). The one confirmation text then goes back as the
//! TwiML answer, through a lane suppression cannot block, exactly once per
//! revocation: its claim is keyed by the `MessageSid` too.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{body_bytes, error};
use optline_aws::twilio_signature;
use optline_config::{Config, ProgramConfig};
use optline_library::Library;
use optline_policy::classify::{classify, Classification, Intent, ReplyContext, Tier};
use optline_policy::consent::{
    standing, ConsentAction, ConsentKind, ConsentScope, ConsentStanding,
};
use optline_policy::phone::E164;
use optline_policy::template::lint::{has_errors, lint_rendered, LintConfig};
use optline_policy::template::review::ReviewPolicy;
use optline_ports::{
    consent_facts, CaptureChannel, ConsentEvent, ContactId, DeliveryUpdate, EpisodeOutcome,
    EventId, Evidence, NewAuditRecord, OutboundSms, OutcomeEvents, PortError, ReviewItem,
    SendHistoryEntry, SmsSender, StepId, StepStatus, Store,
};
use tracing::{info, warn};

/// What the function needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Configuration (programs, Twilio auth token, public URL).
    pub config: Arc<Config>,
    /// The compliance lane for AWS two-way replies (HELP and the one
    /// opt-out confirmation): it sends without consulting suppression.
    /// Twilio replies go back as TwiML instead.
    pub sender: Option<Arc<dyn SmsSender>>,
    /// Where episode outcomes (confirm, reschedule) are announced.
    pub outcomes: Option<Arc<dyn OutcomeEvents>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// An inbound SMS from any carrier, reduced to what the reply logic needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// The carrier's message id (Twilio `MessageSid`, AWS `inboundMessageId`).
    pub message_sid: String,
    /// `twilio` or `aws`.
    pub carrier: &'static str,
    /// Sender.
    pub from: E164,
    /// Our number.
    pub to: String,
    /// The text.
    pub body: String,
}

/// Routes one request.
pub async fn handle(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    match (request.method(), path.as_str()) {
        (&Method::POST, "/twilio/inbound") => twilio_inbound(&request, deps, now).await,
        (&Method::POST, "/twilio/status") => twilio_status(&request, deps, now).await,
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// The public URL Twilio signed: `PUBLIC_BASE_URL` + path + query when
/// configured, else the forwarded scheme and host.
pub fn public_url(request: &Request, config: &Config) -> Option<String> {
    let path_and_query = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    if let Some(base) = &config.public_base_url {
        return Some(format!("{}{}", base.trim_end_matches('/'), path_and_query));
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let proto = header("x-forwarded-proto").unwrap_or_else(|| "https".to_owned());
    let host = header("x-forwarded-host").or_else(|| header("host"))?;
    Some(format!("{proto}://{host}{path_and_query}"))
}

fn twiml(message: Option<&str>) -> Response<Body> {
    let inner = message.map_or_else(String::new, |m| {
        format!("<Message>{}</Message>", xml_escape(m))
    });
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{inner}</Response>");
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/xml"));
    response
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Parses a Twilio form POST and checks its signature; `Err` is the answer.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
fn verified_twilio_form(
    request: &Request,
    deps: &Deps,
) -> Result<Vec<(String, String)>, Response<Body>> {
    let Some(twilio) = &deps.config.twilio else {
        warn!("twilio webhook called but no auth token is configured");
        return Err(error(
            StatusCode::FORBIDDEN,
            "webhook signing is not configured",
        ));
    };
    let bytes = body_bytes(request)?;
    let media = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_owned();
    if media != "application/x-www-form-urlencoded" {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-www-form-urlencoded",
        ));
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "malformed form body"))?;
    let signature = request
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(url) = public_url(request, &deps.config) else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "cannot determine the signed url",
        ));
    };
    if signature.is_empty()
        || !twilio_signature::is_valid(&twilio.auth_token, &url, &params, signature)
    {
        warn!("rejected a twilio webhook with a missing or invalid signature");
        return Err(error(StatusCode::FORBIDDEN, "invalid twilio signature"));
    }
    Ok(params)
}

async fn twilio_inbound(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let params = match verified_twilio_form(request, deps) {
        Ok(p) => p,
        Err(r) => return r,
    };

    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(message_sid) = field("MessageSid").or_else(|| field("SmsSid")) else {
        return error(StatusCode::BAD_REQUEST, "MessageSid is required");
    };
    if EventId::parse(&message_sid).is_err() {
        return error(StatusCode::BAD_REQUEST, "MessageSid is malformed");
    }
    let Some(from) = field("From") else {
        return error(StatusCode::BAD_REQUEST, "From is required");
    };
    let from = match E164::parse(&from) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let sms = InboundSms {
        message_sid,
        carrier: "twilio",
        from,
        to: field("To").unwrap_or_default(),
        body: field("Body").unwrap_or_default(),
    };
    match handle_reply(&sms, deps, now).await {
        Ok(reply) => twiml(reply.as_deref()),
        Err(e) => {
            // Twilio retries on 5xx: the opt-out is idempotent by MessageSid.
            warn!(error = %e, "reply handling failed; twilio will retry");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry",
            )
        }
    }
}

/// Twilio's status callback: delivery states and error codes for a message
/// optline sent. 21610 (the number replied STOP at the carrier) becomes a
/// phone-scoped revocation with source `carrier`.
async fn twilio_status(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let params = match verified_twilio_form(request, deps) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (Some(sid), Some(status)) = (
        field("MessageSid").or_else(|| field("SmsSid")),
        field("MessageStatus").or_else(|| field("SmsStatus")),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MessageSid and MessageStatus are required",
        );
    };
    const STATUSES: [&str; 10] = [
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "canceled",
    ];
    if !STATUSES.contains(&status.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "MessageStatus is not a Twilio message status",
        );
    }
    let error_code = field("ErrorCode").filter(|c| !c.is_empty());
    let update = DeliveryUpdate {
        carrier_message_id: format!("twilio:{sid}"),
        status: status.clone(),
        error_code: error_code.clone(),
        at: now,
    };
    match record_delivery(deps, &update, now).await {
        Ok(_) => {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(e) => {
            warn!(error = %e, "status callback failed; twilio will retry");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry",
            )
        }
    }
}

/// Applies a delivery report: the step's delivery state, an audit record, and
/// for an opted-out recipient a carrier revocation. Returns the step, if known.
pub async fn record_delivery(
    deps: &Deps,
    update: &DeliveryUpdate,
    now: DateTime<Utc>,
) -> Result<Option<StepId>, PortError> {
    let store = deps.store.as_ref();
    let Some(step_id) = store.record_delivery(update).await? else {
        info!("delivery report for a message optline does not know; ignored");
        return Ok(None);
    };
    let Some(step) = store.step(&step_id).await? else {
        return Ok(Some(step_id));
    };
    store
        .append_audit(NewAuditRecord {
            contact_id: step.contact_id.clone(),
            at: now,
            kind: "delivery".to_owned(),
            action: update.status.clone(),
            step_id: Some(step_id.as_str().to_owned()),
            rules: Vec::new(),
            reasons: update
                .error_code
                .iter()
                .map(|c| format!("carrier.{c}"))
                .collect(),
            legal_basis: None,
            consent_event_id: None,
            template: None,
            carrier_message_id: Some(update.carrier_message_id.clone()),
            detail: None,
        })
        .await?;
    if update.error_code.as_deref() == Some("21610") {
        if let Some(contact) = store.contact(&step.contact_id).await? {
            let event = ConsentEvent::carrier_revocation(
                EventId::parse(&format!("carrier-optout-{step_id}"))?,
                contact.phone.clone(),
                Some(contact.id.clone()),
                Some(step.program.clone()),
                "twilio",
                "21610",
                Some(update.carrier_message_id.clone()),
                now,
            );
            if store.append_consent(&event, None).await? {
                let contacts = store.contacts_by_phone(&contact.phone).await?;
                for id in contacts {
                    store
                        .append_audit(NewAuditRecord {
                            contact_id: id,
                            at: now,
                            kind: "consent".to_owned(),
                            action: "revoke".to_owned(),
                            step_id: Some(step_id.as_str().to_owned()),
                            rules: Vec::new(),
                            reasons: vec!["carrier.21610".to_owned()],
                            legal_basis: None,
                            consent_event_id: Some(event.id.as_str().to_owned()),
                            template: None,
                            carrier_message_id: Some(update.carrier_message_id.clone()),
                            detail: Some("the carrier reports the number opted out".to_owned()),
                        })
                        .await?;
                }
            }
        }
    }
    Ok(Some(step_id))
}

fn program_for<'a>(config: &'a Config, to: &str) -> Option<&'a ProgramConfig> {
    config
        .programs
        .values()
        .find(|p| {
            p.from_number.as_deref() == Some(to) || p.origination_number.as_deref() == Some(to)
        })
        .or_else(|| config.program(None))
}

/// Classifies a reply, writes what it means, and returns the text to answer
/// with (if any). Shared by every carrier's inbound path.
pub async fn handle_reply(
    sms: &InboundSms,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Option<String>, PortError> {
    let store = deps.store.as_ref();
    let Some(program) = program_for(&deps.config, &sms.to) else {
        return Err(PortError::Invalid("no program configured".to_owned()));
    };
    let phone_events = store.phone_consent_events(&sms.from).await?;
    let phone_standing = standing(&consent_facts(&phone_events), &program.id, "*", now);
    let opted_out = matches!(phone_standing, ConsentStanding::Revoked { .. });
    let contacts = store.contacts_by_phone(&sms.from).await?;
    // The reply grammar is the one of the template version last sent to this
    // number; confirm and reschedule replies are recorded against that send.
    let mut latest: Option<(ContactId, SendHistoryEntry)> = None;
    for contact in &contacts {
        if let Some(entry) = store
            .send_history(contact, now - chrono::Duration::days(30))
            .await?
            .into_iter()
            .next()
        {
            if latest.as_ref().is_none_or(|(_, l)| entry.at > l.at) {
                latest = Some((contact.clone(), entry));
            }
        }
    }
    // The reply grammar of the version last sent, read from the library
    // (any state: a retired version's codes still mean what they meant).
    let pinned = latest
        .as_ref()
        .and_then(|(_, e)| e.template.as_deref())
        .and_then(|t| t.split_once('@'))
        .and_then(|(id, version)| Some((id.to_owned(), version.parse::<u32>().ok()?)));
    let grammar = match pinned {
        Some((id, version)) => deps
            .store
            .template_version(&id, version)
            .await?
            .and_then(|t| t.version.grammar()),
        None => None,
    };
    let context_has_grammar = grammar.is_some();
    let context = ReplyContext { grammar, opted_out };
    let classification = classify(&sms.body, &context);
    info!(
        from = %sms.from.masked(),
        intent = ?classification.intent,
        tier = ?classification.tier,
        rule = %classification.rule,
        "reply classified"
    );

    match classification.intent {
        Intent::OptOut => {
            // 1. The revocation, before anything else.
            let event = sms_event(sms, program, ConsentAction::Revoke, "sms-optout", now, None)?;
            let created = store.append_consent(&event, None).await?;
            if created {
                let detail = if classification.tier == Tier::Doubtful {
                    store
                        .add_review(&ReviewItem {
                            id: format!("review-{}", sms.message_sid),
                            kind: "doubtful_revocation".to_owned(),
                            at: now,
                            phone_masked: sms.from.masked(),
                            contact_ids: contacts.clone(),
                            body: sms.body.clone(),
                            rule: classification.rule.clone(),
                            action_taken:
                                "revocation recorded; messages suppressed until a person reviews it"
                                    .to_owned(),
                        })
                        .await?;
                    "doubtful revocation: suppressed and queued for human review"
                } else {
                    "revocation by sms reply"
                };
                audit_all(
                    store,
                    &contacts,
                    now,
                    "consent",
                    "revoke",
                    &event,
                    &classification,
                    detail,
                )
                .await?;
            }
            // 2. The one confirmation, exactly once per revocation.
            if store
                .first_sighting(&format!("confirm-{}", sms.message_sid))
                .await?
            {
                let text = program_text(
                    store,
                    "program_stop_confirmation",
                    program,
                    now,
                    program.stop_confirmation_text(),
                )
                .await;
                audit_all(store, &contacts, now, "reply", "opt_out_confirmation", &event, &classification, "opt-out confirmation sent as the webhook answer (within the 5-minute presumption)").await?;
                return Ok(Some(text));
            }
            Ok(None)
        }
        Intent::OptIn if opted_out => {
            let ConsentStanding::Revoked { event_id } = phone_standing else {
                return Ok(None);
            };
            let reverses = EventId::parse(&event_id)?;
            let event = sms_event(
                sms,
                program,
                ConsentAction::Grant,
                "sms-optin",
                now,
                Some(reverses),
            )?;
            if store.append_consent(&event, None).await? {
                audit_all(
                    store,
                    &contacts,
                    now,
                    "consent",
                    "grant",
                    &event,
                    &classification,
                    "re-opt-in by sms reply restores what the revocation took",
                )
                .await?;
            }
            if store
                .first_sighting(&format!("confirm-{}", sms.message_sid))
                .await?
            {
                return Ok(Some(
                    program_text(
                        store,
                        "program_opt_in_confirmation",
                        program,
                        now,
                        program.opt_in_confirmation_text(),
                    )
                    .await,
                ));
            }
            Ok(None)
        }
        Intent::Help => {
            if store
                .first_sighting(&format!("reply-{}", sms.message_sid))
                .await?
            {
                return Ok(Some(
                    program_text(store, "program_help", program, now, program.help_text()).await,
                ));
            }
            Ok(None)
        }
        Intent::Confirm | Intent::Reschedule => {
            let Some((contact, sent)) = latest.as_ref() else {
                return Ok(None);
            };
            if !store
                .first_sighting(&format!("reply-{}", sms.message_sid))
                .await?
            {
                return Ok(None);
            }
            two_way(
                store,
                deps.outcomes.as_deref(),
                program,
                sms,
                contact,
                sent,
                classification.intent == Intent::Confirm,
                &classification,
                now,
            )
            .await
        }
        _ => {
            if store
                .first_sighting(&format!("reply-{}", sms.message_sid))
                .await?
            {
                // A reply to a text that asked for a code, which is no code:
                // a person reads it.
                if latest.is_some() && classification.intent == Intent::Other && context_has_grammar
                {
                    store
                        .add_review(&ReviewItem {
                            id: format!("review-{}", sms.message_sid),
                            kind: "ambiguous_reply".to_owned(),
                            at: now,
                            phone_masked: sms.from.masked(),
                            contact_ids: contacts.clone(),
                            body: sms.body.clone(),
                            rule: classification.rule.clone(),
                            action_taken: "no action; waiting for a person".to_owned(),
                        })
                        .await?;
                }
                for contact in &contacts {
                    store
                        .append_audit(reply_record(
                            contact,
                            now,
                            &classification,
                            None,
                            "reply recorded",
                        ))
                        .await?;
                }
            }
            Ok(None)
        }
    }
}

fn sms_event(
    sms: &InboundSms,
    program: &ProgramConfig,
    action: ConsentAction,
    prefix: &str,
    now: DateTime<Utc>,
    reverses: Option<EventId>,
) -> Result<ConsentEvent, PortError> {
    Ok(ConsentEvent {
        id: EventId::parse(&format!("{prefix}-{}", sms.message_sid))?,
        contact_id: None,
        phone: sms.from.clone(),
        action,
        scope: ConsentScope::Phone,
        program: Some(program.id.clone()),
        categories: Vec::new(),
        kind: ConsentKind::Express,
        at: now,
        recorded_at: now,
        channel: CaptureChannel::SmsKeyword,
        actor: "recipient".to_owned(),
        source_system: Some("twilio".to_owned()),
        source_record_id: Some(sms.message_sid.clone()),
        disclosure_sha256: None,
        disclosure_version: None,
        evidence: Evidence {
            carrier_message_id: Some(sms.message_sid.clone()),
            ..Evidence::default()
        },
        reverses,
        guardian: false,
        expires_at: None,
    })
}

fn reply_record(
    contact: &ContactId,
    now: DateTime<Utc>,
    classification: &Classification,
    event: Option<&ConsentEvent>,
    detail: &str,
) -> NewAuditRecord {
    NewAuditRecord {
        contact_id: contact.clone(),
        at: now,
        kind: "reply".to_owned(),
        action: format!("{:?}", classification.intent).to_lowercase(),
        step_id: None,
        rules: Vec::new(),
        reasons: vec![classification.rule.clone()],
        legal_basis: None,
        consent_event_id: event.map(|e| e.id.as_str().to_owned()),
        template: None,
        carrier_message_id: None,
        detail: Some(format!("{detail} (tier {:?})", classification.tier).to_lowercase()),
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one audit record per contact sharing the phone"
)]
async fn audit_all(
    store: &dyn Store,
    contacts: &[ContactId],
    now: DateTime<Utc>,
    kind: &str,
    action: &str,
    event: &ConsentEvent,
    classification: &Classification,
    detail: &str,
) -> Result<(), PortError> {
    for contact in contacts {
        let mut record = reply_record(contact, now, classification, Some(event), detail);
        record.kind = kind.to_owned();
        record.action = action.to_owned();
        record.carrier_message_id = event.evidence.carrier_message_id.clone();
        store.append_audit(record).await?;
    }
    Ok(())
}

/// AWS End User Messaging two-way SMS: the JSON message published to the
/// number's SNS topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwoWaySms {
    /// The sender (the recipient of our texts).
    pub origination_number: String,
    /// Our number.
    pub destination_number: String,
    /// The keyword AWS matched, if any.
    #[serde(default)]
    pub message_keyword: Option<String>,
    /// The text.
    pub message_body: String,
    /// AWS's id for the inbound message.
    pub inbound_message_id: String,
    /// The id of our message this replies to, if AWS knows it.
    #[serde(default)]
    pub previous_published_message_id: Option<String>,
}

/// Why a two-way message could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TwoWayError {
    /// Not the two-way JSON payload.
    #[error("not an aws two-way sms payload: {0}")]
    Undecodable(String),
    /// Storage failed; retry.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The two-way payload from an SNS message, or from an SQS body that holds
/// either the raw payload or an SNS notification envelope.
pub fn parse_two_way(body: &str) -> Result<TwoWaySms, TwoWayError> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| TwoWayError::Undecodable(optline_api::json_reason(&e)))?;
    let inner = match value.get("Type").and_then(|t| t.as_str()) {
        Some("Notification") => value
            .get("Message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .ok_or_else(|| TwoWayError::Undecodable("sns envelope without Message".to_owned()))?,
        _ => body.to_owned(),
    };
    serde_json::from_str(&inner).map_err(|e| TwoWayError::Undecodable(optline_api::json_reason(&e)))
}

/// Handles one two-way message: classify, record, and answer through the
/// compliance lane.
pub async fn handle_two_way(
    message: &TwoWaySms,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<(), TwoWayError> {
    let from = E164::parse(&message.origination_number)
        .map_err(|e| TwoWayError::Undecodable(e.to_string()))?;
    if EventId::parse(&message.inbound_message_id).is_err() {
        return Err(TwoWayError::Undecodable(
            "inboundMessageId is malformed".to_owned(),
        ));
    }
    let sms = InboundSms {
        message_sid: message.inbound_message_id.clone(),
        carrier: "aws",
        from: from.clone(),
        to: message.destination_number.clone(),
        body: message.message_body.clone(),
    };
    let reply = handle_reply(&sms, deps, now).await?;
    if let (Some(text), Some(sender)) = (reply, &deps.sender) {
        let program = program_for(&deps.config, &sms.to)
            .map(|p| p.id.clone())
            .unwrap_or_else(|| deps.config.default_program.clone());
        let outbound = OutboundSms {
            to: from,
            body: text,
            class: optline_policy::MessageClass::Transactional,
            program,
            idempotency_key: format!("reply-{}", sms.message_sid),
        };
        // The claim was taken in handle_reply: at most one answer per message,
        // even if this send fails (a second text would be worse than none).
        if let Err(failure) = sender.send(&outbound).await {
            warn!(code = %failure.code, "compliance-lane reply failed");
        }
    }
    Ok(())
}

/// Two-way messages delivered by an SNS subscription.
pub async fn handle_two_way_sns(
    event: aws_lambda_events::event::sns::SnsEvent,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<(), TwoWayError> {
    for record in event.records {
        match parse_two_way(&record.sns.message) {
            Ok(message) => handle_two_way(&message, deps, now).await?,
            // A malformed payload will never parse: log and drop it, so it does
            // not block the retries of good ones.
            Err(TwoWayError::Undecodable(reason)) => {
                warn!(%reason, "dropped undecodable two-way sms")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Two-way messages delivered through SQS, with partial batch failures.
pub async fn handle_two_way_sqs(
    event: aws_lambda_events::event::sqs::SqsEvent,
    deps: &Deps,
    now: DateTime<Utc>,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let result = match parse_two_way(body) {
            Ok(message) => handle_two_way(&message, deps, now).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // Undecodable ones are retried too and land in the DLQ with the
            // reason in the log: nothing is silently lost.
            warn!(message_id = %id, error = %e, "two-way sms will be retried");
            let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The program's own text (HELP, STOP or opt-in confirmation) from the
/// newest published version of its template in the library, rendered with
/// the program's name and support contact. These answers are owed to the
/// person whatever the library's state, so when no version is published, or
/// it cannot be rendered cleanly, the built-in CTIA text is sent instead.
async fn program_text(
    store: &dyn Store,
    template_id: &str,
    program: &ProgramConfig,
    now: DateTime<Utc>,
    fallback: String,
) -> String {
    let Ok(lint) = LintConfig::embedded() else {
        return fallback;
    };
    let library = Library::new(store, ReviewPolicy::default(), lint);
    let Ok(Some(stored)) = library.latest_sendable(template_id, now).await else {
        return fallback;
    };
    let values = BTreeMap::from([
        ("program".to_owned(), program.name.clone()),
        ("help_contact".to_owned(), program.support_contact.clone()),
        ("frequency".to_owned(), program.frequency.clone()),
    ]);
    match stored.version.render(&values) {
        Ok(text) if !has_errors(&lint_rendered(&stored.version, &text, lint)) => text,
        _ => fallback,
    }
}

/// A confirm or reschedule reply to the latest text: the episode's outcome
/// is recorded (once), the non-responder follow-up is cancelled, a
/// reschedule becomes a staff callback task, and the approved
/// acknowledgement is the answer.
#[allow(clippy::too_many_arguments, reason = "one reply's whole context")]
async fn two_way(
    store: &dyn Store,
    events: Option<&dyn OutcomeEvents>,
    program: &ProgramConfig,
    sms: &InboundSms,
    contact: &ContactId,
    sent: &SendHistoryEntry,
    confirmed: bool,
    classification: &Classification,
    now: DateTime<Utc>,
) -> Result<Option<String>, PortError> {
    let kind = if confirmed {
        "confirmed"
    } else {
        "reschedule_requested"
    };
    let outcome = EpisodeOutcome {
        subject: sent.subject.clone(),
        kind: kind.to_owned(),
        at: now,
        contact_id: contact.clone(),
        step_id: sent.step_id.clone(),
        source: format!("{}:{}", sms.carrier, sms.message_sid),
        after_first_text_seconds: Some((now - sent.at).num_seconds()),
    };
    let first = store.record_outcome(&outcome).await?;
    if first {
        announce(events, &outcome).await;
    }
    // The follow-up for non-responders is moot now.
    if let Ok(follow_up) = StepId::parse(&format!("{}-followup", sent.subject)) {
        if let Some(step) = store.step(&follow_up).await? {
            if matches!(step.status, StepStatus::Pending | StepStatus::Queued) {
                let cancelled = optline_ports::Step {
                    status: StepStatus::Cancelled,
                    ..step
                };
                store
                    .replace_step(&cancelled, &[StepStatus::Pending, StepStatus::Queued])
                    .await?;
            }
        }
    }
    if !confirmed {
        store
            .add_review(&ReviewItem {
                id: format!("callback-{}", sms.message_sid),
                kind: "callback".to_owned(),
                at: now,
                phone_masked: sms.from.masked(),
                contact_ids: vec![contact.clone()],
                body: sms.body.clone(),
                rule: classification.rule.clone(),
                action_taken: format!(
                    "reschedule requested for {}; call the patient back",
                    sent.subject
                ),
            })
            .await?;
    }
    store
        .append_audit(reply_record(
            contact,
            now,
            classification,
            None,
            &format!("{kind} for {}", sent.subject),
        ))
        .await?;
    info!(outcome = kind, first, "episode outcome recorded");
    // The approved acknowledgement, with the appointment's date and time.
    let ack_id = if confirmed {
        "appointment_confirmed"
    } else {
        "appointment_reschedule_requested"
    };
    let Ok(lint) = LintConfig::embedded() else {
        return Ok(None);
    };
    let library = Library::new(store, ReviewPolicy::default(), lint);
    let Some(template) = library.latest_sendable(ack_id, now).await? else {
        return Ok(None);
    };
    let mut values = BTreeMap::from([
        ("program".to_owned(), program.name.clone()),
        ("help_contact".to_owned(), program.support_contact.clone()),
    ]);
    if let Some(step_id) = &sent.step_id {
        if let Some(step) = store.step(step_id).await? {
            values.extend(step.variables);
        }
    }
    Ok(match template.version.render(&values) {
        Ok(text) if !has_errors(&lint_rendered(&template.version, &text, lint)) => Some(text),
        _ => None,
    })
}

/// Publishes an outcome for other systems. The outcome itself is already
/// recorded; a bus that is down is logged, not fatal to the reply.
pub async fn announce(events: Option<&dyn OutcomeEvents>, outcome: &EpisodeOutcome) {
    if let Some(events) = events {
        if let Err(e) = events.publish(outcome).await {
            warn!(error = %e, kind = %outcome.kind, "outcome event not published");
        }
    }
}
