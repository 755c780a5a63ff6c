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
//!
//! One run drains: it reads the due index a page at a time until a page
//! comes back short, nothing moves, or its time budget is spent. Within a
//! page, contacts are handled concurrently (one contact's steps in order,
//! each exclusion building on the audit head the previous left). It queues
//! at most what each program's number can send before the next runs
//! (its scheduled rate × [`QUEUE_HORIZON`]); the rest stays pending and due,
//! so the queue never floods past what pacing allows and nothing expires in
//! it unseen.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use optline_config::Config;
use optline_policy::audience::Selection;
use optline_policy::decision::Urgency;
use optline_ports::{
    AuditHead, ContactFacts, ContactId, NewAuditRecord, PortError, Step, StepId, StepOutcome,
    StepQueue, StepStatus, Store, Unclaimed,
};
use serde::Serialize;
use tracing::{info, warn};

use crate::facts::{select_with, StepFacts};

/// Due steps read per page of the drain.
pub const SWEEP_LIMIT: usize = 1000;

/// How long one run keeps draining: under the one-minute schedule, so runs
/// rarely overlap (when they do, the conditional writes queue each step
/// once).
pub const SWEEP_BUDGET: std::time::Duration = std::time::Duration::from_secs(50);

/// Contacts whose steps are moved at once.
pub const SWEEP_CONCURRENCY: usize = 16;

/// How far ahead one run fills each program's share of the queue: its
/// scheduled rate times this many seconds.
pub const QUEUE_HORIZON: u64 = 120;

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
    /// Due steps found in the index (a step held back and found again on a
    /// later page counts each time).
    pub found: usize,
    /// Pages of the due index read.
    pub pages: usize,
    /// Steps this run moved to queued and enqueued.
    pub enqueued: usize,
    /// Steps outside their audience, ended as suppressed.
    pub excluded: usize,
    /// Excluded steps per failed rule.
    pub excluded_by: BTreeMap<String, usize>,
    /// Steps left pending because their program's share of the queue for
    /// this run was full (the next run takes them).
    pub held: usize,
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

impl SweepReport {
    fn absorb(&mut self, other: SweepReport) {
        self.found += other.found;
        self.pages += other.pages;
        self.enqueued += other.enqueued;
        self.excluded += other.excluded;
        for (rule, n) in other.excluded_by {
            *self.excluded_by.entry(rule).or_insert(0) += n;
        }
        self.held += other.held;
        self.lost_race += other.lost_race;
        self.requeued += other.requeued;
        self.lapsed += other.lapsed;
        self.unreadable += other.unreadable;
    }
}

/// One sweep at `now`: pages of due steps until the index is drained, a
/// page moves nothing, or [`SWEEP_BUDGET`] is spent.
pub async fn sweep(deps: &Deps, now: DateTime<Utc>) -> Result<SweepReport, PortError> {
    let started = std::time::Instant::now();
    let horizon = usize::try_from(QUEUE_HORIZON).unwrap_or(usize::MAX);
    let mut room: HashMap<String, usize> = deps
        .config
        .programs
        .values()
        .map(|p| {
            let rate = usize::try_from(p.scheduled_rate()).unwrap_or(usize::MAX);
            (p.id.clone(), rate.saturating_mul(horizon))
        })
        .collect();
    let mut report = SweepReport::default();
    loop {
        let page = sweep_page(deps, now, &mut room).await?;
        let found = page.found;
        let moved = page.enqueued + page.excluded + page.requeued;
        report.absorb(page);
        if found < SWEEP_LIMIT || moved == 0 || started.elapsed() >= SWEEP_BUDGET {
            break;
        }
    }
    info!(
        pages = report.pages,
        found = report.found,
        enqueued = report.enqueued,
        excluded = report.excluded,
        held = report.held,
        lost_race = report.lost_race,
        requeued = report.requeued,
        lapsed = report.lapsed,
        unreadable = report.unreadable,
        "sweep finished"
    );
    Ok(report)
}

/// What the sweep does with one due step, decided before any write.
enum Plan {
    /// Its queue lease lapsed: renew it and enqueue it again.
    Renew,
    /// In its audience: move it to queued.
    Queue,
    /// Outside its audience: end it, audited.
    Exclude(Selection),
}

/// One contact's facts and its steps' plans, carried out in order.
type ContactPlans = (Option<ContactFacts>, Vec<(Step, Plan)>);

