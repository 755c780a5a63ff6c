//! The Twilio Messages API sender.
//!
//! `POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form
//! encoded, HTTP basic auth with the Account SID and auth token, and either
//! `MessagingServiceSid` or `From`. Errors come back as JSON with Twilio's
//! numeric `code`; the ones that matter here:
//! - 20429 (too many requests) and HTTP 429 / 5xx: retry later;
//! - 21610 (recipient replied STOP): permanent, and an opt-out to record;
//! - 21211 (invalid `To`), 21614 (not a mobile number), 30007 (filtered),
//!   21408 (region not enabled): permanent.

use std::time::Duration;

use async_trait::async_trait;
use optline_ports::{CarrierReceipt, OutboundSms, SendFailure, SmsSender};
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
            .map_err(|e| failure("ClientBuild", &e.to_string(), false, false))?;
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

fn failure(code: &str, reason: &str, retryable: bool, opted_out: bool) -> SendFailure {
    SendFailure {
        code: code.to_owned(),
        reason: reason.to_owned(),
        retryable,
        recipient_opted_out: opted_out,
    }
}

/// Maps a Twilio error response onto a send failure.
pub fn classify_error(http_status: u16, code: Option<u32>) -> SendFailure {
    match (http_status, code) {
        (_, Some(21610)) => failure(
            "21610",
            "recipient has opted out (replied STOP)",
            false,
            true,
        ),
        (_, Some(20429)) | (429, _) => failure(
            &code.map_or("429".to_owned(), |c| c.to_string()),
            "throttled by twilio",
            true,
            false,
        ),
        (_, Some(21211)) => failure("21211", "invalid 'to' phone number", false, false),
        (_, Some(21614)) => failure("21614", "'to' number is not a mobile number", false, false),
        (_, Some(30007)) => failure("30007", "message filtered by the carrier", false, false),
        (_, Some(21408)) => failure("21408", "region not enabled for the account", false, false),
        (s, c) if s >= 500 => failure(
            &c.map_or(s.to_string(), |c| c.to_string()),
            "twilio server error",
            true,
            false,
        ),
        (s, c) => failure(
            &c.map_or(s.to_string(), |c| c.to_string()),
            "twilio rejected the request",
            false,
            false,
        ),
    }
}

#[async_trait]
impl SmsSender for TwilioSender {
    fn deduplicates(&self, _program: &str) -> bool {
        // The idempotency token header makes a repeated request a no-op.
        true
    }

    async fn send(&self, sms: &OutboundSms) -> Result<CarrierReceipt, SendFailure> {
        if sms.body.chars().count() > TWILIO_MAX_BODY {
            return Err(failure(
                "21617",
                "body exceeds 1600 characters",
                false,
                false,
            ));
        }
        let mut form: Vec<(&str, &str)> = vec![("To", sms.to.as_str()), ("Body", &sms.body)];
        match (&self.messaging_service_sid, &self.from) {
            (Some(service), _) => form.push(("MessagingServiceSid", service)),
            (None, Some(from)) => form.push(("From", from)),
            (None, None) => {
                return Err(failure(
                    "21603",
                    "no From number or Messaging Service configured",
                    false,
                    false,
                ))
            }
        }
        if let Some(callback) = &self.status_callback {
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
                let kind = if e.is_timeout() { "Timeout" } else { "Connect" };
                failure(kind, "could not reach twilio", true, false)
            })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|_| failure("Read", "could not read twilio's answer", true, false))?;
        if (200..300).contains(&status) {
            let message: TwilioMessage = serde_json::from_str(&text)
                .map_err(|_| failure("Decode", "unreadable twilio answer", true, false))?;
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
        assert!(!f.retryable);
        assert!(f.recipient_opted_out);
    }

    #[test]
    fn throttling_and_server_errors_are_retryable() {
        assert!(classify_error(429, Some(20429)).retryable);
        assert!(classify_error(503, None).retryable);
        assert!(!classify_error(400, Some(21211)).retryable);
    }

    #[test]
    fn form_encoding_escapes_plus_and_spaces() {
        assert_eq!(
            serde_urlencoded_form(&[("To", "+14155550100"), ("Body", "a b&c")]),
            "To=%2B14155550100&Body=a+b%26c"
        );
    }
}
