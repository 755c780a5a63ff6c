//! What a reply writes: one commit (and, for a number shared by more
//! contacts than one transaction holds, follow-up commits keyed by the same
//! message) and the answer.

use chrono::{DateTime, Utc};
use optline_config::ProgramConfig;
use optline_policy::classify::{Classification, Intent, Tier};
use optline_policy::consent::{ConsentAction, ConsentKind, ConsentScope, ConsentStanding};
use optline_ports::{
    CaptureChannel, Commit, ConsentEvent, ContactId, EpisodeOutcome, EventId, Evidence, LaneText,
    Marker, NewAuditRecord, OutboxEvent, PortError, ReviewItem, SendHistoryEntry, StepExpect,
    StepId, StepStatus, Tally, Write,
};

use crate::read::ReplyFacts;
use crate::texts::{program_text, rendered};
use crate::{program_values, AnswerPath, InboundSms, Replies, CONFIRMATION_WINDOW};

/// Chains appended to in one transaction; a number shared by more contacts
/// has the rest appended in follow-up commits keyed by the same message.
const CHAINS_PER_COMMIT: usize = 24;

/// A reply's writes and answer.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) intent: String,
    pub(crate) commit: Commit,
    pub(crate) follow_ups: Vec<Commit>,
    pub(crate) answer: Option<String>,
    pub(crate) lane: Option<String>,
}

/// The audit records each contact's chain gets.
struct Records(Vec<(ContactId, Vec<NewAuditRecord>)>);

impl Records {
    fn new(contacts: &[ContactId]) -> Self {
        Self(contacts.iter().map(|c| (c.clone(), Vec::new())).collect())
    }

    /// One record for every contact, built by `make`.
    fn each(&mut self, make: impl Fn(&ContactId) -> NewAuditRecord) {
        for (contact, records) in &mut self.0 {
            records.push(make(contact));
        }
    }

    fn one(&mut self, contact: &ContactId, record: NewAuditRecord) {
        if let Some((_, records)) = self.0.iter_mut().find(|(c, _)| c == contact) {
            records.push(record);
        }
    }
}

fn intent_name(intent: Intent) -> &'static str {
    match intent {
        Intent::OptOut => "opt_out",
        Intent::Help => "help",
        Intent::OptIn => "opt_in",
        Intent::Confirm => "confirm",
        Intent::Reschedule => "reschedule",
        Intent::Other => "other",
    }
}