/// One page: read, decide every step, then move them, contacts at once.
async fn sweep_page(
    deps: &Deps,
    now: DateTime<Utc>,
    room: &mut HashMap<String, usize>,
) -> Result<SweepReport, PortError> {
    use futures_util::StreamExt;

    let store = deps.store.as_ref();
    let mut due = store.due_steps(now, SWEEP_LIMIT).await?;
    // The urgency band orders the work: time-sensitive steps first.
    due.sort_by_key(|s| (s.urgency != Urgency::TimeSensitive, s.due_at));
    let mut report = SweepReport {
        found: due.len(),
        pages: 1,
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
    // Decide every step first (pure), in urgency order, so the program's
    // share of the queue goes to the most urgent.
    let mut plans: Vec<(&Step, Plan)> = Vec::with_capacity(due.len());
    for step in &due {
        let plan = if matches!(step.status, StepStatus::Queued | StepStatus::Sending) {
            Plan::Renew
        } else {
            let selection = select_with(
                &deps.config,
                step,
                read.contacts.get(&step.contact_id),
                read.answer(step),
                now,
            );
            if selection.included {
                Plan::Queue
            } else {
                Plan::Exclude(selection)
            }
        };
        if !matches!(plan, Plan::Exclude(_)) {
            match room.get_mut(&step.program) {
                Some(0) => {
                    report.held += 1;
                    continue;
                }
                Some(left) => *left -= 1,
                // Dispatch decides on a program the configuration no
                // longer names (it suppresses, recorded).
                None => {}
            }
        }
        plans.push((step, plan));
    }
    // Then group them by contact, each group with its contact's facts (an
    // exclusion builds on the audit head the previous one left).
    let mut groups: Vec<ContactPlans> = Vec::new();
    let mut index: HashMap<&ContactId, usize> = HashMap::new();
    for (step, plan) in plans {
        let group = match index.get(&step.contact_id) {
            Some(group) => *group,
            None => {
                index.insert(&step.contact_id, groups.len());
                groups.push((read.contacts.remove(&step.contact_id), Vec::new()));
                groups.len() - 1
            }
        };
        if let Some((_, plans)) = groups.get_mut(group) {
            plans.push((step.clone(), plan));
        }
    }
    let outcomes: Vec<(Vec<StepId>, SweepReport)> = futures_util::stream::iter(groups)
        .map(|(mut facts, plans)| async move {
            let mut won = Vec::new();
            let mut part = SweepReport::default();
            for (step, plan) in plans {
                match carry_out(deps, &step, plan, facts.as_mut(), now, &mut part).await {
                    Ok(true) => won.push(step.id.clone()),
                    Ok(false) => {}
                    Err(e) => {
                        // Left as it was: the next run reads it again. The
                        // steps already won still go to the queue.
                        warn!(step_id = %step.id, error = %e, "step not moved; the next run tries again");
                        part.unreadable += 1;
                    }
                }
            }
            (won, part)
        })
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    let mut won: Vec<StepId> = Vec::with_capacity(due.len());
    for (ids, part) in outcomes {
        won.extend(ids);
        report.absorb(SweepReport {
            found: 0,
            pages: 0,
            ..part
        });
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
    Ok(report)
}

/// Carries out one step's plan: `true` when this run queued it (or renewed
/// a lapsed lease).
async fn carry_out(
    deps: &Deps,
    step: &Step,
    plan: Plan,
    facts: Option<&mut ContactFacts>,
    now: DateTime<Utc>,
    report: &mut SweepReport,
) -> Result<bool, PortError> {
    match plan {
        Plan::Renew => {
            // Its lease lapsed: enqueue it again. Dispatch claims it once
            // however many messages name it, and finds a claim left by a
            // dead invocation stale (it completes the send with the same
            // idempotency key, or ends it without a second text).
            if deps.store.requeue_lapsed(&step.id, now).await? {
                warn!(step_id = %step.id, "queued step never reached dispatch; enqueued again");
                report.lapsed += 1;
                Ok(true)
            } else {
                report.lost_race += 1;
                Ok(false)
            }
        }
        Plan::Queue => {
            let queued = deps.store.mark_queued(&step.id, now).await?;
            if !queued {
                report.lost_race += 1;
            }
            Ok(queued)
        }
        Plan::Exclude(selection) => admit(deps, step, selection, facts, now, report).await,
    }
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
                arm: None,
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
