//! Carriers' delivery reports (Twilio status callbacks).
//!
//! Each report is committed once (its marker is the message id, the status
//! and the error code), with the step's delivery state and an audit record.
//! A state never goes backwards: a report older than the one recorded (a
//! `sent` arriving after `delivered`) is recorded in the chain and leaves
//! the state as it is. Error 21610 (the number replied STOP at the
//! carrier) is a revocation, recorded in the same commit, with a record on
//! the chain of every contact sharing the number. A report for a message
//! optline has no record of is kept under the attempt its callback URL
//! names, which proves that an interrupted send went out.

use chrono::{DateTime, Utc};
use optline_ports::{
    ChainRead, Commit, Committed, ConsentEvent, DeliveryUpdate, EventId, Marker, NewAuditRecord,
    Partition, PortError, SendHistoryEntry, StepId, Store, Tally, Write, COMMIT_ATTEMPTS,
};
use tracing::info;

/// What a delivery report came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Recorded on the step.
    Recorded {
        /// The step.
        step: StepId,
        /// Whether the step's state moved (`false`: an older report).
        moved: bool,
        /// Whether it recorded a carrier opt-out.
        opt_out: bool,
    },
    /// This report was recorded before.
    Duplicate,
    /// A message optline has no record of, kept under its attempt.
    AttemptNoted,
    /// A message optline has no record of, naming no attempt: ignored.
    Unknown,
}

/// The order of Twilio's message states: a report never moves a step back.
fn rank(status: &str) -> u8 {
    match status {
        "accepted" | "scheduled" | "queued" => 1,
        "sending" => 2,
        "sent" => 3,
        "delivered" | "undelivered" | "failed" | "canceled" => 4,
        "read" => 5,
        _ => 0,
    }
}

