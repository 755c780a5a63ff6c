//! Dispatch: for each batch of queued steps, read their steps, their
//! contacts' decision facts and their episodes' answers at once. For each
//! step: decide again with the latest consent, caps, window and expiry,
//! render the pinned template version, claim the step (a transaction that
//! also proves the facts have not moved since the read, so a STOP committed
//! meanwhile is seen, and a redelivered message never sends twice), send,
//! and record the outcome and its audit record in one transaction.
//!
//! A claim left by an invocation that died mid-send is never simply sent
//! again: the carrier is asked whether the text went out (Twilio's message
//! list, or a status callback that named the attempt); if it did, the step
//! is finished as sent; if nothing proves it, the step ends as an unknown
//! outcome. Only a carrier refusal that proves nothing was sent releases a
//! claim for a retry.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use optline_config::Config;
use optline_episodes::StepFacts;
use optline_outcomes::experiments::ArmChoice;
use optline_policy::decision::Decision;
use optline_policy::template::lint::LintConfig;
use optline_policy::RuleOutcome;
use optline_ports::{
    AuditHead, AuditRecord, CheckedClaim, Claim, ContactFacts, ContactId, FailureKind, FinishBase,
    NewAuditRecord, OutboundSms, PortError, SendHistoryEntry, SendPacer, SmsSender, Step, StepId,
    StepOutcome, StepSnapshot, StepStatus, Store, Unclaimed,
};
use tracing::{info, warn, Instrument};

use crate::assess::{assess_with, warm_caches, Assessment};
use crate::pacing::{carrier_day, pace};
use crate::recovery::{deps_head, end_with_carrier_opt_out, recover, recover_with, Recovered};

/// How long a step waits when no next allowed time is known (no zone known).
pub const UNKNOWN_WINDOW_RETRY: Duration = Duration::hours(1);

/// A claim older than this belongs to an invocation that died (the function
/// times out after 30 s; SQS hides a message for 180 s).
pub const CLAIM_LEASE: Duration = Duration::minutes(5);

/// What dispatch needs, built once per cold start.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// The carriers.
    pub sender: Arc<dyn SmsSender>,
    /// Configuration.
    pub config: Arc<Config>,
    /// Lint lists for the rendered text.
    pub lint: Arc<LintConfig>,
    /// The per-sender send rate shared across invocations.
    pub pacer: Arc<dyn SendPacer>,
    /// What a warm container keeps between messages: sendable template
    /// versions and send slots already taken for the current second.
    pub warm: Arc<Warm>,
}

/// State a warm container keeps between messages and batches.
#[derive(Debug, Default)]
pub struct Warm {
    /// Sendable template versions.
    pub templates: optline_library::TemplateCache,
    /// Running experiments.
    pub experiments: optline_outcomes::experiments::ExperimentCache,
    /// Template versions paused for an opt-out spike.
    pub pauses: optline_outcomes::pauses::PauseCache,
    /// Send slots taken but not used yet, by sender: (epoch second, count).
    pub(crate) slots: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
    /// One taker of slots at a time: the texts of a batch, handled
    /// concurrently, share one counter update per ten rather than each
    /// making its own.
    pub(crate) taking: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// What happened to one queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent; carrier message id.
    Sent(String),
    /// Suppressed with reasons.
    Suppressed(Vec<String>),
    /// Put back in the due index until the given time.
    Deferred(DateTime<Utc>),
    /// Nothing to do (already handled, or a claim in flight).
    Skipped(&'static str),
    /// Carrier refused permanently.
    Failed(String),
}

/// Errors that make SQS redeliver the message.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// Storage failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The carrier failed in a way worth retrying.
    #[error("retryable carrier failure: {0}")]
    Carrier(String),
    /// Another invocation holds a fresh claim on the step.
    #[error("step is being sent by another invocation")]
    InFlight,
    /// The sender's rate stayed full for the whole wait.
    #[error("the sender's rate is full; retry later")]
    Paced,
}