pub(crate) async fn plan(
    replies: Replies<'_>,
    sms: &InboundSms,
    program: &ProgramConfig,
    facts: &ReplyFacts,
    path: AnswerPath,
    now: DateTime<Utc>,
) -> Result<Plan, PortError> {
    let classification = &facts.classification;
    let mut commit = Commit::for_trigger(Marker {
        key: sms.marker_key(),
        at: now,
        answer: None,
    });
    let mut records = Records::new(&facts.contacts);
    let values = program_values(program);
    let mut answer = None;
    let intent = match classification.intent {
        Intent::OptIn if !matches!(facts.standing, ConsentStanding::Revoked { .. }) => {
            Intent::Other
        }
        other => other,
    };
    match intent {
        Intent::OptOut => {
            // The revocation, in the same commit as everything else: it
            // is never lost and never half-written.
            let event = sms_event(sms, program, ConsentAction::Revoke, "sms-optout", now, None)?;
            commit.push(Write::Consent {
                event: event.clone(),
                disclosure: None,
                ledger: facts.phone.read,
            });
            commit.announce_contacts(&event.id, &facts.contacts);
            let detail = if classification.tier == Tier::Doubtful {
                commit.push(Write::Review(ReviewItem {
                    id: format!("review-{}", sms.message_sid),
                    kind: "doubtful_revocation".to_owned(),
                    at: now,
                    phone_masked: sms.from.masked(),
                    contact_ids: facts.contacts.clone(),
                    body: sms.body.clone(),
                    rule: classification.rule.clone(),
                    action_taken:
                        "revocation recorded; messages suppressed until a person reviews it"
                            .to_owned(),
                    assigned_to: None,
                    resolution: None,
                }));
                "doubtful revocation: suppressed and queued for human review"
            } else {
                "revocation by sms reply"
            };
            records.each(|c| consent_record(c, now, "revoke", &event, classification, detail));
            // The one confirmation, exactly once per revocation. After a
            // doubtful revocation it also asks about the scope ("did you
            // mean only the appointment?"), as 64.1200(a)(12) allows.
            let text = if classification.tier == Tier::Doubtful {
                program_text(
                    replies,
                    "program_scope_confirmation",
                    &values,
                    now,
                    program.scope_confirmation_text(),
                )
                .await?
            } else {
                program_text(
                    replies,
                    "program_stop_confirmation",
                    &values,
                    now,
                    program.stop_confirmation_text(),
                )
                .await?
            };
            let how = owe(
                &mut commit,
                &mut answer,
                sms,
                program,
                facts,
                path,
                text,
                "opt_out_confirmation",
                now,
            );
            records.each(|c| {
                let mut record = reply_record(c, now, classification, Some(&event), how);
                record.action = "opt_out_confirmation".to_owned();
                record.carrier_message_id = event.evidence.carrier_message_id.clone();
                record
            });
        }
        Intent::OptIn => {
            let ConsentStanding::Revoked { event_id } = &facts.standing else {
                return Err(PortError::Invalid(
                    "an opt-in without a revocation".to_owned(),
                ));
            };
            let reverses = EventId::parse(event_id)?;
            let event = sms_event(
                sms,
                program,
                ConsentAction::Grant,
                "sms-optin",
                now,
                Some(reverses),
            )?;
            commit.push(Write::Consent {
                event: event.clone(),
                disclosure: None,
                ledger: facts.phone.read,
            });
            commit.announce_contacts(&event.id, &facts.contacts);
            records.each(|c| {
                consent_record(
                    c,
                    now,
                    "grant",
                    &event,
                    classification,
                    "re-opt-in by sms reply restores what the revocation took",
                )
            });
            let text = program_text(
                replies,
                "program_opt_in_confirmation",
                &values,
                now,
                program.opt_in_confirmation_text(),
            )
            .await?;
            owe(
                &mut commit,
                &mut answer,
                sms,
                program,
                facts,
                path,
                text,
                "opt_in_confirmation",
                now,
            );
        }
        Intent::Help => {
            let text =
                program_text(replies, "program_help", &values, now, program.help_text()).await?;
            let how = owe(
                &mut commit,
                &mut answer,
                sms,
                program,
                facts,
                path,
                text,
                "help",
                now,
            );
            records.each(|c| reply_record(c, now, classification, None, how));
        }
        Intent::Confirm | Intent::Reschedule => match &facts.latest {
            Some((contact, sent)) => {
                answer = two_way(
                    replies,
                    &mut commit,
                    &mut records,
                    sms,
                    program,
                    contact,
                    sent,
                    intent == Intent::Confirm,
                    classification,
                    now,
                )
                .await?;
                if let Some(text) = answer.take() {
                    owe(
                        &mut commit,
                        &mut answer,
                        sms,
                        program,
                        facts,
                        path,
                        text,
                        "acknowledgement",
                        now,
                    );
                }
            }
            // A code with nothing to answer: only recorded.
            None => records.each(|c| reply_record(c, now, classification, None, "reply recorded")),
        },
        Intent::Other => {
            // A reply to a text that asked for a code, which is no code: a
            // person reads it.
            if facts.latest.is_some() && facts.has_grammar {
                commit.push(Write::Review(ReviewItem {
                    id: format!("review-{}", sms.message_sid),
                    kind: "ambiguous_reply".to_owned(),
                    at: now,
                    phone_masked: sms.from.masked(),
                    contact_ids: facts.contacts.clone(),
                    body: sms.body.clone(),
                    rule: classification.rule.clone(),
                    action_taken: "no action; waiting for a person".to_owned(),
                    assigned_to: None,
                    resolution: None,
                }));
            }
            records.each(|c| reply_record(c, now, classification, None, "reply recorded"));
        }
    }
    // The reply counted by intent, and an opt-out against the text that
    // preceded it.
    let latest = facts.latest.as_ref().map(|(_, sent)| sent);
    let mut reply = Tally::reply(
        &sms.lane_key(),
        intent_name(intent),
        latest,
        &program.id,
        now,
    );
    if intent == Intent::OptOut && answer.is_some() {
        // Confirmed in the webhook's own answer (TwiML), at once.
        reply
            .add("lane.opt_out_confirmation.answered", 1)
            .observe(optline_ports::metric::OPT_OUT_CONFIRMATION, 0);
    }
    commit.push(Write::Tally(reply));
    if let Some(answered) = latest.and_then(|sent| Tally::responded(sent, now)) {
        commit.push(Write::Tally(answered));
    }
    commit.attribute_opt_outs(latest);
    let follow_ups = place_records(&mut commit, records, facts, sms, now);
    Ok(Plan {
        intent: intent_name(intent).to_owned(),
        lane: commit
            .writes
            .iter()
            .any(|w| matches!(w, Write::Lane(_)))
            .then(|| sms.lane_key()),
        commit,
        follow_ups,
        answer,
    })
}

