//! Episode outcomes as Amazon EventBridge events, for EHR integrations to
//! consume (a rule on the bus routes them to an integration engine, a queue
//! or a Lambda).
//!
//! Each event: source `optline`, detail-type `optline.episode.outcome`, and
//! the [`EpisodeOutcome`] as detail (subject, kind, time, contact id, step id,
//! source). No phone number and no message text.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use optline_ports::{EpisodeOutcome, OutcomeEvents, PortError};

/// The `source` of every optline event.
pub const EVENT_SOURCE: &str = "optline";
/// The `detail-type` of an episode outcome.
pub const OUTCOME_DETAIL_TYPE: &str = "optline.episode.outcome";

/// Publishes outcomes to one event bus.
#[derive(Debug, Clone)]
pub struct EventBridgeOutcomes {
    client: Client,
    bus: String,
}

impl EventBridgeOutcomes {
    /// Events go to `bus` (name or ARN).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

impl EventBridgeOutcomes {
    /// The publisher for the bus named in `OUTCOME_BUS_NAME`, or `None`
    /// when the deployment has none.
    pub fn from_env(client: &Client) -> Option<std::sync::Arc<dyn OutcomeEvents>> {
        std::env::var("OUTCOME_BUS_NAME")
            .ok()
            .filter(|bus| !bus.is_empty())
            .map(|bus| {
                std::sync::Arc::new(Self::new(client.clone(), bus))
                    as std::sync::Arc<dyn OutcomeEvents>
            })
    }
}

#[async_trait]
impl OutcomeEvents for EventBridgeOutcomes {
    async fn publish(&self, outcome: &EpisodeOutcome) -> Result<(), PortError> {
        let detail =
            serde_json::to_string(outcome).map_err(|e| PortError::Invalid(e.to_string()))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(OUTCOME_DETAIL_TYPE)
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                PortError::Unavailable(format!(
                    "put events: {}",
                    aws_sdk_eventbridge::error::DisplayErrorContext(e)
                ))
            })?;
        if out.failed_entry_count() > 0 {
            return Err(PortError::Unavailable(
                "eventbridge refused the outcome event".to_owned(),
            ));
        }
        Ok(())
    }
}
