//! # inbound
//!
//! Carrier replies in: an adapter over [`optline_replies`] (what a reply
//! means and does) and [`optline_delivery::reports`] (delivery reports).
//!
//! - `POST /twilio/inbound`: Twilio's inbound SMS webhook, exactly as Twilio
//!   posts it (form encoded, signed with `X-Twilio-Signature` over the
//!   public URL and the sorted parameters). The answer is TwiML holding the
//!   one text owed (the opt-out confirmation, HELP, an acknowledgement); a
//!   retried webhook gets an empty answer.
//! - `POST /twilio/status`: Twilio's status callbacks (`204`).
//! - AWS End User Messaging two-way SMS, from an SNS subscription or an SQS
//!   queue ([`two_way`]); the owed text goes through the compliance lane.
//!
//! A bad or missing signature gets 403 and nothing is stored. A storage
//! failure gets 503, and Twilio retries: nothing was written.

pub mod two_way;

pub use two_way::{handle_two_way, handle_two_way_sns, handle_two_way_sqs, parse_two_way};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{body_bytes, error};
use optline_aws::twilio_signature;
use optline_config::Config;
use optline_delivery::reports::record_delivery;
use optline_policy::phone::E164;
use optline_policy::template::lint::LintConfig;
use optline_ports::{DeliveryUpdate, EventId, SmsSender, Store};
use optline_replies::{handle_reply, AnswerPath, InboundSms, Replies, ReplyOutcome};
use tracing::warn;

/// What the function needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Configuration (programs, Twilio auth token, public URL).
    pub config: Arc<Config>,
    /// The compliance lane's sender for AWS two-way replies; Twilio
    /// replies go back as TwiML instead.
    pub sender: Option<Arc<dyn SmsSender>>,
    /// Lint lists for the texts answered with.
    pub lint: Arc<LintConfig>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

impl Deps {
    /// The replies context over these deps.
    pub fn replies(&self) -> Replies<'_> {
        Replies {
            store: self.store.as_ref(),
            config: &self.config,
            lint: &self.lint,
        }
    }
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

fn field(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

async fn twilio_inbound(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let params = match verified_twilio_form(request, deps) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(message_sid) = field(&params, "MessageSid").or_else(|| field(&params, "SmsSid"))
    else {
        return error(StatusCode::BAD_REQUEST, "MessageSid is required");
    };
    if EventId::parse(&message_sid).is_err() {
        return error(StatusCode::BAD_REQUEST, "MessageSid is malformed");
    }
    let Some(from) = field(&params, "From") else {
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
        to: field(&params, "To").unwrap_or_default(),
        body: field(&params, "Body").unwrap_or_default(),
    };
    match handle_reply(deps.replies(), &sms, AnswerPath::Webhook, now).await {
        Ok(ReplyOutcome::Handled { answer, .. }) => twiml(answer.as_deref()),
        // Handled before: the one answer was given then.
        Ok(ReplyOutcome::Duplicate { .. }) => twiml(None),
        Err(e) => {
            // Nothing was written: Twilio's retry handles it whole.
            warn!(error = %e, "reply handling failed; twilio will retry");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; retry",
            )
        }
    }
}

/// The message states Twilio reports.
const TWILIO_STATUSES: [&str; 10] = [
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

/// Twilio's status callback: delivery states and error codes for a message
/// optline sent. The callback URL's `attempt` names the send attempt.
async fn twilio_status(request: &Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let params = match verified_twilio_form(request, deps) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (Some(sid), Some(status)) = (
        field(&params, "MessageSid").or_else(|| field(&params, "SmsSid")),
        field(&params, "MessageStatus").or_else(|| field(&params, "SmsStatus")),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MessageSid and MessageStatus are required",
        );
    };
    if EventId::parse(&sid).is_err() {
        return error(StatusCode::BAD_REQUEST, "MessageSid is malformed");
    }
    if !TWILIO_STATUSES.contains(&status.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "MessageStatus is not a Twilio message status",
        );
    }
    let error_code = field(&params, "ErrorCode").filter(|c| !c.is_empty());
    if error_code
        .as_deref()
        .is_some_and(|c| c.len() > 8 || !c.bytes().all(|b| b.is_ascii_digit()))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "ErrorCode is not a Twilio error code",
        );
    }
    let attempt = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("attempt=")))
        .filter(|a| a.len() == 32 && a.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let update = DeliveryUpdate {
        carrier_message_id: format!("twilio:{sid}"),
        status,
        error_code,
        at: now,
    };
    match record_delivery(deps.store.as_ref(), &update, attempt.as_deref(), now).await {
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