/// Owes `text` to the person: as the webhook's answer, or as a lane text
/// committed now and sent after the commit. Says how, for the record.
#[allow(clippy::too_many_arguments, reason = "one owed text's whole context")]
fn owe(
    commit: &mut Commit,
    answer: &mut Option<String>,
    sms: &InboundSms,
    program: &ProgramConfig,
    facts: &ReplyFacts,
    path: AnswerPath,
    text: String,
    purpose: &str,
    now: DateTime<Utc>,
) -> &'static str {
    match path {
        AnswerPath::Webhook => {
            *answer = Some(text);
            "answered in the webhook's answer (within the 5-minute presumption)"
        }
        AnswerPath::Lane => {
            commit.push(Write::Lane(LaneText {
                key: sms.lane_key(),
                to: sms.from.clone(),
                body: text,
                program: program.id.clone(),
                purpose: purpose.to_owned(),
                contacts: facts.contacts.clone(),
                at: now,
                not_after: now + CONFIRMATION_WINDOW,
            }));
            "owed through the compliance lane (sent within five minutes or not at all)"
        }
    }
}

/// Puts each contact's records in the commit (after its head as read);
/// chains past one transaction's share go in follow-up commits keyed by
/// the same message.
fn place_records(
    commit: &mut Commit,
    records: Records,
    facts: &ReplyFacts,
    sms: &InboundSms,
    now: DateTime<Utc>,
) -> Vec<Commit> {
    let mut follow_ups: Vec<Commit> = Vec::new();
    let with_records: Vec<(ContactId, Vec<NewAuditRecord>)> = records
        .0
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .collect();
    for (index, (contact, list)) in with_records.into_iter().enumerate() {
        let Some(chain) = facts.facts.get(&contact).map(|f| f.chain()) else {
            continue;
        };
        let write = Write::Audit {
            chain,
            records: list,
        };
        let part = index / CHAINS_PER_COMMIT;
        if part == 0 {
            commit.push(write);
        } else {
            if follow_ups.len() < part {
                follow_ups.push(Commit::for_trigger(Marker {
                    key: format!("{}#part{part}", sms.marker_key()),
                    at: now,
                    answer: None,
                }));
            }
            if let Some(last) = follow_ups.last_mut() {
                last.push(write);
            }
        }
    }
    follow_ups
}