/// What dispatch reads for a whole SQS batch before it handles any message:
/// the steps as they stood, the facts of their contacts and the answers of
/// their episodes. Each message then costs no reads of its own; the claim
/// proves that nothing it relied on moved meanwhile.
#[derive(Debug, Default)]
struct BatchFacts {
    steps: HashMap<StepId, StepSnapshot>,
    facts: StepFacts,
}

impl BatchFacts {
    /// Three reads for up to 50 steps (four when follow-ups for
    /// non-responders are among them).
    async fn read(
        store: &dyn Store,
        ids: &[StepId],
        now: DateTime<Utc>,
    ) -> Result<Self, PortError> {
        let steps = store.step_snapshots(ids).await?;
        let queued: Vec<&Step> = steps
            .values()
            .map(|s| &s.step)
            .filter(|s| s.status == StepStatus::Queued)
            .collect();
        let facts = StepFacts::read(store, &queued, now).await?;
        Ok(Self { steps, facts })
    }
}

/// Steps of one batch in flight at once (one per contact; a contact's own
/// steps go one after the other).
pub const BATCH_CONCURRENCY: usize = 10;

/// Dispatches the steps of one batch on one read of the batch's steps,
/// facts and answers; one result per id, in order. Contacts are handled
/// concurrently (at most [`BATCH_CONCURRENCY`]); one contact's steps go in
/// order, each building on the audit head and recent sends the previous
/// one left, with the same claims and the same calls per text as one at a
/// time.
pub async fn dispatch_steps(
    ids: &[StepId],
    deps: &Deps,
    now: DateTime<Utc>,
) -> Vec<Result<Outcome, DispatchError>> {
    use futures_util::StreamExt;

    let mut unique: Vec<StepId> = ids.to_vec();
    unique.sort();
    unique.dedup();
    // One read for the batch; if it fails, each step reads for itself.
    let batch = match BatchFacts::read(deps.store.as_ref(), &unique, now).await {
        Ok(batch) => Some(batch),
        Err(e) => {
            warn!(error = %e, "batch read failed; each message reads its own facts");
            None
        }
    };
    if let Some(batch) = &batch {
        warm_caches(deps, batch.steps.values().map(|s| &s.step), now).await;
    }
    let groups = by_contact(ids, batch);
    let mut done: Vec<(usize, Result<Outcome, DispatchError>)> = futures_util::stream::iter(groups)
        .map(|(positions, mut part)| async move {
            let mut results = Vec::with_capacity(positions.len());
            for position in positions {
                let Some(step_id) = ids.get(position) else {
                    continue;
                };
                let span = tracing::info_span!("dispatch_step", step_id = %step_id);
                let result = async {
                    match part.as_mut() {
                        Some(part) => dispatch_read(step_id, part, deps, now).await,
                        None => dispatch_step(step_id, deps, now).await,
                    }
                }
                .instrument(span)
                .await;
                results.push((position, result));
            }
            results
        })
        .buffer_unordered(BATCH_CONCURRENCY)
        .flat_map(futures_util::stream::iter)
        .collect()
        .await;
    done.sort_by_key(|(position, _)| *position);
    done.into_iter().map(|(_, result)| result).collect()
}

/// The batch's messages (by position) grouped by contact, each group with
/// its share of what the batch read. A message whose step was not read
/// (missing, or the read failed) is a group of its own and reads for
/// itself.
fn by_contact(ids: &[StepId], batch: Option<BatchFacts>) -> Vec<(Vec<usize>, Option<BatchFacts>)> {
    let Some(mut batch) = batch else {
        return (0..ids.len()).map(|i| (vec![i], None)).collect();
    };
    let mut groups: Vec<(Vec<usize>, Option<BatchFacts>)> = Vec::new();
    let mut index: HashMap<ContactId, usize> = HashMap::new();
    for (position, id) in ids.iter().enumerate() {
        let Some(snapshot) = batch.steps.get(id).cloned() else {
            groups.push((vec![position], Some(BatchFacts::default())));
            continue;
        };
        let contact = snapshot.step.contact_id.clone();
        let group = match index.get(&contact) {
            Some(group) => *group,
            None => {
                let mut part = BatchFacts::default();
                if let Some(facts) = batch.facts.contacts.remove(&contact) {
                    part.facts.contacts.insert(contact.clone(), facts);
                }
                part.facts.answers = batch.facts.answers.clone();
                index.insert(contact, groups.len());
                groups.push((Vec::new(), Some(part)));
                groups.len() - 1
            }
        };
        if let Some((positions, Some(part))) = groups.get_mut(group) {
            positions.push(position);
            // The same step twice in a batch: both see it as read; the
            // second finds it moved and goes the long way, as before.
            part.steps.entry(id.clone()).or_insert(snapshot);
        }
    }
    groups
}

