//! # inbound
//!
//! Carrier replies in: an adapter over [`optline_replies`] (what a reply
//! means and does) and [`optline_delivery::reports`] (delivery reports).
//!
//! - `POST /twilio/inbound`: Twilio's inbound SMS webhook, exactly as Twilio
//!   posts it: form encoded and signed with `X-Twilio-Signature` over the
//!   public URL and the sorted parameters (HMAC-SHA1 with the Auth Token, or
//!   a Webhooks SharedKey's HMAC-SHA256), or a JSON body signed through
//!   the URL's `bodySHA256` ([`optline_aws::twilio_signature`]). The answer is TwiML holding the
//!   one text owed (the opt-out confirmation, HELP, an acknowledgement); a
//!   retried webhook gets an empty answer.
//! - `POST /twilio/status`: Twilio's status callbacks (`204`).
//! - AWS End User Messaging two-way SMS, from an SNS subscription or an SQS
//!   queue ([`two_way`]); the owed text goes through the compliance lane.
//!
//! A bad or missing signature gets 403 and nothing is stored. A storage
//! failure gets 503, and Twilio retries: nothing was written.

pub mod rotation;
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

/// Most parameters a webhook may carry (Twilio sends about twenty).
const MAX_PARAMS: usize = 200;

/// Form or JSON parameters, in the order received.
type Params = Vec<(String, String)>;

/// Parses a Twilio webhook and checks its signature; `Err` is the answer.
///
/// A form-encoded body (what Twilio sends for SMS) is signed with its
/// parameters; a JSON body (`application/json`) is signed through the
/// `bodySHA256` its URL carries, and its top-level fields are read as the
/// parameters. The signing secret is the Auth Token, or the Webhooks
/// SharedKey that `X-Twilio-Webhooks-Signature-Settings` names, with the
/// hash it names ([`twilio_signature`]).
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
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let media = header("content-type")
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some(url) = public_url(request, &deps.config) else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "cannot determine the signed url",
        ));
    };
    let settings = twilio_signature::settings(header(twilio_signature::SETTINGS_HEADER)).map_err(
        |reason| {
            warn!(reason, "rejected a twilio webhook's signature settings");
            error(StatusCode::FORBIDDEN, reason)
        },
    )?;
    let secret = match &settings.key {
        None => twilio.auth_token.as_str(),
        Some(key) => match twilio.webhook_keys.get(key) {
            Some(secret) => secret.as_str(),
            None => {
                warn!("rejected a twilio webhook signed with an unknown shared key");
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "the webhook is signed with a key this deployment does not hold",
                ));
            }
        },
    };
    let signature = header("x-twilio-signature").unwrap_or_default();
    let (params, signed): (Params, Params) = match media.as_str() {
        "application/x-www-form-urlencoded" => {
            let params: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
                .map_err(|_| error(StatusCode::BAD_REQUEST, "malformed form body"))?;
            (params.clone(), params)
        }
        "application/json" => {
            if !twilio_signature::body_matches(&url, bytes) {
                warn!("rejected a twilio JSON webhook whose body does not match bodySHA256");
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "the body does not match the signed bodySHA256",
                ));
            }
            (json_params(bytes)?, Vec::new())
        }
        _ => {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected application/x-www-form-urlencoded or application/json",
            ))
        }
    };
    if params.len() > MAX_PARAMS {
        return Err(error(StatusCode::BAD_REQUEST, "too many parameters"));
    }
    if !twilio_signature::is_valid_with(settings.algorithm, secret, &url, &signed, signature) {
        warn!("rejected a twilio webhook with a missing or invalid signature");
        return Err(error(StatusCode::FORBIDDEN, "invalid twilio signature"));
    }
    Ok(params)
}

/// A JSON webhook's top-level fields as parameters (strings as they are,
/// numbers and booleans as text; nested values are not parameters).
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
fn json_params(bytes: &[u8]) -> Result<Vec<(String, String)>, Response<Body>> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &optline_ports::json_reason(&e)))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "a JSON webhook body must be an object",
        ));
    };
    Ok(fields
        .into_iter()
        .filter_map(|(name, value)| match value {
            serde_json::Value::String(s) => Some((name, s)),
            serde_json::Value::Number(n) => Some((name, n.to_string())),
            serde_json::Value::Bool(b) => Some((name, b.to_string())),
            _ => None,
        })
        .collect())
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
