//! Sends whose outcome is in doubt: a claim an invocation that died left
//! behind, or a carrier answer lost on the way back. The carrier is asked
//! (a status callback that named the attempt, or its message list); a text
//! it holds is recorded as sent, one it proves it does not hold may be
//! sent, and anything else ends as an unknown outcome: never a second
//! text. And Twilio's 21610, a carrier opt-out, recorded in the ledger.

use chrono::{DateTime, Utc};
use optline_episodes::StepFacts;
use optline_policy::{RuleOutcome, Verdict};
use optline_ports::{
    AuditHead, ChainRead, Commit, Committed, ConsentEvent, Contact, ContactId, EventId,
    NewAuditRecord, OutboundSms, Partition, PortError, SendHistoryEntry, SentLookup, Step,
    StepOutcome, StepStatus, Tally, Write, COMMIT_ATTEMPTS,
};
use tracing::{info, warn};

use crate::assess::render;
use crate::dispatch::{
    audit_record, finish_surely, Decided, Deps, DispatchError, Outcome, CLAIM_LEASE,
};

/// The head of a step's contact's chain as it is now.
pub(crate) async fn deps_head(
    deps: &Deps,
    step: &Step,
) -> Result<Option<AuditHead>, DispatchError> {
    Ok(deps
        .store
        .chain_heads(std::slice::from_ref(&step.contact_id))
        .await?
        .remove(&step.contact_id))
}

/// What asking the carrier about an interrupted send found.
#[derive(Debug)]
pub(crate) enum Recovered {
    /// The step ended: sent (the carrier holds the text) or of unknown
    /// outcome (nothing can prove either way).
    Ended(Outcome),
    /// The carrier holds no such text: it was never sent.
    NotSent,
}