/// The name of an outcome, for logs and metrics.
pub fn outcome_kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Sent(_) => "sent",
        Outcome::Suppressed(_) => "suppressed",
        Outcome::Deferred(_) => "deferred",
        Outcome::Skipped(_) => "skipped",
        Outcome::Failed(_) => "failed",
    }
}

/// How often a message decided on facts that moved before its claim reads
/// them again and decides again, before it goes the long way.
const FACTS_ATTEMPTS: usize = 3;

/// Dispatches one step of a batch on the facts the batch read. A step that
/// is not simply queued (missing, already handled, claimed by someone
/// else), or that moved after the read, goes the long way
/// ([`dispatch_step`]).
async fn dispatch_read(
    id: &StepId,
    batch: &mut BatchFacts,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Outcome, DispatchError> {
    let Some(snapshot) = batch
        .steps
        .get(id)
        .filter(|s| s.step.status == StepStatus::Queued)
        .cloned()
    else {
        return dispatch_step(id, deps, now).await;
    };
    let step = &snapshot.step;
    for _ in 0..FACTS_ATTEMPTS {
        let answered = batch.facts.answer(step).map(str::to_owned);
        let facts = batch.facts.contacts.get_mut(&step.contact_id);
        match conclude(
            step,
            Hold::Read(&snapshot),
            facts,
            answered.as_deref(),
            deps,
            now,
        )
        .await?
        {
            Concluded::Done(outcome) => return Ok(outcome),
            Concluded::StepMoved => break,
            Concluded::FactsMoved => {
                // Read this contact's facts (and the episode's answer) again.
                let fresh = StepFacts::read(deps.store.as_ref(), &[step], now).await?;
                batch.facts.extend(fresh);
            }
        }
    }
    dispatch_step(id, deps, now).await
}

/// Dispatches one step the long way: claim it, then read its facts.
pub async fn dispatch_step(
    id: &StepId,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Outcome, DispatchError> {
    let store = deps.store.as_ref();
    let step = match store.claim_send(id, now).await? {
        Claim::Won(step) => *step,
        Claim::Missing => {
            warn!(step_id = %id, "no such step; dropping message");
            return Ok(Outcome::Skipped("no such step"));
        }
        Claim::AlreadyDone => return Ok(Outcome::Skipped("already handled")),
        Claim::InFlight { since, step } => {
            let step = *step;
            let stale = since.is_none_or(|s| now - s >= CLAIM_LEASE);
            if !stale {
                // Another invocation is sending it: let SQS bring the message
                // back later, when that one has finished or died.
                return Err(DispatchError::InFlight);
            }
            // Its invocation died mid-send: never send again without proof
            // that the first attempt did not go out.
            if !store.reclaim_stale(id, now - CLAIM_LEASE, now).await? {
                return Ok(Outcome::Skipped("claim moved on"));
            }
            match recover(deps, &step, since, now).await? {
                Recovered::Ended(outcome) => return Ok(outcome),
                // The carrier holds no such text: the claim is this
                // invocation's, and it decides and sends as if fresh.
                Recovered::NotSent => step,
            }
        }
    };

    // Everything after the claim must end the step one way or another.
    let mut read = StepFacts::read(store, &[&step], now).await?;
    let answered = read.answer(&step).map(str::to_owned);
    match conclude(
        &step,
        Hold::Claimed,
        read.contacts.get_mut(&step.contact_id),
        answered.as_deref(),
        deps,
        now,
    )
    .await?
    {
        Concluded::Done(outcome) => Ok(outcome),
        // Only a step held unclaimed can move under the decision.
        Concluded::StepMoved | Concluded::FactsMoved => Err(DispatchError::Port(
            PortError::Conflict("a claimed step moved under its decision".to_owned()),
        )),
    }
}

/// How dispatch holds a step while it decides.
#[derive(Debug, Clone, Copy)]
enum Hold<'a> {
    /// This invocation claimed it (queued -> sending) before reading.
    Claimed,
    /// Read as queued at this version, not claimed yet: a send or a
    /// deferral claims it first (on the condition that the facts have not
    /// moved), a suppression ends it on the condition that it is unchanged.
    Read(&'a StepSnapshot),
}

/// Where a decision left a step.
#[derive(Debug)]
enum Concluded {
    /// Ended, deferred or sent.
    Done(Outcome),
    /// The step was no longer as read: nothing was written.
    StepMoved,
    /// The contact's or the number's facts moved after they were read:
    /// nothing was written; read them again.
    FactsMoved,
}

/// Decides on `step` with `facts` and carries the decision out: the one
/// place that turns an assessment into writes and a carrier call.
async fn conclude(
    step: &Step,
    hold: Hold<'_>,
    facts: Option<&mut ContactFacts>,
    answered: Option<&str>,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Concluded, DispatchError> {
    let store = deps.store.as_ref();
    // Under a running experiment the step carries its contact's arm.
    let running = deps.warm.experiments.running(store).await?;
    let tagged;
    let step = match optline_outcomes::experiments::arm_for(&running, step) {
        ArmChoice::Unchanged => step,
        ArmChoice::Arm { version, arm } => {
            tagged = Step {
                template_version: version,
                arm: Some(arm),
                ..step.clone()
            };
            &tagged
        }
    };
    // A version paused for an opt-out spike sends nothing until a person
    // resumes it: its steps wait.
    if deps.warm.pauses.paused(store, step).await? {
        let rules = vec![RuleOutcome::new(
            "template.paused",
            "1",
            optline_policy::Verdict::Defer,
            "the template version is paused: its opt-outs spiked; a person in compliance resumes it",
        )];
        let until = now + optline_outcomes::pauses::PAUSED_RETRY;
        let reasons = vec!["template.paused".to_owned()];
        return defer(step, hold, facts, deps, now, until, rules, reasons).await;
    }
    let assessment = assess_with(step, facts.as_deref(), answered, deps, now).await?;
    let (body, template_sha256, legal_basis, consent_event_id, rules) = match assessment {
        Assessment::Refused { reasons, rules } => {
            return suppress(deps, step, hold, facts, now, reasons, rules).await;
        }
        Assessment::Decided {
            body,
            template_sha256,
            decision,
        } => match decision {
            Decision::Suppress { reasons, rules } => {
                return suppress(deps, step, hold, facts, now, reasons, rules).await;
            }
            Decision::Defer { until, rules } => {
                let until = until.unwrap_or(now + UNKNOWN_WINDOW_RETRY);
                return defer(step, hold, facts, deps, now, until, rules, Vec::new()).await;
            }
            Decision::Send {
                legal_basis,
                consent_event_id,
                rules,
            } => (body, template_sha256, legal_basis, consent_event_id, rules),
        },
    };
    // A send decision always has the contact's facts.
    let Some(facts) = facts else {
        return Err(DispatchError::Port(PortError::Invalid(
            "a send was decided without the contact's facts".to_owned(),
        )));
    };
    if let Some(moved) = claim(step, hold, Some(facts), deps, now).await? {
        return Ok(moved);
    }
    let program = deps.config.program(Some(&step.program));
    let sms = OutboundSms {
        to: facts.contact.phone.clone(),
        body,
        class: step.class,
        program: step.program.clone(),
        from: program
            .and_then(|p| p.sender_for(facts.contact.phone.as_str()).from)
            .map(str::to_owned),
        idempotency_key: step.id.as_str().to_owned(),
    };
    let parts =
        u32::try_from(optline_policy::segments::count(&sms.body).segments).unwrap_or(u32::MAX);
    // The step as sent: its parts are billed and counted.
    let sent_step = Step {
        segments: Some(parts),
        ..step.clone()
    };
    let step = &sent_step;
    if let Some(program) = program {
        // The sender's daily cap (the carrier's, per brand) first: a text
        // over it waits for the carrier's next day.
        if let Some(cap) = program.daily_cap {
            let (day, next) = carrier_day(now);
            if !deps
                .pacer
                .acquire_daily(program.sender_key(), &day, cap, parts)
                .await?
            {
                let rules = vec![RuleOutcome::new(
                    "caps.brand_daily",
                    "1",
                    optline_policy::Verdict::Defer,
                    format!(
                        "the sender's daily cap of {cap} message parts is used up until midnight Pacific"
                    ),
                )];
                let reasons = vec!["caps.brand_daily".to_owned()];
                return defer(
                    step,
                    Hold::Claimed,
                    Some(facts),
                    deps,
                    now,
                    next,
                    rules,
                    reasons,
                )
                .await;
            }
        }
        if let Err(e) = pace(deps, program.sender_for(sms.to.as_str()), parts).await {
            store.release_claim(&step.id, now).await?;
            return Err(e);
        }
    }
    // What the decision rests on, by hash, inside the chain.
    let mut evidence = consent_event_id
        .as_ref()
        .and_then(|id| facts.evidence.get(id))
        .cloned()
        .unwrap_or_default();
    evidence.insert("template".to_owned(), template_sha256);
    evidence.insert(
        "rendered".to_owned(),
        optline_ports::sha256_hex(sms.body.as_bytes()),
    );
    if let Some(from) = &sms.from {
        // Which of the pool's numbers texted the person.
        evidence.insert("from".to_owned(), from.clone());
    }
    let decided = Decided {
        legal_basis: Some(legal_basis.as_str()),
        consent_event_id: consent_event_id.as_deref(),
        carrier_message_id: None,
        evidence: Some(&evidence),
    };
    match deps.sender.send(&sms).await {
        Ok(receipt) => {
            let carrier_id = format!("{}:{}", receipt.carrier, receipt.message_id);
            let outcome = StepOutcome {
                status: StepStatus::Sent,
                at: now,
                carrier_message_id: Some(carrier_id.clone()),
                reasons: Vec::new(),
            };
            let record = audit_record(
                step,
                now,
                "send",
                rules,
                Vec::new(),
                Decided {
                    carrier_message_id: Some(&carrier_id),
                    ..decided
                },
                None,
            );
            // The send records, the step's status, the contact's recent
            // sends and the audit record: one write when nothing moved.
            let head = facts.audit_head.clone();
            let written = finish_surely(
                deps,
                step,
                &outcome,
                record,
                head.as_ref().map(|head| FinishBase {
                    head,
                    facts: Some(facts),
                }),
            )
            .await?;
            facts.after_send(SendHistoryEntry::for_step(step, now), written);
            info!(step_id = %step.id, to = %facts.contact.phone.masked(), "sent");
            Ok(Concluded::Done(Outcome::Sent(carrier_id)))
        }
        Err(failure) if failure.retryable() => {
            // The carrier proved it did not take the text: give the claim
            // back, and SQS brings the message back later.
            store.release_claim(&step.id, now).await?;
            Err(DispatchError::Carrier(failure.code))
        }
        Err(failure) if failure.kind == FailureKind::Unknown => {
            // The text may have gone out: never send it again without
            // proof that it did not.
            warn!(code = %failure.code, "send outcome unknown; asking the carrier");
            let outcome = match recover_with(deps, step, &sms, Some(now), now).await? {
                Recovered::Ended(outcome) => outcome,
                Recovered::NotSent => {
                    // The carrier proves it holds no such text: retry later.
                    store.release_claim(&step.id, now).await?;
                    return Err(DispatchError::Carrier(failure.code));
                }
            };
            if let Some(head) = deps_head(deps, step).await? {
                match outcome {
                    Outcome::Sent(_) => {
                        facts.after_send(SendHistoryEntry::for_step(step, now), head);
                    }
                    _ => facts.audit_head = Some(head),
                }
            }
            Ok(Concluded::Done(outcome))
        }
        Err(failure) => {
            let reasons = vec![format!("carrier.{}", failure.code)];
            let outcome = StepOutcome::ended(StepStatus::Failed, now, reasons.clone());
            let record = audit_record(
                step,
                now,
                "failed",
                rules,
                reasons,
                decided,
                Some(failure.reason.clone()),
            );
            if failure.recipient_opted_out {
                // The number opted out at the carrier: the step's end and the
                // revocation are one commit. The number's facts moved: a
                // later step of this batch to it finds out at its claim.
                let head =
                    end_with_carrier_opt_out(deps, step, &facts.contact, &outcome, record, now)
                        .await?;
                if head.is_some() {
                    facts.audit_head = head;
                }
            } else {
                let head = facts.audit_head.clone();
                facts.audit_head = Some(
                    finish_surely(
                        deps,
                        step,
                        &outcome,
                        record,
                        head.as_ref().map(|head| FinishBase { head, facts: None }),
                    )
                    .await?,
                );
            }
            Ok(Concluded::Done(Outcome::Failed(failure.code)))
        }
    }
}

/// How often the record of a text that went out (or was refused) is tried
/// before the message is handed back to SQS.
const FINISH_ATTEMPTS: u32 = 4;

/// Records a claimed step's end after the carrier answered: the carrier
/// call cannot be taken back, so the record must land. A failed write is
/// tried again after a pause; a write whose answer was lost is found on the
/// step. Gives the chain's head after it.
pub(crate) async fn finish_surely(
    deps: &Deps,
    step: &Step,
    outcome: &StepOutcome,
    record: NewAuditRecord,
    base: Option<FinishBase<'_>>,
) -> Result<AuditHead, DispatchError> {
    let mut base = base;
    let mut last = None;
    for attempt in 0..FINISH_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
        }
        match deps
            .store
            .finish_audited(step, outcome, record.clone(), base)
            .await
        {
            Ok(written) => return Ok(head_of(&written)),
            Err(e) => {
                warn!(error = %e, attempt, "recording a step's end failed");
                // Read the head again on the next try.
                base = None;
                if let Ok(Some(current)) = deps.store.step(&step.id).await {
                    if current.status == outcome.status {
                        // The write landed; its answer was lost.
                        if let Some(head) = deps_head(deps, step).await? {
                            return Ok(head);
                        }
                    }
                }
                last = Some(e);
            }
        }
    }
    Err(DispatchError::Port(last.unwrap_or_else(|| {
        PortError::Unavailable("recording a step's end failed".to_owned())
    })))
}

/// Claims a step held as read, on the condition that nothing moved;
/// `Some` tells what moved instead. A claimed step needs nothing.
async fn claim(
    step: &Step,
    hold: Hold<'_>,
    facts: Option<&ContactFacts>,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Option<Concluded>, DispatchError> {
    let Hold::Read(snapshot) = hold else {
        return Ok(None);
    };
    let Some(facts) = facts else {
        // Without facts there is nothing to condition on: claim the long way.
        return Ok(Some(Concluded::StepMoved));
    };
    debug_assert_eq!(snapshot.step.id, step.id);
    Ok(
        match deps.store.claim_checked(snapshot, facts, now).await? {
            CheckedClaim::Won => None,
            CheckedClaim::StepMoved => Some(Concluded::StepMoved),
            CheckedClaim::FactsMoved => Some(Concluded::FactsMoved),
        },
    )
}

/// What the audit record of a decision says beyond its rules.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Decided<'a> {
    pub(crate) legal_basis: Option<&'a str>,
    pub(crate) consent_event_id: Option<&'a str>,
    pub(crate) carrier_message_id: Option<&'a str>,
    pub(crate) evidence: Option<&'a std::collections::BTreeMap<String, String>>,
}

fn head_of(record: &AuditRecord) -> AuditHead {
    AuditHead {
        seq: record.seq,
        hash: record.hash.clone(),
    }
}

/// Ends a step that will not be sent, with its audit record: a claimed
/// step is finished; a step held as read ends only if it is unchanged.
async fn suppress(
    deps: &Deps,
    step: &Step,
    hold: Hold<'_>,
    facts: Option<&mut ContactFacts>,
    now: DateTime<Utc>,
    reasons: Vec<String>,
    rules: Vec<RuleOutcome>,
) -> Result<Concluded, DispatchError> {
    let outcome = StepOutcome::ended(StepStatus::Suppressed, now, reasons.clone());
    let record = audit_record(
        step,
        now,
        "suppress",
        rules,
        reasons.clone(),
        Decided::default(),
        None,
    );
    let head = facts.as_ref().and_then(|f| f.audit_head.clone());
    let recorded = match hold {
        Hold::Claimed => Some(
            deps.store
                .finish_audited(
                    step,
                    &outcome,
                    record,
                    head.as_ref().map(|head| FinishBase { head, facts: None }),
                )
                .await?,
        ),
        Hold::Read(snapshot) => {
            deps.store
                .exclude_audited(
                    step,
                    Unclaimed::Queued(&snapshot.version),
                    &outcome,
                    record,
                    head.as_ref(),
                )
                .await?
        }
    };
    let Some(record) = recorded else {
        return Ok(Concluded::StepMoved);
    };
    if let Some(facts) = facts {
        facts.audit_head = Some(head_of(&record));
    }
    Ok(Concluded::Done(Outcome::Suppressed(reasons)))
}

/// Claims the step (when held unclaimed) and puts it back in the due
/// index until `until` with its audit record, in one write.
#[allow(clippy::too_many_arguments, reason = "one deferral's whole context")]
async fn defer(
    step: &Step,
    hold: Hold<'_>,
    facts: Option<&mut ContactFacts>,
    deps: &Deps,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    rules: Vec<RuleOutcome>,
    reasons: Vec<String>,
) -> Result<Concluded, DispatchError> {
    if let Some(moved) = claim(step, hold, facts.as_deref(), deps, now).await? {
        return Ok(moved);
    }
    let head = facts.as_ref().and_then(|f| f.audit_head.clone());
    let record = deps
        .store
        .defer_audited(
            step,
            until,
            audit_record(
                step,
                now,
                "defer",
                rules,
                reasons,
                Decided::default(),
                Some(format!("deferred until {}", until.to_rfc3339())),
            ),
            head.as_ref(),
        )
        .await?;
    if let Some(facts) = facts {
        facts.audit_head = Some(head_of(&record));
    }
    Ok(Concluded::Done(Outcome::Deferred(until)))
}

pub(crate) fn audit_record(
    step: &Step,
    at: DateTime<Utc>,
    action: &str,
    rules: Vec<RuleOutcome>,
    reasons: Vec<String>,
    decided: Decided<'_>,
    detail: Option<String>,
) -> NewAuditRecord {
    NewAuditRecord {
        evidence: decided.evidence.cloned().unwrap_or_default(),
        contact_id: step.contact_id.clone(),
        at,
        kind: "decision".to_owned(),
        action: action.to_owned(),
        step_id: Some(step.id.as_str().to_owned()),
        rules,
        reasons,
        legal_basis: decided.legal_basis.map(str::to_owned),
        consent_event_id: decided.consent_event_id.map(str::to_owned),
        template: Some(format!("{}@{}", step.template_id, step.template_version)),
        carrier_message_id: decided.carrier_message_id.map(str::to_owned),
        arm: step.arm.clone(),
        detail,
    }
}