/// A confirm or reschedule reply to the latest text: the episode's outcome
/// (once) and its outbox event, the non-responder follow-up's cancellation,
/// a staff callback for a reschedule, the record; the approved
/// acknowledgement is the answer.
#[allow(clippy::too_many_arguments, reason = "one reply's whole context")]
async fn two_way(
    replies: Replies<'_>,
    commit: &mut Commit,
    records: &mut Records,
    sms: &InboundSms,
    program: &ProgramConfig,
    contact: &ContactId,
    sent: &SendHistoryEntry,
    confirmed: bool,
    classification: &Classification,
    now: DateTime<Utc>,
) -> Result<Option<String>, PortError> {
    let store = replies.store;
    let kind = if confirmed {
        "confirmed"
    } else {
        "reschedule_requested"
    };
    let recorded = store
        .episode_outcomes(std::slice::from_ref(&sent.subject))
        .await?;
    let first = !recorded
        .get(&sent.subject)
        .is_some_and(|o| o.iter().any(|o| o.kind == kind));
    if first {
        let outcome = EpisodeOutcome {
            subject: sent.subject.clone(),
            kind: kind.to_owned(),
            at: now,
            contact_id: contact.clone(),
            step_id: sent.step_id.clone(),
            source: format!("{}:{}", sms.carrier, sms.message_sid),
            after_first_text_seconds: Some((now - sent.at).num_seconds()),
        };
        commit.push(Write::Outbox(OutboxEvent::outcome(&outcome)));
        commit.push(Write::Tally(Tally::outcome(
            &outcome,
            Some(sent),
            &sent.program,
        )));
        commit.push(Write::Outcome(outcome));
    }
    // The follow-up for non-responders is moot now.
    let follow_up = StepId::parse(&format!("{}-followup", sent.subject)).ok();
    let ids: Vec<StepId> = follow_up
        .iter()
        .cloned()
        .chain(sent.step_id.iter().cloned())
        .collect();
    let steps = store.steps(&ids).await?;
    if let Some(step) = follow_up.as_ref().and_then(|id| steps.get(id)) {
        if matches!(step.status, StepStatus::Pending | StepStatus::Queued) {
            commit.push(Write::Step {
                step: optline_ports::Step {
                    status: StepStatus::Cancelled,
                    ..step.clone()
                },
                expect: StepExpect::In(vec![step.status]),
            });
        }
    }
    if !confirmed {
        commit.push(Write::Review(ReviewItem {
            id: format!("callback-{}", sms.message_sid),
            kind: "callback".to_owned(),
            at: now,
            phone_masked: sms.from.masked(),
            contact_ids: vec![contact.clone()],
            body: sms.body.clone(),
            rule: classification.rule.clone(),
            action_taken: format!(
                "reschedule requested for {}; call the patient back",
                sent.subject
            ),
            assigned_to: None,
            resolution: None,
        }));
    }
    records.one(
        contact,
        reply_record(
            contact,
            now,
            classification,
            None,
            &format!("{kind} for {}", sent.subject),
        ),
    );
    tracing::info!(outcome = kind, first, "episode outcome decided");
    // The approved acknowledgement, with the appointment's date and time.
    let ack_id = if confirmed {
        "appointment_confirmed"
    } else {
        "appointment_reschedule_requested"
    };
    let mut values = program_values(program);
    if let Some(step) = sent.step_id.as_ref().and_then(|id| steps.get(id)) {
        values.extend(step.variables.clone());
    }
    rendered(replies, ack_id, &values, now).await
}

fn sms_event(
    sms: &InboundSms,
    program: &ProgramConfig,
    action: ConsentAction,
    prefix: &str,
    now: DateTime<Utc>,
    reverses: Option<EventId>,
) -> Result<ConsentEvent, PortError> {
    Ok(ConsentEvent {
        id: EventId::parse(&format!("{prefix}-{}", sms.message_sid))?,
        contact_id: None,
        phone: sms.from.clone(),
        action,
        scope: ConsentScope::Phone,
        program: Some(program.id.clone()),
        categories: Vec::new(),
        kind: ConsentKind::Express,
        at: now,
        recorded_at: now,
        channel: CaptureChannel::SmsKeyword,
        actor: "recipient".to_owned(),
        source_system: Some(sms.carrier.to_owned()),
        source_record_id: Some(sms.message_sid.clone()),
        disclosure_sha256: None,
        disclosure_version: None,
        evidence: Evidence {
            carrier_message_id: Some(sms.message_sid.clone()),
            ..Evidence::default()
        },
        reverses,
        guardian: false,
        expires_at: None,
    })
}

fn reply_record(
    contact: &ContactId,
    now: DateTime<Utc>,
    classification: &Classification,
    event: Option<&ConsentEvent>,
    detail: &str,
) -> NewAuditRecord {
    NewAuditRecord {
        evidence: Default::default(),
        contact_id: contact.clone(),
        at: now,
        kind: "reply".to_owned(),
        action: format!("{:?}", classification.intent).to_lowercase(),
        step_id: None,
        rules: Vec::new(),
        reasons: vec![classification.rule.clone()],
        legal_basis: None,
        consent_event_id: event.map(|e| e.id.as_str().to_owned()),
        template: None,
        carrier_message_id: None,
        arm: None,
        detail: Some(format!("{detail} (tier {:?})", classification.tier).to_lowercase()),
    }
}

fn consent_record(
    contact: &ContactId,
    now: DateTime<Utc>,
    action: &str,
    event: &ConsentEvent,
    classification: &Classification,
    detail: &str,
) -> NewAuditRecord {
    let mut record = reply_record(contact, now, classification, Some(event), detail);
    record.evidence = event.evidence();
    record.kind = "consent".to_owned();
    record.action = action.to_owned();
    record.carrier_message_id = event.evidence.carrier_message_id.clone();
    record
}