/// Records one delivery report (see the module docs).
pub async fn record_delivery(
    store: &dyn Store,
    update: &DeliveryUpdate,
    attempt: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ReportOutcome, PortError> {
    let marker = Marker {
        key: format!(
            "status:{}:{}:{}",
            update.carrier_message_id,
            update.status,
            update.error_code.as_deref().unwrap_or("-")
        ),
        at: now,
        answer: None,
    };
    for _ in 0..COMMIT_ATTEMPTS {
        let Some(step_id) = store
            .step_for_carrier_message(&update.carrier_message_id)
            .await?
        else {
            let Some(attempt) = attempt else {
                info!("delivery report for a message optline does not know; ignored");
                return Ok(ReportOutcome::Unknown);
            };
            let mut commit = Commit::for_trigger(marker.clone());
            commit.push(Write::CarrierAttempt {
                attempt: attempt.to_owned(),
                carrier_message_id: update.carrier_message_id.clone(),
                status: update.status.clone(),
            });
            return Ok(match store.commit(commit).await? {
                Committed::Duplicate(_) => ReportOutcome::Duplicate,
                _ => ReportOutcome::AttemptNoted,
            });
        };
        let Some(step) = store.step(&step_id).await? else {
            return Ok(ReportOutcome::Unknown);
        };
        let current = store.delivery_status(&step_id).await?;
        let moved = current
            .as_deref()
            .is_none_or(|c| rank(&update.status) >= rank(c));
        let mut commit = Commit::for_trigger(marker.clone());
        if moved {
            commit.push(Write::Delivery {
                step: step_id.clone(),
                update: update.clone(),
                expected: current.clone(),
            });
            // A message's final delivery state, counted once.
            if let Some(tally) = Tally::delivery(&step, update) {
                commit.push(Write::Tally(tally));
            }
            // A text the number cannot take (a landline, no such handset,
            // an opt-out at the carrier): the message still matters, so a
            // person is asked to reach the patient another way.
            if matches!(update.status.as_str(), "failed" | "undelivered") {
                let reasons: Vec<String> = update
                    .error_code
                    .iter()
                    .map(|c| format!("carrier.{c}"))
                    .collect();
                if let Some((task, event)) = optline_ports::fallback_task(&step, &reasons, now) {
                    commit.push(Write::Review(task));
                    commit.push(Write::Outbox(event));
                }
            }
        }
        let delivery_record = NewAuditRecord {
            evidence: Default::default(),
            contact_id: step.contact_id.clone(),
            at: now,
            kind: "delivery".to_owned(),
            action: update.status.clone(),
            step_id: Some(step_id.as_str().to_owned()),
            rules: Vec::new(),
            reasons: update
                .error_code
                .iter()
                .map(|c| format!("carrier.{c}"))
                .collect(),
            legal_basis: None,
            consent_event_id: None,
            template: None,
            carrier_message_id: Some(update.carrier_message_id.clone()),
            arm: None,
            detail: (!moved).then(|| {
                format!(
                    "reported after {}; the delivery state stays",
                    current.as_deref().unwrap_or("nothing")
                )
            }),
        };
        let mut chains = vec![(step.contact_id.clone(), vec![delivery_record])];
        let mut opt_out = false;
        if update.error_code.as_deref() == Some("21610") {
            if let Some(contact) = store.contact(&step.contact_id).await? {
                let event = ConsentEvent::carrier_revocation(
                    EventId::parse(&format!("carrier-optout-{step_id}"))?,
                    contact.phone.clone(),
                    Some(contact.id.clone()),
                    Some(step.program.clone()),
                    "twilio",
                    "21610",
                    Some(update.carrier_message_id.clone()),
                    now,
                );
                let partition = Partition::Phone(contact.phone.clone());
                if store.consent_event(&partition, &event.id).await?.is_none() {
                    let ledger = store.ledger(&partition).await?;
                    commit.push(Write::Consent {
                        event: event.clone(),
                        disclosure: None,
                        ledger: ledger.read,
                    });
                    opt_out = true;
                    // Against the text the carrier refused (sent moments
                    // before its report).
                    commit.attribute_opt_outs(Some(&SendHistoryEntry::for_step(&step, update.at)));
                    let mut sharing = store.contacts_by_phone(&contact.phone).await?;
                    sharing.sort();
                    commit.announce_contacts(&event.id, &sharing);
                    for id in sharing {
                        let record = NewAuditRecord {
                            evidence: event.evidence(),
                            contact_id: id.clone(),
                            at: now,
                            kind: "consent".to_owned(),
                            action: "revoke".to_owned(),
                            step_id: Some(step_id.as_str().to_owned()),
                            rules: Vec::new(),
                            reasons: vec!["carrier.21610".to_owned()],
                            legal_basis: None,
                            consent_event_id: Some(event.id.as_str().to_owned()),
                            template: None,
                            carrier_message_id: Some(update.carrier_message_id.clone()),
                            arm: None,
                            detail: Some("the carrier reports the number opted out".to_owned()),
                        };
                        match chains.iter_mut().find(|(c, _)| *c == id) {
                            Some((_, records)) => records.push(record),
                            None => chains.push((id, vec![record])),
                        }
                    }
                }
            }
        }
        let subjects: Vec<_> = chains.iter().map(|(c, _)| c.clone()).collect();
        let heads = store.chain_heads(&subjects).await?;
        for (contact, records) in chains {
            let Some(head) = heads.get(&contact) else {
                continue;
            };
            commit.push(Write::Audit {
                chain: ChainRead {
                    contact,
                    head: head.clone(),
                },
                records,
            });
        }
        match store.commit(commit).await? {
            Committed::Done(_) => {
                return Ok(ReportOutcome::Recorded {
                    step: step_id,
                    moved,
                    opt_out,
                })
            }
            Committed::Duplicate(_) => return Ok(ReportOutcome::Duplicate),
            Committed::Conflict(reason) => {
                info!(%reason, "the step moved under a delivery report; reading it again");
            }
        }
    }
    Err(PortError::Conflict(
        "delivery report: the step kept moving".to_owned(),
    ))
}
