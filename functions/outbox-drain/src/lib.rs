//! # outbox-drain
//!
//! Consumes the table's DynamoDB stream:
//!
//! - each new outbox item (`OUTBOX#…`, an `INSERT`) becomes an EventBridge
//!   event ([`optline_outbox::drain`]);
//! - each new tally item (`TALLY#…`) is counted into its rollup, once
//!   ([`optline_outcomes::count`]); opt-outs counted against an experiment's
//!   arm check its guardrail, and a template version whose opt-outs spike
//!   today is paused ([`optline_outcomes::pauses`]).
//!
//! Other records are skipped (the template's event source mapping filters
//! them out in the cloud too). A record that cannot be published or
//! counted is reported as the batch's first failure, and the stream
//! delivers it and everything after it again; each event carries its
//! stable id, so a consumer drops a repeat, and a tally counted before is
//! not counted again.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use optline_outbox::{drain, event_from_data, Pending, OUTBOX_PREFIX};
use optline_outcomes::count::{opt_out_counts, opt_out_rates, BatchMetrics};
use optline_outcomes::experiments::enforce_guardrails;
use optline_outcomes::pauses::{pause_spikes, PausePolicy};
use optline_outcomes::{count, tally_from_data, Arrived, TALLY_PREFIX};
use optline_ports::{metric, EventPublisher, Store, NO_KEY};
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

/// The tally a stream record carries, if it is one.
fn arrived(record: &EventRecord) -> Option<Arrived> {
    if record.event_name != "INSERT" {
        return None;
    }
    let image = serde_json::to_value(&record.change.new_image).ok()?;
    if !string_attribute(&image, "pk").is_some_and(|pk| pk.starts_with(TALLY_PREFIX)) {
        return None;
    }
    let data = string_attribute(&image, "data")?;
    match tally_from_data(&data) {
        Ok(tally) => {
            let created = record.change.approximate_creation_date_time;
            Some(Arrived {
                tally,
                committed_at: (created.timestamp() > 0).then_some(created),
            })
        }
        Err(e) => {
            warn!(error = %e, "a tally item that does not decode; skipped");
            None
        }
    }
}

/// Drains one batch of stream records: publishes its outbox events and
/// counts its tallies.
pub async fn handle(
    event: Event,
    publisher: &dyn EventPublisher,
    store: &dyn Store,
    pause: PausePolicy,
) -> DynamoDbEventResponse {
    let pending: Vec<Pending> = event.records.iter().filter_map(pending).collect();
    let drained = drain(publisher, &pending).await;
    let mut retry_from = drained.retry_from.and_then(|s| {
        event
            .records
            .iter()
            .position(|r| r.change.sequence_number.as_deref() == Some(s.as_str()))
    });

    let tallies: Vec<(usize, Arrived)> = event
        .records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| arrived(r).map(|a| (i, a)))
        .collect();
    if let Some(&(first, _)) = tallies.first() {
        let now = chrono::Utc::now();
        let batch: Vec<&optline_ports::Tally> = tallies.iter().map(|(_, a)| &a.tally).collect();
        let mut metrics = BatchMetrics::of(&batch, optline_ports::Counted::default());
        // An opt-out counted against an experiment's arm may stop the arm.
        let arm_opt_outs = batch.iter().any(|t| {
            t.key.arm != NO_KEY && t.counts.get(metric::OPT_OUTS_7D).is_some_and(|n| *n > 0)
        });
        match count(store, tallies.iter().map(|(_, a)| a.clone()).collect(), now).await {
            Ok(counted) => {
                metrics.counted = counted.counted;
                metrics.repeats = counted.repeats;
                // The day's opt-outs per version, for each day the batch
                // counted opt-outs on (today, unless a batch is replayed):
                // the alarm's figure, and a version whose opt-outs spike is
                // paused at once.
                let days: std::collections::BTreeSet<chrono::NaiveDate> = batch
                    .iter()
                    .filter(|t| t.counts.get(metric::OPT_OUTS).is_some_and(|n| *n > 0))
                    .map(|t| t.key.day)
                    .collect();
                for day in days {
                    match opt_out_counts(store, day).await {
                        Ok(counts) => {
                            metrics.opt_out_rates = opt_out_rates(&counts);
                            match pause_spikes(store, &counts, pause, now).await {
                                Ok(paused) if !paused.is_empty() => {
                                    warn!(versions = ?paused, "template versions paused: their opt-outs spiked");
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    warn!(error = %e, "an opt-out spike could not be paused; the next opt-out looks again")
                                }
                            }
                        }
                        Err(e) => warn!(error = %e, "the day's opt-out rates could not be read"),
                    }
                }
                metrics.emit(now);
                if arm_opt_outs {
                    match enforce_guardrails(store, now).await {
                        Ok(stopped) if !stopped.is_empty() => {
                            warn!(arms = ?stopped, "the opt-out guardrail stopped experiment arms");
                        }
                        Ok(_) => {}
                        // Counted already; the next opt-out looks again.
                        Err(e) => {
                            warn!(error = %e, "the experiment guardrail could not be checked")
                        }
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "tallies not counted; the stream delivers them again");
                retry_from = Some(retry_from.map_or(first, |r| r.min(first)));
            }
        }
    }

    let mut response = DynamoDbEventResponse::default();
    if let Some(sequence) =
        retry_from.and_then(|i| event.records.get(i)?.change.sequence_number.clone())
    {
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
