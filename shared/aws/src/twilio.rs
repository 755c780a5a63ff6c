//! The Twilio Messages API sender.
//!
//! `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form
//! encoded, HTTP basic auth with the Account SID and auth token, and either
//! `MessagingServiceSid` or `From`. Errors come back as JSON with Twilio's
//! numeric `code`; the ones that matter here:
//! - 20429 (too many requests) and HTTP 429: not taken, retry later;
//! - 5xx, a timeout or an answer lost on the way back: the message may
//!   exist; never sent again unless a lookup proves it does not;
//! - 21610 (recipient replied STOP): refused, and an opt-out to record;
//! - 21211 (invalid `To`), 21614 (not a mobile number), 30007 (filtered),
//!   21408 (region not enabled): refused.
//!
//! Twilio's Messages API is not idempotent: `I-Twilio-Idempotency-Token`
//! is a header Twilio sends on its own webhooks, not a key it dedupes our
//! requests by. So a send whose answer was lost is never simply repeated:
//! [`SmsSender::lookup`] lists the recipient's messages created since the
//! attempt (`GET Messages.json?To=…&DateSent>=…`) and finds it by its body,
//! and each message's `StatusCallback` URL names its attempt (a hash of the
//! step id, no PHI), so a status callback can prove it went out too.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optline_ports::{
    CarrierReceipt, FailureKind, OutboundSms, PortError, SendFailure, SentLookup, SmsSender,
};
use serde::Deserialize;

/// Twilio rejects bodies longer than this many characters.
pub const TWILIO_MAX_BODY: usize = 1600;

/// Where and how to reach Twilio for one program.
#[derive(Debug, Clone)]
pub struct TwilioSender {
    http: reqwest::Client,
    api_base: String,
    account_sid: String,
    auth_token: String,
    messaging_service_sid: Option<String>,
    from: Option<String>,
    status_callback: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TwilioMessage {
    sid: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    date_created: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TwilioMessageList {
    #[serde(default)]
    messages: Vec<TwilioMessage>,
}

#[derive(Debug, Deserialize)]
struct TwilioError {
    code: Option<u32>,
    message: Option<String>,
}

impl TwilioSender {
    /// A sender for one account and origination identity.
    pub fn new(
        api_base: impl Into<String>,
        account_sid: impl Into<String>,
        auth_token: impl Into<String>,
        messaging_service_sid: Option<String>,
        from: Option<String>,
        status_callback: Option<String>,
    ) -> Result<Self, SendFailure> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| failure("ClientBuild", &e.to_string(), FailureKind::Refused, false))?;
        Ok(Self {
            http,
            api_base: api_base.into().trim_end_matches('/').to_owned(),
            account_sid: account_sid.into(),
            auth_token: auth_token.into(),
            messaging_service_sid,
            from,
            status_callback,
        })
    }
}

fn failure(code: &str, reason: &str, kind: FailureKind, opted_out: bool) -> SendFailure {
    SendFailure {
        code: code.to_owned(),
        reason: reason.to_owned(),
        kind,
        recipient_opted_out: opted_out,
    }
}

/// Maps a Twilio error response onto a send failure.
pub fn classify_error(http_status: u16, code: Option<u32>) -> SendFailure {
    match (http_status, code) {
        (_, Some(21610)) => failure(
            "21610",
            "recipient has opted out (replied STOP)",
            FailureKind::Refused,
            true,
        ),
        (_, Some(20429)) | (429, _) => failure(
            &code.map_or("429".to_owned(), |c| c.to_string()),
            "throttled by twilio",
            FailureKind::NotSent,
            false,
        ),
        (_, Some(21211)) => failure(
            "21211",
            "invalid 'to' phone number",
            FailureKind::Refused,
            false,
        ),
        (_, Some(21614)) => failure(
            "21614",
            "'to' number is not a mobile number",
            FailureKind::Refused,
            false,
        ),
        (_, Some(30007)) => failure(
            "30007",
            "message filtered by the carrier",
            FailureKind::Refused,
            false,
        ),
        (_, Some(21408)) => failure(
            "21408",
            "region not enabled for the account",
            FailureKind::Refused,
            false,
        ),
        // A server error after the request arrived: the message may exist.
        (s, c) if s >= 500 => failure(
            &c.map_or(s.to_string(), |c| c.to_string()),
            "twilio server error",
            FailureKind::Unknown,
            false,
        ),
        (s, c) => failure(
            &c.map_or(s.to_string(), |c| c.to_string()),
            "twilio rejected the request",
            FailureKind::Refused,
            false,
        ),
    }
}

