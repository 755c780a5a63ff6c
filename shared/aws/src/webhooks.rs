//! Outbox events delivered to subscribers' HTTPS endpoints as signed
//! webhooks, in the Standard Webhooks format (standardwebhooks.com):
//!
//! - headers `webhook-id` (the event's stable id: a repeat is the same
//!   event), `webhook-timestamp` (unix seconds) and `webhook-signature`
//!   (`v1,<base64 HMAC-SHA256>` over `"<id>.<timestamp>.<body>"` with the
//!   subscriber's secret, `whsec_<base64 key>`);
//! - body `{"type": <detail-type>, "timestamp": <RFC 3339>, "data": <detail>}`.
//!
//! Each event is tried up to three times (backoff 250 ms, 500 ms); an event
//! a subscriber still refuses is reported unpublished, so the outbox drain
//! retries it from the table's stream and, after the stream's retries, it
//! reaches the outbox's dead-letter queue with its reason.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use optline_ports::{EventPublisher, OutboxEvent, PortError};
use serde::Deserialize;
use sha2::Sha256;

/// One subscriber, as the webhook subscribers secret holds it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSubscriber {
    /// Where to POST (https; http only to loopback, for local receivers).
    pub url: String,
    /// `whsec_<base64 key>` (Standard Webhooks).
    pub secret: String,
    /// The detail-types it wants (`optline.consent.changed`, …); empty:
    /// every event.
    #[serde(default)]
    pub types: Vec<String>,
}

impl std::fmt::Debug for WebhookSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSubscriber")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("types", &self.types)
            .finish()
    }
}

/// The Standard Webhooks signature of `body` for event `id` at
/// `timestamp`, with the key of `secret` (`whsec_…`).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| "a webhook secret is whsec_ followed by base64".to_owned())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Delivers outbox events to subscribers.
#[derive(Debug, Clone)]
pub struct WebhookPublisher {
    subscribers: BTreeMap<String, WebhookSubscriber>,
    http: reqwest::Client,
}

impl WebhookPublisher {
    /// Subscribers by name (the secret's JSON object). A URL that is not
    /// https (or http to loopback) or a malformed secret is refused,
    /// naming the subscriber.
    pub fn new(subscribers: BTreeMap<String, WebhookSubscriber>) -> Result<Self, String> {
        for (name, s) in &subscribers {
            let url = reqwest::Url::parse(&s.url)
                .map_err(|_| format!("webhook subscriber {name}: url is not a URL"))?;
            let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
            if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
                return Err(format!("webhook subscriber {name}: url must be https"));
            }
            sign(&s.secret, "check", 0, "")
                .map_err(|e| format!("webhook subscriber {name}: {e}"))?;
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { subscribers, http })
    }

    /// Parses the subscribers secret's JSON.
    pub fn parse(json: &str) -> Result<Self, String> {
        let subscribers: BTreeMap<String, WebhookSubscriber> = serde_json::from_str(json)
            .map_err(|e| format!("the webhook subscribers are not valid: {e}"))?;
        Self::new(subscribers)
    }

    /// Whether any subscriber is configured.
    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    async fn deliver(
        &self,
        subscriber: &WebhookSubscriber,
        event: &OutboxEvent,
    ) -> Result<(), String> {
        let body = serde_json::json!({
            "type": event.detail_type,
            "timestamp": event.at,
            "data": event.detail,
        })
        .to_string();
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
            }
            let timestamp = chrono::Utc::now().timestamp();
            let signature = sign(&subscriber.secret, &event.id, timestamp, &body)?;
            let answer = self
                .http
                .post(&subscriber.url)
                .header("content-type", "application/json")
                .header("webhook-id", &event.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .body(body.clone())
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => return Ok(()),
                // A 4xx other than 408/429 will not change on retry now.
                Ok(r)
                    if r.status().is_client_error()
                        && !matches!(r.status().as_u16(), 408 | 429) =>
                {
                    return Err(format!("HTTP {}", r.status().as_u16()))
                }
                Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
                Err(e) => {
                    last = if e.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        "unreachable".to_owned()
                    }
                }
            }
        }
        Err(last)
    }
}

#[async_trait]
impl EventPublisher for WebhookPublisher {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<String>, PortError> {
        let mut refused = Vec::new();
        for event in events {
            for (name, subscriber) in &self.subscribers {
                if !subscriber.types.is_empty() && !subscriber.types.contains(&event.detail_type) {
                    continue;
                }
                if let Err(reason) = self.deliver(subscriber, event).await {
                    tracing::warn!(subscriber = %name, event = %event.id, %reason, "webhook not delivered");
                    refused.push(event.id.clone());
                    break;
                }
            }
        }
        Ok(refused)
    }
}

/// Publishes to several publishers (the event bus, then webhooks): an
/// event any of them refused is reported refused, so it is tried again.
#[derive(Clone)]
pub struct Fanout(pub Vec<std::sync::Arc<dyn EventPublisher>>);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("publishers", &self.0.len())
            .finish()
    }
}

#[async_trait]
impl EventPublisher for Fanout {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<String>, PortError> {
        let mut refused: Vec<String> = Vec::new();
        for publisher in &self.0 {
            for id in publisher.publish(events).await? {
                if !refused.contains(&id) {
                    refused.push(id);
                }
            }
        }
        Ok(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_standard_webhooks_one() {
        // The example of the Standard Webhooks specification's test vectors.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(
            signature.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert!(sign("whsec_not base64!", "id", 0, "").is_err());
    }
}
