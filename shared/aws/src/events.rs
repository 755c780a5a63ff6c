//! Outbox events as Amazon EventBridge events, for EHR integrations and
//! apps to consume (a rule on the bus routes them to an integration engine,
//! a queue or a Lambda).
//!
//! Each event: source `optline`, the outbox event's detail-type (e.g.
//! `optline.episode.outcome`), and as detail the event's own detail with
//! its stable `event_id`, so a consumer can drop a repeat. No phone number
//! and no message text.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use optline_ports::{EventPublisher, OutboxEvent, PortError};

/// The `source` of every optline event.
pub const EVENT_SOURCE: &str = "optline";

/// Most entries EventBridge takes in one `PutEvents`.
const PUT_EVENTS_MAX: usize = 10;

/// Publishes outbox events to one event bus.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    /// Events go to `bus` (name or ARN).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

/// The detail an event carries: its own detail with its stable id.
pub fn event_detail(event: &OutboxEvent) -> serde_json::Value {
    let mut detail = match &event.detail {
        serde_json::Value::Object(map) => map.clone(),
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".to_owned(), other.clone());
            map
        }
    };
    detail.insert(
        "event_id".to_owned(),
        serde_json::Value::String(event.id.clone()),
    );
    serde_json::Value::Object(detail)
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<String>, PortError> {
        let mut refused = Vec::new();
        for chunk in events.chunks(PUT_EVENTS_MAX) {
            let entries: Vec<PutEventsRequestEntry> = chunk
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(EVENT_SOURCE)
                        .detail_type(&event.detail_type)
                        .time(aws_sdk_eventbridge::primitives::DateTime::from_secs(
                            event.at.timestamp(),
                        ))
                        .detail(event_detail(event).to_string())
                        .build()
                })
                .collect();
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    PortError::Unavailable(format!(
                        "put events: {}",
                        aws_sdk_eventbridge::error::DisplayErrorContext(e)
                    ))
                })?;
            // Entries answer in order; one with an error code was refused.
            for (event, entry) in chunk.iter().zip(out.entries()) {
                if entry.error_code().is_some() {
                    refused.push(event.id.clone());
                }
            }
        }
        Ok(refused)
    }
}
