//! The compliance lane: texts owed to a person whatever their consent says
//! (the one opt-out confirmation, a HELP answer, an acknowledgement),
//! committed with the reply that owes them and sent afterwards.
//!
//! Each owed text is claimed once (pending -> sending) before the carrier
//! is called, so a redelivered message never sends it twice; a claim whose
//! invocation died is never sent again (its outcome is unknown). It goes out
//! only until its deadline: four minutes after an opt-out, inside the five
//! within which a confirmation is presumed compliant (47 CFR
//! 64.1200(a)(12)), leaving the carrier a minute to deliver it. A late
//! redelivery records why nothing was sent. Every ending is one commit with
//! an audit record on each contact's chain.
//!
//! Owed texts have priority on the number: scheduled texts pace at the rate
//! less the lane's reserve ([`optline_config::ProgramConfig::lane_reserve`]),
//! while the lane may take any slot up to the full rate, one per message
//! part. On a number saturated even so (a STOP storm), the text waits for a
//! slot a few seconds, then its trigger is retried until the deadline.

use chrono::{DateTime, Utc};
use optline_config::{Config, SendingIdentity};
use optline_ports::{
    ChainRead, Commit, Committed, ContactId, LaneStatus, LaneText, NewAuditRecord, OutboundSms,
    Pace, PortError, SmsSender, Store, Tally, Write, COMMIT_ATTEMPTS,
};
use tracing::{info, warn};

/// How long a claimed lane text may be in flight before its invocation is
/// taken for dead.
pub const LANE_CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(2);

/// The longest an owed text waits for a slot on a saturated number before
/// its trigger is handed back to be retried (until its deadline).
pub const LANE_PACE_WAIT: std::time::Duration = std::time::Duration::from_secs(8);

/// What became of an owed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneOutcome {
    /// Nothing is owed under this key.
    NothingOwed,
    /// Sent now; the carrier's message id.
    Sent(String),
    /// Already ended (sent, skipped, unknown) by an earlier delivery.
    AlreadyEnded(LaneStatus),
    /// Its deadline passed before it could go out: not sent, recorded.
    Skipped,
    /// A claim whose invocation died, or a carrier answer that proves
    /// nothing: never sent again, recorded.
    Unknown,
    /// The carrier refused it for good: recorded.
    Refused(String),
}

/// Why an owed text should be tried again later.
#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    /// The carrier did not take it (throttling); retry.
    #[error("the carrier did not take the text ({0}); retry")]
    NotTaken(String),
    /// Another invocation is sending it.
    #[error("another invocation is sending the text")]
    InFlight,
    /// Storage failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Sends the text owed under `key`, once, if it is still owed and on time,
/// in the compliance lane's slots on the program's number.
pub async fn send_owed(
    store: &dyn Store,
    sender: &dyn SmsSender,
    config: &Config,
    key: &str,
    now: DateTime<Utc>,
) -> Result<LaneOutcome, LaneError> {
    let Some((text, status)) = store.lane_text(key).await? else {
        return Ok(LaneOutcome::NothingOwed);
    };
    match status {
        LaneStatus::Pending => {}
        LaneStatus::Sending => {
            // Claimed by an invocation that may still be sending.
            let claimed_long_ago = now - text.at > LANE_CLAIM_LEASE;
            if !claimed_long_ago {
                return Err(LaneError::InFlight);
            }
            end(
                store,
                &text,
                LaneStatus::Unknown,
                None,
                true,
                "a previous attempt died mid-send; not sent again",
                now,
            )
            .await?;
            return Ok(LaneOutcome::Unknown);
        }
        ended => return Ok(LaneOutcome::AlreadyEnded(ended)),
    }
    if now > text.not_after {
        end(
            store,
            &text,
            LaneStatus::Skipped,
            None,
            false,
            "not sent: its deadline passed before it could go out",
            now,
        )
        .await?;
        warn!(purpose = %text.purpose, "an owed compliance text missed its deadline; skipped");
        return Ok(LaneOutcome::Skipped);
    }
    // The contact's own number of the pool: the one they wrote to.
    let identity = config
        .program(Some(&text.program))
        .map(|program| program.sender_for(text.to.as_str()));
    if let Some(identity) = identity {
        let parts = optline_policy::segments::count(&text.body).segments;
        if !lane_slots(store, identity, parts, text.not_after).await? {
            return Err(LaneError::NotTaken("the number's rate is full".to_owned()));
        }
    }
    if !store.lane_claim(key, now).await? {
        return Err(LaneError::InFlight);
    }
    let sms = OutboundSms {
        to: text.to.clone(),
        body: text.body.clone(),
        class: optline_policy::MessageClass::Transactional,
        program: text.program.clone(),
        from: identity.and_then(|i| i.from).map(str::to_owned),
        idempotency_key: format!("lane-{key}"),
    };
    match sender.send(&sms).await {
        Ok(receipt) => {
            let carrier_id = format!("{}:{}", receipt.carrier, receipt.message_id);
            end(
                store,
                &text,
                LaneStatus::Sent,
                Some(carrier_id.clone()),
                true,
                "sent through the compliance lane",
                now,
            )
            .await?;
            info!(purpose = %text.purpose, "compliance text sent");
            Ok(LaneOutcome::Sent(carrier_id))
        }
        Err(failure) if failure.retryable() => {
            store.lane_release(key).await?;
            Err(LaneError::NotTaken(failure.code))
        }
        Err(failure) => {
            let (status, outcome, detail) = match failure.kind {
                optline_ports::FailureKind::Unknown => (
                    LaneStatus::Unknown,
                    LaneOutcome::Unknown,
                    "the carrier's answer was lost; not sent again",
                ),
                _ => (
                    LaneStatus::Refused,
                    LaneOutcome::Refused(failure.code.clone()),
                    "the carrier refused it",
                ),
            };
            end(store, &text, status, None, true, detail, now).await?;
            Ok(outcome)
        }
    }
}

