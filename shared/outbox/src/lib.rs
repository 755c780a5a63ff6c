//! # optline-outbox
//!
//! Events for other systems (episode outcomes today) are items written in
//! the same commit as the fact they announce (`OUTBOX#<event id>`), so an
//! event exists exactly when its fact does. The table's stream delivers
//! each new outbox item to the drain, which publishes it to EventBridge. A
//! stream delivers at least once, and a publish whose answer is lost is
//! retried, so each event carries its stable id (`detail.event_id`):
//! consumers drop a repeat.

use optline_ports::{EventPublisher, OutboxEvent, PortError};
use tracing::{info, warn};

/// The partition key prefix of outbox items.
pub const OUTBOX_PREFIX: &str = "OUTBOX#";

/// An outbox event as its stream record delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The stream record's sequence number (its batch item id).
    pub sequence: String,
    /// The event.
    pub event: OutboxEvent,
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events EventBridge accepted.
    pub published: usize,
    /// The first record to deliver again (a stream retries from there),
    /// when not everything was accepted.
    pub retry_from: Option<String>,
}

/// The event an outbox item's `data` holds.
pub fn event_from_data(data: &str) -> Result<OutboxEvent, PortError> {
    serde_json::from_str(data).map_err(|e| PortError::Corrupt(format!("outbox item: {e}")))
}

/// Publishes `pending` in order; anything not accepted is delivered again
/// from the first such record.
pub async fn drain(publisher: &dyn EventPublisher, pending: &[Pending]) -> Drained {
    if pending.is_empty() {
        return Drained::default();
    }
    let events: Vec<OutboxEvent> = pending.iter().map(|p| p.event.clone()).collect();
    match publisher.publish(&events).await {
        Ok(refused) if refused.is_empty() => {
            info!(published = events.len(), "outbox drained");
            Drained {
                published: events.len(),
                retry_from: None,
            }
        }
        Ok(refused) => {
            let first = pending.iter().position(|p| refused.contains(&p.event.id));
            warn!(
                refused = refused.len(),
                "eventbridge refused outbox events; retrying them"
            );
            Drained {
                published: events.len() - refused.len(),
                retry_from: first
                    .and_then(|i| pending.get(i))
                    .map(|p| p.sequence.clone()),
            }
        }
        Err(e) => {
            warn!(error = %e, "outbox events not published; retrying the batch");
            Drained {
                published: 0,
                retry_from: pending.first().map(|p| p.sequence.clone()),
            }
        }
    }
}
