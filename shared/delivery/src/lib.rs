//! # optline-delivery
//!
//! Delivery: sending a due step and learning what became of it.
//!
//! - [`dispatch`]: the SQS consumer's use case. For a batch of steps: read
//!   the facts once, decide again with the full policy, claim, send, and
//!   commit the outcome with its audit record once; never a second text.
//! - [`dry_run`]: what a sweep would send, defer or suppress, and why,
//!   writing nothing.
//! - [`reports`]: carriers' delivery reports (Twilio status callbacks),
//!   each committed once with its audit record, and a carrier opt-out
//!   (21610) in the same commit.
//! - [`metrics`]: counts in CloudWatch's embedded metric format.

pub mod assess;
pub mod dispatch;
pub mod dry_run;
pub mod metrics;
mod pacing;
mod recovery;
pub mod reports;

pub use assess::{assess, assess_with, Assessment};
pub use dispatch::{
    dispatch_step, dispatch_steps, outcome_kind, Deps, DispatchError, Outcome, Warm, CLAIM_LEASE,
    UNKNOWN_WINDOW_RETRY,
};
pub use dry_run::{dry_run, DryRun, DryRunStep};
pub use pacing::{PACE_MAX_WAIT, SLOTS_PER_TAKE};
