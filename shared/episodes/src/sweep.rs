//! The sweep, run on the EventBridge schedule. Finds pending steps that
//! are due through the sparse `due` index (a query per shard, never a scan), applies the
//! program's audience (segment) rules to each
//! ([`optline_policy::audience`]: purpose, consent scope, responders and
//! non-responders, urgency band, minors, region), then:
//!
//! - a step outside its audience is ended as suppressed, with an audit
//!   record holding every rule consulted, and never queued;
//! - a step inside it moves from pending to queued with a conditional write
//!   (so two overlapping sweeps enqueue it once) and goes to the dispatch
//!   queue in batches of ten. A step whose enqueue failed goes back to
//!   pending.
//!
//! A queued step stays in the index, due again when its queue lease lapses
//! (its message never reached a dispatcher); the sweep renews the lease
//! with a conditional write and enqueues it again.
//!
//! Time-sensitive steps are handled first. Dispatch applies the same audience
//! rules again (without consent, which its own decision checks), with the
//! latest data, right before it sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use optline_config::Config;
use optline_policy::audience::Selection;
use optline_policy::decision::Urgency;
use optline_ports::{
    AuditHead, ContactFacts, NewAuditRecord, PortError, Step, StepId, StepOutcome, StepQueue,
    StepStatus, Store, Unclaimed,
};
use serde::Serialize;
use tracing::{info, warn};

use crate::facts::{select_with, StepFacts};

/// Most steps handled by one invocation; the next run picks up the rest.
pub const SWEEP_LIMIT: usize = 1000;

/// What the sweep needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// The dispatch queue.
    pub queue: Arc<dyn StepQueue>,
    /// Programs and their audience rules.
    pub config: Arc<Config>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Due steps found in the index.
    pub found: usize,
    /// Steps this run moved to queued and enqueued.
    pub enqueued: usize,
    /// Steps outside their audience, ended as suppressed.
    pub excluded: usize,
    /// Excluded steps per failed rule.
    pub excluded_by: BTreeMap<String, usize>,
    /// Steps another sweep (or a cancellation) had already taken.
    pub lost_race: usize,
    /// Steps whose enqueue failed and that went back to pending.
    pub requeued: usize,
    /// Queued steps whose message never reached a dispatcher (a sweep died
    /// before sending it, or it was dead-lettered), and claimed steps whose
    /// invocation died and whose message was lost: their lease lapsed and
    /// they were enqueued again (counted in `enqueued` too).
    pub lapsed: usize,
    /// Steps left pending because their facts could not be read (the next
    /// run tries again).
    pub unreadable: usize,
}

