//! # outbox-drain
//!
//! Consumes the table's DynamoDB stream: each new outbox item (`OUTBOX#…`,
//! an `INSERT`) becomes an EventBridge event ([`optline_outbox::drain`]).
//! Other records are skipped (the template's event source mapping filters
//! them out in the cloud too). A record that cannot be published is
//! reported as the batch's first failure, and the stream delivers it and
//! everything after it again; each event carries its stable id, so a
//! consumer drops a repeat.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use optline_outbox::{drain, event_from_data, Pending, OUTBOX_PREFIX};
use optline_ports::EventPublisher;
use tracing::warn;

/// A string attribute of a stream image, read from its DynamoDB JSON
/// (`{"name": {"S": "…"}}`).
fn string_attribute(image: &serde_json::Value, name: &str) -> Option<String> {
    image.get(name)?.get("S")?.as_str().map(str::to_owned)
}

/// The outbox event a stream record announces, if it is one.
fn pending(record: &EventRecord) -> Option<Pending> {
    if record.event_name != "INSERT" {
        return None;
    }
    let image = serde_json::to_value(&record.change.new_image).ok()?;
    let image = &image;
    if !string_attribute(image, "pk").is_some_and(|pk| pk.starts_with(OUTBOX_PREFIX)) {
        return None;
    }
    let sequence = record.change.sequence_number.clone()?;
    let data = string_attribute(image, "data")?;
    match event_from_data(&data) {
        Ok(event) => Some(Pending { sequence, event }),
        Err(e) => {
            // Written by optline itself; a record that never decodes would
            // block the shard forever, so it is logged and passed.
            warn!(error = %e, "an outbox item that does not decode; skipped");
            None
        }
    }
}

/// Drains one batch of stream records.
pub async fn handle(event: Event, publisher: &dyn EventPublisher) -> DynamoDbEventResponse {
    let pending: Vec<Pending> = event.records.iter().filter_map(pending).collect();
    let drained = drain(publisher, &pending).await;
    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence) = drained.retry_from {
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn a_stream_record_of_a_new_outbox_item_is_its_event_and_other_records_are_passed() {
        let event: Event =
            serde_json::from_str(include_str!("../../../events/outbox-stream.json")).unwrap();
        let found: Vec<Pending> = event.records.iter().filter_map(pending).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].event.id, "outcome:appt-appt-5001:confirmed");
        assert_eq!(found[0].sequence, "1100000000017454423009");

        let mut modified = event.records[0].clone();
        modified.event_name = "MODIFY".to_owned();
        assert!(pending(&modified).is_none());
    }
}