/// Takes the text's slots (one per part) at the program's full rate, which
/// includes the reserve scheduled texts leave free; waits for the next
/// second while that stays within [`LANE_PACE_WAIT`] and the deadline.
async fn lane_slots(
    store: &dyn Store,
    sender: SendingIdentity<'_>,
    parts: usize,
    not_after: DateTime<Utc>,
) -> Result<bool, PortError> {
    let rate = sender.rate.max(1);
    let parts = u32::try_from(parts).unwrap_or(u32::MAX).clamp(1, rate);
    let started = std::time::Instant::now();
    loop {
        match store.acquire(sender.key, rate, parts, parts).await? {
            Pace::Granted { .. } => return Ok(true),
            Pace::Full { wait }
                if started.elapsed() + wait <= LANE_PACE_WAIT
                    && Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
                        < not_after =>
            {
                tokio::time::sleep(wait).await;
            }
            Pace::Full { .. } => return Ok(false),
        }
    }
}

/// Ends an owed text with a record on each contact's chain, in one commit.
async fn end(
    store: &dyn Store,
    text: &LaneText,
    status: LaneStatus,
    carrier_message_id: Option<String>,
    claimed: bool,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), PortError> {
    let mut last = None;
    for attempt in 0..COMMIT_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5))).await;
        }
        let heads = match store.chain_heads(&text.contacts).await {
            Ok(heads) => heads,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let mut commit = Commit::default();
        commit.push(Write::LaneEnd {
            key: text.key.clone(),
            status,
            carrier_message_id: carrier_message_id.clone(),
            claimed,
        });
        commit.push(Write::Tally(Tally::lane(text, status, now)));
        for contact in &text.contacts {
            let Some(head) = heads.get(contact) else {
                continue;
            };
            commit.push(Write::Audit {
                chain: ChainRead {
                    contact: contact.clone(),
                    head: head.clone(),
                },
                records: vec![lane_record(
                    contact,
                    text,
                    status,
                    carrier_message_id.as_deref(),
                    detail,
                    now,
                )],
            });
        }
        // Once the carrier answered, its record must land: a failed commit
        // is tried again.
        let committed = match store.commit(commit).await {
            Ok(committed) => committed,
            Err(e) => {
                last = Some(e);
                Committed::Conflict("the commit failed".to_owned())
            }
        };
        match committed {
            Committed::Done(_) | Committed::Duplicate(_) => return Ok(()),
            Committed::Conflict(reason) => {
                // A chain moved, or the text was ended meanwhile.
                if let Ok(Some((_, current))) = store.lane_text(&text.key).await {
                    let expected = if claimed {
                        LaneStatus::Sending
                    } else {
                        LaneStatus::Pending
                    };
                    if current != expected {
                        info!(%reason, "the lane text was ended meanwhile");
                        return Ok(());
                    }
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| PortError::Conflict("lane text: the chains kept moving".to_owned())))
}

fn lane_record(
    contact: &ContactId,
    text: &LaneText,
    status: LaneStatus,
    carrier_message_id: Option<&str>,
    detail: &str,
    now: DateTime<Utc>,
) -> NewAuditRecord {
    NewAuditRecord {
        evidence: Default::default(),
        contact_id: contact.clone(),
        at: now,
        kind: "lane".to_owned(),
        action: format!("{}_{}", text.purpose, status.as_str()),
        step_id: None,
        rules: Vec::new(),
        reasons: match status {
            LaneStatus::Skipped => vec!["lane.deadline".to_owned()],
            LaneStatus::Unknown => vec!["lane.unknown_outcome".to_owned()],
            _ => Vec::new(),
        },
        legal_basis: None,
        consent_event_id: None,
        template: None,
        carrier_message_id: carrier_message_id.map(str::to_owned),
        arm: None,
        detail: Some(detail.to_owned()),
    }
}