#[async_trait]
impl SmsSender for TwilioSender {
    async fn send(&self, sms: &OutboundSms) -> Result<CarrierReceipt, SendFailure> {
        if sms.body.chars().count() > TWILIO_MAX_BODY {
            return Err(failure(
                "21617",
                "body exceeds 1600 characters",
                FailureKind::Refused,
                false,
            ));
        }
        let mut form: Vec<(&str, &str)> = vec![("To", sms.to.as_str()), ("Body", &sms.body)];
        match (
            &self.messaging_service_sid,
            sms.from.as_ref().or(self.from.as_ref()),
        ) {
            (Some(service), _) => form.push(("MessagingServiceSid", service)),
            (None, Some(from)) => form.push(("From", from)),
            (None, None) => {
                return Err(failure(
                    "21603",
                    "no From number or Messaging Service configured",
                    FailureKind::Refused,
                    false,
                ))
            }
        }
        // The callback names the attempt, so a delivery report can prove
        // that a send whose answer was lost went out.
        let callback = self.status_callback.as_ref().map(|base| {
            let separator = if base.contains('?') { '&' } else { '?' };
            format!(
                "{base}{separator}attempt={}",
                optline_ports::attempt_key(&sms.idempotency_key)
            )
        });
        if let Some(callback) = &callback {
            form.push(("StatusCallback", callback));
        }
        let body = serde_urlencoded_form(&form);
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.account_sid
        );
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("I-Twilio-Idempotency-Token", &sms.idempotency_key)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    // No connection was made: nothing reached Twilio.
                    failure(
                        "Connect",
                        "could not reach twilio",
                        FailureKind::NotSent,
                        false,
                    )
                } else {
                    let code = if e.is_timeout() {
                        "Timeout"
                    } else {
                        "Transport"
                    };
                    failure(
                        code,
                        "twilio's answer was lost",
                        FailureKind::Unknown,
                        false,
                    )
                }
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|_| {
            failure(
                "Read",
                "could not read twilio's answer",
                FailureKind::Unknown,
                false,
            )
        })?;
        if (200..300).contains(&status) {
            let message: TwilioMessage = serde_json::from_str(&text).map_err(|_| {
                failure(
                    "Decode",
                    "unreadable twilio answer",
                    FailureKind::Unknown,
                    false,
                )
            })?;
            return Ok(CarrierReceipt {
                carrier: "twilio".to_owned(),
                message_id: message.sid,
            });
        }
        let error: Option<TwilioError> = serde_json::from_str(&text).ok();
        let code = error.as_ref().and_then(|e| e.code);
        tracing::warn!(
            http_status = status,
            twilio_code = code,
            twilio_message_len = error
                .as_ref()
                .and_then(|e| e.message.as_ref())
                .map(String::len),
            "twilio send failed"
        );
        Err(classify_error(status, code))
    }

    async fn lookup(
        &self,
        sms: &OutboundSms,
        since: DateTime<Utc>,
    ) -> Result<SentLookup, PortError> {
        // Twilio filters by the day; the minute is checked here.
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.api_base, self.account_sid
        );
        let day = since.format("%Y-%m-%d").to_string();
        let response = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .query(&[
                ("To", sms.to.as_str()),
                ("DateSent>", day.as_str()),
                ("PageSize", "100"),
            ])
            .send()
            .await
            .map_err(|_| PortError::Unavailable("twilio message lookup failed".to_owned()))?;
        if !response.status().is_success() {
            return Err(PortError::Unavailable(format!(
                "twilio message lookup answered {}",
                response.status().as_u16()
            )));
        }
        let text = response
            .text()
            .await
            .map_err(|_| PortError::Unavailable("unreadable twilio message list".to_owned()))?;
        let list: TwilioMessageList = serde_json::from_str(&text)
            .map_err(|_| PortError::Unavailable("unreadable twilio message list".to_owned()))?;
        let earliest = since - chrono::Duration::minutes(1);
        let found = list.messages.into_iter().find(|m| {
            m.body.as_deref() == Some(sms.body.as_str())
                && m.date_created
                    .as_deref()
                    .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
                    .is_none_or(|d| d.with_timezone(&Utc) >= earliest)
        });
        Ok(match found {
            Some(m) => SentLookup::Found(CarrierReceipt {
                carrier: "twilio".to_owned(),
                message_id: m.sid,
            }),
            None => SentLookup::NotFound,
        })
    }
}

/// `application/x-www-form-urlencoded` as Twilio expects it.
fn serde_urlencoded_form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&form_escape(k));
        out.push('=');
        out.push_str(&form_escape(v));
    }
    out
}

fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_21610_is_permanent_and_an_opt_out() {
        let f = classify_error(400, Some(21610));
        assert_eq!(f.kind, FailureKind::Refused);
        assert!(f.recipient_opted_out);
    }

    #[test]
    fn throttling_is_retryable_and_a_server_error_is_an_unknown_outcome() {
        assert_eq!(classify_error(429, Some(20429)).kind, FailureKind::NotSent);
        assert_eq!(classify_error(503, None).kind, FailureKind::Unknown);
        assert_eq!(classify_error(400, Some(21211)).kind, FailureKind::Refused);
    }

    #[test]
    fn form_encoding_escapes_plus_and_spaces() {
        assert_eq!(
            serde_urlencoded_form(&[("To", "+14155550100"), ("Body", "a b&c")]),
            "To=%2B14155550100&Body=a+b%26c"
        );
    }
}
