//! # sweep
//!
//! Runs on the EventBridge schedule. Finds pending steps that are due through
//! the sparse `due` index (a query per shard, never a scan), moves each from
//! pending to queued with a conditional write (so two overlapping sweeps
//! enqueue a step once), and sends the winners to the dispatch queue in
//! batches of ten. A step whose enqueue failed goes back to pending.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use optline_ports::{PortError, StepId, StepQueue, Store};
use serde::Serialize;
use tracing::{info, warn};

/// Most steps handled by one invocation; the next run picks up the rest.
pub const SWEEP_LIMIT: usize = 1000;

/// What the sweep needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// The dispatch queue.
    pub queue: Arc<dyn StepQueue>,
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
    /// Steps another sweep had already taken.
    pub lost_race: usize,
    /// Steps whose enqueue failed and that went back to pending.
    pub requeued: usize,
}

/// One sweep at `now`.
pub async fn sweep(deps: &Deps, now: DateTime<Utc>) -> Result<SweepReport, PortError> {
    let due = deps.store.due_steps(now, SWEEP_LIMIT).await?;
    let mut report = SweepReport {
        found: due.len(),
        ..SweepReport::default()
    };
    let mut won: Vec<StepId> = Vec::with_capacity(due.len());
    for step in &due {
        if deps.store.mark_queued(&step.id, now).await? {
            won.push(step.id.clone());
        } else {
            report.lost_race += 1;
        }
    }
    let failed = deps.queue.enqueue(&won).await?;
    for id in &failed {
        warn!(step_id = %id, "enqueue failed; step goes back to pending");
        deps.store.defer_step(id, now).await?;
    }
    report.requeued = failed.len();
    report.enqueued = won.len() - failed.len();
    info!(
        found = report.found,
        enqueued = report.enqueued,
        lost_race = report.lost_race,
        requeued = report.requeued,
        "sweep finished"
    );
    Ok(report)
}