/// Resolves a step whose claim an invocation that died left behind:
/// finished as sent when the carrier proves the text went out, free to be
/// sent when the carrier proves it did not, else ended as an unknown
/// outcome. Never a second text.
pub(crate) async fn recover(
    deps: &Deps,
    step: &Step,
    claimed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Recovered, DispatchError> {
    let read = StepFacts::read(deps.store.as_ref(), &[step], now).await?;
    let sms = match read.contacts.get(&step.contact_id) {
        Some(facts) => match render(step, deps, now).await? {
            Ok((_, body)) => Some(OutboundSms {
                to: facts.contact.phone.clone(),
                body,
                class: step.class,
                program: step.program.clone(),
                from: deps
                    .config
                    .program(Some(&step.program))
                    .and_then(|p| p.sender_for(facts.contact.phone.as_str()).from)
                    .map(str::to_owned),
                idempotency_key: step.id.as_str().to_owned(),
            }),
            Err(_) => None,
        },
        None => None,
    };
    match sms {
        Some(sms) => recover_with(deps, step, &sms, claimed_at, now).await,
        None => Ok(Recovered::Ended(end_unknown(deps, step, now).await?)),
    }
}

/// [`recover`] for the text as it was (or would have been) sent.
pub(crate) async fn recover_with(
    deps: &Deps,
    step: &Step,
    sms: &OutboundSms,
    claimed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Recovered, DispatchError> {
    // A status callback that named this attempt proves it went out.
    let attempt = optline_ports::attempt_key(step.id.as_str());
    let carrier_id = match deps.store.carrier_attempt(&attempt).await? {
        Some(id) => id,
        None => {
            let since = claimed_at.unwrap_or(now) - CLAIM_LEASE;
            match deps.sender.lookup(sms, since).await? {
                SentLookup::Found(receipt) => {
                    format!("{}:{}", receipt.carrier, receipt.message_id)
                }
                SentLookup::NotFound => return Ok(Recovered::NotSent),
                SentLookup::Unsupported => {
                    return Ok(Recovered::Ended(end_unknown(deps, step, now).await?))
                }
            }
        }
    };
    let outcome = StepOutcome {
        status: StepStatus::Sent,
        at: now,
        carrier_message_id: Some(carrier_id.clone()),
        reasons: vec!["dispatch.confirmed_by_carrier".to_owned()],
    };
    let rules = vec![RuleOutcome::new(
        "dispatch.confirmed_by_carrier",
        "1",
        Verdict::Pass,
        "the carrier holds the text an interrupted attempt sent; recorded, not sent again",
    )];
    finish_surely(
        deps,
        step,
        &outcome,
        audit_record(
            step,
            now,
            "send",
            rules,
            outcome.reasons.clone(),
            Decided {
                carrier_message_id: Some(&carrier_id),
                ..Decided::default()
            },
            None,
        ),
        None,
    )
    .await?;
    info!(step_id = %step.id, "an interrupted send was confirmed by the carrier");
    Ok(Recovered::Ended(Outcome::Sent(carrier_id)))
}

/// Ends a step whose send outcome nothing can prove: failed, with the
/// reason, and never sent again.
pub(crate) async fn end_unknown(
    deps: &Deps,
    step: &Step,
    now: DateTime<Utc>,
) -> Result<Outcome, DispatchError> {
    let reasons = vec!["dispatch.unknown_outcome".to_owned()];
    let rules = vec![RuleOutcome::new(
        "dispatch.unknown_outcome",
        "1",
        Verdict::Fail,
        "an attempt may have sent the text and the carrier cannot prove whether it did; not sent again",
    )];
    finish_surely(
        deps,
        step,
        &StepOutcome::ended(StepStatus::Failed, now, reasons.clone()),
        audit_record(
            step,
            now,
            "failed",
            rules,
            reasons,
            Decided::default(),
            None,
        ),
        None,
    )
    .await?;
    warn!(step_id = %step.id, "send outcome unknown; ended without a second text");
    Ok(Outcome::Failed("dispatch.unknown_outcome".to_owned()))
}

/// Twilio 21610 on a send: the carrier refused the text because the number
/// replied STOP at the carrier. The step's end, its failed-decision record,
/// the number's carrier revocation (phone-scoped, source `carrier`) and a
/// revoke record on the chain of every contact sharing the number: one
/// commit, conditional on the step still being claimed, so a crash leaves
/// either all of it or none (and the claim's lease brings the step back).
/// Gives the head of the step's contact's chain after it.
pub(crate) async fn end_with_carrier_opt_out(
    deps: &Deps,
    step: &Step,
    contact: &Contact,
    outcome: &StepOutcome,
    failed: NewAuditRecord,
    now: DateTime<Utc>,
) -> Result<Option<AuditHead>, DispatchError> {
    let event = ConsentEvent::carrier_revocation(
        EventId::parse(&format!("carrier-optout-{}", step.id))?,
        contact.phone.clone(),
        Some(contact.id.clone()),
        Some(step.program.clone()),
        "twilio",
        "21610",
        None,
        now,
    );
    let partition = Partition::Phone(contact.phone.clone());
    let store = deps.store.as_ref();
    let mut last = None;
    for attempt in 0..COMMIT_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(5))).await;
        }
        let result = async {
            let recorded = store.consent_event(&partition, &event.id).await?.is_some();
            let ledger = store.ledger(&partition).await?;
            let mut contacts = store.contacts_by_phone(&contact.phone).await?;
            contacts.push(step.contact_id.clone());
            contacts.sort();
            contacts.dedup();
            let heads = store.chain_heads(&contacts).await?;
            let mut commit = Commit::default();
            commit.push(Write::EndClaimedStep {
                step: step.id.clone(),
                outcome: outcome.clone(),
            });
            if let Some(tally) = Tally::step_end(step, outcome) {
                commit.push(Write::Tally(tally));
            }
            if !recorded {
                commit.push(Write::Consent {
                    event: event.clone(),
                    disclosure: None,
                    ledger: ledger.read,
                });
                commit.attribute_opt_outs(Some(&SendHistoryEntry::for_step(step, now)));
            }
            for id in &contacts {
                let mut records = Vec::with_capacity(2);
                if *id == step.contact_id {
                    records.push(failed.clone());
                }
                if !recorded {
                    records.push(carrier_revoke_record(&event, id, step, now));
                }
                if records.is_empty() {
                    continue;
                }
                commit.push(Write::Audit {
                    chain: ChainRead {
                        contact: id.clone(),
                        head: heads.get(id).cloned().unwrap_or_else(AuditHead::genesis),
                    },
                    records,
                });
            }
            store.commit(commit).await
        }
        .await;
        match result {
            Ok(Committed::Done(records)) => {
                info!(step_id = %step.id, "carrier opt-out recorded with the step's end");
                return Ok(records
                    .iter()
                    .rev()
                    .find(|r| r.content.contact_id == step.contact_id)
                    .map(|r| AuditHead {
                        seq: r.seq,
                        hash: r.hash.clone(),
                    }));
            }
            Ok(Committed::Duplicate(_) | Committed::Conflict(_)) => {}
            Err(e) => {
                warn!(error = %e, attempt, "recording a carrier opt-out failed");
                last = Some(e);
            }
        }
        // The step no longer claimed: this commit landed and its answer was
        // lost (the commit is all or nothing), or another run ended it.
        match store.step(&step.id).await {
            Ok(Some(current)) if current.status != StepStatus::Sending => {
                return deps_head(deps, step).await;
            }
            Ok(None) => return Ok(None),
            _ => {}
        }
    }
    Err(DispatchError::Port(last.unwrap_or_else(|| {
        PortError::Conflict("carrier opt-out: the ledger kept moving".to_owned())
    })))
}

/// The revoke record a carrier opt-out leaves on a contact's chain.
fn carrier_revoke_record(
    event: &ConsentEvent,
    contact: &ContactId,
    step: &Step,
    now: DateTime<Utc>,
) -> NewAuditRecord {
    NewAuditRecord {
        evidence: event.evidence(),
        contact_id: contact.clone(),
        at: now,
        kind: "consent".to_owned(),
        action: "revoke".to_owned(),
        step_id: Some(step.id.as_str().to_owned()),
        rules: Vec::new(),
        reasons: vec!["carrier.21610".to_owned()],
        legal_basis: None,
        consent_event_id: Some(event.id.as_str().to_owned()),
        template: None,
        carrier_message_id: None,
        arm: None,
        detail: Some("carrier reports the number opted out".to_owned()),
    }
}