/// One sweep at `now`.
pub async fn sweep(deps: &Deps, now: DateTime<Utc>) -> Result<SweepReport, PortError> {
    let store = deps.store.as_ref();
    let mut due = store.due_steps(now, SWEEP_LIMIT).await?;
    // The urgency band orders the work: time-sensitive steps first.
    due.sort_by_key(|s| (s.urgency != Urgency::TimeSensitive, s.due_at));
    let mut report = SweepReport {
        found: due.len(),
        ..SweepReport::default()
    };
    // What the audience rules read, for every pending due step at once.
    let steps: Vec<&Step> = due
        .iter()
        .filter(|s| s.status == StepStatus::Pending)
        .collect();
    let mut read = match StepFacts::read(store, &steps, now).await {
        Ok(read) => read,
        Err(e) => {
            // Every step stays pending: the next run reads them again.
            warn!(error = %e, "audience facts not read; due steps stay pending");
            report.unreadable = due.len();
            return Ok(report);
        }
    };
    let mut won: Vec<StepId> = Vec::with_capacity(due.len());
    for step in &due {
        if matches!(step.status, StepStatus::Queued | StepStatus::Sending) {
            // Its lease lapsed: enqueue it again. Dispatch claims it once
            // however many messages name it, and finds a claim left by a
            // dead invocation stale (it completes the send with the same
            // idempotency key, or ends it without a second text).
            match store.requeue_lapsed(&step.id, now).await {
                Ok(true) => {
                    warn!(step_id = %step.id, "queued step never reached dispatch; enqueued again");
                    report.lapsed += 1;
                    won.push(step.id.clone());
                }
                Ok(false) => report.lost_race += 1,
                Err(e) => {
                    warn!(step_id = %step.id, error = %e, "lapsed step not renewed; the next run tries again");
                    report.unreadable += 1;
                }
            }
            continue;
        }
        let selection = select_with(
            &deps.config,
            step,
            read.contacts.get(&step.contact_id),
            read.answer(step),
            now,
        );
        let facts = read.contacts.get_mut(&step.contact_id);
        match admit(deps, step, selection, facts, now, &mut report).await {
            Ok(true) => won.push(step.id.clone()),
            Ok(false) => {}
            Err(e) => {
                // Left pending: the next run reads it again. The steps
                // already won still go to the queue below.
                warn!(step_id = %step.id, error = %e, "audience not decided; step stays pending");
                report.unreadable += 1;
            }
        }
    }
    let failed = match deps.queue.enqueue(&won).await {
        Ok(failed) => failed,
        // Not one message is known to have arrived: all go back to pending
        // (one that did arrive is claimed once by dispatch all the same).
        Err(e) => {
            warn!(error = %e, "enqueue failed; the steps go back to pending");
            won.clone()
        }
    };
    for id in &failed {
        warn!(step_id = %id, "enqueue failed; step goes back to pending");
        deps.store.unqueue(id, now).await?;
    }
    report.requeued = failed.len();
    report.enqueued = won.len() - failed.len();
    info!(
        found = report.found,
        enqueued = report.enqueued,
        excluded = report.excluded,
        lost_race = report.lost_race,
        requeued = report.requeued,
        lapsed = report.lapsed,
        unreadable = report.unreadable,
        "sweep finished"
    );
    Ok(report)
}

/// Carries out the audience decision on one step: `true` when this run
/// moved it to queued; an excluded step is ended and audited.
async fn admit(
    deps: &Deps,
    step: &Step,
    selection: Selection,
    facts: Option<&mut ContactFacts>,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<bool, PortError> {
    let store = deps.store.as_ref();
    if selection.included {
        let queued = store.mark_queued(&step.id, now).await?;
        if !queued {
            report.lost_race += 1;
        }
        return Ok(queued);
    }
    let outcome = StepOutcome::ended(StepStatus::Suppressed, now, selection.reasons.clone());
    let head = facts.as_ref().and_then(|f| f.audit_head.clone());
    // The step leaves pending and its audit record is appended in one write
    // (or, if the chain moved, one after the other).
    let recorded = store
        .exclude_audited(
            step,
            Unclaimed::Pending,
            &outcome,
            NewAuditRecord {
                evidence: Default::default(),
                contact_id: step.contact_id.clone(),
                at: now,
                kind: "decision".to_owned(),
                action: "suppress".to_owned(),
                step_id: Some(step.id.as_str().to_owned()),
                rules: selection.rules,
                reasons: selection.reasons.clone(),
                legal_basis: None,
                consent_event_id: None,
                template: Some(format!("{}@{}", step.template_id, step.template_version)),
                carrier_message_id: None,
                detail: Some("outside the program's audience; ended by the sweep".to_owned()),
            },
            head.as_ref(),
        )
        .await?;
    let Some(record) = recorded else {
        report.lost_race += 1;
        return Ok(false);
    };
    if let Some(facts) = facts {
        // The next exclusion for this contact builds on this record.
        facts.audit_head = Some(AuditHead {
            seq: record.seq,
            hash: record.hash,
        });
    }
    report.excluded += 1;
    for reason in selection.reasons {
        *report.excluded_by.entry(reason).or_insert(0) += 1;
    }
    Ok(false)
}
