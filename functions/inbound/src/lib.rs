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

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{body_bytes, error};
use optline_aws::twilio_signature;
use optline_config::{Config, ProgramConfig};
use optline_policy::classify::{
    classify, Classification, Intent, ReplyContext, ReplyGrammar, Tier,
};
use optline_policy::consent::{
    standing, ConsentAction, ConsentKind, ConsentScope, ConsentStanding,
};
use optline_policy::phone::E164;
use optline_policy::template::find_seed;
use optline_ports::{
    consent_facts, CaptureChannel, ConsentEvent, ContactId, EventId, Evidence, NewAuditRecord,
    PortError, Store,
};
use tracing::{info, warn};

/// What the function needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Configuration (programs, Twilio auth token, public URL).
    pub config: Arc<Config>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// The fields of Twilio's inbound webhook this function reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// `MessageSid` (`SM…`).
    pub message_sid: String,
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

async fn twilio_inbound(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let Some(twilio) = &deps.config.twilio else {
        warn!("twilio webhook called but no auth token is configured");
        return error(StatusCode::FORBIDDEN, "webhook signing is not configured");
    };
    let bytes = match body_bytes(request) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let media = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_owned();
    if media != "application/x-www-form-urlencoded" {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/x-www-form-urlencoded",
        );
    }
    let params: Vec<(String, String)> = match serde_urlencoded::from_bytes(bytes) {
        Ok(p) => p,
        Err(_) => return error(StatusCode::BAD_REQUEST, "malformed form body"),
    };
    let signature = request
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(url) = public_url(request, &deps.config) else {
        return error(StatusCode::FORBIDDEN, "cannot determine the signed url");
    };
    if signature.is_empty()
        || !twilio_signature::is_valid(&twilio.auth_token, &url, &params, signature)
    {
        warn!("rejected a twilio webhook with a missing or invalid signature");
        return error(StatusCode::FORBIDDEN, "invalid twilio signature");
    }

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
    let grammar = find_seed("appointment_reminder", 1).map(|t| ReplyGrammar {
        confirm: t.confirm_codes,
        reschedule: t.reschedule_codes,
    });
    let context = ReplyContext { grammar, opted_out };
    let classification = classify(&sms.body, &context);
    let contacts = store.contacts_by_phone(&sms.from).await?;
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
                let text = program.stop_confirmation_text();
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
                return Ok(Some(program.opt_in_confirmation_text()));
            }
            Ok(None)
        }
        Intent::Help => {
            if store
                .first_sighting(&format!("reply-{}", sms.message_sid))
                .await?
            {
                return Ok(Some(program.help_text()));
            }
            Ok(None)
        }
        _ => {
            if store
                .first_sighting(&format!("reply-{}", sms.message_sid))
                .await?
            {
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
